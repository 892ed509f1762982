"""Listing and looking into containers: ps, stats, top, port, container prune."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from podkit import errors
from podkit.cli.container_inspect import iso_time
from podkit.cli.container_ops import container_ops as _ops
from podkit.cli.output import ago, human_size, print_json, render_template, table

if TYPE_CHECKING:
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
    if args.format == "json":
        print_json(rows)
        return 0

    def cmdline(r: dict[str, Any]) -> str:
        c = " ".join(r.get("command") or [])
        c = json.dumps(c)
        return c if args.no_trunc or len(c) <= 22 else c[:19] + '…"'

    # A running pod member publishes the pod's ports (podman's PORTS column shows them);
    # one request for all pods, and only when a member is listed.
    pod_ports: dict[str, list[dict[str, Any]]] = {}
    if any(r.get("pod_id") and r.get("state") == "running" for r in rows):
        with contextlib.suppress(errors.PodkitError):
            pod_ports = {p["id"]: p.get("ports") or [] for p in client._t.get("/pods")}

    def ports(r: dict[str, Any]) -> str:
        own = r.get("ports") or []
        if not own and r.get("pod_id") and r.get("state") == "running":
            own = pod_ports.get(r["pod_id"], [])
        return _ports_text(own)

    if args.format not in ("table", None):
        for r in rows:
            # The field names of `docker ps --format`.
            fields = {
                "ID": r["id"] if args.no_trunc else r["id"][:12],
                "Image": r["image"].removeprefix("docker.io/library/"),
                "Command": cmdline(r),
                "CreatedAt": iso_time(r.get("created")),
                "RunningFor": ago(r.get("created")),
                "Ports": ports(r),
                "State": r.get("state", ""),
                "Status": r.get("status", ""),
                "Names": r["name"],
                "Labels": ",".join(f"{k}={v}" for k, v in (r.get("labels") or {}).items()),
                "Pod": (r.get("pod_id") or "")[:12],
                "Size": _size_text(r),
            }
            print(render_template(args.format, fields))
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
    """docker's SIZE: what the container wrote, and with its image's layers."""
    if "size_rw" not in r:
        return ""
    return f"{human_size(r['size_rw'])} (virtual {human_size(r.get('size_root_fs'))})"


def cmd_stats(args: argparse.Namespace, client: Client) -> int:
    headers = ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"]

    def sample() -> list[Any]:
        # Without names, every running container (-a: every one; stopped ones show
        # zeros, as docker's), listed anew each round so that new ones appear.
        refs = args.containers or [c.id for c in client.containers.list(all=args.all) if not c.infra]
        out = []
        for r in refs:
            try:
                out.append(client.containers.stats(r))
            except errors.NotFound:
                if args.containers:
                    raise
                # removed since it was listed
        return out

    def row(s: Any) -> list[str]:
        mem_pct = 100.0 * s.memory_usage / s.memory_limit if s.memory_limit else 0.0
        return [
            s.id if args.no_trunc else s.id[:12],
            s.name,
            f"{s.cpu_percent:.2f}%",
            f"{human_size(s.memory_usage)} / {human_size(s.memory_limit)}",
            f"{mem_pct:.2f}%",
            f"{human_size(s.net_rx)} / {human_size(s.net_tx)}",
            f"{human_size(s.block_read)} / {human_size(s.block_write)}",
            str(s.pids),
        ]

    if args.no_stream:
        stats = sample()
        if args.format == "json":
            print_json([s.raw for s in stats])
        else:
            table((row(s) for s in stats), headers)
        return 0
    try:
        while True:
            stats = sample()
            if args.format == "json":
                print(json.dumps([s.raw for s in stats]), flush=True)
            else:
                sys.stdout.write("\x1b[2J\x1b[H")
                table((row(s) for s in stats), headers)
                sys.stdout.flush()
            time.sleep(0.8)
    except KeyboardInterrupt:
        return 0


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
    removed = _ops(client).prune()
    if removed:
        print("Deleted Containers:")
        for r in removed:
            print(r)
    print(f"Total reclaimed: {len(removed)} containers")
    return 0
