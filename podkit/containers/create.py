"""Create: a record, a writable snapshot of the image, the named volumes it mounts.

The image is pulled when it is not present (as ``docker run`` does). Everything made
here is undone if a later step fails, so a failed create leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.containers.context import LABEL_IMAGE, LABEL_NAMESPACE, ContainerContext, snap_key
from podkit.containers.options import CreateOptions
from podkit.containers.store import Record
from podkit.containers.trace import mark
from podkit.errors import InvalidArgument, NotFound, PodkitError

if TYPE_CHECKING:
    from podkit.images.service import Image

log = logging.getLogger(__name__)

_ADJ = (
    "brave",
    "calm",
    "eager",
    "fancy",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "merry",
    "nimble",
    "proud",
    "quiet",
    "rapid",
    "sharp",
    "tender",
    "vivid",
    "witty",
    "zen",
    "bold",
)
_NOUN = (
    "otter",
    "falcon",
    "maple",
    "comet",
    "river",
    "badger",
    "cedar",
    "lynx",
    "orbit",
    "pebble",
    "quartz",
    "raven",
    "spruce",
    "tiger",
    "violet",
    "walrus",
    "yak",
    "zebra",
    "heron",
    "koala",
)


async def create(ctx: ContainerContext, ns: str, body: dict[str, Any] | CreateOptions) -> Record:
    began = time.time()
    # Parsed off the event loop: a body may name an env file or a seccomp profile the
    # parser reads (checked and bounded: podkit.userfiles.read_regular).
    opts = body if isinstance(body, CreateOptions) else await asyncio.to_thread(CreateOptions.parse, body)
    opts = await ctx.hooks.before_create(ns, opts)
    if opts.pod:  # a hook resolves it into pod_id, namespaces...; none did
        raise InvalidArgument(f"cannot put the container into pod {opts.pod}: pods are not available")
    if opts.memory_swap and opts.memory_swap > 0 and opts.memory is None:
        raise InvalidArgument("you should always set the memory limit when using the memory-swap limit")
    image = await image_for(ctx, ns, opts.image, opts.pull)
    if not command_of(opts, image.config.get("config") or {}):
        raise InvalidArgument(
            f"no command specified: image {opts.image} has no Cmd or Entrypoint and none was given"
        )
    _resolve_network(ctx, ns, opts)
    _resolve_namespaces(ctx, ns, opts)
    _publish_all(opts, image.config.get("config") or {})
    _volumes_from(ctx, ns, opts)
    _links(ctx, ns, opts)
    _api_socket(ctx, opts)
    if opts.healthcheck is None:  # the image's, unless the client gave one (or NONE)
        from podkit.containers.health import from_image

        opts.healthcheck = from_image(image.config.get("config") or {})
    if image.chain_id and not ctx.images.is_unpacked(image):
        await ctx.images.unpack(ns, image)
    cid = secrets.token_hex(32)
    opts.name = opts.name or generate_name(ctx, ns)
    rec = Record(
        id=cid,
        namespace=ns,
        name=opts.name,
        image=image.name,
        image_id=image.id,
        config=opts.to_dict(),
        labels=opts.labels,
        pod_id=opts.pod_id,
        infra=opts.infra,
    )
    ctx.store.insert(rec)
    made_volumes: list[str] = []
    try:
        await _make_volumes(ctx, ns, opts, made_volumes)
        if made_volumes:  # an anonymous volume's name is in the options now
            rec.config = opts.to_dict()
            ctx.store.update(cid, config=rec.config)
        labels = {LABEL_IMAGE: image.id, LABEL_NAMESPACE: ns, "podkit/container": cid}
        mark(cid, "create", began)
        mark(cid, "snapshot")
        await asyncio.to_thread(ctx.snapshots.prepare, snap_key(cid), image.chain_id, labels)
        mark(cid, "snapshot-done")
        ctx.log_path(cid).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if opts.log_path:  # the kubelet's pod log directory may not exist yet
            Path(opts.log_path).parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    except BaseException:
        _undo_create(ctx, ns, cid, made_volumes)
        raise
    ctx.publish(ns, "container", "create", cid, name=opts.name, image=image.name)
    await ctx.hooks.after_create(ns, rec)
    mark(cid, "created")
    return rec


def _resolve_network(ctx: ContainerContext, ns: str, opts: CreateOptions) -> None:
    """``container:NAME`` is stored by id; a named network must exist (NotFound names it)."""
    if opts.network.startswith("container:"):
        other = ctx.resolve(ns, opts.network.split(":", 1)[1])
        opts.network = f"container:{other.id}"
    elif opts.network not in ("host", "none", "pod", "bridge") and ctx.networks is not None:
        net = ctx.networks.get(opts.network)
        if opts.ip:
            import ipaddress

            if ipaddress.IPv4Address(opts.ip) not in ipaddress.ip_network(net.subnet):
                raise InvalidArgument(
                    f"invalid --ip {opts.ip}: not in the subnet of network {net.name} ({net.subnet})"
                )


def _resolve_namespaces(ctx: ContainerContext, ns: str, opts: CreateOptions) -> None:
    """``--pid/--ipc container:NAME`` are stored by id (joined at each start: networking.py)."""
    for key in ("pid", "ipc"):
        mode = getattr(opts, key)
        if mode.startswith("container:"):
            other = ctx.resolve(ns, mode.split(":", 1)[1])
            if key == "ipc" and other.config.get("ipc") != "shareable":
                raise InvalidArgument(
                    f"--ipc container:{other.name}: its IPC namespace is not shareable "
                    "(hint: run it with --ipc shareable)"
                )
            setattr(opts, key, f"container:{other.id}")


def _publish_all(opts: CreateOptions, cfg: dict[str, Any]) -> None:
    """``-P``: each exposed port (the image's and ``--expose``) not published yet gets a
    host port picked at start, as ``-p PORT`` does."""
    if (
        not opts.publish_all
        or opts.network in ("host", "none", "pod")
        or opts.network.startswith("container:")
    ):
        return  # docker discards published ports in those modes, -P included
    from podkit.containers.parsers import parse_expose, parse_port

    published = {f"{p['container_port']}/{p.get('protocol') or 'tcp'}" for p in opts.ports}
    exposed = [p for key in (cfg.get("ExposedPorts") or {}) for p in parse_expose(key)]
    for key in dict.fromkeys([*exposed, *opts.expose]):
        if key not in published:
            opts.ports.extend(parse_port(key))


def _volumes_from(ctx: ContainerContext, ns: str, opts: CreateOptions) -> None:
    """``--volumes-from CONTAINER[:ro|rw]``: its binds and volumes, at the same paths
    (a mount of this container's own at a path wins, as with docker)."""
    from podkit.containers.parsers import Mount

    taken = {m.target for m in opts.mounts}
    resolved = []
    for spec in opts.volumes_from:
        name, _, mode = spec.partition(":")
        try:
            other = ctx.resolve(ns, name)
        except NotFound:
            raise NotFound(f"--volumes-from: no such container: {name}") from None
        resolved.append(other.id + (f":{mode}" if mode else ""))
        for m in other.config.get("mounts") or []:
            if m.get("type") not in ("bind", "volume") or m["target"] in taken:
                continue
            taken.add(m["target"])
            ro = mode == "ro" if mode else bool(m.get("readonly"))
            # nocopy: the volume already holds what it holds; no seeding from this image
            extra = [x for x in m.get("options") or [] if x != "nocopy"] + (
                ["nocopy"] if m["type"] == "volume" else []
            )
            opts.mounts.append(Mount(m["type"], m["target"], m.get("source") or "", ro, extra))
    opts.volumes_from = resolved


def _api_socket(ctx: ContainerContext, opts: CreateOptions) -> None:
    """``--use-api-socket``: the Docker API's socket at /var/run/docker.sock, as docker's
    CLI binds its own (the credentials it also copies in are the client's: not here)."""
    if not opts.use_api_socket:
        return
    from podkit.containers.parsers import Mount

    sock = str(ctx.cfg.get("docker_socket") or "")
    if not sock or not os.path.exists(sock):
        raise InvalidArgument("--use-api-socket: this podkitd serves no Docker API socket ([docker] enabled)")
    if any(m.target == "/var/run/docker.sock" for m in opts.mounts):
        raise InvalidArgument("--use-api-socket: a mount at /var/run/docker.sock is given already")
    opts.mounts.append(Mount("bind", "/var/run/docker.sock", sock, False, []))


def _links(ctx: ContainerContext, ns: str, opts: CreateOptions) -> None:
    """``--link NAME:ALIAS``: the container must exist now (docker checks it at create);
    kept by id, so that a rename keeps the link, and resolved at each start (links.py)."""
    out = []
    for link in opts.links:
        name, _, alias = link.partition(":")
        try:
            other = ctx.resolve(ns, name)
        except NotFound:
            raise NotFound(f"could not get container for {name}") from None
        out.append(f"{other.id}:{alias}")
    opts.links = out


async def image_for(ctx: ContainerContext, ns: str, ref: str, pull: str) -> Image:
    """The image, as ``--pull`` says: pulled if missing (the default), always, or never."""
    if pull == "never":
        try:
            return ctx.images.get(ns, ref)
        except NotFound:
            raise NotFound(f"No such image: {ref} (and --pull never)") from None
    if pull == "always":
        if ctx.registry is None:
            raise InvalidArgument("--pull always: no registry is available to this daemon")
        try:
            await ctx.registry.pull(ns, ref)
        except InvalidArgument:
            raise
        except PodkitError as e:
            raise NotFound(f"--pull always: image {ref!r} could not be pulled: {e.message}") from None
    return await find_image(ctx, ns, ref)


async def _make_volumes(ctx: ContainerContext, ns: str, opts: CreateOptions, made: list[str]) -> None:
    """Create the anonymous volumes and the missing named ones; ``made`` lists them for undo."""
    for m in opts.mounts:
        if m.type != "volume":
            continue
        if not m.source:
            m.source = ctx.volumes.create(ns, anonymous=True)["name"]
            made.append(m.source)
        elif not ctx.volumes.exists(ns, m.source):
            ctx.volumes.create(ns, m.source)
            made.append(m.source)


def _undo_create(ctx: ContainerContext, ns: str, cid: str, made_volumes: list[str]) -> None:
    try:
        ctx.snapshots.remove(snap_key(cid))
    except NotFound:
        pass  # not prepared yet
    except Exception as e:  # noqa: BLE001 - undoing: log it and go on with the rest
        log.warning("undoing create of %s: removing its snapshot failed: %r", cid[:12], e)
    ctx.store.delete(cid)
    for v in made_volumes:
        try:
            ctx.volumes.remove(ns, v)
        except Exception as e:  # noqa: BLE001 - undoing: log it and go on with the rest
            log.warning("undoing create of %s: removing volume %s failed: %r", cid[:12], v, e)


async def find_image(ctx: ContainerContext, ns: str, ref: str, pull: bool = True) -> Image:
    """The image named, pulled first if it is not present and a registry is configured."""
    try:
        return ctx.images.get(ns, ref)
    except NotFound:
        if not pull or ctx.registry is None:
            raise
        registry = ctx.registry
    log.info("image %s not present: pulling it", ref)
    try:
        await registry.pull(ns, ref)
    except InvalidArgument:
        raise  # the reference itself is bad (a 400, not a missing image)
    except PodkitError as e:
        raise NotFound(f"image {ref!r} not found locally and could not be pulled: {e.message}") from None
    return ctx.images.get(ns, ref)


def generate_name(ctx: ContainerContext, ns: str) -> str:
    used = ctx.store.names_in_use(ns)
    for _ in range(50):
        n = f"{random.choice(_ADJ)}_{random.choice(_NOUN)}"
        if n not in used:
            return n
    return f"{random.choice(_ADJ)}_{random.choice(_NOUN)}_{secrets.token_hex(2)}"


def command_of(opts: CreateOptions, cfg: dict[str, Any]) -> list[str]:
    """The container's argv: the image's Entrypoint and Cmd as the options override them."""
    ep = opts.entrypoint if opts.entrypoint is not None else (cfg.get("Entrypoint") or [])
    if opts.cmd is not None:
        cmd = opts.cmd
    elif opts.entrypoint is not None:
        cmd = []  # docker: a new entrypoint drops the image's Cmd
    else:
        cmd = cfg.get("Cmd") or []
    return list(ep) + list(cmd)
