"""CRI containers and images through the runtime.v1 stubs: lifecycle, logs in the CRI
format under the pod's log directory, ExecSync (and its timeout), resources, stats,
events, image RPCs (pull with credentials), bad requests, no leftovers."""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import threading
from pathlib import Path

import grpc
from cri_api.v1 import api_pb2 as pb

from tests.fixtures.cri import BUSYBOX, CRI_NS, CRIClient, code_of
from tests.fixtures.registry import PASSWORD, USER, RegistryServer, build_layout, skopeo_push
from tests.helpers import wait_for

INVALID, NOTFOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) (F|P) (.*)$")


def test_container_lifecycle(cri: CRIClient, workdir: Path) -> None:
    sid, scfg = cri.run_sandbox("life")
    host_dir = workdir / "hostdir-that-does-not-exist"
    cfg = cri.container_config(
        "app",
        [
            "sh",
            "-c",
            "echo out; echo err >&2; echo $GREETING; id -u; id -G; cat /data/x 2>&1; exec sleep 1000",
        ],
        envs=[pb.KeyValue(key="GREETING", value="hi there")],
        labels={"role": "app"},
        annotations={"a": "b"},
        mounts=[pb.Mount(container_path="/data", host_path=str(host_dir), readonly=True)],
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                run_as_user=pb.Int64Value(value=1234), supplemental_groups=[5000, 5001]
            )
        ),
    )
    cid = cri.create(sid, scfg, cfg)
    assert host_dir.is_dir(), "a missing host path was not made"
    st = cri.status(cid).status
    assert st.state == pb.CONTAINER_CREATED and st.started_at == 0
    assert (st.metadata.name, dict(st.labels), dict(st.annotations)) == ("app", {"role": "app"}, {"a": "b"})
    log_path = Path(scfg.log_directory) / "app.log"
    assert st.log_path == str(log_path)
    assert [(m.container_path, m.host_path, m.readonly) for m in st.mounts] == [
        ("/data", str(host_dir), True)
    ]
    # The image as the kubelet named it, and its id.
    assert st.image.image == BUSYBOX and st.image_ref.startswith("docker.io/library/busybox@sha256:")

    cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    assert code_of(lambda: cri.rt.StartContainer(pb.StartContainerRequest(container_id=cid))) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    st = cri.status(cid).status
    assert st.state == pb.CONTAINER_RUNNING and st.started_at > st.created_at > 0

    def lines() -> list[str]:
        text = log_path.read_text() if log_path.exists() else ""
        return text.splitlines() if text.count("\n") >= 6 else []

    got = wait_for(lines, what="the CRI log")
    parsed = [CRI_LINE.match(line) for line in got]
    assert all(parsed), got
    by = [(m.group(2), m.group(4)) for m in parsed if m]
    assert ("stdout", "out") in by and ("stderr", "err") in by and ("stdout", "hi there") in by
    assert ("stdout", "1234") in by
    assert any(s == "stdout" and set(t.split()) >= {"5000", "5001"} for s, t in by), by
    assert any("No such file" in t for _, t in by)

    # In podkit: a container of pod <sandbox> in namespace k8s.io.
    pc = cri.daemon.client(CRI_NS).containers.get(cid)
    assert pc.pod_id == sid if hasattr(pc, "pod_id") else True

    ls = lambda f: [c.id for c in cri.rt.ListContainers(pb.ListContainersRequest(filter=f)).containers]  # noqa: E731
    # By image id, as the kubelet names it after PullImage: status shows the image's tag.
    image_id = cri.img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=BUSYBOX))).image.id
    other = cri.create(sid, scfg, cri.container_config("other", ["true"], image=image_id))
    assert cri.status(other).status.image.image == BUSYBOX
    assert set(ls(pb.ContainerFilter())) == {cid, other}
    assert ls(pb.ContainerFilter(id=cid[:10])) == [cid]
    assert ls(pb.ContainerFilter(label_selector={"role": "app"})) == [cid]
    running = pb.ContainerFilter(state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))
    assert ls(running) == [cid]
    assert set(ls(pb.ContainerFilter(pod_sandbox_id=sid[:8]))) == {cid, other}
    assert ls(pb.ContainerFilter(pod_sandbox_id="ffff")) == []

    cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1))
    st = cri.status(cid, verbose=True)
    # pid POD: the container shares the sandbox's pid namespace, so sleep is no init there
    # and SIGTERM ends it.
    assert st.status.state == pb.CONTAINER_EXITED and st.status.exit_code == 143
    assert st.status.reason == "Error" and st.status.finished_at >= st.status.started_at
    assert json.loads(st.info["info"])["sandboxID"] == sid
    cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=1))  # idempotent

    cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))  # idempotent
    assert code_of(lambda: cri.status(cid)) == NOTFOUND
    assert ls(pb.ContainerFilter()) == [other]
    # Answered once durable; the rootfs, podkit's log dir and the record go in the
    # background (container_remove.py).
    client = cri.daemon.client(CRI_NS)
    wait_for(lambda: all(c.id != cid for c in client.containers.list(all=True)), what="the removal")
    assert log_path.exists(), "the kubelet's log file is the kubelet's to remove"
    assert not (cri.daemon.root / "containers" / cid).exists()
    assert not (cri.daemon.state / "containers" / cid).exists()


