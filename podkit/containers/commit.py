"""``commit``, ``diff`` and ``export``: a container's file system as an image layer, a
change list, or one tar.

The changes come from the container's writable snapshot (podkit.snapshots.diff). The
paths the runtime only creates as mount targets (/etc/hosts, /etc/resolv.conf, the
volumes' destinations) are left out while they are empty, as docker leaves out its init
layer. A committed layer is gzip-compressed (isal) into the content store under a lease,
and the new image record points at a config that is the old one plus that layer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tarfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, BinaryIO

from podkit.containers.archive import TreeWriter, open_root
from podkit.containers.context import ContainerContext, snap_key
from podkit.containers.cp import root_for
from podkit.containers.rootfs import is_mounted
from podkit.containers.store import Record
from podkit.errors import Conflict, InvalidArgument, PodkitError
from podkit.images import reference
from podkit.images.changes import apply_changes
from podkit.images.oci import OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, Platform, image_manifest
from podkit.snapshots.diff import Change, HashingWriter, ToWriter, prune, snapshot_changes, write_layer
from podkit.store import ContentWriter

log = logging.getLogger(__name__)

# Mount targets the runtime creates in every container (besides its volumes').
_RUNTIME_TARGETS = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/dev", "/proc", "/sys", "/dev/shm")
_CHUNK = 1 << 20


def _skip(ctx: ContainerContext, rec: Record) -> frozenset[str]:
    out = set(_RUNTIME_TARGETS)
    spec = ctx.bundle(rec.id) / "config.json"
    try:
        mounts = json.loads(spec.read_text()).get("mounts") or []
    except (OSError, ValueError):
        mounts = []
    for m in mounts:
        dest = m.get("destination") if isinstance(m, dict) else None
        if isinstance(dest, str) and dest.startswith("/"):
            out.add(dest.rstrip("/") or "/")
    for v in rec.config.get("volumes") or []:
        if isinstance(v, str):
            dest = v.split(":")[1] if ":" in v else v
            out.add(dest.rstrip("/"))
    return frozenset(out)


def changes_of(ctx: ContainerContext, rec: Record, dropped: list[str] | None = None) -> list[Change]:
    """The container's changes (``dropped``: what they leave out, see snapshot_changes)."""
    return snapshot_changes(ctx.snapshots, snap_key(rec.id), _skip(ctx, rec), dropped)


async def keep_snapshot(
    ctx: ContainerContext, rec: Record, diff_id: str, layer_digest: str, dropped: list[str]
) -> str | None:
    """Make an ended container's writable snapshot the committed snapshot of the layer
    written from its changes (a build step's, whose next step then needs no unpack).

    Under the container's lock, so its release (the rootfs unmount) is over; the tree
    is pruned of what the layer left out (``dropped``) and committed under the layer's
    chain ID. The chain ID; None when the snapshot stays the container's (it is still
    mounted or running, the tree changed, the layer's snapshot exists already): its
    removal then removes it, and the layer is unpacked when next used."""
    async with ctx.lock(rec.id):
        cur = ctx.store.get(rec.id)
        if cur is None or cur.state not in ("created", "exited"):
            return None
        root = ctx.bundle(rec.id) / "rootfs"
        if is_mounted(root):
            return None
        key = snap_key(rec.id)

        def adopt() -> str | None:
            try:
                prune(ctx.snapshots.apply_dir(key), dropped)
            except OSError as e:
                log.warning("container %s: its snapshot cannot become its layer's: %r", rec.id[:12], e)
                return None
            return ctx.images.adopt(key, diff_id, layer_digest)

        return await asyncio.to_thread(adopt)


async def changes(ctx: ContainerContext, ns: str, ref: str) -> list[dict[str, Any]]:
    """The container's changes as docker's /changes lists them (Kind 0 C, 1 A, 2 D)."""
    rec = ctx.resolve(ns, ref)
    found = await asyncio.to_thread(changes_of, ctx, rec)
    kinds = {"C": 0, "A": 1, "D": 2}
    return [{"Path": c.path, "Kind": kinds[c.kind]} for c in found]


def write_gzip_layer(content_writer: ContentWriter, found: list[Change]) -> tuple[str, str, int]:
    """(diff ID, compressed digest, compressed size) of ``found`` written as a gzip layer."""
    from isal import igzip

    sink = ToWriter(content_writer)
    gz = igzip.IGzipFile(fileobj=sink, mode="wb", compresslevel=1, mtime=0)  # type: ignore[no-untyped-call]  # isal: no types
    raw = HashingWriter(gz)
    write_layer(found, raw)  # type: ignore[arg-type]  # a write-only file object is all tarfile's stream mode needs
    gz.close()
    digest = content_writer.commit()
    return raw.digest(), str(digest), content_writer.offset


