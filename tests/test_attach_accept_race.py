"""An attached run's output when conmon is slow to take the attach connection.

conmon accepts attach connections in its main loop; the daemon connects between
``runc create`` and the start. If conmon's first loop iteration polled before that
connect and is held up before it dispatches, a quick container can end meanwhile: the
iteration then reaps it and leaves the loop, conmon drains the output to no one,
closes the socket, and the waiting connection is reset. (The full suite hit it under
load: one of six parallel ``run --rm`` came back with its exit code and no output.)
This test forces that interleaving with real conmon: strace holds conmon's first
``poll`` for 300 ms, and the wrapper returns (so the daemon connects) only once
conmon is in it. The daemon must not start the container before conmon has
accepted; the output then arrives in full, through the SDK, the CLI and docker.

A container that ends with input of the client's still unread resets the connection
too, and Linux reports that reset before the output queued behind it: the run must
still get that output and its exit code (as ``docker run -i`` does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.images import import_busybox
from tests.helpers import Daemon

STRACE = shutil.which("strace")
DOCKER = shutil.which("docker")

# conmon (-p <container pidfile> among its flags) under strace, held in its first poll;
# the wrapper's exit is what podkit's launch waits for, so it lets the daemon go on only
# once runc create wrote the pidfile, and 50 ms later (conmon is in its poll by then).
WRAPPER = """#!/bin/sh
pidfile=
prev=
for a in "$@"; do
  [ "$prev" = "-p" ] && pidfile=$a
  prev=$a
done
{strace} -f -b execve --seccomp-bpf -qq -o /dev/null -e trace=poll \\
  -e inject=poll:delay_exit=300000:when=1 /usr/bin/conmon "$@" &
while [ ! -s "$pidfile" ] && kill -0 $! 2>/dev/null; do sleep 0.005; done
sleep 0.05
"""


@pytest.fixture
def slow_accept(workdir: Path, busybox_tarball: Path) -> Iterator[Daemon]:
    wrapper = workdir / "conmon-held"
    wrapper.write_text(WRAPPER.format(strace=STRACE))
    wrapper.chmod(0o755)
    (workdir / "d").mkdir()
    d = Daemon(workdir / "d", extra_config=f'[runtime]\nconmon = "{wrapper}"\n').start()
    try:
        import_busybox(d, busybox_tarball)
        yield d
    finally:
        d.stop()
        d.drop_host_network()


@pytest.mark.skipif(STRACE is None, reason="needs strace to hold conmon's poll")
def test_output_reaches_an_attached_run_that_conmon_accepts_late(slow_accept: Daemon) -> None:
    d = slow_accept
    c = d.client()
    for i in range(2):
        r = c.containers.run(
            "busybox", ["sh", "-c", f"echo n{i}; exit {i + 3}"], detach=False, auto_remove=True
        )
        assert (r.exit_code, r.stdout) == (i + 3, f"n{i}\n".encode())
    r = d.cli("run", "--rm", "busybox", "sh", "-c", "echo from-cli; echo err >&2; exit 4")
    assert (r.returncode, r.stdout, r.stderr) == (4, "from-cli\n", "err\n")
    if DOCKER is not None:
        env = dict(os.environ, DOCKER_HOST=f"unix://{d.state / 'docker.sock'}", DOCKER_CONFIG=str(d.base))
        r = subprocess.run(
            [DOCKER, "run", "--rm", "busybox", "sh", "-c", "echo from-docker; exit 5"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (r.returncode, r.stdout) == (5, "from-docker\n"), r.stderr
    assert c.containers.list(all=True) == []


def test_output_and_exit_code_survive_unread_stdin(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    for _ in range(2):
        r = c.containers.run(
            "busybox",
            ["sh", "-c", "echo out; exit 3"],
            detach=False,
            stdin=os.urandom(1 << 20),
            auto_remove=True,
        )
        assert (r.exit_code, r.stdout, r.stderr) == (3, b"out\n", b"")
    r = daemon.cli("run", "-i", "--rm", "busybox", "sh", "-c", "echo out; exit 3", input=b"x" * (1 << 20))
    assert (r.returncode, r.stdout) == (3, "out\n"), r.stderr
