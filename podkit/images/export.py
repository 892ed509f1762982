"""``podkit save``: images as one tar that docker, skopeo and OCI tools all read.

The default ("docker") format is what docker 25+ writes: an OCI image layout
(``oci-layout``, ``index.json``, ``blobs/sha256/...``) plus docker-save's
``manifest.json`` and ``repositories`` pointing into the same blobs, so readers
of either format accept it. "oci" writes the layout alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import tarfile
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from podkit.errors import NotFound, PodkitError
from podkit.images import reference
from podkit.images.oci import INDEX_TYPES, OCI_INDEX, Descriptor, Platform

if TYPE_CHECKING:
    from podkit.images.service import Image, ImageService

_EPOCH = 0  # fixed member times: saving twice gives the same bytes


log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Everything an archive will hold, worked out (and checked) before a byte is sent."""

    blobs: list[str] = field(default_factory=list)  # in write order, deduplicated
    index_entries: list[dict[str, Any]] = field(default_factory=list)
    docker_entries: list[dict[str, Any]] = field(default_factory=list)
    repositories: dict[str, dict[str, str]] = field(default_factory=dict)


def plan_archive(
    svc: ImageService, ns: str, images: list[Image], refs: list[str], platform: Platform | None = None
) -> Plan:
    """Raises NotFound naming the image whose content is incomplete."""
    plan = Plan()

    def want(d: str) -> None:
        if d not in plan.blobs:
            plan.blobs.append(d)

    for img, ref in zip(images, refs, strict=True):
        target = img.target
        resolved = svc.resolve(target, platform)
        if platform is not None and target.media_type in INDEX_TYPES:
            # Only that platform: the manifest itself becomes the saved target.
            target = Descriptor(
                _manifest_type(svc, resolved.manifest_digest),
                resolved.manifest_digest,
                svc.content.size(resolved.manifest_digest),
            )
        _collect(svc, target, want)
        missing = [
            d
            for d in [resolved.config_digest, *(x.digest for x in resolved.layers)]
            if not svc.content.has(d)
        ]
        if missing:
            raise NotFound(
                f"image {ref}: blob {missing[0]} is not in the content store (pull or load the image again)"
            )
        name = _name_for(svc, ns, img, ref)
        ann: dict[str, str] = {}
        if name:
            parsed = reference.parse(name)
            ann["io.containerd.image.name"] = str(parsed)
            if parsed.tag:
                ann["org.opencontainers.image.ref.name"] = parsed.tag
        entry = target.to_dict()
        if ann:
            entry["annotations"] = ann
        plan.index_entries.append(entry)
        layers = [_blob_name(d.digest) for d in resolved.layers]
        tags = []
        if name:
            parsed = reference.parse(name)
            fam = parsed.familiar()
            tags.append(fam)
            if parsed.tag and layers:
                repo = fam.rsplit(":", 1)[0]
                plan.repositories.setdefault(repo, {})[parsed.tag] = layers[-1].rsplit("/", 1)[-1]
        cfg_name = _blob_name(resolved.config_digest)
        existing = next((e for e in plan.docker_entries if e["Config"] == cfg_name), None)
        if existing is not None:
            existing["RepoTags"].extend(t for t in tags if t not in existing["RepoTags"])
        else:
            plan.docker_entries.append({"Config": cfg_name, "RepoTags": tags, "Layers": layers})
    return plan


