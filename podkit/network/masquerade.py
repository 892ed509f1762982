"""Masquerade, one rule set per network.

The bridge plugin's ipMasq makes a chain and three rules per container and tears
them down on DEL: ~60 ms of iptables calls per container, and rules it cannot
find again once the netns is gone. podkit instead masquerades a whole network
with one chain (PODKIT-<id>) that lives while anything is attached.
"""

from __future__ import annotations

from podkit.network import iptables
from podkit.network.config import Network
from podkit.network.context import NetworkContext


def masq_chain(n: Network) -> str:
    return f"PODKIT-{n.id[:16]}"


async def masq_up(ctx: NetworkContext, n: Network) -> None:
    if not n.ipmasq or n.internal or n.id in ctx.masq_on:
        return
    await iptables.ensure_masquerade(masq_chain(n), n.subnet, f"podkit network {n.name}")
    ctx.masq_on.add(n.id)


async def masq_down(ctx: NetworkContext, n: Network) -> None:
    ctx.masq_on.discard(n.id)
    await iptables.remove_masquerade(masq_chain(n), n.subnet)


async def drop_attachment(ctx: NetworkContext, network_id: str, owner_id: str, ifname: str) -> None:
    """Forget one attachment; the network's masquerade goes with its last one."""
    async with ctx.net_lock(network_id):
        ctx.store.drop_attachment(owner_id, ifname)
        if not ctx.store.attachments(network_id=network_id):
            n = next((x for x in ctx.store.networks() if x.id == network_id), None)
            if n is not None:
                await masq_down(ctx, n)


async def reconcile(ctx: NetworkContext) -> None:
    """At start: rules for networks in use, none for the others (after a crash)."""
    present = await iptables.nat_chains()
    for n in ctx.store.networks():
        async with ctx.net_lock(n.id):
            if ctx.store.attachments(network_id=n.id):
                ctx.masq_on.discard(n.id)
                await masq_up(ctx, n)
            elif masq_chain(n) in present:
                await masq_down(ctx, n)
