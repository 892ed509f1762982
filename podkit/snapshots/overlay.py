"""overlayfs snapshots: each committed layer is one lower dir, an active snapshot adds an upper."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from podkit.snapshots.api import ACTIVE, Info
from podkit.snapshots.base import SnapshotterBase
from podkit.snapshots.mount import Mount, sys_mount, sys_umount

log = logging.getLogger(__name__)


class OverlaySnapshotter(SnapshotterBase):
    driver = "overlay"
    whiteouts = "overlay"

    def _create_dirs(self, id: int, parent: Info | None) -> None:
        d = self.dir(id)
        d.mkdir(mode=0o700)
        self.fs(id).mkdir(mode=0o755)
        (d / "work").mkdir(mode=0o700)

    def _mounts(self, info: Info) -> list[Mount]:
        lowers = [str(self.fs(p.id)) for p in self.chain(info.parent)] if info.parent else []
        if info.kind == ACTIVE:
            if not lowers:
                return [Mount("bind", str(self.fs(info.id)), ["rbind", "rw"])]
            return [
                Mount(
                    "overlay",
                    "overlay",
                    [
                        "index=off",
                        f"workdir={self.dir(info.id) / 'work'}",
                        f"upperdir={self.fs(info.id)}",
                        f"lowerdir={':'.join(lowers)}",
                    ],
                )
            ]
        # A view: read-only; with a single tree a bind mount is cheaper than an overlay.
        if not lowers:
            return [Mount("bind", str(self.fs(info.id)), ["rbind", "ro"])]
        if len(lowers) == 1:
            return [Mount("bind", lowers[0], ["rbind", "ro"])]
        return [Mount("overlay", "overlay", ["ro", "index=off", f"lowerdir={':'.join(lowers)}"])]

    def _after_commit(self, id: int) -> None:
        # A committed layer is only ever a lower dir: its work dir is dead weight.
        shutil.rmtree(self.dir(id) / "work", ignore_errors=True)
        (self.dir(id) / "work").mkdir(mode=0o700, exist_ok=True)


def overlay_supported(root: str | os.PathLike[str]) -> bool:
    """Whether an overlay with two lowers mounts on this file system (checked once at start)."""
    try:
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read():
                return False
    except OSError:
        return False
    Path(root).mkdir(parents=True, exist_ok=True)
    base: Path | None = None
    try:
        base = Path(tempfile.mkdtemp(prefix=".overlay-check-", dir=root))
        for n in ("l1", "l2", "u", "w", "m"):
            (base / n).mkdir()
    except OSError as e:
        # A full disk leaves no room for the probe (its dir or the dirs in it): the
        # overlay snapshotter's own tree, made at an earlier start, tells, so a restart
        # into a full disk recovers with the driver it had.
        made = (Path(root) / "overlay").is_dir()
        log.warning(
            "cannot probe overlayfs under %s (%s): %s",
            root,
            e,
            "overlay snapshots found" if made else "none found",
        )
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)
        return made
    try:
        opts = f"index=off,lowerdir={base / 'l1'}:{base / 'l2'},upperdir={base / 'u'},workdir={base / 'w'}"
        sys_mount("overlay", str(base / "m"), "overlay", 0, opts)
        sys_umount(str(base / "m"))
        return True
    except OSError:
        return False
    finally:
        shutil.rmtree(base, ignore_errors=True)
