"""The network layer against real CNI plugins, iptables and network namespaces.

Traffic stays inside the namespaces and the bridge each test creates, plus 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podkit import errors
from podkit.network import PortMapping, is_netns, parse_port_spec
from podkit.network.netns import mount_points
from tests.fixtures.network import NetEnv, bridge_exists, can_listen, iptables_lines, leases, links_on, uid
from tests.helpers import wait_for


def http_get(host: str, port: int, path: str = "/index.html", timeout: float = 2.0) -> str:
    """A plain HTTP/1.0 GET over a socket (no proxies, no libraries)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode(errors="replace")


def try_get(host: str, port: int) -> str:
    try:
        return http_get(host, port)
    except OSError:
        return ""


# busybox's static wget crashes here (SIGSEGV in its resolver), so clients in a
# netns are a few lines of Python.
_GET = (
    "import socket,sys\n"
    "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=3)\n"
    "s.sendall(b'GET /index.html HTTP/1.0\\r\\n\\r\\n')\n"
    "d=b''\n"
    "while (c:=s.recv(4096)): d+=c\n"
    "sys.stdout.write(d.decode().split('\\r\\n\\r\\n',1)[-1])\n"
)


def get_in(env: NetEnv, netns: str, host: str, port: int) -> str:
    """GET /index.html from inside a netns; '' when it cannot connect."""
    r = env.procs.run(netns, sys.executable, "-c", _GET, host, str(port))
    return r.stdout if r.returncode == 0 else ""


def serve_http(env: NetEnv, netns: str, body: str, port: int = 80) -> None:
    """busybox httpd inside the netns serving `body` as /index.html."""
    www = env.base / f"www-{port}-{abs(hash(netns))}"
    www.mkdir()
    (www / "index.html").write_text(body)
    env.procs.start(netns, "busybox", "httpd", "-f", "-p", str(port), "-h", str(www))


def test_netns_pin_create_and_remove(netenv: NetEnv) -> None:
    pins = netenv.mgr.netns
    host = os.readlink("/proc/thread-self/ns/net")
    path = netenv.mgr.create_netns("n1", kind="pod")
    assert path == str(netenv.base / "state" / "netns" / "pod-n1")
    assert is_netns(path)
    # A namespace of its own: only lo, and not the host's.
    out = netenv.procs.run(path, "ip", "-o", "link").stdout
    assert [ln.split(":")[1].strip() for ln in out.splitlines()] == ["lo"]
    with pytest.raises(errors.AlreadyExists):
        netenv.mgr.create_netns("n1", kind="pod")
    assert pins.list() == ["pod-n1"]
    # The helper thread went back: every thread of the daemon stays in the host's netns.
    import concurrent.futures

    assert os.readlink("/proc/thread-self/ns/net") == host
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        assert set(pool.map(lambda _: os.readlink("/proc/thread-self/ns/net"), range(8))) == {host}
    assert netenv.mgr.remove_netns("n1", kind="pod")
    assert not Path(path).exists() and pins.list() == []
    assert not any(m.startswith(str(pins.dir)) for m in mount_points())
    assert not netenv.mgr.remove_netns("n1", kind="pod")  # idempotent
    with pytest.raises(errors.InvalidArgument):
        pins.create("../escape")


def test_loopback_only(netenv: NetEnv) -> None:
    path = netenv.mgr.create_netns("lo1")
    assert "state UNKNOWN" not in netenv.procs.run(path, "ip", "-o", "link").stdout  # lo down
    netenv.run(netenv.mgr.loopback_up("lo1", path))
    out = netenv.procs.run(path, "ip", "-o", "addr").stdout
    assert "127.0.0.1/8" in out and "eth0" not in out
    assert netenv.mgr.attachments("lo1") == []
    netenv.mgr.remove_netns("lo1")


def test_stale_pin_file_is_swept(netenv: NetEnv) -> None:
    # A crash between creating the pin file and mounting onto it leaves a plain file.
    pins = netenv.mgr.netns
    pins.dir.mkdir(parents=True, exist_ok=True)
    (pins.dir / "container-dead").write_text("")
    assert pins.sweep() == ["container-dead"]
    assert pins.list() == []
    # The name is usable again.
    p = pins.create("container-dead")
    assert is_netns(p)
    pins.remove("container-dead")


