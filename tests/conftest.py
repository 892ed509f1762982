"""Shared fixtures. Tests run as root against real parts (see README, Testing)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Daemon
from tests.leaks import children_of, processes_mentioning, unmount_all_under

# Each area keeps its fixtures in tests/fixtures/<area>.py.
pytest_plugins = [
    "tests.fixtures.images",
    "tests.fixtures.registry",
    "tests.fixtures.runtime",
    "tests.fixtures.network",
]

if os.geteuid() != 0:
    pytest.exit("podkit's tests run as root (they drive runc, overlayfs, CNI)", returncode=2)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A private directory on a real disk (overlayfs needs one; not tmpfs-only paths)."""
    d = Path(tempfile.mkdtemp(prefix="podkit-test-", dir="/var/tmp"))
    leaked_mounts: list[str] = []
    leaked_procs: list[tuple[int, str]] = []
    try:
        yield d
    finally:
        # Anything still running from this test's directories is a leak; kill it so
        # the next test starts clean, then report.
        leaked_procs = processes_mentioning(str(d))
        for pid, _ in leaked_procs:
            # A leaked conmon's child is its container's init, which names no directory:
            # kill it first (killing a pid namespace's init ends the rest), or it outlives
            # the test re-parented to PID 1.
            for child in children_of(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        leaked_mounts = unmount_all_under(d)
        shutil.rmtree(d, ignore_errors=True)
    assert not leaked_procs, f"test left processes running: {leaked_procs}"
    assert not leaked_mounts, f"test left mounts behind: {leaked_mounts}"


@pytest.fixture
def daemon(workdir: Path) -> Iterator[Daemon]:
    """A running podkitd with its own root, state dir and socket; stopped afterwards."""
    (workdir / "d").mkdir()
    d = Daemon(workdir / "d").start()
    try:
        yield d
    finally:
        d.stop()
        # The default network's bridge (made by the CNI bridge plugin on first use)
        # outlives the daemon, as it must for running containers: drop the test's.
        if os.path.exists(f"/sys/class/net/{d.bridge}"):
            subprocess.run(["ip", "link", "del", d.bridge], capture_output=True)
        # Likewise the masquerade/port rules of containers the test left attached.
        from tests.fixtures.network import scrub_subnet

        scrub_subnet(d.subnet)
