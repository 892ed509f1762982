"""Unpacking: an image's layers applied into committed snapshots named by chain ID."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import BinaryIO

from podkit.errors import AlreadyExists, DigestMismatch, InvalidArgument, NotFound, PodkitError
from podkit.images.context import ImageContext
from podkit.images.image import Image, chain_id_of
from podkit.images.oci import Descriptor, layer_compression
from podkit.images.stream import BlobFollower, GrowingBlob
from podkit.snapshots import EXTRACT_PREFIX

log = logging.getLogger(__name__)


async def unpack(ctx: ImageContext, image: Image) -> str:
    """Apply all layers of ``image`` into snapshots; returns the top chain ID."""
    if len(image.layers) != len(image.diff_ids):
        raise InvalidArgument(
            f"image {image.name}: {len(image.layers)} layers but {len(image.diff_ids)} diff IDs in its config"
        )
    if not image.layers:
        raise InvalidArgument(f"image {image.name} has no layers")
    parent: str | None = None
    for layer, diff_id in zip(image.layers, image.diff_ids, strict=True):
        parent = await apply(ctx, layer, parent, diff_id)
    assert parent is not None
    return parent


def unpacked_size(ctx: ImageContext, image: Image) -> int:
    """Bytes the image's layers take on disk once unpacked (0 when not unpacked)."""
    total = 0
    for chain in image.chain:
        try:
            total += ctx.snapshots.usage(chain).size
        except PodkitError:
            return 0
    return total


def is_unpacked(ctx: ImageContext, image: Image) -> bool:
    return bool(image.chain_id) and ctx.snapshots.exists(image.chain_id or "")


def adopt(ctx: ImageContext, key: str, diff_id: str, layer_digest: str) -> str | None:
    """Commit active snapshot ``key`` under the chain ID of layer ``diff_id`` on its
    parent, labelled as an unpack would label it: a build step's tree becomes the layer
    without being applied again from its blob. The caller vouches that the tree holds
    exactly what the layer applies (the diff was written from it, then pruned; it is
    unmounted). Returns the chain ID; None when that snapshot exists already (``key``
    then stays the caller's to remove)."""
    info = ctx.snapshots.stat(key)
    chain = chain_id_of(info.parent, diff_id)
    if ctx.snapshots.exists(chain):
        return None
    labels = {k: "" for k in info.labels}  # the container's own labels go
    labels.update({"podkit/diff-id": diff_id, "podkit/layer": layer_digest})
    with ctx.gc_lock:
        try:
            ctx.snapshots.commit(chain, key, labels=labels)
        except AlreadyExists:
            return None  # applied meanwhile (a pull of the same layer)
    return chain


async def apply(
    ctx: ImageContext,
    layer: Descriptor,
    parent_chain_id: str | None,
    diff_id: str,
    stream: GrowingBlob | None = None,
) -> str:
    """Apply one layer blob on top of ``parent_chain_id``; returns the new chain ID.

    A no-op when that snapshot exists. The layer goes into a fresh active
    snapshot that is committed only when it applied completely and its diff ID
    matched; otherwise it is removed.

    ``stream``: the blob is still downloading; it is read as it arrives, and the
    snapshot is committed only after the download committed (verified) the blob.
    StreamAbandoned when it cannot be followed (the caller then applies it from
    the store once the download is in).
    """
    chain = chain_id_of(parent_chain_id, diff_id)
    if ctx.snapshots.exists(chain):
        return chain
    lock = ctx.apply_locks.setdefault(chain, asyncio.Lock())
    async with lock:
        if ctx.snapshots.exists(chain):
            return chain
        try:
            return await asyncio.to_thread(_apply_sync, ctx, layer, parent_chain_id, diff_id, chain, stream)
        finally:
            ctx.apply_locks.pop(chain, None)


def _apply_sync(
    ctx: ImageContext,
    layer: Descriptor,
    parent: str | None,
    diff_id: str,
    chain: str,
    stream: GrowingBlob | None = None,
) -> str:
    compression = layer_compression(layer.media_type) if layer.media_type else "gzip"
    key = f"{EXTRACT_PREFIX}{secrets.token_hex(6)}-{chain[7:19]}"
    ctx.snapshots.prepare(key, parent, labels={"podkit/extract": chain})
    ok = False
    try:
        target = ctx.snapshots.apply_dir(key)
        lowers = ctx.snapshots.lower_dirs(key)
        f: BinaryIO | BlobFollower
        if stream is not None:
            f = stream.follow()
        else:
            try:
                f = ctx.content.open(layer.digest)
            except NotFound:
                raise NotFound(
                    f"layer {layer.digest} is not in the content store: pull or load the image again"
                ) from None
        from podkit.images.unpack import apply_layer  # tarfile: at the first unpack, not at start

        with f:
            got = apply_layer(f, compression, target, ctx.snapshots.whiteouts, lowers)  # type: ignore[arg-type]  # a BlobFollower reads like a file
        if stream is not None:
            # The decompressor may stop short of the blob's end: the digest is only
            # known to match once the download committed the blob.
            stream.wait_verified()
        if got != diff_id:
            raise DigestMismatch(
                f"layer {layer.digest}: uncompressed digest {got} does not match "
                f"the diff ID {diff_id} in the image config"
            )
        with ctx.gc_lock:
            try:
                ctx.snapshots.commit(
                    chain, key, labels={"podkit/diff-id": diff_id, "podkit/layer": layer.digest}
                )
            except AlreadyExists:
                return chain  # someone else applied the same layer meanwhile
        ok = True
        return chain
    finally:
        if not ok or ctx.snapshots.exists(key):
            try:
                ctx.snapshots.remove(key)
            except NotFound:  # gone already: what was wanted
                pass
            except PodkitError as e:
                log.warning(
                    "could not remove the extraction snapshot %s of layer %s: %s",
                    key,
                    layer.digest,
                    e.message,
                )
