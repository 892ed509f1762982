"""Pushing an image: its blobs (skipping those the registry has, mounting those
another repository of the same registry has), then its manifest(s), then the tag.

A multi-platform image is pushed as its whole index when every platform's
manifest is in the store; otherwise (it was pulled for one platform) the manifest
of the host platform is pushed, as docker does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from podkit.errors import InvalidArgument, NotFound, PodkitError
from podkit.images.late import Late
from podkit.images.oci import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_MANIFEST,
    Descriptor,
    Platform,
    select_manifest,
)
from podkit.images.pull import Emit, Lease, short
from podkit.images.reference import Reference
from podkit.images.registry.auth import Credentials
from podkit.images.registry.client import RegistryClient, Repository
from podkit.images.registry.sources import BlobSources
from podkit.store import Content, Database

if TYPE_CHECKING:
    from podkit.images.service import Image, ImageService

log = logging.getLogger(__name__)


class Pusher:
    def __init__(
        self,
        content: Content,
        images: Late[ImageService],
        db: Database,
        client: RegistryClient,
        max_concurrent_uploads: int = 4,
        sources: BlobSources | None = None,
    ) -> None:
        self.content = content
        self._images = images
        self.db = db
        self.client = client
        self.max_uploads = max(1, max_concurrent_uploads)
        self.sources = sources

    def _read_json(self, digest: str, what: str) -> dict[str, Any]:
        try:
            doc = json.loads(self.content.read(digest))
        except NotFound:
            raise NotFound(f"{what} {digest} is not in the content store") from None
        except (ValueError, RecursionError):
            raise InvalidArgument(f"{what} {digest} is not valid JSON") from None
        if not isinstance(doc, dict):
            raise InvalidArgument(f"{what} {digest} is not a JSON object")
        return doc

    @property
    def images(self) -> ImageService:
        return self._images.need()

    def _target(self, image: Image) -> Descriptor:
        return image.target

    def plan(self, target: Descriptor) -> tuple[list[tuple[Descriptor, bytes]], list[Descriptor]]:
        """Manifests to put (children first, the tagged one last) and the blobs they need."""
        manifests: list[tuple[Descriptor, bytes]] = []
        blobs: dict[str, Descriptor] = {}

        def add_manifest(desc: Descriptor) -> None:
            doc = self._read_json(desc.digest, "manifest")
            for d in [doc.get("config") or {}, *(doc.get("layers") or [])]:
                bd = Descriptor.from_dict(d)
                if not self.content.has(bd.digest):
                    raise NotFound(
                        f"blob {bd.digest} of manifest {desc.digest} is not in the store; pull the "
                        "image again before pushing it"
                    )
                blobs.setdefault(bd.digest, bd)
            manifests.append((desc, self.content.read(desc.digest)))

        if target.media_type in INDEX_TYPES:
            index = self._read_json(target.digest, "index")
            children = [Descriptor.from_dict(m) for m in index.get("manifests") or []]
            if children and all(self.content.has(c.digest) for c in children):
                for c in children:
                    if not c.media_type:
                        c.media_type = OCI_MANIFEST
                    add_manifest(c)
                manifests.append((target, self.content.read(target.digest)))
            else:
                child = select_manifest(index, Platform.host())
                if not self.content.has(child.digest):
                    raise NotFound(f"the image holds no manifest for {Platform.host()}")
                child.media_type = child.media_type or OCI_MANIFEST
                add_manifest(child)
        elif target.media_type in MANIFEST_TYPES:
            add_manifest(target)
        else:
            raise InvalidArgument(f"cannot push content of media type {target.media_type!r}")
        return manifests, list(blobs.values())

    def _mount_source(self, ns: str, ref: Reference, digest: str) -> str | None:
        """Another repository of the same registry that holds this image (for blob mounts)."""
        from podkit.images.reference import parse

        try:
            images = self.images.list(ns)
        except PodkitError as e:  # listing is an optimisation only
            log.debug("no blob mount source for %s: %s", ref, e.message)
            return None
        for img in images:
            if img.digest != digest:
                continue
            try:
                other = parse(img.name)
            except InvalidArgument:  # a dangling record: no repository
                continue
            if other.registry == ref.registry and other.repository != ref.repository:
                return other.repository
        return None

    async def push(
        self, ns: str, ref: Reference, *, creds: Credentials | None = None, emit: Emit | None = None
    ) -> dict[str, Any]:
        out: Emit = emit or (lambda _d: None)
        image = self.images.get(ns, str(ref))
        target = self._target(image)
        manifests, blobs = await asyncio.to_thread(self.plan, target)
        out({"status": f"The push refers to repository [{ref.name}]"})
        repo: Repository = self.client.repository(ref, creds, push=True)
        image_source = self._mount_source(ns, ref, target.digest)
        mounts: dict[str, str] = {}  # blob digest -> repository of this registry to mount it from
        for d in blobs:
            known = self.sources.repositories(d.digest, ref.registry) if self.sources else []
            for r in [*known, image_source]:
                if r and r != ref.repository:
                    mounts[d.digest] = r
                    break
        # The token must allow pulling from each source: keep to a handful of them.
        allowed = list(dict.fromkeys(mounts.values()))[:5]
        mounts = {d: r for d, r in mounts.items() if r in allowed}
        repo.extra_scopes.extend(f"repository:{r}:pull" for r in allowed)
        lease = Lease(self.db, ns, "push")
        sem = asyncio.Semaphore(self.max_uploads)

        def status(d: Descriptor, st: str, current: int = 0) -> None:
            out({"id": short(d.digest), "status": st, "current": current, "total": d.size})

        async def upload(d: Descriptor) -> None:
            async with sem:
                # "Pushing" is reported once bytes move: a skipped or mounted blob never shows it.
                source = mounts.get(d.digest)
                result = await repo.upload_blob(
                    d,
                    str(self.content.path(d.digest)),
                    mount_from=source,
                    progress=lambda n: status(d, "Pushing", n),
                )
                status(
                    d,
                    {
                        "exists": "Layer already exists",
                        "mounted": f"Mounted from {source}",
                        "pushed": "Pushed",
                    }[result],
                    d.size,
                )

        try:
            for d in blobs:
                lease.add(d.digest)
                status(d, "Preparing")
            tasks = [asyncio.create_task(upload(d)) for d in blobs]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            top, top_data = manifests[-1]
            for desc, data in manifests[:-1]:
                await repo.put_manifest(desc.digest, desc.media_type, data)
            await repo.put_manifest(ref.object, top.media_type, top_data)
            if self.sources is not None:
                self.sources.add(ref.registry, ref.repository, [d.digest for d in blobs])
        finally:
            lease.release()
        out({"status": f"{ref.object}: digest: {top.digest} size: {top.size}"})
        return {"name": str(ref), "digest": top.digest, "size": top.size, "media_type": top.media_type}
