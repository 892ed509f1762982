"""`cp` between a container and the host (tar streams through the archive API)."""

from __future__ import annotations

import os
import sys

from podkit import errors
from podkit.cli.container_ops import container_ops as _ops

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    import tarfile

    from podkit.client import Client


def _split_ctr(spec: str) -> tuple[str, str] | None:
    if ":" in spec and not spec.startswith("/") and not spec.startswith("."):
        ref, _, path = spec.partition(":")
        if ref and path:
            return ref, path
    return None


def checked_members(members: list[tarfile.TarInfo]) -> list[tarfile.TarInfo]:
    """The members of a tar from the daemon, refused if one would land outside the target.

    The daemon builds the tar by a walk confined to the container's root, so this is a
    second line: a name (or a hard link's target) that is absolute, climbs with ``..``,
    or goes through a symlink the same tar made, would write outside where the user
    asked. The symlinks themselves are kept as they are (``/bin/sh -> /bin/busybox``).
    """
    links: set[str] = set()
    for m in members:
        names = [m.name] + ([m.linkname] if m.islnk() else [])
        for name in names:
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if name.startswith("/") or ".." in parts or (not parts and not m.isdir()):
                raise errors.InvalidArgument(
                    f"refusing the archive entry {m.name!r}: it leaves the destination"
                )
            for i in range(1, len(parts)):
                prefix = "/".join(parts[:i])
                if prefix in links:
                    raise errors.InvalidArgument(
                        f"refusing the archive entry {m.name!r}: it goes through the symlink {prefix!r}"
                    )
        if m.issym():
            links.add("/".join(p for p in m.name.split("/") if p not in ("", ".")))
    return members


def cmd_cp(args: argparse.Namespace, client: Client) -> int:
    import io
    import shutil
    import tarfile
    import tempfile

    src, dst = _split_ctr(args.src), _split_ctr(args.dst)
    if bool(src) == bool(dst):
        raise errors.InvalidArgument("copying needs exactly one side in the container: CONTAINER:PATH")
    if src:
        ref, path = src
        if args.dst == "-":
            _ops(client).stream_archive(ref, path, sys.stdout.buffer, follow_link=args.follow_link)
            return 0
        data, stat = _ops(client).get_archive(ref, path, follow_link=args.follow_link)
        target = os.path.abspath(args.dst)
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            members = checked_members(tf.getmembers())
            if not args.archive:
                # docker: the files are the invoking user's; -a keeps the container's owners
                for m in members:
                    m.uid, m.gid, m.uname, m.gname = os.getuid(), os.getgid(), "", ""
            if os.path.isdir(target):
                tf.extractall(target, members, numeric_owner=True)
            else:
                parent = os.path.dirname(target)
                if not os.path.isdir(parent):
                    raise errors.NotFound(f"destination directory {parent} does not exist")
                tmp = tempfile.mkdtemp(dir=parent, prefix=".podkit-cp-")
                try:
                    tf.extractall(tmp, members, numeric_owner=True)
                    os.replace(os.path.join(tmp, stat.get("name") or os.path.basename(path)), target)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        return 0
    assert dst is not None
    ref, path = dst
    # docker: without -a what lands in the container is its root's; -a keeps the owners
    keep = bool(args.archive)
    if args.src == "-":
        _ops(client).put_archive(ref, path, sys.stdin.buffer.read(), copy_uid_gid=keep)
        return 0
    if not os.path.lexists(args.src):
        raise errors.NotFound(f"no such file or directory: {args.src}")
    # -L: a symlink named as the source is copied as what it points to, under its own name
    source = os.path.realpath(args.src) if args.follow_link else args.src
    if not os.path.lexists(source):
        raise errors.NotFound(f"no such file or directory: {source} (what {args.src} points to)")

    def tar_of(arcname: str) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            tf.add(source, arcname=arcname)
        return buf.getvalue()

    try:
        _ops(client).put_archive(
            ref, path, tar_of(os.path.basename(os.path.normpath(args.src))), copy_uid_gid=keep
        )
    except errors.NotFound:
        # the destination is not an existing directory: copy under that name
        parent = os.path.dirname(path.rstrip("/")) or "/"
        _ops(client).put_archive(ref, parent, tar_of(os.path.basename(path.rstrip("/"))), copy_uid_gid=keep)
    return 0
