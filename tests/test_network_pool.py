"""Pre-warmed network sandboxes (issue 8 item 1): a start takes an attached netns from
the pool, the pool refills, never grows past its size, shows in `podkit info`, survives
a SIGKILL of podkitd (the running container keeps its sandbox, the free ones that fit
are kept), shrinks with its configured size, and a graceful stop leaves no veths, pins
or leases to nobody.
"""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.images import import_busybox
from tests.fixtures.network import can_listen, iptables_lines, leases, links_on
from tests.helpers import Daemon, served, wait_for

pytestmark = pytest.mark.root


def _pool(d: Daemon) -> dict[str, Any]:
    info: dict[str, Any] = d.client().info()["networks"]["sandbox_pool"]
    return info


def _free(d: Daemon) -> int:
    return int(sum(_pool(d)["free"].values()))


def _pins(d: Daemon) -> list[str]:
    p = d.state / "netns"
    return sorted(x.name for x in p.iterdir() if x.name.startswith("pool-")) if p.is_dir() else []


def _resize(d: Daemon, size: int) -> None:
    text = d.config.read_text()
    d.config.write_text(
        "\n".join(f"pool_size = {size}" if ln.startswith("pool_size") else ln for ln in text.splitlines())
    )


def test_pool_life_cycle_restart_and_crash(workdir: Path, busybox_tarball: Path) -> None:
    d = Daemon(workdir, pool_size=2).start()
    try:
        import_busybox(d, busybox_tarball)
        wait_for(lambda: _free(d) == 2, what="the pool to fill")
        first = set(_pins(d))
        assert len(first) == 2 and len(leases(d.root / "networks" / "ipam")) == 2
        assert len(links_on(d.bridge)) == 2  # the veths are on the bridge already

        c = d.client()
        ran = c.containers.run("busybox", ["sleep", "300"])
        ran = c.containers.get(ran.id)
        ip = ran.raw["network"]["ip"]
        sid = ran.raw["network"].get("sandbox")
        assert f"pool-{sid}" in first, (sid, first)  # it took a warm one
        out = c.containers.exec(ran.id, ["ip", "-4", "-o", "addr", "show", "eth0"]).output
        assert ip in out.decode(), out
        routes = c.containers.exec(ran.id, ["ip", "route"]).output.decode()
        assert "default via" in routes, routes
        # the network lists the container, not the sandboxes (taken or free)
        owners = [a["owner_id"] for a in c.networks.inspect("podkit")["attachments"]]
        assert owners == [ran.id], owners
        # refilled to its size, never past it
        wait_for(lambda: _free(d) == 2, what="the pool to refill")
        assert _pool(d)["in_use"] == 1 and len(_pins(d)) == 3

        # SIGKILL: the running container keeps its sandbox; the free ones still fit
        before = set(_pins(d))
        d.kill()
        # and what a SIGKILL in the middle of making one, or of a holder's release,
        # leaves: rows whose netns and attachment were never made (or already gone)
        db = sqlite3.connect(d.root / "metadata.db")
        with db:
            (net_id,) = db.execute("SELECT id FROM networks WHERE is_default = 1").fetchone()
            for sid, holder in (("a" * 64, ""), ("b" * 64, "c" * 64)):
                db.execute(
                    "INSERT INTO net_sandboxes(id, network_id, holder, created) VALUES (?,?,?,?)",
                    (sid, net_id, holder, time.time()),
                )
        db.close()
        d.start()
        assert set(_pins(d)) == before and _pool(d)["in_use"] == 1 and _free(d) == 2
        assert c.containers.exec(ran.id, ["ip", "-4", "-o", "addr", "show", "eth0"]).exit_code == 0

        # the container's end releases its sandbox (in the background, with its removal)
        c.containers.remove(ran.id, force=True)
        wait_for(lambda: _pool(d)["in_use"] == 0 and len(_pins(d)) == 2, what="the sandbox's release")

        # a smaller size at the next start: the extra one goes
        d.stop()
        _resize(d, 1)
        d.start()
        wait_for(lambda: len(_pins(d)) == 1 and _free(d) == 1, what="the pool to shrink")
    finally:
        d.stop()
    try:
        # a graceful stop leaves nothing to nobody
        assert _pins(d) == [] and leases(d.root / "networks" / "ipam") == [] and links_on(d.bridge) == []
    finally:
        d.drop_host_network()


