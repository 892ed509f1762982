"""Image records: a name (or ``<none>@digest``) in a namespace pointing at a target descriptor.

Names are looked up normalised, as ``name@digest``, by full or short image id, or
by digest. A name moved to another target leaves the old target as a dangling
record, unless another name still points at it.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time

from podkit.errors import InvalidArgument, NotFound, PodkitError
from podkit.images import reference
from podkit.images.context import ImageContext
from podkit.images.image import DANGLING_PREFIX, Image, chain_ids
from podkit.images.oci import Descriptor, Platform
from podkit.images.resolve import resolve

log = logging.getLogger(__name__)

DDL = """
CREATE TABLE IF NOT EXISTS images (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (namespace, name)
);
CREATE INDEX IF NOT EXISTS images_digest ON images(namespace, digest);
"""

_HEX_RE = re.compile(r"^(?:sha256:)?([a-f0-9]{1,64})$")

_UPSERT = (
    "INSERT OR REPLACE INTO images(namespace,name,media_type,digest,size,created,updated,labels)"
    " VALUES (?,?,?,?,?,?,?,?)"
)


def image_of(ctx: ImageContext, row: sqlite3.Row, platform: Platform | None = None) -> Image:
    """An ``images`` row with what its target resolves to."""
    target = Descriptor(row["media_type"], row["digest"], row["size"])
    r = resolve(ctx, target, platform)
    diff_ids = list((r.config.get("rootfs") or {}).get("diff_ids") or [])
    chains = chain_ids(diff_ids)
    return Image(
        name=row["name"],
        digest=row["digest"],
        media_type=row["media_type"],
        id=r.config_digest,
        config=r.config,
        manifest_digest=r.manifest_digest,
        layers=r.layers,
        diff_ids=diff_ids,
        chain_id=chains[-1] if chains else None,
        size=r.size,
        created=row["created"],
        labels=json.loads(row["labels"]),
        platform=r.platform,
        target_size=row["size"],
        updated=row["updated"],
        platforms=r.platforms,
    )


def _unrelease(ctx: ImageContext, img: Image) -> None:
    """An image (re)recorded: what it references is no longer freed early by GC."""
    ctx.released_blobs.difference_update(
        {img.digest, img.id, img.manifest_digest, *(d.digest for d in img.layers)}
    )
    ctx.released_snaps.difference_update(img.chain)


def record(
    ctx: ImageContext,
    ns: str,
    name: str,
    target: Descriptor,
    labels: dict[str, str] | None = None,
    action: str = "tag",
) -> Image:
    """Point ``name`` at ``target`` (creating or moving the name)."""
    full = str(reference.parse(name))
    # Fail before writing anything if the target cannot be read.
    resolve(ctx, target)
    ctx.db.ensure_namespace(ns)
    now = time.time()
    with ctx.gc_lock, ctx.db.tx() as c:
        old = c.execute("SELECT * FROM images WHERE namespace=? AND name=?", (ns, full)).fetchone()
        created = old["created"] if old is not None and old["digest"] == target.digest else now
        keep_labels = json.loads(old["labels"]) if old is not None else {}
        c.execute(
            _UPSERT,
            (
                ns,
                full,
                target.media_type,
                target.digest,
                target.size,
                created,
                now,
                json.dumps(labels or keep_labels),
            ),
        )
        c.execute("DELETE FROM images WHERE namespace=? AND name=?", (ns, DANGLING_PREFIX + target.digest))
        if old is not None and old["digest"] != target.digest:
            maybe_dangle(c, ns, old)
    img = get(ctx, ns, full)
    _unrelease(ctx, img)
    ctx.publish(ns, "image", action, img.id, name=full)
    return img


def record_dangling(ctx: ImageContext, ns: str, target: Descriptor, action: str = "import") -> Image:
    """An image without a name (``<none>:<none>``), unless a name already points at it."""
    resolve(ctx, target)
    ctx.db.ensure_namespace(ns)
    now = time.time()
    with ctx.gc_lock, ctx.db.tx() as c:
        named = c.execute(
            "SELECT name FROM images WHERE namespace=? AND digest=?", (ns, target.digest)
        ).fetchone()
        name = named["name"] if named is not None else DANGLING_PREFIX + target.digest
        if named is None:
            c.execute(
                "INSERT INTO images(namespace,name,media_type,digest,size,created,updated,labels)"
                " VALUES (?,?,?,?,?,?,?,'{}')",
                (ns, name, target.media_type, target.digest, target.size, now, now),
            )
    img = get(ctx, ns, name)
    _unrelease(ctx, img)
    ctx.publish(ns, "image", action, img.id)
    return img


def maybe_dangle(c: sqlite3.Connection, ns: str, old: sqlite3.Row) -> None:
    """The name moved away from ``old``: keep it as <none> if nothing else names it."""
    left = c.execute("SELECT 1 FROM images WHERE namespace=? AND digest=?", (ns, old["digest"])).fetchone()
    if left is None:
        c.execute(
            _UPSERT,
            (
                ns,
                DANGLING_PREFIX + old["digest"],
                old["media_type"],
                old["digest"],
                old["size"],
                old["created"],
                time.time(),
                old["labels"],
            ),
        )


def rows(ctx: ImageContext, ns: str) -> list[sqlite3.Row]:
    return ctx.db.query("SELECT * FROM images WHERE namespace=? ORDER BY created DESC, name", (ns,))


def list_images(ctx: ImageContext, ns: str, dangling: bool | None = None) -> list[Image]:
    out = []
    for row in rows(ctx, ns):
        try:
            img = image_of(ctx, row)
        except PodkitError as e:
            log.warning("image %s in %s cannot be resolved: %s", row["name"], ns, e.message)
            continue
        if dangling is None or img.dangling == dangling:
            out.append(img)
    return out


def get(ctx: ImageContext, ns: str, ref: str, platform: Platform | None = None) -> Image:
    """By name (normalised), by ``name@sha256:...``, by full or short id, or by digest."""
    ref = ref.strip()
    if not ref:
        raise InvalidArgument("empty image reference")
    row = find_by_name(ctx, ns, ref)
    if row is not None:
        return image_of(ctx, row, platform)
    m = _HEX_RE.fullmatch(ref)
    if m:
        prefix = m.group(1)
        hits: dict[str, Image] = {}
        for r in rows(ctx, ns):
            try:
                img = image_of(ctx, r, platform)
            except PodkitError:  # an unreadable record matches no id
                continue
            if img.id[7:].startswith(prefix) or (len(prefix) == 64 and img.digest[7:] == prefix):
                hits.setdefault(img.id, img)
        if len(hits) == 1:
            return next(iter(hits.values()))
        if len(hits) > 1:
            raise InvalidArgument(f"short image id {ref!r} is ambiguous: {len(hits)} images match")
    raise NotFound(f"No such image: {ref}")


def find_by_name(ctx: ImageContext, ns: str, ref: str) -> sqlite3.Row | None:
    """The record a name (or ``name@digest``) names; None for an id-like ref or no match."""
    if ref.startswith(DANGLING_PREFIX):
        return ctx.db.one("SELECT * FROM images WHERE namespace=? AND name=?", (ns, ref))
    try:
        parsed = reference.parse(ref)
    except InvalidArgument:
        if _HEX_RE.fullmatch(ref):
            return None
        raise
    row = ctx.db.one("SELECT * FROM images WHERE namespace=? AND name=?", (ns, str(parsed)))
    if row is not None or not parsed.digest:
        return row
    # name@digest: any record of that repository with that target (or manifest) digest.
    for r in ctx.db.query("SELECT * FROM images WHERE namespace=? AND digest=?", (ns, parsed.digest)):
        if r["name"].startswith(DANGLING_PREFIX) or reference.parse(r["name"]).name == parsed.name:
            return r
    for r in rows(ctx, ns):
        if r["name"].startswith(DANGLING_PREFIX) or reference.parse(r["name"]).name != parsed.name:
            continue
        try:
            if image_of(ctx, r).manifest_digest == parsed.digest:
                return r
        except PodkitError:  # an unreadable record has no manifest to match
            continue
    return None


def find_by_name_safe(ctx: ImageContext, ns: str, ref: str) -> sqlite3.Row | None:
    """``find_by_name``, with None for a ref that is no valid name."""
    try:
        return find_by_name(ctx, ns, ref)
    except InvalidArgument:
        return None


def id_of(ctx: ImageContext, row: sqlite3.Row) -> str | None:
    """A record's image id; None when its content cannot be read."""
    try:
        return image_of(ctx, row).id
    except PodkitError:
        return None


def names_of(ctx: ImageContext, ns: str, image_id: str) -> list[str]:
    return [img.name for img in list_images(ctx, ns) if img.id == image_id]
