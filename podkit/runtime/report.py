"""What the runtime reports: a container's true state from runc's and conmon's files
(what a restarted daemon relies on), and the runtime's own facts for `podkit info`."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podkit.runtime.engine import Runtime

log = logging.getLogger(__name__)


async def inspect(rt: Runtime, cid: str) -> dict[str, Any]:
    """Everything known about a container's run, from runc and conmon's files.

    ``status`` is ``created|running|paused|exited|unknown``; ``exited`` comes
    with ``exit_code``, ``finished_at`` and ``oom_killed``. This is what a
    restarted daemon calls to learn each container's true state.
    """
    st = await rt.state(cid)
    exit_st = rt.exit_status(cid)
    info: dict[str, Any] = {
        "id": cid,
        "status": "unknown",
        "pid": None,
        "exit_code": None,
        "finished_at": None,
        "oom_killed": False,
        "conmon_pid": rt.conmon_pid(cid),
        "conmon_alive": rt.conmon_alive(cid),
    }
    if st is not None:
        info["status"] = st.get("status", "unknown")
        info["pid"] = st.get("pid") or None
    if exit_st is not None:
        info["status"] = "exited"
        info["exit_code"], info["finished_at"] = exit_st
        info["oom_killed"] = rt.oom_killed(cid)
    elif info["status"] == "stopped" or (st is None and rt.paths(cid).dir.exists()):
        # Ended without an exit file: conmon was killed (or the host rebooted).
        info["status"] = "exited" if st is not None else "unknown"
        info["oom_killed"] = rt.oom_killed(cid)
    elif info["status"] in ("running", "created", "paused") and not info["conmon_alive"]:
        log.warning("container %s is %s but its conmon is gone", cid, info["status"])
    return info


async def info(rt: Runtime) -> dict[str, Any]:
    """Runtime, conmon and cgroup facts for ``podkit info``."""
    out: dict[str, Any] = {"cgroup_mode": rt.cgroups.mode, "state_dir": str(rt.dir)}
    try:
        rc, o, _ = await rt.oci.run("--version", check=False)
        out["runtime"] = {
            "name": rt.oci.name,
            "path": rt.oci.binary,
            "version": o.decode(errors="replace").splitlines()[0] if o else None,
        }
    except Exception as e:
        out["runtime"] = {"error": str(e)}
    try:
        proc = await asyncio.create_subprocess_exec(
            rt.conmon_path,
            "--version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        o, _ = await proc.communicate()
        out["conmon"] = {
            "path": rt.conmon_path,
            "version": o.decode(errors="replace").splitlines()[0] if o else None,
        }
    except Exception as e:
        out["conmon"] = {"error": str(e)}
    return out
