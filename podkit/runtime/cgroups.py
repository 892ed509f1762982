"""cgroups: which version the host runs, per-container/pod cgroups, stats, OOM.

podkit uses the cgroupfs driver: runc gets ``linux.cgroupsPath`` as a plain path
(``/podkit/<ns>/<id>``, or ``/podkit/pods/<pod>/<id>`` under a pod's cgroup) and
creates the container's cgroups itself. This module creates pod-level parents
with their limits, reads usage, tells whether the OOM killer struck, and removes
cgroups once empty.

Modes, decided at run time from what is mounted under ``/sys/fs/cgroup``:

- ``v2``: one unified hierarchy (most hosts today).
- ``hybrid``: v1 controllers plus a cgroup2 mount at ``unified`` that holds no
  controller we use (this build box) - handled as v1.
- ``v1``: one hierarchy per controller.

``CgroupManager(root=..., mode=..., v1_mounts=...)`` accepts an alternative root,
which is how the v2 code is tested on a fake tree of files.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podkit.errors import Conflict, InvalidArgument
from podkit.runtime import proc_identity

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP2_MAGIC = 0x63677270
# Controllers podkit reads or limits on v1 (runc handles the others).
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "freezer", "devices")
# Seconds a teardown retries a busy cgroup (its last processes still exiting).
REMOVE_SETTLE = 2.0
_UNLIMITED_V1 = 1 << 62  # memory.limit_in_bytes reads 9223372036854771712 when unset


def _is_cgroup2(path: Path) -> bool:
    """True if ``path`` is the root of a cgroup2 mount (cgroup.controllers at its top)."""
    try:
        return (path / "cgroup.controllers").exists() and not (path / "cgroup.clone_children").exists()
    except OSError:
        return False


def detect(root: Path = CGROUP_ROOT) -> str:
    """``"v2"``, ``"hybrid"`` or ``"v1"`` for the cgroup tree mounted at ``root``."""
    if _is_cgroup2(root):
        return "v2"
    if _is_cgroup2(root / "unified"):
        return "hybrid"
    return "v1"


def v1_mounts_from_mountinfo(text: str) -> dict[str, Path]:
    """controller -> mount point, from /proc/self/mountinfo (handles "cpu,cpuacct")."""
    out: dict[str, Path] = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(rfields) < 3 or rfields[0] != "cgroup" or len(fields) < 5:
            continue
        mountpoint = Path(fields[4].replace("\\040", " "))
        for opt in rfields[2].split(","):
            if opt in V1_CONTROLLERS or opt.startswith("name="):
                out.setdefault(opt, mountpoint)
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
        return None
    except OSError as e:
        if e.errno in (errno.ENODEV, errno.EINVAL, errno.EOPNOTSUPP):
            return None
        raise


def _read_int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _read_kv(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = int(parts[1])
    return out


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares (2..262144) -> v2 cpu.weight (1..10000), as runc converts."""
    if shares <= 0:
        return 100
    return 1 + ((max(2, min(shares, 262144)) - 2) * 9999) // 262142


@dataclass
class ParentLimits:
    """Limits for a parent (pod) cgroup."""

    memory: int | None = None
    cpus: float | None = None
    cpu_period: int = 100_000
    cpu_shares: int | None = None
    pids_limit: int | None = None


