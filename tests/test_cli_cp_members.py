"""The CLI's own check of the tars it unpacks on the host (no root, no daemon)."""

from __future__ import annotations

import tarfile

import pytest

from podkit import errors
from podkit.cli.cp import checked_members


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = kind, link
    return m


def test_symlinks_anywhere_and_plain_files_pass() -> None:
    ms = [
        _member(".", tarfile.DIRTYPE),
        _member("bin", tarfile.DIRTYPE),
        _member("bin/sh", tarfile.SYMTYPE, "/bin/busybox"),
        _member("bin/up", tarfile.SYMTYPE, "../../etc"),
        _member("bin/busybox"),
        _member("bin/hard", tarfile.LNKTYPE, "bin/busybox"),
    ]
    assert checked_members(ms) == ms


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ([_member("/etc/passwd")], "leaves the destination"),
        ([_member("a/../../etc/passwd")], "leaves the destination"),
        ([_member("x", tarfile.LNKTYPE, "../outside")], "leaves the destination"),
        ([_member("x", tarfile.LNKTYPE, "/etc/shadow")], "leaves the destination"),
        ([_member("x", tarfile.SYMTYPE, "/etc"), _member("x/passwd")], "through the symlink 'x'"),
        ([_member("./d/x", tarfile.SYMTYPE, "/"), _member("d/x/y/z")], "through the symlink 'd/x'"),
        ([_member("x", tarfile.SYMTYPE, "/etc"), _member("h", tarfile.LNKTYPE, "x/shadow")], "through"),
    ],
)
def test_entries_that_would_write_outside_are_refused(members: list[tarfile.TarInfo], problem: str) -> None:
    with pytest.raises(errors.InvalidArgument, match=problem):
        checked_members(members)
