"""Pods, for real: runc + conmon + CNI + overlayfs under a podkitd of the test's own.

What a pod shares (net, ipc, uts, optionally pid) and what it does not (mnt, pid by
default), its cgroup, its files, published ports, complete clean-up, and recovery
after podkitd is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podkit.errors import InvalidArgument, NotFound
from tests.fixtures.network import iptables_lines, leases
from tests.helpers import Daemon, wait_for
from tests.leaks import mounts_under, processes_mentioning

HTTPD = "mkdir -p /www && echo hello-from-{name} > /www/index.html && exec httpd -f -p 8080 -h /www"


@pytest.fixture(autouse=True)
def _remove_leftovers(daemon: Daemon) -> Iterator[None]:
    """Even when a test fails half-way: remove its pods and containers while podkitd runs."""
    yield
    if daemon.proc is None or daemon.proc.poll() is not None:
        return
    for ns in ("default", "team-a", "team-b", "team-c"):
        c = daemon.client(ns)
        for p in c.pods.list():
            with contextlib.suppress(Exception):
                c.pods.remove(p.id, force=True, timeout=0)
        for x in c.containers.list(all=True):
            with contextlib.suppress(Exception):
                c.containers.remove(x.id, force=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(c: Any, ctr: str, script: str) -> tuple[int, str]:
    r = c.containers.exec(ctr, ["sh", "-c", script])
    return r.exit_code, (r.stdout + r.stderr).decode()


def fetch(c: Any, ctr: str, url: str) -> str:
    """wget from inside a container, retried until the server is up (a wait, not a sleep)."""

    def get() -> str:
        # (busybox 1.35's wget -T crashes: rely on the kernel's connect timeout instead)
        rc, out = sh(c, ctr, f"wget -qO- {url}")
        return out if rc == 0 else ""

    return wait_for(get, 30, interval=0.1, what=f"{url} from {ctr}")


def pod_cgroup_dir(cgroup_path: str, controller: str = "memory") -> Path:
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    base = Path("/sys/fs/cgroup") if v2 else Path("/sys/fs/cgroup") / controller
    return base / cgroup_path.strip("/")


def assert_pod_gone(daemon: Daemon, pod: dict[str, Any]) -> None:
    """Nothing of the pod is left: containers, processes, CNI, netns, mounts, cgroup, files."""
    c = daemon.client()
    pod_id = pod["id"]
    assert not [x for x in c.containers.list(all=True) if x.pod_id == pod_id]
    assert not processes_mentioning(pod_id)
    for cid in (x["id"] for x in pod["containers"]):
        assert not processes_mentioning(cid), f"conmon of {cid[:12]} still runs"
    assert not os.path.exists(pod["netns_path"] or "/nonexistent")
    assert not [
        ln
        for ln in leases(daemon.root / "networks" / "ipam")
        if any(ip.split("/")[0] in ln for ip in pod["ips"])
    ]
    assert not iptables_lines(pod_id)
    assert not mounts_under(Path(pod["state_dir"]))
    assert not os.path.exists(pod["state_dir"])
    assert not pod_cgroup_dir(pod["cgroup_path"]).exists()


def test_pod_shares_net_ipc_uts_not_files_or_processes(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    port, port2 = free_port(), free_port()
    r = daemon.cli(
        "pod",
        "create",
        "--name",
        "web",
        "--hostname",
        "webhost",
        "-p",
        f"127.0.0.1:{port}:8080",
        "-p",
        f"{port2}:8080",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--add-host",
        "db:10.9.9.9",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "svc.local",
        check=True,
    )
    pod_id = r.stdout.strip()
    assert len(pod_id) == 64
    c.containers.create(busybox_image, ["sh", "-c", HTTPD.format(name="web")], name="srv", pod="web")
    c.containers.create(busybox_image, ["sleep", "600"], name="cli", pod="web")
    daemon.cli("pod", "start", "web", check=True)
    [row] = json.loads(daemon.cli("pod", "ls", "--format", "json", check=True).stdout)
    assert row["status"] == "Running" and row["num_containers"] == 3
    assert daemon.cli("pod", "ls", "-q", check=True).stdout.split() == [pod_id]

    # net: the client reaches the server on the pod's shared localhost.
    assert fetch(c, "cli", "http://127.0.0.1:8080/").strip() == "hello-from-web"
    # ipc: /dev/shm is one tmpfs for the pod.
    assert sh(c, "srv", "echo shared > /dev/shm/note")[0] == 0
    assert sh(c, "cli", "cat /dev/shm/note") == (0, "shared\n")
    # uts: one hostname.
    assert sh(c, "srv", "hostname")[1].strip() == sh(c, "cli", "hostname")[1].strip() == "webhost"
    # mnt is not shared: a file in one root is absent from the other.
    assert sh(c, "srv", "echo mine > /only-here")[0] == 0
    assert sh(c, "cli", "test -e /only-here")[0] == 1
    # pid is not shared by default: the client sees no httpd, and is PID 1 itself.
    rc, ps = sh(c, "cli", "ps -o pid,args")
    assert "httpd" not in ps and "catatonit" not in ps
    assert any(ln.split()[:2] == ["1", "sleep"] for ln in ps.splitlines())

    # The pod's /etc/hosts and resolv.conf.
    hosts = sh(c, "cli", "cat /etc/hosts")[1]
    pod = c.pods.inspect("web")
    ip = pod["ips"][0].split("/")[0]
    assert f"{ip}\twebhost" in hosts and "srv" in hosts and "cli" in hosts
    assert "10.9.9.9\tdb" in hosts
    resolv = sh(c, "cli", "cat /etc/resolv.conf")[1]
    assert "nameserver 10.0.0.53" in resolv and "search svc.local" in resolv
    assert "127.0.0." not in resolv

    # The published port answers on the host's loopback.
    body = wait_for(
        lambda: _host_get(f"http://127.0.0.1:{port}/"),
        30,
        what=lambda: f"published port ({_port_state(c, port)})",
    )
    assert body.strip() == "hello-from-web"

    # The pod's cgroup parents the containers' cgroups and carries the pod's limit.
    cg = pod["cgroup_path"]
    assert (
        int((pod_cgroup_dir(cg) / ("memory.max" if _v2() else "memory.limit_in_bytes")).read_text())
        == 64 * 1024 * 1024
    )
    if _v2():
        assert (pod_cgroup_dir(cg) / "cpu.max").read_text().split() == ["50000", "100000"]
    else:
        assert (pod_cgroup_dir(cg, "cpu") / "cpu.cfs_quota_us").read_text().strip() == "50000"
    srv = c.containers.inspect("srv")
    assert f"{cg}/{srv['id']}" in Path(f"/proc/{srv['pid']}/cgroup").read_text()

    # Another pod reaches this one at its IP.
    c.pods.create("other", start=False)
    c.containers.create(busybox_image, ["sleep", "600"], name="peer", pod="other")
    c.pods.start("other")
    assert fetch(c, "peer", f"http://{ip}:8080/").strip() == "hello-from-web"
    # ... and through the port it publishes on the host (the host's side of the bridge).
    assert fetch(c, "peer", f"http://{pod['gateway']}:{port2}/").strip() == "hello-from-web"

    # top and logs cover the pod's containers.
    top = daemon.cli("pod", "top", "web", check=True).stdout
    assert any("srv" in ln and "httpd" in ln for ln in top.splitlines())
    c.containers.create(busybox_image, ["echo", "said-something"], name="talker", pod="web")
    c.containers.start("talker")
    wait_for(
        lambda: any(
            x["line"].strip() == "said-something" and x["container"] == "talker" for x in c.pods.logs("web")
        ),
        10,
        what="talker's log line",
    )
    st = next(iter(c.pods.stats("web")))
    assert st["memory_limit"] == 64 * 1024 * 1024 and st["pids"] >= 3
    # ... and through the CLI.
    out = daemon.cli("pod", "logs", "web", check=True).stdout
    assert "talker said-something" in out
    [st] = json.loads(daemon.cli("pod", "stats", "--no-stream", "--format", "json", "web", check=True).stdout)
    assert {x["container"] for x in st["containers"]} >= {"web-infra", "srv", "cli"}
    table = daemon.cli("pod", "stats", "--no-stream", "web", check=True).stdout
    assert "/ 67.1MB" in table  # the pod's 64 MiB limit, in the table's decimal units
    assert json.loads(daemon.cli("pod", "inspect", "web", check=True).stdout)["hostname"] == "webhost"

    # rm without -f refuses while containers run; -f removes every trace.
    r = daemon.cli("pod", "rm", "web")
    assert r.returncode != 0 and "running containers" in r.stderr
    pod = c.pods.inspect("web")
    assert len(leases(daemon.root / "networks" / "ipam")) == 2
    assert iptables_lines(pod_id)  # the portmap rules exist while the pod does
    daemon.cli("pod", "rm", "-f", "web", "other", check=True)
    assert_pod_gone(daemon, pod)
    assert c.pods.list() == [] and not leases(daemon.root / "networks" / "ipam")
    wait_for(lambda: _host_get(f"http://127.0.0.1:{port}/") == "", 30, what="the port to close")


def _host_get(url: str) -> str:
    try:
        return urllib.request.urlopen(url, timeout=2).read().decode()
    except OSError:
        return ""


def _port_state(c: Any, port: int) -> str:
    """What a failed wait on a published port reports: the pods' addresses and the
    host's NAT rules for the port (a missing DNAT, or one to an old address)."""
    pods = [(p.name, p.status, p.ips) for p in c.pods.list()]
    return f"pods {pods}, nat rules {iptables_lines(f'--dport {port} ', f'--dports {port}')}"