def test_exit_codes_and_reasons(cri: CRIClient) -> None:
    sid, scfg = cri.run_sandbox("codes")
    ok = cri.run(sid, scfg, "ok", ["true"])
    bad = cri.run(sid, scfg, "bad", ["sh", "-c", "exit 7"])
    assert (cri.wait_exited(ok).exit_code, cri.wait_exited(ok).reason) == (0, "Completed")
    st = cri.wait_exited(bad)
    assert (st.exit_code, st.reason) == (7, "Error")
    # A command that does not exist: the start fails, the container is not left running.
    nope = cri.create(sid, scfg, cri.container_config("nope", ["/no/such/binary"]))
    assert (
        code_of(lambda: cri.rt.StartContainer(pb.StartContainerRequest(container_id=nope)))
        != grpc.StatusCode.OK
    )
    st = cri.status(nope).status
    assert st.state == pb.CONTAINER_EXITED and st.reason == "StartError" and st.message
    # Out of memory: the kernel kills it, the status says OOMKilled.
    hog = cri.run(
        sid,
        scfg,
        "hog",
        ["sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"],
        linux=pb.LinuxContainerConfig(resources=pb.LinuxContainerResources(memory_limit_in_bytes=16 << 20)),
    )
    st = cri.wait_exited(hog, 60)
    assert st.reason == "OOMKilled" and st.exit_code == 137, st


def test_exec_sync(cri: CRIClient) -> None:
    sid, scfg = cri.run_sandbox("exec")
    cid = cri.run(sid, scfg, "sleeper", ["sleep", "1000"])
    r = cri.rt.ExecSync(
        pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo out; echo err >&2; exit 3"])
    )
    assert (r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 3)
    # The timeout kills the command: DeadlineExceeded, and no process remains.
    try:
        cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sleep", "77"], timeout=1), timeout=20)
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, e
    else:
        raise AssertionError("the timeout did not expire")

    def sleep77_gone() -> bool:
        r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["ps", "-o", "args"]))
        return b"sleep 77" not in r.stdout

    wait_for(sleep77_gone, 10, what="the timed-out exec to be killed")
    assert code_of(lambda: cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid))) == INVALID
    assert code_of(lambda: cri.rt.ExecSync(pb.ExecSyncRequest(container_id="nope", cmd=["true"]))) == NOTFOUND
    cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0))
    code = code_of(lambda: cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["true"])))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    # The URL RPCs check the container before the streaming server sees anything.
    assert code_of(lambda: cri.rt.Exec(pb.ExecRequest(container_id=cid, cmd=["sh"], stdout=True))) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    assert code_of(lambda: cri.rt.Attach(pb.AttachRequest(container_id="nope", stdout=True))) == NOTFOUND
    assert code_of(lambda: cri.rt.PortForward(pb.PortForwardRequest(pod_sandbox_id="nope"))) == NOTFOUND


