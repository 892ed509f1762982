"""What a user asks for when creating a container, parsed and validated.

The API takes docker-style strings (``-v host:/ctr:ro``, ``-p 8080:80``, ``--memory 64m``)
so that the CLI and the SDK share one parser, here in the daemon: bad input is
refused with an ``InvalidArgument`` that names the offending value, before anything
is created.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import asdict, dataclass, field
from typing import Any

from podkit.errors import InvalidArgument

# One parser each for signals (names, numbers, SIGRTMIN+n) and ulimits: the runtime's,
# the lower layer; parse_signal is re-exported for the service and the API.
from podkit.network.ports import parse_port_spec
from podkit.runtime.runc import parse_signal
from podkit.runtime.spec import Ulimit

# docker's rule: a name starts with an alphanumeric and goes on with [a-zA-Z0-9_.-].
NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ENV_KEY_RE = re.compile(r"^[^=\s]+$")
_HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "tib": 1 << 40,
}
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
NETWORK_MODES = ("bridge", "host", "none", "pod")
_JOINABLE_NS = {"network", "ipc", "uts", "pid", "cgroup", "mount", "user"}


def parse_size(value: Any, what: str = "size") -> int:
    """``64m`` / ``1g`` / ``512k`` / ``1024`` → bytes (binary units, as docker)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InvalidArgument(f"invalid {what} {value}: must not be negative")
        return value
    m = _SIZE_RE.match(str(value).strip())
    if not m or m.group(2).lower() not in _UNITS:
        raise InvalidArgument(f"invalid {what} {value!r}: use a number with an optional unit b, k, m, g")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def validate_name(name: str) -> str:
    if not NAME_RE.match(name) or len(name) > 128:
        raise InvalidArgument(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


@dataclass
class Mount:
    """One mount of the container: a host bind, a named volume or a tmpfs."""

    type: str  # bind | volume | tmpfs
    target: str
    source: str = ""  # host path (bind) or volume name (volume)
    readonly: bool = False
    options: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mount:
        m = cls(
            d["type"],
            d["target"],
            d.get("source") or "",
            bool(d.get("readonly")),
            list(d.get("options") or []),
        )
        if not all(isinstance(x, str) for x in (m.type, m.target, m.source, *m.options)):
            raise InvalidArgument(f"invalid mount {d!r}: type, target, source and options are strings")
        if not m.target.startswith("/"):
            raise InvalidArgument(f"invalid mount {d!r}: target must be an absolute path")
        return m


def parse_volume(spec: str) -> Mount:
    """``-v`` syntax: ``/host:/ctr[:ro|rw]``, ``name:/ctr[:opts]`` or an anonymous ``/ctr``."""
    if not spec or not isinstance(spec, str):
        raise InvalidArgument(f"invalid volume spec {spec!r}")
    parts = spec.split(":")
    opts: list[str] = []
    if len(parts) == 1:
        src, dst = "", parts[0]
    elif len(parts) == 2:
        src, dst = parts
    elif len(parts) == 3:
        src, dst, o = parts
        opts = [x for x in o.split(",") if x]
    else:
        raise InvalidArgument(f"invalid volume spec {spec!r}: want SRC:DST[:ro|rw]")
    if not dst.startswith("/"):
        raise InvalidArgument(f"invalid volume spec {spec!r}: container path {dst!r} must be absolute")
    if dst == "/":
        raise InvalidArgument(f"invalid volume spec {spec!r}: cannot mount over /")
    readonly = False
    extra: list[str] = []
    for o in opts:
        if o == "ro":
            readonly = True
        elif o == "rw":
            readonly = False
        elif o in (
            "z",
            "Z",
            "private",
            "rprivate",
            "shared",
            "rshared",
            "slave",
            "rslave",
            "nocopy",
            "copy",
            "noexec",
            "nosuid",
            "nodev",
        ):
            extra.append(o)
        else:
            raise InvalidArgument(f"invalid volume spec {spec!r}: unknown option {o!r}")
    dst = os.path.normpath(dst)
    if not src:
        return Mount("volume", dst, "", readonly, extra)
    if src.startswith("/"):
        return Mount("bind", dst, os.path.normpath(src), readonly, extra)
    if src.startswith(".") or not VOLUME_NAME_RE.match(src):
        raise InvalidArgument(
            f"invalid volume spec {spec!r}: {src!r} is neither an absolute host path nor a "
            "volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)"
        )
    return Mount("volume", dst, src, readonly, extra)


def parse_tmpfs(spec: str) -> Mount:
    """``--tmpfs /path[:opt,opt]``: options are mount(8) options (size=64m, mode=1777...)."""
    path, _, o = spec.partition(":")
    if not path.startswith("/") or path == "/":
        raise InvalidArgument(f"invalid tmpfs spec {spec!r}: want an absolute path other than /")
    opts = [x for x in o.split(",") if x]
    for x in opts:
        k, _, v = x.partition("=")
        if k == "size" and v:
            parse_size(v, "tmpfs size")
        elif k == "mode" and not re.match(r"^[0-7]{3,4}$", v):
            raise InvalidArgument(f"invalid tmpfs spec {spec!r}: mode must be octal")
    return Mount("tmpfs", os.path.normpath(path), "tmpfs", "ro" in opts, opts)


def parse_port(spec: str) -> list[dict[str, Any]]:
    """``[ip:][host[-end]:]ctr[-end][/tcp|udp]`` → one mapping per port (the network layer's rules)."""
    return [asdict(m) for m in parse_port_spec(str(spec))]


def parse_restart(spec: str | None) -> dict[str, Any]:
    s = (spec or "no").strip()
    name, _, n = s.partition(":")
    if name not in RESTART_POLICIES:
        raise InvalidArgument(
            f"invalid restart policy {spec!r}: use no, on-failure[:N], always or unless-stopped"
        )
    retries = 0
    if n:
        if name != "on-failure":
            raise InvalidArgument(f"invalid restart policy {spec!r}: only on-failure takes a count")
        if not n.isdigit():
            raise InvalidArgument(f"invalid restart policy {spec!r}: retry count must be a number")
        retries = int(n)
    return {"name": name, "max_retries": retries}


def parse_ulimit(spec: str) -> tuple[str, int, int]:
    """``nofile=1024:2048`` (soft:hard) or ``nofile=1024``; -1 is unlimited."""
    u = Ulimit.parse(str(spec))
    return u.name, u.soft, u.hard


def parse_device(spec: str) -> dict[str, str]:
    """``/dev/host[:/dev/ctr[:rwm]]``."""
    parts = spec.split(":")
    if len(parts) > 3 or not parts[0].startswith("/"):
        raise InvalidArgument(f"invalid device {spec!r}: want /dev/HOST[:/dev/CTR[:rwm]]")
    host = parts[0]
    ctr = host
    perms = "rwm"
    if len(parts) >= 2:
        if parts[1].startswith("/"):
            ctr = parts[1]
        elif len(parts) == 2 and set(parts[1]) <= set("rwm"):
            perms = parts[1]
        else:
            raise InvalidArgument(f"invalid device {spec!r}: container path must be absolute")
    if len(parts) == 3:
        perms = parts[2]
    if not perms or not set(perms) <= set("rwm"):
        raise InvalidArgument(f"invalid device {spec!r}: permissions are a subset of 'rwm'")
    try:
        mode = os.stat(host).st_mode
    except OSError:
        raise InvalidArgument(f"invalid device {spec!r}: {host} does not exist on the host") from None
    # A directory stands for the devices in it (as docker allows); anything else must
    # be a device node, or the error would only come at start from the runtime.
    if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISDIR(mode)):
        raise InvalidArgument(f"invalid device {spec!r}: {host} is not a device node")
    return {"host": host, "container": ctr, "permissions": perms}