def test_attach_gives_an_ip_that_reaches_the_gateway_and_detach_frees_it(netenv: NetEnv) -> None:
    mgr = netenv.mgr
    owner = uid("c0ffee")
    netenv.owners.append(owner)
    ns = mgr.create_netns(owner)
    [att] = netenv.run(mgr.attach(owner, ns, ["bridge"]))
    subnet = ipaddress.ip_network(netenv.subnet)
    assert att["network"] == "podkit" and att["interface"] == "eth0"
    assert ipaddress.ip_address(att["ip"]) in subnet and att["prefix"] == 24
    assert att["gateway"] == str(subnet[1])
    assert len(att["mac"].split(":")) == 6
    # lo is up and eth0 carries the address; the gateway answers.
    out = netenv.procs.run(ns, "ip", "-o", "-4", "addr").stdout
    assert "lo " in out and f"{att['ip']}/24" in out
    ping = netenv.procs.run(ns, "busybox", "ping", "-c", "1", "-W", "2", att["gateway"])
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert netenv.procs.run(ns, "busybox", "ping", "-c", "1", "-W", "2", "127.0.0.1").returncode == 0
    assert len(links_on(netenv.bridge)) == 1
    assert leases(netenv.base / "root" / "networks" / "ipam") == [f"podkit/{att['ip']}"]
    # Its traffic out is masqueraded by the network's one rule set, while in use.
    [jump] = iptables_lines(f"-A POSTROUTING -s {netenv.subnet}")
    assert "MASQUERADE" in " ".join(iptables_lines(jump.split()[-1]))
    assert netenv.run(mgr.check(owner)) == [
        {"network": "podkit", "interface": "eth0", "ok": True, "error": ""}
    ]
    assert [a["ip"] for a in mgr.attachments(owner)] == [att["ip"]]
    with pytest.raises(errors.Conflict):
        netenv.run(mgr.attach(owner, ns, ["podkit"]))

    assert netenv.run(mgr.detach(owner)) == 1
    assert links_on(netenv.bridge) == []
    assert leases(netenv.base / "root" / "networks" / "ipam") == []
    assert iptables_lines(owner) == []
    assert mgr.attachments(owner) == []
    assert netenv.run(mgr.detach(owner)) == 0  # idempotent
    mgr.remove_netns(owner)


def test_two_namespaces_on_one_bridge_reach_each_other(netenv: NetEnv) -> None:
    mgr = netenv.mgr
    a, b = uid("aaaa1111"), uid("bbbb2222")
    netenv.owners += [a, b]
    ns_a, ns_b = mgr.create_netns(a, "pod"), mgr.create_netns(b, "pod")
    [att_a] = netenv.run(mgr.attach(a, ns_a, [], kind="pod"))
    [att_b] = netenv.run(mgr.attach(b, ns_b, [], kind="pod"))
    assert att_a["ip"] != att_b["ip"]
    serve_http(netenv, ns_b, "hello from b")
    got = wait_for(lambda: get_in(netenv, ns_a, att_b["ip"], 80), timeout=30, what="b's http server from a")
    assert got == "hello from b"
    for o in (a, b):
        netenv.run(mgr.detach(o))
        mgr.remove_netns(o, "pod")


def test_published_port_reachable_on_localhost_and_from_other_pods(netenv: NetEnv) -> None:
    mgr = netenv.mgr
    srv, cli = uid("5e7e7e7e"), uid("c1c1c1c1")
    netenv.owners += [srv, cli]
    ns_srv, ns_cli = mgr.create_netns(srv), mgr.create_netns(cli)
    ports = parse_port_spec("80") + parse_port_spec("8080/udp")
    [att] = netenv.run(mgr.attach(srv, ns_srv, [], ports))
    published = [PortMapping(**p) for p in att["ports"]]
    assert [(p.container_port, p.protocol) for p in published] == [(80, "tcp"), (8080, "udp")]
    tcp = published[0]
    assert tcp.host_port > 0
    [catt] = netenv.run(mgr.attach(cli, ns_cli, []))
    serve_http(netenv, ns_srv, "published")
    # From the host's loopback (portmap's SNAT + route_localnet)...
    got = wait_for(lambda: try_get("127.0.0.1", tcp.host_port), timeout=30, what="localhost:hostPort")
    assert got.endswith("published")
    # ...from another pod through the host (its gateway) and the published port...
    assert get_in(netenv, ns_cli, catt["gateway"], tcp.host_port) == "published"
    # ...and from the pod itself through its own published port (hairpin).
    assert get_in(netenv, ns_srv, att["gateway"], tcp.host_port) == "published"
    assert iptables_lines(f"--dport {tcp.host_port}")
    assert netenv.run(mgr.check(srv))[0]["ok"]

    for o in (srv, cli):
        netenv.run(mgr.detach(o))
        mgr.remove_netns(o)
    assert iptables_lines(f"--dport {tcp.host_port} ", srv, cli) == []
    assert try_get("127.0.0.1", tcp.host_port) == ""


