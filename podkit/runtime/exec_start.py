"""Starting an exec: the two launchers of podkit.runtime.exec (conmon with our pipes,
or the runtime in the foreground on a pty of ours) and how a failed start is told apart.
They hand back an ``ExecProcess``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import pty
import uuid
from pathlib import Path
from typing import Any

from podkit.errors import Conflict, Internal, NotFound, Unavailable
from podkit.runtime.exec import ExecProcess, _LineReader, set_winsize
from podkit.runtime.runc import OCIRuntime, classify_start_error, runtime_error_message

log = logging.getLogger(__name__)


def _failure(cid: str, log_path: Path, fallback: str) -> Exception:
    msg = ""
    with contextlib.suppress(OSError):
        msg = runtime_error_message(log_path.read_text())
    if "does not exist" in msg:
        return NotFound(f"container {cid} does not exist")
    if "not running" in msg or "stopped" in msg or "paused" in msg:
        return Conflict(f"container {cid} is not running")
    return classify_start_error(msg or fallback)


async def start_exec(
    runtime: OCIRuntime,
    cid: str,
    process: dict[str, Any],
    workdir: Path,
    *,
    stdin: bool = False,
    console_size: tuple[int, int] | None = None,
    conmon: str | None = None,
    bundle: Path | None = None,
    detach: bool = False,
    start_timeout: float = 30.0,
) -> ExecProcess:
    """Start ``process`` (an OCI process object) in container ``cid``.

    Without a terminal ``conmon`` and the container's ``bundle`` are needed.
    ``detach`` (``exec -d``): the process's stdio are /dev/null, nothing to read;
    ``wait()`` still gives its exit code.
    """
    if detach:
        process = {**process, "terminal": False}
        stdin = False
    terminal = bool(process.get("terminal"))
    if terminal and console_size:
        # The process must see its size from the start, not after runc's first resize.
        process = {**process, "consoleSize": {"height": console_size[0], "width": console_size[1]}}
    workdir = workdir / f"exec-{uuid.uuid4().hex[:12]}"
    workdir.mkdir(parents=True, mode=0o700)
    try:
        if terminal:
            return await _start_tty(runtime, cid, process, workdir, console_size, start_timeout)
        if not conmon or bundle is None:
            raise Internal("exec without a terminal needs conmon and the container's bundle")
        return await _start_pipes(
            runtime, cid, process, workdir, stdin, conmon, bundle, start_timeout, detach
        )
    except BaseException:
        for f in workdir.iterdir() if workdir.exists() else []:
            with contextlib.suppress(OSError):
                f.unlink()
        with contextlib.suppress(OSError):
            workdir.rmdir()
        raise


async def _start_pipes(
    runtime: OCIRuntime,
    cid: str,
    process: dict[str, Any],
    workdir: Path,
    stdin: bool,
    conmon: str,
    bundle: Path,
    start_timeout: float,
    detach: bool = False,
) -> ExecProcess:
    spec_path, pid_path, log_path = workdir / "process.json", workdir / "pid", workdir / "runtime.log"
    spec_path.write_text(json.dumps(process))
    args = _exec_args(runtime, cid, workdir, conmon, bundle, spec_path, pid_path, log_path)
    if stdin:
        args.append("-i")
    loop = asyncio.get_running_loop()
    if detach:
        out_r, out_w = -1, os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        err_r, err_w = -1, os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1)
    sync_r, sync_w = os.pipe()
    child_fds = (in_r, out_w, err_w, sync_w)
    try:
        # Plain fds, not asyncio pipes: asyncio's wait() would otherwise wait for
        # every holder of the output (a background child) to go.
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=in_r,
            stdout=out_w,
            stderr=err_w,
            pass_fds=(sync_w,),
            start_new_session=True,
            cwd=str(workdir),  # conmon drops files (e.g. "oom") in its working directory
            env={
                "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                "_OCI_SYNCPIPE": str(sync_w),
            },
        )
    except OSError as e:
        for fd in (out_r, err_r, sync_r, in_w):
            if fd >= 0:
                os.close(fd)
        raise Unavailable(f"cannot run conmon {conmon}: {e.strerror}") from None
    finally:
        for fd in child_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    streams, writer = await _connect_pipes(loop, out_r, err_r, in_w if stdin else None)
    sync = await _LineReader.open(sync_r)
    ep = ExecProcess(
        proc, workdir, terminal=False, stdout=streams[0], stderr=streams[1], stdin=writer, sync=sync
    )
    ep._start_readers()
    try:
        pid = await asyncio.wait_for(sync.next(), start_timeout)
    except TimeoutError:
        await ep.close()
        raise Internal(f"exec in container {cid} did not start within {start_timeout:.0f}s") from None
    if pid is None or pid <= 0:
        err = _failure(cid, log_path, f"exec failed (conmon exit {await proc.wait()})")
        await ep.close()
        raise err
    ep.started(pid)
    return ep


def _exec_args(
    runtime: OCIRuntime,
    cid: str,
    workdir: Path,
    conmon: str,
    bundle: Path,
    spec_path: Path,
    pid_path: Path,
    log_path: Path,
) -> list[str]:
    """conmon's command line for an exec without a terminal (output through our pipes)."""
    return [
        conmon,
        "--api-version",
        "1",
        "-c",
        cid,
        "-u",
        workdir.name,
        "-n",
        workdir.name,
        "-r",
        runtime.binary,
        "-b",
        str(bundle),
        "-p",
        str(pid_path),
        "--exit-dir",
        str(workdir),
        "-l",
        "passthrough",
        "--sync",
        "--exec",
        "--exec-process-spec",
        str(spec_path),
        "--log-level",
        "error",
        "--runtime-arg",
        "--log-format=json",
        "--runtime-arg",
        f"--log={log_path}",
        "--runtime-arg",
        f"--root={runtime.root}",
    ]


