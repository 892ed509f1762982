"""Name resolution on user networks (aardvark-dns), from the podkit CLI, and across a
podkitd crash. The Docker API's side is in test_docker_compose.py and test_docker_cli.py."""

from __future__ import annotations

import json
import os
import socket
import struct
from pathlib import Path

import pytest

from podkit.network.names import find_binary
from tests.fixtures.network import free_network
from tests.helpers import Daemon, wait_for

pytestmark = pytest.mark.skipif(find_binary() is None, reason="aardvark-dns is not installed")


def query_a(server: str, name: str, timeout: float = 2.0) -> list[str] | None:
    """One DNS A query over UDP: the addresses, [] for an answer without any, None on no reply."""
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", 0x5EED, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(packet, (server, 53))
            reply = s.recv(4096)
        except OSError:
            return None
    count = struct.unpack(">H", reply[6:8])[0]
    pos = 12 + len(qname) + 4
    out = []
    for _ in range(count):
        pos += 2 if reply[pos] & 0xC0 == 0xC0 else reply.index(b"\0", pos) + 1 - pos
        rtype, _cls, _ttl, length = struct.unpack(">HHIH", reply[pos : pos + 10])
        pos += 10
        if rtype == 1 and length == 4:
            out.append(socket.inet_ntoa(reply[pos : pos + 4]))
        pos += length
    return out


def _aardvark_of(state: Path) -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = Path(f"/proc/{d}/cmdline").read_bytes()
            except OSError:
                continue
            if b"aardvark-dns" in cmd and str(state).encode() in cmd:
                pids.append(int(d))
    return pids


def test_containers_resolve_each_other_on_a_user_network(daemon: Daemon, busybox_image: str) -> None:
    br, sub = free_network()
    gw = sub.replace(".0/24", ".1")
    daemon.cli("network", "create", "--subnet", sub, "--bridge", br, "appnet", check=True)
    try:
        web = daemon.cli(
            "run", "-d", "--name", "web", "--network", "appnet", "--network-alias", "www",
            busybox_image, "sleep", "600", check=True,
        ).stdout.strip()  # fmt: skip
        daemon.cli(
            "run", "-d", "--name", "client", "--network", "appnet", busybox_image, "sleep", "600", check=True
        )
        [info] = json.loads(daemon.cli("inspect", "web", check=True).stdout)
        web_ip = info["NetworkSettings"]["IPAddress"]
        assert web_ip.startswith(sub.rsplit(".", 1)[0] + ".")

        # The container's resolver is aardvark on the network's gateway...
        resolv = daemon.cli("exec", "client", "cat", "/etc/resolv.conf", check=True).stdout
        assert f"nameserver {gw}" in resolv.splitlines()
        # ...which answers its neighbours' names, aliases and short ids.
        for name in ("web", "www", web[:12]):
            r = daemon.cli("exec", "client", "nslookup", name, gw)
            assert r.returncode == 0 and web_ip in r.stdout, (name, r.stdout, r.stderr)
        r = daemon.cli("exec", "client", "ping", "-c", "1", "-W", "2", "web")
        assert r.returncode == 0 and web_ip in r.stdout, r.stdout + r.stderr

        # It keeps answering while podkitd is down (SIGKILLed) and after it is back.
        daemon.kill()
        assert query_a(gw, "web") == [web_ip]
        daemon.start()
        assert query_a(gw, "www") == [web_ip]

        # A removed container's names go with it.
        daemon.cli("rm", "-f", "web", check=True)
        wait_for(lambda: query_a(gw, "web") != [web_ip], 10, what="web's name to go")
        r = daemon.cli("exec", "client", "nslookup", "web", gw)
        assert web_ip not in r.stdout
    finally:
        daemon.cli("rm", "-f", "web", "client")
        daemon.cli("network", "rm", "appnet")
    # The last member gone, aardvark exits by itself: nothing outlives the containers.
    wait_for(lambda: not _aardvark_of(daemon.state), 10, what="aardvark-dns to exit")