def test_resources_update_and_security(cri: CRIClient) -> None:
    sid, scfg = cri.run_sandbox("res")
    res = pb.LinuxContainerResources(
        cpu_period=100000, cpu_quota=50000, cpu_shares=512, memory_limit_in_bytes=64 << 20, oom_score_adj=-999
    )
    sc = pb.LinuxContainerSecurityContext(
        capabilities=pb.Capability(drop_capabilities=["ALL"], add_capabilities=["NET_BIND_SERVICE"]),
        readonly_rootfs=True,
        no_new_privs=True,
        masked_paths=["/proc/kcore"],
        readonly_paths=["/proc/sys"],
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
    )
    cid = cri.run(
        sid,
        scfg,
        "limited",
        ["sleep", "1000"],
        linux=pb.LinuxContainerConfig(resources=res, security_context=sc),
    )
    info = json.loads(cri.status(cid, verbose=True).info["info"])
    spec = info["runtimeSpec"]
    lr = spec["linux"]["resources"]
    assert lr["memory"]["limit"] == 64 << 20 and lr["cpu"]["quota"] == 50000 and lr["cpu"]["shares"] == 512
    assert spec["root"]["readonly"] is True and spec["process"]["noNewPrivileges"] is True
    assert spec["process"]["capabilities"]["effective"] == ["CAP_NET_BIND_SERVICE"]
    assert spec["linux"]["maskedPaths"] == ["/proc/kcore"] and spec["linux"]["readonlyPaths"] == ["/proc/sys"]
    assert "seccomp" in spec["linux"]
    # -999 is refused by this host (no CAP_SYS_RESOURCE): clamped, the container runs.
    assert spec["process"]["oomScoreAdj"] >= -999
    r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "touch /x"]))
    assert r.exit_code != 0 and b"Read-only" in r.stderr

    cri.rt.UpdateContainerResources(
        pb.UpdateContainerResourcesRequest(
            container_id=cid,
            linux=pb.LinuxContainerResources(
                memory_limit_in_bytes=128 << 20, cpu_quota=20000, cpu_period=100000
            ),
        )
    )
    pid = info["pid"]
    cg = [line.split(":", 2) for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()]
    mem = next(p for _, c, p in cg if c == "memory")
    assert Path(f"/sys/fs/cgroup/memory{mem}/memory.limit_in_bytes").read_text().strip() == str(128 << 20)
    got = cri.status(cid).status.resources.linux
    assert (got.memory_limit_in_bytes, got.cpu_quota) == (128 << 20, 20000)
    bad = pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(cpuset_cpus="x-y")
    )
    assert code_of(lambda: cri.rt.UpdateContainerResources(bad)) == INVALID

    # Privileged needs a privileged sandbox.
    priv = pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(privileged=True))
    code = code_of(lambda: cri.create(sid, scfg, cri.container_config("priv", ["true"], linux=priv)))
    assert code == INVALID


