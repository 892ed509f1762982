"""The build cache: a step's key, a hit (the step image recorded under it), and the
step image a miss records.

Each step's result is an image recorded in the build namespace under
``CACHE_REPO/<key>``, so a hit is a name lookup and GC keeps a cached step's blobs by
the rules of any image. The key is the sha256 of the parent image id, the instruction
as expanded (plus, for COPY/ADD, the content digest of what it reads), the build args,
the user and the network.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

from podkit.build.state import BUILD_NS, CACHE_REPO, BuildContext, Stage, adopt
from podkit.errors import NotFound
from podkit.images.oci import OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, image_manifest


def now() -> str:
    from podkit.images.archive import now_rfc3339

    return now_rfc3339()


def key(bc: BuildContext, stage: Stage, text: str, extra: str = "") -> str:
    """The cache key of ``text`` (the expanded instruction) on the stage as it stands."""
    parent = stage.image.id if stage.image else "scratch"
    env = [f"{k}={v}" for k, v in sorted(stage.args.items())]
    raw = json.dumps([parent, text, extra, env, stage.config["config"].get("User"), bc.opts.network])
    return hashlib.sha256(raw.encode()).hexdigest()


async def cached(bc: BuildContext, stage: Stage, key: str) -> bool:
    """Whether the step under ``key`` is in the cache; the stage moves on to it if so."""
    if bc.opts.no_cache:
        return False
    try:
        img = bc.images.get(BUILD_NS, f"{CACHE_REPO}/{key}:latest")
    except NotFound:
        return False
    await bc.say(" ---> Using cache\n")
    adopt(stage, img)
    return True


async def make(
    bc: BuildContext,
    stage: Stage,
    key: str,
    cfg: dict[str, Any],
    layer: tuple[str, str, int] | None,
    created_by: str,
    empty: bool = False,
) -> None:
    """Write config and manifest for the step's result and record it under its key."""
    cfg = copy.deepcopy(cfg)
    cfg.pop("_cmd_set", None)
    created = now()
    cfg["created"] = created
    layers = [d.to_dict() for d in stage.image.layers] if stage.image else []
    diff_ids = list(stage.image.diff_ids) if stage.image else []
    if layer is not None:
        diff_id, digest, size = layer
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size})
        diff_ids.append(diff_id)
    cfg["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    hist = list(cfg.get("history") or [])
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if empty:
        entry["empty_layer"] = True
    hist.append(entry)
    cfg["history"] = hist
    content = bc.images.content
    cfg_bytes = json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode()
    cfg_digest = str(content.put(cfg_bytes))
    m_bytes = image_manifest(cfg_digest, len(cfg_bytes), layers)
    m_digest = str(content.put(m_bytes))
    img = bc.images.record(
        BUILD_NS,
        f"{CACHE_REPO}/{key}:latest",
        Descriptor(OCI_MANIFEST, m_digest, len(m_bytes)),
        action="build",
    )
    keep = stage.config.get("_cmd_set")
    adopt(stage, img)
    if keep:
        stage.config["_cmd_set"] = True


async def config_step(
    bc: BuildContext, stage: Stage, text: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> None:
    if text.split(" ", 1)[0].upper() == "CMD":
        stage.config["_cmd_set"] = True
    step_key = key(bc, stage, text)
    if await cached(bc, stage, step_key):
        return
    cfg = copy.deepcopy(stage.config)
    cfg["config"] = change(cfg["config"]) or cfg["config"]
    await make(bc, stage, step_key, cfg, None, f"/bin/sh -c #(nop) {text}", empty=True)


async def base_ref(bc: BuildContext, stage: Stage) -> str:
    """An image of the build namespace for the stage's state (a container's image)."""
    assert stage.image is not None
    name = f"{CACHE_REPO}/base-{stage.image.id[7:]}:latest"
    try:
        bc.images.get(BUILD_NS, name)
    except NotFound:
        bc.images.record(BUILD_NS, name, stage.image.target, action="build")
    return name
