"""OCI runtime spec (config.json) generation.

``build_spec(SpecOptions) -> dict`` turns already-resolved options (the caller has
merged the image config with the user's flags and resolved ``--user`` through
``podkit.runtime.users``) into a complete OCI runtime-spec 1.0 ``config.json``
with Docker's security defaults: the default capability set, a default seccomp
profile, no-new-privileges, masked and read-only /proc paths, a minimal /dev
guarded by device cgroup rules.

Host limits are respected rather than failed on: without CAP_SYS_RESOURCE
(the case on the build box) a negative ``oomScoreAdj`` and rlimits above the
current hard limit would make runc fail, so they are clamped (logged at debug).

Namespaces are described by ``SpecOptions.namespaces``: a mapping from the OCI
namespace type (``pid network ipc uts mount cgroup user``) to ``None`` (create a
new one), ``"host"`` (stay in the host's: no entry in the spec) or a path to join
(``/proc/<pid>/ns/net``, a pinned netns file). Pods join their infra container's
namespaces this way.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podkit.errors import InvalidArgument
from podkit.runtime import seccomp as seccomp_mod

log = logging.getLogger(__name__)

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INIT_PATH = "/usr/bin/catatonit"
INIT_DEST = "/run/podkit-init"

# Docker's default capability set.
DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# Every capability, in kernel number order (include/uapi/linux/capability.h).
ALL_CAPS: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/sys/dev/block",  # the host's block devices by major:minor (podman masks it too)
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

NAMESPACE_TYPES = ("pid", "network", "ipc", "uts", "mount", "cgroup", "user")
DEFAULT_NAMESPACES: dict[str, str | None] = {
    "pid": None,
    "network": None,
    "ipc": None,
    "uts": None,
    "mount": None,
}


def default_namespaces(cgroup_mode: str) -> dict[str, str | None]:
    """New pid, net, ipc, uts, mount namespaces; a private cgroup namespace on v2 (as Docker)."""
    ns = dict(DEFAULT_NAMESPACES)
    if cgroup_mode == "v2":
        ns["cgroup"] = None
    return ns


# The standard devices every container gets (runc creates the nodes; the
# cgroup rules below let the container use them).
_STD_DEVICES: tuple[tuple[str, int, int], ...] = (
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
)
# Docker's default device cgroup allow-list (after "deny all").
_DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
)

RLIMIT_NAMES: dict[str, int] = {
    "core": resource.RLIMIT_CORE,
    "cpu": resource.RLIMIT_CPU,
    "data": resource.RLIMIT_DATA,
    "fsize": resource.RLIMIT_FSIZE,
    "locks": getattr(resource, "RLIMIT_LOCKS", 10),
    "memlock": resource.RLIMIT_MEMLOCK,
    "msgqueue": getattr(resource, "RLIMIT_MSGQUEUE", 12),
    "nice": getattr(resource, "RLIMIT_NICE", 13),
    "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC,
    "rss": resource.RLIMIT_RSS,
    "rtprio": getattr(resource, "RLIMIT_RTPRIO", 14),
    "rttime": getattr(resource, "RLIMIT_RTTIME", 15),
    "sigpending": getattr(resource, "RLIMIT_SIGPENDING", 11),
    "stack": resource.RLIMIT_STACK,
    "as": resource.RLIMIT_AS,
}


@dataclass
class User:
    """A resolved process identity (see ``podkit.runtime.users.resolve``)."""

    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    umask: int | None = None


@dataclass
class Device:
    """``--device HOST[:CONTAINER][:PERMS]``."""

    path: str
    container_path: str = ""
    permissions: str = "rwm"

    @classmethod
    def parse(cls, text: str) -> Device:
        parts = text.split(":")
        if not parts[0] or len(parts) > 3:
            raise InvalidArgument(f"invalid device {text!r}: expected HOST[:CONTAINER][:rwm]")
        host, ctr, perms = parts[0], "", "rwm"
        if len(parts) == 2:
            if _is_perms(parts[1]):
                perms = parts[1]
            else:
                ctr = parts[1]
        elif len(parts) == 3:
            ctr, perms = parts[1], parts[2]
            if not _is_perms(perms):
                raise InvalidArgument(f"invalid device {text!r}: permissions {perms!r} not in 'rwm'")
        if not host.startswith("/") or (ctr and not ctr.startswith("/")):
            raise InvalidArgument(f"invalid device {text!r}: paths must be absolute")
        return cls(host, ctr or host, perms)


def _is_perms(s: str) -> bool:
    return bool(s) and all(c in "rwm" for c in s) and len(set(s)) == len(s)


@dataclass
class Ulimit:
    name: str  # "nofile", "nproc", ... (without the RLIMIT_ prefix)
    soft: int
    hard: int

    @classmethod
    def parse(cls, text: str) -> Ulimit:
        """``name=soft[:hard]`` as docker's ``--ulimit``; -1 means unlimited."""
        name, sep, value = text.partition("=")
        name = name.strip().lower()
        if not sep or name not in RLIMIT_NAMES:
            raise InvalidArgument(
                f"invalid ulimit {text!r}: expected NAME=SOFT[:HARD] "
                f"with NAME one of {', '.join(sorted(RLIMIT_NAMES))}"
            )
        soft_s, _, hard_s = value.partition(":")
        try:
            soft = int(soft_s)
            hard = int(hard_s) if hard_s else soft
        except ValueError:
            raise InvalidArgument(f"invalid ulimit {text!r}: values must be integers") from None
        inf = resource.RLIM_INFINITY
        soft = inf if soft < 0 else soft
        hard = inf if hard < 0 else hard
        if hard != inf and (soft == inf or soft > hard):
            raise InvalidArgument(f"invalid ulimit {text!r}: soft limit exceeds hard limit")
        return cls(name, soft, hard)


