"""Docker-style option values (``-v host:/ctr:ro``, ``-p 8080:80``, ``--memory 64m``) parsed.

Each parser takes what a JSON body may hold and either returns the value in the form
the containers layer stores, or raises ``InvalidArgument`` naming the offending value.
A wrong JSON type is refused here, at the point of the check; any other exception out
of a parser is a bug and surfaces as one (a 500 with a traceback in the daemon log).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from dataclasses import asdict, dataclass, field
from typing import Any

from podkit import userfiles
from podkit.errors import InvalidArgument
from podkit.limits import check_labels

# One parser each for signals (names, numbers, SIGRTMIN+n) and ulimits: the runtime's,
# the lower layer; parse_signal is re-exported for the service and the API.
from podkit.network.ports import parse_port_spec
from podkit.runtime.runc import parse_signal
from podkit.runtime.spec import Ulimit

__all__ = [
    "Mount",
    "parse_device",
    "parse_env",
    "parse_labels",
    "parse_port",
    "parse_restart",
    "parse_signal",
    "parse_size",
    "parse_tmpfs",
    "parse_ulimit",
    "parse_volume",
    "read_env_file",
    "validate_name",
]

# docker's rule: a name starts with an alphanumeric and goes on with [a-zA-Z0-9_.-].
NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ENV_KEY_RE = re.compile(r"^[^=\s]+$")
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
_VOLUME_FLAGS = frozenset(
    (
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
        "rro",  # read-only recursively (runc's rro): what the Docker API asks from 1.44 on
    )
)


def items(v: object, what: str) -> list[object]:
    """A JSON list field: missing or empty is ``[]``; anything but a list is refused."""
    if not v:
        return []
    if not isinstance(v, list):
        raise InvalidArgument(f"{what} must be a list")
    return list(v)


def strings(v: object, what: str) -> list[str]:
    """A JSON list of scalars, each taken as its string form (docker's CLI sends strings)."""
    return [str(x) for x in items(v, what)]


def strlist(v: object, what: str) -> list[str] | None:
    """An argv: a list of strings, or one string split the way a shell would."""
    if v is None:
        return None
    if isinstance(v, str):
        try:
            return shlex.split(v)
        except ValueError as e:  # an unclosed quote
            raise InvalidArgument(f"invalid {what} {v!r}: {e}") from None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InvalidArgument(f"{what} must be a list of strings")
    return list(v)


def parse_int(v: object, what: str, lo: int, hi: int) -> int:
    """An integer in ``lo..hi``, given as a JSON number or a string of digits."""
    if not isinstance(v, int | float | str):
        raise InvalidArgument(f"invalid {what} {v!r}: want an integer")
    try:
        n = int(v)
    except (ValueError, OverflowError):  # "x", or a float infinity
        raise InvalidArgument(f"invalid {what} {v!r}: want an integer") from None
    if not lo <= n <= hi:
        raise InvalidArgument(f"invalid {what} {v!r}: out of range {lo}..{hi}")
    return n


def parse_size(value: object, what: str = "size") -> int:
    """``64m`` / ``1g`` / ``512k`` / ``1024`` → bytes (binary units, as docker)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise InvalidArgument(f"invalid {what} {value}: must not be negative")
        return value
    m = _SIZE_RE.fullmatch(str(value).strip())
    if not m or m.group(2).lower() not in _UNITS:
        raise InvalidArgument(f"invalid {what} {value!r}: use a number with an optional unit b, k, m, g")
    n = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if n == float("inf"):  # hundreds of digits
        raise InvalidArgument(f"invalid {what} {value!r}: too large")
    return int(n)


def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name) or len(name) > 128:
        raise InvalidArgument(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return name.lstrip("/")


@dataclass
class Mount:
    """One mount of the container: a host bind, a named volume or a tmpfs."""

    type: str  # bind | volume | tmpfs | image (an image ID's read-only view: subpaths.py)
    target: str
    source: str = ""  # host path (bind) or volume name (volume)
    readonly: bool = False
    options: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mount:
        typ, target = d.get("type"), d.get("target")
        source = d.get("source") or ""
        options = d.get("options") or []
        if not isinstance(options, list):
            raise InvalidArgument(f"invalid mount {d!r}: options are a list of strings")
        if not isinstance(typ, str) or not isinstance(target, str) or not isinstance(source, str):
            raise InvalidArgument(f"invalid mount {d!r}: type, target, source and options are strings")
        if not all(isinstance(x, str) for x in options):
            raise InvalidArgument(f"invalid mount {d!r}: type, target, source and options are strings")
        if not target.startswith("/"):
            raise InvalidArgument(f"invalid mount {d!r}: target must be an absolute path")
        return cls(typ, target, source, bool(d.get("readonly")), list(options))


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
    if len(parts) > 1 and not src:
        # docker refuses it too; taking it as an anonymous volume hid a typo'd source
        raise InvalidArgument(
            f"invalid volume spec {spec!r}: empty source (an anonymous volume is just the path)"
        )
    if not dst.startswith("/"):
        raise InvalidArgument(f"invalid volume spec {spec!r}: container path {dst!r} must be absolute")
    if dst == "/":
        raise InvalidArgument(f"invalid volume spec {spec!r}: cannot mount over /")
    readonly = False
    extra: list[str] = []
    for o in opts:
        if o in ("ro", "rw"):
            readonly = o == "ro"
        elif o in _VOLUME_FLAGS:
            extra.append(o)
        else:
            raise InvalidArgument(f"invalid volume spec {spec!r}: unknown option {o!r}")
    dst = os.path.normpath(dst)
    if not src:
        return Mount("volume", dst, "", readonly, extra)
    if src.startswith("/"):
        return Mount("bind", dst, os.path.normpath(src), readonly, extra)
    if src.startswith(".") or not VOLUME_NAME_RE.fullmatch(src):
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
        elif k == "mode" and not re.fullmatch(r"^[0-7]{3,4}$", v):
            raise InvalidArgument(f"invalid tmpfs spec {spec!r}: mode must be octal")
    return Mount("tmpfs", os.path.normpath(path), "tmpfs", "ro" in opts, opts)


# docker's --mount keys, each with the name it is known by here
_MOUNT_KEYS = {
    "type": "type",
    "source": "source",
    "src": "source",
    "destination": "target",
    "dst": "target",
    "target": "target",
    "readonly": "readonly",
    "ro": "readonly",
    "bind-propagation": "bind-propagation",
    "bind-recursive": "bind-recursive",
    "bind-nonrecursive": "bind-nonrecursive",
    "volume-nocopy": "volume-nocopy",
    "volume-driver": "volume-driver",
    "volume-opt": "volume-opt",
    "volume-label": "volume-label",
    "volume-subpath": "volume-subpath",
    "tmpfs-size": "tmpfs-size",
    "tmpfs-mode": "tmpfs-mode",
    "consistency": "consistency",
}
_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


def is_mount_flag(spec: str) -> bool:
    """Is this a ``--mount`` value (``type=bind,src=...``) rather than a ``-v`` one?"""
    key = spec.split(",", 1)[0].partition("=")[0].strip().lower()
    return "=" in spec.split(",", 1)[0] and key in _MOUNT_KEYS


def _mount_bool(spec: str, key: str, v: str | None) -> bool:
    if v is None:
        return True
    if v.lower() in ("1", "true"):
        return True
    if v.lower() in ("0", "false"):
        return False
    raise InvalidArgument(f"invalid --mount {spec!r}: invalid value for {key!r}: {v!r} (want true or false)")


def parse_mount_flag(spec: str) -> Mount:
    """docker's ``--mount type=bind|volume|tmpfs,src=,dst=,readonly,...`` (comma-separated keys)."""
    fields: dict[str, str | None] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        k, eq, v = part.partition("=")
        k = k.strip().lower()
        if k not in _MOUNT_KEYS:
            raise InvalidArgument(f"invalid --mount {spec!r}: unexpected key {k!r} in {part!r}")
        fields[_MOUNT_KEYS[k]] = v if eq else None
    typ = fields.pop("type", None) or "volume"
    if typ not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"invalid --mount {spec!r}: type {typ!r} is not bind, volume or tmpfs")
    target = fields.pop("target", None)
    if not target:
        raise InvalidArgument(f"invalid --mount {spec!r}: target (dst) is required")
    if not target.startswith("/") or os.path.normpath(target) == "/":
        raise InvalidArgument(
            f"invalid --mount {spec!r}: target {target!r} must be an absolute path other than /"
        )
    source = fields.pop("source", None) or ""
    readonly = _mount_bool(spec, "readonly", fields.pop("readonly")) if "readonly" in fields else False
    fields.pop("consistency", None)  # macOS file sharing; nothing on Linux (docker ignores it too)
    opts: list[str] = []
    for k in fields:
        if not k.startswith(typ + "-"):
            raise InvalidArgument(f"invalid --mount {spec!r}: {k!r} does not apply to a {typ} mount")
    if typ == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(f"invalid --mount {spec!r}: a bind mount needs an absolute source path")
        prop = fields.get("bind-propagation")
        if prop is not None:
            if prop not in _PROPAGATIONS:
                raise InvalidArgument(
                    f"invalid --mount {spec!r}: bind-propagation {prop!r}: want " + ", ".join(_PROPAGATIONS)
                )
            opts.append(prop)
        if "bind-nonrecursive" in fields or fields.get("bind-recursive") not in (None, "enabled"):
            raise InvalidArgument(
                f"invalid --mount {spec!r}: non-recursive bind mounts are not supported by podkit"
            )
        source = os.path.normpath(source)
    elif typ == "volume":
        if source and (source.startswith("/") or not VOLUME_NAME_RE.fullmatch(source)):
            raise InvalidArgument(
                f"invalid --mount {spec!r}: volume source {source!r} is not a volume name "
                "([a-zA-Z0-9][a-zA-Z0-9_.-]*); use type=bind for a host path"
            )
        if "volume-nocopy" in fields and _mount_bool(spec, "volume-nocopy", fields["volume-nocopy"]):
            opts.append("nocopy")
        if (fields.get("volume-driver") or "local") != "local":
            raise InvalidArgument(f"invalid --mount {spec!r}: only the 'local' volume driver is available")
        if "volume-opt" in fields:
            raise InvalidArgument(f"invalid --mount {spec!r}: volume-opt: the local driver takes no options")
        if "volume-label" in fields:
            raise InvalidArgument(f"invalid --mount {spec!r}: volume-label is not supported by podkit")
        if "volume-subpath" in fields:
            from podkit.containers import subpaths

            if not source:
                raise InvalidArgument(f"invalid --mount {spec!r}: an anonymous volume has no subpath")
            opts.append(subpaths.OPTION + subpaths.check(fields["volume-subpath"] or ""))
    else:
        if source:
            raise InvalidArgument(f"invalid --mount {spec!r}: a tmpfs mount takes no source")
        source = "tmpfs"
        if fields.get("tmpfs-size") is not None:
            opts.append(f"size={parse_size(fields['tmpfs-size'], 'tmpfs-size')}")
        mode = fields.get("tmpfs-mode")
        if mode is not None:
            if not re.fullmatch(r"[0-7]{3,4}", mode):
                raise InvalidArgument(f"invalid --mount {spec!r}: tmpfs-mode {mode!r} must be octal (1777)")
            opts.append(f"mode={mode}")
    return Mount(typ, os.path.normpath(target), source, readonly, opts)