class CgroupManager:
    def __init__(
        self, root: Path = CGROUP_ROOT, mode: str | None = None, v1_mounts: dict[str, Path] | None = None
    ) -> None:
        self.root = Path(root)
        self.mode = mode or detect(self.root)
        if self.mode not in ("v1", "v2", "hybrid"):
            raise InvalidArgument(f"unknown cgroup mode {self.mode!r}")
        self._v1 = v1_mounts
        if self.mode != "v2" and v1_mounts is None:
            mounts = {}
            with contextlib.suppress(OSError):
                mounts = v1_mounts_from_mountinfo(Path("/proc/self/mountinfo").read_text())
            if not mounts or self.root != CGROUP_ROOT:
                mounts = {c: self.root / c for c in V1_CONTROLLERS if (self.root / c).is_dir()}
            self._v1 = mounts

    @property
    def unified(self) -> bool:
        return self.mode == "v2"

    # ---------------------------------------------------------------- paths

    def _rel(self, path: str) -> str:
        rel = os.path.normpath("/" + path.strip()).lstrip("/")
        if rel in ("", ".") or rel.startswith(".."):
            raise InvalidArgument(f"invalid cgroup path {path!r}")
        return rel

    def dir(self, path: str, controller: str | None = None) -> Path:
        """The directory of cgroup ``path`` (in ``controller``'s hierarchy on v1)."""
        rel = self._rel(path)
        if self.unified:
            return self.root / rel
        assert self._v1 is not None
        base = self._v1.get(controller or "memory")
        if base is None:
            return self.root / (controller or "memory") / rel
        return base / rel

    def hierarchies(self) -> list[Path]:
        """Every hierarchy a container's cgroup has a directory in."""
        if self.unified:
            return [self.root]
        assert self._v1 is not None
        out = set(self._v1.values())
        if self.mode == "hybrid":
            # runc also creates the container's cgroup in the hybrid cgroup2 tree.
            out.add(self.root / "unified")
        return sorted(out)

    def exists(self, path: str) -> bool:
        return any((h / self._rel(path)).is_dir() for h in self.hierarchies())

    # ------------------------------------------------------------- parents

    def create_parent(self, path: str, limits: ParentLimits | None = None) -> None:
        """Create a parent cgroup (a pod's) with its limits; containers go beneath it."""
        limits = limits or ParentLimits()
        rel = self._rel(path)
        if self.unified:
            self._v2_enable_controllers(rel)
            d = self.root / rel
            d.mkdir(parents=True, exist_ok=True)
            if limits.memory:
                _write(d / "memory.max", str(limits.memory))
            if limits.cpus:
                _write(d / "cpu.max", f"{int(limits.cpus * limits.cpu_period)} {limits.cpu_period}")
            if limits.cpu_shares:
                _write(d / "cpu.weight", str(shares_to_weight(limits.cpu_shares)))
            if limits.pids_limit and limits.pids_limit > 0:
                _write(d / "pids.max", str(limits.pids_limit))
            return
        for ctrl in ("memory", "cpu", "cpuacct", "pids", "cpuset"):
            base = (self._v1 or {}).get(ctrl)
            if base is None:
                continue
            d = base / rel
            if ctrl == "cpuset":
                self._v1_cpuset_mkdir(base, rel)
            else:
                d.mkdir(parents=True, exist_ok=True)
            if ctrl == "memory" and limits.memory:
                _write(d / "memory.limit_in_bytes", str(limits.memory))
            elif ctrl == "cpu":
                if limits.cpus:
                    _write(d / "cpu.cfs_period_us", str(limits.cpu_period))
                    _write(d / "cpu.cfs_quota_us", str(int(limits.cpus * limits.cpu_period)))
                if limits.cpu_shares:
                    _write(d / "cpu.shares", str(limits.cpu_shares))
            elif ctrl == "pids" and limits.pids_limit and limits.pids_limit > 0:
                _write(d / "pids.max", str(limits.pids_limit))

    def _v1_cpuset_mkdir(self, base: Path, rel: str) -> None:
        # A new v1 cpuset is unusable until cpus and mems are set: copy them down.
        cur = base
        for part in Path(rel).parts:
            parent, cur = cur, cur / part
            if not cur.is_dir():
                cur.mkdir()
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not (_read(cur / f) or "").strip():
                    value = (_read(parent / f) or "").strip()
                    if value:
                        _write(cur / f, value)

    def _v2_enable_controllers(self, rel: str) -> None:
        available = set((_read(self.root / "cgroup.controllers") or "").split())
        wanted = [c for c in ("cpu", "memory", "pids", "io") if c in available]
        cur = self.root
        for part in Path(rel).parts:
            enabled = set((_read(cur / "cgroup.subtree_control") or "").split())
            missing = [c for c in wanted if c not in enabled]
            if missing:
                try:
                    _write(cur / "cgroup.subtree_control", " ".join("+" + c for c in missing))
                except OSError as e:
                    log.debug("cannot enable %s in %s: %s", missing, cur, e)
            cur = cur / part
            cur.mkdir(exist_ok=True)

    def update_parent(self, path: str, limits: ParentLimits) -> None:
        self.create_parent(path, limits)

    def add_process(self, path: str, pid: int) -> None:
        """Move ``pid`` into cgroup ``path`` (created as needed) in every hierarchy.

        v1's cpuset is left alone: a fresh cpuset needs cpus/mems filled in first,
        and staying in the parent's cpuset is harmless for a monitor process.
        """
        rel = self._rel(path)
        cpuset = (self._v1 or {}).get("cpuset")
        for h in self.hierarchies():
            if h == cpuset:
                continue
            d = h / rel
            try:  # the monitors' cgroup is there but for the first conmon: no mkdir
                _write(d / "cgroup.procs", str(pid))
            except FileNotFoundError:
                d.mkdir(parents=True, exist_ok=True)
                _write(d / "cgroup.procs", str(pid))

    def ancestor_cpu_limit(self, path: str) -> float | None:
        """The tightest CPU limit (in CPUs) of ``path``'s existing ancestors, v1 only.

        cgroup v1 refuses a child quota above its parent's (EINVAL), v2 does not.
        """
        if self.unified:
            return None
        base = (self._v1 or {}).get("cpu")
        if base is None:
            return None
        best: float | None = None
        for anc in Path(self._rel(path)).parents:
            if str(anc) == ".":
                break
            d = base / anc
            quota = _read_int(d / "cpu.cfs_quota_us")
            period = _read_int(d / "cpu.cfs_period_us")
            if quota and quota > 0 and period:
                limit = quota / period
                best = limit if best is None else min(best, limit)
        return best

    # ------------------------------------------------------------- removal

    def remove(self, path: str, settle: float = 0.0, kill: bool = False) -> None:
        """Remove cgroup ``path`` and its children (leaf first); Conflict naming one
        that keeps processes.

        A teardown removes the cgroup of a container or pod whose processes were just
        killed: one that has not finished exiting keeps its cgroup busy for a moment (a
        loaded host; a shared pid namespace, whose members are killed one by one). It
        passes ``settle`` (seconds to retry busy cgroups) and ``kill`` (SIGKILL what is
        still in them: what is left of what is being removed, as runc delete --force
        kills it).
        """
        rel = self._rel(path)
        deadline = time.monotonic() + settle
        pause = 0.005
        while True:
            busy = self._remove_tree(rel)
            if not busy:
                return
            if time.monotonic() >= deadline:
                raise Conflict(f"cgroup {path} still has processes ({busy[0]})")
            if kill:
                for d in busy:
                    _kill_procs(d, self._path_in_hierarchy(d))
            time.sleep(pause)  # a poll of the kernel's state, in a worker thread
            pause = min(pause * 2, 0.1)

    def _path_in_hierarchy(self, cgroup_dir: str) -> str:
        """``/a/b`` of ``<hierarchy>/a/b``: the path ``/proc/<pid>/cgroup`` names it by."""
        d = Path(cgroup_dir)
        h = max((h for h in self.hierarchies() if d.is_relative_to(h)), key=lambda h: len(h.parts))
        return "/" + str(d.relative_to(h)).removeprefix(".")

    def _remove_tree(self, rel: str) -> list[str]:
        """rmdir every hierarchy's ``rel`` subtree, leaf first; the busy dirs left."""
        busy: list[str] = []
        for h in self.hierarchies():
            top = h / rel
            if not top.is_dir():
                continue
            dirs = [Path(dp) for dp, _, _ in os.walk(top)]
            for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as e:
                    if e.errno == errno.EBUSY:
                        busy.append(str(d))
                    elif e.errno != errno.ENOTEMPTY:
                        raise
        return busy

    def remove_empty_parents(self, path: str, stop_at: str) -> None:
        """rmdir ``path``'s ancestors up to (not including) ``stop_at`` while they are empty."""
        rel = Path(self._rel(path))
        stop = Path(self._rel(stop_at))
        for h in self.hierarchies():
            cur = rel.parent
            while cur != stop and stop in cur.parents:
                try:
                    (h / cur).rmdir()
                except OSError:
                    break
                cur = cur.parent

    # ------------------------------------------------------------- reading

    def pids(self, path: str) -> list[int]:
        d = self.dir(path, "pids") if not self.unified else self.dir(path)
        text = _read(d / "cgroup.procs")
        if text is None and not self.unified:
            text = _read(self.dir(path, "memory") / "cgroup.procs")
        return [int(x) for x in (text or "").split()]

    def oom_kills(self, path: str) -> int:
        """How many processes the OOM killer killed in the cgroup (0 if unknown)."""
        if self.unified:
            ev = _read_kv(self.dir(path) / "memory.events")
            return ev.get("oom_kill", 0)
        ctl = _read_kv(self.dir(path, "memory") / "memory.oom_control")
        if "oom_kill" in ctl:
            return ctl["oom_kill"]
        return 1 if ctl.get("under_oom") else 0

    def oom_killed(self, path: str) -> bool:
        return self.oom_kills(path) > 0

    def stats(self, path: str) -> dict[str, Any]:
        """Usage of cgroup ``path``: cpu (ns), memory (bytes), pids, block I/O (bytes).

        Missing files (a controller not mounted, not enabled) give None values.
        """
        return self._stats_v2(path) if self.unified else self._stats_v1(path)

    def _stats_v1(self, path: str) -> dict[str, Any]:
        cpu = self.dir(path, "cpuacct")
        mem = self.dir(path, "memory")
        pids = self.dir(path, "pids")
        blk = self.dir(path, "blkio")
        cpu_stat = _read_kv(cpu / "cpuacct.stat")
        ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        mstat = _read_kv(mem / "memory.stat")
        usage = _read_int(mem / "memory.usage_in_bytes")
        limit = _read_int(mem / "memory.limit_in_bytes")
        if limit is not None and limit >= _UNLIMITED_V1:
            limit = None
        inactive = mstat.get("total_inactive_file", mstat.get("inactive_file", 0))
        rd = wr = 0
        for name in (
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes",
            "blkio.io_service_bytes_recursive",
        ):
            text = _read(blk / name)
            if text is None:
                continue
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 3 and parts[2].isdigit():
                    if parts[1] == "Read":
                        rd += int(parts[2])
                    elif parts[1] == "Write":
                        wr += int(parts[2])
            break
        pmax = _read_int(pids / "pids.max")
        return {
            "cpu": {
                "usage_ns": _read_int(cpu / "cpuacct.usage"),
                "user_ns": cpu_stat.get("user", 0) * 1_000_000_000 // ticks if cpu_stat else None,
                "system_ns": cpu_stat.get("system", 0) * 1_000_000_000 // ticks if cpu_stat else None,
            },
            "memory": {
                "usage": usage,
                "working_set": max(0, usage - inactive) if usage is not None else None,
                "limit": limit,
                "cache": mstat.get("total_cache", mstat.get("cache")),
                "rss": mstat.get("total_rss", mstat.get("rss")),
                "max_usage": _read_int(mem / "memory.max_usage_in_bytes"),
                "failcnt": _read_int(mem / "memory.failcnt"),
                "oom_kills": self.oom_kills(path),
            },
            "pids": {"current": _read_int(pids / "pids.current"), "limit": pmax},
            "blkio": {"read_bytes": rd, "write_bytes": wr},
        }

    def _stats_v2(self, path: str) -> dict[str, Any]:
        d = self.dir(path)
        cpu = _read_kv(d / "cpu.stat")
        mstat = _read_kv(d / "memory.stat")
        usage = _read_int(d / "memory.current")
        rd = wr = 0
        for line in (_read(d / "io.stat") or "").splitlines():
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                if k == "rbytes" and v.isdigit():
                    rd += int(v)
                elif k == "wbytes" and v.isdigit():
                    wr += int(v)
        inactive = mstat.get("inactive_file", 0)
        events = _read_kv(d / "memory.events")
        return {
            "cpu": {
                "usage_ns": cpu["usage_usec"] * 1000 if "usage_usec" in cpu else None,
                "user_ns": cpu["user_usec"] * 1000 if "user_usec" in cpu else None,
                "system_ns": cpu["system_usec"] * 1000 if "system_usec" in cpu else None,
            },
            "memory": {
                "usage": usage,
                "working_set": max(0, usage - inactive) if usage is not None else None,
                "limit": _read_int(d / "memory.max"),
                "cache": mstat.get("file"),
                "rss": mstat.get("anon"),
                "max_usage": _read_int(d / "memory.peak"),
                "failcnt": events.get("max"),
                "oom_kills": events.get("oom_kill", 0),
            },
            "pids": {"current": _read_int(d / "pids.current"), "limit": _read_int(d / "pids.max")},
            "blkio": {"read_bytes": rd, "write_bytes": wr},
        }


def _kill_procs(cgroup_dir: str, path: str) -> None:
    """SIGKILL the processes listed in one cgroup dir (``path`` in its hierarchy), each
    through a pidfd and only while it is still in that cgroup: a pid read from
    cgroup.procs may have been reaped and reused since (gone ones are skipped)."""
    text = _read(Path(cgroup_dir) / "cgroup.procs") or ""
    for pid in text.split():
        try:
            proc_identity.send(int(pid), signal.SIGKILL, _in_cgroup(path), f"process of cgroup {cgroup_dir}")
        except (OSError, ValueError) as e:
            log.warning("cgroup %s: killing leftover process %s: %s", cgroup_dir, pid, e)


def _in_cgroup(path: str) -> proc_identity.Check:
    """A process in the cgroup ``path`` (of any of the hierarchies it lists)."""

    def check(pid: int) -> str | None:
        with open(f"/proc/{pid}/cgroup") as f:
            if any(line.rstrip("\n").split(":", 2)[-1] == path for line in f):
                return None
        return f"pid {pid} is no longer in cgroup {path}"

    return check
