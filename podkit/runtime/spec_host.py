"""What the host lets a container have: our own capabilities and limits, which the
spec is clamped to rather than failing in runc (without CAP_SYS_RESOURCE, say)."""

from __future__ import annotations

import logging
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.errors import InvalidArgument
from podkit.runtime.spec_defaults import ALL_CAPS, RLIMIT_NAMES

if TYPE_CHECKING:
    from podkit.runtime.spec_options import Ulimit

log = logging.getLogger(__name__)


def _has_cap(cap_number: int) -> bool:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> cap_number & 1)
    except OSError:
        pass
    return False


def has_sys_resource() -> bool:
    return _has_cap(24)


def swap_accounting() -> bool:
    """Whether a swap limit can be set (v1 needs memory.memsw.*; v2 has memory.swap.max)."""
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return True
    return (root / "memory" / "memory.memsw.limit_in_bytes").exists()


def _own_oom_score_adj() -> int:
    try:
        return int(Path("/proc/self/oom_score_adj").read_text())
    except (OSError, ValueError):
        return 0


def _bounding_set() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def _within_bounding_set(caps: list[str]) -> list[str]:
    """Drop capabilities we don't hold ourselves: runc cannot grant them and would fail.

    (Here: CAP_SYS_RESOURCE, which a --privileged container therefore lacks.)
    """
    bnd = _bounding_set()
    if bnd is None:
        return caps
    kept = [c for c in caps if bnd >> ALL_CAPS.index(c) & 1]
    if len(kept) != len(caps):
        log.debug("capabilities %s not in our bounding set: left out", sorted(set(caps) - set(kept)))
    return kept


def clamp_rlimits(ulimits: list[Ulimit]) -> list[dict[str, Any]]:
    """OCI rlimits, clamped to our hard limits when we may not raise them."""
    can_raise = has_sys_resource()
    out: list[dict[str, Any]] = []
    for u in ulimits:
        num = RLIMIT_NAMES[u.name]
        soft, hard = u.soft, u.hard
        if not can_raise:
            _, cur_hard = resource.getrlimit(num)
            if cur_hard != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > cur_hard):
                log.debug("rlimit %s hard %s clamped to %s (no CAP_SYS_RESOURCE)", u.name, hard, cur_hard)
                hard = cur_hard
            if soft == resource.RLIM_INFINITY or soft > hard:
                soft = hard
        out.append({"type": "RLIMIT_" + u.name.upper(), "soft": _rl(soft), "hard": _rl(hard)})
    return out


def _rl(v: int) -> int:
    # OCI wants an unsigned 64-bit number; RLIM_INFINITY is -1 in Python.
    return 2**64 - 1 if v == resource.RLIM_INFINITY else v


def clamp_oom_score_adj(value: int | None) -> int | None:
    if value is None:
        return None
    if not -1000 <= value <= 1000:
        raise InvalidArgument(f"invalid oom-score-adj {value}: must be between -1000 and 1000")
    if not has_sys_resource():
        floor = _own_oom_score_adj()
        if value < floor:
            log.debug("oom_score_adj %d clamped to %d (no CAP_SYS_RESOURCE)", value, floor)
            return floor
    return value


# What the cgroup controllers here can set (docker's sysinfo): a limit the host cannot
# apply is discarded with a warning at create, as docker does, rather than failing in runc.
_CGROUP = Path("/sys/fs/cgroup")


def _v2_controller(name: str) -> bool:
    try:
        return name in (_CGROUP / "cgroup.controllers").read_text().split()
    except OSError:
        return False


def _v1_file(*names: str) -> bool:
    return any((_CGROUP / n).exists() for n in names)


def cgroup_v2() -> bool:
    return (_CGROUP / "cgroup.controllers").exists()


def blkio_support() -> dict[str, bool]:
    """Which block I/O limits apply: ``weight``, ``weight_device``, ``throttle``."""
    if cgroup_v2():
        io = _v2_controller("io")
        return {"weight": io, "weight_device": io, "throttle": io}
    return {
        "weight": _v1_file("blkio/blkio.weight", "blkio/blkio.bfq.weight"),
        "weight_device": _v1_file("blkio/blkio.weight_device", "blkio/blkio.bfq.weight_device"),
        "throttle": _v1_file("blkio/blkio.throttle.read_bps_device"),
    }


def oom_kill_disable_support() -> bool:
    """cgroup v1's memory.oom_control (v2 has no way to turn the OOM killer off)."""
    return not cgroup_v2() and _v1_file("memory/memory.oom_control")


def swappiness_support() -> bool:
    """cgroup v1's memory.swappiness (v2 has none)."""
    return not cgroup_v2() and _v1_file("memory/memory.swappiness")
