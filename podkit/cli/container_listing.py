"""Listing and looking into containers: ps, stats, top, port, container prune."""

from __future__ import annotations

import sys
import time

from podkit import errors
from podkit.cli.container_ops import container_ops as _ops
from podkit.cli.output import (
    ago,
    check_template,
    human_size,
    is_template,
    listing_format,
    print_items,
    table,
)
from podkit.client._json import dumps as json_dumps

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from podkit.client import Client


def _filters(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in items:
        k, eq, v = f.partition("=")
        if not eq:
            raise errors.InvalidArgument(f"invalid filter {f!r}: want KEY=VALUE")
        out.setdefault(k, []).append(v)
    return out


def _ports_text(ports: list[dict[str, Any]]) -> str:
    out = []
    for p in ports:
        hp = p.get("host_port") or p.get("hostPort")
        cp = p.get("container_port") or p.get("containerPort")
        proto = p.get("protocol", "tcp")
        ip = p.get("host_ip") or p.get("hostIP") or "0.0.0.0"
        out.append(f"{ip}:{hp}->{cp}/{proto}" if hp else f"{cp}/{proto}")
    return ", ".join(out)


# docker's `ps --format` field names and their table headers
PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Platform": "PLATFORM",
    "Pod": "POD",
}


def docker_time(ts: float | None) -> str:
    """Go's time.Time String(), local time, as docker's CreatedAt columns print it."""
    import datetime

    if not ts:
        return ""
    return datetime.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def ps_fields(r: dict[str, Any], command: str, ports: str, no_trunc: bool) -> dict[str, Any]:
    """One `ps` row as docker's formatter context: every field a string, and Label a
    method (``{{.Label "k"}}``)."""
    labels = r.get("labels") or {}
    mounts = r.get("mounts") or []

    def mount_name(m: dict[str, Any]) -> str:
        # docker: a volume's name, a bind's source, cut to 15 characters unless --no-trunc
        name = str(m.get("source") or m.get("target") or "")
        return name if no_trunc or len(name) <= 15 else name[:15] + "…"

    return {
        "ID": r["id"] if no_trunc else r["id"][:12],
        "Image": r["image"].removeprefix("docker.io/library/"),
        "Command": command,
        "CreatedAt": docker_time(r.get("created")),
        "RunningFor": ago(r.get("created")),
        "Ports": ports,
        "State": r.get("state", ""),
        "Status": r.get("status", ""),
        "Size": _size_text(r),
        "Names": r["name"],
        "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
        "Mounts": ",".join(mount_name(m) for m in mounts if m.get("type") != "tmpfs"),
        "Networks": ",".join(r.get("networks") or []),
        "LocalVolumes": str(sum(1 for m in mounts if m.get("type") == "volume")),
        "Pod": (r.get("pod_id") or "")[:12],
        # docker 28's image platform, nil when the daemon sends no image manifest
        # descriptor (its classic image store); podkit's listing has none
        "Platform": None,
        "Label": lambda key: str(labels.get(key, "")),
    }


def cmd_ps(args: argparse.Namespace, client: Client) -> int:
    last = 1 if args.latest else args.last  # docker: -l is -n 1; either implies -a
    params = {
        "all": args.all or last > 0,
        "filters": _filters(args.filter) or None,
        "size": args.size or None,
    }
    rows = client._t.get("/containers", params=params)
    if last > 0:
        rows = rows[:last]  # newest first
    if args.quiet:
        for r in rows:
            print(r["id"] if args.no_trunc else r["id"][:12])
        return 0
    fmt = listing_format(args.format)  # json: docker's line of JSON a row

    def cmdline(r: dict[str, Any]) -> str:
        c = " ".join(r.get("command") or [])
        c = json_dumps(c)
        return c if args.no_trunc or len(c) <= 22 else c[:19] + '…"'

    # A running pod member publishes the pod's ports (podman's PORTS column shows them);
    # one request for all pods, and only when a member is listed.
    pod_ports: dict[str, list[dict[str, Any]]] = {}
    if any(r.get("pod_id") and r.get("state") == "running" for r in rows):
        try:  # (not contextlib.suppress: contextlib is not otherwise imported by `ps`)
            pod_ports = {p["id"]: p.get("ports") or [] for p in client._t.get("/pods")}
        except errors.PodkitError:
            pass

    def ports(r: dict[str, Any]) -> str:
        own = r.get("ports") or []
        if not own and r.get("pod_id") and r.get("state") == "running":
            own = pod_ports.get(r["pod_id"], [])
        return _ports_text(own)

    if is_template(fmt):
        assert fmt is not None
        print_items(fmt, (ps_fields(r, cmdline(r), ports(r), args.no_trunc) for r in rows), PS_HEADERS)
        return 0

    table(
        (
            [
                r["id"] if args.no_trunc else r["id"][:12],
                r["image"].removeprefix("docker.io/library/"),
                cmdline(r),
                ago(r["created"]),
                r["status"],
                ports(r),
                r["name"],
            ]
            + ([_size_text(r)] if args.size else [])
            for r in rows
        ),
        ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
        + (["SIZE"] if args.size else []),
    )
    return 0


