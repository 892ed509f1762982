"""Published ports forwarded by podkit's own iptables rules (network/portfwd.py), with
real iptables and real traffic: from the host's loopback, hairpin, UDP; one
iptables-restore per add and per removal; conntrack; recovery after a crash; a user's CNI
file that lists portmap still gets portmap.

Traffic stays inside the namespaces and the bridge each test creates, plus 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podkit.network import PortMapping, parse_port_spec, portfwd
from tests.fixtures.network import NetEnv, can_listen, iptables_lines, uid
from tests.helpers import served, wait_for
from tests.test_network import get_in, serve_http, try_get

pytestmark = pytest.mark.root

_UDP_ECHO = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('0.0.0.0',int(sys.argv[1])))\n"
    "while True:\n"
    "    d,a=s.recvfrom(2048); s.sendto(b'echo:'+d,a)\n"
)


def _udp_ask(port: int, sport: int = 0, timeout: float = 0.5) -> str:
    """Send one datagram to 127.0.0.1:port (from a fixed source port if given); the reply."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", sport))
        s.settimeout(timeout)
        s.sendto(b"hi", ("127.0.0.1", port))
        try:
            return s.recvfrom(2048)[0].decode()
        except OSError:
            return ""


def _conntrack_udp(port: int) -> list[str]:
    text = Path("/proc/net/nf_conntrack").read_text() if Path("/proc/net/nf_conntrack").exists() else ""
    return [ln for ln in text.splitlines() if " udp " in ln and f"dport={port} " in ln]