def test_host_ip_mapping_and_port_conflicts(netenv: NetEnv) -> None:
    mgr = netenv.mgr
    owner = uid("d00dd00d")
    netenv.owners.append(owner)
    ns = mgr.create_netns(owner)
    [att] = netenv.run(mgr.attach(owner, ns, [], parse_port_spec("127.0.0.1::80")))
    [p] = att["ports"]
    assert p["host_ip"] == "127.0.0.1" and p["host_port"] > 0
    assert iptables_lines(f"-d 127.0.0.1/32 -p tcp -m tcp --dport {p['host_port']}")
    # The port is held while published: a host service cannot take it unnoticed.
    assert not can_listen("127.0.0.1", p["host_port"])
    other = uid("d00dd00e")
    netenv.owners.append(other)
    ns2 = mgr.create_netns(other)
    # The same host port again, on any address: refused, nothing attached.
    for spec in (f"{p['host_port']}:81", f"127.0.0.1:{p['host_port']}:81"):
        with pytest.raises(errors.Conflict, match=f"{p['host_port']}/tcp is already published"):
            netenv.run(mgr.attach(other, ns2, [], parse_port_spec(spec)))
    # The same number over udp is another port.
    netenv.run(mgr.attach(other, ns2, [], parse_port_spec(f"127.0.0.1:{p['host_port']}:81/udp")))
    netenv.run(mgr.detach(other))
    # A port a host process listens on would be shadowed by the DNAT: refused.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(errors.Conflict, match="already in use on the host"):
            netenv.run(mgr.attach(other, ns2, [], parse_port_spec(f"{port}:80")))
    with pytest.raises(errors.InvalidArgument, match="IPv4 only"):
        netenv.run(mgr.attach(other, ns2, [], parse_port_spec("[::1]:8080:80")))
    with pytest.raises(errors.InvalidArgument, match="not an address of this host"):
        netenv.run(mgr.attach(other, ns2, [], parse_port_spec("192.0.2.77:8080:80")))
    assert mgr.attachments(other) == []
    for o in (owner, other):
        netenv.run(mgr.detach(o))
        mgr.remove_netns(o)
    assert can_listen("127.0.0.1", p["host_port"])  # released with the attachment


def test_attach_to_two_networks_gives_eth0_and_eth1(netenv: NetEnv) -> None:
    from tests.fixtures.network import free_network as unique_network

    mgr = netenv.mgr
    bridge2, subnet2 = unique_network()
    netenv.bridges.append(bridge2)
    n2 = netenv.run(mgr.create("second", subnet=subnet2, bridge=bridge2, labels={"t": "1"}))
    owner = uid("twonets01")
    netenv.owners.append(owner)
    ns = mgr.create_netns(owner)
    atts = netenv.run(mgr.attach(owner, ns, ["podkit", "second"]))
    assert [(a["network"], a["interface"]) for a in atts] == [("podkit", "eth0"), ("second", "eth1")]
    assert ipaddress.ip_address(atts[1]["ip"]) in ipaddress.ip_network(n2.subnet)
    with pytest.raises(errors.Conflict, match="in use"):
        netenv.run(mgr.remove("second"))
    assert len(mgr.inspect("second")["attachments"]) == 1
    netenv.run(mgr.detach(owner))
    mgr.remove_netns(owner)
    netenv.run(mgr.remove("second"))
    assert not bridge_exists(bridge2)
    with pytest.raises(errors.NotFound):
        mgr.get("second")


def test_failed_attach_leaves_nothing(netenv: NetEnv) -> None:
    mgr = netenv.mgr
    owner = uid("faaaaaa1")
    netenv.owners.append(owner)
    ns = mgr.create_netns(owner)
    with pytest.raises(errors.NotFound):
        netenv.run(mgr.attach(owner, ns, ["podkit", "nosuchnet"]))
    # A bad port mapping is refused before anything is set up.
    with pytest.raises(errors.InvalidArgument):
        netenv.run(mgr.attach(owner, ns, [], [PortMapping("", 70000, 80, "tcp")]))
    with pytest.raises(errors.InvalidArgument):
        netenv.run(mgr.attach(owner, str(netenv.base), []))  # not a netns
    assert mgr.attachments(owner) == []
    assert links_on(netenv.bridge) == []
    mgr.remove_netns(owner)


