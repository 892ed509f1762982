"""One build request, as both HTTP front ends serve it: the context tar received into
a private directory under the daemon's state, the build run with progress lines sent
as they come, and the directory removed whatever happens (success, failure, the client
leaving; in the background: workdir.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.build.builder import BuildOptions, build_from_tar
from podkit.build.workdir import remove_later
from podkit.errors import InvalidArgument, PodkitError

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService
    from podkit.images.service import ImageService

log = logging.getLogger(__name__)


def options_from_query(q: Any, dockerfile_key: str = "dockerfile") -> BuildOptions:
    """Build options from query parameters (the Docker API's names; podkit's are the same)."""

    def js(name: str) -> dict[str, str]:
        raw = q.get(name)
        if not raw:
            return {}
        try:
            v = json.loads(raw)
        except ValueError:
            raise InvalidArgument(f"{name} must be a JSON object") from None
        if not isinstance(v, dict):
            raise InvalidArgument(f"{name} must be a JSON object")
        return {str(k): "" if x is None else str(x) for k, x in v.items()}

    def flag(name: str) -> bool:
        return str(q.get(name, "")).lower() in ("1", "true", "yes")

    plat = q.get("platform") or ""
    if plat:
        from podkit.images.oci import Platform

        if not Platform.parse(plat).matches(Platform.host()):
            raise InvalidArgument(f"--platform {plat}: podkit builds for this host only ({Platform.host()})")
    return BuildOptions(
        dockerfile=q.get(dockerfile_key) or "Dockerfile",
        tags=[t for t in q.getall("t", []) if t],
        build_args=js("buildargs"),
        target=q.get("target") or "",
        no_cache=flag("nocache"),
        labels=js("labels"),
        network=q.get("networkmode") or "",
        pull=flag("pull"),
        quiet=flag("q"),
    )


async def run(
    images: ImageService,
    containers: ContainerService,
    ns: str,
    state_dir: Path,
    body: AsyncIterator[bytes],
    opts: BuildOptions,
    emit: Callable[[str], Awaitable[None]],
) -> str:
    """Receive the context from ``body`` and build; the image id."""
    from podkit.images import reference

    for t in opts.tags:
        reference.parse(t)  # a bad tag refused before the upload is read
    work = state_dir / "build" / secrets.token_hex(8)
    work.mkdir(parents=True)
    building = False
    try:
        tar = work / "context.tar"
        with open(tar, "wb") as f:
            async for chunk in body:
                await asyncio.to_thread(f.write, chunk)
        with open(tar, "rb") as f:
            building = True  # from here on the build removes ``work``
            return await build_from_tar(images, containers, ns, f, opts, emit, work)
    finally:
        if not building:
            remove_later(work)


def error_message(e: BaseException) -> str:
    if isinstance(e, PodkitError):
        return e.message
    return f"internal error: {type(e).__name__}: {e}"
