"""Removing what a container leaves in the runtime once it has ended: runc's state
(without spawning runc where that is safe) and conmon's files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from podkit.runtime.conmon import ConmonPaths
from podkit.runtime.runc import OCIRuntime


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
