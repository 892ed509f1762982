"""Pulling an image: resolve, fetch manifests and config, download layers in
parallel and apply them in order as soon as each one (and those below it) is in.

Consistency: blobs reach the content store only verified (``Writer``), layers are
applied through the image service (snapshots are committed atomically there), and
the image name is recorded last. A pull that dies at any point leaves committed
blobs and snapshots that the next pull reuses, and half-written ingest files that
the next start sweeps. While a pull runs, a lease in the metadata names the blobs
it has committed, so that garbage collection leaves them alone.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from podkit.errors import DigestMismatch, InvalidArgument, PodkitError
from podkit.images.image import chain_ids
from podkit.images.late import Late
from podkit.images.oci import (
    CONFIG_TYPES,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_MANIFEST,
    Descriptor,
    Platform,
    descriptors,
    layer_compression,
    parse_json,
    select_manifest,
)
from podkit.images.reference import Reference
from podkit.images.registry.auth import Credentials
from podkit.images.registry.client import RegistryClient, Repository
from podkit.images.registry.repository import Watch
from podkit.images.registry.sources import BlobSources
from podkit.images.stream import GrowingBlob, StreamAbandoned
from podkit.snapshots import Snapshotter
from podkit.store import Content, Database, Leases

if TYPE_CHECKING:
    from podkit.images.service import Image, ImageService

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], None]
LEASE_TTL = 3600.0


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


class Lease:
    """Marks content a running operation holds, so GC does not collect it mid-way.

    It expires after an hour should nobody release it; a restarted daemon releases
    those of pulls and pushes that died with its predecessor (``Registry.startup``).
    """

    def __init__(self, db: Database, ns: str, kind: str) -> None:
        self._leases = Leases(db)
        self.ns = ns
        db.ensure_namespace(ns)
        self.id = self._leases.create(ns, f"{kind}-{secrets.token_hex(8)}", ttl=LEASE_TTL)

    def add(self, digest: str, kind: str = "content") -> None:
        self._leases.add(self.ns, self.id, kind, digest)

    def release(self) -> None:
        self._leases.delete(self.ns, self.id)


class Puller:
    STAGGER = 0.5  # seconds a download runs alone before the next one starts

    def __init__(
        self,
        content: Content,
        images: Late[ImageService],
        db: Database,
        client: RegistryClient,
        snapshots: Late[Snapshotter] | None = None,
        max_concurrent_downloads: int = 4,
        sources: BlobSources | None = None,
    ) -> None:
        self.content = content
        self._images = images
        self.db = db
        self.client = client
        self._snapshots = snapshots
        self.max_downloads = max(1, max_concurrent_downloads)
        self._inflight: dict[str, asyncio.Future[None]] = {}  # blob digest -> its running download
        self.sources = sources

    async def pull(
        self,
        ns: str,
        ref: Reference,
        *,
        platform: Platform | None = None,
        creds: Credentials | None = None,
        emit: Emit | None = None,
        all_platforms: bool = False,
    ) -> Image:
        """Pull ``ref`` into namespace ``ns``; returns the image service's Image.

        ``all_platforms``: of an index, fetch every platform's content too (only the
        chosen one is unpacked), so that the whole index can be pushed elsewhere.
        """
        out: Emit = emit or (lambda _d: None)
        repo = self.client.repository(ref, creds)
        lease = Lease(self.db, ns, "pull")
        others: asyncio.Task[None] | None = None
        try:
            out({"status": f"Pulling from {ref.repository}", "id": ref.tag or ref.digest or "latest"})
            target, data = await repo.resolve(ref.object, self._local)
            if ref.digest and target.digest != ref.digest:
                raise DigestMismatch(f"{ref}: the registry sent manifest {target.digest}")
            await self._store(data, target.digest, lease)
            manifest_desc, manifest_data = target, data
            if target.media_type in INDEX_TYPES:
                manifest_desc, manifest_data = await self._platform_manifest(
                    repo, ref, target, data, platform, lease
                )
                if all_platforms:
                    index = _json(data, f"index {target.digest}")
                    others = asyncio.create_task(
                        self._fetch_others(repo, index, manifest_desc.digest, lease, out)
                    )
                elif (platform or Platform.host()) != Platform.host() and not Platform.host().matches(
                    manifest_desc.platform
                ):
                    # A foreign platform is named by its own manifest, so that the
                    # image (and a later push) holds exactly what was fetched.
                    target = manifest_desc
            elif target.media_type not in MANIFEST_TYPES:
                raise InvalidArgument(f"{ref}: unsupported manifest media type {target.media_type!r}")
            manifest = _json(manifest_data, f"manifest {manifest_desc.digest}")
            config_desc, layers, diff_ids = await self._config(
                repo, ref, manifest, f"manifest {manifest_desc.digest}", target, platform, lease
            )
            await self._layers(repo, layers, diff_ids, lease, out)
            if others is not None:
                await others
            if self.sources is not None:
                self.sources.add(
                    ref.registry, ref.repository, [config_desc.digest, *(d.digest for d in layers)]
                )
            out({"status": f"Digest: {target.digest}"})
            # A pull event (docker's), not record()'s default "tag": whoever pulled (API,
            # a create's implicit pull) is told so.
            return self.images.record(ns, str(ref), target, action="pull")
        finally:
            if others is not None and not others.done():
                others.cancel()
                await asyncio.gather(others, return_exceptions=True)
            lease.release()

    async def _platform_manifest(
        self,
        repo: Repository,
        ref: Reference,
        target: Descriptor,
        data: bytes,
        platform: Platform | None,
        lease: Lease,
    ) -> tuple[Descriptor, bytes]:
        """The manifest an index holds for ``platform`` (else the host's), fetched and stored."""
        want = platform or Platform.host()
        manifest_desc = select_manifest(_json(data, f"index {target.digest}"), want)
        manifest_data = await self._fetch_small(repo, manifest_desc, lease, manifest=True)
        own_type = _json(manifest_data, f"manifest {manifest_desc.digest}").get("mediaType")
        manifest_desc.media_type = (
            manifest_desc.media_type
            or own_type
            or (DOCKER_MANIFEST if target.media_type == DOCKER_LIST else OCI_MANIFEST)
        )
        if manifest_desc.media_type not in MANIFEST_TYPES:
            raise InvalidArgument(
                f"{ref}: the index entry for {want} is a {manifest_desc.media_type!r}, not an image manifest"
            )
        return manifest_desc, manifest_data

    async def _config(
        self,
        repo: Repository,
        ref: Reference,
        manifest: dict[str, Any],
        manifest_what: str,
        target: Descriptor,
        platform: Platform | None,
        lease: Lease,
    ) -> tuple[Descriptor, list[Descriptor], list[str]]:
        """The image config (fetched, checked against the platform) and the layers with their diff IDs."""
        config_desc = Descriptor.from_dict(manifest.get("config") or {})
        if config_desc.media_type and config_desc.media_type not in CONFIG_TYPES:
            raise InvalidArgument(
                f"{ref} is not a container image (config media type {config_desc.media_type!r})"
            )
        config = _json(await self._fetch_small(repo, config_desc, lease), "image config")
        if platform is not None and target.media_type in MANIFEST_TYPES and config.get("architecture"):
            got = Platform(config.get("os", ""), config.get("architecture", ""), config.get("variant", ""))
            if not platform.matches(got):
                raise InvalidArgument(f"{ref} is for {got}, not the requested platform {platform}")
        layers = descriptors(manifest, "layers", manifest_what)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layers):
            raise InvalidArgument(
                f"{ref}: the manifest has {len(layers)} layers but the config {len(diff_ids)} diff_ids"
            )
        for layer in layers:
            layer_compression(layer.media_type)  # refuse unknown layer types up front
        return config_desc, layers, diff_ids

    async def _fetch_others(
        self, repo: Repository, index: dict[str, Any], chosen: str, lease: Lease, out: Emit
    ) -> None:
        """Every other platform's manifest, config and layers, into the store (not unpacked)."""
        for desc in descriptors(index, "manifests", "index"):
            if desc.digest == chosen or (desc.media_type and desc.media_type not in MANIFEST_TYPES):
                continue
            manifest = _json(
                await self._fetch_small(repo, desc, lease, manifest=True), f"manifest {desc.digest}"
            )
            config = Descriptor.from_dict(manifest.get("config") or {})
            await self._fetch_small(repo, config, lease)
            for layer in descriptors(manifest, "layers", f"manifest {desc.digest}"):
                lease.add(layer.digest)
                if self.content.has(layer.digest):
                    continue

                def progress(n: int, layer: Descriptor = layer, st: str = "Downloading") -> None:
                    out({"id": short(layer.digest), "status": st, "current": n, "total": layer.size})

                progress(0)
                await self._fetch_once(repo, layer, progress)
                progress(layer.size, st="Download complete")

    def _local(self, digest: str) -> bytes | None:
        try:
            return self.content.read(digest) if self.content.has(digest) else None
        except PodkitError:  # removed meanwhile: fetch it
            return None

    async def _store(self, data: bytes, digest: str, lease: Lease) -> None:
        lease.add(digest)
        if not self.content.has(digest):
            await asyncio.to_thread(self.content.put, data, digest)

    async def _fetch_small(
        self, repo: Repository, desc: Descriptor, lease: Lease, manifest: bool = False
    ) -> bytes:
        lease.add(desc.digest)
        if self.content.has(desc.digest):
            return await asyncio.to_thread(self.content.read, desc.digest)
        data = await (repo.fetch_manifest(desc) if manifest else repo.read_blob(desc))
        await asyncio.to_thread(self.content.put, data, desc.digest)
        return data

    async def _fetch_once(
        self,
        repo: Repository,
        layer: Descriptor,
        progress: Callable[[int], None],
        watch: Watch | None = None,
    ) -> None:
        """Fetch a blob, unless a concurrent pull is already fetching it: then wait for
        that one, and fetch only if it failed."""
        while True:
            fut = self._inflight.get(layer.digest)
            if fut is None:
                break
            await asyncio.shield(fut)
            if self.content.has(layer.digest):
                progress(layer.size)
                return
        fut = asyncio.get_running_loop().create_future()
        self._inflight[layer.digest] = fut
        try:
            await repo.fetch_blob(layer, self.content, progress, watch)
        finally:
            del self._inflight[layer.digest]
            fut.set_result(None)  # the waiters look in the store to see how it went

    @property
    def images(self) -> ImageService:
        return self._images.need()

    @property
    def snapshots(self) -> Snapshotter | None:
        return self._snapshots.get() if self._snapshots is not None else None

    def _layer_exists(self, chain_id: str) -> bool:
        """Whether the snapshot of this layer stack is already there (then nothing to do)."""
        snapshots = self.snapshots  # None: not built in this daemon
        return snapshots is not None and snapshots.exists(chain_id)

    async def _layers(
        self, repo: Repository, layers: list[Descriptor], diff_ids: list[str], lease: Lease, out: Emit
    ) -> None:
        chains = chain_ids(diff_ids)
        sem = asyncio.Semaphore(self.max_downloads)
        skip = [
            self.content.has(d.digest) and self._layer_exists(c) for d, c in zip(layers, chains, strict=True)
        ]

        # Each layer still to download is followed as it arrives: the layer whose
        # parent is in is unpacked from its blob's ingest file while the download
        # writes it (stream.py), and committed once the blob's digest matched.
        blobs = [GrowingBlob(d.digest) for d in layers]

        def status(i: int, st: str, current: int = 0) -> None:
            out({"id": short(layers[i].digest), "status": st, "current": current, "total": layers[i].size})

        for i, layer in enumerate(layers):
            lease.add(layer.digest)
            status(i, "Already exists" if skip[i] else "Waiting")

        # Downloads start in layer order, each one once the previous has finished or
        # has run for STAGGER seconds. On a fast link that is one at a time, so the
        # bottom layer is in first and unpacking starts at once (unpacking, not the
        # network, is then the bottleneck); on a slow link it soon becomes
        # max_concurrent_downloads in parallel.
        loop = asyncio.get_running_loop()
        gates = [asyncio.Event() for _ in layers]

        def open_gate(i: int) -> None:
            if i + 1 < len(gates):
                gates[i + 1].set()

        async def download(i: int) -> None:
            layer = layers[i]
            ok = False
            try:
                await gates[i].wait()
                if self.content.has(layer.digest):
                    status(i, "Download complete", layer.size)
                    ok = True
                    return
                async with sem:
                    timer = loop.call_later(self.STAGGER, open_gate, i)
                    status(i, "Downloading", 0)
                    try:
                        await self._fetch_once(
                            repo, layer, lambda n: status(i, "Downloading", n), blobs[i].written
                        )
                    finally:
                        timer.cancel()
                    ok = True
                    status(i, "Verifying Checksum", layer.size)
                    status(i, "Download complete", layer.size)
            finally:
                # Always ends the blob: a follower blocked on it must wake up.
                if ok:
                    blobs[i].finish()
                else:
                    blobs[i].fail()
                open_gate(i)

        if gates:
            gates[0].set()
        for i in range(len(layers)):
            if skip[i]:
                open_gate(i)
        tasks = [None if skip[i] else asyncio.create_task(download(i)) for i in range(len(layers))]
        try:
            parent: str | None = None
            for i, layer in enumerate(layers):
                task = tasks[i]
                if task is None:
                    parent = chains[i]
                    continue
                chain: str | None = None
                if not task.done():
                    status(i, "Extracting", 0)
                    try:
                        chain = await self.images.apply(layer, parent, diff_ids[i], stream=blobs[i])
                    except StreamAbandoned:
                        pass  # applied from the store below, once the download is in
                    except PodkitError:
                        await task  # a failed download (a digest mismatch...) is the cause to report
                        raise
                await task
                if chain is None:
                    status(i, "Extracting", 0)
                    chain = await self.images.apply(layer, parent, diff_ids[i])
                if chain != chains[i]:
                    log.warning(
                        "layer %s: chain id %s differs from the computed %s", layer.digest, chain, chains[i]
                    )
                parent = chain
                status(i, "Pull complete", layer.size)
        except BaseException:
            for t in tasks:
                if t is not None and not t.done():
                    t.cancel()
            await asyncio.gather(*(t for t in tasks if t is not None), return_exceptions=True)
            raise


def _json(data: bytes, what: str) -> dict[str, Any]:
    doc = parse_json(data, what)
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return doc
