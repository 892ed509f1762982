"""Named volumes: directories podkit owns, mounted into containers by name.

Layout: ``<root>/volumes/<namespace>/<name>/_data``. A volume is seeded, the first
time a container mounts it while it is still empty, with what the image holds at
the mount point (docker's behaviour), so ``-v data:/etc/app`` starts from the
image's files. A volume in use by any container (running or not) is not removed.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.containers.options import VOLUME_NAME_RE, parse_labels
from podkit.errors import AlreadyExists, Conflict, Internal, InvalidArgument, NotFound
from podkit.prune import PruneFilters
from podkit.store import Database

if TYPE_CHECKING:
    from podkit.publish import Publish

DDL = """
CREATE TABLE IF NOT EXISTS volumes (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    driver TEXT NOT NULL DEFAULT 'local',
    created REAL NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    options TEXT NOT NULL DEFAULT '{}',
    anonymous INTEGER NOT NULL DEFAULT 0,
    seeded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, name)
);
"""


class VolumeService:
    def __init__(self, db: Database, root: Path, publish: Publish | None = None) -> None:
        self.db = db
        self.root = Path(root) / "volumes"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.publish = publish or (lambda *a, **k: None)
        # Set by the container service: (ns, volume name) -> ids of containers using it.
        self.users: Callable[[str, str], list[str]] = lambda ns, name: []
        db.schema("volumes", DDL)

    def path(self, ns: str, name: str) -> Path:
        return self.root / ns / name / "_data"

    def _row(self, ns: str, name: str) -> sqlite3.Row:
        row = self.db.one("SELECT * FROM volumes WHERE namespace = ? AND name = ?", (ns, name))
        if row is None:
            raise NotFound(f"no such volume: {name}")
        return row

    def _view(self, row: sqlite3.Row) -> dict[str, Any]:
        ns, name = row["namespace"], row["name"]
        return {
            "name": name,
            "driver": row["driver"],
            "mountpoint": str(self.path(ns, name)),
            "created": row["created"],
            "labels": json.loads(row["labels"]),
            "options": json.loads(row["options"]),
            "anonymous": bool(row["anonymous"]),
            "scope": "local",
            "namespace": ns,
            "in_use_by": self.users(ns, name),
        }

    def create(
        self,
        ns: str,
        name: str | None = None,
        labels: object = None,
        driver: str = "local",
        options: dict[str, str] | None = None,
        anonymous: bool = False,
        exist_ok: bool = False,
    ) -> dict[str, Any]:
        if driver != "local":
            raise InvalidArgument(f"unknown volume driver {driver!r}: only 'local' is available")
        if options:
            raise InvalidArgument(f"the local driver takes no options, got {sorted(options)}")
        if name is None:
            name, anonymous = secrets.token_hex(32), True
        if not VOLUME_NAME_RE.fullmatch(name) or len(name) > 128:
            raise InvalidArgument(f"invalid volume name {name!r}: use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
        lab = parse_labels(labels)
        existing = self.db.one("SELECT * FROM volumes WHERE namespace = ? AND name = ?", (ns, name))
        if existing is not None:
            if exist_ok:
                return self._view(existing)
            raise AlreadyExists(f"volume {name!r} already exists")
        p = self.path(ns, name)
        p.mkdir(parents=True, exist_ok=True, mode=0o755)
        try:
            with self.db.tx() as c:
                c.execute(
                    "INSERT INTO volumes (namespace, name, driver, created, labels, options, anonymous)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (ns, name, driver, time.time(), json.dumps(lab), "{}", int(anonymous)),
                )
        except sqlite3.IntegrityError:
            if exist_ok:
                return self.inspect(ns, name)
            raise AlreadyExists(f"volume {name!r} already exists") from None
        except BaseException:
            shutil.rmtree(p.parent, ignore_errors=True)
            raise
        self.publish(ns, "volume", "create", name)
        return self.inspect(ns, name)

    def inspect(self, ns: str, name: str) -> dict[str, Any]:
        return self._view(self._row(ns, name))

    def exists(self, ns: str, name: str) -> bool:
        return self.db.one("SELECT 1 FROM volumes WHERE namespace = ? AND name = ?", (ns, name)) is not None

    def list(self, ns: str, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT * FROM volumes WHERE namespace = ? ORDER BY name", (ns,))
        out = [self._view(r) for r in rows]
        for key, values in (filters or {}).items():
            if key == "dangling":
                want = values[-1].lower() in ("1", "true")
                out = [v for v in out if (not v["in_use_by"]) == want]
            elif key == "name":
                out = [v for v in out if any(x in v["name"] for x in values)]
            elif key == "label":

                def has(v: dict[str, Any], x: str) -> bool:
                    k, eq, val = x.partition("=")
                    return k in v["labels"] and (not eq or v["labels"][k] == val)

                out = [v for v in out if all(has(v, x) for x in values)]
            else:
                raise InvalidArgument(f"invalid volume filter {key!r}: use dangling, name or label")
        return out

    def remove(self, ns: str, name: str, force: bool = False) -> None:
        self._row(ns, name)
        users = self.users(ns, name)
        if users:
            raise Conflict(
                f"volume {name!r} is in use by container(s) {', '.join(u[:12] for u in users)}: "
                "remove them first"
            )
        with self.db.tx() as c:
            c.execute("DELETE FROM volumes WHERE namespace = ? AND name = ?", (ns, name))
        from podkit.snapshots.base import remove_tree  # however deep a container made it

        remove_tree(self.path(ns, name).parent)
        self.publish(ns, "volume", "destroy", name)

    def prune(self, ns: str, all: bool = False, filters: PruneFilters | None = None) -> builtins.list[str]:
        """Remove unused volumes (only anonymous ones unless ``all`` or the filter
        ``all=true``, as docker 23+; the label filters narrow it)."""
        f = filters or PruneFilters()
        every = all or bool(f.all)
        removed = []
        for v in self.list(ns):
            if v["in_use_by"] or (not every and not v["anonymous"]) or not f.keeps(v.get("labels")):
                continue
            with contextlib.suppress(NotFound, Conflict):
                self.remove(ns, v["name"])
                removed.append(v["name"])
        return removed

    async def seed(self, ns: str, name: str, source: Path) -> None:
        """Copy the image's content at the mount point into a fresh, empty volume, once."""
        row = self._row(ns, name)
        if row["seeded"]:
            return
        dst = self.path(ns, name)
        if source.is_dir() and not source.is_symlink() and not any(dst.iterdir()):
            proc = await asyncio.create_subprocess_exec(
                "cp",
                "-a",
                "--",
                f"{source}/.",
                f"{dst}/",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await proc.communicate()
            if proc.returncode != 0:
                raise Internal(f"seeding volume {name!r} from the image failed: {err.decode().strip()}")
            st = source.stat()
            os.chown(dst, st.st_uid, st.st_gid)
            os.chmod(dst, st.st_mode & 0o7777)
        with self.db.tx() as c:
            c.execute("UPDATE volumes SET seeded = 1 WHERE namespace = ? AND name = ?", (ns, name))
