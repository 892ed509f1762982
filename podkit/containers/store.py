"""Container records in SQLite: what a container is and the last state podkit knows.

The record is written before any process exists and updated at each transition, so
that a daemon restarted after a crash finds every container and can reconcile it
with what runc and conmon report (see recovery.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from podkit.errors import AlreadyExists, InvalidArgument, NotFound
from podkit.store import Database

DDL = """
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    image_id TEXT NOT NULL DEFAULT '',
    config TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'created',
    pid INTEGER NOT NULL DEFAULT 0,
    exit_code INTEGER,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    restart_count INTEGER NOT NULL DEFAULT 0,
    manually_stopped INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}',
    pod_id TEXT,
    infra INTEGER NOT NULL DEFAULT 0,
    network TEXT NOT NULL DEFAULT '{}',
    UNIQUE (namespace, name)
);
CREATE INDEX IF NOT EXISTS containers_ns ON containers(namespace);
CREATE INDEX IF NOT EXISTS containers_pod ON containers(pod_id);
"""

# created → running ⇄ paused; running → exited; any → removing (rm in progress).
STATES = ("created", "running", "paused", "restarting", "exited", "dead", "removing")


@dataclass
class Record:
    id: str
    namespace: str
    name: str
    image: str
    image_id: str
    config: dict[str, Any]
    state: str = "created"
    pid: int = 0
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    created: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    restart_count: int = 0
    manually_stopped: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    pod_id: str | None = None
    infra: bool = False
    network: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Record:
        return cls(
            id=r["id"],
            namespace=r["namespace"],
            name=r["name"],
            image=r["image"],
            image_id=r["image_id"],
            config=json.loads(r["config"]),
            state=r["state"],
            pid=r["pid"],
            exit_code=r["exit_code"],
            oom_killed=bool(r["oom_killed"]),
            error=r["error"],
            created=r["created"],
            started_at=r["started_at"],
            finished_at=r["finished_at"],
            restart_count=r["restart_count"],
            manually_stopped=bool(r["manually_stopped"]),
            labels=json.loads(r["labels"]),
            pod_id=r["pod_id"],
            infra=bool(r["infra"]),
            network=json.loads(r["network"]),
        )


_JSON_COLS = {"config", "labels", "network"}
_BOOL_COLS = {"oom_killed", "manually_stopped", "infra"}


class ContainerStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.schema("containers", DDL)

    def insert(self, r: Record) -> None:
        try:
            with self.db.tx() as c:
                c.execute(
                    "INSERT INTO containers (id, namespace, name, image, image_id, config, state, created,"
                    " labels, pod_id, infra, network) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        r.id,
                        r.namespace,
                        r.name,
                        r.image,
                        r.image_id,
                        json.dumps(r.config),
                        r.state,
                        r.created,
                        json.dumps(r.labels),
                        r.pod_id,
                        int(r.infra),
                        json.dumps(r.network),
                    ),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(
                f"the container name {r.name!r} is already in use in namespace {r.namespace!r}: "
                "remove or rename that container first"
            ) from None

    def update(self, id: str, **fields: Any) -> None:
        if not fields:
            return
        cols, vals = [], []
        for k, v in fields.items():
            if k in _JSON_COLS:
                v = json.dumps(v)
            elif k in _BOOL_COLS:
                v = int(bool(v))
            cols.append(f"{k} = ?")
            vals.append(v)
        vals.append(id)
        with self.db.tx() as c:
            c.execute(f"UPDATE containers SET {', '.join(cols)} WHERE id = ?", vals)

    def rename(self, id: str, ns: str, new: str) -> None:
        try:
            self.update(id, name=new)
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"the container name {new!r} is already in use") from None

    def delete(self, id: str) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM containers WHERE id = ?", (id,))

    def get(self, id: str) -> Record | None:
        row = self.db.one("SELECT * FROM containers WHERE id = ?", (id,))
        return Record.from_row(row) if row else None

    def resolve(self, ns: str, ref: str) -> Record:
        """By full id, name, or unique id prefix (as docker)."""
        if not ref:
            raise InvalidArgument("a container name or id is required")
        ref = ref.lstrip("/")
        row = self.db.one(
            "SELECT * FROM containers WHERE namespace = ? AND (id = ? OR name = ?)", (ns, ref, ref)
        )
        if row:
            return Record.from_row(row)
        if len(ref) >= 1 and all(c in "0123456789abcdef" for c in ref):
            rows = self.db.query(
                "SELECT * FROM containers WHERE namespace = ? AND id LIKE ?", (ns, ref + "%")
            )
            if len(rows) == 1:
                return Record.from_row(rows[0])
            if len(rows) > 1:
                raise InvalidArgument(f"container id prefix {ref!r} is ambiguous: give more characters")
        raise NotFound(f"no such container: {ref}")

    def running_mentioning(self, cid: str) -> list[Record]:
        """Running or paused containers whose options name ``cid`` (``--link``,
        ``container:`` modes...): the caller looks at which option."""
        rows = self.db.query(
            "SELECT * FROM containers WHERE state IN ('running', 'paused') AND instr(config, ?) > 0", (cid,)
        )
        return [Record.from_row(r) for r in rows]

    def list(self, ns: str | None = None) -> list[Record]:
        if ns is None:
            rows = self.db.query("SELECT * FROM containers ORDER BY created DESC")
        else:
            rows = self.db.query("SELECT * FROM containers WHERE namespace = ? ORDER BY created DESC", (ns,))
        return [Record.from_row(r) for r in rows]

    def names_in_use(self, ns: str) -> set[str]:
        return {r["name"] for r in self.db.query("SELECT name FROM containers WHERE namespace = ?", (ns,))}
