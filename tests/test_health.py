"""Healthchecks from the podkit CLI (status in inspect and ps, health_status events, checks
resuming after a podkitd restart) and from the Docker API (State.Health, docker ps)."""

from __future__ import annotations

import json
from typing import Any

from tests.helpers import Daemon, wait_for


def _health(daemon: Daemon, name: str) -> dict[str, Any]:
    [info] = json.loads(daemon.cli("inspect", name, check=True).stdout)
    return dict(info["State"].get("Health") or {})


def test_health_cmd_starting_unhealthy_healthy_and_after_a_restart(
    daemon: Daemon, busybox_image: str
) -> None:
    daemon.cli(
        "run", "-d", "--name", "h1", "--health-cmd", "cat /tmp/ok", "--health-interval", "200ms",
        "--health-retries", "2", "--health-timeout", "2s", busybox_image, "sleep", "600", check=True,
    )  # fmt: skip
    try:
        assert _health(daemon, "h1")["Status"] in ("starting", "unhealthy")
        wait_for(lambda: _health(daemon, "h1").get("Status") == "unhealthy", 20, what="unhealthy")
        h = _health(daemon, "h1")
        assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] != 0 and "cat" in h["Log"][-1]["Output"]
        daemon.cli("exec", "h1", "sh", "-c", "echo fine > /tmp/ok", check=True)
        wait_for(lambda: _health(daemon, "h1").get("Status") == "healthy", 20, what="healthy")
        assert _health(daemon, "h1")["Log"][-1]["Output"] == "fine\n"
        assert "(healthy)" in daemon.cli("ps", check=True).stdout
        r = daemon.cli("events", "--since", "0", "--until", "0s", "--format", "json", check=False)
        actions = [json.loads(line).get("action") for line in r.stdout.splitlines() if line.startswith("{")]
        assert "health_status: unhealthy" in actions and "health_status: healthy" in actions, r.stdout[-2000:]

        # The checks resume after a restart of podkitd (SIGKILL): the status follows the probe again.
        daemon.kill()
        daemon.start()
        daemon.cli("exec", "h1", "rm", "/tmp/ok", check=True)
        wait_for(
            lambda: _health(daemon, "h1").get("Status") == "unhealthy", 20, what="unhealthy after restart"
        )
    finally:
        daemon.cli("rm", "-f", "h1")


def test_no_healthcheck_and_bad_values(daemon: Daemon, busybox_image: str) -> None:
    daemon.cli("run", "-d", "--name", "h2", "--no-healthcheck", busybox_image, "sleep", "600", check=True)
    try:
        assert _health(daemon, "h2") == {}
        assert "health" not in daemon.cli("ps", check=True).stdout
        for args, msg in [
            (["--health-cmd", "true", "--health-interval", "soon"], "invalid health interval 'soon'"),
            (["--health-cmd", "true", "--health-retries", "0", "--health-interval", "1ms"], "at least 10ms"),
        ]:
            r = daemon.cli("run", "-d", "--name", "h3", *args, busybox_image, "true")
            assert r.returncode == 125 and msg in r.stderr, (args, r.stderr)
        assert "h3" not in daemon.cli("ps", "-a", check=True).stdout
    finally:
        daemon.cli("rm", "-f", "h2")
