"""The build context: an uploaded tar unpacked into a private directory, the
``.dockerignore`` rules applied, and the content digest of what a COPY reads."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from podkit.errors import InvalidArgument


def unpack_context(src: BinaryIO, into: Path) -> None:
    """Unpack a (possibly compressed) context tar with the layer applier: it refuses
    absolute names, ``..`` and links that would lead out of the directory."""
    from podkit.images.unpack import apply_layer, sniff_compression

    into.mkdir(parents=True, exist_ok=True)
    head = src.read(8)
    src.seek(0)
    if not head:
        return  # an empty context: a Dockerfile-less build fails later, by name
    try:
        apply_layer(src, sniff_compression(head), into, "remove", [])
    except (tarfile.TarError, EOFError) as e:
        raise InvalidArgument(f"the build context is not a tar archive: {e}") from None


class Ignore:
    """``.dockerignore``: patterns in Go's filepath.Match syntax plus ``**``, ``!`` to
    re-include; the last matching rule wins."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            pat = os.path.normpath(line[1:].strip() if neg else line).lstrip("/")
            if pat == ".":
                continue
            self.rules.append((neg, re.compile(_translate(pat))))

    def ignored(self, rel: str) -> bool:
        out = False
        for neg, rx in self.rules:
            if rx.match(rel) or any(rx.match(p) for p in _parents(rel)):
                out = not neg
        return out


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _translate(pat: str) -> str:
    out = []
    i = 0
    while i < len(pat):
        if pat.startswith("**", i):
            out.append(".*")
            i += 2
            if i < len(pat) and pat[i] == "/":
                i += 1
                out[-1] = "(.*/)?"
            continue
        c = pat[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        else:
            out.append(re.escape(c) if c != "[" else "[")
        i += 1
    return "".join(out) + r"\Z"


def apply_dockerignore(root: Path, keep: set[str]) -> None:
    """Delete what ``.dockerignore`` excludes (never the Dockerfile or the ignore file)."""
    f = root / ".dockerignore"
    if f.is_symlink():  # it would be read from wherever it points on the daemon's host
        raise InvalidArgument(".dockerignore is a symbolic link: send the file itself")
    if not f.is_file():
        return
    ign = Ignore(f.read_text(errors="replace"))
    for dirpath, dirnames, filenames in os.walk(root, topdown=True):
        rel_dir = os.path.relpath(dirpath, root)
        for name in list(dirnames) + filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel in keep or not ign.ignored(rel):
                continue
            p = Path(dirpath) / name
            if name in dirnames and not p.is_symlink():
                # a re-included path below keeps its directory
                if any(k.startswith(rel + "/") for k in keep) or _reincluded_below(ign, rel):
                    continue
                shutil.rmtree(p)
                dirnames.remove(name)
            else:
                p.unlink()


def _reincluded_below(ign: Ignore, rel: str) -> bool:
    return any(neg and rx.pattern.startswith(re.escape(rel + "/")[:-1]) for neg, rx in ign.rules)


def glob_sources(root: Path, pattern: str) -> list[Path]:
    """The context paths a COPY source names (a path or a glob), inside the context.

    ``root`` is the context or a --from stage's tree: a symlink on the way to a source
    is resolved inside it (as docker does), never on the daemon's host, where an
    uploaded context's ``evil -> /etc`` would hand out its files. A source that is a
    symlink itself is copied as the link; a glob does not descend into symlinks."""
    from podkit.runtime.users import resolve_in_root

    rel = os.path.normpath(pattern.lstrip("/"))
    if rel.startswith(".."):
        raise InvalidArgument(f"{pattern}: outside the build context")
    if not any(c in rel for c in "*?["):
        head, _, tail = rel.rpartition("/")
        parent = resolve_in_root(root, head) if head else root
        p = parent / tail if rel != "." else root
        if not _inside(p, root) or not os.path.lexists(p):
            raise InvalidArgument(f"{pattern}: no such file or directory in the build context")
        return [p]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            if fnmatch.fnmatchcase(os.path.relpath(full, root), rel):
                found.append(full)
    if not found:
        raise InvalidArgument(f"{pattern}: no source files were specified (nothing matches)")
    return sorted(found)


def _inside(p: Path, root: Path) -> bool:
    """Whether ``p`` (its parents resolved) is ``root`` or below it."""
    parent = os.path.realpath(p.parent) if p != root else os.path.realpath(p)
    top = os.path.realpath(root)
    return parent == top or parent.startswith(top + os.sep)


def content_digest(paths: list[Path]) -> str:
    """A digest of names, types, modes and contents below ``paths`` (not mtimes or owners:
    a fresh checkout of the same files is a cache hit, as in docker)."""
    h = hashlib.sha256()
    for top in paths:
        h.update(b"\0top\0" + top.name.encode())
        for p in _walk(top):
            st = os.lstat(p)
            h.update(f"\0{os.path.relpath(p, top)}\0{st.st_mode:o}\0".encode())
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
            elif stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
    return "sha256:" + h.hexdigest()


def _walk(top: Path) -> list[Path]:
    out = [top]
    if top.is_dir() and not top.is_symlink():
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for n in sorted(dirnames + filenames):
                out.append(Path(dirpath) / n)
    return out
