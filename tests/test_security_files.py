"""Files a client names (issue 10, item 2): the daemon never blocks on, or swallows, them.

The CLI and the SDK read env files and seccomp profiles themselves and send the
content. A raw API client may still send paths: a FIFO, a device or a huge file must
be refused at once with a 400 naming the problem, while the daemon keeps answering.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podkit.errors import InvalidArgument
from podkit.userfiles import inline_files, parse_env_file
from tests.helpers import Daemon
from tests.rawhttp import call, error_message


@pytest.fixture
def fifo(workdir: Path) -> Iterator[Path]:
    p = workdir / "fifo"
    os.mkfifo(p)
    yield p
    # Whoever still waits on it (a daemon that opened it for reading) gets EOF now.
    try:
        fd = os.open(p, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no reader: nothing blocked on it
        return
    os.close(fd)


def _create(d: Daemon, body: dict[str, object], timeout: float = 20.0) -> tuple[int, str]:
    status, payload = call(str(d.socket), "POST", "/v1/containers", {"image": "busybox", **body}, timeout)
    return status, error_message(payload)


def _bodies(path: str) -> list[dict[str, object]]:
    return [{"env_file": [path]}, {"security_opt": [f"seccomp={path}"]}]


def test_fifos_devices_and_huge_files_named_over_the_api_are_refused(
    daemon: Daemon, fifo: Path, workdir: Path
) -> None:
    # One daemon for every case: each is one request.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futs = [pool.submit(_create, daemon, b, 15.0) for b in _bodies(str(fifo))]
        # Meanwhile the daemon answers others (a blocked loop answered nothing at all).
        for _ in range(3):
            t0 = time.monotonic()
            status, _ = call(str(daemon.socket), "GET", "/_ping", timeout=5.0)
            assert status == 200 and time.monotonic() - t0 < 5.0
        for fut in futs:
            status, msg = fut.result(timeout=15.0)
            assert status == 400, msg
            assert "not a regular file" in msg and str(fifo) in msg

    huge = workdir / "huge"
    with open(huge, "wb") as f:
        f.truncate(64 << 20)  # sparse: costs no disk, and reading it all would cost RSS
    for path, want in (("/dev/zero", "not a regular file"), (str(huge), "larger than")):
        for body in _bodies(path):
            t0 = time.monotonic()
            status, msg = _create(daemon, body)
            assert status == 400 and want in msg and path in msg, (status, msg)
            assert time.monotonic() - t0 < 5.0
    assert call(str(daemon.socket), "GET", "/_ping")[0] == 200


def test_the_cli_reads_env_files_itself(daemon: Daemon, busybox_image: str, workdir: Path) -> None:
    # A FIFO the daemon would refuse: the create only works if the CLI read it.
    fifo = workdir / "env.fifo"
    os.mkfifo(fifo)
    text = "\ufeff# comment\n  A=1\nB= two  \nFROM_CLIENT\nUNSET_HERE\r\nC=x=y\n"

    def feed() -> None:
        with open(fifo, "w") as f:
            f.write(text)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        r = daemon.cli(
            "create",
            "--name",
            "envf",
            "--env-file",
            str(fifo),
            "-e",
            "A=2",
            "busybox",
            "true",
            env={"FROM_CLIENT": "yes"},
        )
    finally:
        if writer.is_alive():  # the CLI never opened it: unblock the writer
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            writer.join(5)
            os.close(fd)
    assert r.returncode == 0, r.stderr
    try:
        env = daemon.client().containers.get("envf").raw["config"]["env"]
        assert env[:5] == ["A=1", "B= two  ", "FROM_CLIENT=yes", "C=x=y", "A=2"]
    finally:
        daemon.cli("rm", "-f", "envf")


def test_env_file_syntax_errors_name_the_line() -> None:
    with pytest.raises(InvalidArgument, match="line 2.*white space"):
        parse_env_file(b"A=1\nBAD NAME=2\n", "f")
    with pytest.raises(InvalidArgument, match="line 1 has no variable name"):
        parse_env_file(b"=x\n", "f")
    with pytest.raises(InvalidArgument, match="line 3 is not valid UTF-8"):
        parse_env_file(b"A=1\n\n\xff\n", "f")
    assert parse_env_file(b"K\n", "f", environ={"K": "v"}) == ["K=v"]
    assert parse_env_file(b"K\n", "f", environ={}) == []


def test_the_client_inlines_a_seccomp_profile(tmp_path: Path) -> None:
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    body = inline_files(
        {"image": "x", "security_opt": ["seccomp=unconfined", f"seccomp={prof}", "no-new-privileges"]}
    )
    assert body["seccomp_profile"] == {"defaultAction": "SCMP_ACT_ALLOW"}
    assert body["security_opt"] == ["no-new-privileges"]
    # the last seccomp option wins: unconfined after the path keeps the path unread
    body = inline_files({"image": "x", "security_opt": [f"seccomp={tmp_path}/none", "seccomp=unconfined"]})
    assert "seccomp_profile" not in body
    with pytest.raises(InvalidArgument, match="missing defaultAction"):
        prof.write_text("{}")
        inline_files({"image": "x", "security_opt": [f"seccomp={prof}"]})


def test_the_daemon_takes_a_profile_inline_as_dockers_api_sends_it() -> None:
    from podkit.containers.options import CreateOptions

    prof = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    o = CreateOptions.parse({"image": "x", "security_opt": [f"seccomp={json.dumps(prof)}"]})
    assert o.seccomp == "custom" and o.seccomp_profile == prof
    o = CreateOptions.parse({"image": "x", "seccomp_profile": prof})
    assert o.seccomp == "custom" and o.seccomp_profile == prof
    o = CreateOptions.parse({"image": "x", "seccomp_profile": prof, "security_opt": ["seccomp=unconfined"]})
    assert o.seccomp == "unconfined" and o.seccomp_profile is None
    with pytest.raises(InvalidArgument, match="missing defaultAction"):
        CreateOptions.parse({"image": "x", "security_opt": ['seccomp={"syscalls": []}']})
