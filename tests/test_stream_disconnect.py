"""A streaming client that goes away (^C on `podkit events`) is a normal end for the
daemon: no "Error handling request" traceback in its log, and the stream's producer is
closed at once."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.helpers import BIN, Daemon, wait_for


def test_events_client_gone_is_not_an_error(daemon: Daemon, busybox_image: str) -> None:
    env = dict(os.environ, PODKIT_HOST=daemon.host)
    proc = subprocess.Popen([str(BIN / "podkit"), "events"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        n = 0

        def first_event() -> str:
            # Tag until the subscriber has printed one: then it is surely subscribed.
            nonlocal n
            n += 1
            daemon.cli("tag", "busybox", f"warm:{n}", check=True)
            return proc.stdout.readline() if proc.stdout is not None else ""

        wait_for(first_event, timeout=30, what="podkit events printing an event")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        # events published after the client left go to a closed connection
        for i in range(5):
            daemon.cli("tag", "busybox", f"after:{i}", check=True)
        daemon.cli("version", check=True)
        log = daemon.logs()
        assert "Error handling request" not in log and "Cannot write to closing transport" not in log, \
            log[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
