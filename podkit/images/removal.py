"""Who uses an image, ``rmi`` (untag, delete, forced untag of an image in use), prune."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from podkit.errors import Conflict, InvalidArgument, NotFound, PodkitError
from podkit.images.context import ImageContext
from podkit.images.gc import gc, mark
from podkit.images.image import DANGLING_PREFIX, LABEL_IMAGE, LABEL_NAMESPACE, Image, familiar_name
from podkit.images.oci import Descriptor
from podkit.images.records import find_by_name_safe, get, id_of, image_of, list_images, maybe_dangle, rows
from podkit.prune import PruneFilters, parse_until
from podkit.snapshots import COMMITTED, EXTRACT_PREFIX, Info

log = logging.getLogger(__name__)


def users(ctx: ImageContext, ns: str, image: Image) -> list[str]:
    """Who uses an image: container names from hooks, else snapshot keys built on it."""
    names: list[str] = []
    for hook in ctx.usage_hooks:
        try:
            names.extend(hook(ns, image))
        except Exception as e:  # a hook's failure must not make an image look unused silently
            log.warning("image usage hook %r failed for %s: %s", hook, image.name, e)
    if names:
        return names
    if not image.chain_id:
        return []
    out = []
    infos = ctx.snapshots.list()
    by_key = {i.key: i for i in infos}
    for info in infos:
        if info.kind == COMMITTED or info.key.startswith(EXTRACT_PREFIX):
            continue
        lab_img = info.labels.get(LABEL_IMAGE)
        lab_ns = info.labels.get(LABEL_NAMESPACE)
        if lab_ns and lab_ns != ns:
            continue
        if lab_img:
            if lab_img == image.id:
                out.append(info.key)
            continue
        if image.chain_id in ancestors(info, by_key):
            out.append(info.key)
    return out


def chain_in_use(ctx: ImageContext, chain_id: str) -> list[str]:
    """What keeps a layer snapshot: image names (``ns/name``) and snapshots built on it."""
    out: list[str] = []
    for r in ctx.db.query("SELECT * FROM images"):
        blobs: set[str] = set()
        snaps: set[str] = set()
        mark(ctx, Descriptor(r["media_type"], r["digest"], r["size"]), blobs, snaps)
        if chain_id in snaps:
            out.append(f"{r['namespace']}/{r['name']}")
    infos = ctx.snapshots.list()
    by_key = {i.key: i for i in infos}
    for info in infos:
        if info.kind != COMMITTED and chain_id in ancestors(info, by_key):
            out.append(info.key)
    return out


def remove(ctx: ImageContext, ns: str, ref: str, force: bool = False) -> list[dict[str, str]]:
    """docker rmi: untag a name, delete the image when its last name goes."""
    row = find_by_name_safe(ctx, ns, ref)
    try:
        image = image_of(ctx, row) if row is not None else get(ctx, ns, ref)
    except PodkitError as e:
        # A record whose content cannot be read (a broken or partial store) must
        # still be removable by name.
        if row is None:
            raise
        return _remove_unreadable(ctx, ns, row, e)
    by_name = row is not None
    same = [r for r in rows(ctx, ns) if id_of(ctx, r) == image.id]
    if by_name and len(same) > 1:
        names = [image.name]
    else:
        names = [r["name"] for r in same]
        if len(names) > 1 and not force:
            raise Conflict(
                f"conflict: unable to delete {image.id[7:19]} (must be forced) - "
                f"image is referenced in multiple repositories"
            )
    last = len(names) == len(same)
    if last:
        in_use = users(ctx, ns, image)
        if in_use and not force:
            what = f"repository reference {ref!r}" if by_name else image.id[7:19]
            raise Conflict(
                f"conflict: unable to remove {what} (must force) - container "
                f"{in_use[0]} is using its referenced image {image.id[7:19]}"
            )
        if in_use:
            # docker rmi -f of an image a container uses: its names go, the image
            # stays as <none> (its containers must still start, and GC must keep its
            # blobs); only an image with no name left cannot be forced.
            return _untag_in_use(ctx, ns, image, names, same[0], in_use[0])
        release(ctx, image.target)
    return _delete_names(ctx, ns, image, names, last)


def _remove_unreadable(ctx: ImageContext, ns: str, row: sqlite3.Row, e: PodkitError) -> list[dict[str, str]]:
    log.warning("removing image %s whose content is unreadable: %s", row["name"], e.message)
    with ctx.gc_lock, ctx.db.tx() as c:
        c.execute("DELETE FROM images WHERE namespace=? AND name=?", (ns, row["name"]))
    # What can still be read is freed now; snapshots whose chain IDs died with
    # the config go when the GC grace period has passed.
    release(ctx, Descriptor(row["media_type"], row["digest"], row["size"]))
    ctx.publish(ns, "image", "untag", row["digest"], name=row["name"])
    return [{"Untagged": familiar_name(row["name"])}]


def _delete_names(
    ctx: ImageContext, ns: str, image: Image, names: list[str], last: bool
) -> list[dict[str, str]]:
    result: list[dict[str, str]] = []
    with ctx.gc_lock, ctx.db.tx() as c:
        for n in names:
            c.execute("DELETE FROM images WHERE namespace=? AND name=?", (ns, n))
            if not n.startswith(DANGLING_PREFIX):
                result.append({"Untagged": familiar_name(n)})
    for n in names:
        ctx.publish(ns, "image", "untag", image.id, name=n)
    if last:
        result.append({"Deleted": image.id})
        ctx.publish(ns, "image", "delete", image.id)
    return result


def _untag_in_use(
    ctx: ImageContext, ns: str, image: Image, names: list[str], row: sqlite3.Row, user: str
) -> list[dict[str, str]]:
    tagged = [n for n in names if not n.startswith(DANGLING_PREFIX)]
    if not tagged:
        raise Conflict(
            f"conflict: unable to delete {image.id[7:19]} (cannot be forced) - "
            f"image is being used by container {user}"
        )
    with ctx.gc_lock, ctx.db.tx() as c:
        for n in tagged:
            c.execute("DELETE FROM images WHERE namespace=? AND name=?", (ns, n))
        maybe_dangle(c, ns, row)
    for n in tagged:
        ctx.publish(ns, "image", "untag", image.id, name=n)
    return [{"Untagged": familiar_name(n)} for n in tagged]


def release(ctx: ImageContext, target: Descriptor) -> None:
    """Let the next GC free what ``target`` references at once, however recent."""
    blobs: set[str] = set()
    snaps: set[str] = set()
    mark(ctx, target, blobs, snaps)
    ctx.released_blobs |= blobs
    ctx.released_snaps |= snaps


def prune(
    ctx: ImageContext, ns: str, all: bool = False, filters: PruneFilters | None = None
) -> dict[str, Any]:
    """Remove dangling images (``all``, or the filter ``dangling=false``: every image no
    container uses; the filters until and labels narrow it), then collect garbage."""
    f = filters or PruneFilters()
    every = all or f.dangling is False
    deleted: list[dict[str, str]] = []
    for img in list_images(ctx, ns):
        if not img.dangling and not every:
            continue
        if not f.selects(image_labels(img), image_created(img)):
            continue
        if users(ctx, ns, img):
            continue
        try:
            deleted.extend(remove(ctx, ns, img.name, force=True))
        except (NotFound, Conflict) as e:  # removed, or taken into use, since the listing
            log.debug("prune skips image %s: %s", img.name, e.message)
    stats = gc(ctx)
    return {"deleted": deleted, "space_reclaimed": stats["bytes"]}


def image_labels(img: Image) -> dict[str, str]:
    """The labels docker filters images by: the config's, then the record's."""
    cfg = (img.config or {}).get("config") or {}
    return {**(img.labels or {}), **(cfg.get("Labels") or {})}


def image_created(img: Image) -> float:
    """When the image was built (its config's ``created``), else when it was recorded."""
    text = (img.config or {}).get("created")
    if isinstance(text, str) and text:
        try:
            return parse_until(text)
        except InvalidArgument:
            pass
    return img.created


def ancestors(info: Info, by_key: dict[str, Info]) -> set[str]:
    out: set[str] = set()
    k = info.parent
    while k and k not in out:
        out.add(k)
        parent = by_key.get(k)
        k = parent.parent if parent is not None else None
    return out
