"""The streaming server through the real crictl (cri-tools v1.26.1, a Go client:
client-go's SPDY remotecommand and portforward): exec (-i, -t, -s), attach, port-forward.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import termios
import time
import urllib.request

import pytest
from cri_api.v1 import api_pb2 as pb

from tests.fixtures.cri import CRIClient
from tests.helpers import shared_dir, wait_for

CRICTL = shared_dir() / "bin" / "crictl"

pytestmark = [
    pytest.mark.skipif(not CRICTL.exists(), reason=f"crictl not found at {CRICTL}"),
    pytest.mark.root,
]


def crictl(
    cri: CRIClient, *args: str, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    ep = f"unix://{cri.socket}"
    return subprocess.run(
        [str(CRICTL), "--runtime-endpoint", ep, "--image-endpoint", ep, "--timeout", "30s", *args],
        input=input,
        capture_output=True,
        timeout=timeout,
    )


def _sleeper(cri: CRIClient, **kw: object) -> tuple[str, str]:
    sid, scfg = cri.run_sandbox()
    cid = cri.run(sid, scfg, "c", ["sleep", "3600"], **kw)  # type: ignore[arg-type]
    return sid, cid


def test_crictl_exec(cri: CRIClient) -> None:
    _, cid = _sleeper(cri)
    r = crictl(cri, "exec", cid, "sh", "-c", "echo out; echo err >&2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"out\n" and r.stderr == b"err\n"
    r = crictl(cri, "exec", cid, "sh", "-c", "exit 3")
    # client-go reads the exit code from the v4 Status; crictl 1.26 reports it and fails.
    assert r.returncode != 0
    assert b"command terminated with exit code 3" in r.stderr, r.stderr
    r = crictl(cri, "exec", "-i", cid, "sh", "-c", "tr a-z A-Z", input=b"shout\n")
    assert r.returncode == 0 and r.stdout == b"SHOUT\n", r.stderr
    r = crictl(cri, "exec", "-s", cid, "sh", "-c", "echo sync")  # ExecSync: no streaming
    assert r.returncode == 0 and r.stdout.strip() == b"sync", r.stderr


def _run_in_pty(argv: list[str], rows: int, cols: int, timeout: float = 60) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child side closed
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(10), bytes(out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def test_crictl_exec_tty_gets_the_terminal_size(cri: CRIClient) -> None:
    _, cid = _sleeper(cri)
    ep = f"unix://{cri.socket}"
    argv = [
        str(CRICTL),
        "--runtime-endpoint",
        ep,
        "exec",
        "-it",
        cid,
        "sh",
        "-c",
        "sleep 0.3; stty size; exit 7",
    ]
    code, out = _run_in_pty(argv, 33, 101)
    assert b"33 101" in out, out
    assert code != 0


def test_crictl_attach_stdin_once(cri: CRIClient) -> None:
    sid, scfg = cri.run_sandbox()
    cid = cri.run(sid, scfg, "reader", ["sh", "-c", "echo ready; cat; echo bye"], stdin=True, stdin_once=True)
    wait_for(lambda: "ready" in crictl(cri, "logs", cid).stdout.decode(), 20, what="the container to start")
    r = crictl(cri, "attach", "-i", cid, input=b"via attach\n")
    assert r.returncode == 0, r.stderr
    assert b"via attach\n" in r.stdout and b"bye" in r.stdout
    cri.wait_exited(cid)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_crictl_port_forward(cri: CRIClient) -> None:
    sid, scfg = cri.run_sandbox()
    cri.run(
        sid,
        scfg,
        "web",
        [
            "sh",
            "-c",
            "mkdir -p /w && echo from-the-pod > /w/index.html && exec httpd -f -p 127.0.0.1:8080 -h /w",
        ],
    )
    local = _free_port()
    ep = f"unix://{cri.socket}"
    proc = subprocess.Popen(
        [str(CRICTL), "--runtime-endpoint", ep, "port-forward", sid, f"{local}:8080"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def fetch() -> bytes | None:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/index.html", timeout=5) as r:
                    return bytes(r.read())
            return None

        assert wait_for(fetch, 30, what="the page through crictl port-forward") == b"from-the-pod\n"
        assert fetch() == b"from-the-pod\n"  # and again, on a second forwarded connection
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_crictl_exec_url_is_one_time(cri: CRIClient) -> None:
    _, cid = _sleeper(cri)
    url = cri.rt.Exec(pb.ExecRequest(container_id=cid, cmd=["true"], stdout=True)).url
    assert "/exec/" in url
    import asyncio

    from tests.cri_streaming_clients import SpdyConn, spdy_connect, spdy_run

    r = asyncio.run(spdy_run(url, stderr=False))
    assert r.exit_code == 0
    again = asyncio.run(spdy_connect(url, ["v4.channel.k8s.io"]))
    assert not isinstance(again, SpdyConn) and again.status == 404
