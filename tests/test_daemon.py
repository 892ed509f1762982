"""podkitd itself: API basics, errors, the lock, the socket, signals."""

from __future__ import annotations

import json
import os
import stat
import subprocess

from tests.helpers import BIN, Daemon


def test_version_and_info(daemon: Daemon) -> None:
    c = daemon.client()
    v = c.version()
    assert v["api_version"] == "v1"
    info = c.info()
    assert info["root"] == str(daemon.root)
    r = daemon.cli("version", "--format", "json", check=True)
    assert json.loads(r.stdout)["server"]["version"] == v["version"]


def test_socket_is_root_only(daemon: Daemon) -> None:
    st = os.stat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_uid == 0 and st.st_gid == 0


def test_openapi_lists_routes(daemon: Daemon) -> None:
    doc = daemon.client().openapi()
    assert doc["openapi"].startswith("3.")
    assert "/v1/version" in doc["paths"]
    assert "/v1/events" in doc["paths"]


def test_unknown_route_is_json_error(daemon: Daemon) -> None:
    from podkit import errors

    t = daemon.client()._t
    try:
        t.get("/no/such/thing")
    except errors.PodkitError as e:
        assert e.code == "not_found"
    else:
        raise AssertionError("expected an error")


def test_bad_namespace_refused(daemon: Daemon) -> None:
    r = daemon.cli("--namespace", "Bad NS!", "info")
    assert r.returncode != 0
    assert "invalid namespace" in r.stderr


def test_second_daemon_refuses(daemon: Daemon) -> None:
    r = subprocess.run(
        [str(BIN / "podkitd"), "--root", str(daemon.root), "--state", str(daemon.base / "s2")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0
    assert "already running" in r.stderr


def test_sigterm_shuts_down_cleanly(daemon: Daemon) -> None:
    assert daemon.proc is not None
    proc = daemon.proc
    daemon.stop()
    assert proc.returncode == 0
    assert not daemon.socket.exists()


def test_cli_says_daemon_not_running(workdir) -> None:
    d = Daemon(workdir)
    r = d.cli("info")
    assert r.returncode != 0
    assert "is the daemon running" in r.stderr