def test_restart_cleans_attachments_whose_netns_is_gone(netenv: NetEnv) -> None:
    """A crash: the owner's netns went away while the daemon was down."""
    mgr = netenv.mgr
    gone, alive = uid("deadbeef01"), uid("a11ve0001")
    netenv.owners += [gone, alive]
    ns_gone, ns_alive = mgr.create_netns(gone), mgr.create_netns(alive)
    netenv.run(mgr.attach(gone, ns_gone, [], parse_port_spec("80")))
    [att_alive] = netenv.run(mgr.attach(alive, ns_alive, []))
    assert iptables_lines(gone)
    # The daemon dies (the manager object is dropped) and the owner's netns ends.
    mgr.netns.remove(f"container-{gone}")
    mgr2 = netenv.new_manager()
    netenv.run(mgr2.startup())
    assert mgr2.attachments(gone) == []
    # The bridge plugin cannot find the masquerade rules without the netns;
    # podkit removes them itself, and portmap's and the lease go with DEL.
    assert iptables_lines(gone) == []
    assert leases(netenv.base / "root" / "networks" / "ipam") == [f"podkit/{att_alive['ip']}"]
    # The live owner keeps its network across the restart.
    assert [a["ip"] for a in mgr2.attachments(alive)] == [att_alive["ip"]]
    assert netenv.run(mgr2.check(alive))[0]["ok"]
    assert iptables_lines(f"-A POSTROUTING -s {netenv.subnet}")  # still masqueraded
    # Owners known to be gone by their layer (live set) are cleaned with their pins.
    assert netenv.run(mgr2.cleanup_stale(live_owner_ids=[], kind="container")) == [alive]
    assert mgr2.attachments() == [] and mgr2.netns.list() == []


def test_networks_create_validate_and_remove(netenv: NetEnv) -> None:
    from tests.fixtures.network import free_network as unique_network

    mgr = netenv.mgr
    default = mgr.get("bridge")
    assert default.default and default.bridge == netenv.bridge and default.subnet == netenv.subnet
    with pytest.raises(errors.Conflict, match="default"):
        netenv.run(mgr.remove("podkit"))
    br, sub = unique_network()
    netenv.bridges.append(br)
    bad = [
        (dict(name="x", subnet="10.1.2.3/24"), errors.InvalidArgument, "host bits"),
        (dict(name="x", subnet="nonsense"), errors.InvalidArgument, "invalid subnet"),
        (dict(name="x", subnet="fd00::/64"), errors.InvalidArgument, "IPv4"),
        (dict(name="x", subnet=netenv.subnet), errors.Conflict, "overlaps with network podkit"),
        (dict(name="x", subnet=sub, gateway="10.0.0.1"), errors.InvalidArgument, "gateway"),
        (dict(name="x", subnet=sub, bridge="a-name-far-too-long"), errors.InvalidArgument, "bridge"),
        (dict(name="x", subnet=sub, bridge=netenv.bridge), errors.Conflict, "bridge"),
        (dict(name="bad name!"), errors.InvalidArgument, "network name"),
        (dict(name="host"), errors.InvalidArgument, "reserved"),
        (dict(name="podkit"), errors.AlreadyExists, "already exists"),
    ]
    for kw, exc, msg in bad:
        with pytest.raises(exc, match=msg):
            netenv.run(mgr.create(**kw))
    n = netenv.run(mgr.create("x", subnet=sub, bridge=br, ip_range=sub.replace(".0/24", ".128/25")))
    assert n.gateway == sub.replace(".0/24", ".1")
    assert mgr.get(n.id[:12]).name == "x"
    rng = n.conflist("/ipam")["plugins"][0]["ipam"]["ranges"][0][0]
    assert rng["rangeStart"].endswith(".129") and rng["rangeEnd"].endswith(".254")
    assert [p["type"] for p in n.conflist("/ipam")["plugins"]] == ["bridge", "portmap"]
    with pytest.raises(errors.InvalidArgument, match="mtu"):
        netenv.run(mgr.create("y", subnet=sub.replace(".0/24", ".0/25"), options={"mtu": "9"}))
    with pytest.raises(errors.InvalidArgument, match="unknown network option"):
        netenv.run(mgr.create("y", options={"colour": "blue"}))
    assert [x.name for x in netenv.run(mgr.prune())] == ["x"]
    assert [x.name for x in mgr.list()] == ["podkit"]


