"""Leases: keep content and snapshots that are not yet referenced by an image safe from GC.

A pull or an import takes a lease before it writes its first blob and drops it
after the image is recorded. While a lease is alive, garbage collection keeps
everything the lease names and everything created since the lease began (so a
writer need not name each blob). Leases expire, so a crash cannot pin content
forever.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from podkit.store.metadata import Database

DEFAULT_TTL = 3600.0


class Leases:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, ns: str, id: str | None = None, ttl: float | None = DEFAULT_TTL) -> str:
        id = id or "lease-" + secrets.token_hex(8)
        now = time.time()
        self.db.execute(
            "INSERT OR REPLACE INTO leases(namespace, id, created, expires) VALUES (?,?,?,?)",
            (ns, id, now, now + ttl if ttl else None),
        )
        return id

    def add(self, ns: str, lease: str, kind: str, ref: str) -> None:
        """Pin one resource ('content' digest or 'snapshot' key) to a lease."""
        self.db.execute(
            "INSERT OR IGNORE INTO lease_resources(namespace, lease, kind, ref) VALUES (?,?,?,?)",
            (ns, lease, kind, ref),
        )

    def delete(self, ns: str, lease: str) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM lease_resources WHERE namespace=? AND lease=?", (ns, lease))
            c.execute("DELETE FROM leases WHERE namespace=? AND id=?", (ns, lease))

    @contextmanager
    def lease(self, ns: str, ttl: float | None = DEFAULT_TTL) -> Iterator[str]:
        lid = self.create(ns, ttl=ttl)
        try:
            yield lid
        finally:
            self.delete(ns, lid)

    def expire(self) -> int:
        now = time.time()
        with self.db.tx() as c:
            rows = c.execute(
                "SELECT namespace, id FROM leases WHERE expires IS NOT NULL AND expires < ?", (now,)
            ).fetchall()
            for r in rows:
                c.execute("DELETE FROM lease_resources WHERE namespace=? AND lease=?", (r[0], r[1]))
                c.execute("DELETE FROM leases WHERE namespace=? AND id=?", (r[0], r[1]))
        return len(rows)

    def refs(self, kind: str) -> set[str]:
        rows = self.db.query("SELECT DISTINCT ref FROM lease_resources WHERE kind=?", (kind,))
        return {r["ref"] for r in rows}

    def oldest_active(self) -> float | None:
        """Start time of the oldest live lease: what was made since then is kept."""
        r = self.db.one(
            "SELECT MIN(created) AS m FROM leases WHERE expires IS NULL OR expires >= ?", (time.time(),)
        )
        return r["m"] if r is not None else None
