"""A build's private files under ``<state>/build/``: its work directory (the context
received and unpacked) and the mount points of its ``--from`` views.

A work directory goes when its build ends, but in the background, after the answer:
deleting thousands of just-written context files can take seconds on a busy disk, and
the build's result does not depend on it. What a crash leaves there (work directories,
view mounts and their snapshots, step containers) is swept at the next start.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from podkit.build.state import BUILD_NS, VIEW_PREFIX
from podkit.errors import PodkitError

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService
    from podkit.snapshots.api import Snapshotter

log = logging.getLogger(__name__)

_pending: set[asyncio.Task[None]] = set()


def remove_later(path: Path) -> None:
    """Remove ``path`` in a worker thread, not waiting for it."""
    task = asyncio.get_running_loop().create_task(asyncio.to_thread(_rmtree, path))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def finish_removals() -> None:
    """Shutdown: wait for the removals under way (one cut short is swept at the next start)."""
    if _pending:
        await asyncio.gather(*_pending, return_exceptions=True)


def _rmtree(path: Path) -> None:
    def failed(
        _func: object, p: str, exc_info: tuple[type[BaseException], BaseException, TracebackType]
    ) -> None:
        if not isinstance(exc_info[1], FileNotFoundError):
            log.warning("build: removing %s: %s could not be removed: %r", path, p, exc_info[1])

    shutil.rmtree(path, onerror=failed)


async def sweep(state_dir: Path, snapshots: Snapshotter, containers: ContainerService) -> int:
    """Start-up: what builds cut short by a crash left; how many things went."""
    from podkit.snapshots.mount import is_mountpoint, unmount

    removed = 0
    for rec in containers.ctx.store.list(BUILD_NS):
        if rec.labels.get("podkit/build") == "step":
            try:
                await containers.remove(BUILD_NS, rec.id, force=True)
                removed += 1
            except PodkitError as e:
                log.warning(
                    "build: removing the step container %s left by a crash: %s", rec.id[:12], e.message
                )
    root = state_dir / "build"
    children = sorted(root.iterdir()) if root.is_dir() else []
    for p in children:
        if is_mountpoint(p):  # a --from view's mount point
            try:
                unmount(p)
            except OSError as e:
                log.warning("build: unmounting %s left by a crash: %r", p, e)
    for info in snapshots.list():
        if info.key.startswith(VIEW_PREFIX):
            try:
                snapshots.remove(info.key)
                removed += 1
            except PodkitError as e:
                log.warning("build: removing the view snapshot %s left by a crash: %s", info.key, e.message)
    for p in children:
        if not is_mountpoint(p):
            await asyncio.to_thread(_rmtree, p)
            removed += 1
    if removed:
        log.info("build: removed %d leftover(s) of builds cut short by a crash", removed)
    return removed