def _count_restores(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The scripts podkit hands to iptables-restore for owners' rules (still run for real)."""
    calls: list[str] = []
    real = portfwd.restore

    async def counted(script: str) -> tuple[int, str]:
        calls.append(script)
        return await real(script)

    monkeypatch.setattr(portfwd, "restore", counted)
    return calls


def _guard_drops() -> int:
    """Packets the INPUT guard against outside packets to 127.0.0.0/8 dropped so far."""
    out = subprocess.run(["iptables", "-w", "-L", "INPUT", "-v", "-x", "-n"], capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if portfwd.LOCALNET_COMMENT in ln]
    assert len(lines) == 1, out.stdout
    return int(lines[0].split()[0])


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _on_loopback_port(netenv: NetEnv, prefix: str) -> tuple[str, str, dict[str, Any], int]:
    """A new owner (id from `prefix`) on the default network with its port 80 published
    on 127.0.0.1: (owner, netns path, attachment, host port)."""
    owner = uid(prefix)
    netenv.owners.append(owner)
    ns = netenv.mgr.create_netns(owner)
    [att] = netenv.run(netenv.mgr.attach(owner, ns, [], parse_port_spec("127.0.0.1::80")))
    return owner, ns, att, int(att["ports"][0]["host_port"])


def test_ports_are_podkits_rules_one_restore_each(netenv: NetEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    mgr = netenv.mgr
    srv, cli = uid("f0f0f0f0"), uid("c2c2c2c2")
    netenv.owners += [srv, cli]
    ns_srv, ns_cli = mgr.create_netns(srv), mgr.create_netns(cli)
    lo = _free_port()
    while not can_listen("0.0.0.0", lo + 1):
        lo = _free_port()
    specs = ["127.0.0.1::80", f"{lo}-{lo + 1}:80-81", "9999/udp"]
    ports = [m for s in specs for m in parse_port_spec(s)]
    calls = _count_restores(monkeypatch)
    [att] = netenv.run(mgr.attach(srv, ns_srv, [], ports))
    assert len(calls) == 1, calls  # every rule of the owner in one iptables-restore
    [row] = mgr.store.attachments(srv)
    assert [p["type"] for p in row["conflist"]["plugins"]] == ["bridge"]  # no portmap
    published = [PortMapping(**p) for p in att["ports"]]
    local, r80, r81, udp = published
    assert local.host_ip == "127.0.0.1" and local.host_port > 0
    assert (r80.host_port, r81.host_port) == (lo, lo + 1) and udp.protocol == "udp"
    # the owner's jumps carry its id; no portmap chain of it anywhere
    assert len(iptables_lines(f"id {srv}")) == 2 and iptables_lines(f'id: "{srv}"') == []
    assert iptables_lines(f"-d 127.0.0.1/32 -p tcp -m tcp --dport {local.host_port} -j DNAT")
    assert Path(f"/proc/sys/net/ipv4/conf/{netenv.bridge}/route_localnet").read_text().strip() == "1"
    assert netenv.run(mgr.check(srv))[0]["ok"]

    [catt] = netenv.run(mgr.attach(cli, ns_cli, []))
    serve_http(netenv, ns_srv, "own-rules", 80)
    serve_http(netenv, ns_srv, "range-81", 81)
    netenv.procs.start(ns_srv, sys.executable, "-c", _UDP_ECHO, "9999")
    # the host's loopback, on the 127.0.0.1 mapping and on the all-addresses range
    got = wait_for(lambda: try_get("127.0.0.1", local.host_port), timeout=30, what="127.0.0.1:hostPort")
    assert got.endswith("own-rules")
    assert wait_for(lambda: try_get("127.0.0.1", lo + 1), timeout=30, what="range").endswith("range-81")
    # another container through the host (its gateway), and the container itself (hairpin)
    assert get_in(netenv, ns_cli, catt["gateway"], lo) == "own-rules"
    assert get_in(netenv, ns_srv, att["gateway"], lo) == "own-rules"
    # the 127.0.0.1-only mapping is not on the gateway address
    assert get_in(netenv, ns_cli, catt["gateway"], local.host_port) == ""
    assert wait_for(lambda: _udp_ask(udp.host_port), timeout=30, what="udp echo") == "echo:hi"
    assert _conntrack_udp(udp.host_port)

    calls.clear()
    netenv.run(mgr.detach(srv))
    assert len(calls) == 1, calls
    assert iptables_lines(f"id {srv}", f"--dport {local.host_port} ", f"--dport {lo} ") == []
    assert iptables_lines(portfwd.Forward(att["network_id"], srv, ()).chain) == []
    assert _conntrack_udp(udp.host_port) == []  # the flow to the gone container is forgotten
    assert try_get("127.0.0.1", local.host_port) == ""
    netenv.run(mgr.detach(cli))
    for o in (srv, cli):
        mgr.remove_netns(o)


def test_stale_udp_conntrack_entry_is_deleted_at_add(netenv: NetEnv) -> None:
    """A UDP flow that began before its port was published would stay with the host
    (its conntrack entry predates the DNAT): the add deletes it, as portmap does."""
    mgr = netenv.mgr
    owner = uid("0dd0dd0d")
    netenv.owners.append(owner)
    ns = mgr.create_netns(owner)
    port, sport = _free_port(socket.SOCK_DGRAM), _free_port(socket.SOCK_DGRAM)
    assert _udp_ask(port, sport, timeout=0.2) == ""  # nobody there: an entry without NAT
    assert _conntrack_udp(port)
    [att] = netenv.run(mgr.attach(owner, ns, [], parse_port_spec(f"127.0.0.1:{port}:7777/udp")))
    netenv.procs.start(ns, sys.executable, "-c", _UDP_ECHO, "7777")
    # the same flow (same source port) now reaches the container, not the reservation
    assert wait_for(lambda: _udp_ask(port, sport), timeout=30, what="the flow to be DNAT'd") == "echo:hi"
    netenv.run(mgr.detach(owner))
    mgr.remove_netns(owner)
    assert att["ports"][0]["host_port"] == port


def test_restart_removes_rules_nobody_names_and_restores_lost_ones(netenv: NetEnv) -> None:
    """After a SIGKILL: rules of this daemon's networks that no attachment names go; a
    running owner's rules stay (and come back if the host lost them); another daemon's
    rules (a network of its own) are not touched."""
    mgr = netenv.mgr
    alive, ns, _, hp = _on_loopback_port(netenv, "a11a11a1")
    serve_http(netenv, ns, "survivor")
    wait_for(lambda: try_get("127.0.0.1", hp), timeout=30, what="the published port")
    n = mgr.get("podkit")
    # what a crash leaves: the rules of an owner whose row is gone ...
    ghost = portfwd.Forward(
        n.id, uid("9905790057"), (PortMapping("127.0.0.1", _free_port(), 80),), "10.200.0.9", n.subnet
    )
    # ... and a rule set of another daemon's network (not ours to judge)
    other = portfwd.Forward(
        "e" * 64, uid("0the40the4"), (PortMapping("127.0.0.1", _free_port(), 80),), "10.200.0.10", n.subnet
    )
    fwd = portfwd.Forwarder()
    asyncio.run(fwd.add(ghost, netenv.bridge))
    asyncio.run(fwd.add(other, netenv.bridge))
    try:
        # the host lost the live owner's rules (an iptables flush, say)
        asyncio.run(fwd.remove(portfwd.of_attachment(mgr.store.attachments(alive)[0])))
        assert try_get("127.0.0.1", hp) == ""
        mgr2 = netenv.new_manager()
        netenv.run(mgr2.startup())
        assert iptables_lines(ghost.comment, ghost.chain) == []
        assert len(iptables_lines(other.comment)) == 1
        assert len(iptables_lines(f"id {alive}")) == 1
        assert wait_for(lambda: try_get("127.0.0.1", hp), timeout=30, what="the rules back").endswith(
            "survivor"
        )
        assert netenv.run(mgr2.check(alive))[0]["ok"]
        netenv.run(mgr2.detach(alive))
        assert iptables_lines(f"id {alive}") == []
    finally:
        asyncio.run(fwd.remove(other))
        asyncio.run(fwd.remove(ghost))
    mgr.remove_netns(alive)
    assert iptables_lines(other.comment) == []


def test_a_user_cni_file_with_portmap_keeps_running_portmap(netenv: NetEnv) -> None:
    """A network made from a user's CNI file that lists portmap (the CRI's
    cni_conf_dir) runs that plugin entry for published ports, as written."""
    from tests.fixtures.network import free_network

    bridge, subnet = free_network()
    netenv.bridges.append(bridge)
    entry: dict[str, Any] = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    mgr = netenv.mgr
    n = netenv.run(mgr.create("userpm", subnet=subnet, bridge=bridge, options={"portmap": entry}))
    assert n.portmap == entry
    owner = uid("05e4f11e")
    netenv.owners.append(owner)
    ns = mgr.create_netns(owner)
    [att] = netenv.run(mgr.attach(owner, ns, ["userpm"], parse_port_spec("127.0.0.1::80")))
    hp = int(att["ports"][0]["host_port"])
    [row] = mgr.store.attachments(owner)
    assert [p["type"] for p in row["conflist"]["plugins"]] == ["bridge", "portmap"]
    assert iptables_lines(f'dnat name: \\"userpm\\" id: \\"{owner}\\"')  # portmap's own rule
    assert iptables_lines(f"id {owner}") == []
    serve_http(netenv, ns, "portmap")
    assert wait_for(lambda: try_get("127.0.0.1", hp), timeout=30, what="portmap's DNAT").endswith("portmap")
    assert netenv.run(mgr.check(owner))[0]["ok"]
    assert "portmap" in [p["type"] for p in mgr.inspect("userpm")["cni"]["plugins"]]
    netenv.run(mgr.detach(owner))
    assert iptables_lines(owner) == []
    mgr.remove_netns(owner)
    netenv.run(mgr.remove("userpm"))
    # podkit's own networks show no portmap
    assert "portmap" not in [p["type"] for p in mgr.inspect("podkit")["cni"]["plugins"]]
    with pytest.raises(Exception, match="portmap plugin entry"):
        netenv.run(mgr.create("badpm", options={"portmap": "yes"}))


def test_loopback_of_the_host_is_not_reachable_from_a_container(netenv: NetEnv) -> None:
    """route_localnet on the bridge (for 127.0.0.1 publishing) would let a container's
    hand-made packets to 127.0.0.0/8 reach the host's loopback services (CVE-2020-8558):
    the INPUT guard drops them; published ports on 127.0.0.1 keep working."""
    mgr = netenv.mgr
    owner, ns, att, hp = _on_loopback_port(netenv, "10ca1e7e")
    # a host service on the loopback only
    with socket.socket() as host_srv:
        host_srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        host_srv.bind(("127.0.0.77", 0))
        host_srv.listen()
        port = host_srv.getsockname()[1]
        # the container routes 127.0.0.77 to its gateway (what a raw socket could do anyway)
        for cmd in (
            ["ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local"],
            ["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"],
            ["ip", "route", "add", "127.0.0.77/32", "via", att["gateway"], "dev", "eth0"],
        ):
            r = netenv.procs.run(ns, *cmd)
            assert r.returncode == 0, (cmd, r.stderr)
        probe = f"import socket; socket.create_connection(('127.0.0.77', {port}), timeout=2)"
        before = _guard_drops()
        r = netenv.procs.run(ns, sys.executable, "-c", probe)
        assert r.returncode != 0  # not answered ...
        assert _guard_drops() > before  # ... because the guard dropped it (without: it connects)
    serve_http(netenv, ns, "still-published")
    assert wait_for(lambda: try_get("127.0.0.1", hp), timeout=30, what="127.0.0.1").endswith(
        "still-published"
    )
    netenv.run(mgr.detach(owner))
    mgr.remove_netns(owner)


def test_rules_scripts() -> None:
    """The scripts themselves: chains named within iptables' 28 characters, one jump per
    protocol and 15 ports, and a removal that names exactly the jumps the add made."""
    ports = tuple(PortMapping("", 20000 + i, 80 + i) for i in range(20)) + (PortMapping("", 5353, 53, "udp"),)
    f = portfwd.Forward("ab" * 32, "cd" * 32, ports, "10.200.0.2", "10.200.0.0/24")
    assert len(f.chain) == 28 and f.chain.startswith("PODKIT-DN-abababab")
    add = portfwd.add_script(f)
    jumps = [ln for ln in add.splitlines() if ln.startswith(f"-A {portfwd.DNAT_CHAIN} ")]
    assert len(jumps) == 3  # tcp 15 + 5, udp 1
    assert add.count("-j DNAT --to-destination 10.200.0.2:") == 21
    dels = [ln for ln in portfwd.delete_script(f).splitlines() if ln.startswith("-D ")]
    assert ["-A" + d[2:] for d in dels] == jumps
    assert (
        subprocess.run(
            ["iptables-restore", "--test", "--noflush"],
            input=add.replace(f"-A {portfwd.DNAT_CHAIN}", "-A PREROUTING"),
            text=True,
            capture_output=True,
        ).returncode
        == 0
    )


def test_sigkill_of_podkitd_keeps_running_containers_rules_and_drops_gone_ones(
    workdir: Path, busybox_tarball: Path
) -> None:
    """podkitd is SIGKILLed with two containers publishing ports; one of them ends while
    it is down. After the restart the running one's rules are kept (its port answers)
    and the gone one's are removed, as is everything at rm: no rule is left."""
    import os
    import signal

    from tests.fixtures.images import import_busybox
    from tests.helpers import Daemon

    d = Daemon(workdir).start()
    try:
        import_busybox(d, busybox_tarball)
        c = d.client()
        cmd = ["sh", "-c", "echo {} > /tmp/i; exec httpd -f -p 8000 -h /tmp"]
        live = c.containers.run(
            "busybox", [cmd[0], cmd[1], cmd[2].format("alive")], ports=["127.0.0.1::8000"]
        )
        gone = c.containers.run("busybox", [cmd[0], cmd[1], cmd[2].format("gone")], ports=["8000/tcp"])
        hp_live = int(c.containers.port(live.id)[0]["host_port"])
        hp_gone = int(c.containers.port(gone.id)[0]["host_port"])
        wait_for(lambda: served(hp_live, "alive") and served(hp_gone, "gone"), 30, what="both ports")
        assert iptables_lines(f"id {live.id}") and iptables_lines(f"id {gone.id}")
        gone_pid = c.containers.get(gone.id).pid
        d.kill()
        os.kill(gone_pid, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{gone_pid}").exists(), what="the container to end")
        d.start()
        c = d.client()
        wait_for(
            lambda: iptables_lines(f"id {gone.id}", f"--dport {hp_gone} ") == [], 30, what="gone's rules"
        )
        assert c.containers.get(live.id).state == "running"
        assert len(iptables_lines(f"id {live.id}")) == 1
        assert wait_for(lambda: served(hp_live, "alive"), 30, what="the live port after the restart")
        c.containers.remove(live.id, force=True)
        c.containers.remove(gone.id, force=True)
        wait_for(
            lambda: iptables_lines(f"id {live.id}", f"--dport {hp_live} ") == [], 30, what="rm's cleanup"
        )
    finally:
        d.stop()
        d.drop_host_network()


def _restores_dying(monkeypatch: pytest.MonkeyPatch, deaths: int, after_commit: bool) -> list[str]:
    """The next ``deaths`` restores die as SIGKILLed ones do (exit -9, nothing said):
    before their commit (nothing applied), or, ``after_commit``, on their way out."""
    calls: list[str] = []
    real = portfwd.restore

    async def dying(script: str) -> tuple[int, str]:
        calls.append(script)
        if len(calls) > deaths:
            return await real(script)
        if after_commit:
            await real(script)
        return -9, ""

    monkeypatch.setattr(portfwd, "restore", dying)
    return calls


def _ghost(prefix: str) -> portfwd.Forward:
    """An owner's rules on a network of no daemon (a 10.200/13 address: the leak check's)."""
    return portfwd.Forward(
        uid(prefix).ljust(64, "0"),
        uid(f"{prefix}o"),
        (PortMapping("127.0.0.1", _free_port(), 80),),
        "10.200.0.9",
        "10.200.0.0/24",
    )


def test_a_removal_whose_restores_die_is_retried_until_the_rules_are_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by the fault campaign (a kill of iptables-restore during rm, twice): the
    exact removal and its fallback both failed, the teardown went on and freed the
    address, and the rules forwarded the port to whoever got it next until a restart."""
    f = _ghost("de1e7e")
    fwd = portfwd.Forwarder()
    asyncio.run(fwd.add(f, ""))
    try:
        assert len(iptables_lines(f.comment)) == 1
        calls = _restores_dying(monkeypatch, deaths=3, after_commit=False)
        asyncio.run(fwd.remove(f))
        assert iptables_lines(f.comment, f.chain) == []
        assert len(calls) == 4
    finally:
        monkeypatch.undo()
        asyncio.run(fwd.remove(f))
    assert iptables_lines(f.comment, f.chain) == []


def test_a_removal_that_keeps_failing_raises() -> None:
    """Past its retries a removal says so (the caller logs it; recovery removes the rules)."""
    f = _ghost("fa11ed")
    fwd = portfwd.Forwarder()
    asyncio.run(fwd.add(f, ""))
    try:
        with pytest.MonkeyPatch.context() as m:
            _restores_dying(m, deaths=1 + portfwd.REMOVE_RETRIES + 1, after_commit=False)
            with pytest.raises(portfwd.Internal, match="iptables-restore failed"):
                asyncio.run(fwd.remove(f))
        assert len(iptables_lines(f.comment)) == 1
    finally:
        asyncio.run(fwd.remove(f))
    assert iptables_lines(f.comment, f.chain) == []


def test_an_add_whose_restore_dies_after_its_commit_is_not_doubled(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restore killed on its way out applied its rules: the retry must not add the
    owner's jump a second time (its removal deletes one; the other would stay)."""
    f = _ghost("d0ub1e")
    fwd = portfwd.Forwarder()
    asyncio.run(fwd.ensure_base())
    calls = _restores_dying(monkeypatch, deaths=1, after_commit=True)
    try:
        asyncio.run(fwd.add(f, ""))
        assert len(calls) == 1
        assert len(iptables_lines(f.comment)) == 1
    finally:
        monkeypatch.undo()
        asyncio.run(fwd.remove(f))
    assert iptables_lines(f.comment, f.chain) == []
