"""The containers layer's start-up recovery releases the network state of containers
that no longer exist (``NetworkManager.cleanup_stale(live, kind="container")``)."""

from __future__ import annotations

import asyncio
import json
import secrets

from tests.fixtures.network import iptables_lines, leases, links_on
from tests.helpers import Daemon


def test_recovery_releases_networks_of_containers_that_no_longer_exist(
    daemon: Daemon, busybox_image: str
) -> None:
    """An attachment (CNI ADD done, netns pinned, port published) whose container record
    is gone — what a daemon leaves when it dies after the ADD and its metadata lost the
    container — is DEL'd and unpinned at the next start; a live container's stays.

    The network layer's own start-up keeps it: its netns pin still exists, so only the
    containers layer, which knows its live ids, can tell it is stale."""
    from podkit.network import NetworkManager, parse_port_spec
    from podkit.store import Database

    c = daemon.client()
    keep = c.containers.run("busybox", ["sleep", "300"], name="keeps")
    keep_ip = c.containers.inspect(keep.id)["network"]["ip"]
    gone = secrets.token_hex(32)
    pin = daemon.state / "netns" / f"container-{gone}"
    cfg = {"default_bridge": daemon.bridge, "default_subnet": daemon.subnet}

    def manager() -> NetworkManager:
        return NetworkManager(Database(daemon.root / "metadata.db"), daemon.root, daemon.state, cfg)

    async def attach_as_dead_daemon() -> None:
        mgr = manager()
        ns = mgr.create_netns(gone)  # kind "container", as the container service pins
        await mgr.attach(gone, ns, ["podkit"], parse_port_spec("80"), namespace="default")
        mgr.store.db.close()

    daemon.kill()
    try:
        asyncio.run(attach_as_dead_daemon())
        ipam = daemon.root / "networks" / "ipam"
        assert pin.exists() and iptables_lines(gone)
        assert len(leases(ipam)) == 2 and len(links_on(daemon.bridge)) == 2

        daemon.start()
        assert not pin.exists()
        assert iptables_lines(gone) == []
        assert len(leases(ipam)) == 1 and len(links_on(daemon.bridge)) == 1
        [net] = json.loads(daemon.cli("network", "inspect", "podkit", check=True).stdout)
        assert [a["owner_id"] for a in net["attachments"]] == [keep.id]
        c = daemon.client()
        info = c.containers.inspect(keep.id)
        assert (info["state"], info["network"]["ip"]) == ("running", keep_ip)
        assert (daemon.state / "netns" / f"container-{keep.id}").exists()
    finally:
        if daemon.proc is None:
            daemon.start()
        daemon.client().containers.remove(keep.id, force=True)
        if pin.exists():  # the test failed before the daemon cleaned up: do it here

            async def undo() -> None:
                mgr = manager()
                await mgr.detach(gone, force=True)
                mgr.remove_netns(gone)
                mgr.store.db.close()

            asyncio.run(undo())
