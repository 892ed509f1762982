"""The snapshotter model shared by the overlay and copying implementations.

As in containerd, a snapshot is a directory tree named by a key:

- *active*: writable, made by ``prepare(key, parent)``; a container's root file
  system, or a layer being applied;
- *view*: read-only, made by ``view(key, parent)``;
- *committed*: immutable, made by ``commit(name, key)`` from an active snapshot;
  image layers are committed under their chain ID so images that share layers
  share snapshots.

Metadata lives in SQLite; the trees live under ``<root>/snapshots/<driver>/<n>``,
where ``n`` is a number that never changes, so committing is a single row update.
A directory without a row is garbage from a crash and is removed at start-up.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from podkit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from podkit.snapshots.api import ACTIVE, COMMITTED, EXTRACT_PREFIX, VIEW, Info, Usage
from podkit.snapshots.mount import Mount
from podkit.store import Database

log = logging.getLogger(__name__)

_DDL = """
CREATE TABLE IF NOT EXISTS snapshots (
    driver TEXT NOT NULL,
    key TEXT NOT NULL,
    id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    parent TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    size INTEGER,
    inodes INTEGER,
    PRIMARY KEY (driver, key),
    UNIQUE (driver, id)
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(driver, parent);
CREATE TABLE IF NOT EXISTS snapshot_seq (driver TEXT PRIMARY KEY, next INTEGER NOT NULL);
"""


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Delete a directory tree, however deep, never crossing into another file system.

    shutil.rmtree recurses once per level: a container can make a tree deeper than
    Python's recursion limit (a loop of ``mkdir d; cd d``), and its snapshot or volume
    would then fail to delete with a RecursionError. rm(1) walks it iteratively.
    """
    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path, onerror=_log_rmtree_error)
    except RecursionError:
        import subprocess

        r = subprocess.run(["rm", "-rf", "--one-file-system", "--", os.fspath(path)], capture_output=True)
        if r.returncode != 0:
            log.warning("removing %s: %s", path, r.stderr.decode(errors="replace").strip())


def _log_rmtree_error(
    func: object, path: str, exc_info: tuple[type[BaseException], BaseException, object]
) -> None:
    """What rmtree could not delete is left behind, and said so (start-up sweeps trees
    without a row; a volume's leftovers are the admin's to see)."""
    if not isinstance(exc_info[1], FileNotFoundError):
        log.warning("removing %s: %s", path, exc_info[1])


def _info(r: sqlite3.Row) -> Info:
    return Info(
        r["key"], r["kind"], r["parent"], r["id"], r["created"], r["updated"], json.loads(r["labels"])
    )