@dataclass
class Resources:
    memory: int | None = None  # bytes
    memory_swap: int | None = None  # memory + swap, bytes; -1 unlimited (docker semantics)
    memory_reservation: int | None = None
    cpus: float | None = None  # --cpus: quota = cpus * period
    cpu_period: int = 100_000
    cpu_quota: int | None = None  # --cpu-quota (µs per period); exclusive with cpus
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None  # <= 0: unlimited
    blkio_weight: int | None = None
    oom_kill_disable: bool = False
    memory_swappiness: int | None = None
    ulimits: list[Ulimit] = field(default_factory=list)

    def to_oci(self) -> dict[str, Any]:
        """The ``linux.resources`` part (without devices); also what ``runc update`` takes."""
        out: dict[str, Any] = {}
        mem: dict[str, Any] = {}
        if self.memory is not None:
            if self.memory < 6 * 1024 * 1024 and self.memory > 0:
                raise InvalidArgument("minimum memory limit allowed is 6MB")
            mem["limit"] = self.memory if self.memory > 0 else -1
        if self.memory_swap is not None:
            if self.memory_swap != -1 and self.memory is not None and 0 < self.memory_swap < self.memory:
                raise InvalidArgument("memory-swap must be larger than the memory limit")
            if swap_accounting():
                mem["swap"] = self.memory_swap
            else:
                # runc would fail writing memory.memsw.*; Docker warns and goes on too.
                log.debug("no swap accounting on this host: memory-swap ignored")
        if self.memory_reservation is not None:
            mem["reservation"] = self.memory_reservation
        if self.oom_kill_disable:
            mem["disableOOMKiller"] = True
        if self.memory_swappiness is not None:
            if not 0 <= self.memory_swappiness <= 100:
                raise InvalidArgument("memory-swappiness must be between 0 and 100")
            mem["swappiness"] = self.memory_swappiness
        if mem:
            out["memory"] = mem
        cpu: dict[str, Any] = {}
        if not 1000 <= self.cpu_period <= 1_000_000:
            raise InvalidArgument("cpu-period must be between 1ms and 1s (1000-1000000 µs)")
        if self.cpus is not None and self.cpu_quota is not None:
            raise InvalidArgument("conflicting options: cpus and cpu-quota cannot both be set")
        if self.cpus is not None:
            ncpu = os.cpu_count() or 1
            if self.cpus < 0 or self.cpus > ncpu:
                raise InvalidArgument(f"invalid cpus {self.cpus}: the range of CPUs is from 0.01 to {ncpu}")
            if self.cpus > 0:
                cpu["quota"] = max(1000, int(self.cpus * self.cpu_period))
                cpu["period"] = self.cpu_period
        if self.cpu_quota is not None and self.cpu_quota != 0:
            if 0 < self.cpu_quota < 1000:
                raise InvalidArgument("cpu-quota must be at least 1000 µs")
            cpu["quota"] = self.cpu_quota if self.cpu_quota > 0 else -1
            cpu["period"] = self.cpu_period
        if self.cpu_shares is not None:
            if self.cpu_shares < 0:
                raise InvalidArgument(f"invalid cpu-shares {self.cpu_shares}")
            if self.cpu_shares:
                cpu["shares"] = max(2, self.cpu_shares)
        for key, value in (("cpus", self.cpuset_cpus), ("mems", self.cpuset_mems)):
            if value:
                if not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", value):
                    raise InvalidArgument(f"invalid cpuset-{key} {value!r}: expected a list like 0-2,4")
                cpu[key] = value
        if cpu:
            out["cpu"] = cpu
        if self.pids_limit is not None:
            out["pids"] = {"limit": self.pids_limit if self.pids_limit > 0 else -1}
        if self.blkio_weight is not None:
            if not 10 <= self.blkio_weight <= 1000:
                raise InvalidArgument("blkio-weight must be between 10 and 1000")
            out["blockIO"] = {"weight": self.blkio_weight}
        return out


