"""Pods on pre-warmed network sandboxes (issue 8 item 1): a pod on one network takes an
attached netns from the pool and pins it as its own (``<state>/netns/pod-<id>``), its
published ports added on top; the pod has its address, routes, loopback and port; a
SIGKILL of podkitd leaves the pod its network (the pool's recovery counts pod holders);
rm, stop --release-network and the CRI's StopPodSandbox/RemovePodSandbox give the
sandbox back once, leaving no pin, veth, lease or rule. The release runs in the
background (issue 8 item 2): rm returns while its DEL still waits, a new pod never gets
a sandbox being released, and a SIGKILL in between leaves it to the next start.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cri_api.v1 import api_pb2 as pb

from tests.fixtures.cri import BUSYBOX, CRI_CONFIG, CRI_NS, CRIClient
from tests.fixtures.images import import_busybox
from tests.fixtures.network import can_listen, iptables_lines, leases, links_on
from tests.helpers import Daemon, served, wait_for

pytestmark = pytest.mark.root

HTTPD = "mkdir -p /www && echo from-pod-pool > /www/i && exec httpd -f -p 8080 -h /www"


def _pool(d: Daemon) -> dict[str, Any]:
    info: dict[str, Any] = d.client().info()["networks"]["sandbox_pool"]
    return info


def _free(d: Daemon, network: str = "podkit") -> int:
    return int(_pool(d)["free"].get(network, 0))


def _pool_pins(d: Daemon) -> dict[int, str]:
    """The pool's pins by the inode of the netns each holds -> sandbox id."""
    p = d.state / "netns"
    if not p.is_dir():
        return {}
    return {os.stat(x).st_ino: x.name[len("pool-") :] for x in p.iterdir() if x.name.startswith("pool-")}


def _pins(d: Daemon) -> list[str]:
    p = d.state / "netns"
    return sorted(x.name for x in p.iterdir()) if p.is_dir() else []


def _released(d: Daemon) -> bool:
    """No release under way, nothing held."""
    p = _pool(d)
    return int(p["releasing"]) == 0 and int(p["in_use"]) == 0


def _cni_plugins_of(d: Daemon) -> list[int]:
    """CNI plugins running for this daemon's namespaces (their CNI_NETNS is under its state)."""
    needle = f"CNI_NETNS={d.state}/".encode()
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            env = Path(f"/proc/{e}/environ").read_bytes()
        except OSError:
            continue
        if any(v.startswith(needle) for v in env.split(b"\0")):
            out.append(int(e))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sandbox_of(d: Daemon, pod: dict[str, Any]) -> str:
    """The sandbox whose netns the pod's pin holds (one the pool made), else ''."""
    ino = os.stat(pod["netns_path"]).st_ino
    return _pool_pins(d).get(ino, "")


@pytest.fixture
def pool_daemon(workdir: Path, busybox_tarball: Path) -> Iterator[Daemon]:
    d = Daemon(workdir, pool_size=2).start()
    try:
        import_busybox(d, busybox_tarball)
        yield d
    finally:
        if d.proc is not None:
            c = d.client()
            for p in c.pods.list():
                c.pods.remove(p.id, force=True, timeout=0)
        d.stop()
        try:
            # a graceful stop leaves nothing to nobody
            assert _pins(d) == [] and leases(d.root / "networks" / "ipam") == []
            assert links_on(d.bridge) == []
        finally:
            d.drop_host_network()


