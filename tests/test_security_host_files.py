"""What the daemon leaves on the host, and what a container sees of it (issue 10,
items 10 and 12): IPAM leases root-only, no CNI temp files after a crash, /sys/dev/block
masked, and `-v :/x` refused instead of silently making an anonymous volume.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from podkit.containers.parsers import parse_volume
from podkit.errors import InvalidArgument
from podkit.runtime import spec
from tests.helpers import Daemon, wait_for


def _modes(d: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(d.stat().st_mode)}
    for p in d.rglob("*"):
        out[str(p.relative_to(d))] = stat.S_IMODE(p.lstat().st_mode)
    return out


def test_ipam_leases_are_root_only_and_sys_dev_block_masked(daemon: Daemon, busybox_image: str) -> None:
    ipam = daemon.root / "networks" / "ipam"
    c = daemon.client()
    ctr = c.containers.run("busybox", ["sleep", "300"])
    try:
        files = wait_for(lambda: [p for p in ipam.rglob("*") if p.is_file()], what="a lease file")
        modes = _modes(ipam)
        assert files and not {k: oct(m) for k, m in modes.items() if m & 0o077}, modes

        # /sys/dev/block lists the host's block devices: masked, as podman does
        r = c.containers.exec(ctr.id, ["sh", "-c", "ls /sys/dev/block | wc -l"])
        assert r.exit_code == 0 and r.output.strip() == b"0", r.output

        # What an older podkit left, world-readable: the next start tightens it.
        daemon.stop()
        for p in ipam.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(ipam, 0o755)
        daemon.start()
        modes = _modes(ipam)
        assert not {k: oct(m) for k, m in modes.items() if m & 0o077}, modes
    finally:
        c.containers.remove(ctr.id, force=True)


def test_cni_cache_temp_files_a_crash_left_are_swept_at_start(daemon: Daemon) -> None:
    # A crash between a cache write and its rename leaves the temp file.
    results = daemon.root / "cni" / "results"
    daemon.kill()
    results.mkdir(parents=True, exist_ok=True, mode=0o700)
    stray, kept = results / "podkit+deadbeef+eth0.tmp", results / "podkit+cafe+eth0.json"
    stray.write_text("{")
    kept.write_text("{}")
    daemon.start()
    assert not stray.exists()
    assert kept.exists()  # entries are for DEL to use: never swept
    kept.unlink()


def test_an_empty_volume_source_is_refused() -> None:
    for bad in (":/x", ":/x:ro"):
        with pytest.raises(InvalidArgument, match="empty source"):
            parse_volume(bad)
    assert parse_volume("/x").type == "volume"  # an anonymous volume is just the path


def test_sys_dev_block_is_masked_by_default() -> None:
    assert "/sys/dev/block" in spec.MASKED_PATHS
