"""`export` of a running container against a directory swapped for a symlink to ``/``
(the CVE-2018-15664 class, as tests/test_security_cp_race.py for ``cp``).

A swapper exchanges ``/tmp/race/d`` (a directory mirroring the host's path to a
marker file) and ``/tmp/race/l`` (a symlink to ``/``) in a tight loop while the test
exports the container again and again. A walk that looks entries up again by path
under the live root follows the symlink from the host's root whenever the swap lands
between its steps, and reads the host's marker; the walk through descriptors keeps
the pair as the directory or the symlink it is at that instant, never followed.
"""

from __future__ import annotations

import io
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
from tests.test_security_cp_race import _SWAPPER

RACE_SECONDS = 5.0
_FILES = 20  # each one more chance per export for a walk by names to meet the swap


class _TooMuch(Exception):
    pass


class _Bounded(io.BytesIO):
    """Gives up past 64 MB: busybox's tree is a few MB, the host's is not."""

    def write(self, b: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(b) > 64 << 20:
            raise _TooMuch()
        return super().write(b)


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    c = daemon.client()
    for ctr in c.containers.list(all=True):
        c.containers.remove(ctr.id, force=True)


def _export(c: Any, token: str) -> str:
    out = _Bounded()
    try:
        c.containers.export("race", out)
    except _TooMuch:
        return "FOLLOWED THE SYMLINK (over 64 MB)"
    except errors.PodkitError as e:
        return f"export {type(e).__name__}"
    names_ok = {f"m{i}" for i in range(_FILES)}
    data = out.getvalue()
    if token.encode() in data:
        return "HOST FILE"
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            names = tf.getnames()
    except tarfile.TarError:
        return "export cut short"
    for n in names:
        if n.startswith(("tmp/race/d/", "tmp/race/l/")) and n[len("tmp/race/d/") :] not in names_ok:
            return f"stray entry {n}"
    return "export ok"


def test_export_does_not_follow_a_directory_swapped_for_a_symlink_to_the_host(
    d: Daemon, workdir: Path
) -> None:
    token = f"HOST-ONLY-{uuid.uuid4().hex}"
    host_dir = workdir / "host-dir"
    host_dir.mkdir()
    for i in range(_FILES):
        (host_dir / f"m{i}").write_text(token)
    c = d.client()
    ctr = c.containers.run("busybox", ["sleep", "300"], name="race", init=True)
    # /tmp/race/d holds files named as the host's markers and as long (a walk that
    # stats one and opens the other by name reads the whole token); /tmp/race/l is a
    # symlink to the host's directory of it, which only a lookup from the host's root
    # reaches. Shallow, so that a walk by names meets the swap at almost every export.
    fill = "C" * len(token)
    files = " ".join(f"m{i}" for i in range(_FILES))
    script = f"mkdir -p /tmp/race/d && cd /tmp/race/d && for f in {files}; do printf {fill} >$f; done"
    r = c.containers.exec("race", ["sh", "-c", f"{script} && ln -s {host_dir} /tmp/race/l"])
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
        while time.monotonic() < end:
            counts[_export(c, token)] += 1
    finally:
        swapper.terminate()
        swapper.wait(timeout=30)
    print(f"\nexport race over {RACE_SECONDS:.0f}s: {dict(sorted(counts.items()))}")
    assert counts["HOST FILE"] == 0, f"exported the host's file: {dict(counts)}"
    assert set(counts) == {"export ok"}, dict(counts)
