"""`podkit network ...` against a real podkitd, and the daemon's network recovery."""

from __future__ import annotations

import asyncio
import json
import time

from podkit import errors
from tests.fixtures.network import (
    bridge_exists,
    can_listen,
    iptables_lines,
    leases,
    links_on,
    subnet_prefix,
    uid,
)
from tests.fixtures.network import free_network as unique_network
from tests.helpers import Daemon


def test_network_commands(daemon: Daemon) -> None:
    br, sub = unique_network()
    r = daemon.cli("network", "ls", "--format", "json", check=True)
    [default] = [json.loads(line) for line in r.stdout.splitlines()]  # docker's: a line a network
    assert default["Name"] == "podkit" and default["Driver"] == "bridge" and default["IPv4"] == "true"
    assert default["Bridge"] == daemon.bridge and default["Subnet"] == daemon.subnet

    r = daemon.cli(
        "network", "create", "--subnet", sub, "--bridge", br, "--label", "team=a", "web", check=True
    )
    net_id = r.stdout.strip()
    assert len(net_id) == 64
    try:
        assert daemon.cli("network", "ls", "-q", check=True).stdout.split() == ["podkit", "web"]
        assert daemon.cli("network", "ls", "-q", "-f", "label=team=a", check=True).stdout.split() == ["web"]
        assert daemon.cli("network", "ls", "-q", "-f", "name=we", check=True).stdout.split() == ["web"]
        assert (
            daemon.cli(
                "network", "ls", "-q", "-f", f"id={net_id[:6]}", "-f", "name=podk", check=True
            ).stdout.split()
            == []
        )
        r = daemon.cli("network", "ls", "-f", "colour=red")
        assert r.returncode == 1 and "unsupported filter" in r.stderr
        table = daemon.cli("network", "ls", check=True).stdout
        assert "NETWORK ID" in table and net_id[:12] in table and sub in table
        [info] = json.loads(daemon.cli("network", "inspect", net_id[:12], check=True).stdout)
        assert info["name"] == "web" and info["labels"] == {"team": "a"}
        assert info["gateway"] == sub.replace(".0/24", ".1") and info["attachments"] == []
        assert [p["type"] for p in info["cni"]["plugins"]] == [
            "bridge"
        ]  # published ports: podkit's own rules

        # Bad input: a clear message and exit code 1, nothing created.
        for args, msg in [
            (["--subnet", sub, "other"], f"subnet {sub} overlaps with network web"),
            (["--subnet", "10.0.0.1/24", "other"], "host bits set"),
            (["--subnet", "300.1.2.0/24", "other"], "invalid subnet"),
            (["web"], "network web already exists"),
            (["host"], "reserved"),
        ]:
            r = daemon.cli("network", "create", *args)
            assert r.returncode == 1 and msg in r.stderr, (args, r.stderr)
        r = daemon.cli("network", "rm", "podkit")
        assert r.returncode == 1 and "default network" in r.stderr
        r = daemon.cli("network", "inspect", "nosuch")
        assert r.returncode == 1 and "network nosuch not found" in r.stderr

        c = daemon.client()
        with_sdk = c.networks.get("web")
        assert with_sdk.id == net_id and with_sdk.containers == 0
        try:
            c.networks.create("bad", subnet="10.1.0.0/33")
        except errors.InvalidArgument as e:
            assert "invalid subnet" in e.message
        else:
            raise AssertionError("expected InvalidArgument")
        for body, msg in [
            ({"name": "b", "internal": "no"}, "'internal' must be of JSON type boolean"),
            ({"name": "b", "labels": ["x"]}, "'labels' must be of JSON type object"),
            ({"name": "b", "subnet": 10}, "'subnet' must be of JSON type string"),
            ({}, "needs a name"),
        ]:
            try:
                c._t.post("/networks", json_body=body)
            except errors.InvalidArgument as e:
                assert msg in e.message
            else:
                raise AssertionError(f"expected InvalidArgument for {body}")

        evs = [e for e in c.events(since=0, until=time.time()) if e["type"] == "network"]
        assert [(e["action"], e["attributes"]["name"]) for e in evs] == [("create", "web")]
        assert "/v1/networks/{name}" in c.openapi()["paths"]

        assert daemon.cli("network", "rm", "web", check=True).stdout.strip() == "web"
        assert daemon.cli("network", "ls", "-q", check=True).stdout.split() == ["podkit"]
        c.networks.create("p1", subnet=sub, bridge=br)
        assert daemon.cli("network", "prune", check=True).stdout.split() == ["Deleted", "Networks:", "p1"]
        assert [n.name for n in c.networks.list()] == ["podkit"]
    finally:
        daemon.cli("network", "rm", "web")
        daemon.cli("network", "rm", "p1")
    assert not bridge_exists(br)