@dataclass
class SpecOptions:
    rootfs: str
    args: list[str]
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    user: User = field(default_factory=User)
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # (height, width)
    hostname: str | None = None
    readonly_rootfs: bool = False
    # OCI mount dicts added after the defaults (binds, tmpfs, volumes, /etc/hosts...).
    # One with the destination of a default mount (e.g. /dev/shm) replaces it.
    mounts: list[dict[str, Any]] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    seccomp: str = "default"  # "default" | "unconfined" | path to a JSON profile
    no_new_privileges: bool = True
    masked_paths: list[str] | None = None  # None: the defaults
    readonly_paths: list[str] | None = None
    devices: list[Device] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    oom_score_adj: int | None = None
    init: bool = False
    init_path: str = INIT_PATH
    namespaces: dict[str, str | None] = field(default_factory=lambda: dict(DEFAULT_NAMESPACES))
    shm_path: str | None = None  # bind this at /dev/shm instead of a private tmpfs
    shm_size: int = 64 * 1024 * 1024
    cgroups_path: str | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- host


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


# ----------------------------------------------------------------------- helpers


def normalize_cap(name: str) -> str:
    n = name.strip().upper()
    if n == "ALL":
        return n
    if not n.startswith("CAP_"):
        n = "CAP_" + n
    if n not in ALL_CAPS:
        raise InvalidArgument(f"unknown capability {name!r}")
    return n


def capabilities(opts: SpecOptions) -> list[str]:
    """The effective capability list for the options (Docker's add/drop rules)."""
    if opts.privileged:
        return _within_bounding_set(list(ALL_CAPS))
    adds = [normalize_cap(c) for c in opts.cap_add]
    drops = [normalize_cap(c) for c in opts.cap_drop]
    caps: list[str] = list(ALL_CAPS) if "ALL" in adds else list(DEFAULT_CAPS)
    if "ALL" in drops:
        caps = []
    caps = [c for c in caps if c not in drops]
    for c in adds:
        if c != "ALL" and c not in caps:
            caps.append(c)
    return _within_bounding_set(caps)


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


def _device_entry(dev: Device) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        st = os.stat(dev.path)
    except OSError as e:
        raise InvalidArgument(f"device {dev.path}: {e.strerror}") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"device {dev.path} is not a character or block device")
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    node = {
        "path": dev.container_path or dev.path,
        "type": kind,
        "major": major,
        "minor": minor,
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }
    rule = {"allow": True, "type": kind, "major": major, "minor": minor, "access": dev.permissions}
    return node, rule


def host_devices() -> list[Device]:
    """Every char/block device node of the host's /dev (what --privileged gets)."""
    out: list[Device] = []
    skip = ("/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/console", "/dev/ptmx")
    for dirpath, dirnames, filenames in os.walk("/dev"):
        if dirpath.startswith(skip):
            dirnames[:] = []
            continue
        for f in filenames:
            p = os.path.join(dirpath, f)
            if p in skip:
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append(Device(p, p, "rwm"))
    return out