def parse_env(items: list[str] | dict[str, str] | None) -> list[str]:
    """``KEY=VAL`` strings; a bare ``KEY`` takes its value from the daemon's environment."""
    if not items:
        return []
    if isinstance(items, dict):
        items = [f"{k}={v}" for k, v in items.items()]
    out = []
    for e in items:
        k, eq, v = str(e).partition("=")
        if not k or not _ENV_KEY_RE.match(k):
            raise InvalidArgument(f"invalid environment variable {e!r}: want KEY=VALUE")
        if not eq:
            if k not in os.environ:
                continue
            v = os.environ[k]
        out.append(f"{k}={v}")
    return out


def read_env_file(path: str) -> list[str]:
    """docker's --env-file: KEY=VAL lines, # comments and blank lines skipped."""
    if not isinstance(path, str) or not path:
        # (an int would be taken by open() as a file descriptor of the daemon's own)
        raise InvalidArgument(f"invalid env file {path!r}: want a path")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"cannot read env file {path}: {e.strerror}") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def parse_labels(items: list[str] | dict[str, str] | None) -> dict[str, str]:
    if not items:
        return {}
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    out: dict[str, str] = {}
    for it in items:
        k, _, v = str(it).partition("=")
        if not k:
            raise InvalidArgument(f"invalid label {it!r}: want KEY=VALUE")
        out[k] = v
    return out


