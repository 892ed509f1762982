"""Pod records in SQLite: one row per pod, the record as JSON, name unique per namespace."""

from __future__ import annotations

import json
import sqlite3

from podkit.errors import AlreadyExists, NotFound
from podkit.pods.model import Pod
from podkit.store import Database

DDL = """
CREATE TABLE IF NOT EXISTS pods (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    created REAL NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (namespace, id),
    UNIQUE (namespace, name)
);
"""


class PodStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.schema("pods", DDL)

    def insert(self, pod: Pod) -> None:
        with self.db.tx() as c:
            if c.execute(
                "SELECT 1 FROM pods WHERE namespace=? AND name=?", (pod.namespace, pod.name)
            ).fetchone():
                raise AlreadyExists(f"a pod named {pod.name!r} already exists in namespace {pod.namespace!r}")
            c.execute(
                "INSERT INTO pods(namespace, id, name, state, created, record) VALUES (?,?,?,?,?,?)",
                (pod.namespace, pod.id, pod.name, pod.state, pod.created, json.dumps(pod.to_record())),
            )

    def update(self, pod: Pod) -> None:
        self.db.execute(
            "UPDATE pods SET state=?, name=?, record=? WHERE namespace=? AND id=?",
            (pod.state, pod.name, json.dumps(pod.to_record()), pod.namespace, pod.id),
        )

    def delete(self, ns: str, pod_id: str) -> None:
        self.db.execute("DELETE FROM pods WHERE namespace=? AND id=?", (ns, pod_id))

    def get(self, ns: str, ref: str) -> Pod:
        """Find a pod by full id, name, or unique id prefix."""
        row = self.db.one(
            "SELECT state, record FROM pods WHERE namespace=? AND (id=? OR name=?)", (ns, ref, ref)
        )
        if row is None and ref and len(ref) >= 3 and all(c in "0123456789abcdef" for c in ref):
            rows = self.db.query(
                "SELECT state, record FROM pods WHERE namespace=? AND id LIKE ?", (ns, ref + "%")
            )
            if len(rows) > 1:
                raise NotFound(f"pod id prefix {ref!r} is ambiguous: {len(rows)} pods match")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"no such pod: {ref}")
        return _pod(row)

    def list(self, ns: str | None = None) -> list[Pod]:
        if ns is None:
            rows = self.db.query("SELECT state, record FROM pods ORDER BY created")
        else:
            rows = self.db.query("SELECT state, record FROM pods WHERE namespace=? ORDER BY created", (ns,))
        return [_pod(r) for r in rows]


def _pod(row: sqlite3.Row) -> Pod:
    # The state column is the truth (it is what a transition updates first).
    pod = Pod.from_record(json.loads(row["record"]))
    pod.state = row["state"]
    return pod
