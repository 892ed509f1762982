"""`podkit play kube`: the YAML → pod plan parser, then real pods from real YAML."""

from __future__ import annotations

import socket
import textwrap
import urllib.request
from pathlib import Path

import pytest

from podkit.errors import InvalidArgument
from podkit.pods import kube
from tests.helpers import Daemon, wait_for

POD = textwrap.dedent("""
    apiVersion: v1
    kind: Pod
    metadata:
      name: web
      labels: {app: web}
    spec:
      hostname: webhost
      shareProcessNamespace: true
      dnsConfig:
        nameservers: [10.0.0.53]
        searches: [svc.local]
        options: [{name: ndots, value: "2"}, {name: edns0}]
      hostAliases: [{ip: 10.1.1.1, hostnames: [db, cache]}]
      restartPolicy: OnFailure
      securityContext:
        sysctls: [{name: net.ipv4.ip_unprivileged_port_start, value: "0"}]
      volumes:
        - {name: data, emptyDir: {}}
        - {name: etc, hostPath: {path: /etc, type: Directory}}
      containers:
        - name: srv
          image: busybox
          command: [httpd, -f]
          args: [-p, "8080"]
          env: [{name: MODE, value: prod}, {name: N, value: 3}]
          workingDir: /srv
          ports: [{containerPort: 8080, hostPort: 18080}, {containerPort: 9090}]
          volumeMounts:
            - {name: data, mountPath: /data}
            - {name: etc, mountPath: /host-etc, readOnly: true}
          resources: {limits: {memory: 64Mi, cpu: 500m}, requests: {cpu: 100m}}
          securityContext:
            runAsUser: 1000
            runAsGroup: 1000
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {add: [NET_ADMIN], drop: [ALL]}
          livenessProbe: {exec: {command: [true]}}
        - name: side
          image: busybox
    """)


def test_pod_fields_map_to_plan() -> None:
    [p] = kube.parse(POD)
    s = p.spec
    assert (s.name, s.hostname, s.labels["app"]) == ("web", "webhost", "web")
    assert s.share == ["net", "ipc", "uts", "pid"]
    assert s.dns.servers == ["10.0.0.53"] and s.dns.searches == ["svc.local"]
    assert s.dns.options == ["ndots:2", "edns0"]
    assert s.add_hosts == ["db:10.1.1.1", "cache:10.1.1.1"]
    assert s.restart_policy == "on-failure"
    assert s.sysctls == {"net.ipv4.ip_unprivileged_port_start": "0"}
    assert [(m.host_port, m.container_port, m.protocol) for m in s.ports] == [(18080, 8080, "tcp")]
    srv, side = p.containers
    assert srv.entrypoint == ["httpd", "-f"] and srv.cmd == ["-p", "8080"]
    assert srv.env == {"MODE": "prod", "N": "3"} and srv.workdir == "/srv"
    assert srv.memory == 64 * 1024 * 1024 and srv.cpus == 0.5
    assert srv.user == "1000:1000" and srv.read_only and srv.no_new_privileges is True
    assert srv.cap_add == ["CAP_NET_ADMIN"] and srv.cap_drop == ["ALL"]
    data, etc = srv.mounts
    assert data.empty_dir and data.target == "/data" and not data.readonly
    assert etc.source == "/etc" and etc.readonly and not etc.empty_dir
    assert p.empty_dirs == ["data"]
    assert side.entrypoint is None and side.cmd is None
    # Unsupported but harmless fields are reported, not dropped silently.
    assert any("livenessProbe" in w for w in p.warnings)
    assert any("requests" in w for w in p.warnings)


def test_deployment_template_and_replicas_note() -> None:
    text = textwrap.dedent("""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: api}
        spec:
          replicas: 3
          selector: {matchLabels: {app: api}}
          template:
            metadata: {labels: {app: api}}
            spec:
              hostNetwork: true
              containers: [{name: c, image: busybox, args: [sleep, "1"],
                            ports: [{containerPort: 80, hostPort: 80}]}]
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: other}
        spec:
          containers: [{name: c, image: busybox}]
        """)
    dep, other = kube.parse(text)
    assert dep.kind == "Deployment" and dep.spec.name == "api" and dep.spec.labels == {"app": "api"}
    assert dep.spec.network == "host" and dep.spec.ports == []
    assert any("hostNetwork" in w for w in dep.warnings)
    assert any("replicas=3" in w for w in dep.warnings)
    assert other.spec.name == "other" and other.kind == "Pod"


