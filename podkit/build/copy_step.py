"""COPY and ADD (from the context, a heredoc, or ``--from`` a stage or image) and a
WORKDIR that makes its directory: layers written straight from their sources
(copy_layer.py), keyed by the content digest of what they read."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from podkit.build import cache, trees
from podkit.build.context import content_digest, glob_sources
from podkit.build.copy_layer import write_copy_layer
from podkit.build.dockerfile import BuildError, Instruction, expand
from podkit.build.state import BUILD_NS, BuildContext, Stage, set_field
from podkit.errors import InvalidArgument


async def copy_add(bc: BuildContext, stage: Stage, ins: Instruction, env: dict[str, str]) -> None:
    words = ins.json_args()
    if words is None:
        words = [expand(w, env) for w in ins.args.split()]
    if ins.heredocs:
        words = words[:-1] + [words[-1]]
    if len(words) < 2 and not ins.heredocs:
        raise ins.fail("needs a source and a destination")
    *srcs, dest = words
    src_root = bc.context
    release: Callable[[], None] | None = None
    if ins.flags.get("from"):
        src_root, release = await trees.stage_root(bc, ins, ins.flags["from"])
    try:
        wd = stage.config["config"].get("WorkingDir") or "/"
        dest_abs = os.path.normpath(os.path.join(wd, dest)) + ("/" if dest.endswith("/") else "")
        items: list[tuple[str, Path | bytes]] = []
        here = [s for s in srcs if not s.startswith("<<")]
        docs = dict(ins.heredocs)
        for s in srcs:
            if s.startswith("<<"):
                name = s.lstrip("<-").strip("'\"")
                items.append((name, docs.get(name, "").encode()))
        paths: list[Path] = []
        for s in here:
            if "://" in s:
                raise ins.fail(f"{s}: remote URLs are not fetched (podkit builds offline)")
            try:
                paths += glob_sources(src_root, s)
            except InvalidArgument as e:
                raise ins.fail(e.message) from None
        for p in paths:
            items.append((p.name, p))
        digest = await asyncio.to_thread(content_digest, paths)
        docs_digest = hashlib.sha256(json.dumps(ins.heredocs).encode()).hexdigest()
        key = cache.key(
            bc, stage, f"{ins.cmd} {json.dumps(ins.flags, sort_keys=True)} {dest_abs}", digest + docs_digest
        )
        if await cache.cached(bc, stage, key):
            return
        chown = await trees.owner(bc, stage, ins, expand(ins.flags.get("chown", ""), env))
        chmod = None
        if ins.flags.get("chmod"):
            try:
                chmod = int(ins.flags["chmod"], 8)
            except ValueError:
                raise ins.fail(f"invalid --chmod {ins.flags['chmod']!r}: an octal mode") from None
        multi = (
            len(items) > 1
            or dest.endswith("/")
            or (len(paths) == 1 and paths[0].is_dir() and not dest.endswith("/") and False)
        )
        exists = await trees.existing(bc, stage)

        def write() -> tuple[str, str, int]:
            with bc.images.content.writer() as w:
                return write_copy_layer(
                    w, items, dest_abs.rstrip("/") or "/", multi, chown, chmod, exists, ins.cmd == "ADD"
                )

        with bc.images.leases.lease(BUILD_NS) as lease:
            layer = await asyncio.to_thread(write)
            bc.images.leases.add(BUILD_NS, lease, "content", layer[1])
            kind = "multi" if len(items) > 1 else "file"
            created_by = f"/bin/sh -c #(nop) {ins.cmd} {kind}:{digest[7:]} in {dest_abs}"
            await cache.make(bc, stage, key, stage.config, layer, created_by)
    finally:
        if release is not None:
            await asyncio.to_thread(release)


async def workdir(bc: BuildContext, stage: Stage, ins: Instruction, wd: str) -> None:
    find = await trees.existing(bc, stage)
    text = f"WORKDIR {wd}"
    if find(wd) is not None:
        await cache.config_step(bc, stage, text, lambda cfg: set_field(cfg, "WorkingDir", wd))
        return
    key = cache.key(bc, stage, text)
    if await cache.cached(bc, stage, key):
        return
    owner = None
    user = stage.config["config"].get("User")
    if user:
        with contextlib.suppress(BuildError):
            owner = await trees.owner(bc, stage, ins, user)

    def write() -> tuple[str, str, int]:
        with bc.images.content.writer() as w:
            return write_copy_layer(w, [], wd, True, owner, None, find, False, mkdir_only=True)

    with bc.images.leases.lease(BUILD_NS) as lease:
        layer = await asyncio.to_thread(write)
        bc.images.leases.add(BUILD_NS, lease, "content", layer[1])
        cfg = copy.deepcopy(stage.config)
        cfg["config"]["WorkingDir"] = wd
        await cache.make(bc, stage, key, cfg, layer, f"/bin/sh -c #(nop) {text}")
