"""Resolution of a target descriptor: an index narrowed to a platform, its manifest, config, layers."""

from __future__ import annotations

from podkit.errors import InvalidArgument, NotFound
from podkit.images.context import ImageContext
from podkit.images.image import Resolved
from podkit.images.oci import (
    CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    Descriptor,
    Platform,
    check_image_config,
    select_manifest,
)


def resolve(ctx: ImageContext, target: Descriptor, platform: Platform | None = None) -> Resolved:
    """Manifest, config and layers behind a target (an index is narrowed to a platform)."""
    want = platform or Platform.host()
    # An implicit platform may fall back to another one: cached apart from explicit asks.
    key = (target.digest, str(platform) if platform is not None else "")
    if key in ctx.cache:
        return ctx.cache[key]
    platforms: list[str] = []
    mdesc = target
    if target.media_type in INDEX_TYPES:
        index = ctx.read_json(target.digest)
        platforms = [
            str(Platform.from_dict(m.get("platform")))
            for m in index.get("manifests", [])
            if m.get("platform")
        ]
        try:
            mdesc = select_manifest(index, want)
            if not ctx.content.has(mdesc.digest):
                raise NotFound(f"image index {target.digest} has no content for platform {want}")
        except (NotFound, InvalidArgument):
            if platform is not None:
                raise
            # No platform asked for and the host's is absent (e.g. pulled with
            # --platform): the first platform this store holds stands for the image.
            present = [
                Descriptor.from_dict(m)
                for m in index.get("manifests") or []
                if ctx.content.has(m.get("digest", "sha256:" + "0" * 64))
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
    manifest = ctx.read_json(mdesc.digest)
    if "config" not in manifest:
        raise InvalidArgument(f"manifest {mdesc.digest} has no config")
    cdesc = Descriptor.from_dict(manifest["config"])
    layers = [Descriptor.from_dict(d) for d in manifest.get("layers") or []]
    config = check_image_config(ctx.read_json(cdesc.digest), cdesc.digest)
    if cdesc.media_type and cdesc.media_type not in CONFIG_TYPES:
        raise InvalidArgument(f"manifest {mdesc.digest}: unsupported config type {cdesc.media_type!r}")
    plat = "/".join(
        p for p in (config.get("os", ""), config.get("architecture", ""), config.get("variant", "")) if p
    )
    size = mdesc.size + cdesc.size + sum(d.size for d in layers)
    r = Resolved(mdesc.digest, cdesc.digest, config, layers, size, plat, platforms)
    ctx.cache[key] = r
    return r