def test_pod_takes_a_warm_sandbox_and_keeps_it_across_a_crash(pool_daemon: Daemon) -> None:
    d, c = pool_daemon, pool_daemon.client()
    wait_for(lambda: _free(d) == 2, what="the pool to fill")
    warm = _pool_pins(d)
    port = _free_port()
    pod = c.pods.create("web", ports=[f"127.0.0.1:{port}:8080"])
    p = c.pods.inspect(pod.id)
    # the pod's own pin holds a netns the pool made (no CNI ADD of its own)
    assert p["netns_path"] == str(d.state / "netns" / f"pod-{pod.id}")
    sid = _sandbox_of(d, p)
    assert sid and sid in warm.values(), (p["netns_path"], warm)
    assert _pool(d)["in_use"] == 1
    ip = p["ips"][0].split("/")[0]
    assert p["ports"] and int(p["ports"][0]["host_port"]) == port, p["ports"]
    # the network lists the pod, not the sandboxes
    atts = c.networks.inspect("podkit")["attachments"]
    assert [(a["owner_id"], a["kind"]) for a in atts] == [(pod.id, "pod")], atts
    wait_for(lambda: _free(d) == 2, what="the pool to refill")

    c.containers.create("busybox", ["sh", "-c", HTTPD], name="srv", pod="web")
    c.pods.start("web")
    addr = c.containers.exec("srv", ["ip", "-4", "-o", "addr", "show", "eth0"]).output.decode()
    assert f"{ip}/" in addr, addr
    routes = c.containers.exec("srv", ["ip", "route"]).output.decode()
    assert "default via" in routes, routes
    lo = c.containers.exec("srv", ["ip", "-o", "link", "show", "lo"]).output.decode()
    assert "UP" in lo, lo
    wait_for(lambda: served(port, "from-pod-pool"), 30, what="httpd through the pod's published port")
    assert iptables_lines(sid) and not can_listen("127.0.0.1", port)  # DNAT'd and reserved

    # SIGKILL of podkitd: the containers' recovery runs first and must leave the pod's
    # sandbox alone; the pods' recovery vouches for it.
    nleases = len(leases(d.root / "networks" / "ipam"))
    d.kill()
    d.start()
    assert _pool(d)["in_use"] == 1 and sid in _pool_pins(d).values()
    assert _sandbox_of(d, c.pods.inspect(pod.id)) == sid
    assert len(leases(d.root / "networks" / "ipam")) == nleases
    wait_for(lambda: served(port, "from-pod-pool"), 30, what="the published port after the restart")
    assert c.containers.exec("srv", ["ip", "-4", "-o", "addr", "show", "eth0"]).exit_code == 0

    # rm gives it back: no pin (the pod's or the pool's), lease, veth or rule of it
    c.pods.remove("web", force=True)
    assert _pool(d)["in_use"] == 0 and f"pod-{pod.id}" not in _pins(d)
    # the sandbox's own release finishes in the background
    wait_for(lambda: _released(d) and sid not in _pool_pins(d).values(), what="the sandbox's release")
    assert not [ln for ln in leases(d.root / "networks" / "ipam") if ip in ln]
    assert iptables_lines(sid) == [] and can_listen("127.0.0.1", port)
    wait_for(lambda: _free(d) == 2, what="the pool to stay filled")
    assert len(links_on(d.bridge)) == 2 and len(leases(d.root / "networks" / "ipam")) == 2


def test_pod_sandbox_release_at_stop_and_gone_holders(pool_daemon: Daemon) -> None:
    """stop --release-network gives the sandbox back and the next start takes another;
    a sandbox held by a pod that no record names (a crash between the take and the pod's
    record) is released at the next start, and one pod's sandbox is not another's."""
    d, c = pool_daemon, pool_daemon.client()
    wait_for(lambda: _free(d) == 2, what="the pool to fill")
    pod = c.pods.create("rel", start=True)
    first = _sandbox_of(d, c.pods.inspect(pod.id))
    assert first
    c.pods.stop("rel", release_network=True)
    p = c.pods.inspect(pod.id)
    assert p["netns_path"] == "" and p["ips"] == [] and _pool(d)["in_use"] == 0
    assert f"pod-{pod.id}" not in _pins(d)
    # the sandbox's own release finishes in the background
    wait_for(lambda: _released(d) and first not in _pool_pins(d).values(), what="the release")
    wait_for(lambda: _free(d) == 2, what="the refill")
    c.pods.start("rel")
    second = _sandbox_of(d, c.pods.inspect(pod.id))
    assert second and second != first and _pool(d)["in_use"] == 1

    # a crash after a take whose pod was never recorded: its holder is no pod
    wait_for(lambda: _free(d) == 2, what="the refill")
    d.kill()
    db = sqlite3.connect(d.root / "metadata.db")
    with db:
        [(stray,)] = db.execute("SELECT id FROM net_sandboxes WHERE holder = '' LIMIT 1").fetchall()
        db.execute("UPDATE net_sandboxes SET holder = ?, kind = 'pod' WHERE id = ?", ("f" * 64, stray))
    db.close()
    d.start()
    assert stray not in _pool_pins(d).values() and _pool(d)["in_use"] == 1
    assert _sandbox_of(d, c.pods.inspect(pod.id)) == second
    c.pods.remove("rel", force=True)
    assert _pool(d)["in_use"] == 0 and f"pod-{pod.id}" not in _pins(d)


