"""ImageFsInfo: what the image layers take on the file system holding podkit's root
(the kubelet's image GC thresholds read it)."""

from __future__ import annotations

import asyncio
import time

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI
from podkit.errors import PodkitError


def _usage(cri: CRI) -> tuple[int, int]:
    size = inodes = 0
    seen: set[str] = set()
    for img in cri.images.list(cri.ns):
        for chain in img.chain:
            if chain in seen:
                continue
            seen.add(chain)
            try:
                u = cri.services.snapshots.usage(chain)
            except PodkitError:
                continue
            size += u.size
            inodes += u.inodes
    return size, inodes


async def handle(cri: CRI, req: pb.ImageFsInfoRequest) -> pb.ImageFsInfoResponse:
    size, inodes = await asyncio.to_thread(_usage, cri)
    fs = pb.FilesystemUsage(
        timestamp=time.time_ns(),
        fs_id=pb.FilesystemIdentifier(mountpoint=str(cri.services.config.root / "snapshots")),
        used_bytes=pb.UInt64Value(value=size),
        inodes_used=pb.UInt64Value(value=inodes),
    )
    return pb.ImageFsInfoResponse(image_filesystems=[fs], container_filesystems=[fs])
