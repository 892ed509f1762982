"""A podkit image as the CRI's Image."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI

if TYPE_CHECKING:
    from podkit.images.service import Image


def repo_tags(cri: CRI, img: Image, names: list[str] | None = None) -> list[str]:
    """``names``: the image's names when the caller has them (names_of lists every image)."""
    names = cri.images.names_of(cri.ns, img.id) if names is None else names
    return sorted(n for n in names if "@" not in n and not n.startswith("<none>"))


def repo_digests(cri: CRI, img: Image, names: list[str] | None = None) -> list[str]:
    names = cri.images.names_of(cri.ns, img.id) if names is None else names
    out = []
    for name in names:
        repo = name.split("@", 1)[0]
        if repo.startswith("<none>"):
            continue
        # the repository without its tag: the part after the last "/" may hold ":tag"
        head, _, last = repo.rpartition("/")
        repo = (head + "/" if head else "") + last.split(":", 1)[0]
        out.append(f"{repo}@{img.digest}")
    return sorted(set(out))


def image(cri: CRI, img: Image, names: list[str] | None = None) -> pb.Image:
    names = cri.images.names_of(cri.ns, img.id) if names is None else names
    tags = repo_tags(cri, img, names)
    cfg = img.config.get("config") or {}
    user = str(cfg.get("User") or "")
    uid: pb.Int64Value | None = None
    username = ""
    name = user.split(":", 1)[0]
    if name.isdigit():
        uid = pb.Int64Value(value=int(name))
    elif name:
        username = name
    out = pb.Image(
        id=img.id,
        repo_tags=tags,
        repo_digests=repo_digests(cri, img, names),
        size=img.size,
        username=username,
        spec=pb.ImageSpec(image=img.id),
        # The sandbox image is pinned (the kubelet's image GC must keep it), as containerd's.
        pinned=bool(img.labels.get("io.podkit.infra")) or cri.config.sandbox_image in tags,
    )
    if uid is not None:
        out.uid.CopyFrom(uid)
    return out
