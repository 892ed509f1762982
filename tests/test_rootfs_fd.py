"""podkit.containers.rootfs_fd: lookups that stay inside a root, with openat2 and with the
by-hand walk used where openat2 answers ENOSYS (forced here by replacing the syscall
with one that answers ENOSYS: this kernel has openat2, the fallback must still be run)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podkit.containers import rootfs_fd


@pytest.fixture(params=["openat2", "walk"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    calls: list[int] = []
    if request.param == "walk":

        def enosys(dirfd: int, path: bytes, flags: int, mode: int, resolve: int) -> int:
            calls.append(dirfd)
            raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

        monkeypatch.setattr(rootfs_fd, "_openat2_syscall", enosys)
    monkeypatch.setattr(rootfs_fd._State, "openat2_missing", False)
    yield request.param
    if request.param == "walk":
        # The fallback was reached through a real ENOSYS answer, once, and stuck.
        assert len(calls) <= 1 and not rootfs_fd.openat2_available()
    else:
        assert rootfs_fd.openat2_available(), "this kernel has openat2 (5.6+): it must be used"


@pytest.fixture
def root(workdir: Path) -> Iterator[tuple[Path, int]]:
    r = workdir / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("inside\n")
    (r / "dir" / "sub").mkdir(parents=True)
    (r / "dir" / "sub" / "f").write_text("f\n")
    fd = rootfs_fd.open_root(r)
    yield r, fd
    os.close(fd)


def read(root_fd: int, path: str) -> str:
    fd = rootfs_fd.open_in_root(root_fd, path, os.O_RDONLY)
    with os.fdopen(fd) as f:
        return f.read()


def where(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def test_plain_and_dotdot_paths_stay_in_the_root(mode: str, root: tuple[Path, int]) -> None:
    r, fd = root
    assert read(fd, "/etc/passwd") == "inside\n"
    assert read(fd, "etc/passwd") == "inside\n"
    # ".." at the root is the root, however many
    assert read(fd, "../../../../etc/passwd") == "inside\n"
    assert read(fd, "dir/sub/../../../../etc/passwd") == "inside\n"
    assert where(rootfs_fd.open_in_root(fd, "/", os.O_PATH)) == str(r)
    assert where(rootfs_fd.open_in_root(fd, "dir/sub/..", os.O_RDONLY | os.O_DIRECTORY)) == str(r / "dir")
    with pytest.raises(FileNotFoundError):
        read(fd, "nope")
    with pytest.raises(NotADirectoryError):
        read(fd, "etc/passwd/x")
    with pytest.raises(NotADirectoryError):
        rootfs_fd.open_in_root(fd, "etc/passwd", os.O_PATH | os.O_DIRECTORY)


def test_absolute_and_climbing_symlinks_resolve_inside(
    mode: str, root: tuple[Path, int], workdir: Path
) -> None:
    r, fd = root
    host = workdir / "host"
    host.mkdir()
    (host / "secret").write_text("host-only\n")
    (r / "abs").symlink_to("/etc")
    (r / "hostdir").symlink_to(host)
    (r / "climb").symlink_to("../../../../../../../etc")
    (r / "dir" / "rel").symlink_to("../etc/passwd")
    (r / "toroot").symlink_to("/")
    assert read(fd, "abs/passwd") == "inside\n"  # the root's /etc, never the host's
    assert read(fd, "climb/passwd") == "inside\n"
    assert read(fd, "dir/rel") == "inside\n"
    assert read(fd, "toroot/toroot/dir/../toroot/etc/passwd") == "inside\n"
    with pytest.raises(FileNotFoundError):
        read(fd, "hostdir/secret")
    with pytest.raises(FileNotFoundError):
        read(fd, f"toroot{host}/secret")
    # follow=False: the last symlink itself
    link = rootfs_fd.open_in_root(fd, "abs", os.O_PATH, follow=False)
    try:
        assert os.readlink("", dir_fd=link) == "/etc"
    finally:
        os.close(link)
    with pytest.raises(OSError) as e:
        rootfs_fd.open_in_root(fd, "dir/rel", os.O_RDONLY, follow=False)
    assert e.value.errno == errno.ELOOP


def test_symlink_loops_are_eloop(mode: str, root: tuple[Path, int]) -> None:
    r, fd = root
    (r / "a").symlink_to("b")
    (r / "b").symlink_to("/a")
    (r / "self").symlink_to("self/x")
    for path in ("a", "a/x", "self", "dir/../b/y"):
        with pytest.raises(OSError) as e:
            rootfs_fd.open_in_root(fd, path, os.O_PATH)
        assert e.value.errno == errno.ELOOP, path
    # a long chain under the limit resolves
    (r / "c0").symlink_to("etc")
    for i in range(1, 30):
        (r / f"c{i}").symlink_to(f"c{i - 1}")
    assert read(fd, "c29/passwd") == "inside\n"


@pytest.mark.root  # mounts /proc
@pytest.mark.root  # bind-mounts /proc into the test's root
def test_proc_magic_links_are_refused(mode: str, root: tuple[Path, int]) -> None:
    r, fd = root
    (r / "proc").mkdir()
    (r / "via").symlink_to("/proc/self/root/etc")
    subprocess.run(["mount", "--bind", "/proc", str(r / "proc")], check=True)
    try:
        for path in (
            "proc/self/root/etc/hostname",  # would be the host's (this process's root)
            "proc/1/root/etc/hostname",
            "via/hostname",
            f"proc/self/fd/{fd}/etc/passwd",
        ):
            with pytest.raises(OSError) as e:
                rootfs_fd.open_in_root(fd, path, os.O_RDONLY)
            # ELOOP: a magic link refused; EACCES: the kernel's ptrace check on another
            # process's root came first. Either way nothing was opened.
            assert e.value.errno in (errno.ELOOP, errno.EACCES), path
        # plain files of that procfs are fine
        assert read(fd, "proc/sys/kernel/ostype") == "Linux\n"
    finally:
        subprocess.run(["umount", str(r / "proc")], check=True)


def test_makedirs_in_root_creates_inside_even_through_dangling_links(
    mode: str, root: tuple[Path, int], workdir: Path
) -> None:
    r, fd = root
    host = workdir / "host-made"
    (r / "dangling").symlink_to(str(host / "deeper"))
    assert where(rootfs_fd.makedirs_in_root(fd, "dangling/x/y")) == f"{r}{host}/deeper/x/y"
    assert where(rootfs_fd.makedirs_in_root(fd, "/new/../made/z")) == str(r / "made" / "z")
    assert where(rootfs_fd.makedirs_in_root(fd, "dir/sub")) == str(r / "dir" / "sub")  # exists
    assert not host.exists()
    with pytest.raises(NotADirectoryError):
        rootfs_fd.makedirs_in_root(fd, "etc/passwd/x")


_SWAPPER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
end = time.monotonic() + 60
print("ready", flush=True)
while time.monotonic() < end:
    if libc.renameat2(fd, b"d", fd, b"l", 2) != 0:  # RENAME_EXCHANGE
        sys.exit(os.strerror(ctypes.get_errno()))
"""