def parse_expose(spec: object) -> list[str]:
    """``--expose PORT[-END][/tcp|udp]`` → ``["80/tcp", ...]`` (docker's ExposedPorts keys)."""
    text = str(spec).strip()
    m = re.fullmatch(r"(\d+)(?:-(\d+))?(?:/(tcp|udp))?", text)
    if not m:
        raise InvalidArgument(f"invalid --expose {text!r}: want PORT[-END][/tcp|udp]")
    lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
    if not 1 <= lo <= hi <= 65535:
        raise InvalidArgument(f"invalid --expose {text!r}: ports are 1-65535, a range low-high")
    return [f"{p}/{m.group(3) or 'tcp'}" for p in range(lo, hi + 1)]


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


def parse_env(entries: object) -> list[str]:
    """``KEY=VAL`` strings (a list, or an object of keys to values).

    A bare ``KEY`` is dropped: the CLI and SDK resolve it from the *client's*
    environment (as docker's CLI does); the daemon's own environment (its paths,
    credentials, NOTIFY_SOCKET...) must never leak into a container.
    """
    if isinstance(entries, dict):
        entries = [f"{k}={v}" for k, v in entries.items()]
    out = []
    for e in items(entries, "env"):
        k, eq, v = str(e).partition("=")
        if not k or not _ENV_KEY_RE.fullmatch(k):
            raise InvalidArgument(f"invalid environment variable {e!r}: want KEY=VALUE")
        if not eq:
            continue
        out.append(f"{k}={v}")
    return out


