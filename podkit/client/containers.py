"""Containers in the SDK: ``client.containers`` (create, run, exec, logs, ...)."""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from podkit import errors
from podkit.client._container_ops import ContainerOps
from podkit.client._json import JSONObject

if TYPE_CHECKING:
    from podkit.client._ws import WebSocket


@dataclass
class Container:
    id: str
    name: str
    image: str
    state: str  # created | running | paused | restarting | exited | dead | removing
    status: str  # human text: "Up 3 seconds", "Exited (0) 2 minutes ago"
    created: float
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    pid: int = 0
    oom_killed: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    restart_count: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    ports: list[JSONObject] = field(default_factory=list)
    pod_id: str | None = None
    infra: bool = False
    size_rw: int | None = None  # with list(size=True) / get(size=True): bytes it wrote
    size_root_fs: int | None = None  # ... and with its image's layers
    raw: JSONObject = field(default_factory=dict, repr=False)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @classmethod
    def from_api(cls, d: JSONObject) -> Container:
        return cls(
            id=d["id"],
            name=d["name"],
            image=d["image"],
            state=d["state"],
            status=d.get("status", ""),
            created=d.get("created", 0.0),
            command=d.get("command") or [],
            exit_code=d.get("exit_code"),
            pid=d.get("pid", 0),
            oom_killed=bool(d.get("oom_killed")),
            started_at=d.get("started_at"),
            finished_at=d.get("finished_at"),
            restart_count=d.get("restart_count", 0),
            size_rw=d.get("size_rw"),
            size_root_fs=d.get("size_root_fs"),
            labels=d.get("labels") or {},
            ports=d.get("ports") or [],
            pod_id=d.get("pod_id"),
            infra=bool(d.get("infra")),
            raw=d,
        )


@dataclass
class ExecResult:
    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def output(self) -> bytes:
        return self.stdout + self.stderr


@dataclass
class LogEntry:
    time: float
    ts: str
    stream: str
    data: str


@dataclass
class Stats:
    id: str
    name: str
    cpu_percent: float
    cpu_usage: int  # total CPU time, nanoseconds
    memory_usage: int
    memory_limit: int
    pids: int
    block_read: int
    block_write: int
    net_rx: int
    net_tx: int
    read: float
    raw: JSONObject = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, d: JSONObject) -> Stats:
        return cls(
            id=d["id"],
            name=d.get("name", ""),
            cpu_percent=d.get("cpu_percent", 0.0),
            cpu_usage=d.get("cpu_usage", 0),
            memory_usage=d.get("memory_usage", 0),
            memory_limit=d.get("memory_limit", 0),
            pids=d.get("pids", 0),
            block_read=d.get("block_read", 0),
            block_write=d.get("block_write", 0),
            net_rx=d.get("net_rx", 0),
            net_tx=d.get("net_tx", 0),
            read=d.get("read", 0.0),
            raw=d,
        )


