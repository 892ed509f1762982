"""`cp` through the API: what a copy keeps (types, owners, modes, times, hard links), the
inputs it refuses with a clear 4xx, and that it leaves no descriptor or mount behind.

The race and the symlink escapes are in tests/test_security_cp_race.py and
tests/test_security.py; the lookup primitive's own tests in tests/test_rootfs_fd.py.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podkit import errors
from tests.helpers import Daemon, wait_for


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    c = daemon.client()
    for ctr in c.containers.list(all=True):
        c.containers.remove(ctr.id, force=True)


def _tar(*members: tuple[str, str, Any], **attrs: Any) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            for k, v in attrs.get(name, {}).items():
                setattr(ti, k, v)
            if kind in ("sym", "lnk"):
                ti.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                ti.linkname = payload
                tf.addfile(ti)
            elif kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
                tf.addfile(ti)
            elif kind == "chr":
                ti.type, (ti.devmajor, ti.devminor) = tarfile.CHRTYPE, payload
                tf.addfile(ti)
            else:
                ti.size = len(payload)
                tf.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf.getmembers()}


def _fds(d: Daemon) -> int:
    assert d.proc is not None
    return len(os.listdir(f"/proc/{d.proc.pid}/fd"))


def _cp_mounts(d: Daemon) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(d.base) in line and "/cp/" in line.split()[4]]


def test_a_copy_in_and_out_keeps_what_tar_holds(d: Daemon) -> None:
    c = d.client()
    c.containers.run("busybox", ["sleep", "300"], name="keep", init=True)
    t = 1_000_000_000
    c.containers.put_archive(
        "keep",
        "/tmp",
        _tar(
            ("t", "dir", None),
            ("t/suid", "file", b"#!/bin/sh\n"),
            ("t/private", "dir", None),
            ("t/private/f", "file", b"f" * 70_000),
            ("t/hard", "lnk", "t/suid"),
            ("t/link", "sym", "private/f"),
            ("t/abs", "sym", "/etc/passwd"),
            ("t/pipe", "fifo", None),
            ("t/null", "chr", (1, 3)),
            ("t/implicit/parents/x", "file", b"x"),
            **{
                "t": {"mode": 0o755, "mtime": t},
                "t/suid": {"mode": 0o4755, "uid": 1234, "gid": 99, "mtime": t + 1},
                "t/private": {"mode": 0o700, "uid": 7, "mtime": t + 2},
                "t/private/f": {"mode": 0o640, "mtime": t + 3},
                "t/link": {"uid": 5, "gid": 6},
                "t/pipe": {"mode": 0o620},
                "t/null": {"mode": 0o666},
            },
        ),
    )
    r = c.containers.exec("keep", ["sh", "-c", "stat -c '%n %a %u:%g %Y %h %F' /tmp/t/* /tmp/t"])
    facts = {line.split()[0]: line.split()[1:] for line in r.stdout.decode().splitlines()}
    assert facts["/tmp/t/suid"][:4] == ["4755", "1234:99", str(t + 1), "2"]  # 2 links: hard
    assert facts["/tmp/t/private"][:3] == ["700", "7:0", str(t + 2)]
    assert facts["/tmp/t/pipe"][0] == "620" and facts["/tmp/t/pipe"][-1] == "fifo"
    assert facts["/tmp/t/null"][-3:] == ["character", "special", "file"]
    assert facts["/tmp/t"][2] == str(t)  # set after its entries were written
    r = c.containers.exec(
        "keep", ["sh", "-c", "readlink /tmp/t/link; readlink /tmp/t/abs; stat -c %u:%g /tmp/t/link"]
    )
    assert r.stdout.decode().split() == ["private/f", "/etc/passwd", "5:6"]

    data, stat = c.containers.get_archive("keep", "/tmp/t")
    assert stat["name"] == "t" and stat["is_dir"]
    m = _members(data)
    assert list(m)[:3] == ["t", "t/abs", "t/hard"]  # parents first, names sorted
    assert m["t/private/f"].size == 70_000 and m["t/private/f"].mode == 0o640
    assert m["t/private/f"].mtime == t + 3
    assert (m["t/hard"].mode, m["t/hard"].uid, m["t/hard"].gid) == (0o4755, 1234, 99)
    # the second name of an inode (in tar order) is a hard link to the first
    assert m["t/hard"].isreg() and m["t/suid"].islnk() and m["t/suid"].linkname == "t/hard"
    assert m["t/link"].issym() and m["t/link"].linkname == "private/f"
    assert m["t/pipe"].isfifo() and m["t/null"].ischr() and m["t/null"].devminor == 3
    assert m["t/implicit/parents/x"].isfile()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile("t/private/f")
        assert f is not None and f.read() == b"f" * 70_000
    # a single file; a symlink named as the source is the link (docker's cp), or with
    # follow_link (cp -L) what it points to, followed inside the container
    data, stat = c.containers.get_archive("keep", "/tmp/t/link")
    assert stat["link_target"] == "private/f" and _members(data)["link"].issym()
    data, stat = c.containers.get_archive("keep", "/tmp/t/link", follow_link=True)
    assert stat["name"] == "link" and stat["size"] == 70_000 and list(_members(data)) == ["link"]


@pytest.mark.parametrize(
    "path, problem",
    [("/tmp/a\0b", "NUL byte"), ("/" + "a" * 8000, "8001 bytes long"), ("/" + "a" * 300, "longer than 255")],
)
def test_paths_no_lookup_can_take_are_a_400(d: Daemon, path: str, problem: str) -> None:
    c = d.client()
    c.containers.run("busybox", ["sleep", "300"], name="paths", init=True)
    with pytest.raises(errors.InvalidArgument, match=problem):
        c.containers.get_archive("paths", path)
    with pytest.raises(errors.InvalidArgument, match=problem):
        c.containers.put_archive("paths", path, _tar(("f", "file", b"x")))


def test_archives_that_cannot_be_extracted_are_a_4xx_naming_the_entry(d: Daemon) -> None:
    c = d.client()
    c.containers.run("busybox", ["sleep", "300"], name="bad", init=True)
    c.containers.exec(
        "bad", ["sh", "-c", "mkdir -p /tmp/dir/sub && echo f > /tmp/file && ln -s file /tmp/sym"]
    )
    cases: list[tuple[bytes, type[errors.PodkitError], str]] = [
        (_tar(("h", "lnk", "sym")), errors.UnsafeContent, "'h' names 'sym', a symlink"),
        (_tar(("s", "sym", "file"), ("h", "lnk", "s")), errors.UnsafeContent, "a symlink"),
        (_tar(("h", "lnk", "dir")), errors.InvalidArgument, "a directory"),
        (_tar(("h", "lnk", "missing")), errors.InvalidArgument, "not in the destination"),
        (_tar(("h", "lnk", "/etc/passwd")), errors.UnsafeContent, "outside the destination"),
        (_tar(("h", "lnk", "../etc/passwd")), errors.UnsafeContent, "outside the destination"),
        (_tar(("/abs", "file", b"x")), errors.UnsafeContent, "outside the destination"),
        (_tar(("a/../../x", "file", b"x")), errors.UnsafeContent, "outside the destination"),
        (_tar(("dir", "file", b"x")), errors.InvalidArgument, "would replace a directory"),
        (_tar(("file/x", "file", b"x")), errors.InvalidArgument, "'file/x' cannot be extracted"),
        (b"this is not a tar" * 100, errors.InvalidArgument, "tar"),
    ]
    for data, kind, message in cases:
        with pytest.raises(kind, match=message):
            c.containers.put_archive("bad", "/tmp", data)
    with pytest.raises(errors.NotFound, match="not a directory"):
        c.containers.put_archive("bad", "/tmp/file", _tar(("f", "file", b"x")))
    with pytest.raises(errors.NotFound, match="not a directory"):
        c.containers.put_archive("bad", "/tmp/nope", _tar(("f", "file", b"x")))
    with pytest.raises(errors.NotFound):
        c.containers.get_archive("bad", "/tmp/nope")
    # The refused entries were not made, nor anything through them; the container's own
    # files are as they were. (Entries before a refused one stay, as with tar and docker:
    # the archive is a stream, extracted in order; here the symlink "s".)
    r = c.containers.exec("bad", ["sh", "-c", "cd /tmp && find . | sort && cat file"])
    assert r.stdout.decode().split() == [".", "./dir", "./dir/sub", "./file", "./s", "./sym", "f"]


def test_copies_leave_no_descriptor_or_mount_behind(d: Daemon) -> None:
    c = d.client()
    c.containers.run(
        "busybox", ["sh", "-c", "head -c 8000000 /dev/zero > /big; sleep 300"], name="fds", init=True
    )
    wait_for(lambda: c.containers.exec("fds", ["stat", "-c", "%s", "/big"]).stdout.strip() == b"8000000")
    c.containers.get_archive("fds", "/etc")  # warm up whatever the daemon opens once
    base = _fds(d)
    for _ in range(5):
        c.containers.get_archive("fds", "/etc")
        c.containers.put_archive("fds", "/tmp", _tar(("x/y", "file", b"y")))
        with pytest.raises(errors.NotFound):
            c.containers.get_archive("fds", "/nope")

    class Enough(Exception):
        pass

    class Sink:
        def write(self, b: bytes) -> int:
            raise Enough()

    # A reader that leaves after the first chunk of a big file: the producer stops.
    for _ in range(3):
        with pytest.raises(Enough):
            c.containers.stream_archive("fds", "/big", Sink())
    wait_for(lambda: _fds(d) <= base, what=lambda: f"daemon fds back to {base}, now {_fds(d)}")
    # A stopped container is copied from a mount made for the copy: unmounted after,
    # even when the reader leaves early.
    c.containers.stop("fds", timeout=1)
    for _ in range(2):
        with pytest.raises(Enough):
            c.containers.stream_archive("fds", "/big", Sink())
    data, _ = c.containers.get_archive("fds", "/tmp/x")
    assert list(_members(data)) == ["x", "x/y"]
    c.containers.put_archive("fds", "/tmp", _tar(("stopped", "file", b"s")))
    wait_for(lambda: not _cp_mounts(d), what=lambda: f"cp mounts gone: {_cp_mounts(d)}")
    wait_for(lambda: _fds(d) <= base, what=lambda: f"daemon fds back to {base}, now {_fds(d)}")
    data, _ = c.containers.get_archive("fds", "/tmp/stopped")
    assert list(_members(data)) == ["stopped"]


def test_the_hosts_root_is_never_taken_for_a_container_root() -> None:
    """/proc/<pid>/root of a pid that a host process took over (the container's exited)
    is the host's /: refused, for reading and writing alike."""
    import asyncio

    from podkit.containers import archive

    for root in (Path("/proc/self/root"), Path("/")):
        with pytest.raises(errors.NotFound, match="its process is gone"):
            asyncio.run(archive.tar_path(root, "/etc/hostname"))
        with pytest.raises(errors.NotFound, match="its process is gone"):
            asyncio.run(archive.stat_path(root, "/etc"))
        with pytest.raises(errors.NotFound, match="its process is gone"):
            asyncio.run(archive.untar_into(root, "/tmp", io.BytesIO(_tar(("planted", "file", b"x")))))
    assert not Path("/tmp/planted").exists()


def test_a_pid_another_process_took_is_not_the_containers_root(tmp_path: Path) -> None:
    """/proc/<pid>/root is only the container's while <pid> is its process: a process
    with that pid and another start time (the pid reaped and reused) is refused for
    reading and writing, and so is a pid whose process has gone."""
    import asyncio
    import subprocess
    import sys

    from podkit.containers import archive
    from podkit.containers.process_root import ProcessRoot
    from podkit.runtime.proc_identity import start_time

    other = tmp_path / "other-root"
    other.mkdir()
    (other / "secret").write_text("another process's file")
    # A process of its own root (not the host's: the host-root check does not apply).
    p = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import os,sys,time; os.chroot({str(other)!r}); print(1, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"1"
        start = start_time(p.pid)

        async def read(root: ProcessRoot) -> bytes:
            _, chunks = await archive.tar_path(root, "/secret")
            return b"".join([c async for c in chunks])

        # its own identity: its root is served
        assert _members(asyncio.run(read(ProcessRoot(p.pid, start)))).keys() == {"secret"}
        reused = ProcessRoot(p.pid, start + 1)  # as a container whose pid this process took
        with pytest.raises(errors.NotFound, match=f"pid {p.pid} now belongs to another process"):
            asyncio.run(read(reused))
        with pytest.raises(errors.NotFound, match="belongs to another process"):
            asyncio.run(archive.stat_path(reused, "/"))
        with pytest.raises(errors.NotFound, match="belongs to another process"):
            asyncio.run(archive.untar_into(reused, "/", io.BytesIO(_tar(("planted", "file", b"x")))))
        assert not (other / "planted").exists()
    finally:
        p.kill()
        p.wait()
    with pytest.raises(errors.NotFound, match=f"its process \\(pid {p.pid}\\) is gone"):
        asyncio.run(archive.stat_path(ProcessRoot(p.pid, start), "/"))


def test_cp_checks_the_containers_pid_is_still_its_process(d: Daemon) -> None:
    """The start time of a container's init is recorded at create; a cp whose pid names
    a process started at another time (what a reused pid looks like) is a 404 naming it,
    and nothing is read or written through it."""
    import json

    from podkit.runtime.proc_identity import start_time

    c = d.client()
    ctr = c.containers.run("busybox", ["sleep", "300"], name="pidcheck")
    pid = c.containers.get(ctr.id).raw["pid"]
    meta_file = d.state / "runtime" / "containers" / ctr.id / "meta.json"
    meta = json.loads(meta_file.read_text())
    assert (meta["init_pid"], meta["init_start"]) == (pid, start_time(pid))
    c.containers.put_archive("pidcheck", "/tmp", _tar(("before", "file", b"b")))
    meta_file.write_text(json.dumps(dict(meta, init_start=meta["init_start"] + 1)))
    with pytest.raises(errors.NotFound, match=f"pid {pid} now belongs to another process"):
        c.containers.get_archive("pidcheck", "/tmp/before")
    with pytest.raises(errors.NotFound, match="belongs to another process"):
        c.containers.put_archive("pidcheck", "/tmp", _tar(("after", "file", b"a")))
    meta_file.write_text(json.dumps(meta))
    data, _ = c.containers.get_archive("pidcheck", "/tmp")
    assert sorted(_members(data)) == ["tmp", "tmp/before"]
