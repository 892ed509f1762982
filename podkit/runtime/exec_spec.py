"""The OCI process of an exec: the container's own (user, capabilities, rlimits,
environment...), with the exec's command, environment additions, directory and user."""

from __future__ import annotations

from typing import Any

from podkit.runtime.spec_options import User


def exec_process(
    base: dict[str, Any],
    args: list[str],
    *,
    env: list[str] | None = None,
    cwd: str | None = None,
    user: dict[str, Any] | User | None = None,
    terminal: bool = False,
) -> dict[str, Any]:
    """``base`` (the container's ``process``) changed for an exec; ``env`` entries win
    over the container's of the same name."""
    proc = dict(base)
    proc["args"] = list(args)
    proc["terminal"] = terminal
    proc.pop("consoleSize", None)
    if env:
        merged = {e.split("=", 1)[0]: e for e in base.get("env", [])}
        merged.update({e.split("=", 1)[0]: e for e in env})
        proc["env"] = list(merged.values())
    if cwd:
        proc["cwd"] = cwd
    if isinstance(user, User):
        user = {
            "uid": user.uid,
            "gid": user.gid,
            **({"additionalGids": sorted(set(user.additional_gids))} if user.additional_gids else {}),
        }
    if user is not None:
        proc["user"] = user
    return proc
