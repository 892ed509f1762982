"""SQLite tables of the network layer: networks and CNI attachments.

An attachment row is written *before* the CNI ADD runs, so that whatever a crash
interrupts can be undone with DEL at the next start.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, TypedDict

from podkit.network.config import Network
from podkit.store import Database

DDL = """
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL DEFAULT 'bridge',
    bridge TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    ip_range TEXT NOT NULL DEFAULT '',
    ipmasq INTEGER NOT NULL DEFAULT 1,
    internal INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS net_attachments (
    owner_id TEXT NOT NULL,
    ifname TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'container',
    namespace TEXT NOT NULL DEFAULT '',
    network_id TEXT NOT NULL,
    network TEXT NOT NULL,
    netns TEXT NOT NULL,
    conflist TEXT NOT NULL,
    ports TEXT NOT NULL DEFAULT '[]',
    result TEXT,
    status TEXT NOT NULL DEFAULT 'adding',
    created REAL NOT NULL,
    PRIMARY KEY (owner_id, ifname)
);
CREATE INDEX IF NOT EXISTS net_attachments_network ON net_attachments(network_id);
CREATE TABLE IF NOT EXISTS net_sandboxes (
    id TEXT PRIMARY KEY,
    network_id TEXT NOT NULL,
    holder TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    kind TEXT NOT NULL DEFAULT 'container'
);
"""


# The kind of a sandbox row whose holder gave it back, its release under way (pool.py).
SANDBOX_RELEASING = "releasing"


class Attachment(TypedDict):
    """One row of net_attachments: an owner's interface in one network."""

    owner_id: str
    ifname: str
    kind: str  # "pod" or "container"
    namespace: str
    network_id: str
    network: str
    netns: str
    conflist: dict[str, Any]  # the CNI plugin list ADD ran, so that DEL runs the same
    ports: list[dict[str, Any]]  # PortMapping.to_dict() of each published port
    result: dict[str, Any] | None  # the CNI ADD result, once ADD succeeded
    status: str  # "adding" until ADD succeeded, then "ready"
    created: float


def _network(row: sqlite3.Row) -> Network:
    return Network(
        name=row["name"],
        id=row["id"],
        bridge=row["bridge"],
        subnet=row["subnet"],
        gateway=row["gateway"],
        driver=row["driver"],
        ip_range=row["ip_range"],
        ipmasq=bool(row["ipmasq"]),
        internal=bool(row["internal"]),
        labels=json.loads(row["labels"] or "{}"),
        created=row["created"],
        default=bool(row["is_default"]),
        options=json.loads(row["options"] or "{}"),
    )


class NetworkStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.schema("network", DDL)
        cols = {r["name"] for r in db.query("PRAGMA table_info(networks)")}
        if "options" not in cols:  # a database from before driver options
            db.execute("ALTER TABLE networks ADD COLUMN options TEXT NOT NULL DEFAULT '{}'")
        cols = {r["name"] for r in db.query("PRAGMA table_info(net_sandboxes)")}
        if "kind" not in cols:  # a database from before pods took sandboxes
            db.execute("ALTER TABLE net_sandboxes ADD COLUMN kind TEXT NOT NULL DEFAULT 'container'")

    # -- networks ----------------------------------------------------------------

    def networks(self) -> list[Network]:
        return [_network(r) for r in self.db.query("SELECT * FROM networks ORDER BY created, name")]

    def by_name(self, name: str) -> Network | None:
        r = self.db.one("SELECT * FROM networks WHERE name = ?", (name,))
        return _network(r) if r else None

    def by_id_prefix(self, prefix: str) -> list[Network]:
        rows = self.db.query(
            "SELECT * FROM networks WHERE id LIKE ? ORDER BY name",
            (prefix.replace("%", "").replace("_", "\\_") + "%",),
        )
        return [_network(r) for r in rows if r["id"].startswith(prefix)]

    def default(self) -> Network | None:
        r = self.db.one("SELECT * FROM networks WHERE is_default = 1")
        return _network(r) if r else None

    def insert(self, n: Network) -> None:
        self.db.execute(
            "INSERT INTO networks(id, name, driver, bridge, subnet, gateway, ip_range, ipmasq, internal,"
            " labels, created, is_default, options) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                n.id,
                n.name,
                n.driver,
                n.bridge,
                n.subnet,
                n.gateway,
                n.ip_range,
                int(n.ipmasq),
                int(n.internal),
                json.dumps(n.labels),
                n.created,
                int(n.default),
                json.dumps(n.options),
            ),
        )

    def update_default_shape(self, n: Network) -> None:
        self.db.execute(
            "UPDATE networks SET bridge = ?, subnet = ?, gateway = ? WHERE id = ?",
            (n.bridge, n.subnet, n.gateway, n.id),
        )

    def delete(self, network_id: str) -> None:
        self.db.execute("DELETE FROM networks WHERE id = ?", (network_id,))

    # -- attachments -------------------------------------------------------------

    def add_attachment(
        self,
        owner_id: str,
        ifname: str,
        kind: str,
        namespace: str,
        net: Network,
        netns: str,
        conflist: dict[str, Any],
        ports: list[dict[str, Any]],
    ) -> None:
        self.db.execute(
            "INSERT INTO net_attachments(owner_id, ifname, kind, namespace, network_id, network, netns,"
            " conflist, ports, status, created) VALUES (?,?,?,?,?,?,?,?,?,'adding',?)",
            (
                owner_id,
                ifname,
                kind,
                namespace,
                net.id,
                net.name,
                netns,
                json.dumps(conflist),
                json.dumps(ports),
                time.time(),
            ),
        )

    def set_result(self, owner_id: str, ifname: str, result: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE net_attachments SET result = ?, status = 'ready' WHERE owner_id = ? AND ifname = ?",
            (json.dumps(result), owner_id, ifname),
        )

    def set_ports(
        self, owner_id: str, ifname: str, conflist: dict[str, Any], ports: list[dict[str, Any]]
    ) -> None:
        """A finished attachment gets published ports: the list DEL runs names portmap now."""
        self.db.execute(
            "UPDATE net_attachments SET conflist = ?, ports = ? WHERE owner_id = ? AND ifname = ?",
            (json.dumps(conflist), json.dumps(ports), owner_id, ifname),
        )

    def drop_attachment(self, owner_id: str, ifname: str) -> None:
        self.db.execute("DELETE FROM net_attachments WHERE owner_id = ? AND ifname = ?", (owner_id, ifname))

    def attachments(self, owner_id: str | None = None, network_id: str | None = None) -> list[Attachment]:
        sql, args = "SELECT * FROM net_attachments", []
        conds: list[str] = []
        if owner_id is not None:
            conds.append("owner_id = ?")
            args.append(owner_id)
        if network_id is not None:
            conds.append("network_id = ?")
            args.append(network_id)
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += " ORDER BY created, ifname"
        return [_attachment(r) for r in self.db.query(sql, tuple(args))]

    # -- pre-warmed sandboxes (pool.py) --------------------------------------------

    def add_sandbox(self, sid: str, network_id: str) -> None:
        self.db.execute(
            "INSERT INTO net_sandboxes(id, network_id, holder, created) VALUES (?,?,'',?)",
            (sid, network_id, time.time()),
        )

    def hold_sandbox(self, sid: str, holder: str, kind: str = "container") -> None:
        """``holder`` takes the sandbox; ``kind``: what it is (a container, a pod), so that
        each layer's recovery judges only its own holders."""
        self.db.execute("UPDATE net_sandboxes SET holder = ?, kind = ? WHERE id = ?", (holder, kind, sid))

    def release_sandbox(self, sid: str) -> None:
        """The holder gave the sandbox back and its release is under way: no one's, and
        never free again (a restart's recovery releases what is left of it)."""
        self.db.execute(
            "UPDATE net_sandboxes SET holder = '', kind = ? WHERE id = ?", (SANDBOX_RELEASING, sid)
        )

    def drop_sandbox(self, sid: str) -> None:
        self.db.execute("DELETE FROM net_sandboxes WHERE id = ?", (sid,))

    def sandbox_of(self, holder: str) -> str | None:
        rows = self.db.query("SELECT id FROM net_sandboxes WHERE holder = ?", (holder,))
        return str(rows[0]["id"]) if rows else None

    def free_sandboxes(self, network_id: str) -> list[str]:
        """The sandboxes of a network that no one holds, oldest first (those being
        released are not among them)."""
        rows = self.db.query(
            "SELECT id FROM net_sandboxes WHERE network_id = ? AND holder = '' AND kind != ?"
            " ORDER BY created",
            (network_id, SANDBOX_RELEASING),
        )
        return [str(r["id"]) for r in rows]

    def releasing_sandboxes(self) -> set[str]:
        rows = self.db.query("SELECT id FROM net_sandboxes WHERE kind = ?", (SANDBOX_RELEASING,))
        return {str(r["id"]) for r in rows}

    def held_sandboxes(self) -> dict[str, tuple[str, str]]:
        """Sandbox id -> (holder, holder kind) of every taken sandbox."""
        rows = self.db.query("SELECT id, holder, kind FROM net_sandboxes WHERE holder != ''")
        return {str(r["id"]): (str(r["holder"]), str(r["kind"])) for r in rows}

    def all_sandboxes(self) -> list[tuple[str, str, str]]:
        """(id, network id, holder) of every sandbox (holder "" for free and releasing ones)."""
        rows = self.db.query("SELECT id, network_id, holder FROM net_sandboxes ORDER BY created")
        return [(str(r["id"]), str(r["network_id"]), str(r["holder"])) for r in rows]


def _attachment(r: sqlite3.Row) -> Attachment:
    return Attachment(
        owner_id=r["owner_id"],
        ifname=r["ifname"],
        kind=r["kind"],
        namespace=r["namespace"],
        network_id=r["network_id"],
        network=r["network"],
        netns=r["netns"],
        conflist=json.loads(r["conflist"]),
        ports=json.loads(r["ports"] or "[]"),
        result=json.loads(r["result"]) if r["result"] else None,
        status=r["status"],
        created=r["created"],
    )
