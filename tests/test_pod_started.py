"""A pod's start time is set whichever way its infra comes up."""

from __future__ import annotations

import json
import time

from tests.helpers import Daemon


def test_pod_started_when_run_pod_brings_it_up(daemon: Daemon, busybox_image: str) -> None:
    before = time.time()
    daemon.cli("pod", "create", "--name", "st", check=True)
    try:
        assert json.loads(daemon.cli("pod", "inspect", "st", check=True).stdout)["started"] == 0
        # no `pod start`: the member's start brings the infra up
        daemon.cli("run", "-d", "--pod", "st", "--name", "st-m", "busybox", "sleep", "300", check=True)
        info = json.loads(daemon.cli("pod", "inspect", "st", check=True).stdout)
        assert info["status"] == "Running" and info["started"] >= before
    finally:
        daemon.cli("pod", "rm", "-f", "st", check=True)