def test_pool_size_is_checked(workdir: Path) -> None:
    d = Daemon(workdir, pool_size=-1)
    try:
        d.start(timeout=20)
    except AssertionError as e:
        assert "pool_size" in str(e), e
    else:
        d.stop()
        raise AssertionError("a negative pool_size was accepted")


def test_user_network_pool_names_and_crash(workdir: Path, busybox_tarball: Path) -> None:
    """A user network gets its own pool once something starts on it: a taken sandbox
    answers to the container's name, aliases and short id (aardvark-dns, when installed)
    and its resolv.conf names the gateway; a SIGKILL with that pool filled, and the
    network's removal after, leak no veth, pin or lease."""
    from podkit.network.names import find_binary
    from tests.fixtures.network import free_network

    d = Daemon(workdir, pool_size=2).start()
    br, sub = free_network()
    br2, sub2 = free_network()
    gw = sub.replace(".0/24", ".1")
    try:
        import_busybox(d, busybox_tarball)
        c = d.client()
        c.networks.create("poolnet", subnet=sub, bridge=br)
        # The first start on it attaches the usual way and has its pool filled.
        web = c.containers.run("busybox", ["sleep", "300"], network="poolnet", name="web")
        assert "sandbox" not in c.containers.get(web.id).raw["network"]
        wait_for(lambda: _pool(d)["free"].get("poolnet") == 2, what="the user network's pool to fill")
        assert len(links_on(br)) == 3  # web's veth and the two warm ones
        api = c.containers.run(
            "busybox", ["sleep", "300"], network="poolnet", name="api", network_aliases=["db"]
        )
        got = c.containers.get(api.id).raw["network"]
        assert got.get("sandbox") and got["ip"].startswith(sub.rsplit(".", 1)[0] + "."), got
        # a running container on a warm sandbox joins another network live, and leaves it
        c.networks.create("pooltwo", subnet=sub2, bridge=br2)
        c.networks.connect("pooltwo", api.id)
        addrs = c.containers.exec(api.id, ["ip", "-4", "-o", "addr", "show", "eth1"]).output.decode()
        assert sub2.rsplit(".", 1)[0] + "." in addrs, addrs
        c.networks.disconnect("pooltwo", api.id)
        assert c.containers.exec(api.id, ["ip", "link", "show", "eth1"]).exit_code != 0
        c.networks.remove("pooltwo")
        # a fixed address is not the pool's
        fixed_ip = sub.replace(".0/24", ".77")
        fixed = c.containers.run("busybox", ["sleep", "300"], network="poolnet", ip=fixed_ip)
        assert "sandbox" not in c.containers.get(fixed.id).raw["network"]
        if find_binary() is not None:
            resolv = c.containers.exec(api.id, ["cat", "/etc/resolv.conf"]).output.decode()
            assert f"nameserver {gw}" in resolv.splitlines(), resolv
            for name in ("api", "db", api.id[:12]):
                r = c.containers.exec(web.id, ["nslookup", name, gw])
                assert r.exit_code == 0 and got["ip"] in r.output.decode(), (name, r.output)

        # SIGKILL with both pools filled: after the restart the holder keeps its sandbox,
        # the free ones that fit are kept, nothing else appears.
        wait_for(lambda: _pool(d)["free"].get("poolnet") == 2, what="the refill after api's take")
        pins, nleases = set(_pins(d)), len(leases(d.root / "networks" / "ipam"))
        d.kill()
        d.start()
        assert set(_pins(d)) == pins and len(leases(d.root / "networks" / "ipam")) == nleases
        assert _pool(d)["free"].get("poolnet") == 2 and _pool(d)["in_use"] == 1
        assert c.containers.exec(api.id, ["ip", "-4", "-o", "addr", "show", "eth0"]).exit_code == 0

        for x in (web, api, fixed):
            c.containers.remove(x.id, force=True)
        wait_for(lambda: _pool(d)["in_use"] == 0, what="api's sandbox released")
        c.networks.remove("poolnet")  # drains its pool first
        assert links_on(br) == [] and "poolnet" not in _pool(d)["free"]
    finally:
        d.stop()
    try:
        assert _pins(d) == [] and leases(d.root / "networks" / "ipam") == [] and links_on(d.bridge) == []
    finally:
        d.drop_host_network()