async def commit(
    ctx: ContainerContext,
    ns: str,
    ref: str,
    name: str | None = None,
    *,
    message: str = "",
    author: str = "",
    changes_: list[str] | None = None,
    pause: bool = True,
) -> dict[str, Any]:
    """A new image: the container's image plus its changes as one layer. Returns
    ``{"id": config digest, "name": ...}``."""
    rec = ctx.resolve(ns, ref)
    if name:
        reference.parse(name)  # a bad name refused before any work
    if rec.state in ("removing", "dead"):
        raise Conflict(f"container {rec.name} is being removed")
    base = ctx.images.get(ns, rec.image_id)
    paused_here = False
    if pause and rec.state == "running":
        from podkit.containers import stop as _stop

        await _stop.pause(ctx, ns, rec.id)
        paused_here = True
    try:
        cfg = json.loads(json.dumps(base.config))
        inner = cfg.get("config") or {}
        try:
            apply_changes(inner, changes_ or [])
        except PodkitError:
            raise
        cfg["config"] = inner
        images = ctx.images
        with images.leases.lease(ns) as lease:
            found = await asyncio.to_thread(changes_of, ctx, rec)

            def write() -> tuple[str, str, int]:
                with images.content.writer() as w:
                    return write_gzip_layer(w, found)

            diff_id, layer_digest, layer_size = await asyncio.to_thread(write)
            images.leases.add(ns, lease, "content", layer_digest)
            created = _now()
            cfg["created"] = created
            if author:
                cfg["author"] = author
            cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
            cfg["rootfs"]["diff_ids"] = list(base.diff_ids) + [diff_id]
            hist = list(cfg.get("history") or [])
            entry: dict[str, Any] = {"created": created, "created_by": _created_by(rec)}
            if author:
                entry["author"] = author
            if message:
                entry["comment"] = message
            hist.append(entry)
            cfg["history"] = hist
            plat = Platform.host()
            cfg.setdefault("architecture", plat.architecture)
            cfg.setdefault("os", plat.os)
            cfg_bytes = json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode()
            cfg_digest = str(images.content.put(cfg_bytes))
            images.leases.add(ns, lease, "content", cfg_digest)
            layers = [d.to_dict() for d in base.layers]
            layers.append({"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": layer_size})
            m_bytes = image_manifest(cfg_digest, len(cfg_bytes), layers)
            m_digest = str(images.content.put(m_bytes))
            images.leases.add(ns, lease, "content", m_digest)
            target = Descriptor(OCI_MANIFEST, m_digest, len(m_bytes))
            img = (
                images.record(ns, name, target, action="commit")
                if name
                else images.record_dangling(ns, target, action="commit")
            )
        try:
            await images.unpack(ns, img)
        except PodkitError as e:  # the image is whole; create unpacks it again if needed
            log.warning("commit of %s: unpacking image %s failed: %s", rec.id[:12], img.id, e.message)
        return {"id": img.id, "name": "" if img.dangling else img.name}
    finally:
        if paused_here:
            from podkit.containers import stop as _stop

            try:
                await _stop.unpause(ctx, ns, rec.id)
            except PodkitError as e:
                log.warning("commit of %s: unpausing it failed: %s", rec.id[:12], e.message)


def _created_by(rec: Record) -> str:
    cmd = rec.config.get("cmd") or rec.config.get("Cmd") or []
    if isinstance(cmd, list):
        return " ".join(str(c) for c in cmd)
    return str(cmd)


def _now() -> str:
    from podkit.images.archive import now_rfc3339

    return now_rfc3339()


class TarStream:
    """An export's tar stream: its chunks, and ``aclose`` that releases what it holds
    (the root's descriptor, a stopped container's mount, the tar thread) whether or
    not it was read, and however far: a front end whose client never reads or leaves
    calls it (podkit/daemon/leaving.py)."""

    def __init__(self, chunks: AsyncGenerator[bytes, None], release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __aiter__(self) -> AsyncIterator[bytes]:
        self._release = None  # the generator's own finally releases from now on
        return self._chunks

    async def aclose(self) -> None:
        await self._chunks.aclose()
        if self._release is not None:
            release, self._release = self._release, None
            await asyncio.to_thread(release)


async def export(ctx: ContainerContext, ns: str, ref: str) -> TarStream:
    """The container's whole file system as one tar stream."""
    rec = ctx.resolve(ns, ref)
    if rec.state in ("removing", "dead"):
        raise Conflict(f"container {rec.name} is being removed")
    where, release = await root_for(ctx, rec)
    # The root is held by a descriptor (a live root's process checked first: a reused
    # pid is refused) and the tree walked below it through descriptors only: the
    # container's processes may swap a directory for a symlink meanwhile.
    try:
        root_fd = await asyncio.to_thread(open_root, where)
    except BaseException:
        if release is not None:
            await asyncio.to_thread(release)
        raise

    def done() -> None:
        os.close(root_fd)  # before a stopped container's snapshot is unmounted
        if release is not None:
            release()

    skip = _skip(ctx, rec)
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=8)
    loop = asyncio.get_running_loop()
    stop = False

    class _Sink:
        def write(self, data: bytes) -> int:
            if stop:
                raise InvalidArgument("export cancelled")
            asyncio.run_coroutine_threadsafe(queue.put(bytes(data)), loop).result()
            return len(data)

        def flush(self) -> None:
            pass

    def produce() -> None:
        try:
            _tar_tree(root_fd, _Sink(), skip)  # type: ignore[arg-type]  # write-only is enough
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()
        except BaseException as e:  # handed to the reader, which raises it
            try:
                asyncio.run_coroutine_threadsafe(queue.put(e), loop).result()
            except RuntimeError:
                pass

    async def gen() -> AsyncGenerator[bytes, None]:
        nonlocal stop
        task = asyncio.ensure_future(asyncio.to_thread(produce))
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop = True
            while not task.done():
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    await asyncio.sleep(0)
            await asyncio.to_thread(done)

    return TarStream(gen(), done)


def _tar_tree(root_fd: int, out: BinaryIO, skip: frozenset[str]) -> None:
    """The tree below ``root_fd``, by archive.py's walk (the one ``cp`` uses): each entry
    pinned ``O_PATH | O_NOFOLLOW`` under its parent's descriptor and read as that inode,
    symlinks kept as links."""
    dev = os.fstat(root_fd).st_dev

    def descend(arcname: str, st: os.stat_result) -> bool:
        # other file systems under a live root (proc, sys, dev, volumes) are not the
        # container's own: their mount points go in empty, as docker's do
        return st.st_dev == dev and "/" + arcname not in skip

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        TreeWriter(tf, descend=descend, xattrs=True).write_below(root_fd)
