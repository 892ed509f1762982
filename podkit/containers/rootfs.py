"""Paths and users inside a container's root file system (never escaping it).

Thin names over the runtime layer's ``users`` module, which resolves symlinks as if
the rootfs were ``/`` so an image cannot point podkit at the host's files.
"""

from __future__ import annotations

from pathlib import Path

from podkit.runtime.users import resolve, resolve_in_root


def secure_join(root: Path, path: str) -> Path:
    """``root/path`` with every symlink resolved inside ``root``."""
    return resolve_in_root(root, path)


def resolve_user(rootfs: Path, spec: str) -> tuple[int, int, list[int], str]:
    """``user[:group]`` (names or ids) → (uid, gid, supplementary gids, home)."""
    u = resolve(rootfs, spec or None)
    return u.uid, u.gid, list(u.additional_gids), u.home or "/"
