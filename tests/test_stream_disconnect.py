"""A streaming client that goes away (^C on `podkit events`) is a normal end for the
daemon: no "Error handling request" traceback in its log, and the stream's producer is
closed at once."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.helpers import BIN, Daemon


def test_events_client_gone_is_not_an_error(daemon: Daemon, busybox_image: str) -> None:
    env = dict(os.environ, PODKIT_HOST=daemon.host)
    daemon.cli("tag", "busybox", "warm", check=True)
    # --since 0 replays the tag above: once it is printed the stream is surely live
    # (a live-only subscriber could miss an event made before it subscribed, and wait).
    proc = subprocess.Popen(
        [str(BIN / "podkit"), "events", "--since", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline()  # ends with "" if the command fails: no hang
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
        # events published after the client left go to a closed connection
        for i in range(5):
            daemon.cli("tag", "busybox", f"after:{i}", check=True)
        daemon.cli("version", check=True)
        log = daemon.logs()
        assert "Error handling request" not in log and "Cannot write to closing transport" not in log, log[
            -3000:
        ]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
