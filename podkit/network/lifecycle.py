"""The network layer at daemon start and stop, and what it reports about itself."""

from __future__ import annotations

import logging
import os
import stat
from typing import Any

from podkit.errors import PodkitError
from podkit.network import iptables, portfwd
from podkit.network import names as dns_records
from podkit.network.cni import CNI_VERSION
from podkit.network.context import NetworkContext
from podkit.network.detach import cleanup_stale
from podkit.network.hostports import close, reserve_published
from podkit.network.masquerade import reconcile
from podkit.network.netns import is_netns
from podkit.network.networks import ensure_default
from podkit.network.summary import attached_ip

log = logging.getLogger(__name__)


def missing_plugins(ctx: NetworkContext) -> list[str]:
    # portmap only for a network of a user's CNI file that lists it (podkit's own
    # networks forward published ports with rules of their own, portfwd.py)
    portmap = any(n.portmap is not None for n in ctx.store.networks())
    need = ["loopback", "bridge", "host-local"] + (["portmap"] if portmap else [])
    need += ["firewall"] if ctx.firewall else []
    missing = []
    for t in need:
        try:
            ctx.cni.find_plugin(t)
        except PodkitError:
            missing.append(t)
    return missing


def ready(ctx: NetworkContext) -> tuple[bool, str]:
    """Whether pods can get a network now (the CRI's NetworkReady condition)."""
    missing = missing_plugins(ctx)
    if missing:
        return False, f"CNI plugins missing: {', '.join(missing)}"
    if ctx.store.default() is None:
        return False, "the default network does not exist yet"
    return True, ""


def secure_ipam_dir(ctx: NetworkContext) -> None:
    """IPAM leases name containers and their addresses: root only (0700 dirs, 0600 files).

    Plugins now write them under umask 077 (cni.py); this fixes what older versions left.
    """
    ctx.ipam_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for d, _, files in os.walk(ctx.ipam_dir):
        for path, mode in [(d, 0o700), *((os.path.join(d, f), 0o600) for f in files)]:
            try:
                st = os.lstat(path)
                if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
                    os.chmod(path, mode)
            except OSError as e:
                log.warning("cannot restrict the mode of IPAM file %s: %s", path, e)


async def startup(ctx: NetworkContext) -> None:
    swept = ctx.cni.sweep_temp()
    if swept:
        log.info("removed %d CNI cache temp file(s) a crash left", swept)
    secure_ipam_dir(ctx)
    missing = missing_plugins(ctx)
    if missing:
        # Not fatal: host and none networking still work; attach will say the same.
        log.error(
            "CNI plugins %s not found in %s: bridge networking will fail",
            ", ".join(missing),
            ":".join(ctx.cni.plugin_dirs),
        )
    if ctx.firewall_setting == "auto":
        ctx.firewall = await iptables.forward_policy() == "DROP"
    await ensure_default(ctx)
    await cleanup_stale(ctx)
    await reconcile(ctx)
    await reconcile_forwarding(ctx)
    reserve_published(ctx)
    # Normally aardvark-dns outlived the old daemon and answers still; if it died, restart it.
    dns_records.startup(ctx)


async def reconcile_forwarding(ctx: NetworkContext) -> None:
    """After a crash: published-port rules of this daemon's networks that no attachment
    names any more go (a SIGKILL between their removal and the row's); an attachment
    whose rules the host lost (a flush) gets them back. Attachments of owners that are
    gone keep theirs until their detach (``cleanup_stale`` with the live owners)."""
    nets = {n.id: n for n in ctx.store.networks()}
    keep = {}
    for a in ctx.store.attachments():
        n = nets.get(a["network_id"])
        if n is None or not portfwd.own_rules(a):
            continue
        ip = attached_ip(a) if a["status"] == "ready" and is_netns(a["netns"]) else ""
        keep[(a["network_id"], a["owner_id"])] = portfwd.of_attachment(a, ip, n.subnet)
    try:
        await ctx.fwd.reconcile(set(nets), keep, {i: n.bridge for i, n in nets.items()})
    except PodkitError as e:
        log.warning("reconciling the published-port rules failed: %s", e.message)


async def shutdown(ctx: NetworkContext) -> None:
    # Running containers keep their networks while the daemon is down (the port
    # reservations end with the process; the next start takes them again); only
    # let go of the pin directory's own mount when it is empty.
    for socks in ctx.reserved.values():
        close(socks)
    ctx.reserved.clear()
    ctx.netns.release_dir()


def info(ctx: NetworkContext) -> dict[str, Any]:
    d = ctx.store.default()
    return {
        "default_network": d.name if d else ctx.default_name,
        "default_bridge": d.bridge if d else ctx.default_bridge,
        "default_subnet": d.subnet if d else ctx.default_subnet,
        "networks": len(ctx.store.networks()),
        "attachments": len(ctx.store.attachments()),
        "cni_plugin_dirs": ctx.cni.plugin_dirs,
        "cni_version": CNI_VERSION,
        "firewall_plugin": ctx.firewall,
        "missing_plugins": missing_plugins(ctx),
        "netns_dir": str(ctx.netns.dir),
    }