def test_auto_subnet_skips_taken_ones(netenv: NetEnv) -> None:
    from podkit.network.manager import host_routes
    from tests.fixtures.network import free_network

    # A pool of this test's own: a /23 nobody routes, with its first /24 taken by
    # a network of ours, so the pick must be the second.
    for _ in range(50):
        base = ipaddress.ip_network(free_network()[1]).supernet(new_prefix=23)
        if not any(r.overlaps(base) for r, _ in host_routes()):
            break
    first, second = base.subnets(new_prefix=24)
    mgr = netenv.new_manager({"subnet_pool": str(base)})
    netenv.run(mgr.create("taken", subnet=str(first)))
    n = netenv.run(mgr.create("auto"))
    assert n.subnet == str(second)
    with pytest.raises(errors.Conflict, match="no free"):
        netenv.run(mgr.create("auto2"))
    netenv.run(mgr.remove("auto"))
    netenv.run(mgr.remove("taken"))


def test_no_loopback_resolvers_and_hosts_file(tmp_path: Path) -> None:
    from podkit.network import hosts_file, parse_add_host, resolv_conf

    host = tmp_path / "resolv.conf"
    host.write_text(
        "# comment\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.10\n"
        "search example.test corp.test\noptions edns0 trust-ad\n"
    )
    text = resolv_conf(host_file=host)
    assert "127.0.0.53" not in text and "::1" not in text
    assert "nameserver 192.0.2.10" in text and "search example.test corp.test" in text
    assert "options edns0 trust-ad" in text
    host.write_text("nameserver 127.0.0.53\n")
    assert "nameserver" not in resolv_conf(host_file=host)
    text = resolv_conf(["192.0.2.1"], ["a.test"], ["ndots:2"], host_file=host)
    assert text.splitlines()[1:] == ["search a.test", "nameserver 192.0.2.1", "options ndots:2"]
    with pytest.raises(errors.InvalidArgument, match="DNS server"):
        resolv_conf(["not-an-ip"], host_file=host)
    hosts = hosts_file(
        "web", "10.89.0.5", [parse_add_host("db:10.0.0.9"), parse_add_host("v6:fd00::1")], aliases=["app"]
    )
    lines = hosts.splitlines()
    assert "127.0.0.1\tlocalhost" in lines and "10.89.0.5\tweb app" in lines
    assert "10.0.0.9\tdb" in lines and "fd00::1\tv6" in lines
    assert "127.0.1.1\tsolo" in hosts_file("solo").splitlines()
    with pytest.raises(errors.InvalidArgument, match="add-host"):
        parse_add_host("nocolon")


@pytest.mark.parametrize(
    "spec,want",
    [
        ("80", [("", 0, 80, "tcp")]),
        ("8080:80", [("", 8080, 80, "tcp")]),
        ("127.0.0.1:8080:80/udp", [("127.0.0.1", 8080, 80, "udp")]),
        ("127.0.0.1::80", [("127.0.0.1", 0, 80, "tcp")]),
        ("[::1]:8080:80", [("::1", 8080, 80, "tcp")]),
        ("8000-8001:80-81", [("", 8000, 80, "tcp"), ("", 8001, 81, "tcp")]),
        ("90-91", [("", 0, 90, "tcp"), ("", 0, 91, "tcp")]),
        ("53:53/UDP", [("", 53, 53, "udp")]),
        ("0.0.0.0:8080:80", [("", 8080, 80, "tcp")]),
    ],
)
def test_parse_port_spec(spec: str, want: list[tuple[str, int, int, str]]) -> None:
    assert [(p.host_ip, p.host_port, p.container_port, p.protocol) for p in parse_port_spec(spec)] == want


@pytest.mark.parametrize(
    "spec,msg",
    [
        ("", "empty"),
        ("abc", "container port 'abc'"),
        ("8080:0", "1-65535"),
        ("70000:80", "host port '70000'"),
        ("80/icmp", "protocol 'icmp'"),
        ("1.2.3:80:80", "host IP '1.2.3'"),
        ("8000-8002:80-81", "differ in length"),
        ("81-80", "end before start"),
        (":80", "empty host port"),
        ("a:b:c:d", "expected"),
    ],
)
def test_parse_port_spec_errors(spec: str, msg: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=msg):
        parse_port_spec(spec)


def test_duplicate_host_port_refused() -> None:
    from podkit.network import parse_port_specs

    with pytest.raises(errors.InvalidArgument, match="published twice"):
        parse_port_specs(["8080:80", "8080:81"])
    assert len(parse_port_specs(["8080:80", "8080:80/udp"])) == 2


