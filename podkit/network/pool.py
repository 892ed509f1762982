"""Pre-warmed network sandboxes: per network, a few netns already attached.

Creating a netns and running CNI ADD (loopback, bridge + host-local, firewall) is most
of what a container start spends on its network. A pool keeps up to ``[network]
pool_size`` sandboxes per network ready — pinned netns, veth on the bridge, address
leased, routes and lo up — and a container or pod start takes one instead (with
published ports, only their forwarding rules are added on top); a background task then
makes a new one. A sandbox is used once: its release (DEL, pin removed) runs off the
critical path, and a fresh one needs no scrubbing of what the last user left in it. A
container's release runs in its teardown, itself in the background; a pod's (``pod rm``,
a stop that releases the network) through ``release_later``: one write marks the row
``releasing`` — no one's, never free again — and the DEL and unpin run in a task of the
pool's. Its DNS names go at once; a new publish of one of its host ports waits for its
release (``releases_done``), its forwarding rules and reservation holding the port
until then.

Every sandbox is a row of ``net_sandboxes`` written before its netns and attachment
exist (its CNI owner id is the sandbox's id, kind ``pool``), and taking one writes its
holder and the holder's kind (container, pod), so a restart — or a SIGKILL at any
point — finds each: free ones still matching their network's CNI config are kept, the
rest (half made, stale config, being released, a holder that is gone: each layer's
recovery vouches for its own kind) are DEL'd and unpinned. A pool never holds more
than its size. A graceful stop lets the releases under way finish (a while) and
releases the free ones (nothing is left to nobody while it is down).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from podkit.errors import PodkitError
from podkit.network import attach as _attach
from podkit.network import names, portfwd
from podkit.network.config import Network
from podkit.network.context import NetworkContext
from podkit.network.detach import detach
from podkit.network.hostports import close, resolve_ports
from podkit.network.netns import is_netns
from podkit.network.networks import get
from podkit.network.ports import PortMapping
from podkit.network.summary import summary

log = logging.getLogger(__name__)

KIND = "pool"
DEFAULT_POOL_SIZE = 3
MAX_POOL_SIZE = 64
# A graceful stop waits this long for the releases under way; the rest is recovery's.
SHUTDOWN_RELEASE_WAIT = 10.0


@dataclass(frozen=True)
class Sandbox:
    """A taken sandbox: its id (the CNI owner), netns path and attachment summary."""

    id: str
    netns: str
    attachment: dict[str, Any]


def pool_size(cfg: dict[str, Any]) -> int:
    from podkit.errors import InvalidArgument

    v = cfg.get("pool_size", DEFAULT_POOL_SIZE)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_POOL_SIZE:
        raise InvalidArgument(f"config [network] pool_size must be an integer 0-{MAX_POOL_SIZE}, not {v!r}")
    return v


def _pin(sid: str) -> str:
    return f"{KIND}-{sid}"


class SandboxPools:
    """The pools of all networks (only networks something was started on get one)."""

    def __init__(self, ctx: NetworkContext, size: int) -> None:
        self.ctx = ctx
        self.size = size
        self._fill: dict[str, asyncio.Task[None]] = {}  # network id -> its refill
        self._bg: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        # Sandboxes being made (id -> network id, done when made or failed) and being
        # destroyed: their rows are free, but they are no one's to take or drop again.
        self._making: dict[str, tuple[str, asyncio.Future[None]]] = {}
        self._dropping: set[str] = set()
        # Background releases of given-back sandboxes (release_later): id -> its task.
        self._releasing: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    def _conflist(self, n: Network) -> dict[str, Any]:
        # exactly what attach would run for a container of this network without ports
        return n.conflist(
            str(self.ctx.ipam_dir), firewall=self.ctx.firewall, portmap=False, plugin_masq=False
        )

    def _fits(self, sid: str, n: Network) -> Any:
        """The sandbox's attachment, if it is complete and made from ``n``'s current config."""
        atts = self.ctx.store.attachments(sid)
        if len(atts) != 1:
            return None
        a = atts[0]
        ok = a["status"] == "ready" and a["network_id"] == n.id and is_netns(a["netns"])
        return a if ok and a["conflist"] == self._conflist(n) else None

    # -- taking and giving back ----------------------------------------------------------

    async def take(
        self,
        network: str,
        holder: str,
        dns_names: list[str] | None = None,
        ports: Iterable[PortMapping] = (),
        kind: str = "container",
    ) -> Sandbox | None:
        """A ready sandbox of ``network`` for ``holder`` (a ``kind``: container or pod),
        or None (empty, or off).

        On a network whose names aardvark-dns serves, the holder's ``dns_names`` (and
        its short id) are registered for the sandbox's address, as ``attach`` does;
        the sandbox's detach at release drops them with it. Published ``ports`` are
        checked and reserved first (a clash raises, and nothing is taken), then their
        forwarding rules are added on top of the sandbox (``_publish``)."""
        if self.size <= 0 or self._closed:
            return None
        n = get(self.ctx, network)
        ports = list(ports)
        await self.releases_done(ports)
        resolved, socks = resolve_ports(self.ctx, ports)
        got: Sandbox | None = None
        try:
            got = await self._hold(n, holder, kind)
            if got is None:
                # None ready, one being made: waiting for it costs at most what an ADD of
                # our own would, which would compete with it for the CPU besides.
                making = [f for nid, f in self._making.values() if nid == n.id]
                if making:
                    await asyncio.wait(making[:1])
                    got = await self._hold(n, holder, kind)
        finally:
            if got is None:
                close(socks)
        self.refill(n)
        if got is None:
            return None
        if not n.default:
            try:
                served = names.add(
                    self.ctx, n, got.id, str(got.attachment.get("ip") or ""), dns_names or [], holder[:12]
                )
            except (OSError, PodkitError) as e:
                # Not usable as asked: give it back, the caller attaches the usual way.
                log.warning("registering the names of %s on %s failed: %s", holder[:12], n.name, _message(e))
                close(socks)
                self._spawn(self._destroy(got.id))
                return None
            if served:
                got.attachment["dns_server"] = n.gateway
        if resolved:
            await self._publish(n, got, resolved, socks)
        return got

    async def _hold(self, n: Network, holder: str, kind: str) -> Sandbox | None:
        """Give the first ready free sandbox of ``n`` to ``holder``: its row says so."""
        async with self._lock:
            for sid in self.ctx.store.free_sandboxes(n.id):
                if sid in self._making or sid in self._dropping:
                    continue
                a = self._fits(sid, n)
                if a is None:  # made from an older config (or half made before a crash)
                    self._spawn(self._destroy(sid))
                    continue
                self.ctx.store.hold_sandbox(sid, holder, kind)
                att = summary(n.name, n.id, a["ifname"], a["netns"], a["result"], [])
                return Sandbox(sid, a["netns"], att)
        return None

    async def _publish(
        self, n: Network, sb: Sandbox, ports: list[PortMapping], socks: list[socket.socket]
    ) -> None:
        """The ports' forwarding rules on a taken sandbox (portfwd.py; on a network whose
        CNI file lists portmap, portmap ADD with the sandbox's result as prevResult).

        The attachment row (and for portmap the CNI cache, in ``add_on``) name the ports
        before the rules are made, so the sandbox's release — at its end, after a failure
        here, or at recovery after a crash anywhere in between — removes them first,
        before the veth and lease go. The reservations are the sandbox's."""
        ifname = str(sb.attachment["interface"])
        # podkit's own rules (portfwd.py), one iptables-restore; portmap only where the
        # network's CNI file asks for it
        use_portmap = n.portmap is not None
        conflist = n.conflist(
            str(self.ctx.ipam_dir), firewall=self.ctx.firewall, portmap=use_portmap, plugin_masq=False
        )
        self.ctx.reserved.setdefault(sb.id, []).extend(socks)
        try:
            self.ctx.store.set_ports(sb.id, ifname, conflist, [p.to_dict() for p in ports])
            if use_portmap:
                rc = {"portMappings": [p.to_cni() for p in ports]}
                await self.ctx.cni.add_on(conflist, "portmap", sb.id, sb.netns, ifname, rc)
            else:
                ip = str(sb.attachment.get("ip") or "")
                await self.ctx.fwd.add(portfwd.forward(n, sb.id, ports, ip), n.bridge)
        except BaseException:
            await asyncio.shield(self._destroy(sb.id))  # the start fails: nothing of it stays
            raise
        sb.attachment["ports"] = summary(n.name, n.id, ifname, sb.netns, {}, ports)["ports"]

    def held_by(self, holder: str) -> str | None:
        return self.ctx.store.sandbox_of(holder)

    async def release(self, sid: str) -> None:
        """The holder is done with it: DEL, unpin, forget (a refill replaces it)."""
        await self._destroy(sid)

    async def release_later(self, sid: str) -> None:
        """The holder is done with it and need not wait for the release: once this
        returns, the row says ``releasing`` (no one's: not the holder's any more, never
        taken again, released by the next start's recovery after a crash), and the
        release runs in the background. The sandbox's DNS names go now, so that a new
        holder of the same names is the only one answering to them. A closed pool (the
        daemon stopping) releases it here: no task of its would be awaited."""
        if sid in self._releasing:
            return
        self.ctx.store.release_sandbox(sid)
        if self._closed:
            await self._destroy(sid)
            return
        for a in self.ctx.store.attachments(sid):
            try:
                names.remove(self.ctx, a["network"], sid)
            except OSError as e:  # its detach tries again
                log.warning("removing the DNS names of network sandbox %s failed: %s", sid[:12], e)
        t = self._spawn(self._destroy(sid))
        self._releasing[sid] = t
        t.add_done_callback(lambda _t: self._releasing.pop(sid, None))

    async def releases_done(self, ports: Iterable[PortMapping]) -> None:
        """Wait for the background releases of sandboxes publishing one of ``ports``'
        host ports: until its release removes them, the rules and reservation of a
        given-back sandbox hold the port."""
        want = {(p.host_port, p.protocol) for p in ports if p.host_port}
        if not want or not self._releasing:
            return
        waits = [
            t
            for sid, t in list(self._releasing.items())
            if any(
                (m.host_port, m.protocol) in want
                for a in self.ctx.store.attachments(sid)
                for m in map(PortMapping.from_dict, a["ports"])
            )
        ]
        if waits:
            await asyncio.wait(waits)

    # -- filling ---------------------------------------------------------------------------

    def refill(self, n: Network) -> None:
        """Top the pool of ``n`` up in the background (one refill per network at a time)."""
        if self.size <= 0 or self._closed:
            return
        t = self._fill.get(n.id)
        if t is not None and not t.done():
            return
        self._fill[n.id] = self._spawn(self._fill_up(n))

    async def _fill_up(self, n: Network) -> None:
        while not self._closed and len(self.ctx.store.free_sandboxes(n.id)) < self.size:
            if self.ctx.store.by_name(n.name) is None:
                return  # removed meanwhile
            await self._make(n)

    async def _make(self, n: Network) -> None:
        sid = secrets.token_hex(32)
        made: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._making[sid] = (n.id, made)
        # The row first: whatever a crash leaves of the rest, the next start finds it.
        self.ctx.store.add_sandbox(sid, n.id)
        try:
            netns = await asyncio.to_thread(self.ctx.netns.create, _pin(sid))
            await _attach.attach(self.ctx, sid, netns, [n.name], kind=KIND)
        except BaseException as e:
            log.warning("making a network sandbox for %s failed: %s", n.name, _message(e))
            del self._making[sid]
            await self._destroy(sid)
            if isinstance(e, PodkitError):
                return
            raise
        finally:
            self._making.pop(sid, None)
            if not made.done():
                made.set_result(None)

    # -- undoing ---------------------------------------------------------------------------

    async def _destroy(self, sid: str) -> None:
        if sid in self._dropping:
            return  # under way (a release racing a drop of the same one)
        self._dropping.add(sid)
        try:
            try:
                await detach(self.ctx, sid, force=True)
            except PodkitError as e:
                log.warning("releasing network sandbox %s: DEL failed: %s", sid[:12], e.message)
            try:
                await asyncio.to_thread(self.ctx.netns.remove, _pin(sid))
            except PodkitError as e:
                log.warning(
                    "releasing network sandbox %s: removing its netns failed: %s", sid[:12], e.message
                )
            self.ctx.store.drop_sandbox(sid)
        finally:
            self._dropping.discard(sid)

    async def drain(self, network_id: str) -> None:
        """Free sandboxes of a network go, and its releases under way finish (before the
        network itself is removed)."""
        t = self._fill.pop(network_id, None)
        if t is not None:
            t.cancel()
            await asyncio.gather(t, return_exceptions=True)
        mine = {sid for sid, nid, _ in self.ctx.store.all_sandboxes() if nid == network_id}
        releases = [t for sid, t in list(self._releasing.items()) if sid in mine]
        if releases:
            await asyncio.wait(releases)
        async with self._lock:
            for sid in self.ctx.store.free_sandboxes(network_id):
                await self._destroy(sid)

    async def recover(self, live_holders: set[str], kind: str = "container") -> int:
        """At start-up, once the containers are known: keep free sandboxes that still fit
        (up to the size), release the rest and those of gone containers. Then refill.

        Sandboxes held by other kinds (pods) are left to ``release_gone``, which their
        layer calls once it knows its own (the pods' recovery runs after the
        containers')."""
        dropped = 0
        kept: dict[str, int] = {}
        kinds = self.ctx.store.held_sandboxes()
        releasing = self.ctx.store.releasing_sandboxes()  # given back, release cut short
        for sid, network_id, holder in self.ctx.store.all_sandboxes():
            if holder and (holder in live_holders or kinds.get(sid, ("", kind))[1] != kind):
                continue
            n = next((x for x in self.ctx.store.networks() if x.id == network_id), None)
            fits = not holder and sid not in releasing and n is not None and self._fits(sid, n) is not None
            if fits and kept.get(network_id, 0) < self.size:
                kept[network_id] = kept.get(network_id, 0) + 1
                continue
            await self._destroy(sid)
            dropped += 1
        # Pins and attachments of the pool that no row names (a row dropped, then a crash).
        known = {sid for sid, _, _ in self.ctx.store.all_sandboxes()}
        for a in self.ctx.store.attachments():
            if a["kind"] == KIND and a["owner_id"] not in known:
                await self._destroy(a["owner_id"])
                dropped += 1
        for pin in self.ctx.netns.list():
            k, _, sid = pin.partition("-")
            if k == KIND and sid not in known:
                await self._destroy(sid)
                dropped += 1
        if dropped:
            log.info("network sandbox pool: released %d left from before", dropped)
        d = self.ctx.store.default()
        if d is not None:
            self.refill(d)
        for n in self.ctx.store.networks():
            if n.id in kept and n.id != (d.id if d else None):
                self.refill(n)
        return dropped

    async def release_gone(self, live_holders: set[str], kind: str) -> int:
        """Release the sandboxes that holders of ``kind`` no longer alive hold (a pod
        removed, or never recorded, before a crash); those of live ones stay theirs."""
        dropped = 0
        for sid, (holder, k) in self.ctx.store.held_sandboxes().items():
            if k == kind and holder not in live_holders:
                await self._destroy(sid)
                dropped += 1
        if dropped:
            log.info("network sandbox pool: released %d of gone %ss", dropped, kind)
        return dropped

    async def close(self) -> None:
        """Stop refilling, let the releases under way finish, and release the free
        sandboxes: a stopped daemon leaves no veths or leases to nobody (held ones stay
        with their running containers; after a SIGKILL, ``recover`` finds the free ones
        and keeps those that still fit, and releases those being released)."""
        self._closed = True
        if self._releasing:
            _, stuck = await asyncio.wait(set(self._releasing.values()), timeout=SHUTDOWN_RELEASE_WAIT)
            if stuck:
                log.warning("%d network sandbox releases left to the next start's recovery", len(stuck))
        for t in list(self._bg):
            t.cancel()
        await asyncio.gather(*self._bg, return_exceptions=True)
        releasing = self.ctx.store.releasing_sandboxes()
        async with self._lock:
            for sid, _, holder in self.ctx.store.all_sandboxes():
                if not holder and sid not in releasing:
                    await self._destroy(sid)

    def info(self) -> dict[str, Any]:
        free: dict[str, int] = {}
        held = 0
        names = {n.id: n.name for n in self.ctx.store.networks()}
        releasing = self.ctx.store.releasing_sandboxes()
        for sid, network_id, holder in self.ctx.store.all_sandboxes():
            if holder:
                held += 1
            elif sid not in self._making and sid not in self._dropping and sid not in releasing:
                name = names.get(network_id, network_id[:12])  # ready to take
                free[name] = free.get(name, 0) + 1
        return {"size": self.size, "free": free, "in_use": held, "releasing": len(releasing)}

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        t: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._bg.add(t)
        t.add_done_callback(self._done)
        return t

    def _done(self, t: asyncio.Task[None]) -> None:
        self._bg.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.warning("network sandbox pool task failed: %r", t.exception())


def as_holders(ctx: NetworkContext, atts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attachments as their users see them: a taken sandbox's is its holder's (a
    container's or a pod's), a free one's is nobody's and left out."""
    holders = ctx.store.held_sandboxes()
    out = []
    for a in atts:
        if a.get("kind") == KIND:
            held = holders.get(str(a.get("owner_id")))
            if held is None:
                continue
            a = {**a, "owner_id": held[0], "kind": held[1]}
        out.append(a)
    return out


def _message(e: BaseException) -> str:
    return e.message if isinstance(e, PodkitError) else repr(e)