def write_archive(svc: ImageService, plan: Plan, out: BinaryIO, fmt: str = "docker") -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        _add_dir(tf, "blobs")
        _add_dir(tf, "blobs/sha256")
        for d in plan.blobs:
            with svc.content.open(d) as f:
                ti = tarfile.TarInfo(_blob_name(d))
                ti.size = svc.content.size(d)
                ti.mtime = _EPOCH
                ti.mode = 0o444
                tf.addfile(ti, f)
        _add_bytes(tf, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": plan.index_entries}
        _add_bytes(tf, "index.json", json.dumps(index, separators=(",", ":")).encode())
        if fmt == "docker":
            _add_bytes(tf, "manifest.json", json.dumps(plan.docker_entries, separators=(",", ":")).encode())
            if plan.repositories:
                _add_bytes(tf, "repositories", json.dumps(plan.repositories, separators=(",", ":")).encode())


async def archive_chunks(svc: ImageService, plan: Plan, fmt: str = "docker") -> AsyncGenerator[bytes, None]:
    """The archive of `plan`, written in a worker thread, as chunks of about a MiB.

    Both API front ends stream saves through this. A failure of the writer is raised
    as ConnectionAbortedError: the response's headers are gone by then, and cutting
    the stream short is the only way left to say it failed. Closing the generator early
    (the client went away) stops the writer and waits for its thread to end.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=16)
    stop = False

    class _Sink:
        """tarfile writes 10 KiB records: hand them to the loop a MiB at a time."""

        def __init__(self) -> None:
            self.buf = bytearray()

        def write(self, data: bytes) -> int:
            if stop:
                raise ConnectionAbortedError("client went away")
            self.buf += data
            if len(self.buf) >= 1 << 20:
                self.flush()
            return len(data)

        def flush(self) -> None:
            if self.buf:
                asyncio.run_coroutine_threadsafe(queue.put(bytes(self.buf)), loop).result()
                self.buf.clear()

    def produce() -> None:
        try:
            sink = _Sink()
            write_archive(svc, plan, cast(BinaryIO, sink), fmt)  # tarfile's stream mode only writes
            sink.flush()
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()
        except BaseException as e:  # noqa: BLE001 - handed to the response side
            try:
                asyncio.run_coroutine_threadsafe(queue.put(e), loop).result()
            except Exception as lost:  # the loop is gone: the daemon is stopping
                log.warning("save: could not hand the archive error (%s) to the response: %s", e, lost)

    task = loop.run_in_executor(None, produce)
    try:
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise ConnectionAbortedError(str(item))
            yield item
    finally:
        # If the client went away, unblock the producer and let it stop.
        stop = True
        while not task.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(queue.get(), 0.5)


def _manifest_type(svc: ImageService, digest: str) -> str:
    from podkit.images.oci import OCI_MANIFEST

    return svc.read_json(digest).get("mediaType") or OCI_MANIFEST


def _collect(svc: ImageService, target: Descriptor, want: Callable[[str], None]) -> None:
    """Every blob under a target that this store has (an index may list absent platforms)."""
    if not svc.content.has(target.digest):
        return
    doc = svc.read_json(target.digest)
    if "manifests" in doc:
        for m in doc.get("manifests") or []:
            d = Descriptor.from_dict(m)
            if svc.content.has(d.digest) and _complete(svc, d):
                _collect(svc, d, want)
        want(target.digest)
        return
    want(target.digest)
    want(doc["config"]["digest"])
    for layer in doc.get("layers") or []:
        want(layer["digest"])


def _complete(svc: ImageService, d: Descriptor) -> bool:
    try:
        doc = svc.read_json(d.digest)
    except PodkitError:
        return False
    if "manifests" in doc:
        return True
    needed = [doc["config"]["digest"], *[x["digest"] for x in doc.get("layers") or []]]
    return all(svc.content.has(x) for x in needed)


def _name_for(svc: ImageService, ns: str, img: Image, ref: str) -> str | None:
    """The name to store: the one asked for, unless the image was asked for by id."""
    if img.dangling:
        return None
    if not svc.has_name(ns, ref):
        return None
    parsed = reference.parse(img.name, default_tag=False)
    return str(parsed) if parsed.tag else None


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _add_dir(tf: tarfile.TarFile, name: str) -> None:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.mtime = _EPOCH
    tf.addfile(ti)


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    ti.mtime = _EPOCH
    tf.addfile(ti, io.BytesIO(data))