def _strlist(v: Any, what: str) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        import shlex

        return shlex.split(v)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"{what} must be a list of strings")
    return list(v)


@dataclass
class CreateOptions:
    """Everything a container is created from; stored as JSON with the container."""

    image: str
    name: str | None = None
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    domainname: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    mounts: list[Mount] = field(default_factory=list)
    read_only: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    seccomp: str = "default"  # default | unconfined | a host path to a JSON profile
    seccomp_profile: dict[str, Any] | None = None  # loaded from the file at create time
    no_new_privileges: bool = True
    devices: list[dict[str, str]] = field(default_factory=list)
    memory: int | None = None
    memory_swap: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    pids_limit: int | None = None
    ulimits: list[tuple[str, int, int]] = field(default_factory=list)
    init: bool = False
    restart: dict[str, Any] = field(default_factory=lambda: {"name": "no", "max_retries": 0})
    auto_remove: bool = False
    ports: list[dict[str, Any]] = field(default_factory=list)
    network: str = "bridge"
    dns: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)
    stop_signal: int | None = None
    stop_timeout: int | None = None
    tty: bool = False
    open_stdin: bool = False
    log_size_max: int | None = None
    # For the pods layer (see hooks.py): ``pod`` is what the client named (podkit run
    # --pod), resolved by a ContainerHooks.before_create into the fields below.
    pod: str | None = None
    pod_id: str | None = None
    namespaces: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str | None = None
    hosts_file: str | None = None
    resolv_file: str | None = None
    shm_path: str | None = None
    shm_size: int | None = None
    infra: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ulimits"] = [list(u) for u in self.ulimits]
        return d

    @classmethod
    def from_stored(cls, d: dict[str, Any]) -> CreateOptions:
        """Rebuild from our own JSON (already validated; no re-parsing)."""
        d = dict(d)
        d["mounts"] = [Mount.from_dict(m) for m in d.get("mounts") or []]
        d["ulimits"] = [tuple(u) for u in d.get("ulimits") or []]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def parse(cls, body: dict[str, Any]) -> CreateOptions:
        """Validate an API request body (docker-style strings allowed) into options."""
        try:
            return cls._parse(body)
        except (TypeError, ValueError, AttributeError, KeyError) as e:
            # a field of the wrong JSON type (a number where a list belongs, ...)
            raise InvalidArgument(f"invalid container options: {type(e).__name__}: {e}") from None

    @classmethod
    def _parse(cls, body: dict[str, Any]) -> CreateOptions:
        if not isinstance(body, dict):
            raise InvalidArgument("container options must be a JSON object")
        known = set(cls.__dataclass_fields__) | {
            "volumes",
            "tmpfs",
            "env_file",
            "security_opt",
            "restart_policy",
            "detach_keys",
        }
        unknown = sorted(set(body) - known)
        if unknown:
            raise InvalidArgument(f"unknown container option(s): {', '.join(unknown)}")
        image = body.get("image")
        if not image or not isinstance(image, str):
            raise InvalidArgument("an image is required")
        o = cls(image=image)
        if body.get("name"):
            o.name = validate_name(str(body["name"]))
        o.cmd = _strlist(body.get("cmd"), "cmd")
        ep = body.get("entrypoint")
        o.entrypoint = [] if ep == "" else _strlist(ep, "entrypoint")
        env = list(body.get("env") or []) if not isinstance(body.get("env"), dict) else body["env"]
        env_files = body.get("env_file") or []
        if isinstance(env_files, str) or not isinstance(env_files, list):
            raise InvalidArgument("env_file must be a list of paths")
        for f in env_files:
            env = read_env_file(f) + (env if isinstance(env, list) else [])
        o.env = parse_env(env)
        if body.get("workdir"):
            w = str(body["workdir"])
            if not w.startswith("/"):
                raise InvalidArgument(f"invalid working directory {w!r}: must be absolute")
            o.workdir = os.path.normpath(w)
        if body.get("user"):
            u = str(body["user"])
            if not re.match(r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$", u):
                raise InvalidArgument(f"invalid user {u!r}: want USER[:GROUP] (names or ids)")
            o.user = u
        if body.get("hostname"):
            h = str(body["hostname"])
            if not _HOSTNAME_RE.match(h):
                raise InvalidArgument(f"invalid hostname {h!r}")
            o.hostname = h
        o.domainname = str(body["domainname"]) if body.get("domainname") else None
        o.labels = parse_labels(body.get("labels"))
        o.annotations = parse_labels(body.get("annotations"))
        mounts: list[Mount] = []
        for m in body.get("mounts") or []:
            mounts.append(Mount.from_dict(m) if isinstance(m, dict) else parse_volume(str(m)))
        for v in body.get("volumes") or []:
            mounts.append(parse_volume(str(v)))
        for t in body.get("tmpfs") or []:
            mounts.append(parse_tmpfs(str(t)))
        seen: set[str] = set()
        for m in mounts:
            if m.type not in ("bind", "volume", "tmpfs"):
                raise InvalidArgument(f"invalid mount type {m.type!r}")
            if m.target in seen:
                raise InvalidArgument(f"duplicate mount point {m.target}")
            seen.add(m.target)
            if m.type == "bind" and not os.path.exists(m.source):
                raise InvalidArgument(f"bind source path does not exist: {m.source}")
        o.mounts = mounts
        o.read_only = bool(body.get("read_only"))
        o.cap_add = [_cap(c) for c in body.get("cap_add") or []]
        o.cap_drop = [_cap(c) for c in body.get("cap_drop") or []]
        o.privileged = bool(body.get("privileged"))
        o.no_new_privileges = bool(body.get("no_new_privileges", True))
        if body.get("seccomp"):
            o.seccomp = str(body["seccomp"])
        for so in body.get("security_opt") or []:
            k, _, v = str(so).replace(":", "=", 1).partition("=")
            if k == "seccomp":
                o.seccomp = v or "default"
            elif k == "no-new-privileges":
                o.no_new_privileges = v in ("", "true", "1")
            elif k in ("label", "apparmor"):
                continue  # not available here: accepted and ignored, like docker without LSMs
            else:
                raise InvalidArgument(f"invalid --security-opt {so!r}")
        if o.seccomp not in ("default", "unconfined"):
            import json

            try:
                with open(o.seccomp, encoding="utf-8") as f:
                    o.seccomp_profile = json.load(f)
            except (OSError, ValueError) as e:
                raise InvalidArgument(f"cannot load seccomp profile {o.seccomp}: {e}") from None
        elif body.get("seccomp_profile"):
            o.seccomp_profile = body["seccomp_profile"]
        o.devices = [
            parse_device(
                ":".join(str(d.get(k, "")) for k in ("host", "container", "permissions") if d.get(k))
                if isinstance(d, dict)
                else str(d)
            )
            for d in body.get("devices") or []
        ]
        if body.get("memory") not in (None, "", 0, "0"):
            o.memory = parse_size(body["memory"], "memory limit")
            if o.memory < 6 * 1024 * 1024:
                raise InvalidArgument("minimum memory limit allowed is 6MB")
        if body.get("memory_swap") not in (None, ""):
            o.memory_swap = -1 if str(body["memory_swap"]) == "-1" else parse_size(body["memory_swap"])
        if body.get("cpus") not in (None, "", 0):
            try:
                o.cpus = float(body["cpus"])
            except (TypeError, ValueError):
                raise InvalidArgument(f"invalid --cpus {body['cpus']!r}: want a number") from None
            if o.cpus <= 0 or o.cpus > (os.cpu_count() or 1) * 64:
                raise InvalidArgument(f"invalid --cpus {body['cpus']!r}: out of range")
        if body.get("cpu_shares") not in (None, "", 0):
            o.cpu_shares = _int(body["cpu_shares"], "cpu shares", 2, 262144)
        if body.get("pids_limit") not in (None, "", 0):
            o.pids_limit = _int(body["pids_limit"], "pids limit", -1, 1 << 30)
        ul = body.get("ulimits") or []
        o.ulimits = [parse_ulimit(u) if isinstance(u, str) else tuple(u) for u in ul]
        o.init = bool(body.get("init"))
        rp = body.get("restart", body.get("restart_policy"))
        o.restart = rp if isinstance(rp, dict) else parse_restart(rp)
        if o.restart.get("name") not in RESTART_POLICIES:
            raise InvalidArgument(f"invalid restart policy {rp!r}")
        o.auto_remove = bool(body.get("auto_remove"))
        if o.auto_remove and o.restart["name"] != "no":
            raise InvalidArgument("conflicting options: --restart and --rm")
        ports: list[dict[str, Any]] = []
        for p in body.get("ports") or []:
            ports.extend([p] if isinstance(p, dict) else parse_port(str(p)))
        o.ports = ports
        net = str(body.get("network") or "bridge")
        if net == "default":
            net = "bridge"
        named = re.match(r"^[a-zA-Z0-9][\w.-]*$", net)
        if not (net in NETWORK_MODES or net.startswith("container:") or named):
            raise InvalidArgument(f"invalid network {net!r}")
        if net.startswith("container:") and len(net) == len("container:"):
            raise InvalidArgument("invalid network 'container:': name the container")
        o.network = net
        if ports and (net in ("host", "none", "pod") or net.startswith("container:")):
            raise InvalidArgument(f"port publishing is not possible with network mode {net!r}")
        o.dns = [str(x) for x in body.get("dns") or []]
        o.add_hosts = [str(x) for x in body.get("add_hosts") or []]
        for h in o.add_hosts:
            if ":" not in h:
                raise InvalidArgument(f"invalid --add-host {h!r}: want HOST:IP")
        if body.get("stop_signal"):
            sig = body["stop_signal"]
            if isinstance(sig, bool) or not isinstance(sig, int | str):
                # JSON true would otherwise be taken as signal 1
                raise InvalidArgument(f"invalid signal {sig!r}")
            o.stop_signal = parse_signal(sig)
        if body.get("stop_timeout") is not None:
            o.stop_timeout = _int(body["stop_timeout"], "stop timeout", -1, 1 << 20)
        o.tty = bool(body.get("tty"))
        o.open_stdin = bool(body.get("open_stdin"))
        if body.get("log_size_max") not in (None, ""):
            o.log_size_max = parse_size(body["log_size_max"], "log size")
        o.pod = str(body["pod"]) if body.get("pod") else None
        o.pod_id = str(body["pod_id"]) if body.get("pod_id") else None
        nss = body.get("namespaces") or {}
        if not isinstance(nss, dict) or not set(nss) <= _JOINABLE_NS:
            raise InvalidArgument(f"namespaces must map some of {sorted(_JOINABLE_NS)} to paths")
        o.namespaces = {str(k): str(v) for k, v in nss.items()}
        o.cgroup_parent = str(body["cgroup_parent"]) if body.get("cgroup_parent") else None
        for k in ("hosts_file", "resolv_file", "shm_path"):
            v = body.get(k)
            if v:
                if not isinstance(v, str) or not v.startswith("/"):
                    raise InvalidArgument(f"{k} must be an absolute path")
                if not os.path.exists(v):
                    raise InvalidArgument(f"{k} {v} does not exist")
                setattr(o, k, str(v))
        if body.get("shm_size") not in (None, ""):
            o.shm_size = parse_size(body["shm_size"], "shm size")
        o.infra = bool(body.get("infra"))
        return o


def _int(v: Any, what: str, lo: int, hi: int) -> int:
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid {what} {v!r}: want an integer") from None
    if not lo <= n <= hi:
        raise InvalidArgument(f"invalid {what} {v!r}: out of range {lo}..{hi}")
    return n


def _cap(c: Any) -> str:
    s = str(c).strip().upper()
    if s == "ALL":
        return s
    if not s.startswith("CAP_"):
        s = "CAP_" + s
    if not re.match(r"^CAP_[A-Z_]+$", s):
        raise InvalidArgument(f"invalid capability {c!r}")
    return s


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Environment lists merged by key; later entries win (image env, then the user's)."""
    out: dict[str, str] = {}
    for e in [*base, *extra]:
        k, _, v = e.partition("=")
        out[k] = v
    return [f"{k}={v}" for k, v in out.items()]