class SnapshotterBase:
    """Common metadata handling; subclasses lay out trees and describe mounts.

    Implements the ``Snapshotter`` protocol (podkit.snapshots.api)."""

    driver = "base"
    # How a layer's deletions are represented: "overlay" (0:0 char devices and the
    # opaque xattr in the upper dir) or "remove" (delete from a full copy).
    whiteouts = "remove"

    def __init__(self, db: Database, root: str | os.PathLike[str]) -> None:
        self.db = db
        self.root = Path(root) / "snapshots" / self.driver
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        db.schema("snapshots", _DDL)
        self._lock = threading.RLock()

    # -- layout ------------------------------------------------------------------------

    def dir(self, id: int) -> Path:
        return self.root / str(id)

    def fs(self, id: int) -> Path:
        return self.dir(id) / "fs"

    def _create_dirs(self, id: int, parent: Info | None) -> None:
        raise NotImplementedError

    def _mounts(self, info: Info) -> builtins.list[Mount]:
        raise NotImplementedError

    # -- metadata --------------------------------------------------------------------

    def _row(self, key: str) -> Info | None:
        r = self.db.one("SELECT * FROM snapshots WHERE driver=? AND key=?", (self.driver, key))
        return _info(r) if r is not None else None

    def stat(self, key: str) -> Info:
        info = self._row(key)
        if info is None:
            raise NotFound(f"snapshot {key} does not exist")
        return info

    def exists(self, key: str) -> bool:
        return self._row(key) is not None

    def list(self) -> builtins.list[Info]:
        rows = self.db.query("SELECT * FROM snapshots WHERE driver=? ORDER BY created", (self.driver,))
        return [_info(r) for r in rows]

    def children(self, key: str) -> builtins.list[str]:
        rows = self.db.query("SELECT key FROM snapshots WHERE driver=? AND parent=?", (self.driver, key))
        return [r["key"] for r in rows]

    def chain(self, key: str) -> builtins.list[Info]:
        """The snapshot and its ancestors, nearest first."""
        out = []
        k: str | None = key
        while k:
            info = self.stat(k)
            out.append(info)
            k = info.parent
        return out

    def update_labels(self, key: str, labels: dict[str, str]) -> Info:
        with self.db.tx() as c:
            info = self.stat(key)
            info.labels.update(labels)
            info.labels = {k: v for k, v in info.labels.items() if v != ""}
            c.execute(
                "UPDATE snapshots SET labels=?, updated=? WHERE driver=? AND key=?",
                (json.dumps(info.labels), time.time(), self.driver, key),
            )
        return info

    # -- operations ------------------------------------------------------------------

    def prepare(
        self, key: str, parent: str | None = None, labels: dict[str, str] | None = None
    ) -> builtins.list[Mount]:
        """A writable snapshot on top of a committed parent; returns its mounts."""
        return self._create(key, parent, ACTIVE, labels)

    def view(
        self, key: str, parent: str | None = None, labels: dict[str, str] | None = None
    ) -> builtins.list[Mount]:
        """A read-only snapshot of a committed parent."""
        return self._create(key, parent, VIEW, labels)

    def _create(
        self, key: str, parent: str | None, kind: str, labels: dict[str, str] | None
    ) -> builtins.list[Mount]:
        if not key or "/" in key or key in (".", ".."):
            raise InvalidArgument(f"invalid snapshot key {key!r}")
        with self._lock:
            pinfo = self._check_parent(parent)
            if self._row(key) is not None:
                raise AlreadyExists(f"snapshot {key} already exists")
            with self.db.tx() as c:
                id = self._next_id(c)
        # The tree is made outside the locks (the copying snapshotter copies whole
        # trees); a crash before the row below exists leaves a tree start-up removes.
        try:
            self._create_dirs(id, pinfo)
            now = time.time()
            with self._lock:
                self._check_parent(parent)  # not removed meanwhile
                with self.db.tx() as c:
                    if self._row(key) is not None:
                        raise AlreadyExists(f"snapshot {key} already exists")
                    c.execute(
                        "INSERT INTO snapshots(driver,key,id,kind,parent,created,updated,labels)"
                        " VALUES (?,?,?,?,?,?,?,?)",
                        (self.driver, key, id, kind, parent, now, now, json.dumps(labels or {})),
                    )
        except BaseException:
            remove_tree(self.dir(id))  # what cannot go is logged, and swept at start-up
            raise
        return self._mounts(self.stat(key))

    def _check_parent(self, parent: str | None) -> Info | None:
        if not parent:
            return None
        pinfo = self._row(parent)
        if pinfo is None:
            raise NotFound(f"parent snapshot {parent} does not exist")
        if pinfo.kind != COMMITTED:
            raise InvalidArgument(f"parent snapshot {parent} is not committed")
        return pinfo

    def _next_id(self, c: sqlite3.Connection) -> int:
        r = c.execute("SELECT next FROM snapshot_seq WHERE driver=?", (self.driver,)).fetchone()
        if r is None:
            m = c.execute("SELECT MAX(id) AS m FROM snapshots WHERE driver=?", (self.driver,)).fetchone()
            n = (m["m"] or 0) + 1
            c.execute("INSERT INTO snapshot_seq(driver, next) VALUES (?, ?)", (self.driver, n + 1))
        else:
            n = r["next"]
            c.execute("UPDATE snapshot_seq SET next=? WHERE driver=?", (n + 1, self.driver))
        # A directory left by a crash may hold this number: never reuse it.
        while self.dir(n).exists():
            shutil.rmtree(self.dir(n), ignore_errors=True)
            if self.dir(n).exists():
                n += 1
                c.execute("UPDATE snapshot_seq SET next=? WHERE driver=?", (n + 1, self.driver))
        return n

    def mounts(self, key: str) -> builtins.list[Mount]:
        info = self.stat(key)
        if info.kind == COMMITTED:
            raise InvalidArgument(f"snapshot {key} is committed: make a view or prepare on it to mount it")
        return self._mounts(info)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> Info:
        """Freeze an active snapshot under a new name (its tree stays where it is); a
        label given as "" is dropped."""
        with self._lock:
            info = self.stat(key)
            if info.kind != ACTIVE:
                raise InvalidArgument(
                    f"snapshot {key} is {info.kind}, only active snapshots can be committed"
                )
            merged = dict(info.labels)
            merged.update(labels or {})
            merged = {k: v for k, v in merged.items() if v != ""}  # "" drops a label
            # The size is measured on first use(), not here: walking a big layer's tree
            # would sit on every pull's critical path.
            with self.db.tx() as c:
                if self._row(name) is not None:
                    raise AlreadyExists(f"snapshot {name} already exists")
                c.execute(
                    "UPDATE snapshots SET key=?, kind=?, updated=?, labels=?, size=NULL, inodes=NULL"
                    " WHERE driver=? AND key=?",
                    (name, COMMITTED, time.time(), json.dumps(merged), self.driver, key),
                )
            self._after_commit(info.id)
            return self.stat(name)

    def _after_commit(self, id: int) -> None:
        pass

    def remove(self, key: str) -> None:
        """Remove a snapshot; refused while other snapshots are built on it."""
        with self._lock:
            info = self.stat(key)
            kids = self.children(key)
            if kids:
                raise Conflict(f"snapshot {key} has {len(kids)} dependent snapshot(s), e.g. {kids[0]}")
            with self.db.tx() as c:
                c.execute("DELETE FROM snapshots WHERE driver=? AND key=?", (self.driver, key))
        # After the row is gone (and outside the lock: trees can be big): a crash here
        # leaves a directory that start-up sweeps; the number is never handed out again.
        self._remove_tree(info.id)

    def _remove_tree(self, id: int) -> None:
        d = self.dir(id)
        for sub in ("fs", ""):
            with contextlib.suppress(OSError):
                from podkit.snapshots.mount import unmount

                unmount(d / sub if sub else d)
        remove_tree(d)

    def usage(self, key: str) -> Usage:
        info = self.stat(key)
        if info.kind != COMMITTED:
            return self._measure(info.id)
        r = self.db.one("SELECT size, inodes FROM snapshots WHERE driver=? AND key=?", (self.driver, key))
        if r is not None and r["size"] is not None:
            return Usage(r["size"], r["inodes"])
        # Committed trees never change: measure once, remember.
        u = self._measure(info.id)
        self.db.execute(
            "UPDATE snapshots SET size=?, inodes=? WHERE driver=? AND key=?",
            (u.size, u.inodes, self.driver, key),
        )
        return u

    def _measure(self, id: int) -> Usage:
        size = inodes = 0
        seen: set[tuple[int, int]] = set()
        # An explicit stack, not os.walk: that recurses per level, and a container's tree
        # can be deeper than the recursion limit.
        stack = [str(self.fs(id))]
        while stack:
            try:
                entries = list(os.scandir(stack.pop()))
            except OSError:
                continue
            for e in entries:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                inodes += 1
                size += st.st_blocks * 512
        return Usage(size, inodes)

    # -- helpers for the layer applier -------------------------------------------------

    def tree(self, key: str) -> Path:
        """The directory holding snapshot ``key``'s own tree."""
        return self.fs(self.stat(key).id)

    def apply_dir(self, key: str) -> Path:
        """Where a layer being applied to active snapshot ``key`` is written."""
        info = self.stat(key)
        if info.kind != ACTIVE:
            raise InvalidArgument(f"snapshot {key} is not active")
        return self.fs(info.id)

    def lower_dirs(self, key: str) -> builtins.list[Path]:
        """The committed trees below ``key``, nearest first."""
        info = self.stat(key)
        return [self.fs(i.id) for i in self.chain(info.parent)] if info.parent else []

    # -- recovery --------------------------------------------------------------------

    def cleanup(self) -> int:
        """Drop what a crash left: extraction snapshots and trees without a row."""
        removed = 0
        for info in self.list():
            if info.kind == ACTIVE and info.key.startswith(EXTRACT_PREFIX):
                with contextlib.suppress(Conflict, NotFound):
                    self.remove(info.key)
                    removed += 1
        removed += self._drop_lost_layers()
        ids = {r["id"] for r in self.db.query("SELECT id FROM snapshots WHERE driver=?", (self.driver,))}
        for p in self.root.iterdir():
            if p.name.isdigit() and int(p.name) not in ids:
                self._remove_tree(int(p.name))
                removed += 1
        return removed

    def _drop_lost_layers(self) -> int:
        """Committed layers whose tree is gone (deleted by hand, a damaged disk) are
        forgotten with the layers built on them, so images unpack again when next used.
        Containers' snapshots on them are left alone (and logged): they are the
        containers layer's to deal with."""
        infos = {i.key: i for i in self.list()}
        lost = {k for k, i in infos.items() if i.kind == COMMITTED and not self.fs(i.id).is_dir()}
        if not lost:
            return 0
        changed = True
        while changed:  # descendants of a lost layer are unusable too
            changed = False
            for k, i in infos.items():
                if k not in lost and i.kind == COMMITTED and i.parent in lost:
                    lost.add(k)
                    changed = True
        blocked = {i.parent for i in infos.values() if i.kind != COMMITTED and i.parent in lost}
        for k in blocked:
            log.warning("snapshot %s lost its tree but active snapshots use it; kept", k)
        dropped = 0
        # Children first: a row goes only when nothing is built on it.
        for k in sorted(lost, key=lambda k: -len(self._ancestry(k, infos))):
            if k in blocked or self.children(k):
                continue
            log.warning("snapshot %s lost its tree: forgotten", k)
            with self.db.tx() as c:
                c.execute("DELETE FROM snapshots WHERE driver=? AND key=?", (self.driver, k))
            shutil.rmtree(self.dir(infos[k].id), ignore_errors=True)
            dropped += 1
        return dropped

    @staticmethod
    def _ancestry(key: str, infos: dict[str, Info]) -> builtins.list[str]:
        out = []
        k: str | None = key
        while k and k in infos and k not in out:
            out.append(k)
            k = infos[k].parent
        return out

    def info(self, ns: str | None = None) -> dict[str, Any]:
        """For `podkit info` (snapshots are shared by all namespaces: ``ns`` is unused)."""
        rows = self.db.query(
            "SELECT kind, COUNT(*) AS n FROM snapshots WHERE driver=? GROUP BY kind", (self.driver,)
        )
        return {"driver": self.driver, "root": str(self.root), **{r["kind"]: r["n"] for r in rows}}