def test_no_leftovers_helper_sees_rules(netenv: NetEnv) -> None:
    """The leak check itself can fail: a rule carrying the subnet is seen."""
    prefix = netenv.subnet.rsplit(".", 1)[0]
    rule = ["-t", "nat", "-A", "POSTROUTING", "-s", f"{prefix}.250/32", "-j", "RETURN"]
    subprocess.run(["iptables", "-w", *rule], check=True)
    try:
        assert netenv.leftovers()["iptables"]
    finally:
        subprocess.run(["iptables", "-w", *[("-D" if a == "-A" else a) for a in rule]], check=True)
    assert not netenv.leftovers()["iptables"]


def test_firewall_plugin_rules_come_and_go(netenv: NetEnv) -> None:
    """With `firewall = true` the firewall plugin ACCEPTs the owner's forwarded
    traffic; DEL takes the rules away again (by the cached result's IP)."""
    mgr = netenv.new_manager({"firewall": True})
    owner = uid("f1rewa11")
    netenv.owners.append(owner)
    ns = mgr.create_netns(owner)
    [att] = netenv.run(mgr.attach(owner, ns, []))
    plugins = mgr.store.attachments(owner)[0]["conflist"]["plugins"]
    assert [p["type"] for p in plugins] == ["bridge", "firewall"]
    assert iptables_lines(f"-A CNI-FORWARD -s {att['ip']}/32")
    assert netenv.run(mgr.check(owner))[0]["ok"]
    netenv.run(mgr.detach(owner))
    mgr.remove_netns(owner)
    assert iptables_lines(f"{att['ip']}/32") == []


def test_connect_and_disconnect_events(netenv: NetEnv) -> None:
    events: list[tuple[Any, ...]] = []
    mgr = netenv.new_manager(publish=lambda *a, **kw: events.append((*a, kw)))
    owner = uid("e7e7e7e7")
    netenv.owners.append(owner)
    ns = mgr.create_netns(owner, "pod")
    netenv.run(mgr.attach(owner, ns, [], kind="pod", namespace="k8s.io"))
    netenv.run(mgr.detach(owner))
    mgr.remove_netns(owner, "pod")
    nid = mgr.get("podkit").id
    assert events == [
        ("k8s.io", "network", "connect", nid, {"name": "podkit", "pod": owner}),
        ("k8s.io", "network", "disconnect", nid, {"name": "podkit", "pod": owner}),
    ]


def test_forced_cleanup_when_del_cannot_run(netenv: NetEnv) -> None:
    """The plugins are gone (DEL fails): a plain detach keeps the attachment and
    says why; cleanup of a known-dead owner still removes rules, lease and pin."""
    owner = uid("nop1ug1n5")
    netenv.owners.append(owner)
    ns = netenv.mgr.create_netns(owner)
    [att] = netenv.run(netenv.mgr.attach(owner, ns, [], parse_port_spec("80")))
    empty = netenv.base / "no-plugins"
    empty.mkdir()
    mgr = netenv.new_manager({"cni_plugin_dirs": [str(empty)]})
    # portmap is needed only by a network whose CNI file lists it (podkit forwards ports itself)
    assert mgr.info()["missing_plugins"] == ["loopback", "bridge", "host-local"]
    assert mgr.ready() == (False, "CNI plugins missing: loopback, bridge, host-local")
    assert netenv.mgr.ready() == (True, "")
    assert netenv.mgr.info()["missing_plugins"] == []
    with pytest.raises(errors.Unavailable, match="not found"):
        netenv.run(mgr.detach(owner))
    assert [a["ip"] for a in mgr.attachments(owner)] == [att["ip"]]
    assert netenv.run(mgr.cleanup_stale(live_owner_ids=set(), kind="container")) == [owner]
    assert mgr.attachments() == [] and mgr.netns.list() == []
    assert iptables_lines(owner, f"{att['ip']}/32") == []
    assert leases(netenv.base / "root" / "networks" / "ipam") == []
    assert mgr.cni.list_cached() == []
    assert wait_for(lambda: links_on(netenv.bridge) == [], timeout=30, what="the veth to go")


_PEER_SERVER = (
    "import socket\n"
    "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.bind(('0.0.0.0', 80)); s.listen()\n"
    "while True:\n"
    "    c, a = s.accept(); c.recv(1024)\n"
    "    c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\n' + a[0].encode()); c.close()\n"
)