def test_log_rotation_and_reopen(cri: CRIClient) -> None:
    sid, scfg = cri.run_sandbox("rot")
    cid = cri.run(sid, scfg, "ticker", ["sh", "-c", "while true; do echo tick; sleep 0.1; done"])
    log = Path(scfg.log_directory) / "ticker.log"
    wait_for(lambda: log.exists() and "tick" in log.read_text(), what="first ticks")
    log.rename(log.with_suffix(".log.1"))  # the kubelet's rotation
    cri.rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid))
    wait_for(lambda: log.exists() and "tick" in log.read_text(), what="ticks in the reopened log")
    cri.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0))
    code = code_of(lambda: cri.rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION


def test_stats_and_metrics(cri: CRIClient) -> None:
    sid, scfg = cri.run_sandbox("stats")
    cid = cri.run(sid, scfg, "busy", ["sh", "-c", "x=0; while true; do x=$((x+1)); done"])
    s1 = cri.rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
    assert s1.attributes.id == cid and s1.attributes.metadata.name == "busy"
    assert s1.memory.working_set_bytes.value > 0 and s1.cpu.usage_core_nano_seconds.value >= 0

    def burning() -> bool:
        s = cri.rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
        return s.cpu.usage_nano_cores.value > 0

    wait_for(burning, what="cpu usage in nano cores")
    ls = cri.rt.ListContainerStats(
        pb.ListContainerStatsRequest(filter=pb.ContainerStatsFilter(pod_sandbox_id=sid))
    )
    assert [s.attributes.id for s in ls.stats] == [cid]
    ps = cri.rt.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=sid)).stats
    assert ps.attributes.id == sid and ps.linux.memory.working_set_bytes.value > 0
    assert [c.attributes.id for c in ps.linux.containers] == [cid]
    assert ps.linux.network.default_interface.name == "eth0"
    lps = cri.rt.ListPodSandboxStats(pb.ListPodSandboxStatsRequest())
    assert [s.attributes.id for s in lps.stats] == [sid]
    names = [d.name for d in cri.rt.ListMetricDescriptors(pb.ListMetricDescriptorsRequest()).descriptors]
    assert "container_memory_working_set_bytes" in names
    m = cri.rt.ListPodSandboxMetrics(pb.ListPodSandboxMetricsRequest()).pod_metrics
    assert [p.pod_sandbox_id for p in m] == [sid] and m[0].container_metrics[0].container_id == cid
    code = code_of(lambda: cri.rt.CheckpointContainer(pb.CheckpointContainerRequest(container_id=cid)))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    upd = pb.UpdatePodSandboxResourcesRequest(pod_sandbox_id=sid)
    assert code_of(lambda: cri.rt.UpdatePodSandboxResources(upd)) == grpc.StatusCode.UNIMPLEMENTED
    upd = pb.UpdatePodSandboxResourcesRequest(pod_sandbox_id="nope")
    assert code_of(lambda: cri.rt.UpdatePodSandboxResources(upd)) == NOTFOUND


def test_container_events(cri: CRIClient) -> None:
    got: queue.Queue[pb.ContainerEventResponse] = queue.Queue()
    stream = cri.rt.GetContainerEvents(pb.GetEventsRequest())

    def reader() -> None:
        try:
            for ev in stream:
                got.put(ev)
        except grpc.RpcError:
            pass

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sid, scfg = cri.run_sandbox("events")
    cid = cri.run(sid, scfg, "short", ["true"])
    cri.wait_exited(cid)
    cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    seen: list[tuple[str, int]] = []

    def all_four() -> bool:
        while not got.empty():
            ev = got.get()
            seen.append((ev.container_id, ev.container_event_type))
            if ev.container_id == cid and ev.container_event_type == pb.CONTAINER_STARTED_EVENT:
                assert ev.pod_sandbox_status.id == sid
        mine = [k for c, k in seen if c == cid]
        return mine == [
            pb.CONTAINER_CREATED_EVENT,
            pb.CONTAINER_STARTED_EVENT,
            pb.CONTAINER_STOPPED_EVENT,
            pb.CONTAINER_DELETED_EVENT,
        ]

    wait_for(all_four, what=lambda: f"the container's four events, got {seen}")
    assert (sid, pb.CONTAINER_STARTED_EVENT) in seen  # the sandbox's own
    stream.cancel()
    t.join(10)