def default_mounts(opts: SpecOptions) -> list[dict[str, Any]]:
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if opts.privileged else ["ro"])
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
    ]
    if opts.shm_path:
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "bind",
                "source": opts.shm_path,
                "options": ["rbind", "nosuid", "noexec", "nodev"],
            }
        )
    else:
        mounts.append(
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={opts.shm_size}"],
            }
        )
    mounts.append(
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        }
    )
    net = opts.namespaces.get("network", "host") if "network" in opts.namespaces else "host"
    if net == "host" and "user" in opts.namespaces:
        # sysfs cannot be mounted from a user namespace without its own netns.
        mounts.append(
            {
                "destination": "/sys",
                "type": "bind",
                "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
            }
        )
    else:
        mounts.append({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts})
    mounts.append(
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime"] + ([] if opts.privileged else ["ro"]),
        }
    )
    return mounts


def _namespaces(opts: SpecOptions) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for kind, where in opts.namespaces.items():
        if kind not in NAMESPACE_TYPES:
            raise InvalidArgument(f"unknown namespace type {kind!r}")
        if where == "host":
            continue
        entry = {"type": kind}
        if where:
            if not os.path.lexists(where):
                raise InvalidArgument(f"{kind} namespace to join does not exist: {where}")
            entry["path"] = where
        out.append(entry)
    if not any(n["type"] == "mount" for n in out):
        raise InvalidArgument("a container needs its own mount namespace")
    return out


def _env(env: list[str]) -> list[str]:
    out = list(env)
    for e in out:
        if "=" not in e or e.startswith("="):
            raise InvalidArgument(f"invalid environment entry {e!r}: expected NAME=VALUE")
        if "\0" in e:
            raise InvalidArgument("environment entries must not contain NUL bytes")
    if not any(e.startswith("PATH=") for e in out):
        out.insert(0, "PATH=" + DEFAULT_PATH)
    return out


# Namespaced sysctls (as Docker allows them) and the namespace each belongs to.
_IPC_SYSCTLS = (
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
)


def check_sysctls(sysctls: dict[str, str], namespaces: dict[str, str | None]) -> dict[str, str]:
    """Only sysctls of a namespace the container does not share with the host."""
    out: dict[str, str] = {}
    for key, value in sysctls.items():
        name = key.strip().replace("/", ".")
        if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
            ns = "ipc"
        elif name.startswith("net."):
            ns = "network"
        elif name in ("kernel.hostname", "kernel.domainname"):
            ns = "uts"
        else:
            raise InvalidArgument(f"sysctl {key!r} is not namespaced: it would change the host")
        if namespaces.get(ns, "host") == "host" or ns not in namespaces:
            raise InvalidArgument(f"sysctl {key!r} needs the container's own {ns} namespace, not the host's")
        out[name] = str(value)
    return out


# ------------------------------------------------------------------------- build


def _fit_cpu_quota_to_parents(cpu: dict[str, Any], cgroups_path: str) -> None:
    """On cgroup v1 a quota above a parent's (a pod's --cpus) makes runc fail: clamp it."""
    from podkit.runtime.cgroups import CgroupManager

    try:
        limit = CgroupManager().ancestor_cpu_limit(cgroups_path)
    except Exception as e:  # no cgroup tree to read: nothing to fit
        log.debug("cannot read parent cpu limits of %s: %s", cgroups_path, e)
        return
    if limit is None or cpu["quota"] <= 0:
        return
    period = cpu.get("period", 100_000)
    cap = max(1000, int(limit * period))
    if cpu["quota"] > cap:
        log.debug("cpu quota %d clamped to %d: a parent cgroup allows %.2f CPUs", cpu["quota"], cap, limit)
        cpu["quota"] = cap


def _validate(opts: SpecOptions) -> None:
    """Reject what runc would fail on later with a less clear message."""
    if not opts.args or not opts.args[0]:
        raise InvalidArgument("no command specified")
    if any("\0" in a for a in opts.args):
        raise InvalidArgument("command arguments must not contain NUL bytes")
    if not opts.cwd.startswith("/"):
        raise InvalidArgument(f"working directory {opts.cwd!r} must be absolute")
    if opts.hostname is not None and (len(opts.hostname.encode()) > 64 or "\0" in opts.hostname):
        raise InvalidArgument(f"invalid hostname {opts.hostname!r}: at most 64 bytes")
    if opts.shm_size <= 0:
        raise InvalidArgument("shm size must be positive")
    for m in opts.mounts:
        dest = m.get("destination")
        if not isinstance(dest, str) or not dest.startswith("/"):
            raise InvalidArgument(f"mount destination {dest!r} must be an absolute path")
        if ".." in dest.split("/"):
            raise InvalidArgument(f"mount destination {dest!r} must not contain '..'")
        if m.get("type") == "bind" and not m.get("source"):
            raise InvalidArgument(f"bind mount at {dest} has no source")
    for ug in (opts.user.uid, opts.user.gid, *opts.user.additional_gids):
        if not 0 <= ug < 2**32 - 1:
            raise InvalidArgument(f"invalid user or group id {ug}")