def test_traffic_leaving_a_network_is_masqueraded(netenv: NetEnv) -> None:
    """From one network to another the host routes, and the source is rewritten
    to the host's address on the way out; inside a network it is not."""
    from tests.fixtures.network import free_network

    mgr = netenv.mgr
    bridge2, subnet2 = free_network()
    netenv.bridges.append(bridge2)
    n2 = netenv.run(mgr.create("other", subnet=subnet2, bridge=bridge2))
    a, b, c = uid("masqa001"), uid("masqb001"), uid("masqc001")
    netenv.owners += [a, b, c]
    ns = {o: mgr.create_netns(o) for o in (a, b, c)}
    [att_a] = netenv.run(mgr.attach(a, ns[a], ["podkit"]))
    [att_b] = netenv.run(mgr.attach(b, ns[b], ["other"]))
    [att_c] = netenv.run(mgr.attach(c, ns[c], ["other"]))
    netenv.procs.start(ns[b], sys.executable, "-c", _PEER_SERVER)
    seen = wait_for(lambda: get_in(netenv, ns[a], att_b["ip"], 80), timeout=30, what="b from a")
    assert seen == n2.gateway  # masqueraded to the host's address on b's bridge
    assert get_in(netenv, ns[c], att_b["ip"], 80) == att_c["ip"]  # same network: as is
    for o in (a, b, c):
        netenv.run(mgr.detach(o))
        mgr.remove_netns(o)
    assert iptables_lines(f"-s {subnet2}", f"-s {netenv.subnet}") == []
    netenv.run(mgr.remove("other"))


def test_default_network_follows_the_config_and_bad_config_is_named(netenv: NetEnv) -> None:
    from tests.fixtures.network import free_network

    br, sub = free_network()
    mgr = netenv.new_manager({"default_bridge": br, "default_subnet": sub})
    d = netenv.run(mgr.ensure_default())  # unused: re-shaped to the new settings
    assert (d.name, d.bridge, d.subnet, d.gateway) == ("podkit", br, sub, sub.replace(".0/24", ".1"))
    assert mgr.get("podkit").id == netenv.mgr.get("podkit").id
    for cfg, msg in [
        ({"default_subnet": "10.0.0.0/33"}, "config \\[network\\]: invalid subnet"),
        ({"default_bridge": "x" * 16}, "config \\[network\\]: invalid bridge"),
        ({"firewall": "maybe"}, "firewall must be"),
    ]:
        with pytest.raises(errors.InvalidArgument, match=msg):
            netenv.new_manager(cfg)


def test_concurrent_attach_and_detach(netenv: NetEnv) -> None:
    """Pods come and go at once: distinct IPs and ports, and all of it undone."""
    import asyncio

    mgr = netenv.mgr
    owners = [uid(f"par{i:02d}") for i in range(8)]
    netenv.owners += owners
    ns = {o: mgr.create_netns(o, "pod") for o in owners}

    async def up() -> list[Any]:
        return await asyncio.gather(
            *(
                mgr.attach(o, ns[o], [], parse_port_spec("80") if i % 2 else [], kind="pod")
                for i, o in enumerate(owners)
            )
        )

    res = netenv.run(up())
    ips = [r[0]["ip"] for r in res]
    ports = [p["host_port"] for r in res for p in r[0]["ports"]]
    assert len(set(ips)) == len(owners) and len(set(ports)) == len(owners) // 2
    assert len(links_on(netenv.bridge)) == len(owners)

    async def down() -> list[int]:
        return await asyncio.gather(*(mgr.detach(o) for o in owners))

    assert netenv.run(down()) == [1] * len(owners)
    for o in owners:
        mgr.remove_netns(o, "pod")
    assert netenv.leftovers() == {"iptables": [], "veths": [], "pins": [], "leases": []}