def read_env_file(path: object) -> list[str]:
    """docker's --env-file, read by the daemon for a raw API client that sent a path.

    The CLI and the SDK send the content instead (podkit.userfiles.inline_files); a
    path here must name a small regular file (no FIFO, no device). A bare ``KEY`` line
    takes nothing from the daemon's own environment: it is dropped.
    """
    if not isinstance(path, str):
        raise InvalidArgument(f"invalid env file {path!r}: want a path")
    data = userfiles.read_regular(path, "env file", userfiles.ENV_FILE_MAX)
    return userfiles.parse_env_file(data, path, environ={})


def parse_labels(entries: object, what: str = "labels") -> dict[str, str]:
    """``KEY=VALUE`` strings, or an object of keys to values; bounded in size."""
    if isinstance(entries, dict):
        return dict(check_labels({str(k): str(v) for k, v in entries.items()}, what))
    out: dict[str, str] = {}
    for it in items(entries, what):
        k, _, v = str(it).partition("=")
        if not k:
            raise InvalidArgument(f"invalid label {it!r}: want KEY=VALUE")
        out[k] = v
    check_labels(out, what)
    return out


def parse_capability(c: object) -> str:
    s = str(c).strip().upper()
    if s == "ALL":
        return s
    if not s.startswith("CAP_"):
        s = "CAP_" + s
    if not re.fullmatch(r"^CAP_[A-Z_]+$", s):
        raise InvalidArgument(f"invalid capability {c!r}")
    return s


def merge_env(base: list[str], extra: list[str]) -> list[str]:
    """Environment lists merged by key; later entries win (image env, then the user's)."""
    out: dict[str, str] = {}
    for e in [*base, *extra]:
        k, _, v = e.partition("=")
        out[k] = v
    return [f"{k}={v}" for k, v in out.items()]