def test_published_ports_on_a_warm_sandbox(workdir: Path, busybox_tarball: Path) -> None:
    """-p takes a warm sandbox and adds podkit's port rules to it (no CNI ADD): the port
    answers on 127.0.0.1; rm (the rules removed before the sandbox's DEL) leaves no DNAT
    rule, reservation, pin or lease; a SIGKILL of podkitd while it runs, a restart and
    rm leave nothing either; a host port already taken is refused with the pool
    untouched."""
    d = Daemon(workdir, pool_size=1).start()
    try:
        import_busybox(d, busybox_tarball)
        c = d.client()
        wait_for(lambda: _free(d) == 1, what="the pool to fill")
        srv = c.containers.run(
            "busybox",
            ["sh", "-c", "echo from-pool > /tmp/i; exec httpd -f -p 8000 -h /tmp"],
            ports=["127.0.0.1::8000"],
        )
        net = c.containers.get(srv.id).raw["network"]
        sid = net.get("sandbox")
        assert sid and _pool(d)["in_use"] == 1, net
        hp = int(c.containers.port(srv.id)[0]["host_port"])
        assert net["ports"] and int(net["ports"][0]["host_port"]) == hp, net
        wait_for(lambda: served(hp, "from-pool"), 30, what="httpd through the published port")
        assert iptables_lines(sid) and not can_listen("127.0.0.1", hp)  # DNAT'd and reserved
        # a port that is published already: refused, nothing taken
        wait_for(lambda: _free(d) == 1, what="the refill")
        r = d.cli("run", "--rm", "-p", f"127.0.0.1:{hp}:80", "busybox", "true")
        assert r.returncode != 0 and f"already published by {srv.id[:12]}" in r.stderr, r.stderr
        assert _pool(d)["in_use"] == 1 and _free(d) == 1

        # SIGKILL while it runs: after the restart it keeps sandbox, rules and port
        d.kill()
        d.start()
        assert _pool(d)["in_use"] == 1 and c.containers.get(srv.id).raw["network"]["sandbox"] == sid
        wait_for(lambda: served(hp, "from-pool"), 30, what="the published port after the restart")
        c.containers.remove(srv.id, force=True)
        wait_for(lambda: _pool(d)["in_use"] == 0, what="the sandbox's release")
        assert iptables_lines(sid) == [] and can_listen("127.0.0.1", hp)
        assert len(_pins(d)) == 1 and len(leases(d.root / "networks" / "ipam")) == 1  # the free one

        # --rm with -p: the start takes the (refilled) warm one and its end gives all back
        wait_for(lambda: _free(d) == 1, what="the refill")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        r = d.cli("run", "--rm", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: _pool(d)["in_use"] == 0 and len(_pins(d)) == 1, what="the --rm release")
        assert iptables_lines(f"--dport {port} ") == []

        # a SIGKILL after the take and the port rules but before the start was recorded:
        # the sandbox's holder is no container, so recovery DELs it, its port rules first
        held = c.containers.run("busybox", ["sleep", "300"], ports=["127.0.0.1::80"])
        sid2 = c.containers.get(held.id).raw["network"]["sandbox"]
        hp2 = int(c.containers.port(held.id)[0]["host_port"])
        assert iptables_lines(sid2)
        d.kill()
        db = sqlite3.connect(d.root / "metadata.db")
        with db:
            db.execute("UPDATE net_sandboxes SET holder = ? WHERE id = ?", ("e" * 64, sid2))
        db.close()
        d.start()
        assert iptables_lines(sid2) == [] and can_listen("127.0.0.1", hp2) and _pool(d)["in_use"] == 0
        assert f"pool-{sid2}" not in _pins(d)
        c.containers.remove(held.id, force=True)
    finally:
        d.stop()
    try:
        assert _pins(d) == [] and leases(d.root / "networks" / "ipam") == [] and links_on(d.bridge) == []
    finally:
        d.drop_host_network()