def test_internal_network_with_an_ip_range(netenv: NetEnv) -> None:
    """--internal: no gateway on the host, no default route, no masquerade;
    --ip-range: addresses come from the sub-range only."""
    from tests.fixtures.network import free_network

    mgr = netenv.mgr
    br, sub = free_network()
    netenv.bridges.append(br)
    rng = sub.replace(".0/24", ".64/26")
    n = netenv.run(mgr.create("inner", subnet=sub, bridge=br, internal=True, ip_range=rng))
    a, b = uid("inner001"), uid("inner002")
    netenv.owners += [a, b]
    ns_a, ns_b = mgr.create_netns(a), mgr.create_netns(b)
    [att_a] = netenv.run(mgr.attach(a, ns_a, ["inner"]))
    [att_b] = netenv.run(mgr.attach(b, ns_b, ["inner"]))
    for att in (att_a, att_b):
        assert ipaddress.ip_address(att["ip"]) in ipaddress.ip_network(rng)
    assert "default" not in netenv.procs.run(ns_a, "ip", "route").stdout
    assert iptables_lines(f"-s {sub}") == []  # nothing masqueraded
    assert mgr.inspect("inner")["masquerade_chain"] == ""
    # Members still talk to each other over the bridge.
    ping = netenv.procs.run(ns_a, "busybox", "ping", "-c", "1", "-W", "2", att_b["ip"])
    assert ping.returncode == 0, ping.stdout
    for o in (a, b):
        netenv.run(mgr.detach(o))
        mgr.remove_netns(o)
    netenv.run(mgr.remove(n.name))


def test_fixed_ip(netenv: NetEnv) -> None:
    mgr = netenv.mgr
    prefix = netenv.subnet.rsplit(".", 1)[0]
    a, b = uid("fixed001"), uid("fixed002")
    netenv.owners += [a, b]
    ns_a, ns_b = mgr.create_netns(a), mgr.create_netns(b)
    [att] = netenv.run(mgr.attach(a, ns_a, ["bridge"], ips={"bridge": f"{prefix}.77"}))
    assert att["ip"] == f"{prefix}.77"
    assert f"{prefix}.77/24" in netenv.procs.run(ns_a, "ip", "-o", "-4", "addr").stdout
    for ips, exc, msg in [
        ({"podkit": f"{prefix}.77"}, errors.Conflict, "already in use"),
        ({"podkit": f"{prefix}.1"}, errors.InvalidArgument, "not a free host address"),
        ({"podkit": "192.0.2.9"}, errors.InvalidArgument, "not a free host address"),
        ({"podkit": "nonsense"}, errors.InvalidArgument, "invalid IP"),
        ({"elsewhere": f"{prefix}.9"}, errors.InvalidArgument, "not one being joined"),
    ]:
        with pytest.raises(exc, match=msg):
            netenv.run(mgr.attach(b, ns_b, [], ips=ips))
    assert mgr.attachments(b) == []
    netenv.run(mgr.detach(a))
    # Free again once released.
    [att] = netenv.run(mgr.attach(b, ns_b, [], ips={"podkit": f"{prefix}.77"}))
    assert att["ip"] == f"{prefix}.77"
    netenv.run(mgr.detach(b))
    for o in (a, b):
        mgr.remove_netns(o)


def test_mtu_option(netenv: NetEnv) -> None:
    from tests.fixtures.network import free_network

    mgr = netenv.mgr
    br, sub = free_network()
    netenv.bridges.append(br)
    n = netenv.run(
        mgr.create("jumbo", subnet=sub, bridge=br, options={"com.docker.network.driver.mtu": "1400"})
    )
    assert mgr.get("jumbo").options == {"mtu": 1400} == n.options
    owner = uid("mtu00001")
    netenv.owners.append(owner)
    ns = mgr.create_netns(owner)
    netenv.run(mgr.attach(owner, ns, ["jumbo"]))
    assert "mtu 1400" in netenv.procs.run(ns, "ip", "-o", "link", "show", "eth0").stdout
    netenv.run(mgr.detach(owner))
    mgr.remove_netns(owner)
    netenv.run(mgr.remove("jumbo"))


def test_cleanup_stale_of_one_kind_leaves_the_other(netenv: NetEnv) -> None:
    """The pods layer's cleanup (kind="pod") must not touch containers' attachments."""
    mgr = netenv.mgr
    pod, ctr = uid("kindpod"), uid("kindctr")
    netenv.owners += [pod, ctr]
    ns_p, ns_c = mgr.create_netns(pod, "pod"), mgr.create_netns(ctr, "container")
    netenv.run(mgr.attach(pod, ns_p, [], kind="pod"))
    netenv.run(mgr.attach(ctr, ns_c, [], kind="container"))
    assert netenv.run(mgr.cleanup_stale([], kind="pod")) == [pod]
    assert [a["owner_id"] for a in mgr.attachments()] == [ctr]
    assert mgr.netns.list() == [f"container-{ctr}"]
    assert netenv.run(mgr.cleanup_stale([ctr], kind="container")) == []
    netenv.run(mgr.detach(ctr))
    mgr.remove_netns(ctr)
