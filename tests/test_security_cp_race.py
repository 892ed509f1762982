"""The `cp` race (CVE-2018-15664 class), both directions, through the real API.

A swapper exchanges a directory and a symlink to ``/`` inside a running container's
root in a tight loop (``renameat2(RENAME_EXCHANGE)``), while the test copies out of and
into a path under that directory. A daemon that resolves the path and then opens it
again by name follows the symlink from the host's root in the window between: it
returns host files and writes into the host's directories. Here both must never
happen, for a fixed, short time (the suite must stay fast).

The swapper runs on the host side, on ``/proc/<pid>/root/...`` paths: for the race
this is the same as the container's own process doing it (busybox has no
renameat2), and it keeps the loop out of the test's and the daemon's processes.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podkit import errors
from tests.helpers import Daemon

RACE_SECONDS = 10.0

_SWAPPER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
end = time.monotonic() + float(sys.argv[2])  # bounded even if the test is killed
print("ready", flush=True)
n = 0
while time.monotonic() < end:
    for _ in range(2000):
        if libc.renameat2(fd, b"d", fd, b"l", 2) != 0:  # RENAME_EXCHANGE
            sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
    n += 2000
print(n, flush=True)
"""


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    c = daemon.client()
    for ctr in c.containers.list(all=True):
        c.containers.remove(ctr.id, force=True)


def _tar(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class _TooMuch(Exception):
    pass


class _Bounded(io.BytesIO):
    """A sink that gives up past 4 MB: a walk that followed the symlink to / would
    be copying the host's whole tree."""

    def write(self, b: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(b) > 4 << 20:
            raise _TooMuch()
        return super().write(b)


def _walk(c: Any, token: str) -> str:
    out = _Bounded()
    try:
        c.containers.stream_archive("race", "/tmp/race", out)
    except _TooMuch:
        return "walk FOLLOWED THE SYMLINK (over 4 MB)"
    except errors.PodkitError as e:
        return f"walk {type(e).__name__}"
    data = out.getvalue()
    if token.encode() in data:
        return "walk HOST FILE"
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            members = tf.getmembers()
    except tarfile.TarError:
        return "walk cut short"
    for m in members:
        top = m.name.split("/")[:2]
        if top[0] != "race" or (len(top) > 1 and top[1] not in ("d", "l")):
            return f"walk stray entry {m.name}"
        if m.name == "race/l" and not m.issym() and not m.isdir():
            return "walk odd type"
    return "walk ok"


def test_cp_does_not_follow_a_directory_swapped_for_a_symlink_to_the_host(d: Daemon, workdir: Path) -> None:
    token = f"HOST-ONLY-{uuid.uuid4().hex}"
    host_marker = workdir / "host-marker"
    host_marker.write_text(token)
    host_dest = workdir / "host-dest"
    host_dest.mkdir()

    c = d.client()
    ctr = c.containers.run("busybox", ["sleep", "300"], name="race", init=True)
    # Inside the container, /tmp/race/d mirrors the host paths under it (so a name
    # resolved while d is a directory exists), and /tmp/race/l is a symlink to /.
    mirror = f"/tmp/race/d{workdir}"
    r = c.containers.exec(
        "race",
        [
            "sh",
            "-c",
            f"mkdir -p {mirror}/host-dest && echo CTR > {mirror}/host-marker && ln -s / /tmp/race/l",
        ],
    )
    assert r.exit_code == 0, r.stderr
    pid = c.containers.get(ctr.id).pid
    swapper = subprocess.Popen(
        [sys.executable, "-c", _SWAPPER, f"/proc/{pid}/root/tmp/race", str(RACE_SECONDS + 60)],
        stdout=subprocess.PIPE,
        text=True,
    )
    counts: Counter[str] = Counter()
    try:
        assert swapper.stdout is not None and swapper.stdout.readline().strip() == "ready"
        end = time.monotonic() + RACE_SECONDS
        i = 0
        while time.monotonic() < end:
            i += 1
            try:
                data, _ = c.containers.get_archive("race", f"{mirror}/host-marker")
            except errors.NotFound:
                counts["get 404"] += 1
            except errors.PodkitError as e:
                counts[f"get {type(e).__name__}"] += 1
            else:
                with tarfile.open(fileobj=io.BytesIO(data)) as tf:
                    f = tf.extractfile("host-marker")
                    body = f.read() if f else b""
                counts["get HOST FILE" if token.encode() in body else "get ok"] += 1
            if i % 4 == 0:
                # A tree walk over the swapped pair itself: "d" is copied as the
                # directory or as the symlink it is at that instant, never followed.
                counts[_walk(c, token)] += 1
            try:
                c.containers.put_archive("race", f"{mirror}/host-dest", _tar(f"planted-{i}", b"x"))
            except errors.NotFound:
                counts["put 404"] += 1
            except errors.PodkitError as e:
                counts[f"put {type(e).__name__}"] += 1
            else:
                counts["put ok"] += 1
    finally:
        swapper.terminate()
        swapper.wait(timeout=30)
    written = sorted(os.listdir(host_dest))
    counts["host files written"] = len(written)
    print(f"\ncp race over {RACE_SECONDS:.0f}s: {dict(sorted(counts.items()))}")
    assert counts["get HOST FILE"] == 0, f"read the host's file: {dict(counts)}"
    assert written == [], f"wrote into the host's {host_dest}: {written[:5]}... {dict(counts)}"
    assert host_marker.read_text() == token
    # The race was really run: both states of the swap were met, and copies went through.
    assert counts["get ok"] > 0 and counts["put ok"] > 0, dict(counts)
    # Nothing but "done" or "not there (it is a symlink to / right now)".
    assert counts["walk ok"] > 0, dict(counts)
    allowed = {"get ok", "get 404", "put ok", "put 404", "walk ok", "host files written"}
    assert set(counts) <= allowed, dict(counts)
