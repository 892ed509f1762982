"""``Runtime.create``: a container created (not started) under a new conmon, or, when
that fails, nothing left of it (runc's state, conmon's files, the cgroup)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.errors import Conflict, InvalidArgument, NotFound
from podkit.runtime import conmon as conmon_mod
from podkit.runtime import proc_identity, teardown
from podkit.runtime.conmon import RuntimeCreateError
from podkit.runtime.runc import classify_start_error

if TYPE_CHECKING:
    from podkit.runtime.engine import Runtime

log = logging.getLogger(__name__)


async def create(
    rt: Runtime,
    cid: str,
    bundle: Path,
    *,
    name: str | None = None,
    log_path: str | Path | None = None,
    log_size_max: int | None = None,
    terminal: bool = False,
    stdin: bool = False,
    leave_stdin_open: bool = False,
    timeout: float = 60.0,
    spec: dict[str, Any] | None = None,
) -> int:
    """Create the container (not started) under a new conmon; returns its pid.

    ``spec``: the bundle's config.json as the caller just wrote it (saves reading it
    back); read from the bundle when not given.
    """
    rt.paths(cid)  # refuses an invalid id
    bundle = Path(bundle).resolve()
    config = bundle / "config.json"
    if spec is None:
        try:
            spec = json.loads(config.read_text())
        except FileNotFoundError:
            raise InvalidArgument(f"no config.json in bundle {bundle}") from None
    elif not config.is_file():
        raise InvalidArgument(f"no config.json in bundle {bundle}")
    # runc keeps one directory per container under its root: checking it saves
    # a runc invocation on every create.
    paths = rt.paths(cid)
    if (rt.oci.root / cid).exists() or rt.conmon_alive(cid):
        raise Conflict(f"container {cid} already exists in the runtime; delete it first")
    if paths.dir.exists():
        # Files of an earlier run that ended (or of a create cut short by a crash).
        teardown.remove_files(cid, paths, rt.bundle(cid))
    paths.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    cgroups_path = spec.get("linux", {}).get("cgroupsPath")
    # Written atomically: a daemon killed here must not leave half a file.
    tmp = paths.dir / ".meta.json.tmp"
    tmp.write_text(
        json.dumps(
            {
                "bundle": str(bundle),
                "cgroups_path": cgroups_path,
                "terminal": terminal,
                "stdin": stdin,
                "log_path": str(log_path) if log_path else None,
            }
        )
    )
    os.replace(tmp, paths.dir / "meta.json")
    runtime_args = [f"--root={rt.oci.root}", *rt.runtime_args]
    try:
        pid = await conmon_mod.launch(
            rt.conmon_path,
            rt.oci.binary,
            runtime_args,
            cid=cid,
            name=name or cid,
            bundle=bundle,
            paths=paths,
            log_path=str(log_path) if log_path else None,
            log_size_max=rt.log_size_max if log_size_max is None else log_size_max,
            terminal=terminal,
            stdin=stdin,
            leave_stdin_open=leave_stdin_open,
            timeout=timeout,
            place=rt.place_conmon,
        )
    except RuntimeCreateError as e:
        await _cleanup_failed(rt, cid)
        raise classify_start_error(e.message) from None
    except BaseException:
        await _cleanup_failed(rt, cid)
        raise
    _record_init(rt, cid, pid)
    log.debug("container %s created, pid %d", cid, pid)
    return pid


def _record_init(rt: Runtime, cid: str, pid: int) -> None:
    """Keep the start times of the init process and of conmon beside their pids in
    meta.json: what later proves a pid is still this container's (containers/
    process_root.py) or its conmon's (``Runtime.live_conmon``), after a restart too."""
    paths = rt.paths(cid)
    meta = json.loads((paths.dir / "meta.json").read_text())
    conmon = rt.conmon_pid(cid)
    for key, p in (("init", pid), ("conmon", conmon)):
        if not p:
            continue
        try:
            if key == "conmon" and (why := rt.conmon_check(cid, p)(p)) is not None:
                log.warning("container %s: its conmon's pid file names another process: %s", cid, why)
                continue
            meta.update({f"{key}_pid": p, f"{key}_start": proc_identity.start_time(p)})
        except (OSError, ValueError) as e:  # it ended already: nothing to name
            log.warning("container %s: the start time of its %s (pid %d) is unreadable: %r", cid, key, p, e)
    tmp = paths.dir / ".meta.json.tmp"
    try:
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, paths.dir / "meta.json")
    except OSError as e:  # a full disk: the container runs, its pids are checked less
        log.warning("container %s: recording its processes' start times failed: %r", cid, e)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


async def _cleanup_failed(rt: Runtime, cid: str) -> None:
    """Undo a failed create: the runtime's container, then our files and cgroup."""
    for what, undo in (("runtime state", rt.oci.delete), ("files", rt.delete)):
        try:
            await undo(cid, force=True)
        except NotFound:
            pass  # never got that far
        except Exception as e:  # the create's own error is the one to report
            log.warning("undoing the failed create of container %s: removing its %s: %s", cid, what, e)
