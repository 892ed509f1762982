"""SQLite metadata (WAL mode): one database file for the whole daemon.

Each layer owns its own tables and registers their DDL with ``Database.schema``;
the store layer itself owns namespaces, labels and leases. SQLite gives the crash
safety: a transaction is either in the file or not.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
        self.schema("core", _CORE_DDL)

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
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, params)

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
