"""Files a user names in a request: env files and seccomp profiles.

The client reads them and sends their content, as docker's CLI does: the daemon then
never opens a path on a client's word. ``inline_files`` turns the ``env_file`` and
``security_opt seccomp=PATH`` of a container body into ``env`` entries and an inline
``seccomp_profile``; the CLI and the SDK call it before they send the body.

The daemon still accepts paths over the raw API (older clients, scripts). For those
``read_regular`` is the only way in: a FIFO would block the reader until someone
writes, a device such as /dev/zero never ends, and merely opening some devices has an
effect (a watchdog arms, a tape rewinds). So the path is opened with ``O_PATH`` first
(which never calls a driver's open), checked to be a regular file, and only then
re-opened through /proc/self/fd for reading, with a size bound.

Stdlib only: the CLI and the SDK import this.
"""

from __future__ import annotations

import os
import stat

from podkit.errors import InvalidArgument

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

ENV_FILE_MAX = 1 << 20
SECCOMP_PROFILE_MAX = 1 << 20


def read_regular(path: str, what: str, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes; InvalidArgument otherwise."""
    if not isinstance(path, str) or not path or "\0" in path:
        # (an int would be taken by os.open's callers as a descriptor of the daemon's own)
        raise InvalidArgument(f"invalid {what} {path!r}: want a path")
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError as e:
        raise InvalidArgument(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidArgument(f"{what} {path} is not a regular file")
        if st.st_size > limit:
            raise InvalidArgument(f"{what} {path} is larger than {limit} bytes")
        try:
            # The same inode the O_PATH descriptor holds: a swap of the name in between
            # cannot substitute something else.
            fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            raise InvalidArgument(f"cannot read {what} {path}: {e.strerror}") from None
    finally:
        os.close(pfd)
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)  # files in /proc and /sys report size 0
    if len(data) > limit:
        raise InvalidArgument(f"{what} {path} is larger than {limit} bytes")
    return data


def read_any(path: str, what: str, limit: int) -> bytes:
    """The client's read: any file the user may read (``<(...)`` is a pipe), bounded."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise InvalidArgument(f"cannot read {what} {path}: {e.strerror}") from None
    if len(data) > limit:
        raise InvalidArgument(f"{what} {path} is larger than {limit} bytes")
    return data


def parse_env_file(data: bytes, path: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """docker's --env-file syntax, as ``KEY=VALUE`` entries.

    One variable per line; leading white space is ignored, blank lines and lines that
    start with ``#`` are skipped. ``KEY=VALUE`` keeps VALUE exactly (quotes and trailing
    blanks included); a bare ``KEY`` takes its value from ``environ`` (the client's
    environment) and is dropped when unset there. A name with white space in it, a
    line with no name, or bytes that are not UTF-8 are errors naming the line.
    """
    env = os.environ if environ is None else environ
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out: list[str] = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(f"env file {path}: line {n} is not valid UTF-8") from None
        line = line.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not key:
            raise InvalidArgument(f"env file {path}: line {n} has no variable name")
        if any(c.isspace() for c in key):
            raise InvalidArgument(f"env file {path}: variable {key!r} on line {n} contains white space")
        if eq:
            out.append(f"{key}={value}")
        elif key in env:
            out.append(f"{key}={env[key]}")
    return out


def seccomp_profile(data: bytes, path: str) -> dict[str, Any]:
    """A seccomp profile file's JSON object, checked for the fields every profile has."""
    import json  # only with a profile file: json (with re) is not on the CLI's path

    try:
        profile = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise InvalidArgument(f"seccomp profile {path} is not valid JSON: {e}") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("defaultAction"), str):
        raise InvalidArgument(f"seccomp profile {path}: missing defaultAction")
    if not isinstance(profile.get("syscalls", []), list):
        raise InvalidArgument(f"seccomp profile {path}: syscalls must be a list")
    return profile


def split_security_opt(opt: object) -> tuple[str, str]:
    """``KEY=VALUE`` (or docker's older ``KEY:VALUE``) of a --security-opt.

    Split at the first '=' when there is one: a seccomp profile given inline is JSON,
    full of ':' that must stay where they are.
    """
    s = str(opt)
    k, _, v = s.partition("=") if "=" in s else s.partition(":")
    return k, v


def _is_seccomp(opt: object) -> bool:
    return split_security_opt(opt)[0] == "seccomp"


def _seccomp_path(value: object) -> str | None:
    """The file a seccomp setting names; None for default, unconfined or inline JSON."""
    v = str(value)
    if v in ("", "default", "unconfined") or v.lstrip().startswith("{"):
        return None
    return v


def inline_files(body: dict[str, Any]) -> dict[str, Any]:
    """A container body with the files it names read here, on the client side."""
    out = dict(body)
    files = out.pop("env_file", None) or []
    if isinstance(files, str):
        files = [files]
    if files:
        env: list[str] = []
        for f in files:
            env += parse_env_file(read_any(f, "env file", ENV_FILE_MAX), f)
        given = out.get("env") or []
        if isinstance(given, dict):
            given = [f"{k}={v}" for k, v in given.items()]
        out["env"] = env + list(given)  # -e after --env-file: the flags win, as in docker
    # The daemon's order: security_opt's last seccomp= wins over the seccomp field.
    opts = out.get("security_opt")
    opts = opts if isinstance(opts, list) else []
    last = next((so for so in reversed(opts) if _is_seccomp(so)), None)
    setting = split_security_opt(last)[1] if last is not None else out.get("seccomp")
    path = _seccomp_path(setting) if setting else None
    if path is not None:
        data = read_any(path, "seccomp profile", SECCOMP_PROFILE_MAX)
        out["seccomp_profile"] = seccomp_profile(data, path)
        out.pop("seccomp", None)
        out["security_opt"] = [so for so in opts if not _is_seccomp(so)]
    return out