def test_default_network_resolves_no_names(daemon: Daemon, busybox_image: str) -> None:
    daemon.cli("run", "-d", "--name", "d1", busybox_image, "sleep", "600", check=True)
    try:
        resolv = daemon.cli("exec", "d1", "cat", "/etc/resolv.conf", check=True).stdout
        gw = daemon.subnet.replace(".0/24", ".1")
        assert gw not in resolv
        assert not _aardvark_of(daemon.state)
        r = daemon.cli(
            "run", "--rm", "--dns-search", "corp.test", "--dns-option", "ndots:2", busybox_image,
            "cat", "/etc/resolv.conf", check=True,
        )  # fmt: skip
        assert "search corp.test" in r.stdout and "options ndots:2" in r.stdout
        r = daemon.cli("run", "--rm", "--dns-option", "a b", busybox_image, "true")
        assert r.returncode == 125 and "one word each" in r.stderr
        # --network-alias is for user networks only, as in docker; nothing is created.
        r = daemon.cli("run", "-d", "--name", "d2", "--network-alias", "x", busybox_image, "true")
        assert r.returncode != 0 and "--network-alias is only for user-defined networks" in r.stderr
        r = daemon.cli(
            "run", "-d", "--name", "d2", "--network", "host", "--network-alias", "a b", busybox_image
        )
        assert r.returncode != 0 and "invalid --network-alias" in r.stderr
        assert (
            daemon.cli("ps", "-aq", check=True).stdout.split() != []
            and "d2" not in daemon.cli("ps", "-a", check=True).stdout.split()
        )
    finally:
        daemon.cli("rm", "-f", "d1")


def test_network_connect_and_disconnect_a_running_container(daemon: Daemon, busybox_image: str) -> None:
    (br_a, sub_a), (br_b, sub_b) = free_network(), free_network()
    gw_b = sub_b.replace(".0/24", ".1")
    daemon.cli("network", "create", "--subnet", sub_a, "--bridge", br_a, "na", check=True)
    daemon.cli("network", "create", "--subnet", sub_b, "--bridge", br_b, "nb", check=True)
    try:
        daemon.cli("run", "-d", "--name", "c1", "--network", "na", busybox_image, "sleep", "600", check=True)
        # --network given twice: eth0 on the first, eth1 on the second (default route on eth0).
        daemon.cli(
            "run", "-d", "--name", "c2", "--network", "nb", "--network", "na", busybox_image, "sleep", "600",
            check=True,
        )  # fmt: skip
        assert (
            sub_a.rsplit(".", 1)[0]
            in daemon.cli("exec", "c2", "ip", "-4", "addr", "show", "eth1", check=True).stdout
        )
        assert "default via " + gw_b in daemon.cli("exec", "c2", "ip", "route", check=True).stdout

        daemon.cli("network", "connect", "--alias", "one", "nb", "c1", check=True)
        eth1 = daemon.cli("exec", "c1", "ip", "-4", "addr", "show", "eth1", check=True).stdout
        assert sub_b.rsplit(".", 1)[0] + "." in eth1
        [ip_b] = query_a(gw_b, "one") or [None]
        assert ip_b and ip_b in eth1
        [info] = json.loads(daemon.cli("network", "inspect", "nb", check=True).stdout)
        assert {a["owner_id"][:12] for a in info["attachments"]} >= {
            json.loads(daemon.cli("inspect", "c1", check=True).stdout)[0]["Id"][:12]
        }
        for args, msg in [
            (["connect", "nb", "c1"], "already connected to network nb"),
            (["connect", "nosuchnet", "c1"], "nosuchnet"),
            (["connect", "nb", "nosuchctr"], "nosuchctr"),
            (["connect", "--ip", "10.0.0.1", "na", "c2"], "already connected"),
        ]:
            r = daemon.cli("network", *args)
            assert r.returncode != 0 and msg in r.stderr, (args, r.stderr)

        daemon.cli("network", "disconnect", "nb", "c1", check=True)
        assert daemon.cli("exec", "c1", "ip", "addr", "show", "eth1").returncode != 0
        assert query_a(gw_b, "one") != [ip_b]
        r = daemon.cli("network", "disconnect", "nb", "c1")
        assert r.returncode != 0 and "not connected to network nb" in r.stderr
        # The SDK's call, with a fixed address.
        fixed = sub_b.rsplit(".", 1)[0] + ".77"
        daemon.client().networks.connect("nb", "c1", ip=fixed)
        assert fixed in daemon.cli("exec", "c1", "ip", "-4", "addr", "show", "eth1", check=True).stdout
    finally:
        daemon.cli("rm", "-f", "c1", "c2")
        daemon.cli("network", "rm", "na", "nb")