def _v2() -> bool:
    return Path("/sys/fs/cgroup/cgroup.controllers").exists()


def test_shared_pid_namespace_infra_is_pid1_and_reaps(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    daemon.cli("pod", "create", "--name", "pp", "--share", "net,ipc,uts,pid", "--shm-size", "2m", check=True)
    c.containers.create(busybox_image, ["sleep", "600"], name="a", pod="pp")
    c.containers.create(busybox_image, ["sleep", "700"], name="b", pod="pp")
    c.pods.start("pp")
    rc, ps = sh(c, "b", "ps -o pid,args")
    lines = [ln.split(None, 1) for ln in ps.splitlines()[1:]]
    assert sh(c, "a", "df -k /dev/shm | tail -1")[1].split()[1] == "2048"
    assert ["1", "/catatonit -P"] in lines, ps
    assert any(args == "sleep 600" for _, args in lines), ps  # a's process, seen from b
    # An orphan is re-parented to the infra (PID 1), which reaps it: no zombie stays.
    assert sh(c, "b", "(sleep 0.3 &) ; true")[0] == 0
    wait_for(lambda: "sleep 0.3" not in sh(c, "b", "ps -o args")[1], 30, what="the orphan to exit")
    assert " Z " not in sh(c, "b", "ps -o pid,stat,args")[1].replace("\n", " \n")
    # A restart of the pod re-pins the new infra's pid namespace for its containers.
    c.pods.restart("pp", timeout=1)
    rc, ps = sh(c, "a", "ps -o pid,args")
    assert "sleep 700" in ps and "/catatonit -P" in ps
    # pod logs merges the containers' lines in time order (a hand-off through the
    # shared /dev/shm fixes the order: a1, then b1, then a2).
    c.containers.create(
        busybox_image,
        [
            "sh",
            "-c",
            "echo a1; sleep 0.1; touch /dev/shm/go; while [ ! -e /dev/shm/b ]; do sleep 0.02; done; echo a2",
        ],
        name="la",
        pod="pp",
    )
    c.containers.create(
        busybox_image,
        ["sh", "-c", "while [ ! -e /dev/shm/go ]; do sleep 0.02; done; echo b1; sleep 0.1; touch /dev/shm/b"],
        name="lb",
        pod="pp",
    )
    c.containers.start("la")
    c.containers.start("lb")
    wait_for(lambda: c.containers.get("la").state == "exited", 30, what="la to finish")
    got = [(x["container"], x["line"].strip()) for x in c.pods.logs("pp")]
    assert got == [("la", "a1"), ("lb", "b1"), ("la", "a2")], got
    pod = c.pods.inspect("pp")
    c.pods.remove("pp", force=True)
    assert_pod_gone(daemon, pod)


def test_sigkill_mid_create_and_restart_recovers(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    # A pod that must survive the crash, running.
    c.pods.create("keep")
    c.containers.create(busybox_image, ["sleep", "600"], name="k", pod="keep")
    c.pods.start("keep")
    # A pod caught half-way: fully made, but its record still says "creating"
    # when podkitd dies (the last step of create is that record's update).
    c.pods.create("half", ports=[f"127.0.0.1:{free_port()}:80"])
    c.containers.create(busybox_image, ["sleep", "600"], name="h", pod="half")
    c.pods.start("half")
    half = c.pods.inspect("half")
    # And one caught half-way through its removal, its container still running.
    c.pods.create("going")
    c.containers.create(busybox_image, ["sleep", "600"], name="g", pod="going")
    c.pods.start("going")
    going = c.pods.inspect("going")
    daemon.kill()
    db = sqlite3.connect(daemon.root / "metadata.db")
    with db:
        db.execute("UPDATE pods SET state='creating' WHERE id=?", (half["id"],))
        db.execute("UPDATE pods SET state='removing' WHERE id=?", (going["id"],))
    db.close()
    # And a SIGKILL during a real create, at whatever step it reached.
    daemon.start()
    c = daemon.client()
    import threading

    def create() -> None:
        try:
            c.pods.create("racing", ports=[f"127.0.0.1:{free_port()}:81"])
        except Exception:
            pass

    t = threading.Thread(target=create)
    t.start()
    # "keep" has the one pin so far ("half" was undone by the restart's recovery).
    wait_for(
        lambda: len(list((daemon.state / "netns").glob("pod-*"))) >= 2,
        20,
        interval=0.005,
        what="the racing pod's netns",
    )
    daemon.kill()
    t.join()
    daemon.start()
    c = daemon.client()

    names = {p.name: p for p in c.pods.list()}
    assert "half" not in names and "going" not in names
    assert_pod_gone(daemon, half)
    assert_pod_gone(daemon, going)
    # The racing pod either finished before the kill (and is whole) or is gone entirely.
    if "racing" in names:
        assert names["racing"].status in ("Created", "Running")
        assert os.path.exists(names["racing"].netns_path)
    assert len(list((daemon.state / "netns").glob("pod-*"))) == len(names)
    assert len(list((daemon.state / "pods").iterdir())) == len(names)
    # The survivor is found in its true state and still works.
    assert names["keep"].status == "Running"
    assert sh(c, "k", "hostname")[0] == 0
    for p in list(names.values()):
        pod = c.pods.inspect(p.id)
        c.pods.remove(p.id, force=True)
        assert_pod_gone(daemon, pod)


def test_bad_input_is_refused_clearly(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    r = daemon.cli("pod", "inspect", "nope")
    assert r.returncode == 1 and "no such pod: nope" in r.stderr
    for args, needle in (
        (["pod", "create", "--share", "net,mnt"], "cannot share mnt"),
        (["pod", "create", "-p", "99999:80"], "1-65535"),
        (["pod", "create", "--network", "nonet"], "nonet"),
        (["pod", "create", "--memory", "lots"], "invalid --memory"),
    ):
        r = daemon.cli(*args)
        assert r.returncode == 125 and needle in r.stderr, (args, r.stderr)
    daemon.cli("pod", "create", "--name", "dup", check=True)
    r = daemon.cli("pod", "create", "--name", "dup")
    assert r.returncode == 125 and "already exists" in r.stderr
    r = daemon.cli("run", "-d", "--pod", "ghost", busybox_image, "true")
    assert r.returncode == 125 and "no such pod: ghost" in r.stderr
    with pytest.raises(InvalidArgument, match="publish them on the pod"):
        c.containers.create(busybox_image, ["true"], pod="dup", ports=["8080:80"])
    with pytest.raises(NotFound):
        c.pods.start("ghost")
    with pytest.raises(NotFound):
        next(iter(c.pods.stats("ghost")))
    with pytest.raises(NotFound):
        next(iter(c.pods.logs("ghost")))
    r = daemon.cli("rm", "-f", "dup-infra")
    assert r.returncode != 0 and "infra container of pod dup" in r.stderr
    # A failure late in create (the infra's name is taken, after the network is wired)
    # is undone entirely: no lease, no pin, no cgroup, no state dir, no record.
    c.containers.create(busybox_image, ["true"], name="clash-infra")
    leases_before = leases(daemon.root / "networks" / "ipam")
    port = free_port()
    r = daemon.cli("pod", "create", "--name", "clash", "-p", f"127.0.0.1:{port}:80")
    assert r.returncode == 125 and "clash-infra" in r.stderr, r.stderr
    assert leases(daemon.root / "networks" / "ipam") == leases_before
    assert not [ln for ln in iptables_lines(str(port)) if "dport" in ln]
    c.containers.remove("clash-infra")
    # Nothing half-made was left by the failures: one pod, one netns, one state dir.
    assert [p.name for p in c.pods.list()] == ["dup"]
    assert len(list((daemon.state / "netns").glob("pod-*"))) == 1
    assert len(list((daemon.state / "pods").iterdir())) == 1
    r = daemon.cli("pod", "prune", check=True)
    assert r.stdout.split() and c.pods.list() == []


def test_pods_live_in_podkit_namespaces(daemon: Daemon) -> None:
    """Pods live in a podkit namespace: the same name in two namespaces, no clash."""
    import time

    t0 = time.time()
    a = daemon.client("team-a")
    b = daemon.client("team-b")
    a.pods.create("same")
    b.pods.create("same")
    assert [p.name for p in a.pods.list()] == ["same"] and [p.name for p in b.pods.list()] == ["same"]
    assert a.pods.get("same").id != b.pods.get("same").id
    for cl in (a, b):
        cl.pods.remove("same")
    assert not list((daemon.state / "netns").glob("pod-*"))
    # Pods made concurrently (the first ones also build the infra image): all whole,
    # each with an address of its own.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as ex:
        made = list(ex.map(lambda i: daemon.client("team-c").pods.create(f"c{i}"), range(4)))
    c = daemon.client("team-c")
    assert len({p.ips[0] for p in made}) == 4
    from podkit.pods.infra import INFRA_REF

    assert [i.name for i in c.images.list(all=True) if "pause" in i.name] == [INFRA_REF]
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda p: daemon.client("team-c").pods.remove(p.id), made))
    assert c.pods.list() == [] and not list((daemon.state / "netns").glob("pod-*"))
    # Lifecycle events, per namespace.
    evs = list(a.events(since=t0, until=time.time(), type="pod"))
    assert [(e["action"], e["attributes"]["name"]) for e in evs] == [("create", "same"), ("remove", "same")]
    assert {e["namespace"] for e in evs} == {"team-a"}


def test_network_none_and_host(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    c.pods.create("lonely", network="none")
    c.containers.create(busybox_image, ["sleep", "600"], name="l1", pod="lonely")
    c.pods.create("hosty", network="host")
    c.containers.create(busybox_image, ["sleep", "600"], name="h1", pod="hosty")
    c.pods.start("lonely")
    c.pods.start("hosty")
    # none: a network namespace of the pod's own with loopback only, up.
    rc, devs = sh(c, "l1", "cat /proc/net/dev")
    names = {ln.split(":")[0].strip() for ln in devs.splitlines()[2:]}
    assert names == {"lo"}
    assert sh(c, "l1", "ip -o link show lo")[1].count("UP") >= 1
    assert c.pods.inspect("lonely")["ips"] == []
    # Starting a member of a stopped pod brings the pod's infra up first.
    c.pods.stop("lonely", timeout=0)
    assert c.pods.get("lonely").status == "Exited"
    daemon.cli("start", "l1", check=True)
    assert c.pods.get("lonely").status == "Running"
    # A removed member leaves the pod's /etc/hosts.
    c.containers.create(busybox_image, ["true"], name="l2", pod="lonely")
    hosts = Path(c.pods.inspect("lonely")["hosts_path"])
    assert "l2" in hosts.read_text()
    c.containers.remove("l2")
    assert "l2" not in hosts.read_text()
    # host: the host's own network namespace; no pin, no address of the pod's own.
    assert sh(c, "h1", "readlink /proc/self/ns/net")[1].strip() == os.readlink("/proc/self/ns/net")
    hosty = c.pods.inspect("hosty")
    assert hosty["netns_path"] == "" and hosty["ips"] == []
    # The host's pid and ipc namespaces (CRI NamespaceMode NODE, kube hostPID/hostIPC).
    c.pods.create("hostns", share=["net", "uts"], host_pid=True, host_ipc=True)
    c.containers.create(busybox_image, ["sleep", "600"], name="hn", pod="hostns")
    c.pods.start("hostns")
    for kind in ("pid", "ipc"):
        host_ns = os.readlink(f"/proc/self/ns/{kind}")
        assert sh(c, "hn", f"readlink /proc/self/ns/{kind}")[1].strip() == host_ns
    assert sh(c, "hn", "readlink /proc/self/ns/net")[1].strip() != os.readlink("/proc/self/ns/net")
    hostns = c.pods.inspect("hostns")
    c.pods.remove("hostns", force=True)
    assert_pod_gone(daemon, hostns)
    # A named network of the user's: the pod gets its address there.
    from tests.helpers import unique_network

    bridge, subnet = unique_network()
    c.networks.create("side", subnet=subnet, bridge=bridge)
    c.pods.create("sider", network="side")
    sider = c.pods.inspect("sider")
    assert sider["ips"][0].rsplit(".", 1)[0] == subnet.rsplit(".", 1)[0]
    # On two networks: one interface and one address on each, both in /etc/hosts.
    c.pods.create("both", network="bridge,side")
    c.containers.create(busybox_image, ["sleep", "600"], name="b1", pod="both")
    c.pods.start("both")
    both = c.pods.inspect("both")
    assert len(both["ips"]) == 2 and both["ips"][1].rsplit(".", 1)[0] == subnet.rsplit(".", 1)[0]
    assert {"eth0", "eth1"} <= set(sh(c, "b1", "ls /sys/class/net")[1].split())
    hosts = sh(c, "b1", "cat /etc/hosts")[1]
    assert all(f"{ip.split('/')[0]}\tboth" in hosts for ip in both["ips"])
    r = daemon.cli("pod", "create", "--network", "host,side")
    assert r.returncode == 125 and "stand alone" in r.stderr
    lonely = c.pods.inspect("lonely")
    for p in ("lonely", "hosty", "sider", "both"):
        c.pods.remove(p, force=True)
    c.networks.remove("side")
    for p in (lonely, hosty, sider, both):
        assert_pod_gone(daemon, p)


def test_after_a_reboot_start_rebuilds_the_sandbox(daemon: Daemon, busybox_image: str) -> None:
    """A reboot empties the state dir (/run): pins, mounts, runtime state. The pod record
    and CNI cache (persistent root) remain; `pod start` makes the sandbox again."""
    import shutil

    from tests.leaks import unmount_all_under

    c = daemon.client()
    port = free_port()
    c.pods.create("rb", ports=[f"127.0.0.1:{port}:8080"])
    c.containers.create(busybox_image, ["sh", "-c", HTTPD.format(name="rb")], name="rb-web", pod="rb")
    c.pods.start("rb")
    # A stop that gives the network back (the CRI's StopPodSandbox): no lease, no pin.
    c.pods.stop("rb", timeout=0, release_network=True)
    assert not leases(daemon.root / "networks" / "ipam")
    assert not list((daemon.state / "netns").glob("pod-*")) and c.pods.get("rb").ips == []
    assert not iptables_lines(c.pods.get("rb").id)
    c.pods.start("rb")
    assert fetch(c, "rb-web", "http://127.0.0.1:8080/").strip() == "hello-from-rb"
    body = wait_for(
        lambda: _host_get(f"http://127.0.0.1:{port}/"),
        30,
        what=lambda: f"the port again ({_port_state(c, port)})",
    )
    assert body.strip() == "hello-from-rb"
    c.pods.stop("rb", timeout=0)
    daemon.stop()
    unmount_all_under(daemon.state)
    shutil.rmtree(daemon.state)
    daemon.start()
    c = daemon.client()
    assert c.pods.get("rb").status == "Exited"
    assert not leases(daemon.root / "networks" / "ipam")  # the old lease was released
    pod = c.pods.start("rb")
    assert pod.status == "Running" and os.path.exists(pod.netns_path)
    body = wait_for(
        lambda: _host_get(f"http://127.0.0.1:{port}/"),
        30,
        what=lambda: f"the published port ({_port_state(c, port)})",
    )
    assert body.strip() == "hello-from-rb"
    assert sh(c, "rb-web", "hostname")[1].strip() == "rb"
    info = c.pods.inspect("rb")
    c.pods.remove("rb", force=True)
    assert_pod_gone(daemon, info)


def test_pod_sysctls_apply_inside_its_namespaces_only(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    host_port_start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()
    host_shmmni = Path("/proc/sys/kernel/shmmni").read_text()
    daemon.cli(
        "pod",
        "create",
        "--name",
        "tuned",
        "--sysctl",
        "net.ipv4.ip_unprivileged_port_start=80",
        "--sysctl",
        "kernel.shmmni=1234",
        check=True,
    )
    c.containers.create(busybox_image, ["sleep", "600"], name="t1", pod="tuned")
    c.pods.start("tuned")
    assert sh(c, "t1", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start") == (0, "80\n")
    assert sh(c, "t1", "cat /proc/sys/kernel/shmmni") == (0, "1234\n")
    # The host's own values are untouched.
    assert Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text() == host_port_start
    assert Path("/proc/sys/kernel/shmmni").read_text() == host_shmmni
    for bad, needle in (("kernel.panic=1", "not namespaced"), ("net.ipv4.ip_forward", "KEY=VALUE")):
        r = daemon.cli("pod", "create", "--sysctl", bad)
        assert r.returncode == 125 and needle in r.stderr, r.stderr
    r = daemon.cli("pod", "create", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1")
    assert r.returncode == 125 and "own net namespace" in r.stderr
    assert [p.name for p in c.pods.list()] == ["tuned"]
    c.pods.remove("tuned", force=True)


def test_pod_memory_limit_is_enforced_on_its_containers(daemon: Daemon, busybox_image: str) -> None:
    """The pod's --memory caps its containers together: going past it is an OOM kill."""
    c = daemon.client()
    pod = c.pods.create("small", memory="16m")
    # No limit of its own: only the pod's 16 MB stands between tail and 64 MB of zeros.
    c.containers.create(
        busybox_image, ["sh", "-c", "head -c 64m /dev/zero | tail >/dev/null"], name="hog", pod="small"
    )
    c.pods.start("small")
    hog = wait_for(
        lambda: (x := c.containers.get("hog")).state == "exited" and x, 30, what="the hog to be killed"
    )
    assert hog.exit_code == 137 and hog.oom_killed
    fail = pod_cgroup_dir(pod.cgroup_path) / ("memory.events" if _v2() else "memory.failcnt")
    assert fail.read_text().strip() not in ("0", "")
    c.pods.remove("small", force=True)
