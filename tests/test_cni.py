"""podkit's CNI runtime against the real plugins: chaining, errors, cache, CHECK."""

from __future__ import annotations

import ipaddress
import subprocess
from typing import Any

import pytest

from podkit import errors
from podkit.network.cni import CNI, CNIError
from tests.fixtures.network import NetEnv, leases, links_on


def conflist(env: NetEnv, *extra: dict[str, Any], subnet: str | None = None) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": "cnitest",
        "plugins": [
            {
                "type": "bridge",
                "bridge": env.bridge,
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(env.base / "root" / "networks" / "ipam"),
                    "ranges": [[{"subnet": subnet or env.subnet}]],
                },
            },
            *extra,
        ],
    }


def cni(env: NetEnv) -> CNI:
    return CNI(cache_dir=env.base / "root" / "cni")


def test_version_of_a_plugin(netenv: NetEnv) -> None:
    v = netenv.run(cni(netenv).version("bridge"))
    assert "1.0.0" in v["supportedVersions"]


def test_prev_result_is_chained_and_del_uses_the_cache(netenv: NetEnv) -> None:
    runner = cni(netenv)
    ns = netenv.mgr.create_netns("chain1")
    # tuning only works on a prevResult: it sets the MAC it was told to and says so
    # in the result it passes on, which must still hold bridge's IP.
    mac = "02:42:ac:11:00:99"
    cl = conflist(netenv, {"type": "tuning", "mac": mac})
    res = netenv.run(runner.add(cl, "chain1", ns, "eth0"))
    [ip] = res["ips"]
    assert ipaddress.ip_interface(ip["address"]) in ipaddress.ip_network(netenv.subnet)
    sandbox = [i for i in res["interfaces"] if i.get("sandbox") == ns]
    assert sandbox and sandbox[0]["mac"] == mac
    out = netenv.procs.run(ns, "ip", "-o", "link", "show", "eth0").stdout
    assert mac in out
    cached = runner.cached("cnitest", "chain1", "eth0")
    assert cached and cached["result"] == res and cached["netns"] == ns

    # A new runner (a restarted daemon) needs nothing but the cache for DEL.
    netenv.run(
        CNI(cache_dir=netenv.base / "root" / "cni").delete(None, "chain1", ns, "eth0", network="cnitest")
    )
    assert runner.cached("cnitest", "chain1", "eth0") is None
    assert leases(netenv.base / "root" / "networks" / "ipam") == []
    assert links_on(netenv.bridge) == []
    netenv.mgr.remove_netns("chain1")


def test_plugin_error_is_clear_and_add_is_undone(netenv: NetEnv) -> None:
    runner = cni(netenv)
    # A /30 has one address for a container once the gateway takes the first.
    tiny = netenv.subnet.replace(".0/24", ".0/30")
    first, second = netenv.mgr.create_netns("full1"), netenv.mgr.create_netns("full2")
    netenv.run(runner.add(conflist(netenv, subnet=tiny), "full1", first, "eth0"))
    with pytest.raises(CNIError) as ei:
        netenv.run(runner.add(conflist(netenv, subnet=tiny), "full2", second, "eth0"))
    e = ei.value
    assert e.plugin == "bridge" and "no IP addresses available" in e.message
    assert "cnitest" in e.message and isinstance(e, errors.PodkitError)
    # The failed ADD was rolled back: one veth (the first's), no cache entry.
    assert len(links_on(netenv.bridge)) == 1
    assert runner.cached("cnitest", "full2", "eth0") is None
    netenv.run(runner.delete(None, "full1", first, "eth0", network="cnitest"))
    for n in ("full1", "full2"):
        netenv.mgr.remove_netns(n)


def test_missing_plugin_and_bad_lists(netenv: NetEnv) -> None:
    runner = cni(netenv)
    ns = netenv.mgr.create_netns("miss1")
    with pytest.raises(errors.Unavailable, match="'nosuchplugin' not found"):
        netenv.run(
            runner.add(
                {"cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "nosuchplugin"}]},
                "miss1",
                ns,
                "eth0",
            )
        )
    with pytest.raises(errors.InvalidArgument):
        netenv.run(runner.add({"name": "x", "plugins": []}, "miss1", ns, "eth0"))
    with pytest.raises(errors.InvalidArgument):
        runner.find_plugin("../bin/sh")
    assert runner.list_cached() == []
    netenv.mgr.remove_netns("miss1")


def test_check_notices_a_broken_interface(netenv: NetEnv) -> None:
    runner = cni(netenv)
    ns = netenv.mgr.create_netns("check1")
    cl = conflist(netenv)
    netenv.run(runner.add(cl, "check1", ns, "eth0"))
    netenv.run(runner.check(cl, "check1", ns, "eth0"))  # healthy
    subprocess.run(["nsenter", f"--net={ns}", "ip", "link", "del", "eth0"], check=True)
    with pytest.raises(CNIError, match="eth0"):
        netenv.run(runner.check(cl, "check1", ns, "eth0"))
    netenv.run(runner.delete(cl, "check1", ns, "eth0"))
    with pytest.raises(errors.NotFound):
        netenv.run(runner.check(cl, "check1", ns, "eth0"))
    netenv.mgr.remove_netns("check1")
