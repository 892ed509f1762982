"""The CRI's gRPC server starts at the first connection (issue 8, item 5): an idle
podkitd has not loaded grpc (its RSS is ~18 MB less), the socket is there and
root-only from the start, and the first client is served through the placeholder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.cri import CRIClient, cleanup_daemon, pb, start_cri_daemon
from tests.helpers import Daemon

pytestmark = pytest.mark.root


@pytest.fixture
def fresh(workdir: Path) -> Iterator[Daemon]:
    d = start_cri_daemon(workdir / "d")
    try:
        yield d
    finally:
        cleanup_daemon(d)


def _grpc_loaded(d: Daemon) -> bool:
    assert d.proc is not None
    return "cygrpc" in Path(f"/proc/{d.proc.pid}/maps").read_text()


def test_grpc_is_loaded_at_the_first_cri_connection(fresh: Daemon, workdir: Path) -> None:
    sock = fresh.state / "cri.sock"
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0
    assert not _grpc_loaded(fresh)
    c = CRIClient(fresh, workdir / "podlogs")
    c.wait_up()  # the first call: relayed by the placeholder to the server it started
    assert c.rt.Version(pb.VersionRequest(), timeout=5).runtime_name
    assert _grpc_loaded(fresh)
