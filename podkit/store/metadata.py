"""SQLite metadata (WAL mode): one database file for the whole daemon.

Each layer owns its own tables and registers their DDL with ``Database.schema``;
the store layer itself owns namespaces, labels and leases. SQLite gives the crash
safety: a transaction is either in the file or not.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Statement parameters: positional (?) or named (:name).
Params = tuple[object, ...] | dict[str, object]

_CORE_DDL = """
CREATE TABLE IF NOT EXISTS namespaces (
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS leases (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL,
    PRIMARY KEY (namespace, id)
);
CREATE TABLE IF NOT EXISTS lease_resources (
    namespace TEXT NOT NULL,
    lease TEXT NOT NULL,
    kind TEXT NOT NULL,          -- 'content' | 'snapshot'
    ref TEXT NOT NULL,
    PRIMARY KEY (namespace, lease, kind, ref)
);
"""


# Bytes set aside beside metadata.db for its writes on a full disk (see fill_reserve),
# and how often a missing reserve is set aside again.
RESERVE = 4 << 20
RESERVE_RETRY_S = 30.0
# Free bytes under which a write gives the reserve back first.
LOW_WATER = 1 << 20


def _is_full(e: sqlite3.OperationalError) -> bool:
    return getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(e)


class Database:
    """A thread-safe wrapper over one sqlite3 connection.

    The daemon calls it from the event loop and from worker threads; the lock keeps
    transactions whole. Statements are short, so holding the loop is acceptable.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Root only: container configs hold environment values (passwords, tokens). SQLite
        # gives the -wal/-shm files the database's mode; older ones are fixed here too.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(p, 0o600)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()
        self._depth = 0
        self.reserve = Path(f"{self.path}.reserve")
        self._reserve_tried = 0.0
        self.fill_reserve()
        self.schema("core", _CORE_DDL)

    def fill_reserve(self) -> bool:
        """Set aside RESERVE bytes for the database alone (if there is room for them).

        On a full disk every write fails, so the container that filled it could not
        have its exit recorded, nor be removed (a removal is a write first) to free
        the space. The reserve is given back at the first SQLITE_FULL, and the write
        retried; it is set aside again once there is room.
        """
        self._reserve_tried = time.monotonic()
        if self.reserve.exists():
            return True
        try:
            fd = os.open(self.reserve, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE)
            finally:
                os.close(fd)
            return True
        except OSError as e:
            log.warning("cannot set aside the database's reserve %s: %s", self.reserve, e)
            with contextlib.suppress(FileNotFoundError):
                self.reserve.unlink()
            return False

    def _ensure_room(self) -> None:
        """Give back the reserve before a write that the disk could not hold.

        (SQLite rolls a transaction back on SQLITE_FULL at commit, so a retry after
        the failure would have to replay it: checking first is simpler, one statvfs.)
        """
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return
        if st.f_bavail * st.f_frsize < LOW_WATER:
            self._give_back_reserve()

    def _give_back_reserve(self) -> bool:
        try:
            self.reserve.unlink()
        except FileNotFoundError:
            return False
        log.warning("the disk under %s is full: using the database's reserve", self.path.parent)
        return True

    def _after_write(self) -> None:
        if time.monotonic() - self._reserve_tried > RESERVE_RETRY_S and not self.reserve.exists():
            self.fill_reserve()

    def schema(self, name: str, ddl: str) -> None:
        """Create a layer's tables (idempotent: DDL must use IF NOT EXISTS)."""
        with self._lock:
            self._conn.executescript(ddl)

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; nested calls join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._ensure_room()
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.OperationalError as e:
                    # SQLite may have rolled back on SQLITE_FULL; if not, the commit can be
                    # retried once the reserve is given back.
                    if not (_is_full(e) and self._conn.in_transaction and self._give_back_reserve()):
                        if self._conn.in_transaction:
                            self._conn.execute("ROLLBACK")
                        raise
                    self._conn.execute("COMMIT")
                self._after_write()
            finally:
                self._depth = 0

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        with self._lock:
            if not self._depth:
                self._ensure_room()
            try:
                cur = self._conn.execute(sql, params)
            except sqlite3.OperationalError as e:
                # A statement outside a transaction failed whole: run it again on the reserve.
                if self._depth or not _is_full(e) or not self._give_back_reserve():
                    raise
                cur = self._conn.execute(sql, params)
            if not self._depth and self._conn.total_changes:
                self._after_write()
            return cur

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
            return row

    def ensure_namespace(self, name: str) -> None:
        self.execute("INSERT OR IGNORE INTO namespaces(name, created) VALUES (?, ?)", (name, time.time()))

    def namespaces(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM namespaces ORDER BY name")]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def row_to_dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    return dict(row) if row is not None else None
