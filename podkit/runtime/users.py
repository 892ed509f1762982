"""``--user`` resolution against a container's root file system.

``resolve(rootfs, "name" | "uid" | "uid:gid" | "name:group" ...)`` reads the
rootfs's /etc/passwd and /etc/group the way runc's libcontainer does for
``docker run -u``: a numeric uid needs no passwd entry (gid then defaults to 0,
home to /), a name must exist, an explicit group overrides the primary group,
supplementary groups are the groups that list the user as a member, plus any
``--group-add``.

The files are found *inside* the rootfs: symlinks are resolved as if the rootfs
were ``/`` (an image's ``/etc/passwd -> /host/etc/passwd`` cannot make us read
the host's files), ``..`` stops at the rootfs.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from podkit.errors import InvalidArgument, NotFound
from podkit.runtime.spec import User

_MAX_ID = 2**31 - 1
_MAX_LINKS = 40


@dataclass
class ResolvedUser:
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    name: str | None = None
    home: str = "/"

    def to_spec(self, umask: int | None = None) -> User:
        return User(uid=self.uid, gid=self.gid, additional_gids=list(self.additional_gids), umask=umask)


def resolve_in_root(root: Path, path: str) -> Path:
    """``path`` inside ``root`` with symlinks resolved relative to ``root``."""
    root = Path(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        cur = root.joinpath(*resolved, part)
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            resolved.append(part)
            resolved.extend(p for p in parts if p not in ("", "."))
            return root.joinpath(*resolved)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise InvalidArgument(f"too many levels of symbolic links resolving {path} in the rootfs")
            target = os.readlink(cur)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def _read_db(root: Path, path: str) -> list[list[str]] | None:
    p = resolve_in_root(root, path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            return None
        raise
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        data = f.read(4 * 1024 * 1024).decode(errors="replace")
    rows = []
    for line in data.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rows.append(line.split(":"))
    return rows


def _num(s: str) -> int | None:
    if s.isdigit():
        n = int(s)
        if n > _MAX_ID:
            raise InvalidArgument(f"id {s} out of range")
        return n
    return None


def resolve(rootfs: str | Path, user: str | None, group_add: list[str] | None = None) -> ResolvedUser:
    """Resolve a docker ``--user`` value (and ``--group-add`` values) in ``rootfs``."""
    root = Path(rootfs)
    spec = (user or "").strip()
    uname, _, gname = spec.partition(":")
    if spec and not uname:
        raise InvalidArgument(f"invalid user {user!r}: empty user part")
    if ":" in spec and not gname:
        raise InvalidArgument(f"invalid user {user!r}: empty group part")
    passwd = _read_db(root, "/etc/passwd")
    groups = _read_db(root, "/etc/group")

    uid, gid, name, home = 0, 0, "root" if not uname else None, "/"
    found = None
    if uname:
        n = _num(uname)
        for row in passwd or []:
            if len(row) < 4:
                continue
            if (n is not None and row[2] == uname) or (n is None and row[0] == uname):
                found = row
                break
        if found is None and n is None:
            raise NotFound(f"unable to find user {uname}: no matching entries in passwd file")
    else:
        for row in passwd or []:
            if len(row) >= 4 and row[2] == "0":
                found = row
                break
    if found is not None:
        name = found[0]
        uid = int(found[2]) if found[2].isdigit() else 0
        gid = int(found[3]) if found[3].isdigit() else 0
        home = found[5] if len(found) > 5 and found[5] else "/"
    elif uname:
        uid = _num(uname) or 0

    if gname:
        g = _num(gname)
        if g is not None:
            gid = g
        else:
            for row in groups or []:
                if len(row) >= 3 and row[0] == gname:
                    gid = int(row[2]) if row[2].isdigit() else 0
                    break
            else:
                raise NotFound(f"unable to find group {gname}: no matching entries in group file")

    extra: list[int] = []
    if name:
        for row in groups or []:
            if len(row) >= 4 and name in row[3].split(",") and row[2].isdigit():
                g = int(row[2])
                if g != gid and g not in extra:
                    extra.append(g)
    for ga in group_add or []:
        g = _num(ga.strip())
        if g is None:
            for row in groups or []:
                if len(row) >= 3 and row[0] == ga.strip() and row[2].isdigit():
                    g = int(row[2])
                    break
            else:
                raise NotFound(f"unable to find group {ga}: no matching entries in group file")
        if g not in extra:
            extra.append(g)
    return ResolvedUser(uid=uid, gid=gid, additional_gids=extra, name=name, home=home)
