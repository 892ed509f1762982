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
import stat
from typing import Any

from podkit.errors import InvalidArgument
from podkit.runtime import seccomp as seccomp_mod

# The builder's inputs, defaults and host facts live in their own modules; their names
# are re-exported here, where callers have always found them.
from podkit.runtime.spec_defaults import (
    ALL_CAPS,
    DEFAULT_CAPS,
    DEFAULT_DEVICE_RULES,
    DEFAULT_NAMESPACES,
    DEFAULT_PATH,
    INIT_DEST,
    INIT_PATH,
    MASKED_PATHS,
    NAMESPACE_TYPES,
    OCI_VERSION,
    READONLY_PATHS,
    RLIMIT_NAMES,
    STD_DEVICES,
    default_namespaces,
)
from podkit.runtime.spec_host import (
    _bounding_set,
    _own_oom_score_adj,
    _within_bounding_set,
    clamp_oom_score_adj,
    clamp_rlimits,
    has_sys_resource,
    swap_accounting,
)
from podkit.runtime.spec_options import THROTTLE_FIELDS, Device, Resources, SpecOptions, Ulimit, User

__all__ = [
    "ALL_CAPS",
    "DEFAULT_CAPS",
    "DEFAULT_NAMESPACES",
    "DEFAULT_PATH",
    "INIT_DEST",
    "INIT_PATH",
    "NAMESPACE_TYPES",
    "OCI_VERSION",
    "RLIMIT_NAMES",
    "THROTTLE_FIELDS",
    "Device",
    "Resources",
    "SpecOptions",
    "Ulimit",
    "User",
    "_bounding_set",
    "_own_oom_score_adj",
    "build_spec",
    "capabilities",
    "check_sysctls",
    "clamp_oom_score_adj",
    "clamp_rlimits",
    "default_mounts",
    "default_namespaces",
    "has_sys_resource",
    "host_devices",
    "normalize_cap",
    "swap_accounting",
]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------- capabilities


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
    if not opts.shm:
        pass  # --ipc none: nothing at /dev/shm
    elif opts.shm_path:
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
    mounts, args = _mounts_and_args(opts)
    process = _process(opts, args, caps)
    namespaces = _namespaces(opts)
    own_uts = any(n["type"] == "uts" and "path" not in n for n in namespaces)
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": str(opts.rootfs), "readonly": opts.readonly_rootfs},
        "mounts": mounts,
        "linux": _linux(opts, namespaces, caps),
    }
    if opts.hostname and own_uts:
        spec["hostname"] = opts.hostname
    if opts.domainname:
        if not own_uts:
            raise InvalidArgument("a domainname needs the container's own UTS namespace")
        # runc 1.1 knows no spec domainname (runtime-spec 1.1's): the sysctl sets it, in
        # the container's UTS namespace, as podman did before
        spec["linux"].setdefault("sysctl", {})["kernel.domainname"] = opts.domainname
    annotations = {**opts.labels, **opts.annotations}
    if annotations:
        spec["annotations"] = annotations
    return spec


def _mounts_and_args(opts: SpecOptions) -> tuple[list[dict[str, Any]], list[str]]:
    """The default mounts, the caller's over them, and the init (if any) before the args."""
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
    return mounts, args


def _process(opts: SpecOptions, args: list[str], caps: list[str]) -> dict[str, Any]:
    """The spec's ``process``: identity, command, capabilities, rlimits, OOM score."""
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
    return process


def _devices(opts: SpecOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Device nodes to create and the device cgroup rules (deny all, then allow)."""
    devices = list(opts.devices)
    if opts.privileged:
        devices = host_devices() + [d for d in devices]
    nodes: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    if opts.privileged:
        rules = [{"allow": True, "access": "rwm"}]
    else:
        rules.extend(dict(r) for r in DEFAULT_DEVICE_RULES)
        rules.extend(dict(r) for r in opts.device_rules)
    seen: set[str] = {p for p, _, _ in STD_DEVICES}
    for dev in devices:
        node, rule = _device_entry(dev)
        if node["path"] in seen:
            continue
        seen.add(node["path"])
        nodes.append(node)
        if not opts.privileged:
            rules.append(rule)
    return nodes, rules


def _linux(opts: SpecOptions, namespaces: list[dict[str, str]], caps: list[str]) -> dict[str, Any]:
    """The spec's ``linux``: namespaces, resources, devices, masks, seccomp, sysctls."""
    nodes, rules = _devices(opts)
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
    return linux
