"""The build: a Dockerfile's stages executed step by step into images.

``Builder`` runs the stages up to ``--target``; each instruction goes to its handler
(instructions.py, run_step.py, copy_step.py) with the build's shared state
(state.py: ``BuildContext``); each step's result is an image of the build namespace
recorded under its cache key (cache.py), so an unchanged step is a name lookup.
Stages start in stages.py; COPY reads the stage's tree through trees.py and writes its
layer with copy_layer.py.

The builder reports progress as lines (``Step N/M : ...``, `` ---> Using cache``, a
RUN's output, `` ---> <id>``) through a callback: the podkit API and the Docker API's
classic-builder stream both carry them.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from podkit.build import cache, instructions
from podkit.build.dockerfile import BuildError, Instruction, parse
from podkit.build.stages import arg_defs, from_, stage_name
from podkit.build.state import (
    BUILD_NS,
    CACHE_REPO,
    PREDEFINED_ARGS,
    BuildContext,
    BuildOptions,
    Emit,
    Stage,
)
from podkit.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService
    from podkit.images.service import ImageService

__all__ = ["BUILD_NS", "CACHE_REPO", "BuildOptions", "Builder", "Stage", "build_from_tar"]


class Builder:
    def __init__(
        self,
        images: ImageService,
        containers: ContainerService,
        ns: str,
        context: Path,
        opts: BuildOptions,
        emit: Emit,
        dockerfile_text: str | None = None,
    ) -> None:
        self.bc = BuildContext(images, containers, ns, context, opts, emit)
        self.text = dockerfile_text

    async def build(self) -> str:
        """Run the stages up to the target; the image id (tagged as asked)."""
        bc = self.bc
        text = self.text
        if text is None:
            text = _read_dockerfile(bc.context, bc.opts.dockerfile)
        parsed = parse(text)
        meta_args: dict[str, str] = {}
        i = 0
        while i < len(parsed) and parsed[i].cmd == "ARG":
            for k, v in arg_defs(parsed[i], {}):
                meta_args[k] = bc.opts.build_args.get(k, v)
            i += 1
        if i >= len(parsed) or parsed[i].cmd != "FROM":
            at = parsed[i] if i < len(parsed) else None
            raise BuildError(
                f"Dockerfile:{at.line if at else 1}: "
                "the first instruction must be FROM (ARGs may come before)"
            )
        # stages
        groups: list[list[Instruction]] = []
        for ins in parsed[i:]:
            if ins.cmd == "FROM":
                groups.append([])
            groups[-1].append(ins)
        names = [stage_name(g[0], n) for n, g in enumerate(groups)]
        last = len(groups) - 1
        if bc.opts.target:
            if bc.opts.target not in names:
                raise BuildError(f"target stage {bc.opts.target!r} could not be found")
            last = names.index(bc.opts.target)
        total = sum(len(g) for g in groups[: last + 1])
        number = 0
        result = ""
        for n, group in enumerate(groups[: last + 1]):
            stage: Stage | None = None
            for ins in group:
                number += 1
                await bc.say(f"Step {number}/{total} : {ins.original.strip().splitlines()[0]}\n")
                if ins.cmd == "FROM":
                    stage = await from_(bc, ins, n, names[n], meta_args, self._step)
                else:
                    assert stage is not None
                    await self._step(stage, ins)
                assert stage is not None
                if stage.image is not None:
                    await bc.say(f" ---> {stage.image.id[7:19]}\n")
            assert stage is not None
            bc.stages[names[n]] = stage
            bc.stages[str(n)] = stage
            if n == last:
                if bc.opts.labels:
                    await cache.config_step(
                        bc, stage, "LABEL", lambda c: c.setdefault("Labels", {}).update(bc.opts.labels) or c
                    )
                result = await self._finish(stage)
        unused = sorted(set(bc.opts.build_args) - bc.used_args - set(meta_args) - set(PREDEFINED_ARGS))
        if unused:
            await bc.say(f"[Warning] One or more build-args {unused} were not consumed\n")
        return result

    async def _step(self, stage: Stage, ins: Instruction) -> None:
        await instructions.step(self.bc, stage, ins)

    async def _finish(self, stage: Stage) -> str:
        if stage.image is None:
            raise BuildError("the build produced no image (a scratch stage with no instructions)")
        img = stage.image
        for t in self.bc.opts.tags:
            self.bc.images.record(self.bc.ns, t, img.target, action="build")
        if not self.bc.opts.tags:
            self.bc.images.record_dangling(self.bc.ns, img.target, action="build")
        await self.bc.say(f"Successfully built {img.id[7:19]}\n")
        for t in self.bc.opts.tags:
            await self.bc.say(f"Successfully tagged {t}\n")
        return img.id


def _read_dockerfile(context: Path, name: str) -> str:
    """The Dockerfile ``name`` of the context, resolved inside it: a ``../`` name or a
    symlink to an absolute path would read (and echo in its errors) the daemon host's
    files."""
    from podkit.runtime.users import resolve_in_root

    rel = os.path.normpath(name.lstrip("/"))
    if rel.startswith(".."):
        raise InvalidArgument(f"the Dockerfile {name} is outside the build context")
    try:
        return resolve_in_root(context, rel).read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise NotFound(f"cannot find {name} in the build context") from None


async def build_from_tar(
    images: ImageService,
    containers: ContainerService,
    ns: str,
    tar: BinaryIO,
    opts: BuildOptions,
    emit: Emit,
    workdir: Path,
) -> str:
    """Unpack the context tar into ``workdir`` (removed after, in the background) and build."""
    from podkit.build.context import apply_dockerignore, unpack_context
    from podkit.build.workdir import context_dir, release

    try:
        ctx_dir = await asyncio.to_thread(context_dir, workdir, tar)
        await asyncio.to_thread(unpack_context, tar, ctx_dir)
        await asyncio.to_thread(apply_dockerignore, ctx_dir, {opts.dockerfile, ".dockerignore"})
        return await Builder(images, containers, ns, ctx_dir, opts, emit).build()
    finally:
        await asyncio.shield(release(workdir))