def test_pod_on_a_user_network_answers_to_its_names(pool_daemon: Daemon) -> None:
    """On a user network the pod's warm sandbox answers to the pod's name and its
    members' names (aardvark-dns renamed through the sandbox), and its resolv.conf
    names the gateway."""
    from podkit.network.names import find_binary
    from tests.fixtures.network import free_network

    d, c = pool_daemon, pool_daemon.client()
    br, sub = free_network()
    gw = sub.replace(".0/24", ".1")
    c.networks.create("podnet", subnet=sub, bridge=br)
    try:
        # the first start on it attaches the usual way and has its pool filled
        peer = c.containers.run("busybox", ["sleep", "300"], network="podnet", name="peer")
        wait_for(lambda: _free(d, "podnet") == 2, what="the user network's pool to fill")
        pod = c.pods.create("named", network="podnet")
        p = c.pods.inspect(pod.id)
        sid = _sandbox_of(d, p)
        assert sid and p["ips"][0].startswith(sub.rsplit(".", 1)[0] + "."), p
        ip = p["ips"][0].split("/")[0]
        c.containers.create("busybox", ["sleep", "300"], name="member", pod="named")
        c.pods.start("named")
        if find_binary() is not None:
            resolv = c.containers.exec("member", ["cat", "/etc/resolv.conf"]).output.decode()
            assert f"nameserver {gw}" in resolv.splitlines(), resolv
            for name in ("named", "member", pod.id[:12]):
                r = c.containers.exec(peer.id, ["nslookup", name, gw])
                assert r.exit_code == 0 and ip in r.output.decode(), (name, r.output)
        c.pods.remove("named", force=True)
        c.containers.remove(peer.id, force=True)
        wait_for(lambda: _pool(d)["in_use"] == 0, what="the releases")
    finally:
        c.networks.remove("podnet")
    assert links_on(br) == []


def test_cri_sandbox_takes_a_warm_sandbox(workdir: Path, busybox_tarball: Path) -> None:
    """RunPodSandbox goes through the pods service: it takes a warm sandbox; its IP is
    the sandbox's; StopPodSandbox gives it back (the kubelet's expectation), and a
    RemovePodSandbox without a stop (in the background) too."""
    (workdir / "d").mkdir()
    d = Daemon(workdir / "d", extra_config=CRI_CONFIG, pool_size=1).start()
    cri = None
    try:
        import_busybox(d, busybox_tarball, ref=BUSYBOX, namespace=CRI_NS)
        cri = CRIClient(d, workdir / "podlogs")
        cri.wait_up()
        wait_for(lambda: _free(d) == 1, what="the pool to fill")
        warm = set(_pool_pins(d).values())
        sid, _ = cri.run_sandbox("web")
        st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
        pod = d.client(CRI_NS).pods.inspect(sid)
        taken = _sandbox_of(d, pod)
        assert taken in warm and st.network.ip == pod["ips"][0].split("/")[0], (taken, warm)
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        assert _pool(d)["in_use"] == 0 and f"pod-{sid}" not in _pins(d)
        wait_for(lambda: _released(d) and taken not in _pool_pins(d).values(), what="the release")
        assert not [ln for ln in leases(d.root / "networks" / "ipam") if st.network.ip in ln]
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))

        wait_for(lambda: _free(d) == 1, what="the refill")
        other, _ = cri.run_sandbox("db")
        taken = _sandbox_of(d, d.client(CRI_NS).pods.inspect(other))
        assert taken and _pool(d)["in_use"] == 1
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=other))
        wait_for(
            lambda: _released(d) and f"pod-{other}" not in _pins(d) and taken not in _pool_pins(d).values(),
            what="the background removal's release",
        )
        wait_for(lambda: _free(d) == 1, what="the refill")
        assert len(links_on(d.bridge)) == 1 and len(leases(d.root / "networks" / "ipam")) == 1
    finally:
        if cri is not None:
            cri.remove_all()
            cri.close()
        d.stop()
        try:
            assert _pins(d) == [] and leases(d.root / "networks" / "ipam") == []
        finally:
            d.drop_host_network()


