"""Shared fixtures and the two test tiers.

Most tests run as root against real parts (runc, overlayfs, CNI; see README, Testing):
they carry the ``root`` marker, like containerd's RequiresRoot. The marker is set here
for every test that uses a fixture which drives those parts (ROOT_FIXTURES, looked up
through the fixture closure, so a fixture built on one counts too), and by hand
(``pytestmark = pytest.mark.root`` or ``@pytest.mark.root``) for a test that does
something privileged itself. Everything else (parsers, option and spec building,
codecs, config) runs unprivileged: ``make unit``. Run as a user, the root tests are
skipped with that reason, never run half-way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
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
    "tests.fixtures.cri",
]

# Fixtures that need root: a daemon, a runtime, network namespaces, mounts, a
# registry on loopback with its certificates, an image imported into a daemon.
ROOT_FIXTURES = frozenset(
    {
        "daemon",
        "rt",
        "bundle",
        "make_rootfs",
        "netenv",
        "registry",
        "tls_registry",
        "token_registry",
        "auth_registry",
        "busybox_image",
        "cri_daemon",  # tests/fixtures/cri.py: a podkitd with the CRI on
        "cri",
        "_module_daemon",  # tests/test_cri_streaming.py: one podkitd per module
    }
)
IS_ROOT = os.geteuid() == 0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "root: needs root (runc, mounts, netns, iptables); skipped otherwise")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the root tier (see the module docstring); as a user, skip it with the reason.

    Runs before `-m` deselects, so `-m "not root"` sees the markers set here.
    """
    skip = pytest.mark.skip(reason="needs root (runc, overlayfs, CNI); as a user, `make unit` runs the rest")
    for item in items:
        if ROOT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.root)
        if not IS_ROOT and item.get_closest_marker("root"):
            item.add_marker(skip)


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
        d.drop_host_network()
