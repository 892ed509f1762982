"""Undoing attachments: DEL (with or without the netns), CHECK, and the sweep of dead owners."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from podkit.errors import Conflict, NotFound, PodkitError
from podkit.network import iptables, portfwd
from podkit.network import names as dns_records
from podkit.network.context import NetworkContext
from podkit.network.hostports import close
from podkit.network.masquerade import drop_attachment
from podkit.network.netns import is_netns
from podkit.network.ports import PortMapping
from podkit.network.store import Attachment

log = logging.getLogger(__name__)


async def detach(ctx: NetworkContext, owner_id: str, force: bool = False) -> int:
    """DEL every attachment of an owner; return how many were removed.

    If the netns is gone already, DEL runs without it (the IPAM lease is still
    released) and podkit removes the masquerade rules the bridge plugin can
    then no longer find. With ``force`` (the owner is known to be gone) a
    failing DEL does not keep the attachment: podkit removes the owner's
    rules, lease and cache entry itself and forgets it, logging the failure.
    """
    atts = ctx.store.attachments(owner_id)
    first: PodkitError | None = None
    scrub = False
    for a in reversed(atts):
        needs_scrub, kept = await _delete_one(ctx, a, force)
        scrub = scrub or needs_scrub
        first = first or kept
    if scrub:
        await iptables.scrub_owner(owner_id)
    if not ctx.store.attachments(owner_id):
        close(ctx.reserved.pop(owner_id, []))
    if first is not None:
        raise first
    if atts:
        log.debug("detached %s from %d networks", owner_id[:12], len(atts))
    return len(atts)


async def disconnect(ctx: NetworkContext, owner_id: str, network_id: str, network: str) -> None:
    """See ``NetworkManager.disconnect``: DEL the owner's interface on one network."""
    atts = [a for a in ctx.store.attachments(owner_id) if a["network_id"] == network_id]
    if not atts:
        raise NotFound(f"{owner_id[:12]} is not connected to network {network}")
    for a in atts:
        _scrub, kept = await _delete_one(ctx, a, False)
        if kept is not None:
            raise kept


async def _delete_one(ctx: NetworkContext, a: Attachment, force: bool) -> tuple[bool, PodkitError | None]:
    """DEL one attachment and forget it.

    Returns whether the owner's iptables rules need scrubbing, and the DEL's error
    if the attachment was kept for a retry (a failed DEL without ``force``).
    """
    owner_id = a["owner_id"]
    netns = a["netns"] if is_netns(a["netns"]) else ""
    scrub = not netns
    if portfwd.own_rules(a):
        # Before DEL frees the address: no rule may forward to whoever gets it next.
        try:
            await ctx.fwd.remove(portfwd.of_attachment(a))
        except PodkitError as e:
            if not force:
                return True, e
            log.warning("removing the published port rules of %s failed: %s", owner_id[:12], e.message)
    try:
        await ctx.cni.delete(
            a["conflist"],
            owner_id,
            netns,
            a["ifname"],
            {"portMappings": [PortMapping.from_dict(p).to_cni() for p in a["ports"]]},
            network=a["network"],
        )
    except PodkitError as e:
        if not force:
            return True, e
        scrub = True
        log.warning(
            "forgetting the attachment of %s to %s after a failed DEL: %s",
            owner_id[:12],
            a["network"],
            e.message,
        )
        release_leases(ctx, a["network"], owner_id, a["ifname"])
        ctx.cni.forget(a["network"], owner_id, a["ifname"])
    await drop_attachment(ctx, a["network_id"], owner_id, a["ifname"])
    try:
        dns_records.remove(ctx, a["network"], owner_id)
    except OSError as e:
        log.warning("could not remove the DNS names of %s on %s: %s", owner_id[:12], a["network"], e)
    if a["status"] == "ready":
        ctx.event(a["namespace"], "disconnect", a["network_id"], a["network"], owner_id, a["kind"])
    return scrub, None


def release_leases(ctx: NetworkContext, network: str, owner_id: str, ifname: str) -> None:
    """Remove host-local's lease files of an owner (each holds "<id>\\r\\n<ifname>")."""
    d = ctx.ipam_dir / network
    if not d.is_dir():
        return
    for f in d.iterdir():
        if f.name == "lock" or f.name.startswith("last_reserved_ip"):
            continue
        try:
            lines = f.read_text().split()
            if lines and lines[0] == owner_id and (len(lines) < 2 or lines[1] == ifname):
                f.unlink()
        except FileNotFoundError:  # released meanwhile
            continue
        except OSError as e:
            log.warning("could not release IPAM lease %s of %s: %s", f, owner_id[:12], e)


async def check(ctx: NetworkContext, owner_id: str) -> list[dict[str, Any]]:
    """CHECK every attachment of an owner: [{network, interface, ok, error}]."""
    out: list[dict[str, Any]] = []
    for a in ctx.store.attachments(owner_id):
        item: dict[str, Any] = {"network": a["network"], "interface": a["ifname"], "ok": True, "error": ""}
        try:
            if a["status"] != "ready":
                raise Conflict("attachment was never completed")
            # portmap 1.1's CHECK looks for ip6tables rules even for an IPv4-only
            # container and fails (containernetworking/plugins#819): podkit checks
            # the published ports' DNAT rule itself instead.
            await ctx.cni.check(a["conflist"], owner_id, a["netns"], a["ifname"], skip=frozenset({"portmap"}))
            if portfwd.own_rules(a):
                if not await ctx.fwd.present(portfwd.of_attachment(a)):
                    raise Conflict("the DNAT rules of its published ports are missing")
            elif a["ports"] and not await iptables.has_dnat(a["network"], owner_id):
                raise Conflict("the DNAT rules of its published ports are missing")
        except PodkitError as e:
            item["ok"], item["error"] = False, e.message
        out.append(item)
    return out


async def cleanup_stale(
    ctx: NetworkContext, live_owner_ids: Iterable[str] | None = None, kind: str | None = None
) -> list[str]:
    """Undo what dead owners left behind; return their ids.

    With ``live_owner_ids``: attachments (of ``kind``, or all) whose owner is not
    live are DEL'd and their netns pins (``<kind>-<owner>``) removed, and pins of
    that kind with no live owner go too. Without it: only attachments whose
    netns no longer exists (nothing can be using them) are DEL'd.
    """
    live = set(live_owner_ids) if live_owner_ids is not None else None
    stale: list[str] = []
    for a in ctx.store.attachments():
        if kind and a["kind"] != kind:
            continue
        dead = (a["owner_id"] not in live) if live is not None else not is_netns(a["netns"])
        if dead and a["owner_id"] not in stale:
            stale.append(a["owner_id"])
    for owner in stale:
        try:
            await detach(ctx, owner, force=live is not None)
        except PodkitError as e:
            log.warning("cleanup of network attachments of %s failed: %s", owner[:12], e.message)
    ctx.netns.sweep()
    if live is not None:
        for pin in ctx.netns.list():
            k, _, owner = pin.partition("-")
            if (kind is None or k == kind) and owner and owner not in live:
                try:
                    ctx.netns.remove(pin)
                except PodkitError as e:
                    log.warning("could not remove the netns pin %s of a gone %s: %s", pin, k, e.message)
                if owner not in stale:
                    stale.append(owner)
    if stale:
        log.info("cleaned up network state of %d gone owners", len(stale))
    return stale
