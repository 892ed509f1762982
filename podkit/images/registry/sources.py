"""Where blobs came from: (registry, repository) per digest, noted on pull.

A push to a registry that already holds a blob in another repository can then ask
for a cross-repository mount instead of uploading it again — even when the image
it came with was renamed or removed since (containerd keeps the same facts as
``distribution.source`` labels).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from podkit.store import Database

_DDL = """
CREATE TABLE IF NOT EXISTS blob_sources (
    digest TEXT NOT NULL,
    registry TEXT NOT NULL,
    repository TEXT NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (digest, registry, repository)
);
"""


class BlobSources:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.schema("blob_sources", _DDL)

    def add(self, registry: str, repository: str, digests: list[str]) -> None:
        now = time.time()
        with self.db.tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO blob_sources(digest, registry, repository, seen) VALUES (?, ?, ?, ?)",
                [(d, registry, repository, now) for d in digests],
            )

    def repositories(self, digest: str, registry: str) -> list[str]:
        """Repositories of ``registry`` known to hold ``digest``, most recently seen first."""
        rows = self.db.query(
            "SELECT repository FROM blob_sources WHERE digest = ? AND registry = ? ORDER BY seen DESC",
            (digest, registry),
        )
        return [r["repository"] for r in rows]

    def prune(self, has: Callable[[str], bool]) -> int:
        """Forget blobs the store no longer has (garbage collection took them)."""
        gone = [
            r["digest"]
            for r in self.db.query("SELECT DISTINCT digest FROM blob_sources")
            if not has(r["digest"])
        ]
        if gone:
            self.forget(gone)
        return len(gone)

    def forget(self, digests: list[str]) -> None:
        with self.db.tx() as c:
            c.executemany("DELETE FROM blob_sources WHERE digest = ?", [(d,) for d in digests])