def test_pod_rm_releases_in_the_background_and_a_crash_leaves_nothing(pool_daemon: Daemon) -> None:
    """pod rm returns while its sandbox's DEL still waits (the test holds host-local's
    lock): the release is on record, the sandbox no one's — the next pod, of the same
    name, gets another — and a SIGKILL of podkitd then leaves it to the next start,
    which releases it: no pin, veth, lease or rule; the live pod keeps its own."""
    d, c = pool_daemon, pool_daemon.client()
    wait_for(lambda: _free(d) == 2, what="the pool to fill")
    port = _free_port()
    pod = c.pods.create("gone", ports=[f"127.0.0.1:{port}:8080"])
    p = c.pods.inspect(pod.id)
    sid, ip = _sandbox_of(d, p), p["ips"][0].split("/")[0]
    assert sid and iptables_lines(sid)
    wait_for(lambda: _free(d) == 2, what="the refill")
    lock = d.root / "networks" / "ipam" / "podkit" / "lock"
    assert lock.is_file()
    fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    ex = ThreadPoolExecutor(1)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # host-local's DEL (and ADD) wait for it
        ex.submit(c.pods.remove, "gone", True).result(timeout=30)
        assert _pool(d)["releasing"] == 1 and _pool(d)["in_use"] == 0
        assert c.pods.list() == [] and f"pod-{pod.id}" not in _pins(d)
        assert sid in _pool_pins(d).values()  # still being released
        again = c.pods.create("gone")
        other = _sandbox_of(d, c.pods.inspect(again.id))
        assert other and other != sid, (other, sid)
        d.kill()
        # the plugins the dead daemon left waiting for the lock (a DEL, a refill's ADD)
        plugins = _cni_plugins_of(d)
        assert plugins
        for pid in plugins:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _cni_plugins_of(d), what="the orphaned plugins to end")
    finally:
        os.close(fd)
        ex.shutdown(wait=True)
    db = sqlite3.connect(d.root / "metadata.db")
    with db:
        kinds = db.execute("SELECT kind FROM net_sandboxes WHERE id = ?", (sid,)).fetchall()
    db.close()
    assert kinds == [("releasing",)], kinds  # the crash hit the release under way

    d.start()
    assert _pool(d)["releasing"] == 0 and _pool(d)["in_use"] == 1
    assert sid not in _pool_pins(d).values()
    assert not [ln for ln in leases(d.root / "networks" / "ipam") if ip in ln]
    assert iptables_lines(sid) == [] and can_listen("127.0.0.1", port)
    assert _sandbox_of(d, c.pods.inspect(again.id)) == other
    wait_for(lambda: _free(d) == 2, what="the pool to refill")
    c.pods.remove("gone", force=True)
    wait_for(lambda: _released(d) and other not in _pool_pins(d).values(), what="the release")
    assert len(links_on(d.bridge)) == 2 and len(leases(d.root / "networks" / "ipam")) == 2


def test_pods_removed_in_a_row_free_each_sandbox_once(pool_daemon: Daemon) -> None:
    """Pods removed one after another, each followed at once by a new pod publishing
    the same port (which waits for the old one's release, not a clash): every new pod
    gets a sandbox of its own, never one being released, and keeps its address, rules
    and lease while the others' go; at the end the pool holds its size, nothing more."""
    d, c = pool_daemon, pool_daemon.client()
    wait_for(lambda: _free(d) == 2, what="the pool to fill")
    ports = [_free_port() for _ in range(4)]
    first = [c.pods.create(f"a{i}", ports=[f"127.0.0.1:{port}:8080"]).id for i, port in enumerate(ports)]
    old = {_sandbox_of(d, c.pods.inspect(pid)) for pid in first}
    assert "" not in old and len(old) == 4
    second = []
    for i, port in enumerate(ports):
        c.pods.remove(f"a{i}", force=True)
        second.append(c.pods.create(f"a{i}", ports=[f"127.0.0.1:{port}:8080"]).id)
    new = {pid: _sandbox_of(d, c.pods.inspect(pid)) for pid in second}
    assert "" not in new.values() and len(set(new.values())) == 4 and not old & set(new.values())
    wait_for(lambda: _pool(d)["releasing"] == 0, what="the releases")
    ipam = d.root / "networks" / "ipam"
    for pid, sid in new.items():
        p = c.pods.inspect(pid)
        ip = p["ips"][0].split("/")[0]
        assert sid in _pool_pins(d).values() and iptables_lines(sid), sid
        assert [ln for ln in leases(ipam) if ip in ln], (ip, leases(ipam))
        assert int(p["ports"][0]["host_port"]) in ports
    for sid in old:
        assert sid not in _pool_pins(d).values() and iptables_lines(sid) == []
    for i in range(4):
        c.pods.remove(f"a{i}", force=True)
    wait_for(lambda: _released(d) and _free(d) == 2, what="the releases and the pool")
    assert not set(new.values()) & set(_pool_pins(d).values())
    assert all(can_listen("127.0.0.1", port) for port in ports)
    assert len(links_on(d.bridge)) == 2 and len(leases(ipam)) == 2
    assert "releasing network sandbox" not in d.log.read_text()  # no failed DEL or unpin
