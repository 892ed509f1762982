"""``Runtime``: containers run by an OCI runtime (runc) under one conmon each.

This is the runtime layer's entry point; the container and pod services call it
with container ids and OCI bundles they prepared (``spec.build_spec`` ->
``write_bundle``). Life of a container:

1. ``create(id, bundle, log_path=...)`` starts conmon, which runs
   ``runc create`` (stdio -> CRI log file + attach socket) and reports the
   container's pid; the process waits, not yet exec'd. A missing or
   non-executable command fails here with ``CommandNotFound``/``CannotExecute``
   (docker's 127/126) and nothing is left behind.
2. ``start(id)`` -> ``runc start``; the process runs.
3. ``kill``/``pause``/``resume``/``update``/``ps``/``exec``/``attach`` while it runs.
4. When it ends conmon writes its exit code to ``<state>/exits/<id>``
   (``exit_status(id)`` -> ``(code, finished_at)``), an ``oom`` file if the OOM
   killer struck (``oom_killed(id)``), and exits. ``wait(id)`` waits for that.
5. ``delete(id)`` removes the runtime's state, the conmon files and the cgroup.

State on disk, under ``<state>/runtime`` (per boot): ``runc/`` (runc's --root),
``containers/<id>/`` (conmon pid files, runtime log, conmon's persist dir, a
``meta.json`` with the bundle and cgroup paths), ``exits/<id>``,
``sockets/<id>`` (link to the bundle, which holds conmon's ``attach`` socket and
``ctl`` fifo). Everything a restarted daemon needs to recover a container's true
state is there: ``runc state`` says running/paused/stopped, the exit file gives
the code of one that ended while the daemon was away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal as signal_mod
from pathlib import Path
from typing import Any

from podkit.errors import Conflict, InvalidArgument, NotFound
from podkit.runtime import conmon as conmon_mod
from podkit.runtime import create as _create
from podkit.runtime import proc_identity, report, teardown
from podkit.runtime import wait as _wait
from podkit.runtime.cgroups import CgroupManager
from podkit.runtime.conmon import AttachSession, ConmonPaths
from podkit.runtime.exec import ExecProcess
from podkit.runtime.exec_spec import exec_process
from podkit.runtime.exec_start import start_exec
from podkit.runtime.runc import OCIRuntime, find_binary, parse_signal
from podkit.runtime.spec import Resources, User

log = logging.getLogger(__name__)

DEFAULT_LOG_SIZE_MAX = 10 * 1024 * 1024
# conmons live in a cgroup of their own, not the daemon's: a service manager
# stopping podkitd (systemd kills the unit's cgroup) must not kill them.
DEFAULT_CONMON_CGROUP = "/podkit/conmon"


def write_bundle(bundle: Path, spec: dict[str, Any]) -> Path:
    """Write ``config.json`` into ``bundle`` (created if needed) atomically."""
    bundle = Path(bundle)
    bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = bundle / ".config.json.tmp"
    tmp.write_text(json.dumps(spec, indent=1))
    os.replace(tmp, bundle / "config.json")
    return bundle / "config.json"


def choose_runtime(cgroup_mode: str) -> str:
    """``"auto"``: crun where it works, else runc. crun (1.8) refuses hybrid cgroups."""
    if cgroup_mode != "hybrid" and shutil.which("crun"):
        return "crun"
    return "runc"


def _valid_id(cid: str) -> str:
    if not cid or "/" in cid or cid in (".", "..") or len(cid) > 128:
        raise InvalidArgument(f"invalid container id {cid!r}")
    return cid


class Runtime:
    """Runs containers with ``runtime`` (runc) under ``conmon``; state under ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        *,
        runtime: str = "runc",
        conmon: str = "conmon",
        runtime_args: list[str] | None = None,
        cgroups: CgroupManager | None = None,
        log_size_max: int = DEFAULT_LOG_SIZE_MAX,
        conmon_cgroup: str | None = DEFAULT_CONMON_CGROUP,
    ) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o711)
        self._runtime_name = runtime
        self._conmon_name = conmon
        self._runtime: OCIRuntime | None = None
        self._conmon: str | None = None
        self.runtime_args = list(runtime_args or [])
        self._cgroups = cgroups
        self.log_size_max = log_size_max
        self.conmon_cgroup = conmon_cgroup
        self.exit_dir = self.dir / "exits"
        self.socket_dir = self.dir / "sockets"
        self.containers_dir = self.dir / "containers"

    @classmethod
    def from_config(cls, section: dict[str, Any], state: Path) -> Runtime:
        """Build from podkitd's ``[runtime]`` section and its state dir.

        Keys: ``runtime`` (name or path; ``"auto"`` = crun where it works, else
        runc; default runc), ``conmon`` (name or path), ``runtime_args`` (list),
        ``log_size_max`` (bytes per container log file, default 10 MiB),
        ``conmon_cgroup`` (cgroup path for the monitors, ``""`` to leave them in
        the daemon's).
        """
        return cls(
            Path(state) / "runtime",
            runtime=str(section.get("runtime", "runc")),
            conmon=str(section.get("conmon", "conmon")),
            runtime_args=[str(a) for a in section.get("runtime_args", [])],
            log_size_max=int(section.get("log_size_max", DEFAULT_LOG_SIZE_MAX)),
            conmon_cgroup=str(section.get("conmon_cgroup", DEFAULT_CONMON_CGROUP)) or None,
        )

    # ------------------------------------------------------------ parts

    @property
    def oci(self) -> OCIRuntime:
        if self._runtime is None:
            name = self._runtime_name
            if name == "auto":
                name = choose_runtime(self.cgroups.mode)
            binary = find_binary(name)
            # Each runtime keeps its own state root (their formats differ).
            self._runtime = OCIRuntime(binary, self.dir / os.path.basename(binary))
        return self._runtime

    @property
    def conmon_path(self) -> str:
        if self._conmon is None:
            self._conmon = find_binary(self._conmon_name)
        return self._conmon

    @property
    def cgroups(self) -> CgroupManager:
        if self._cgroups is None:
            self._cgroups = CgroupManager()
        return self._cgroups

    def paths(self, cid: str) -> ConmonPaths:
        return ConmonPaths(self.containers_dir / _valid_id(cid), self.exit_dir, self.socket_dir, cid)

    def _meta(self, cid: str) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads((self.paths(cid).dir / "meta.json").read_text())
            return meta
        except (OSError, ValueError):
            return {}

    def bundle(self, cid: str) -> Path | None:
        b = self._meta(cid).get("bundle")
        return Path(b) if b else None

    def cgroup_path(self, cid: str) -> str | None:
        return self._meta(cid).get("cgroups_path")

    def known(self) -> list[str]:
        """Ids of containers this runtime has state for (for recovery after a restart)."""
        if not self.containers_dir.is_dir():
            return []
        return sorted(p.name for p in self.containers_dir.iterdir() if p.is_dir())

    # -------------------------------------------------------- lifecycle

    async def create(
        self,
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
        """Create the container (not started) under a new conmon; returns its pid
        (``spec``: the bundle's config.json, if the caller has it at hand)."""
        return await _create.create(
            self,
            cid,
            bundle,
            name=name,
            log_path=log_path,
            log_size_max=log_size_max,
            terminal=terminal,
            stdin=stdin,
            leave_stdin_open=leave_stdin_open,
            timeout=timeout,
            spec=spec,
        )

    def init_start(self, cid: str, pid: int) -> int | None:
        """The start time recorded at create for ``pid`` as the container's init (None:
        not recorded, or recorded for another pid); see containers/process_root.py."""
        meta = self._meta(cid)
        start = meta.get("init_start")
        return start if meta.get("init_pid") == pid and isinstance(start, int) else None

    def place_conmon(self, pid: int) -> None:
        """Move a long-lived conmon into the monitors' cgroup (its launch calls this)."""
        if self.conmon_cgroup:
            self.cgroups.add_process(self.conmon_cgroup, pid)

    async def start(self, cid: str) -> None:
        """Run the created container's process (Conflict unless it is in state created)."""
        if not (self.oci.root / _valid_id(cid)).exists():
            raise NotFound(f"container {cid} does not exist in the runtime")
        await self.oci.start(cid, self.created_pid(cid))

    def created_pid(self, cid: str) -> int | None:
        """The init's pid as ``runc create`` wrote it (its --pid-file; None if unread)."""
        return conmon_mod.read_pid(self.paths(cid).pidfile)

    async def kill(self, cid: str, signal: int | str = signal_mod.SIGTERM, all: bool = False) -> None:
        """Send ``signal`` to the container's init (every process with ``all``)."""
        await self.oci.kill(cid, parse_signal(signal), all=all)

    async def stop(
        self, cid: str, signal: int | str = signal_mod.SIGTERM, timeout: float = 10.0
    ) -> tuple[int, float]:
        """``signal``, then SIGKILL to every process after ``timeout`` seconds; the exit status.

        A paused container is resumed after the signal so that it can act on it.
        """
        return await _wait.stop(self, cid, signal, timeout)

    async def state(self, cid: str) -> dict[str, Any] | None:
        """runc's state (``status``: created, running, paused, stopped) or None if unknown."""
        return await self.oci.state(_valid_id(cid))

    async def status(self, cid: str) -> str:
        """``created|running|paused|stopped|unknown`` - runc's answer checked against conmon."""
        st = await self.state(cid)
        if st is None:
            return "stopped" if self.exit_status(cid) is not None else "unknown"
        return str(st.get("status", "unknown"))

    async def pause(self, cid: str) -> None:
        await self.oci.pause(cid)

    async def resume(self, cid: str) -> None:
        await self.oci.resume(cid)

    async def update(self, cid: str, resources: dict[str, Any] | Resources) -> None:
        """``runc update`` with OCI ``linux.resources`` (or a ``spec.Resources``)."""
        if isinstance(resources, Resources):
            resources = resources.to_oci()
        await self.oci.update(cid, resources)

    async def ps(self, cid: str) -> list[int]:
        """Host pids of the container's processes."""
        return await self.oci.ps(cid)

    def conmon_pid(self, cid: str) -> int | None:
        """The pid in conmon's pid file: a number only, maybe another process's by now
        (``live_conmon`` checks it)."""
        return conmon_mod.read_pid(self.paths(cid).conmon_pidfile)

    def conmon_check(self, cid: str, pid: int) -> proc_identity.Check:
        """What proves ``pid`` is this container's conmon: the start time recorded at
        create, else (a container of an older podkitd) conmon's binary running with
        ``-c <id>``."""

        def check(p: int) -> str | None:
            meta = self._meta(cid)  # read when asked: a pid already gone needs none of it
            start = meta.get("conmon_start")
            if meta.get("conmon_pid") == pid and isinstance(start, int):
                return proc_identity.started_at(start)(p)
            return proc_identity.runs(self.conmon_path, "-c", cid)(p)

        return check

    def live_conmon(self, cid: str) -> int | None:
        """The pid of the container's conmon if it runs (and is that conmon, not a later
        holder of its number; a mismatch is logged)."""
        pid = self.conmon_pid(cid)
        if not pid:
            return None
        try:
            if proc_identity.read_stat(pid).state == "Z":
                return None
            why = self.conmon_check(cid, pid)(pid)
        except (OSError, ValueError):
            return None
        if why is not None:
            log.warning("container %s: its conmon is gone: %s", cid, why)
            return None
        return pid

    def conmon_alive(self, cid: str) -> bool:
        return self.live_conmon(cid) is not None

    def open_conmon(self, cid: str) -> int:
        """A pidfd of the container's conmon, checked (proc_identity.open_checked);
        NotFound when it is gone or its pid names another process."""
        pid = self.conmon_pid(cid)
        if not pid:
            raise NotFound(f"container {cid} has no conmon")
        return proc_identity.open_checked(pid, self.conmon_check(cid, pid), f"conmon of {cid}")

    def signal_conmon(self, cid: str, sig: int) -> bool:
        """``sig`` to the container's conmon through a checked pidfd; False when there
        is none (gone, or its pid names another process: never signalled)."""
        pid = self.conmon_pid(cid)
        if not pid:
            return False
        return proc_identity.send(pid, sig, self.conmon_check(cid, pid), f"conmon of {cid}")

    def exit_status(self, cid: str) -> tuple[int, float] | None:
        """``(exit code, finished_at epoch seconds)`` once conmon saw the container end."""
        return conmon_mod.read_exit_file(self.paths(cid).exit_file)

    def oom_killed(self, cid: str) -> bool:
        """Whether the OOM killer struck the container (conmon's oom file, then its cgroup)."""
        p = self.paths(cid)
        if (p.persist_dir / "oom").exists():
            return True
        b = self.bundle(cid)
        if b is not None and (b / "oom").exists():
            return True
        cg = self.cgroup_path(cid)
        if cg:
            try:
                return self.cgroups.oom_killed(cg)
            except Exception as e:  # the cgroup is gone already: no OOM record to read
                log.debug("container %s: cannot read OOM events of %s: %s", cid, cg, e)
        return False

    async def wait(self, cid: str, timeout: float | None = None) -> tuple[int, float]:
        """Wait until the container ended; its ``(exit code, finished_at)``."""
        return await _wait.wait(self, cid, timeout)

    async def delete(self, cid: str, force: bool = False, timeout: float = 10.0) -> None:
        """Remove the container from the runtime: runc state, conmon files, cgroup.

        Without ``force`` a running container is a Conflict; with it, it is killed.
        """
        await teardown.delete(self, cid, force, timeout)

    def stats(self, cid: str) -> dict[str, Any]:
        """cgroup usage of the container (see ``CgroupManager.stats``)."""
        cg = self.cgroup_path(cid)
        if not cg:
            raise NotFound(f"container {cid} has no cgroup")
        return self.cgroups.stats(cg)

    async def inspect(self, cid: str) -> dict[str, Any]:
        """Everything known about a container's run (see podkit.runtime.report.inspect)."""
        return await report.inspect(self, cid)

    async def inspect_all(self) -> dict[str, dict[str, Any]]:
        """``inspect`` of every container with runtime state (a restarted daemon's view)."""
        out: dict[str, dict[str, Any]] = {}
        for cid in self.known():
            try:
                out[cid] = await self.inspect(cid)
            except Exception as e:  # one broken container must not hide the others
                log.warning("cannot inspect container %s: %s", cid, e)
                out[cid] = {"id": cid, "status": "unknown", "error": str(e)}
        return out

    async def info(self) -> dict[str, Any]:
        """Runtime, conmon and cgroup facts for ``podkit info``."""
        return await report.info(self)

    # ------------------------------------------------------------ I/O

    async def attach(self, cid: str) -> AttachSession:
        """Connect to the container's stdio through conmon (read/write/resize/close)."""
        bundle = self.bundle(cid)
        if bundle is None:
            raise NotFound(f"container {cid} does not exist in the runtime")
        # conmon binds the socket in the bundle (reached through a link under the socket
        # dir whose name it shortens when the path would be too long): the bundle's name
        # is the one that is always right.
        return await AttachSession.connect(bundle / "attach", bundle / "ctl", cid)

    async def resize(self, cid: str, height: int, width: int) -> None:
        bundle = self.bundle(cid)
        if bundle is None:
            raise NotFound(f"container {cid} does not exist in the runtime")
        await asyncio.to_thread(conmon_mod.write_ctl, bundle / "ctl", f"1 {int(height)} {int(width)}\n")

    async def reopen_log(self, cid: str) -> None:
        """Have conmon reopen its log file (the CRI's ReopenContainerLog, after the kubelet
        rotated it): message type 2 on the control fifo."""
        bundle = self.bundle(cid)
        if bundle is None:
            raise NotFound(f"container {cid} does not exist in the runtime")
        await asyncio.to_thread(conmon_mod.write_ctl, bundle / "ctl", "2 0 0\n")

    async def exec(
        self,
        cid: str,
        process: dict[str, Any],
        *,
        stdin: bool = False,
        console_size: tuple[int, int] | None = None,
        detach: bool = False,
    ) -> ExecProcess:
        """Run an OCI ``process`` (args, env, cwd, user, terminal, capabilities...) in the container.

        The capabilities, no-new-privileges, apparmor/seccomp of the container apply
        (runc takes them from the container unless ``process`` overrides them).
        """
        st = await self.state(cid)
        if st is None:
            raise NotFound(f"container {cid} does not exist in the runtime")
        if st.get("status") != "running":
            raise Conflict(f"container {cid} is {st.get('status')}, not running")
        bundle = self.bundle(cid)
        return await start_exec(
            self.oci,
            cid,
            process,
            self.paths(cid).dir,
            stdin=stdin,
            console_size=console_size,
            detach=detach,
            conmon=None if process.get("terminal") and not detach else self.conmon_path,
            bundle=bundle,
        )

    def process_from_spec(
        self,
        cid: str,
        args: list[str],
        *,
        env: list[str] | None = None,
        cwd: str | None = None,
        user: dict[str, Any] | User | None = None,
        terminal: bool = False,
    ) -> dict[str, Any]:
        """An exec process based on the container's own (env, user, caps, rlimits...)."""
        bundle = self.bundle(cid)
        if bundle is None:
            raise NotFound(f"container {cid} does not exist in the runtime")
        base = json.loads((bundle / "config.json").read_text())["process"]
        return exec_process(base, args, env=env, cwd=cwd, user=user, terminal=terminal)
