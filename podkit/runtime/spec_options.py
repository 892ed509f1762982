"""What the spec builder is given: ``SpecOptions`` (already resolved by the caller)
and the parts it is made of (``User``, ``Device``, ``Ulimit``, ``Resources``)."""

from __future__ import annotations

import logging
import os
import re
import resource
from dataclasses import dataclass, field
from typing import Any

from podkit.errors import InvalidArgument
from podkit.runtime import spec_host
from podkit.runtime.spec_defaults import DEFAULT_NAMESPACES, INIT_PATH, RLIMIT_NAMES

log = logging.getLogger(__name__)


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
    # (major, minor, value): blockIO's weightDevice and throttle{Read,Write}{Bps,IOPS}Device
    blkio_weight_device: list[tuple[int, int, int]] = field(default_factory=list)
    throttle: dict[str, list[tuple[int, int, int]]] = field(default_factory=dict)
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
            if spec_host.swap_accounting():
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
        blkio: dict[str, Any] = {}
        if self.blkio_weight is not None:
            if not 10 <= self.blkio_weight <= 1000:
                raise InvalidArgument("blkio-weight must be between 10 and 1000")
            blkio["weight"] = self.blkio_weight
        if self.blkio_weight_device:
            blkio["weightDevice"] = [
                {"major": ma, "minor": mi, "weight": w} for ma, mi, w in self.blkio_weight_device
            ]
        for key, devices in self.throttle.items():
            if key not in THROTTLE_FIELDS:
                raise InvalidArgument(f"unknown block I/O throttle {key!r}")
            if devices:
                blkio[key] = [{"major": ma, "minor": mi, "rate": r} for ma, mi, r in devices]
        if blkio:
            out["blockIO"] = blkio
        return out


# The OCI spec's blockIO throttles (linux.resources.blockIO).
THROTTLE_FIELDS = (
    "throttleReadBpsDevice",
    "throttleWriteBpsDevice",
    "throttleReadIOPSDevice",
    "throttleWriteIOPSDevice",
)


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
    domainname: str | None = None  # set only with the container's own UTS namespace
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
    # more device cgroup rules: {"allow": True, "type", "major", "minor", "access"} (None: any)
    device_rules: list[dict[str, Any]] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    oom_score_adj: int | None = None
    init: bool = False
    init_path: str = INIT_PATH
    namespaces: dict[str, str | None] = field(default_factory=lambda: dict(DEFAULT_NAMESPACES))
    shm_path: str | None = None  # bind this at /dev/shm instead of a private tmpfs
    shm: bool = True  # False: no /dev/shm at all (docker's --ipc none)
    shm_size: int = 64 * 1024 * 1024
    cgroups_path: str | None = None
    sysctls: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