def test_a_directory_swapped_for_a_symlink_to_slash_never_leads_out(
    mode: str, root: tuple[Path, int], workdir: Path
) -> None:
    """The cp race at this level, for 2 s per mode: d and l (-> /) are exchanged in a
    loop; every open through d must stay in the root."""
    r, fd = root
    host = workdir / "host"
    host.mkdir()
    (host / "secret").write_text("host-only\n")
    (r / "race" / f"d{host}").mkdir(parents=True)
    (r / "race" / f"d{host}" / "secret").write_text("inside\n")
    (r / "race" / "l").symlink_to("/")
    swapper = subprocess.Popen(
        [sys.executable, "-c", _SWAPPER, str(r / "race")], stdout=subprocess.PIPE, text=True
    )
    seen: dict[str, int] = {}
    try:
        assert swapper.stdout is not None and swapper.stdout.readline().strip() == "ready"
        end = time.monotonic() + 2
        while time.monotonic() < end:
            try:
                got = read(fd, f"race/d{host}/secret")
            except FileNotFoundError:
                got = "ENOENT"
            seen[got] = seen.get(got, 0) + 1
            try:
                dfd = rootfs_fd.makedirs_in_root(fd, f"race/d{host}")
            except FileNotFoundError:
                continue
            try:
                os.close(os.open("planted", os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600, dir_fd=dfd))
            finally:
                os.close(dfd)
    finally:
        swapper.terminate()
        swapper.wait(timeout=30)
    assert "host-only\n" not in seen, seen
    assert sorted(os.listdir(host)) == ["secret"], "a file was made on the host"
    assert seen.get("inside\n", 0) > 0, seen
