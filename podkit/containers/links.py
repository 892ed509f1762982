"""docker's legacy links (``--link NAME:ALIAS``), resolved at each start: the linked
container must be running on the same network; the linking one gets an /etc/hosts
line ``IP ALIAS HOSTNAME NAME`` and, on the default bridge, docker's link variables
(``ALIAS_PORT_80_TCP=tcp://IP:80``, ``ALIAS_NAME=/me/alias``, ``ALIAS_ENV_K=V``...).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from podkit.containers.parsers import merge_env
from podkit.errors import Conflict, NotFound

if TYPE_CHECKING:
    from podkit.containers.context import ContainerContext
    from podkit.containers.options import CreateOptions
    from podkit.containers.store import Record

log = logging.getLogger(__name__)


@dataclass
class Linked:
    alias: str
    name: str
    hostname: str
    ip: str
    env: list[str] = field(default_factory=list)  # the linked container's environment
    ports: list[tuple[int, str]] = field(default_factory=list)  # what it exposes


def _network(cfg: dict[str, object]) -> str:
    return str(cfg.get("network") or "bridge")


def resolve(ctx: ContainerContext, rec: Record, opts: CreateOptions) -> list[Linked]:
    out: list[Linked] = []
    for link in opts.links:
        cid, _, alias = link.partition(":")
        other = ctx.store.get(cid)
        if other is None:
            raise NotFound(f"could not get container for {cid[:12]} (linked as {alias})")
        if other.state not in ("running", "paused") or not other.network.get("ip"):
            raise Conflict(f"Cannot link to a non running container: /{other.name} AS /{rec.name}/{alias}")
        if _network(other.config) != opts.network:
            raise Conflict(
                f"Cannot link to /{other.name}, as it does not belong to the network {opts.network!r}"
            )
        out.append(
            Linked(
                alias=alias,
                name=other.name,
                hostname=str(other.config.get("hostname") or other.id[:12]),
                ip=str(other.network["ip"]),
                env=_env_of(ctx, other),
                ports=_ports_of(ctx, other),
            )
        )
    return out


def _image_config(ctx: ContainerContext, other: Record) -> dict[str, object]:
    try:
        image = ctx.images.get(other.namespace, other.image_id or other.image)
    except NotFound:
        return {}
    cfg = image.config.get("config") or {}
    return cfg if isinstance(cfg, dict) else {}


def _env_of(ctx: ContainerContext, other: Record) -> list[str]:
    image_env = _image_config(ctx, other).get("Env") or []
    own = other.config.get("env") or []
    return merge_env([str(e) for e in image_env] if isinstance(image_env, list) else [], list(own))


def _ports_of(ctx: ContainerContext, other: Record) -> list[tuple[int, str]]:
    exposed = _image_config(ctx, other).get("ExposedPorts")
    keys = {str(k) for k in exposed} if isinstance(exposed, dict) else set()
    keys |= set(other.config.get("expose") or [])
    keys |= {f"{p['container_port']}/{p.get('protocol', 'tcp')}" for p in other.config.get("ports") or []}
    ports = set()
    for k in keys:
        port, _, proto = str(k).partition("/")
        if port.isdigit():
            ports.add((int(port), proto or "tcp"))
    return sorted(ports)


def hosts_entries(linked: list[Linked]) -> list[tuple[str, str]]:
    """(names, ip) for hosts_file: the alias, the linked container's hostname, its name."""
    out = []
    for link in linked:
        names = list(dict.fromkeys((link.alias, link.hostname, link.name)))
        out.append((" ".join(names), link.ip))
    return out


def environment(rec: Record, opts: CreateOptions, linked: list[Linked]) -> list[str]:
    """docker's link variables; only legacy links on the default bridge get them."""
    if opts.network != "bridge":
        return []
    env: list[str] = []
    for link in linked:
        prefix = link.alias.upper().replace("-", "_").replace(".", "_")
        env.append(f"{prefix}_NAME=/{rec.name}/{link.alias}")
        if link.ports:
            port, proto = link.ports[0]
            env.append(f"{prefix}_PORT={proto}://{link.ip}:{port}")
        for port, proto in link.ports:
            p = f"{prefix}_PORT_{port}_{proto.upper()}"
            env += [
                f"{p}={proto}://{link.ip}:{port}",
                f"{p}_ADDR={link.ip}",
                f"{p}_PORT={port}",
                f"{p}_PROTO={proto}",
            ]
        for e in link.env:
            k, _, v = e.partition("=")
            if k and k not in ("HOME", "PATH", "HOSTNAME"):
                env.append(f"{prefix}_ENV_{k}={v}")
    return env


def refresh_linkers(ctx: ContainerContext, cid: str, ip: str) -> None:
    """Container ``cid`` (re)started, maybe on another address ``ip``: the running
    containers linked to it get that address in their /etc/hosts, as docker rewrites
    them (their link variables stay as they were at their own start, as docker's do)."""
    for other in ctx.store.running_mentioning(cid):
        links = (str(x).partition(":") for x in other.config.get("links") or [])
        aliases = {alias for target, _, alias in links if target == cid}
        if aliases:
            _rewrite_hosts(ctx.bundle(other.id) / "hosts", aliases, ip, other.name)


def _rewrite_hosts(path: Path, aliases: set[str], ip: str, who: str) -> None:
    try:
        lines = path.read_text().splitlines()
        out = []
        for line in lines:
            addr, _, names = line.partition("\t")
            if names.split(" ", 1)[0] in aliases:
                line = f"{ip}\t{names}"
            out.append(line)
        # in place: the file is bind-mounted into the container, a new inode would not show
        with open(path, "r+") as f:
            f.write("\n".join(out) + "\n")
            f.truncate()
    except OSError as e:
        log.warning("links: cannot update /etc/hosts of %s: %s", who, e)
