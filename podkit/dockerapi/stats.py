"""``GET /containers/{id}/stats``: resource usage in docker's shape (so ``docker
stats`` computes its percentages from it), streamed every second or one-shot."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import Any

from aiohttp import web

from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import NAMESPACE, containers, flag, rfc3339
from podkit.dockerapi.containers import _resolve

routes = Routes()
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _system_cpu_ns() -> int:
    """The host's total CPU time (all CPUs, all modes but guest), in ns, as docker reads it."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu "):
                    ticks = sum(int(x) for x in line.split()[1:8])
                    return ticks * 1_000_000_000 // _CLK_TCK
    return 0


def _cpu_block(s: dict[str, Any] | None, system: int) -> dict[str, Any]:
    s = s or {}
    return {
        "cpu_usage": {
            "total_usage": int(s.get("cpu_usage") or 0),
            "usage_in_kernelmode": int(s.get("cpu_system") or 0),
            "usage_in_usermode": int(s.get("cpu_user") or 0),
        },
        "system_cpu_usage": system,
        "online_cpus": os.cpu_count() or 1,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def _sample(cur: dict[str, Any], cur_sys: int, prev: dict[str, Any] | None, prev_sys: int) -> dict[str, Any]:
    running = cur.get("state") in ("running", "paused")
    return {
        "name": "/" + str(cur.get("name") or ""),
        "id": cur.get("id"),
        "read": rfc3339(cur.get("read")),
        "preread": rfc3339(prev.get("read")) if prev else "0001-01-01T00:00:00Z",
        "pids_stats": {"current": int(cur.get("pids") or 0)} if running else {},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": int(cur.get("block_read") or 0)},
                {"major": 0, "minor": 0, "op": "write", "value": int(cur.get("block_write") or 0)},
            ]
            if running
            else None
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu_block(cur if running else None, cur_sys if running else 0),
        "precpu_stats": _cpu_block(prev, prev_sys) if prev else _cpu_block(None, 0),
        "memory_stats": {
            "usage": int(cur.get("memory_usage") or 0),
            "limit": int(cur.get("memory_limit") or 0),
            "stats": {},
        }
        if running
        else {},
        "networks": {
            "eth0": {
                "rx_bytes": int(cur.get("net_rx") or 0),
                "rx_packets": 0,
                "rx_errors": 0,
                "rx_dropped": 0,
                "tx_bytes": int(cur.get("net_tx") or 0),
                "tx_packets": 0,
                "tx_errors": 0,
                "tx_dropped": 0,
            }
        }
        if running
        else None,
    }


@routes.get("/containers/{id}/stats")
async def container_stats(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    svc = containers(request)
    stream = flag(request, "stream", True)
    one_shot = flag(request, "one-shot")
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    prev: dict[str, Any] | None = None
    prev_sys = 0
    try:
        if not stream and not one_shot:
            # docker's one sample carries the reading of a moment before in precpu_stats.
            prev, prev_sys = await svc.stats(NAMESPACE, rec.id), _system_cpu_ns()
            await asyncio.sleep(0.5)
        while True:
            cur, cur_sys = await svc.stats(NAMESPACE, rec.id), _system_cpu_ns()
            await resp.write(json.dumps(_sample(cur, cur_sys, prev, prev_sys)).encode() + b"\n")
            if not stream or cur.get("state") not in ("running", "paused"):
                break
            prev, prev_sys = cur, cur_sys
            next_at = time.monotonic() + 1.0
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await resp.write_eof()
    except ConnectionResetError:
        pass
    return resp