def test_create_bad_requests(cri: CRIClient) -> None:
    sid, scfg = cri.run_sandbox("bad")

    def create(cfg: pb.ContainerConfig, sandbox: str = sid) -> None:
        cri.create(sandbox, scfg, cfg)

    assert code_of(lambda: create(cri.container_config("x", ["true"]), "nope")) == NOTFOUND
    assert code_of(lambda: create(cri.container_config("x", ["true"], image="no/such:image"))) == NOTFOUND
    assert code_of(lambda: create(pb.ContainerConfig(image=pb.ImageSpec(image=BUSYBOX)))) == INVALID
    assert code_of(lambda: create(cri.container_config("x", ["true"], image=""))) == INVALID
    assert code_of(lambda: create(cri.container_config("x", ["true"], log_path="/abs.log"))) == INVALID
    assert code_of(lambda: create(cri.container_config("x", ["true"], log_path="../up.log"))) == INVALID
    rel = [pb.Mount(container_path="relative", host_path="/tmp")]
    assert code_of(lambda: create(cri.container_config("x", ["true"], mounts=rel))) == INVALID
    env = [pb.KeyValue(key="A=B", value="c")]
    assert code_of(lambda: create(cri.container_config("x", ["true"], envs=env))) == INVALID
    sc = pb.LinuxContainerSecurityContext(
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref="/no/such.json")
    )
    assert (
        code_of(
            lambda: create(
                cri.container_config("x", ["true"], linux=pb.LinuxContainerConfig(security_context=sc))
            )
        )
        == INVALID
    )
    try:
        create(cri.container_config("x", ["true"], working_dir="rel"))
    except grpc.RpcError as e:
        assert e.code() == INVALID and "working_dir" in (e.details() or "")
    # Nothing was made.
    assert cri.rt.ListContainers(pb.ListContainersRequest()).containers == []
    assert [c.infra for c in cri.daemon.client(CRI_NS).containers.list(all=True)] == [True]
    for call in (
        lambda: cri.rt.StartContainer(pb.StartContainerRequest(container_id="nope")),
        lambda: cri.rt.StopContainer(pb.StopContainerRequest(container_id="nope")),
        lambda: cri.rt.ContainerStats(pb.ContainerStatsRequest(container_id="nope")),
        lambda: cri.rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id="nope")),
        lambda: cri.rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(container_id="nope")),
    ):
        assert code_of(call) == NOTFOUND
    # podkit's own infra container is no CRI container.
    infra = cri.daemon.client(CRI_NS).containers.list(all=True)[0].id
    assert code_of(lambda: cri.status(infra)) == NOTFOUND


def test_images(
    cri: CRIClient, registry: RegistryServer, auth_registry: RegistryServer, workdir: Path
) -> None:
    imgs = cri.img.ListImages(pb.ListImagesRequest()).images
    bb = next(i for i in imgs if BUSYBOX in i.repo_tags)
    assert bb.id.startswith("sha256:") and bb.size > 0
    st = cri.img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="busybox"), verbose=True))
    assert st.image.id == bb.id and "imageSpec" in json.loads(st.info["info"])
    assert not cri.img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="no/such:1"))).HasField(
        "image"
    )
    fs = cri.img.ImageFsInfo(pb.ImageFsInfoRequest()).image_filesystems[0]
    assert fs.used_bytes.value > 0 and fs.inodes_used.value > 0

    skopeo_push(build_layout(workdir / "oci"), registry, "cri/app:1")
    ref = f"{registry.host}/cri/app:1"
    pulled = cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref))).image_ref
    assert pulled.startswith("sha256:")
    got = cri.img.ListImages(
        pb.ListImagesRequest(filter=pb.ImageFilter(image=pb.ImageSpec(image=ref)))
    ).images
    assert [i.id for i in got] == [pulled]

    # Credentials: wrong ones are refused, right ones (user/password or auth) work.
    skopeo_push(build_layout(workdir / "oci2"), auth_registry, "priv:1")
    pref = f"{auth_registry.host}/priv:1"
    wrong = pb.AuthConfig(username=USER, password="wrong")
    code = code_of(lambda: cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=pref), auth=wrong)))
    assert code != grpc.StatusCode.OK
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    r = cri.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=pref), auth=pb.AuthConfig(auth=auth)))
    assert r.image_ref.startswith("sha256:")
    bad = pb.PullImageRequest(image=pb.ImageSpec(image=pref), auth=pb.AuthConfig(auth="!!notbase64"))
    assert code_of(lambda: cri.img.PullImage(bad)) == INVALID
    assert code_of(lambda: cri.img.PullImage(pb.PullImageRequest())) == INVALID

    cri.img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=pulled)))
    cri.img.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=pulled)))  # idempotent
    assert not cri.img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=ref))).HasField("image")
    assert os.path.exists(cri.daemon.root)
