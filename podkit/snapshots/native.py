"""The copying snapshotter: every snapshot is a full tree. Slow and big, but needs nothing
from the kernel beyond bind mounts; used where overlayfs is missing."""

from __future__ import annotations

import subprocess
from pathlib import Path

from podkit.errors import Internal
from podkit.snapshots.api import ACTIVE, Info
from podkit.snapshots.base import SnapshotterBase, remove_tree
from podkit.snapshots.mount import Mount


class NativeSnapshotter(SnapshotterBase):
    driver = "native"
    whiteouts = "remove"

    def _create_dirs(self, id: int, parent: Info | None) -> None:
        d = self.dir(id)
        d.mkdir(mode=0o700)
        if parent is None:
            self.fs(id).mkdir(mode=0o755)
            return
        # cp -a keeps owners, modes, times, xattrs, hard links, devices; reflinks where the
        # file system can share blocks.
        r = subprocess.run(
            ["cp", "-a", "--reflink=auto", str(self.fs(parent.id)), str(self.fs(id))],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            remove_tree(d)
            raise Internal(f"copying snapshot {parent.key}: {r.stderr.strip()}")

    def _mounts(self, info: Info) -> list[Mount]:
        mode = "rw" if info.kind == ACTIVE else "ro"
        return [Mount("bind", str(self.fs(info.id)), ["rbind", mode])]

    def lower_dirs(self, key: str) -> list[Path]:
        # The tree already holds its parents' content.
        return []
