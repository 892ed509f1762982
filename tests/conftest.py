"""Shared fixtures. Tests run as root against real parts (see README, Testing)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Daemon

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
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def daemon(workdir: Path) -> Iterator[Daemon]:
    """A running podkitd with its own root, state dir and socket; stopped afterwards."""
    (workdir / "d").mkdir()
    d = Daemon(workdir / "d").start()
    try:
        yield d
    finally:
        d.stop()
