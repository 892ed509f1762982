"""Log rotation that keeps ``max-file`` files, as docker's json-file and local drivers do:
``ctr.log`` (being written), ``ctr.log.1`` (the one before), ... ``ctr.log.<max-file - 1>``.

conmon's own ``--log-size-max`` cannot do this: at the limit it replaces the file with an
empty one (the old content is unlinked), i.e. ``max-file=1``. So with ``max-file > 1`` conmon
gets no size limit and the daemon rotates: it watches the file's size, renames the files
up by one (``ctr.log`` becomes ``ctr.log.1``), then asks conmon through its control fifo to
reopen its log (message 2: conmon fsyncs and closes the old descriptor, then makes a new
``ctr.log``). Why this way:

- No line is lost or split: conmon writes each entry with one ``writev`` to the file it
  has open, so what it writes between the rename and the reopen lands whole in
  ``ctr.log.1``, behind what was there; readers (``logs.py``) follow files by inode, and
  a new ``ctr.log`` existing means conmon is done with the one before.
- Crash-safe: every step is one ``rename`` into a free slot, so a crash anywhere leaves
  the files in order with at most a gap, which the next rotation fills instead of
  dropping one more file; ``ctr.log`` missing (a crash between the rename and the
  reopen) is repaired by the next watch asking conmon to reopen again.
- The cost: the file may pass ``max-size`` by what is written in one watch interval, and
  while podkitd is down nothing rotates (conmon keeps writing ``ctr.log``; the next
  podkitd rotates it on its first look). docker's driver writes inside dockerd, so its
  containers block on a full pipe while it is down instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from podkit.errors import PodkitError

if TYPE_CHECKING:
    from podkit.containers.context import ContainerContext
    from podkit.containers.store import Record

log = logging.getLogger(__name__)

INTERVAL = 0.25  # seconds between two looks at a file's size: a stat, so cheap


def rotated(path: Path, max_file: int) -> list[Path]:
    """The rotated files' names, oldest first (``path.<max_file-1>`` ... ``path.1``)."""
    return [path.with_name(f"{path.name}.{k}") for k in range(max_file - 1, 0, -1)]


def shift(path: Path, max_file: int) -> bool:
    """Move ``path`` to ``path.1``, the others up by one into the first free slot (the
    oldest dropped when there is none). False when ``path`` was not there."""
    if not path.exists():
        return False
    slots = rotated(path, max_file)[::-1]  # .1, .2, ...
    free = next((i for i, p in enumerate(slots) if not p.exists()), None)
    if free is None:
        free = len(slots) - 1
        slots[free].unlink(missing_ok=True)
    for i in range(free, 0, -1):  # each rename goes into a free slot
        os.rename(slots[i - 1], slots[i])
    os.rename(path, slots[0])
    return True


def limits(ctx: ContainerContext, config: dict[str, object]) -> tuple[int, int]:
    """The size of one file and how many files to keep: the container's ``--log-opt
    max-size/max-file`` (or ``--log-size-max``), else the daemon's ``[containers]
    log_size_max`` / ``log_max_file``."""
    size, keep = config.get("log_size_max"), config.get("log_max_file")
    return (
        int(size) if isinstance(size, int) else ctx.default_log_size,
        int(keep) if isinstance(keep, int) and keep > 0 else ctx.default_log_files,
    )


class LogRotation:
    """One watch task per running container whose log keeps more than one file."""

    def __init__(self, ctx: ContainerContext) -> None:
        self.ctx = ctx
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def watch(self, cid: str, rec: Record | None = None) -> None:
        """``rec``: the container's record, if the caller has it at hand."""
        rec = rec or self.ctx.store.get(cid)
        if rec is None or cid in self.tasks or rec.config.get("log_path"):
            return  # a CRI log is the kubelet's to rotate
        size, keep = limits(self.ctx, rec.config)
        if keep <= 1 or size <= 0:
            return  # conmon's own limit (one file), or none
        task = self.ctx.spawn(self._loop(cid, self.ctx.log_path(cid), size, keep))
        self.tasks[cid] = task
        task.add_done_callback(lambda _t: self.tasks.pop(cid, None))

    async def _loop(self, cid: str, path: Path, size: int, keep: int) -> None:
        while True:
            rec = self.ctx.store.get(cid)
            if rec is None or rec.state not in ("running", "paused") or not self.ctx.rt.conmon_alive(cid):
                return
            try:
                st_size = path.stat().st_size
            except FileNotFoundError:
                st_size = -1  # renamed, and conmon not asked (a crash) or not done yet
            try:
                if st_size >= size:
                    await asyncio.to_thread(shift, path, keep)
                if st_size >= size or st_size < 0:
                    await self._reopen(cid, path)
            except OSError as e:  # tried again at the next look; the files stay in order
                log.warning("rotating the log of %s failed: %s", cid[:12], e)
            await asyncio.sleep(INTERVAL)  # the watch's period, not a synchronisation

    async def _reopen(self, cid: str, path: Path) -> None:
        if path.exists():
            return  # conmon's reopen replaces the file: only ever after it was renamed away
        try:
            await self.ctx.rt.reopen_log(cid)
        except (PodkitError, OSError) as e:  # it exited meanwhile: the loop ends at its next look
            log.info("log of %s: conmon did not take the reopen: %s", cid[:12], e)
            return
        # conmon reads its fifo in its own time; rotate again only once it made the file
        for _ in range(100):
            if path.exists() or not self.ctx.rt.conmon_alive(cid):
                return
            await asyncio.sleep(0.02)
        log.warning("log of %s: conmon made no new %s after a reopen", cid[:12], path.name)