async def _connect_pipes(
    loop: asyncio.AbstractEventLoop, out_r: int, err_r: int, in_w: int | None
) -> tuple[list[asyncio.StreamReader | None], asyncio.StreamWriter | None]:
    """Our ends of the exec's pipes as asyncio streams (a -1 read end: none, detached)."""
    streams: list[asyncio.StreamReader | None] = []
    for fd in (out_r, err_r):
        if fd < 0:
            streams.append(None)
            continue
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(
            functools.partial(asyncio.StreamReaderProtocol, reader), os.fdopen(fd, "rb", buffering=0)
        )
        streams.append(reader)
    writer = None
    if in_w is not None:
        transport, protocol = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(), os.fdopen(in_w, "wb", buffering=0)
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return streams, writer


async def _start_tty(
    runtime: OCIRuntime,
    cid: str,
    process: dict[str, Any],
    workdir: Path,
    console_size: tuple[int, int] | None,
    start_timeout: float,
) -> ExecProcess:
    spec_path, pid_path, log_path = workdir / "process.json", workdir / "pid", workdir / "runtime.log"
    spec_path.write_text(json.dumps(process))
    args = [
        runtime.binary,
        "--root",
        str(runtime.root),
        "--log-format",
        "json",
        "--log",
        str(log_path),
        "exec",
        "--process",
        str(spec_path),
        "--pid-file",
        str(pid_path),
        cid,
    ]
    master, slave = pty.openpty()
    try:
        if console_size:
            set_winsize(master, *console_size)
        os.set_blocking(master, False)
        proc = await asyncio.create_subprocess_exec(
            *args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
    except OSError as e:
        os.close(master)
        raise Internal(f"cannot run {runtime.binary}: {e.strerror}") from None
    finally:
        os.close(slave)
    ep = ExecProcess(proc, workdir, terminal=True, master_fd=master)
    ep._start_readers()
    # Started once the pid file exists; failed if the runtime exits first.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + start_timeout
    delay = 0.002
    exited = asyncio.ensure_future(proc.wait())
    try:
        while True:
            if pid_path.exists() and pid_path.stat().st_size > 0:
                with contextlib.suppress(ValueError, OSError):
                    ep.started(int(pid_path.read_text().strip()))
                return ep
            if exited.done() or loop.time() > deadline:
                break
            await asyncio.wait({exited}, timeout=delay)
            delay = min(delay * 2, 0.05)
    finally:
        if not exited.done():
            exited.cancel()
    if proc.returncode is None:
        await ep.close()
        raise Internal(f"exec in container {cid} did not start within {start_timeout:.0f}s")
    err = _failure(cid, log_path, f"exec failed with exit code {proc.returncode}")
    await ep.close()
    raise err