def build_spec(opts: SpecOptions) -> dict[str, Any]:
    """A complete OCI runtime-spec config.json for the options."""
    _validate(opts)
    caps = capabilities(opts)
    args = list(opts.args)
    mounts = default_mounts(opts)
    # A caller's mount with a default's destination replaces the default.
    overridden = {m["destination"].rstrip("/") or "/" for m in opts.mounts}
    mounts = [m for m in mounts if m["destination"] not in overridden]
    mounts.extend(opts.mounts)
    if opts.init:
        if not os.path.exists(opts.init_path):
            raise InvalidArgument(f"init binary {opts.init_path} not found on this host")
        mounts.append(
            {
                "destination": INIT_DEST,
                "type": "bind",
                "source": opts.init_path,
                "options": ["bind", "ro", "nosuid", "nodev"],
            }
        )
        args = [INIT_DEST, "--", *args]

    user: dict[str, Any] = {"uid": opts.user.uid, "gid": opts.user.gid}
    if opts.user.additional_gids:
        user["additionalGids"] = sorted(set(opts.user.additional_gids))
    if opts.user.umask is not None:
        user["umask"] = opts.user.umask
    process: dict[str, Any] = {
        "terminal": opts.terminal,
        "user": user,
        "args": args,
        "env": _env(opts.env),
        "cwd": opts.cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": bool(opts.no_new_privileges) and not opts.privileged,
    }
    if opts.terminal and opts.console_size:
        process["consoleSize"] = {"height": opts.console_size[0], "width": opts.console_size[1]}
    rlimits = clamp_rlimits(opts.resources.ulimits)
    if rlimits:
        process["rlimits"] = rlimits
    oom = clamp_oom_score_adj(opts.oom_score_adj)
    if oom is not None:
        process["oomScoreAdj"] = oom

    namespaces = _namespaces(opts)
    own_uts = any(n["type"] == "uts" and "path" not in n for n in namespaces)

    devices = list(opts.devices)
    if opts.privileged:
        devices = host_devices() + [d for d in devices]
    nodes: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    if opts.privileged:
        rules = [{"allow": True, "access": "rwm"}]
    else:
        rules.extend(dict(r) for r in _DEFAULT_DEVICE_RULES)
    seen: set[str] = {p for p, _, _ in _STD_DEVICES}
    for dev in devices:
        node, rule = _device_entry(dev)
        if node["path"] in seen:
            continue
        seen.add(node["path"])
        nodes.append(node)
        if not opts.privileged:
            rules.append(rule)

    resources = opts.resources.to_oci()
    if opts.cgroups_path and "quota" in resources.get("cpu", {}):
        _fit_cpu_quota_to_parents(resources["cpu"], opts.cgroups_path)
    resources["devices"] = rules
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "resources": resources,
        "devices": nodes,
    }
    if opts.cgroups_path:
        linux["cgroupsPath"] = opts.cgroups_path
    # A shared or slave bind only propagates if the container's root mount does too
    # (runc makes it rprivate otherwise), as docker and containerd set it.
    props = {o for m in opts.mounts for o in m.get("options") or []}
    if props & {"shared", "rshared"}:
        linux["rootfsPropagation"] = "rshared"
    elif props & {"slave", "rslave"}:
        linux["rootfsPropagation"] = "rslave"
    if opts.sysctls:
        linux["sysctl"] = check_sysctls(opts.sysctls, opts.namespaces)
    if not opts.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS if opts.masked_paths is None else opts.masked_paths)
        linux["readonlyPaths"] = list(READONLY_PATHS if opts.readonly_paths is None else opts.readonly_paths)
        profile = seccomp_mod.profile_for(opts.seccomp, caps)
        if profile is not None:
            linux["seccomp"] = profile

    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(opts.rootfs), "readonly": opts.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    }
    if opts.hostname and own_uts:
        spec["hostname"] = opts.hostname
    annotations = {**opts.labels, **opts.annotations}
    if annotations:
        spec["annotations"] = annotations
    return spec