def test_services_next_to_a_pod_are_skipped_with_a_warning() -> None:
    text = textwrap.dedent("""\
        apiVersion: v1
        kind: Service
        metadata: {name: web}
        spec: {ports: [{port: 80}]}
        ---
        apiVersion: v1
        kind: Pod
        metadata: {name: web}
        spec:
          containers: [{name: c, image: busybox}]
        """)
    (pod,) = kube.parse(text)
    assert pod.spec.name == "web"
    assert any("kind Service is ignored" in w for w in pod.warnings)


@pytest.mark.parametrize(
    "quantity,expect",
    [
        ("64Mi", 64 * 2**20),
        ("1G", 10**9),
        ("500m", 0.5),
        ("2", 2),
        ("1.5Gi", 1.5 * 2**30),
        (128, 128),
    ],
)
def test_quantities(quantity: object, expect: float) -> None:
    assert float(kube.parse_quantity(quantity, "x")) == expect


@pytest.mark.parametrize(
    "text,needle",
    [
        ("key: [unclosed", "invalid YAML"),
        ("", "no documents"),
        ("- a\n- b\n", "not a mapping"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\n", "not 'ConfigMap'"),
        ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", "no Pod or Deployment"),
        (
            "apiVersion: v2\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: b}]}\n",
            "apiVersion v1",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: c, image: b}]}\n",
            "metadata.name",
        ),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n", "at least one"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n",
            "image is required",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: C_1, image: b}]}\n",
            "DNS label",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: b, "
            "env: [{name: X, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]}\n",
            "valueFrom",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
            "spec: {volumes: [{name: v, configMap: {name: m}}], "
            "containers: [{name: c, image: b}]}\n",
            "only hostPath and emptyDir",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: b, "
            "volumeMounts: [{name: nope, mountPath: /x}]}]}\n",
            "names no volume",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: b, "
            "resources: {limits: {memory: lots}}}]}\n",
            "not a quantity",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {restartPolicy: Sometimes, "
            "containers: [{name: c, image: b}]}\n",
            "restartPolicy",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: b, "
            "ports: [{containerPort: 99999, hostPort: 8080}]}]}\n",
            "65535",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: b}, "
            "{name: c, image: b}]}\n",
            "used twice",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: b}]}\n---\n"
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: b}]}\n",
            "more than once",
        ),
    ],
)
def test_invalid_input_names_the_problem(text: str, needle: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        kube.parse(text)
    assert needle in ei.value.message


def test_host_namespaces() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
        "spec: {hostPID: true, hostIPC: true, containers: [{name: c, image: b}]}\n"
    )
    [p] = kube.parse(text)
    assert p.spec.host_pid and p.spec.host_ipc and p.spec.share == ["net", "uts"]
    with pytest.raises(InvalidArgument, match="exclude each other"):
        kube.parse(text.replace("hostIPC: true", "shareProcessNamespace: true"))


def test_unknown_fields_warn() -> None:
    text = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
        "spec: {nodeSelector: {a: b}, frobnicate: 1, containers: [{name: c, image: b, sparkle: 1}]}\n"
    )
    [p] = kube.parse(text)
    joined = "\n".join(p.warnings)
    assert "spec.frobnicate is not supported" in joined
    assert "sparkle is not supported" in joined
    assert "nodeSelector only matters in a cluster" in joined


# -- real pods from YAML -------------------------------------------------------------------

KUBE = """
apiVersion: v1
kind: Pod
metadata: {name: kweb, labels: {app: kweb}}
spec:
  volumes:
    - {name: shared, emptyDir: {}}
    - {name: made, hostPath: {path: MADEDIR, type: DirectoryOrCreate}}
  containers:
    - name: srv
      image: busybox
      command: [sh, -c]
      args: ["echo $GREETING > /shared/index.html && exec httpd -f -p 8080 -h /shared"]
      env: [{name: GREETING, value: hi-from-kube}]
      ports: [{containerPort: 8080, hostPort: HOSTPORT}]
      volumeMounts: [{name: shared, mountPath: /shared}]
      resources: {limits: {memory: 32Mi}}
    - name: side
      image: busybox
      command: [sleep, "600"]
      volumeMounts: [{name: shared, mountPath: /data, readOnly: true}, {name: made, mountPath: /made}]
      securityContext: {runAsUser: 1000, readOnlyRootFilesystem: true}
      livenessProbe: {exec: {command: ["true"]}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: kdep}
spec:
  replicas: 2
  selector: {matchLabels: {app: kdep}}
  template:
    metadata: {labels: {app: kdep}}
    spec:
      containers: [{name: app, image: busybox, command: [sleep, "600"]}]
"""


