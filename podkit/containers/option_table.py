"""The parsers of ``CreateOptions.parse``: one per option or group of options.

``TABLE`` maps the body keys each parser reads to it, in the order the checks run
(the first error is the one reported). A parser sets its fields on the options from
the JSON body, checking the JSON types it takes and raising ``InvalidArgument`` at the
point of the check; any other exception is a bug and surfaces as one.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from podkit import userfiles
from podkit.containers import option_runtime
from podkit.containers.parsers import (
    NAME_RE,
    RESTART_POLICIES,
    Mount,
    is_mount_flag,
    items,
    parse_capability,
    parse_device,
    parse_env,
    parse_expose,
    parse_int,
    parse_labels,
    parse_mount_flag,
    parse_port,
    parse_restart,
    parse_signal,
    parse_size,
    parse_tmpfs,
    parse_ulimit,
    parse_volume,
    read_env_file,
    strings,
    strlist,
    validate_name,
)
from podkit.errors import InvalidArgument
from podkit.network.ports import PortMapping

if TYPE_CHECKING:
    from podkit.containers.options import CreateOptions

_HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$")
_USER_RE = re.compile(r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$")
_NETWORK_NAME_RE = re.compile(r"^[a-zA-Z0-9][\w.-]*$")
NETWORK_MODES = ("bridge", "host", "none", "pod")
_JOINABLE_NS = {"network", "ipc", "uts", "pid", "cgroup", "mount", "user"}
_MIN_MEMORY = 6 * 1024 * 1024
_GROUP_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")

Body = Mapping[str, Any]  # a decoded JSON object: each parser checks the types it takes
# Each sets the fields of its options on ``o`` from ``body``, or raises InvalidArgument.
Parser: TypeAlias = Callable[["CreateOptions", Body], None]


def _flag(key: str, default: bool = False) -> Parser:
    """A JSON boolean (any value taken for its truth, as before)."""

    def parse(o: CreateOptions, body: Body) -> None:
        setattr(o, key, bool(body.get(key, default)))

    return parse


def _text(key: str) -> Parser:
    """A free-form string option; empty means unset."""

    def parse(o: CreateOptions, body: Body) -> None:
        setattr(o, key, str(body[key]) if body.get(key) else None)

    return parse


def _name(o: CreateOptions, body: Body) -> None:
    if body.get("name"):
        o.name = validate_name(str(body["name"]))


def _command(o: CreateOptions, body: Body) -> None:
    o.cmd = strlist(body.get("cmd"), "cmd")
    ep = body.get("entrypoint")
    o.entrypoint = [] if ep == "" else strlist(ep, "entrypoint")


def _env(o: CreateOptions, body: Body) -> None:
    env = body.get("env")
    entries = parse_env(env) if isinstance(env, dict) else strings(env, "env")
    files = body.get("env_file") or []
    if not isinstance(files, list):
        raise InvalidArgument("env_file must be a list of paths")
    from_files: list[str] = []
    for f in files:
        from_files += read_env_file(f)
    o.env = parse_env(from_files + entries)  # files in order, then env: later entries win


def _workdir(o: CreateOptions, body: Body) -> None:
    if body.get("workdir"):
        w = str(body["workdir"])
        if not w.startswith("/"):
            raise InvalidArgument(f"invalid working directory {w!r}: must be absolute")
        o.workdir = os.path.normpath(w)


def _user(o: CreateOptions, body: Body) -> None:
    if body.get("user"):
        u = str(body["user"])
        if not _USER_RE.fullmatch(u):
            raise InvalidArgument(f"invalid user {u!r}: want USER[:GROUP] (names or ids)")
        o.user = u


def _hostname(o: CreateOptions, body: Body) -> None:
    if body.get("hostname"):
        h = str(body["hostname"])
        if not _HOSTNAME_RE.fullmatch(h):
            raise InvalidArgument(f"invalid hostname {h!r}")
        o.hostname = h


def _domainname(o: CreateOptions, body: Body) -> None:
    if body.get("domainname"):
        d = str(body["domainname"])
        if not _HOSTNAME_RE.fullmatch(d):
            raise InvalidArgument(f"invalid domainname {d!r}")
        o.domainname = d


def _labels(o: CreateOptions, body: Body) -> None:
    o.labels = parse_labels(body.get("labels"), "labels")
    o.annotations = parse_labels(body.get("annotations"), "annotations")


def _mounts(o: CreateOptions, body: Body) -> None:
    """``mounts`` (objects or -v strings), then ``volumes`` (-v), then ``tmpfs``."""
    mounts = [
        Mount.from_dict(m)
        if isinstance(m, dict)
        else parse_mount_flag(str(m))
        if is_mount_flag(str(m))
        else parse_volume(str(m))
        for m in items(body.get("mounts"), "mounts")
    ]
    mounts += [parse_volume(v) for v in strings(body.get("volumes"), "volumes")]
    mounts += [parse_tmpfs(t) for t in strings(body.get("tmpfs"), "tmpfs")]
    seen: set[str] = set()
    for m in mounts:
        if m.type not in ("bind", "volume", "tmpfs", "image"):
            raise InvalidArgument(f"invalid mount type {m.type!r}")
        if m.type == "image":
            if not m.source.startswith("sha256:"):
                raise InvalidArgument(
                    f"invalid image mount at {m.target}: the source is an image ID (sha256:...)"
                )
            m.readonly = True  # an image is mounted read-only, as docker's
        if m.target in seen:
            raise InvalidArgument(f"duplicate mount point {m.target}")
        seen.add(m.target)
        if m.type == "tmpfs" and m.source not in ("", "tmpfs"):
            raise InvalidArgument(
                f"invalid mount at {m.target}: a tmpfs mount takes no source ({m.source!r})"
            )
        if m.type == "bind" and not os.path.exists(m.source):
            raise InvalidArgument(f"bind source path does not exist: {m.source}")
    o.mounts = mounts


def _capabilities(o: CreateOptions, body: Body) -> None:
    o.cap_add = [parse_capability(c) for c in items(body.get("cap_add"), "cap_add")]
    o.cap_drop = [parse_capability(c) for c in items(body.get("cap_drop"), "cap_drop")]


def _security(o: CreateOptions, body: Body) -> None:
    """``no_new_privileges`` and ``seccomp``, which ``security_opt`` entries override."""
    o.no_new_privileges = bool(body.get("no_new_privileges", True))
    seccomp = str(body["seccomp"]) if body.get("seccomp") else ""
    for so in strings(body.get("security_opt"), "security_opt"):
        k, v = userfiles.split_security_opt(so)
        if k == "seccomp":
            seccomp = v or "default"
        elif k == "no-new-privileges":
            o.no_new_privileges = v in ("", "true", "1")
        elif k in ("label", "apparmor"):
            continue  # not available here: accepted and ignored, like docker without LSMs
        else:
            raise InvalidArgument(f"invalid --security-opt {so!r}")
    _seccomp(o, seccomp, body.get("seccomp_profile"))


def _seccomp(o: CreateOptions, setting: str, inline: object) -> None:
    """Resolve the seccomp setting into o.seccomp and, for a custom profile, its content.

    ``setting``: default | unconfined | a profile's JSON text (docker's API sends that)
    | a path, read here through userfiles.read_regular (a small regular file only: no
    FIFO, no device). ``inline``: the profile a client read itself (``seccomp_profile``,
    what the CLI and the SDK send); it applies unless the setting says otherwise.
    """
    if setting == "unconfined" or (setting in ("", "default") and inline is None):
        o.seccomp, o.seccomp_profile = setting or "default", None
    elif setting.lstrip().startswith("{"):
        o.seccomp_profile = userfiles.seccomp_profile(setting.encode(), "given inline")
        o.seccomp = "custom"
    elif setting not in ("", "default"):
        data = userfiles.read_regular(setting, "seccomp profile", userfiles.SECCOMP_PROFILE_MAX)
        o.seccomp_profile = userfiles.seccomp_profile(data, setting)
        o.seccomp = setting  # shown by inspect; the content taken now is what applies
    else:
        if not isinstance(inline, dict):
            raise InvalidArgument("seccomp_profile must be a JSON object (a seccomp profile)")
        o.seccomp_profile = userfiles.seccomp_profile(json.dumps(inline).encode(), "seccomp_profile")
        o.seccomp = "custom"


def _devices(o: CreateOptions, body: Body) -> None:
    specs = [
        ":".join(str(d.get(k, "")) for k in ("host", "container", "permissions") if d.get(k))
        if isinstance(d, dict)
        else str(d)
        for d in items(body.get("devices"), "devices")
    ]
    o.devices = [parse_device(s) for s in specs]


def _memory(o: CreateOptions, body: Body) -> None:
    if body.get("memory") not in (None, "", 0, "0"):
        o.memory = parse_size(body["memory"], "memory limit")
        if o.memory < _MIN_MEMORY:
            raise InvalidArgument("minimum memory limit allowed is 6MB")
    if body.get("memory_swap") not in (None, "", 0, "0"):
        swap = body["memory_swap"]
        o.memory_swap = -1 if str(swap) == "-1" else parse_size(swap, "memory-swap")
        # docker's rule: swap is memory + swap (create also wants a memory limit with it)
        if o.memory is not None and o.memory_swap != -1 and o.memory_swap < o.memory:
            raise InvalidArgument("minimum memory-swap limit should be larger than the memory limit")
    if body.get("memory_reservation") not in (None, "", 0, "0"):
        o.memory_reservation = parse_size(body["memory_reservation"], "memory reservation")
        if o.memory is not None and o.memory < o.memory_reservation:
            raise InvalidArgument("minimum memory limit can not be less than the memory reservation limit")


def _cpus(o: CreateOptions, body: Body) -> None:
    v = body.get("cpus")
    if v in (None, "", 0):
        return
    try:
        if not isinstance(v, int | float | str):
            raise ValueError(v)
        o.cpus = float(v)
    except ValueError:
        raise InvalidArgument(f"invalid --cpus {v!r}: want a number") from None
    if not math.isfinite(o.cpus) or o.cpus <= 0 or o.cpus > (os.cpu_count() or 1) * 64:
        raise InvalidArgument(f"invalid --cpus {v!r}: out of range")


def _bounded(key: str, what: str, lo: int, hi: int, unset: tuple[object, ...] = (None, "", 0)) -> Parser:
    """An integer option in ``lo..hi``; the ``unset`` values leave it unset."""

    def parse(o: CreateOptions, body: Body) -> None:
        if body.get(key) not in unset:
            setattr(o, key, parse_int(body[key], what, lo, hi))

    return parse


def _ulimits(o: CreateOptions, body: Body) -> None:
    """``NAME=SOFT[:HARD]`` strings, or ``[name, soft, hard]`` as stored."""
    out: list[tuple[str, int, int]] = []
    for u in items(body.get("ulimits"), "ulimits"):
        if isinstance(u, str):
            out.append(parse_ulimit(u))
        elif (
            isinstance(u, list | tuple)
            and len(u) == 3
            and isinstance(u[0], str)
            and all(isinstance(x, int) and not isinstance(x, bool) for x in u[1:])
        ):
            out.append((u[0], u[1], u[2]))
        else:
            raise InvalidArgument(f"invalid ulimit {u!r}: want NAME=SOFT[:HARD]")
    o.ulimits = out


def _restart(o: CreateOptions, body: Body) -> None:
    """The restart policy (``restart`` or ``restart_policy``), and ``auto_remove`` that excludes it."""
    rp = body.get("restart", body.get("restart_policy"))
    if isinstance(rp, dict):
        retries = rp.get("max_retries", 0)
        if rp.get("name") not in RESTART_POLICIES or not isinstance(retries, int) or retries < 0:
            raise InvalidArgument(f"invalid restart policy {rp!r}")
        o.restart = rp
    elif not rp or isinstance(rp, str):
        o.restart = parse_restart(rp or None)
    else:
        raise InvalidArgument(f"invalid restart policy {rp!r}")
    o.auto_remove = bool(body.get("auto_remove"))
    if o.auto_remove and o.restart["name"] != "no":
        raise InvalidArgument("conflicting options: --restart and --rm")


def _healthcheck(o: CreateOptions, body: Body) -> None:
    from podkit.containers import health

    o.healthcheck = health.parse(body.get("healthcheck"), bool(body.get("no_healthcheck")))


def _network(o: CreateOptions, body: Body) -> None:
    """The network mode, and the ports published (which some modes cannot have)."""
    ports: list[dict[str, Any]] = []
    for p in items(body.get("ports"), "ports"):
        ports.extend([PortMapping.from_dict(p).to_dict()] if isinstance(p, dict) else parse_port(str(p)))
    o.ports = ports
    net = str(body.get("network") or "bridge")
    if net == "default":
        net = "bridge"
    if not (net in NETWORK_MODES or net.startswith("container:") or _NETWORK_NAME_RE.fullmatch(net)):
        raise InvalidArgument(f"invalid network {net!r}")
    if net == "container:":
        raise InvalidArgument("invalid network 'container:': name the container")
    o.network = net
    o.networks = list(dict.fromkeys(strings(body.get("networks"), "networks")))
    for extra in o.networks:
        if extra in NETWORK_MODES or extra.startswith("container:") or not _NETWORK_NAME_RE.fullmatch(extra):
            raise InvalidArgument(f"invalid network {extra!r}: only user-defined networks can be added")
    if o.networks and (net in NETWORK_MODES or net.startswith("container:")) and net != "bridge":
        raise InvalidArgument(f"network mode {net!r} cannot be combined with other networks")
    if net in o.networks:
        o.networks.remove(net)
    o.network_aliases = strings(body.get("network_aliases"), "network_aliases")
    for a in o.network_aliases:
        if not _NETWORK_NAME_RE.fullmatch(a):
            raise InvalidArgument(f"invalid --network-alias {a!r}: letters, digits, '_', '.', '-' only")
    if o.network_aliases and (net in NETWORK_MODES or net.startswith("container:")):
        raise InvalidArgument(f"--network-alias is only for user-defined networks, not network mode {net!r}")
    if ports and (net in ("host", "none", "pod") or net.startswith("container:")):
        raise InvalidArgument(f"port publishing is not possible with network mode {net!r}")
    prio = body.get("gw_priority") or {}
    if not isinstance(prio, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in prio.values()
    ):
        raise InvalidArgument("gw_priority must map network names to integers")
    for k in prio:
        if k not in (net, *o.networks):
            raise InvalidArgument(f"gw_priority names {k!r}, which is not one of the container's networks")
    o.gw_priority = {str(k): int(v) for k, v in prio.items() if v}


def _dns(o: CreateOptions, body: Body) -> None:
    o.dns = strings(body.get("dns"), "dns")
    o.dns_search = strings(body.get("dns_search"), "dns_search")
    o.dns_options = strings(body.get("dns_options"), "dns_options")
    for word in [*o.dns_search, *o.dns_options]:
        if not word or any(c.isspace() or c == "#" for c in word):
            raise InvalidArgument(f"invalid --dns-search/--dns-option {word!r}: one word each")
    o.add_hosts = strings(body.get("add_hosts"), "add_hosts")
    for h in o.add_hosts:
        if ":" not in h:
            raise InvalidArgument(f"invalid --add-host {h!r}: want HOST:IP")


def _stop_signal(o: CreateOptions, body: Body) -> None:
    sig = body.get("stop_signal")
    if sig:
        if isinstance(sig, bool) or not isinstance(sig, int | str):
            # JSON true would otherwise be taken as signal 1
            raise InvalidArgument(f"invalid signal {sig!r}")
        o.stop_signal = parse_signal(sig)


def _log_size(o: CreateOptions, body: Body) -> None:
    if body.get("log_size_max") not in (None, ""):
        o.log_size_max = parse_size(body["log_size_max"], "log size")


# The drivers whose logs docker reads back from a file, as podkit's log is; json-file's and
# local's rotation is logrotate.py's (local's defaults: 20m x 5, uncompressed here).
_LOG_DRIVERS = {"json-file": (None, None), "k8s-file": (None, None), "local": (20 << 20, 5)}
_LOG_OPTS = ("max-size", "max-file", "compress")


def _log_opts(o: CreateOptions, body: Body) -> None:
    """``--log-driver`` and ``--log-opt max-size=10m --log-opt max-file=3`` (a list of
    ``K=V`` or, from the Docker API, LogConfig.Config's object)."""
    driver = body.get("log_driver")
    if driver not in (None, ""):
        if not isinstance(driver, str) or driver not in _LOG_DRIVERS:
            raise InvalidArgument(
                f"log driver {driver!r} is not supported: podkit keeps each container's log in a "
                f"file it reads back (drivers {', '.join(sorted(_LOG_DRIVERS))})"
            )
        o.log_driver = driver
    raw = body.get("log_opts")
    if isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        pairs = [str(x).partition("=")[::2] for x in items(raw, "log_opts")]
        if any(not v for _, v in pairs):
            raise InvalidArgument(f"invalid log opt {raw!r}: want KEY=VALUE, e.g. max-size=10m")
    opts: dict[str, object] = {}
    for k, v in pairs:
        if k not in _LOG_OPTS:
            raise InvalidArgument(f"unknown log opt {k!r}: podkit takes {', '.join(_LOG_OPTS)}")
        opts[k] = v
    if str(opts.get("compress", "false")).lower() not in ("false", "0"):
        raise InvalidArgument("log opt compress is not supported: rotated log files are kept as they are")
    size, keep = _LOG_DRIVERS.get(o.log_driver or "json-file", (None, None))
    if body.get("log_max_file") not in (None, ""):  # the stored form
        keep = parse_int(body["log_max_file"], "log max-file", 1, 1000)
    if opts.get("max-size") not in (None, ""):
        size = parse_size(opts["max-size"], "log opt max-size")
        if size <= 0:
            raise InvalidArgument("log opt max-size must be more than 0")
    if opts.get("max-file") not in (None, ""):
        keep = parse_int(opts["max-file"], "log opt max-file", 1, 1000)
    if size is not None:
        o.log_size_max = size
    if keep is not None:
        o.log_max_file = keep


def _namespaces(o: CreateOptions, body: Body) -> None:
    nss = body.get("namespaces") or {}
    if not isinstance(nss, dict) or not set(nss) <= _JOINABLE_NS:
        raise InvalidArgument(f"namespaces must map some of {sorted(_JOINABLE_NS)} to paths")
    o.namespaces = {str(k): str(v) for k, v in nss.items()}


def _host_files(o: CreateOptions, body: Body) -> None:
    """Files a pod shares with its members: they must exist on the host."""
    for k in ("hosts_file", "resolv_file", "shm_path"):
        v = body.get(k)
        if v:
            if not isinstance(v, str) or not v.startswith("/"):
                raise InvalidArgument(f"{k} must be an absolute path")
            if not os.path.exists(v):
                raise InvalidArgument(f"{k} {v} does not exist")
            setattr(o, k, v)


def _shm_size(o: CreateOptions, body: Body) -> None:
    if body.get("shm_size") not in (None, ""):
        o.shm_size = parse_size(body["shm_size"], "shm size")


def _ignored(o: CreateOptions, body: Body) -> None:
    """Accepted for docker's sake, used by the client only (``detach_keys``)."""


def _log_path(o: CreateOptions, body: Body) -> None:
    lp = body.get("log_path")
    if lp:
        if not isinstance(lp, str) or not lp.startswith("/"):
            raise InvalidArgument(f"log_path must be an absolute path, got {lp!r}")
        o.log_path = os.path.normpath(lp)


def _stdin_once(o: CreateOptions, body: Body) -> None:
    if body.get("stdin_once") is not None:
        o.stdin_once = bool(body["stdin_once"])


def _cpu_list(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _cpusets(o: CreateOptions, body: Body) -> None:
    """``--cpuset-cpus`` / ``--cpuset-mems``: lists the host has online (docker checks it too)."""
    online = {
        "cpuset_cpus": "/sys/devices/system/cpu/online",
        "cpuset_mems": "/sys/devices/system/node/online",
    }
    for key, what in (("cpuset_cpus", "CPUs"), ("cpuset_mems", "memory nodes")):
        v = body.get(key)
        if v:
            if not isinstance(v, str) or not re.fullmatch(r"\d+(-\d+)?(,\d+(-\d+)?)*", v):
                raise InvalidArgument(f"invalid {key} {v!r}: expected a list like 0-2,4")
            if any(int(lo) > int(hi) for lo, _, hi in (p.partition("-") for p in v.split(",")) if hi):
                raise InvalidArgument(f"invalid {key} {v!r}: a range goes from low to high")
            try:
                with open(online[key]) as f:
                    available = f.read().strip()
            except OSError:
                available = ""  # no such file (no NUMA): nothing to check against
            if available and not _cpu_list(v) <= _cpu_list(available):
                raise InvalidArgument(
                    f"requested {what} are not available - requested {v}, available: {available}"
                )
            setattr(o, key, v)


def _group_add(o: CreateOptions, body: Body) -> None:
    """gids, or group names looked up in the container's /etc/group at each start."""
    out: list[int | str] = []
    for g in items(body.get("group_add"), "group_add"):
        if isinstance(g, str) and g.isdigit():
            g = int(g)
        if isinstance(g, str) and _GROUP_RE.fullmatch(g):
            out.append(g)
        elif isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < 1 << 32:
            raise InvalidArgument(f"invalid supplemental group {g!r}: want a gid or a group name")
        else:
            out.append(g)
    o.group_add = out


def _proc_paths(o: CreateOptions, body: Body) -> None:
    for key in ("masked_paths", "readonly_paths"):
        if body.get(key) is not None:
            paths = strings(body[key], key)
            bad = [x for x in paths if not x.startswith("/")]
            if bad:
                raise InvalidArgument(f"{key} must be absolute paths, got {bad[0]!r}")
            setattr(o, key, paths)


# docker's namespaced sysctls (what `docker run --sysctl` allows) and their namespace
_IPC_SYSCTLS = frozenset(
    ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem")
    + ("kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
)
_NS_MODE_RE = re.compile(r"^container:[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def _ns_mode(body: Body, key: str, flag: str, plain: tuple[str, ...]) -> str:
    """``--pid`` / ``--ipc``: ``host``, ``container:NAME`` or one of ``plain``; "" unset."""
    v = body.get(key)
    if v in (None, ""):
        return ""
    if not isinstance(v, str) or not (v in ("host", *plain) or _NS_MODE_RE.fullmatch(v)):
        choices = ", ".join(("host", "container:NAME", *plain))
        raise InvalidArgument(f"invalid {flag} {v!r}: want {choices}")
    return v


def _pid_ipc(o: CreateOptions, body: Body) -> None:
    """The pid and IPC namespaces: the container's own, the host's, or another container's."""
    o.pid = _ns_mode(body, "pid", "--pid", ("private",))
    o.ipc = _ns_mode(body, "ipc", "--ipc", ("private", "shareable", "none"))
    if o.pid == "private":
        o.pid = ""
    if o.ipc == "private":
        o.ipc = ""  # its own, which no other container can join (docker's default)
    if (o.pid or o.ipc) and (o.pod or o.namespaces):
        raise InvalidArgument("--pid/--ipc cannot be combined with --pod: the pod's namespaces are shared")


def _sysctls(o: CreateOptions, body: Body) -> None:
    """``--sysctl K=V``: namespaced ones only, in a namespace the container has of its own."""
    raw = body.get("sysctls")
    pairs: list[tuple[str, str]]
    if isinstance(raw, dict):
        pairs = [(str(k), str(v)) for k, v in raw.items()]
    else:
        pairs = []
        for e in strings(raw, "sysctls"):
            k, eq, v = e.partition("=")
            if not eq or not k:
                raise InvalidArgument(f"invalid --sysctl {e!r}: want KEY=VALUE")
            pairs.append((k, v))
    if pairs and (o.pod or o.namespaces):
        raise InvalidArgument(
            "--sysctl cannot be combined with --pod: set them on the pod (pod create --sysctl)"
        )
    out: dict[str, str] = {}
    for key, value in pairs:
        name = key.strip().replace("/", ".")
        if name.startswith("net.") and len(name) > 4:
            if o.network == "host":
                raise InvalidArgument(
                    f"sysctl {key!r} is not allowed with --network host: it would change the host"
                )
            if o.network.startswith("container:"):
                raise InvalidArgument(
                    f"sysctl {key!r} is not allowed when sharing another container's network"
                )
        elif name in _IPC_SYSCTLS or (name.startswith("fs.mqueue.") and len(name) > 10):
            if o.ipc and o.ipc not in ("shareable", "none"):
                raise InvalidArgument(
                    f"sysctl {key!r} is not allowed with --ipc {o.ipc}: the namespace is shared"
                )
        else:
            raise InvalidArgument(
                f"sysctl {key!r} is not allowed: only namespaced sysctls (net.*, kernel.shm*, "
                "kernel.msg*, kernel.sem, fs.mqueue.*) can be set in a container"
            )
        if "\n" in value or "\0" in value:
            raise InvalidArgument(f"invalid value for sysctl {key!r}")
        out[name] = value
    o.sysctls = out


def _publish_all(o: CreateOptions, body: Body) -> None:
    """``-P`` and ``--expose``: the ports are given host ports at create (create.py)."""
    o.publish_all = bool(body.get("publish_all"))
    o.expose = list(dict.fromkeys(p for e in strings(body.get("expose"), "expose") for p in parse_expose(e)))


def _volumes_from(o: CreateOptions, body: Body) -> None:
    """``--volumes-from CONTAINER[:ro|rw]``: resolved into mounts at create (create.py)."""
    out = []
    for v in strings(body.get("volumes_from"), "volumes_from"):
        name, _, mode = v.partition(":")
        if not NAME_RE.fullmatch(name) or mode not in ("", "ro", "rw"):
            raise InvalidArgument(f"invalid --volumes-from {v!r}: want CONTAINER[:ro|rw]")
        out.append(v)
    o.volumes_from = out


def _pull_platform(o: CreateOptions, body: Body) -> None:
    """``--pull always|missing|never`` and ``--platform`` (this host's only)."""
    pull = body.get("pull") or "missing"
    if pull not in ("always", "missing", "never"):
        raise InvalidArgument(f"invalid --pull {pull!r}: want always, missing or never")
    o.pull = str(pull)
    plat = body.get("platform")
    if plat:
        from podkit.images.oci import Platform

        want, host = Platform.parse(str(plat)), Platform.host()
        if not host.matches(want):
            raise InvalidArgument(
                f"platform {plat} is not this host's ({host}): podkit runs the host's platform only"
            )
        o.platform = str(want)


def _fixed_ip(o: CreateOptions, body: Body) -> None:
    """``--ip``: a fixed IPv4 address on the container's (first) user-defined network."""
    ip = body.get("ip")
    if not ip:
        return
    import ipaddress

    try:
        addr = ipaddress.IPv4Address(str(ip))
    except ValueError:
        raise InvalidArgument(f"invalid --ip {ip!r}: want an IPv4 address") from None
    if o.network in NETWORK_MODES or o.network.startswith("container:"):
        raise InvalidArgument("user specified IP address is supported on user defined networks only")
    o.ip = str(addr)


# The body keys each parser reads, in the order the checks run (the first error wins).
TABLE: tuple[tuple[tuple[str, ...], Parser], ...] = (
    (("name",), _name),
    (("cmd", "entrypoint"), _command),
    (("env", "env_file"), _env),
    (("workdir",), _workdir),
    (("user",), _user),
    (("hostname",), _hostname),
    (("domainname",), _domainname),
    (("labels", "annotations"), _labels),
    (("mounts", "volumes", "tmpfs"), _mounts),
    (("read_only",), _flag("read_only")),
    (("cap_add", "cap_drop"), _capabilities),
    (("privileged",), _flag("privileged")),
    (("no_new_privileges", "seccomp", "security_opt", "seccomp_profile"), _security),
    (("devices",), _devices),
    (("memory", "memory_swap", "memory_reservation"), _memory),
    (("cpus",), _cpus),
    (("cpu_shares",), _bounded("cpu_shares", "cpu shares", 2, 262144)),
    (("pids_limit",), _bounded("pids_limit", "pids limit", -1, 1 << 30)),
    (("ulimits",), _ulimits),
    (("init",), _flag("init")),
    (("restart", "restart_policy", "auto_remove"), _restart),
    (("ports", "network", "network_aliases", "networks", "gw_priority"), _network),
    (("healthcheck", "no_healthcheck"), _healthcheck),
    (("dns", "add_hosts", "dns_search", "dns_options"), _dns),
    (("stop_signal",), _stop_signal),
    (("stop_timeout",), _bounded("stop_timeout", "stop timeout", -1, 1 << 20, unset=(None,))),
    (("tty",), _flag("tty")),
    (("open_stdin",), _flag("open_stdin")),
    (("log_size_max",), _log_size),
    (("log_driver", "log_opts", "log_max_file"), _log_opts),
    (("pod",), _text("pod")),
    (("pod_id",), _text("pod_id")),
    (("namespaces",), _namespaces),
    (("cgroup_parent",), option_runtime.cgroup_parent),
    (("hosts_file", "resolv_file", "shm_path"), _host_files),
    (("shm_size",), _shm_size),
    (("infra",), _flag("infra")),
    (("log_path",), _log_path),
    (("stdin_once",), _stdin_once),
    (("cpu_period",), _bounded("cpu_period", "cpu period", 1000, 1_000_000)),
    (("cpu_quota",), _bounded("cpu_quota", "cpu quota", -1, 1 << 40)),
    (("cpuset_cpus", "cpuset_mems"), _cpusets),
    (("oom_score_adj",), _bounded("oom_score_adj", "oom score adj", -1000, 1000)),
    (("group_add",), _group_add),
    (("masked_paths", "readonly_paths"), _proc_paths),
    (("detach_keys",), _ignored),
    (("pid", "ipc"), _pid_ipc),
    (("sysctls",), _sysctls),
    (("publish_all", "expose"), _publish_all),
    (("volumes_from",), _volumes_from),
    (("pull", "platform"), _pull_platform),
    (("ip",), _fixed_ip),
    (("uts", "cgroupns", "userns"), option_runtime.namespaces),
    (("links",), option_runtime.links),
    (("mac_address",), option_runtime.mac_address),
    (("blkio_weight", "blkio_weight_device", *option_runtime.THROTTLE_KEYS), option_runtime.block_io),
    (("oom_kill_disable", "memory_swappiness", "kernel_memory"), option_runtime.memory_extras),
    (("device_cgroup_rules",), option_runtime.device_cgroup_rules),
    (option_runtime.REFUSED_KEYS, option_runtime.refused),
    (("use_api_socket",), _flag("use_api_socket")),
)
KNOWN_KEYS = frozenset({"image"}.union(*(keys for keys, _ in TABLE)))
