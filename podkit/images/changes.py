"""Dockerfile-style ``--change`` instructions applied to an image config (``docker import -c``).

Supported: CMD, ENTRYPOINT (JSON or shell form), ENV, LABEL (``k=v ...`` or
``k v``), WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from podkit.errors import InvalidArgument


def _exec_form(arg: str, what: str) -> list[str]:
    arg = arg.strip()
    if arg.startswith("["):
        try:
            v = json.loads(arg)
        except ValueError:
            v = None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
        raise InvalidArgument(f"--change {what}: {arg!r} is not a JSON array of strings")
    if not arg:
        raise InvalidArgument(f"--change {what} needs an argument")
    return ["/bin/sh", "-c", arg]


def _pairs(arg: str, what: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(arg)
    except ValueError as e:
        raise InvalidArgument(f"--change {what}: {e}") from None
    if not words:
        raise InvalidArgument(f"--change {what} needs an argument")
    if "=" not in words[0]:
        # Legacy form: ENV key value with spaces
        key, _, value = arg.strip().partition(" ")
        return [(key, value.strip())]
    out = []
    for w in words:
        k, sep, v = w.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"--change {what}: {w!r} is not key=value")
        out.append((k, v))
    return out


_VAR = re.compile(r"\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


def _expand(value: str, env: list[str]) -> str:
    """$NAME and ${NAME} from the variables set so far, as a Dockerfile's ENV does; \\$ is a $."""
    known = dict(e.split("=", 1) for e in env if "=" in e)

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "\\$":
            return "$"
        return known.get(m.group(1) or m.group(2), "")

    return _VAR.sub(sub, value)


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Apply instructions to the ``config`` section of an image config (modified in place)."""
    for change in changes:
        change = change.strip()
        if not change:
            continue
        word, _, arg = change.partition(" ")
        if not arg:
            word, _, arg = change.partition("\t")
        op = word.upper()
        arg = arg.strip()
        if op == "CMD":
            config["Cmd"] = _exec_form(arg, op)
        elif op == "ENTRYPOINT":
            config["Entrypoint"] = _exec_form(arg, op)
        elif op == "ENV":
            env = [e for e in config.get("Env") or []]
            # Expanded with the variables from before this instruction, as docker does.
            for k, v in _pairs(_expand(arg, env), op):
                env = [e for e in env if e.split("=", 1)[0] != k]
                env.append(f"{k}={v}")
            config["Env"] = env
        elif op in ("WORKDIR", "USER") and "$" in arg:
            arg = _expand(arg, config.get("Env") or [])
            config["WorkingDir" if op == "WORKDIR" else "User"] = arg
        elif op == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(_pairs(arg, op))
            config["Labels"] = labels
        elif op == "WORKDIR":
            if not arg:
                raise InvalidArgument("--change WORKDIR needs a path")
            config["WorkingDir"] = arg
        elif op == "USER":
            if not arg:
                raise InvalidArgument("--change USER needs a user")
            config["User"] = arg
        elif op == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for p in arg.split():
                num, _, proto = p.partition("/")
                if not num.isdigit() or not 0 < int(num) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
                    raise InvalidArgument(f"--change EXPOSE: invalid port {p!r}")
                ports[f"{int(num)}/{proto or 'tcp'}"] = {}
            config["ExposedPorts"] = ports
        elif op == "VOLUME":
            vols = dict(config.get("Volumes") or {})
            paths = json.loads(arg) if arg.startswith("[") else arg.split()
            for v in paths:
                vols[v] = {}
            config["Volumes"] = vols
        elif op == "STOPSIGNAL":
            config["StopSignal"] = arg
        else:
            raise InvalidArgument(
                f"--change: unsupported instruction {word!r} (use CMD, ENTRYPOINT, ENV, LABEL, "
                "WORKDIR, USER, EXPOSE, VOLUME or STOPSIGNAL)"
            )
    return config