def test_daemon_start_cleans_up_after_a_crash(daemon: Daemon) -> None:
    """podkitd is SIGKILLed while an owner is attached; the owner's netns then
    goes away; the next start DELs the attachment: lease, rules and veth gone."""
    from podkit.network import NetworkManager, parse_port_spec
    from podkit.store import Database

    owner = uid("crashed")
    daemon.kill()
    cfg = {"default_bridge": daemon.bridge, "default_subnet": daemon.subnet}

    async def attach_as_dead_daemon() -> None:
        # What the killed daemon had done: a pinned netns attached with a published port.
        mgr = NetworkManager(Database(daemon.root / "metadata.db"), daemon.root, daemon.state, cfg)
        ns = mgr.create_netns(owner, "pod")
        await mgr.attach(owner, ns, ["podkit"], parse_port_spec("80"), kind="pod")
        mgr.store.db.close()

    asyncio.run(attach_as_dead_daemon())
    ipam = daemon.root / "networks" / "ipam"
    assert iptables_lines(owner) and len(leases(ipam)) == 1 and len(links_on(daemon.bridge)) == 1
    pin = daemon.state / "netns" / f"pod-{owner}"
    # The pod's processes ended while no daemon watched: its netns is gone.
    NetworkManager(Database(daemon.root / "metadata.db"), daemon.root, daemon.state, cfg).remove_netns(
        owner, "pod"
    )
    assert not pin.exists()

    daemon.start()
    [net] = json.loads(daemon.cli("network", "inspect", "podkit", check=True).stdout)
    assert net["attachments"] == []
    assert iptables_lines(owner, subnet_prefix(daemon.subnet)) == []
    assert leases(ipam) == []
    assert links_on(daemon.bridge) == []


def test_network_in_use_by_a_pod(daemon: Daemon) -> None:
    """Through the pods layer: a pod on a user network with a published port shows
    up in inspect, keeps the network from removal, and takes it all away with it."""
    br, sub = unique_network()
    daemon.cli("network", "create", "--subnet", sub, "--bridge", br, "n1", check=True)
    try:
        pod = daemon.cli(
            "pod", "create", "--name", "p1", "--network", "n1", "-p", "127.0.0.1::80", check=True
        ).stdout.strip()
        [net] = json.loads(daemon.cli("network", "inspect", "n1", check=True).stdout)
        [att] = net["attachments"]
        listed = daemon.cli("network", "ls", "--format", "json", check=True).stdout.splitlines()
        assert {n["Name"]: n["Containers"] for n in map(json.loads, listed)} == {"podkit": "0", "n1": "1"}
        assert att["owner_id"] == pod and att["kind"] == "pod" and att["interface"] == "eth0"
        assert att["ip"].startswith(subnet_prefix(sub)) and att["ports"][0]["host_ip"] == "127.0.0.1"
        r = daemon.cli("network", "rm", "n1")
        assert r.returncode == 1 and f"in use by pod {pod[:12]}" in r.stderr
        assert "n1" not in daemon.cli("network", "prune", check=True).stdout
        daemon.cli("pod", "rm", "-f", "p1", check=True)
        assert iptables_lines(subnet_prefix(sub), pod) == []
        assert leases(daemon.root / "networks" / "ipam") == []
        daemon.cli("network", "rm", "n1", check=True)
        assert not bridge_exists(br)
    finally:
        daemon.cli("pod", "rm", "-f", "p1")
        daemon.cli("network", "rm", "n1")


def test_daemon_restart_keeps_a_running_pods_network(daemon: Daemon) -> None:
    """Stopping podkitd leaves running pods wired (veth, rules, pin); the next
    daemon finds the attachment as it was; removing the pod then undoes it all."""
    pod = daemon.cli("pod", "create", "--name", "p1", "-p", "127.0.0.1::80", check=True).stdout.strip()
    try:
        daemon.cli("pod", "start", "p1", check=True)
        [before] = json.loads(daemon.cli("network", "inspect", "podkit", check=True).stdout)[0]["attachments"]
        daemon.stop()
        assert len(links_on(daemon.bridge)) == 1 and iptables_lines(pod)
        assert (daemon.state / "netns" / f"pod-{pod}").exists()
        daemon.start()
        [after] = json.loads(daemon.cli("network", "inspect", "podkit", check=True).stdout)[0]["attachments"]
        assert (after["ip"], after["ports"]) == (before["ip"], before["ports"])
        port = after["ports"][0]["host_port"]
        assert not can_listen("127.0.0.1", port)  # reserved again by the new daemon
        daemon.cli("pod", "rm", "-f", "p1", check=True)
        assert can_listen("127.0.0.1", port)
        assert links_on(daemon.bridge) == [] and iptables_lines(pod, subnet_prefix(daemon.subnet)) == []
        assert leases(daemon.root / "networks" / "ipam") == []
    finally:
        daemon.cli("pod", "rm", "-f", "p1")