def _size_text(r: dict[str, Any]) -> str:
    """docker's SIZE: what the container wrote, and with its image's layers; 0B when
    not measured (its SizeRw is 0 then)."""
    if "size_rw" not in r:
        return "0B"
    return f"{human_size(r['size_rw'])} (virtual {human_size(r.get('size_root_fs'))})"


def cmd_stats(args: argparse.Namespace, client: Client) -> int:
    keys = ("ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs")

    def sample() -> list[tuple[Any, str]]:
        # Without names, every running container (-a: every one; stopped ones show
        # zeros, as docker's), listed anew each round so that new ones appear.
        refs = args.containers or [c.id for c in client.containers.list(all=args.all) if not c.infra]
        out = []
        for r in refs:
            try:
                out.append((client.containers.stats(r), r))
            except errors.NotFound:
                if args.containers:
                    raise
                # removed since it was listed
        return out

    fmt = listing_format(args.format)  # json: docker's line of JSON a container

    def show(stats: list[tuple[Any, str]]) -> None:
        fields = [stats_fields(s, ref, args.no_trunc) for s, ref in stats]
        if is_template(fmt):
            assert fmt is not None
            print_items(fmt, fields, STATS_HEADERS)
        else:
            table(([f[k] for k in keys] for f in fields), [STATS_HEADERS[k] for k in keys])

    if is_template(fmt):
        assert fmt is not None
        check_template(fmt)  # a bad one fails before the first request
    if args.no_stream:
        show(sample())
        return 0
    try:
        while True:
            stats = sample()
            sys.stdout.write("\x1b[2J\x1b[H")  # docker redraws the screen whatever the format
            show(stats)
            sys.stdout.flush()
            time.sleep(0.8)
    except KeyboardInterrupt:
        return 0


# docker's `stats --format` fields and headers
STATS_HEADERS = {
    "Container": "CONTAINER",
    "Name": "NAME",
    "ID": "CONTAINER ID",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}


def stats_fields(s: Any, ref: str, no_trunc: bool = False) -> dict[str, str]:
    mem_pct = 100.0 * s.memory_usage / s.memory_limit if s.memory_limit else 0.0
    return {
        "Container": ref,
        "Name": s.name,
        "ID": s.id if no_trunc else s.id[:12],
        "CPUPerc": f"{s.cpu_percent:.2f}%",
        "MemUsage": f"{human_size(s.memory_usage)} / {human_size(s.memory_limit)}",
        "MemPerc": f"{mem_pct:.2f}%",
        "NetIO": f"{human_size(s.net_rx)} / {human_size(s.net_tx)}",
        "BlockIO": f"{human_size(s.block_read)} / {human_size(s.block_write)}",
        "PIDs": str(s.pids),
    }


def cmd_top(args: argparse.Namespace, client: Client) -> int:
    t = _ops(client).top(args.container, " ".join(args.ps_args) or None)
    table(t["processes"], t["titles"])
    return 0


def cmd_port(args: argparse.Namespace, client: Client) -> int:
    ports = _ops(client).port(args.container)
    if not ports:
        # A pod's member publishes nothing itself: the pod's ports reach its shared
        # network namespace, so they are this container's ports too (as podman shows).
        info = _ops(client).inspect(args.container)
        if info.get("pod_id") and info.get("state") in ("running", "paused"):
            ports = client._t.get(f"/pods/{info['pod_id']}").get("ports") or []
    for p in ports:
        cp = f"{p.get('container_port')}/{p.get('protocol', 'tcp')}"
        if args.private_port and args.private_port not in (cp, str(p.get("container_port"))):
            continue
        print(f"{cp} -> {p.get('host_ip') or '0.0.0.0'}:{p.get('host_port')}")
    return 0


def cmd_prune(args: argparse.Namespace, client: Client) -> int:
    from podkit.prune import cli_filters

    removed = _ops(client).prune(filters=cli_filters(args.filter) or None)
    if removed:
        print("Deleted Containers:")
        for r in removed:
            print(r)
    print(f"Total reclaimed: {len(removed)} containers")
    return 0