class ContainersAPI(ContainerOps):
    """Container lifecycle. ``ref`` is a name, a full id or a unique id prefix.

    Creation options follow the CLI flags with underscores: ``env=["A=1"]``,
    ``volumes=["/host:/ctr:ro", "name:/data"]``, ``ports=["8080:80"]``,
    ``memory="64m"``, ``restart="on-failure:3"``, ``auto_remove=True``, ...
    """

    def create(self, image: str, cmd: list[str] | str | None = None, **options: object) -> Container:
        from podkit.userfiles import inline_files

        body: JSONObject = {"image": image, **options}
        if cmd is not None:
            body["cmd"] = cmd
        # env_file and a seccomp profile's path are read here: the daemon takes content
        out: JSONObject = self._t.post("/containers", json_body=inline_files(body))
        if out.get("warnings"):
            import warnings

            # what the daemon discarded (a limit this host's cgroups cannot set...)
            for w in out["warnings"]:
                warnings.warn(str(w), UserWarning, stacklevel=2)
        return self.get(out["id"])

    def run(
        self,
        image: str,
        cmd: list[str] | str | None = None,
        *,
        detach: bool = True,
        stdin: bytes | None = None,
        **options: object,
    ) -> Container | ExecResult:
        """Create and start. Detached: the Container. Attached: its output and exit code
        (with ``auto_remove=True`` the container is gone when this returns). A start
        that fails removes an ``auto_remove`` container again, as dockerd does (and the
        CLI's ``run --rm``), before the error is raised."""
        if stdin is not None:
            options["open_stdin"] = True
        c = self.create(image, cmd, **options)
        try:
            if detach:
                self.start(c.id)
                return self.get(c.id)
            ws = self.attach_socket(c.id, stdin=stdin is not None, start=True)
            return _collect(ws, stdin)
        except errors.PodkitError:
            if options.get("auto_remove"):
                try:
                    self.remove(c.id, force=True, volumes=True)
                except errors.NotFound:
                    pass  # removed already (it started and ended)
            raise

    def get(self, ref: str, size: bool = False) -> Container:
        """``size``: also measure ``size_rw`` / ``size_root_fs`` (a walk of its writable layer)."""
        return Container.from_api(self._t.get(f"/containers/{ref}", params={"size": size or None}))

    def list(
        self,
        all: bool = False,
        filters: dict[str, builtins.list[str] | str] | None = None,
        size: bool = False,
    ) -> builtins.list[Container]:
        f = {k: [v] if isinstance(v, str) else list(v) for k, v in (filters or {}).items()}
        rows: builtins.list[JSONObject] = self._t.get(
            "/containers", params={"all": all, "filters": f or None, "size": size or None}
        )
        return [Container.from_api(r) for r in rows]

    def stats(self, ref: str) -> Stats:
        for s in self._t.stream("GET", f"/containers/{ref}/stats", params={"stream": False}):
            return Stats.from_api(s)
        raise errors.Internal("no stats returned")

    def stream_stats(self, ref: str) -> Iterator[Stats]:
        for s in self._t.stream("GET", f"/containers/{ref}/stats", params={"stream": True}):
            yield Stats.from_api(s)

    def stream_logs(
        self,
        ref: str,
        follow: bool = False,
        since: str | float | None = None,
        until: str | float | None = None,
        tail: int | None = None,
        stdout: bool = True,
        stderr: bool = True,
    ) -> Iterator[LogEntry]:
        params = {
            "follow": follow,
            "since": since,
            "until": until,
            "tail": tail,
            "stdout": stdout,
            "stderr": stderr,
        }
        for e in self._t.stream("GET", f"/containers/{ref}/logs", params=params):
            yield LogEntry(e["time"], e["ts"], e["stream"], e["data"])

    def logs(
        self,
        ref: str,
        follow: bool = False,
        since: str | float | None = None,
        until: str | float | None = None,
        tail: int | None = None,
        stdout: bool = True,
        stderr: bool = True,
    ) -> str:
        """The log as text (stdout and stderr interleaved in time order)."""
        entries = self.stream_logs(
            ref, follow=follow, since=since, until=until, tail=tail, stdout=stdout, stderr=stderr
        )
        return "".join(e.data for e in entries)

    def exec(
        self,
        ref: str,
        cmd: builtins.list[str] | str,
        *,
        stdin: bytes | None = None,
        detach: bool = False,
        env: builtins.list[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        tty: bool = False,
        privileged: bool = False,
        console_size: tuple[int, int] | None = None,
    ) -> ExecResult:
        """Run a command in a running container; its output and exit code."""
        eid = self.exec_create(
            ref,
            cmd,
            stdin=stdin is not None,
            env=env,
            user=user,
            workdir=workdir,
            tty=tty,
            privileged=privileged,
            console_size=console_size,
        )
        if detach:
            self._t.post(f"/exec/{eid}/start", params={"detach": True})
            return ExecResult(exit_code=0)
        ws = self.exec_socket(eid)
        return _collect(ws, stdin)


def _collect(ws: WebSocket, stdin: bytes | None) -> ExecResult:
    """Drive a WebSocket to the end: send stdin, gather stdout/stderr, return the exit code."""
    out, err = bytearray(), bytearray()
    code = -1
    try:
        if stdin is not None:
            if stdin:
                ws.send_stdin(stdin)
            ws.send_json({"close_stdin": True})
        while True:
            msg = ws.recv()
            if msg is None:
                break
            op, data = msg
            if op == 2 and data:
                (out if data[0] == 1 else err).extend(data[1:])
            elif op == 1:
                ctl = json.loads(data)
                if "error" in ctl:
                    raise errors.from_dict(ctl)
                if "exit" in ctl:
                    code = int(ctl["exit"])
                    break
    finally:
        ws.close()
    if code == -1:
        from podkit.client._transport import connection_lost

        raise connection_lost("before the process ended")
    return ExecResult(code, bytes(out), bytes(err))
