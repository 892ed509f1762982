"""Inspection: a container's view (``ps``, ``inspect``), its logs, stats, processes, ports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from podkit.containers.context import ACTIVE, ContainerContext, original_name, snap_key
from podkit.containers.logs import Entry, LogReader, parse_since
from podkit.containers.networking import cgroupns_mode
from podkit.containers.process_root import ProcessRoot, read_in_process
from podkit.containers.store import Record
from podkit.errors import Conflict, InvalidArgument, NotFound, PodkitError

log = logging.getLogger(__name__)


def sizes(ctx: ContainerContext, r: Record) -> dict[str, int]:
    """docker's ``SizeRw`` (what the container wrote: its snapshot's own tree) and
    ``SizeRootFs`` (that plus its image's unpacked layers). Measured on demand (``ps -s``):
    a walk of the writable layer."""
    try:
        rw = ctx.snapshots.usage(snap_key(r.id)).size
    except PodkitError as e:  # removed meanwhile, or made by a failed create
        log.info("container %s: no size of its writable layer: %s", r.id[:12], e.message)
        rw = 0
    try:
        base = ctx.images.unpacked_size(ctx.images.get(r.namespace, r.image_id))
    except PodkitError as e:  # the image is gone (rmi -f)
        log.info("container %s: no size of image %s: %s", r.id[:12], r.image, e.message)
        base = 0
    return {"size_rw": rw, "size_root_fs": rw + base}


async def inspect(ctx: ContainerContext, ns: str, ref: str, size: bool = False) -> dict[str, Any]:
    rec = ctx.resolve(ns, ref)
    d = view(ctx, rec, full=True)
    if size:
        d.update(await asyncio.to_thread(sizes, ctx, rec))
    return d


async def measure(ctx: ContainerContext, ns: str, ref: str) -> dict[str, int]:
    return await asyncio.to_thread(sizes, ctx, ctx.resolve(ns, ref))


async def listing(
    ctx: ContainerContext, ns: str, all: bool, filters: dict[str, list[str]], size: bool = False
) -> list[dict[str, Any]]:
    """``ps``: the views of the selected containers, with ``size`` their sizes (``ps -s``)."""
    recs = select(ctx, ns, all, filters)
    out = [view(ctx, r) for r in recs]
    if size:
        for d, r in zip(out, recs, strict=True):
            d.update(await asyncio.to_thread(sizes, ctx, r))
    return out


def view(ctx: ContainerContext, r: Record, full: bool = False) -> dict[str, Any]:
    cfg = r.config
    live = r.state in ("running", "paused")
    d: dict[str, Any] = {
        "id": r.id,
        "name": original_name(r.name),
        "image": r.image,
        "image_id": r.image_id,
        "state": r.state,
        "status": status(r),
        "created": r.created,
        "pid": r.pid,
        "exit_code": r.exit_code,
        "oom_killed": r.oom_killed,
        "error": r.error,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "restart_count": r.restart_count,
        "labels": r.labels,
        "pod_id": r.pod_id,
        "infra": r.infra,
        "command": (cfg.get("entrypoint") or []) + (cfg.get("cmd") or []),
        "ports": ((r.network or {}).get("ports") or []) if live else [],
        # what `ps --format '{{.Networks}} {{.Mounts}}'` shows, from the config alone
        "networks": [cfg.get("network") or "bridge", *(cfg.get("networks") or [])],
        "mounts": [
            {"type": m.get("type", ""), "source": m.get("source", ""), "target": m.get("target", "")}
            for m in cfg.get("mounts") or []
        ],
    }
    if ctx.health is not None and (cfg.get("healthcheck") or {}).get("test", ["NONE"])[0] != "NONE":
        d["health"] = ctx.health.state(r.id) if live else None
        if live and d["health"]:
            d["status"] += f" ({d['health']['Status'].replace('starting', 'health: starting')})"
    if full:
        d["config"] = cfg
        # Addresses and the netns belong to a running container only: once it has
        # ended they are released and may already be another container's.
        d["network"] = r.network if live else {"mode": (r.network or {}).get("mode")}
        d["namespace"] = r.namespace
        d["restart_policy"] = cfg.get("restart")
        d["log_path"] = str(ctx.log_file(r))
        d["bundle"] = str(ctx.bundle(r.id))
        d["mounts"] = [
            {
                **m,
                "host_path": str(ctx.volumes.path(r.namespace, m["source"]))
                if m.get("type") == "volume"
                else m.get("source"),
            }
            for m in cfg.get("mounts") or []
        ]
        d["manually_stopped"] = r.manually_stopped
        d["links"] = links_view(ctx, r)
        d["cgroupns"] = cgroupns_mode(str(cfg.get("cgroupns") or ""), bool(r.pod_id or cfg.get("namespaces")))
    return d


def links_view(ctx: ContainerContext, r: Record) -> list[str]:
    """``--link``s as docker shows them, ``/target:/me/alias`` (podkit keeps the target's id)."""
    out = []
    for link in r.config.get("links") or []:
        cid, _, alias = str(link).partition(":")
        other = ctx.store.get(cid)
        out.append(f"/{original_name(other.name) if other else cid[:12]}:/{original_name(r.name)}/{alias}")
    return out


# ------------------------------------------------------------------ ps filters
def _has_labels(r: Record, values: list[str]) -> bool:
    def has(x: str) -> bool:
        k, eq, v = x.partition("=")
        return k in r.labels and (not eq or r.labels[k] == v)

    return all(has(x) for x in values)


def _of_image(r: Record, values: list[str]) -> bool:
    return any(
        v in (r.image, r.image_id) or r.image.startswith(v) or _familiar_match(r.image, v) for v in values
    )


def _familiar_match(image: str, v: str) -> bool:
    short = image.removeprefix("docker.io/library/").removeprefix("docker.io/")
    return short == v or short.split(":")[0] == v


_FILTERS: dict[str, Callable[[Record, list[str]], bool]] = {
    "id": lambda r, vs: any(r.id.startswith(v) for v in vs),
    "name": lambda r, vs: any(v.lstrip("/") in r.name for v in vs),
    "status": lambda r, vs: r.state in vs,
    "exited": lambda r, vs: r.state == "exited" and str(r.exit_code) in vs,
    "label": _has_labels,
    "ancestor": _of_image,
    "pod": lambda r, vs: bool(r.pod_id) and any((r.pod_id or "").startswith(v) for v in vs),
    "infra": lambda r, vs: r.infra == (vs[-1].lower() in ("1", "true")),
}


def select(ctx: ContainerContext, ns: str, all: bool, filters: dict[str, list[str]]) -> list[Record]:
    """``ps``: the running containers (all with ``all``), infra containers only when asked."""
    for key in filters:
        if key not in _FILTERS:
            raise InvalidArgument(
                f"invalid filter {key!r}: use id, name, label, status, exited, ancestor, pod or infra"
            )
    recs = ctx.store.list(ns)
    if not all and "status" not in filters and "exited" not in filters:
        recs = [r for r in recs if r.state in ("running", "paused", "restarting")]
    if not filters.get("infra") and "pod" not in filters and "id" not in filters and not all:
        recs = [r for r in recs if not r.infra]
    for key, values in filters.items():
        keep = _FILTERS[key]
        recs = [r for r in recs if keep(r, values)]
    return recs


# ------------------------------------------------------------------------ logs
async def logs(
    ctx: ContainerContext,
    ns: str,
    ref: str,
    *,
    follow: bool = False,
    since: str | float | None = None,
    until: str | float | None = None,
    tail: int | None = None,
    streams: tuple[str, ...] = ("stdout", "stderr"),
    wanted: Callable[[], bool] | None = None,
) -> AsyncIterator[Entry]:
    """Log entries; with ``follow``, until the container stops (or ``wanted()`` turns false:
    the client went away)."""
    rec = ctx.resolve(ns, ref)
    s, u = parse_since(since), parse_since(until)
    reader = LogReader(ctx.log_file(rec))
    if not follow:
        entries = await asyncio.to_thread(reader.read, since=s, until=u, tail=tail, streams=streams)

        async def gen() -> AsyncIterator[Entry]:
            for e in entries:
                yield e

        return gen()

    def running() -> bool:
        if wanted is not None and not wanted():
            return False
        r = ctx.store.get(rec.id)
        return r is not None and r.state in ACTIVE

    return reader.follow(since=s, until=u, tail=tail, streams=streams, running=running)


async def reopen_log(ctx: ContainerContext, ns: str, ref: str) -> None:
    """conmon closes and reopens the log file (the kubelet renamed it to rotate)."""
    rec = ctx.resolve(ns, ref)
    if rec.state not in ("running", "paused"):
        raise Conflict(f"container {rec.name} is not running")
    await ctx.rt.reopen_log(rec.id)
    # conmon reads its control fifo on its own time; the kubelet expects the new
    # file once the call returns, so answer when conmon has made it (or give up).
    path = ctx.log_file(rec)
    deadline = time.monotonic() + 5.0
    while not path.exists() and time.monotonic() < deadline:
        if not ctx.rt.conmon_alive(rec.id):
            raise Conflict(f"container {rec.name} is not running")
        await asyncio.sleep(0.005)


# ----------------------------------------------------------- stats, top, port
async def stats(
    ctx: ContainerContext, ns: str, ref: str, prev: dict[str, Any] | None = None
) -> dict[str, Any]:
    rec = ctx.resolve(ns, ref)
    out: dict[str, Any] = {
        "id": rec.id,
        "name": rec.name,
        "state": rec.state,
        "read": time.time(),
        "cpu_usage": 0,
        "memory_usage": 0,
        "memory_limit": 0,
        "pids": 0,
        "block_read": 0,
        "block_write": 0,
        "net_rx": 0,
        "net_tx": 0,
        "cpu_percent": 0.0,
        "memory_percent": 0.0,
    }
    if rec.state not in ("running", "paused"):
        return out
    st = await ctx.rt.stats(rec.id)
    out.update({k: v for k, v in st.items() if k in out or k.startswith("cpu") or k.startswith("mem")})
    if rec.pid:
        rx, tx = await asyncio.to_thread(_net_dev, ctx.rt.process(rec.id, rec.pid))
        out["net_rx"], out["net_tx"] = rx, tx
    if not out["memory_limit"]:
        out["memory_limit"] = _host_memory()
    if out["memory_limit"]:
        out["memory_percent"] = 100.0 * out["memory_usage"] / out["memory_limit"]
    if prev and prev.get("cpu_usage") is not None:
        dt = out["read"] - prev["read"]
        if dt > 0:
            out["cpu_percent"] = 100.0 * (out["cpu_usage"] - prev["cpu_usage"]) / 1e9 / dt
    return out


async def top(ctx: ContainerContext, ns: str, ref: str, ps_args: str | None = None) -> dict[str, Any]:
    """``ps`` on the host, narrowed to the container's processes."""
    rec = ctx.resolve(ns, ref)
    if rec.state not in ("running", "paused"):
        raise Conflict(f"container {rec.name} is not running")
    pids = set(await ctx.rt.ps(rec.id))
    try:
        args = shlex.split(ps_args) if ps_args else ["-ef"]
    except ValueError as e:
        raise InvalidArgument(f"invalid ps options {ps_args!r}: {e}") from None
    proc = await asyncio.create_subprocess_exec(
        "ps", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise InvalidArgument(f"ps {' '.join(args)} failed: {err.decode().strip()}")
    lines = out.decode(errors="replace").splitlines()
    if not lines:
        return {"titles": [], "processes": []}
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument("ps output has no PID column: add -o pid to ps_args")
    pi = titles.index("PID")
    procs = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > pi and fields[pi].isdigit() and int(fields[pi]) in pids:
            procs.append(fields)
    return {"titles": titles, "processes": procs}


def ports(rec: Record) -> list[dict[str, Any]]:
    if rec.state not in ("running", "paused"):
        return []
    return list((rec.network or {}).get("ports") or [])


def status(r: Record) -> str:
    """``ps``'s STATUS column: ``Up 5 minutes``, ``Exited (0) 2 hours ago``..."""
    from podkit.containers.restart import human_duration

    now = time.time()
    if r.state == "running":
        return f"Up {human_duration(now - (r.started_at or now))}"
    if r.state == "paused":
        return f"Up {human_duration(now - (r.started_at or now))} (Paused)"
    if r.state == "restarting":
        return f"Restarting ({r.exit_code}) {human_duration(now - (r.finished_at or now))} ago"
    if r.state == "exited":
        return f"Exited ({r.exit_code}) {human_duration(now - (r.finished_at or now))} ago"
    if r.state == "created":
        return "Created"
    return r.state.capitalize()


def _net_dev(proc: ProcessRoot) -> tuple[int, int]:
    """Bytes received and sent by the container's interfaces but lo (0, 0 if it is gone,
    its pid reused included: another process's counters are not the container's)."""
    rx = tx = 0
    with contextlib.suppress(NotFound, ValueError, IndexError):
        for line in read_in_process(proc, "net/dev").decode("ascii", "replace").splitlines()[2:]:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                continue
            f = rest.split()
            rx += int(f[0])
            tx += int(f[8])
    return rx, tx


def _host_memory() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0
