"""The image service: image records (name -> target descriptor), resolution of their
manifests and configs, unpacking into snapshots, removal and garbage collection.

An image record maps a normalised name (``docker.io/library/busybox:latest``) in a
namespace to a target descriptor (an index or a manifest) in the content store,
as containerd does. Everything else (manifest, config, layers, chain ID) is read
from immutable blobs and cached by digest.

Images whose name moved to another target stay as *dangling* records
(``<none>``), as docker shows them, until pruned.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from podkit.errors import (
    AlreadyExists,
    Conflict,
    DigestMismatch,
    InvalidArgument,
    NotFound,
    PodkitError,
)
from podkit.images import reference
from podkit.images.oci import (
    CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    Descriptor,
    Platform,
    check_image_config,
    layer_compression,
    select_manifest,
)
from podkit.images.unpack import apply_layer
from podkit.snapshots import COMMITTED, EXTRACT_PREFIX, Snapshotter
from podkit.store import ContentStore, Database, Leases

log = logging.getLogger(__name__)

Publish = Callable[..., Any]
# (namespace, image) -> names of the containers using it; the containers layer adds one.
UsageHook = Callable[[str, "Image"], list[str]]

DANGLING_PREFIX = "<none>@"
LABEL_IMAGE = "podkit/image"  # on a container's snapshot: the image id it was made from
LABEL_NAMESPACE = "podkit/namespace"

_DDL = """
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


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain IDs per the OCI image spec: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))."""
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def chain_id_of(parent: str | None, diff_id: str) -> str:
    if not parent:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


@dataclass
class Image:
    name: str  # normalised reference, or "<none>@<digest>" when dangling
    digest: str  # target descriptor digest (index or manifest): what `name@digest` matches
    media_type: str  # target media type
    id: str  # config digest: docker's IMAGE ID
    config: dict[str, Any]
    manifest_digest: str
    layers: list[Descriptor]
    diff_ids: list[str]
    chain_id: str | None  # top layer's chain ID (None for an image without layers)
    size: int  # compressed: manifest + config + layers
    created: float  # when this record was made
    labels: dict[str, str] = field(default_factory=dict)
    platform: str = ""
    target_size: int = 0
    updated: float = 0.0
    platforms: list[str] = field(default_factory=list)  # all of an index's platforms

    @property
    def dangling(self) -> bool:
        return self.name.startswith(DANGLING_PREFIX)

    @property
    def target(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.target_size)

    @property
    def repository(self) -> str:
        if self.dangling:
            return "<none>"
        return reference.parse(self.name, default_tag=False).name

    @property
    def tag(self) -> str:
        if self.dangling:
            return "<none>"
        ref = reference.parse(self.name, default_tag=False)
        return ref.tag or "<none>"

    @property
    def chain(self) -> list[str]:
        return chain_ids(self.diff_ids)

    def to_dict(self) -> dict[str, Any]:
        cfg_created = self.config.get("created") or ""
        familiar = ""
        if not self.dangling:
            with contextlib.suppress(PodkitError):
                familiar = reference.parse(self.name, default_tag=False).familiar()
        return {
            "name": self.name,
            "familiar": familiar,
            "repository": self.repository,
            "tag": self.tag,
            "dangling": self.dangling,
            "id": self.id,
            "digest": self.digest,
            "media_type": self.media_type,
            "manifest_digest": self.manifest_digest,
            "config": self.config,
            "layers": [d.to_dict() for d in self.layers],
            "diff_ids": self.diff_ids,
            "chain_id": self.chain_id,
            "size": self.size,
            "created": self.created,
            "updated": self.updated,
            "image_created": cfg_created,
            "labels": self.labels,
            "platform": self.platform,
            "platforms": self.platforms,
            "os": self.config.get("os", ""),
            "architecture": self.config.get("architecture", ""),
        }


@dataclass
class _Resolved:
    manifest_digest: str
    config_digest: str
    config: dict[str, Any]
    layers: list[Descriptor]
    size: int
    platform: str
    platforms: list[str]


class ImageService:
    def __init__(
        self, db: Database, content: ContentStore, snapshots: Snapshotter, publish: Publish | None = None
    ) -> None:
        self.db = db
        self.content = content
        self.snapshots = snapshots
        self.publish: Publish = publish or (lambda *a, **k: None)
        self.leases = Leases(db)
        self.usage_hooks: list[UsageHook] = []
        db.schema("images", _DDL)
        self._cache: dict[tuple[str, str], _Resolved] = {}
        self._json_cache: dict[str, Any] = {}
        self._gc_lock = threading.RLock()
        self._apply_locks: dict[str, asyncio.Lock] = {}
        self.gc_task: asyncio.Task[Any] | None = None
        # Blobs and chain IDs of images removed since the last GC: freed even if recent.
        # (A plain-tar layer's blob digest is also its diff ID and chain ID: two sets.)
        self._released_blobs: set[str] = set()
        self._released_snaps: set[str] = set()

    # -- blobs -----------------------------------------------------------------------

    def read_json(self, digest: str) -> Any:
        if digest in self._json_cache:
            return self._json_cache[digest]
        try:
            data = json.loads(self.content.read(digest))
        except ValueError as e:
            raise InvalidArgument(f"blob {digest} is not valid JSON: {e}") from None
        if len(self._json_cache) > 4096:
            self._json_cache.clear()
        self._json_cache[digest] = data
        return data

    def resolve(self, target: Descriptor, platform: Platform | None = None) -> _Resolved:
        """Manifest, config and layers behind a target (an index is narrowed to a platform)."""
        want = platform or Platform.host()
        # An implicit platform may fall back to another one: cached apart from explicit asks.
        key = (target.digest, str(platform) if platform is not None else "")
        if key in self._cache:
            return self._cache[key]
        platforms: list[str] = []
        mdesc = target
        if target.media_type in INDEX_TYPES:
            index = self.read_json(target.digest)
            platforms = [
                str(Platform.from_dict(m.get("platform")))
                for m in index.get("manifests", [])
                if m.get("platform")
            ]
            try:
                mdesc = select_manifest(index, want)
                if not self.content.has(mdesc.digest):
                    raise NotFound(f"image index {target.digest} has no content for platform {want}")
            except (NotFound, InvalidArgument):
                if platform is not None:
                    raise
                # No platform asked for and the host's is absent (e.g. pulled with
                # --platform): the first platform this store holds stands for the image.
                present = [
                    Descriptor.from_dict(m)
                    for m in index.get("manifests") or []
                    if self.content.has(m.get("digest", "sha256:" + "0" * 64))
                    and (m.get("mediaType") in MANIFEST_TYPES or not m.get("mediaType"))
                    and (m.get("platform") or {}).get("os") != "unknown"
                ]
                if not present:
                    raise NotFound(
                        f"image index {target.digest}: no platform's manifest is in the store "
                        f"(the host's is {want})"
                    ) from None
                mdesc = present[0]
        elif target.media_type and target.media_type not in MANIFEST_TYPES:
            raise InvalidArgument(f"unsupported image media type {target.media_type!r}")
        manifest = self.read_json(mdesc.digest)
        if "config" not in manifest:
            raise InvalidArgument(f"manifest {mdesc.digest} has no config")
        cdesc = Descriptor.from_dict(manifest["config"])
        layers = [Descriptor.from_dict(d) for d in manifest.get("layers") or []]
        config = check_image_config(self.read_json(cdesc.digest), cdesc.digest)
        if cdesc.media_type and cdesc.media_type not in CONFIG_TYPES:
            raise InvalidArgument(f"manifest {mdesc.digest}: unsupported config type {cdesc.media_type!r}")
        plat = "/".join(
            p for p in (config.get("os", ""), config.get("architecture", ""), config.get("variant", "")) if p
        )
        size = mdesc.size + cdesc.size + sum(d.size for d in layers)
        r = _Resolved(mdesc.digest, cdesc.digest, config, layers, size, plat, platforms)
        self._cache[key] = r
        return r

    # -- records ---------------------------------------------------------------------

    def _image(self, row: Any, platform: Platform | None = None) -> Image:
        target = Descriptor(row["media_type"], row["digest"], row["size"])
        r = self.resolve(target, platform)
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

    def record(
        self,
        ns: str,
        name: str,
        target: Descriptor,
        labels: dict[str, str] | None = None,
        action: str = "tag",
    ) -> Image:
        """Point ``name`` at ``target`` (creating or moving the name)."""
        full = str(reference.parse(name))
        # Fail before writing anything if the target cannot be read.
        self.resolve(target)
        self.db.ensure_namespace(ns)
        now = time.time()
        with self._gc_lock, self.db.tx() as c:
            old = c.execute("SELECT * FROM images WHERE namespace=? AND name=?", (ns, full)).fetchone()
            created = old["created"] if old is not None and old["digest"] == target.digest else now
            c.execute(
                "INSERT OR REPLACE INTO images(namespace,name,media_type,digest,size,created,updated,labels)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    ns,
                    full,
                    target.media_type,
                    target.digest,
                    target.size,
                    created,
                    now,
                    json.dumps(labels or (json.loads(old["labels"]) if old is not None else {})),
                ),
            )
            c.execute(
                "DELETE FROM images WHERE namespace=? AND name=?", (ns, DANGLING_PREFIX + target.digest)
            )
            if old is not None and old["digest"] != target.digest:
                self._maybe_dangle(c, ns, old)
        img = self.get(ns, full)
        self._released_blobs.difference_update(
            {img.digest, img.id, img.manifest_digest, *(d.digest for d in img.layers)}
        )
        self._released_snaps.difference_update(img.chain)
        self.publish(ns, "image", action, img.id, name=full)
        return img

    def record_dangling(self, ns: str, target: Descriptor, action: str = "import") -> Image:
        """An image without a name (``<none>:<none>``), unless a name already points at it."""
        self.resolve(target)
        self.db.ensure_namespace(ns)
        now = time.time()
        with self._gc_lock, self.db.tx() as c:
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
        img = self.get(ns, name)
        self._released_blobs.difference_update(
            {img.digest, img.id, img.manifest_digest, *(d.digest for d in img.layers)}
        )
        self._released_snaps.difference_update(img.chain)
        self.publish(ns, "image", action, img.id)
        return img

    def _maybe_dangle(self, c: Any, ns: str, old: Any) -> None:
        """The name moved away from ``old``: keep it as <none> if nothing else names it."""
        left = c.execute(
            "SELECT 1 FROM images WHERE namespace=? AND digest=?", (ns, old["digest"])
        ).fetchone()
        if left is None:
            c.execute(
                "INSERT OR REPLACE INTO images(namespace,name,media_type,digest,size,created,updated,labels)"
                " VALUES (?,?,?,?,?,?,?,?)",
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

    def _rows(self, ns: str) -> list[Any]:
        return self.db.query("SELECT * FROM images WHERE namespace=? ORDER BY created DESC, name", (ns,))

    def list(self, ns: str, dangling: bool | None = None) -> list[Image]:
        out = []
        for row in self._rows(ns):
            try:
                img = self._image(row)
            except PodkitError as e:
                log.warning("image %s in %s cannot be resolved: %s", row["name"], ns, e.message)
                continue
            if dangling is None or img.dangling == dangling:
                out.append(img)
        return out

    def get(self, ns: str, ref: str, platform: Platform | None = None) -> Image:
        """By name (normalised), by ``name@sha256:...``, by full or short id, or by digest."""
        ref = ref.strip()
        if not ref:
            raise InvalidArgument("empty image reference")
        row = self._find_by_name(ns, ref)
        if row is not None:
            return self._image(row, platform)
        m = _HEX_RE.fullmatch(ref)
        if m:
            prefix = m.group(1)
            hits: dict[str, Any] = {}
            for r in self._rows(ns):
                try:
                    img = self._image(r, platform)
                except PodkitError:
                    continue
                if img.id[7:].startswith(prefix) or (len(prefix) == 64 and img.digest[7:] == prefix):
                    hits.setdefault(img.id, img)
            if len(hits) == 1:
                return next(iter(hits.values()))
            if len(hits) > 1:
                raise InvalidArgument(f"short image id {ref!r} is ambiguous: {len(hits)} images match")
        raise NotFound(f"No such image: {ref}")

    def _find_by_name(self, ns: str, ref: str) -> Any:
        if ref.startswith(DANGLING_PREFIX):
            return self.db.one("SELECT * FROM images WHERE namespace=? AND name=?", (ns, ref))
        try:
            parsed = reference.parse(ref)
        except InvalidArgument:
            if _HEX_RE.fullmatch(ref):
                return None
            raise
        row = self.db.one("SELECT * FROM images WHERE namespace=? AND name=?", (ns, str(parsed)))
        if row is not None or not parsed.digest:
            return row
        # name@digest: any record of that repository with that target (or manifest) digest.
        for r in self.db.query("SELECT * FROM images WHERE namespace=? AND digest=?", (ns, parsed.digest)):
            if r["name"].startswith(DANGLING_PREFIX) or reference.parse(r["name"]).name == parsed.name:
                return r
        for r in self._rows(ns):
            if r["name"].startswith(DANGLING_PREFIX):
                continue
            if reference.parse(r["name"]).name != parsed.name:
                continue
            with contextlib.suppress(PodkitError):
                if self._image(r).manifest_digest == parsed.digest:
                    return r
        return None

    def names_of(self, ns: str, image_id: str) -> list[str]:
        out = []
        for img in self.list(ns):
            if img.id == image_id:
                out.append(img.name)
        return out

    # -- unpacking -------------------------------------------------------------------

    async def unpack(self, ns: str, image: Image, platform: Platform | None = None) -> str:
        """Apply all layers of ``image`` into snapshots; returns the top chain ID."""
        if platform is not None:
            image = self.get(ns, image.name, platform)
        if len(image.layers) != len(image.diff_ids):
            raise InvalidArgument(
                f"image {image.name}: {len(image.layers)} layers but "
                f"{len(image.diff_ids)} diff IDs in its config"
            )
        if not image.layers:
            raise InvalidArgument(f"image {image.name} has no layers")
        parent: str | None = None
        for layer, diff_id in zip(image.layers, image.diff_ids, strict=True):
            parent = await self.apply(layer, parent, diff_id)
        assert parent is not None
        return parent

    def unpacked_size(self, image: Image) -> int:
        """Bytes the image's layers take on disk once unpacked (0 when not unpacked)."""
        total = 0
        for chain in image.chain:
            try:
                total += self.snapshots.usage(chain).size
            except PodkitError:
                return 0
        return total

    def is_unpacked(self, image: Image) -> bool:
        return bool(image.chain_id) and self.snapshots.exists(image.chain_id or "")

    async def apply(self, layer: Descriptor, parent_chain_id: str | None, diff_id: str) -> str:
        """Apply one layer blob on top of ``parent_chain_id``; returns the new chain ID.

        A no-op when that snapshot exists. The layer goes into a fresh active
        snapshot that is committed only when it applied completely and its diff ID
        matched; otherwise it is removed.
        """
        chain = chain_id_of(parent_chain_id, diff_id)
        if self.snapshots.exists(chain):
            return chain
        lock = self._apply_locks.setdefault(chain, asyncio.Lock())
        async with lock:
            if self.snapshots.exists(chain):
                return chain
            try:
                return await asyncio.to_thread(self._apply_sync, layer, parent_chain_id, diff_id, chain)
            finally:
                self._apply_locks.pop(chain, None)

    def _apply_sync(self, layer: Descriptor, parent: str | None, diff_id: str, chain: str) -> str:
        compression = layer_compression(layer.media_type) if layer.media_type else "gzip"
        key = f"{EXTRACT_PREFIX}{secrets.token_hex(6)}-{chain[7:19]}"
        self.snapshots.prepare(key, parent, labels={"podkit/extract": chain})
        ok = False
        try:
            target = self.snapshots.apply_dir(key)
            lowers = self.snapshots.lower_dirs(key)
            try:
                f = self.content.open(layer.digest)
            except NotFound:
                raise NotFound(
                    f"layer {layer.digest} is not in the content store: pull or load the image again"
                ) from None
            with f:
                got = apply_layer(f, compression, target, self.snapshots.whiteouts, lowers)
            if got != diff_id:
                raise DigestMismatch(
                    f"layer {layer.digest}: uncompressed digest {got} does not match "
                    f"the diff ID {diff_id} in the image config"
                )
            with self._gc_lock:
                try:
                    self.snapshots.commit(
                        chain, key, labels={"podkit/diff-id": diff_id, "podkit/layer": layer.digest}
                    )
                except AlreadyExists:
                    return chain  # someone else applied the same layer meanwhile
            ok = True
            return chain
        finally:
            if not ok or self.snapshots.exists(key):
                with contextlib.suppress(PodkitError):
                    self.snapshots.remove(key)

    # Blobs and layer snapshots made this recently and not (yet) named by any image
    # survive GC even without a lease: a pull or import in flight. What an image
    # removal releases is freed at once.
    GRACE_SECONDS = 600.0

    # -- usage, removal, GC ----------------------------------------------------------

    def users(self, ns: str, image: Image) -> list[str]:
        """Who uses an image: container names from hooks, else snapshot keys built on it."""
        names: list[str] = []
        for hook in self.usage_hooks:
            with contextlib.suppress(Exception):
                names.extend(hook(ns, image))
        if names:
            return names
        if not image.chain_id:
            return []
        out = []
        infos = self.snapshots.list()
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
            if image.chain_id in _ancestors(info, by_key):
                out.append(info.key)
        return out

    def chain_in_use(self, chain_id: str) -> list[str]:
        """What keeps a layer snapshot: image names (``ns/name``) and snapshots built on it."""
        users: list[str] = []
        for r in self.db.query("SELECT * FROM images"):
            blobs: set[str] = set()
            snaps: set[str] = set()
            self._mark(Descriptor(r["media_type"], r["digest"], r["size"]), blobs, snaps)
            if chain_id in snaps:
                users.append(f"{r['namespace']}/{r['name']}")
        infos = self.snapshots.list()
        by_key = {i.key: i for i in infos}
        for info in infos:
            if info.kind != COMMITTED and chain_id in _ancestors(info, by_key):
                users.append(info.key)
        return users

    def remove(self, ns: str, ref: str, force: bool = False) -> list[dict[str, str]]:
        """docker rmi: untag a name, delete the image when its last name goes."""
        row = self._find_by_name_safe(ns, ref)
        try:
            image = self._image(row) if row is not None else self.get(ns, ref)
        except PodkitError as e:
            # A record whose content cannot be read (a broken or partial store) must
            # still be removable by name.
            if row is None:
                raise
            log.warning("removing image %s whose content is unreadable: %s", row["name"], e.message)
            with self._gc_lock, self.db.tx() as c:
                c.execute("DELETE FROM images WHERE namespace=? AND name=?", (ns, row["name"]))
            # What can still be read is freed now; snapshots whose chain IDs died with
            # the config go when the GC grace period has passed.
            self.release(Descriptor(row["media_type"], row["digest"], row["size"]))
            self.publish(ns, "image", "untag", row["digest"], name=row["name"])
            return [{"Untagged": _familiar(row["name"])}]
        by_name = self._find_by_name_safe(ns, ref) is not None
        same = [r for r in self._rows(ns) if self._id_of(r) == image.id]
        if by_name and len(same) > 1:
            names = [image.name]
        else:
            names = [r["name"] for r in same]
            if len(names) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {image.id[7:19]} (must be forced) - "
                    f"image is referenced in multiple repositories"
                )
        result: list[dict[str, str]] = []
        last = len(names) == len(same)
        if last:
            users = self.users(ns, image)
            if users and not force:
                what = f"repository reference {ref!r}" if by_name else image.id[7:19]
                raise Conflict(
                    f"conflict: unable to remove {what} (must force) - container "
                    f"{users[0]} is using its referenced image {image.id[7:19]}"
                )
            if users:
                # docker rmi -f of an image a container uses: its names go, the image
                # stays as <none> (its containers must still start, and GC must keep its
                # blobs); only an image with no name left cannot be forced.
                return self._untag_in_use(ns, image, names, same[0], users[0])
        if last:
            self.release(image.target)
        with self._gc_lock, self.db.tx() as c:
            for n in names:
                c.execute("DELETE FROM images WHERE namespace=? AND name=?", (ns, n))
                if not n.startswith(DANGLING_PREFIX):
                    result.append({"Untagged": _familiar(n)})
        for n in names:
            self.publish(ns, "image", "untag", image.id, name=n)
        if last:
            result.append({"Deleted": image.id})
            self.publish(ns, "image", "delete", image.id)
        return result

    def _untag_in_use(
        self, ns: str, image: Image, names: list[str], row: Any, user: str
    ) -> list[dict[str, str]]:
        tagged = [n for n in names if not n.startswith(DANGLING_PREFIX)]
        if not tagged:
            raise Conflict(
                f"conflict: unable to delete {image.id[7:19]} (cannot be forced) - "
                f"image is being used by container {user}"
            )
        with self._gc_lock, self.db.tx() as c:
            for n in tagged:
                c.execute("DELETE FROM images WHERE namespace=? AND name=?", (ns, n))
            self._maybe_dangle(c, ns, row)
        for n in tagged:
            self.publish(ns, "image", "untag", image.id, name=n)
        return [{"Untagged": _familiar(n)} for n in tagged]

    def release(self, target: Descriptor) -> None:
        """Let the next GC free what ``target`` references at once, however recent."""
        blobs: set[str] = set()
        snaps: set[str] = set()
        self._mark(target, blobs, snaps)
        self._released_blobs |= blobs
        self._released_snaps |= snaps

    def _find_by_name_safe(self, ns: str, ref: str) -> Any:
        try:
            return self._find_by_name(ns, ref)
        except InvalidArgument:
            return None

    def _id_of(self, row: Any) -> str | None:
        try:
            return self._image(row).id
        except PodkitError:
            return None

    def prune(self, ns: str, all: bool = False) -> dict[str, Any]:
        """Remove dangling images (``all``: every image no container uses), then collect garbage."""
        deleted: list[dict[str, str]] = []
        for img in self.list(ns):
            if not img.dangling and not all:
                continue
            if self.users(ns, img):
                continue
            with contextlib.suppress(NotFound, Conflict):
                deleted.extend(self.remove(ns, img.name, force=True))
        stats = self.gc()
        return {"deleted": deleted, "space_reclaimed": stats["bytes"]}

    def gc(self) -> dict[str, int]:
        """Delete blobs and committed snapshots that nothing references.

        Roots: every image record of every namespace (its index, manifests,
        configs, layers and the layers' chain IDs); every active or view snapshot
        (a container's) and its parents; leases and what was made during them; chain
        IDs committed in the last minutes and not yet named by an image.
        """
        with self._gc_lock:
            self.leases.expire()
            keep_blobs: set[str] = set(self.leases.refs("content"))
            keep_snaps: set[str] = set()
            for r in self.db.query("SELECT * FROM images"):
                keep_blobs.add(r["digest"])
                self._mark(Descriptor(r["media_type"], r["digest"], r["size"]), keep_blobs, keep_snaps)
            now = time.time()
            recent = now - self.GRACE_SECONDS
            keep_snaps |= self.leases.refs("snapshot")
            since = self.leases.oldest_active()
            infos = {i.key: i for i in self.snapshots.list()}
            # Whatever is kept keeps its parents; active snapshots are always kept.
            todo = [
                k
                for k, i in infos.items()
                if i.kind != COMMITTED
                or k in keep_snaps
                or (since is not None and i.created >= since)
                or (i.created >= recent and k not in self._released_snaps)
            ]
            kept: set[str] = set()
            while todo:
                k = todo.pop()
                if k in kept or k not in infos:
                    continue
                kept.add(k)
                if infos[k].parent:
                    todo.append(infos[k].parent or "")
            freed = 0
            n_snaps = 0
            doomed = [k for k in infos if k not in kept]
            # Children before parents.
            while doomed:
                progress = False
                for k in list(doomed):
                    if any(infos[o].parent == k for o in doomed if o != k):
                        continue
                    with contextlib.suppress(PodkitError):
                        freed += self.snapshots.usage(k).size
                        self.snapshots.remove(k)
                        n_snaps += 1
                        self._released_snaps.discard(k)
                    doomed.remove(k)
                    progress = True
                if not progress:
                    break
            n_blobs = 0
            for d in list(self.content):
                if d in keep_blobs:
                    continue
                path = self.content.path(d)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                if since is not None and st.st_mtime >= since - 1:
                    continue
                if st.st_mtime >= recent and d not in self._released_blobs:
                    continue
                freed += st.st_size
                self.content.delete(d)
                self._released_blobs.discard(d)
                self._json_cache.pop(d, None)
                n_blobs += 1
            if n_blobs:
                self._cache = {k: v for k, v in self._cache.items() if k[0] in keep_blobs}
            if n_blobs or n_snaps:
                log.info("gc: removed %d blobs and %d snapshots (%d bytes)", n_blobs, n_snaps, freed)
            return {"blobs": n_blobs, "snapshots": n_snaps, "bytes": freed}

    async def gc_async(self) -> dict[str, int]:
        """gc() in a worker thread; failures are logged (used for the start-up sweep)."""
        try:
            return await asyncio.to_thread(self.gc)
        except Exception:
            log.exception("garbage collection failed")
            return {"blobs": 0, "snapshots": 0, "bytes": 0}

    def _mark(self, target: Descriptor, blobs: set[str], snaps: set[str]) -> None:
        blobs.add(target.digest)
        if not self.content.has(target.digest):
            return
        try:
            doc = self.read_json(target.digest)
        except PodkitError:
            return
        if target.media_type in INDEX_TYPES or (not target.media_type and "manifests" in doc):
            for m in doc.get("manifests") or []:
                with contextlib.suppress(PodkitError):
                    self._mark(Descriptor.from_dict(m), blobs, snaps)
            return
        cfg = doc.get("config") or {}
        if cfg.get("digest"):
            blobs.add(cfg["digest"])
        for layer in doc.get("layers") or []:
            if layer.get("digest"):
                blobs.add(layer["digest"])
        if cfg.get("digest") and self.content.has(cfg["digest"]):
            with contextlib.suppress(PodkitError):
                config = self.read_json(cfg["digest"])
                snaps.update(chain_ids(list((config.get("rootfs") or {}).get("diff_ids") or [])))

    # -- info ------------------------------------------------------------------------

    def info(self, ns: str) -> dict[str, Any]:
        n = self.db.one("SELECT COUNT(*) AS n FROM images WHERE namespace=?", (ns,))
        return {"count": n["n"] if n else 0, "snapshotter": self.snapshots.driver}

    def cleanup(self) -> None:
        """Start-up: drop half-applied layers left by a crash."""
        removed = self.snapshots.cleanup()
        if removed:
            log.info("removed %d snapshot(s) left by an earlier crash", removed)


def _ancestors(info: Any, by_key: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    k = info.parent
    while k and k not in out:
        out.add(k)
        parent = by_key.get(k)
        k = parent.parent if parent is not None else None
    return out


def _familiar(name: str) -> str:
    try:
        return reference.parse(name, default_tag=False).familiar()
    except PodkitError:
        return name
