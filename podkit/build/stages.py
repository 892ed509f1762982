"""Stages: names (``FROM ... AS name``), ARG definitions, and a stage's start — scratch,
an earlier stage, or an image (looked up, pulled when missing or with ``--pull``), whose
ONBUILD triggers run first."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from podkit.build.dockerfile import Instruction, expand, parse, split_words
from podkit.build.state import BuildContext, Stage
from podkit.errors import NotFound, PodkitError
from podkit.images.oci import Platform

Step = Callable[[Stage, Instruction], Awaitable[None]]


def stage_name(ins: Instruction, n: int) -> str:
    words = ins.args.split()
    if len(words) == 3 and words[1].lower() == "as":
        return words[2].lower()
    if len(words) not in (1, 3):
        raise ins.fail("expects FROM IMAGE [AS NAME]")
    return str(n)


def arg_defs(ins: Instruction, env: dict[str, str]) -> list[tuple[str, str]]:
    out = []
    for w in split_words(ins.args):
        k, sep, v = w.partition("=")
        if not k:
            raise ins.fail(f"bad ARG {w!r}")
        out.append((k, expand(v, env) if sep else ""))
    if not out:
        raise ins.fail("ARG needs a name")
    return out


async def from_(
    bc: BuildContext, ins: Instruction, n: int, name: str, meta: dict[str, str], step: Step
) -> Stage:
    """The stage ``FROM`` starts; ``step`` runs its image's ONBUILD triggers."""
    ref = expand(ins.args.split()[0], meta)
    if ins.flags.get("platform"):
        plat = expand(ins.flags["platform"], meta)
        if not Platform.parse(plat).matches(Platform.host()):
            raise ins.fail(f"platform {plat} is not this host's ({Platform.host()})")
    if ref.lower() == "scratch":
        host = Platform.host()
        cfg: dict[str, Any] = {
            "architecture": host.architecture,
            "os": host.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }
        return Stage(name, n, None, cfg, dict(meta))
    if ref.lower() in bc.stages:
        base = bc.stages[ref.lower()]
        return Stage(name, n, base.image, copy.deepcopy(base.config), dict(meta), list(base.shell))
    from podkit.containers.create import find_image

    try:
        if bc.opts.pull:
            raise NotFound("pull")
        img = bc.images.get(bc.ns, ref)
    except NotFound:
        try:
            await find_image(bc.containers.ctx, bc.ns, ref)
        except PodkitError as e:
            raise ins.fail(f"{ref}: {e.message}") from None
        img = bc.images.get(bc.ns, ref)
    cfg = copy.deepcopy(img.config)
    cfg.setdefault("config", {})
    cfg["config"] = cfg["config"] or {}
    stage = Stage(name, n, img, cfg, dict(meta))
    onbuild = list(cfg["config"].get("OnBuild") or [])
    if onbuild:
        cfg["config"]["OnBuild"] = None
        for text in onbuild:
            for sub in parse(text):
                sub.line = ins.line
                await bc.say(f" # Executing ONBUILD {text}\n")
                await step(stage, sub)
    return stage