def test_play_kube_runs_pods_and_down_removes_them(daemon: Daemon, busybox_image: str, workdir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = workdir / "app.yaml"
    f.write_text(KUBE.replace("HOSTPORT", str(port)).replace("MADEDIR", str(workdir / "made")))
    c = daemon.client()
    try:
        r = daemon.cli("play", "kube", str(f), check=True)
        assert "Pod: kweb" in r.stdout and "Container: kweb-srv" in r.stdout and "Pod: kdep" in r.stdout
        assert "livenessProbe is not supported" in r.stderr and "replicas=2" in r.stderr
        pods = {p.name: p for p in c.pods.list()}
        assert set(pods) == {"kweb", "kdep"}
        assert pods["kweb"].status == "Running" and pods["kdep"].status == "Running"
        assert pods["kweb"].labels["app"] == "kweb"

        def run(ctr: str, script: str) -> tuple[int, str]:
            res = c.containers.exec(ctr, ["sh", "-c", script])
            return res.exit_code, (res.stdout + res.stderr).decode()

        # env + command/args, and the emptyDir shared (read-only on one side).
        wait_for(
            lambda: run("kweb-side", "cat /data/index.html")[1] == "hi-from-kube\n",
            30,
            what="the emptyDir file",
        )
        assert run("kweb-side", "id -u") == (0, "1000\n")
        assert run("kweb-side", "touch /data/x")[0] != 0
        rc, out = run("kweb-side", "touch /rootfile")
        assert rc != 0 and "Read-only file system" in out
        assert (workdir / "made").is_dir() and run("kweb-side", "test -d /made")[0] == 0
        # The hostPort is published; the limit applies to the container.
        body = wait_for(lambda: _get(f"http://127.0.0.1:{port}/"), 30, what="the hostPort")
        assert body == "hi-from-kube\n"
        srv = c.containers.inspect("kweb-srv")
        assert srv["config"]["memory"] == 32 * 1024 * 1024
        empty_dir = Path(c.pods.inspect("kweb")["volumes"]["shared"])
        assert empty_dir.is_dir()
        # Playing the same file again is refused, and creates nothing.
        r = daemon.cli("play", "kube", str(f))
        assert r.returncode == 125 and "already exists" in r.stderr
        assert len(c.pods.list()) == 2
        r = daemon.cli("play", "kube", "--down", str(f), check=True)
        assert "kweb" in r.stdout and "kdep" in r.stdout
        assert c.pods.list() == [] and not [x for x in c.containers.list(all=True)]
        assert not empty_dir.exists()
        assert not list((daemon.state / "netns").glob("pod-*"))
    finally:
        for p in c.pods.list():
            c.pods.remove(p.id, force=True)


def test_play_kube_bad_file(daemon: Daemon, busybox_image: str, workdir: Path) -> None:
    f = workdir / "bad.yaml"
    f.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p\n")
    r = daemon.cli("play", "kube", str(f))
    assert r.returncode == 125 and "invalid YAML" in r.stderr
    r = daemon.cli("play", "kube", str(workdir / "missing.yaml"))
    assert r.returncode == 125 and "cannot read" in r.stderr
    f.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
        "    - {name: c, image: busybox, env: [{name: X, valueFrom: {fieldRef: {fieldPath: x}}}]}\n"
    )
    r = daemon.cli("play", "kube", str(f))
    assert r.returncode == 125 and "valueFrom" in r.stderr
    # An image that cannot be had (a registry on a closed loopback port): the pods the
    # file made so far are removed again.
    f.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec: {containers: [{name: c, "
        "image: busybox}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n"
        "  containers: [{name: c, image: 'localhost:1/nope:1'}]\n"
    )
    r = daemon.cli("play", "kube", str(f))
    assert r.returncode == 125 and "nope" in r.stderr, r.stderr
    assert daemon.client().pods.list() == []
    assert not list((daemon.state / "netns").glob("pod-*"))
    # From stdin, created but not started; -q prints the pod id only; --down from stdin too.
    doc = (
        b"apiVersion: v1\nkind: Pod\nmetadata: {name: quiet}\n"
        b"spec: {containers: [{name: c, image: busybox}]}\n"
    )
    r = daemon.cli("play", "kube", "--start", "false", "-q", "-", input=doc, check=True)
    [pod] = daemon.client().pods.list()
    assert r.stdout.split() == [pod.id] and pod.status == "Created"
    daemon.cli("play", "kube", "--down", "-", input=doc, check=True)
    assert daemon.client().pods.list() == []


def _get(url: str) -> str:
    try:
        return urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError:
        return ""
