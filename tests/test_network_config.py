"""The network layer's pure parts, without root: CNI plugin lists rendered from networks,
their validation, a CNI result's summary, port mappings, and the [network] config."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from podkit import errors
from podkit.network import PortMapping
from podkit.network.config import (
    Network,
    check_bridge,
    check_name,
    parse_gateway,
    parse_ip_range,
    parse_options,
    parse_subnet,
)
from podkit.network.hostports import resolve_ports
from podkit.network.manager import NetworkManager
from podkit.network.summary import summary
from podkit.store import Database


def _net(**kw: object) -> Network:
    base: dict[str, object] = dict(
        name="n", id="a" * 64, bridge="br0", subnet="10.5.0.0/24", gateway="10.5.0.1"
    )
    base.update(kw)
    return Network(**base)  # type: ignore[arg-type]


def test_conflist_of_a_plain_network() -> None:
    conf = _net().conflist("/ipam")
    assert conf["cniVersion"] == "1.0.0" and conf["name"] == "n"
    bridge, portmap = conf["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "br0"
    assert bridge["isGateway"] is True and bridge["hairpinMode"] is True and bridge["ipMasq"] is True
    assert bridge["ipam"] == {
        "type": "host-local",
        "dataDir": "/ipam",
        "ranges": [[{"subnet": "10.5.0.0/24", "gateway": "10.5.0.1"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
    }
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    assert "mtu" not in bridge


def test_conflist_options_internal_range_firewall_and_no_portmap() -> None:
    n = _net(internal=True, ip_range="10.5.0.64/26", options={"mtu": 1400})
    conf = n.conflist("/ipam", firewall=True, portmap=False, plugin_masq=False)
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "firewall"]
    bridge = conf["plugins"][0]
    assert bridge["mtu"] == 1400
    # internal: no gateway role, no default route, never masqueraded
    assert bridge["isGateway"] is False and bridge["ipMasq"] is False
    assert bridge["ipam"]["routes"] == []
    rng = bridge["ipam"]["ranges"][0][0]
    assert (rng["rangeStart"], rng["rangeEnd"]) == ("10.5.0.65", "10.5.0.126")
    assert conf["plugins"][1] == {"type": "firewall", "backend": "iptables"}
    # podkit masquerades the network itself: the plugin's ipMasq stays off
    assert _net().conflist("/ipam", plugin_masq=False)["plugins"][0]["ipMasq"] is False


@pytest.mark.parametrize(
    ("call", "msg"),
    [
        (lambda: check_name("bad name!"), "invalid network name"),
        (lambda: check_name("name\n"), "invalid network name"),
        (lambda: check_name("none"), "reserved"),
        (lambda: check_bridge("x" * 16), "invalid bridge name"),
        (lambda: parse_subnet("10.1.2.3/24"), "host bits"),
        (lambda: parse_subnet("fd00::/64"), "only IPv4"),
        (lambda: parse_subnet("10.0.0.0/31"), "too small"),
        (lambda: parse_subnet("127.0.0.0/8"), "not a unicast range"),
        (lambda: parse_gateway("10.9.0.1", ipaddress.IPv4Network("10.5.0.0/24")), "not a host address"),
        (lambda: parse_gateway("10.5.0.255", ipaddress.IPv4Network("10.5.0.0/24")), "not a host address"),
        (lambda: parse_ip_range("10.6.0.0/25", ipaddress.IPv4Network("10.5.0.0/24")), "not inside"),
        (lambda: parse_options({"mtu": "9"}), "must be 68-65535"),
        (lambda: parse_options({"mtu": "x"}), "not a number"),
        (lambda: parse_options({"colour": "blue"}), "unknown network option"),
    ],
)
def test_bad_network_settings_are_named(call: object, msg: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=msg):
        call()  # type: ignore[operator]


def test_docker_style_mtu_option() -> None:
    assert parse_options({"com.docker.network.driver.mtu": "1450"}) == {"mtu": 1450}


def test_summary_of_a_cni_result_picks_the_sandbox_interface() -> None:
    result = {
        "interfaces": [
            {"name": "br0", "mac": "aa:aa:aa:aa:aa:aa"},
            {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb"},
            {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/netns/x"},
        ],
        "ips": [
            {"interface": 2, "address": "fd00::5/64"},
            {"interface": 2, "address": "10.5.0.7/24", "gateway": "10.5.0.1"},
        ],
    }
    ports = [PortMapping("", 8080, 80, "tcp")]
    s = summary("n", "id", "eth0", "/run/netns/x", result, ports)
    assert s == {
        "network": "n",
        "network_id": "id",
        "interface": "eth0",
        "ip": "10.5.0.7",
        "prefix": 24,
        "gateway": "10.5.0.1",
        "mac": "cc:cc:cc:cc:cc:cc",
        "ports": [{"host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp"}],
    }
    assert summary("n", "id", "eth0", "", {}, [])["ip"] == ""


def test_port_mapping_objects() -> None:
    assert PortMapping.from_dict({"hostPort": 8080, "containerPort": 80}) == PortMapping("", 8080, 80, "tcp")
    assert PortMapping.from_dict({"container_port": "53", "protocol": "UDP"}).protocol == "udp"
    for bad in (
        {},
        {"container_port": "x"},
        {"container_port": 0},
        {"container_port": 80, "protocol": "icmp"},
    ):
        with pytest.raises(errors.InvalidArgument):
            PortMapping.from_dict(bad)
    with pytest.raises(errors.InvalidArgument, match="want a spec string or an object"):
        PortMapping.from_dict("80")  # type: ignore[arg-type]


def test_published_ports_clash_before_anything_is_bound(tmp_path: Path) -> None:
    """Host ports another owner publishes are refused (nothing is bound for the request)."""
    mgr = NetworkManager(Database(tmp_path / "db"), tmp_path / "root", tmp_path / "state")
    n = _net()
    mgr.store.insert(n)
    taken = PortMapping("", 8080, 80, "tcp")
    mgr.store.add_attachment("owner-a", "eth0", "container", "", n, "/x", {}, [taken.to_dict()])
    assert mgr.published_ports() == {(8080, "tcp"): [("", "owner-a")]}
    with pytest.raises(errors.Conflict, match="already published by owner-a"):
        resolve_ports(mgr._ctx, [PortMapping("127.0.0.1", 8080, 80, "tcp")])
    with pytest.raises(errors.InvalidArgument, match="IPv4 only"):
        resolve_ports(mgr._ctx, [PortMapping("::1", 8081, 80, "tcp")])


@pytest.mark.parametrize(
    ("config", "msg"),
    [
        ({"default_subnet": "10.0.0.0/33"}, r"config \[network\]: invalid subnet"),
        ({"default_bridge": "x" * 16}, r"config \[network\]: invalid bridge"),
        ({"default_network": "bad name"}, r"config \[network\]: invalid network name"),
        ({"subnet_pool": "nonsense"}, r"config \[network\]: invalid subnet"),
        ({"firewall": "sometimes"}, "firewall must be true, false or"),
    ],
)
def test_bad_network_config_is_named(tmp_path: Path, config: dict[str, object], msg: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=msg):
        NetworkManager(Database(tmp_path / "db"), tmp_path / "root", tmp_path / "state", config)


def test_network_config_defaults(tmp_path: Path) -> None:
    mgr = NetworkManager(
        Database(tmp_path / "db"), tmp_path / "root", tmp_path / "state", {"cni_plugin_dirs": "/a:/b"}
    )
    assert (mgr.default_name, mgr.default_bridge, mgr.default_subnet) == ("podkit", "podkit0", "10.89.0.0/24")
    assert str(mgr.pool) == "10.89.0.0/16"
    assert mgr.cni.plugin_dirs == ["/a", "/b"]
    assert mgr.firewall is False  # "auto" is decided at startup
    assert mgr.ipam_dir == tmp_path / "root" / "networks" / "ipam"
    assert mgr.netns_path("abc", "pod") == str(tmp_path / "state" / "netns" / "pod-abc")
