"""Which processes belong to a pod and its containers, from cgroupfs and /proc, and
`ps` over them. (Usage figures come from the runtime's cgroup manager.)

Works on cgroup v1 (the pids or memory hierarchy) and v2 (one unified tree), decided
per call by what is mounted.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.containers.process_root import ProcessRoot, read_in_process
from podkit.errors import NotFound

if TYPE_CHECKING:
    from podkit.containers.runtime_driver import RuntimeDriver
    from podkit.containers.store import Record

CGROUP = Path("/sys/fs/cgroup")


def is_v2() -> bool:
    return (CGROUP / "cgroup.controllers").exists()


def _dir(controller: str, rel: str) -> Path:
    rel = rel.strip("/")
    return CGROUP / rel if is_v2() else CGROUP / controller / rel


def cgroup_of(proc: ProcessRoot) -> str:
    """The cgroup path of a container's process (v2, or v1's memory hierarchy), "" if it
    is gone: its pid reused included (another process's cgroup, the host's root maybe,
    would count its processes as the container's)."""
    try:
        text = read_in_process(proc, "cgroup").decode("utf-8", "replace")
    except NotFound:
        return ""
    return cgroup_from_text(text, is_v2())


def cgroup_from_text(text: str, v2: bool) -> str:
    """The path in a /proc/<pid>/cgroup text: the v2 line, or v1's memory line."""
    for line in text.splitlines():
        _, ctrls, path = line.split(":", 2)
        if (v2 and ctrls == "") or (not v2 and "memory" in ctrls.split(",")):
            return path
    return ""


def container_cgroup(rt: RuntimeDriver, rec: Record) -> str:
    return cgroup_of(rt.process(rec.id, rec.pid)) if rec.pid and rec.state == "running" else ""


def cpu_percent(prev: dict[str, tuple[float, float]], key: str, now: float, usage_ns: int | None) -> float:
    """CPU use since the last sample of ``key``, in percent of one CPU."""
    if usage_ns is None:
        return 0.0
    last = prev.get(key)
    prev[key] = (now, float(usage_ns))
    if last is None or now <= last[0]:
        return 0.0
    return max(0.0, (usage_ns - last[1]) / ((now - last[0]) * 1e9) * 100.0)


def procs_under(rel: str) -> list[int]:
    """Every process in a cgroup and its descendants."""
    if not rel:
        return []
    base = _dir("pids", rel) if not is_v2() else CGROUP / rel.strip("/")
    if not base.exists():
        base = _dir("memory", rel)
    out: list[int] = []
    for dirpath, _, names in os.walk(base):
        if "cgroup.procs" in names:
            try:
                out += [int(x) for x in Path(dirpath, "cgroup.procs").read_text().split()]
            except (OSError, ValueError):
                continue
    return sorted(set(out))


async def top(rt: RuntimeDriver, pod_cgroup: str, members: list[Record], ps_args: str = "") -> dict[str, Any]:
    """`ps` over the pod's processes, with a CONTAINER column naming each one's container."""
    owner: dict[int, str] = {}
    for r in members:
        cg = container_cgroup(rt, r)
        for p in procs_under(cg) if cg else []:
            owner[p] = r.name
    pids = set(owner) | set(procs_under(pod_cgroup))
    args = ps_args.split() if ps_args.strip() else ["-o", "user,pid,ppid,c,stime,tty,time,args"]
    if ps_args.strip() and not any(a.startswith("-") or a in ("aux", "ax") for a in args):
        args = ["-o", ps_args.strip()]
    if not any(a in ("-e", "-A", "ax", "aux") for a in args):
        args = ["-e", *args]
    proc = await asyncio.create_subprocess_exec(
        "ps", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        from podkit.errors import InvalidArgument

        raise InvalidArgument(f"ps {' '.join(args)} failed: {err.decode().strip()}")
    lines = out.decode().splitlines()
    if not lines:
        return {"titles": [], "processes": []}
    titles = lines[0].split()
    try:
        pid_col = titles.index("PID")
    except ValueError:
        from podkit.errors import InvalidArgument

        raise InvalidArgument("ps options must include the PID column") from None
    rows = []
    for line in lines[1:]:
        cols = line.split(None, len(titles) - 1)
        try:
            pid = int(cols[pid_col])
        except (ValueError, IndexError):
            continue
        if pid in pids:
            rows.append([owner.get(pid, "(pod)"), *cols])
    return {"titles": ["CONTAINER", *titles], "processes": rows}
