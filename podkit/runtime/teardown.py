"""Removing a container from the runtime (``Runtime.delete``): runc's state (without
spawning runc where that is safe once it has ended), conmon's files, the cgroup."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal as signal_mod
from pathlib import Path
from typing import TYPE_CHECKING

from podkit.errors import Conflict, NotFound
from podkit.runtime.cgroups import REMOVE_SETTLE
from podkit.runtime.conmon_files import ConmonPaths
from podkit.runtime.runc import OCIRuntime

if TYPE_CHECKING:
    from podkit.runtime.engine import Runtime

log = logging.getLogger(__name__)


def delete_ended(oci: OCIRuntime, cid: str) -> bool:
    """``runc delete`` of a container whose init has ended, without spawning runc.

    For such a container runc removes its cgroups and its state dir, runs poststop
    hooks, and kills what is left of it when it shared a pid namespace. Done here
    (~7 ms less on every exit) only where the first two are all there is: runc, own
    pid namespace (the kernel killed the rest with init), no poststop hooks. False
    leaves it to runc (also when a cgroup is still busy: runc retries).
    """
    if oci.name != "runc":
        return False
    d = oci.root / cid
    try:
        st = json.loads((d / "state.json").read_text())
        cfg = st["config"]
        own_pid = any(n.get("type") == "NEWPID" and not n.get("path") for n in cfg.get("namespaces") or [])
        if not own_pid or (cfg.get("Hooks") or {}).get("poststop"):
            return False
        cgroup_dirs = [Path(p) for p in (st.get("cgroup_paths") or {}).values() if p]
    except FileNotFoundError:
        return not d.exists()  # runc has nothing of it (runc delete would say so)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    for top in cgroup_dirs:
        if not top.is_dir():
            continue
        for dp, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(dp)
            except FileNotFoundError:
                pass
            except OSError:
                return False
    shutil.rmtree(d, ignore_errors=True)
    return not d.exists()


def remove_files(cid: str, paths: ConmonPaths, bundle: Path | None) -> None:
    """conmon's files of a container, its exit file and links, the bundle's sockets."""
    shutil.rmtree(paths.dir, ignore_errors=True)
    for f in (paths.exit_file, paths.socket_link):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    # The attach link under a shortened name (see attach()).
    with contextlib.suppress(OSError):
        for entry in os.scandir(paths.socket_dir):
            if entry.is_symlink() and cid.startswith(entry.name):
                os.unlink(entry.path)
    if bundle is not None:
        for name in ("attach", "ctl", "winsz", "oom"):
            with contextlib.suppress(OSError):
                (bundle / name).unlink()


async def delete(rt: Runtime, cid: str, force: bool = False, timeout: float = 10.0) -> None:
    """Remove the container from the runtime: runc state, conmon files, cgroup.

    Without ``force`` a running container is a Conflict; with it, it is killed.
    """
    paths = rt.paths(cid)
    cgroups_path = rt.cgroup_path(cid)
    bundle = rt.bundle(cid)
    if rt.exit_status(cid) is not None:
        # Ended (conmon says so): no need to ask runc for its state first. Mostly conmon
        # is gone too (its exit is what the watcher awaited): then everything goes in
        # one worker thread's turn.
        gone = await asyncio.to_thread(_delete_ended_whole, rt, cid, paths, bundle, cgroups_path)
        if gone:
            return
        if gone is None:
            await rt.oci.delete(cid, force=True)
    else:
        st = await rt.oci.state(cid)
        if st is not None and st.get("status") in ("running", "paused") and not force:
            raise Conflict(f"container {cid} is {st['status']}; stop it first or force")
        if st is not None:
            await rt.oci.delete(cid, force=True)
    # runc delete killed what was left; let conmon record it and exit.
    if rt.conmon_alive(cid):
        from podkit.runtime.wait import wait

        with contextlib.suppress(TimeoutError, NotFound):
            await wait(rt, cid, timeout=timeout)
        rt.signal_conmon(cid, signal_mod.SIGKILL)  # only if it is still its conmon
    # In a worker thread: unlinking conmon's files and rmdir-ing cgroups took ~20 ms
    # of the event loop per container here (measured with cProfile, issue 8 item 4).
    await asyncio.to_thread(_remove_files_and_cgroup, rt, cid, paths, bundle, cgroups_path)


def _delete_ended_whole(
    rt: Runtime, cid: str, paths: ConmonPaths, bundle: Path | None, cgroups_path: str | None
) -> bool | None:
    """An ended container's runc state without runc, then, if its conmon has exited,
    conmon's files and the cgroup: True when all is gone; False when conmon still
    runs; None when runc must delete it (``delete_ended`` says when)."""
    if not delete_ended(rt.oci, cid):
        return None
    if rt.conmon_alive(cid):
        return False
    _remove_files_and_cgroup(rt, cid, paths, bundle, cgroups_path)
    return True


def _remove_files_and_cgroup(
    rt: Runtime, cid: str, paths: ConmonPaths, bundle: Path | None, cgroups_path: str | None
) -> None:
    remove_files(cid, paths, bundle)
    if cgroups_path:
        try:
            rt.cgroups.remove(cgroups_path, settle=REMOVE_SETTLE, kill=True)
        except Exception as e:  # the container is gone; a cgroup left over is only logged
            log.warning("container %s: removing its cgroup %s: %s", cid, cgroups_path, e)
