"""CheckpointContainer: not supported (it needs CRIU, which podkit does not drive)."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI
from podkit.cri.errors import Unimplemented


async def handle(cri: CRI, req: pb.CheckpointContainerRequest) -> pb.CheckpointContainerResponse:
    cri.container(req.container_id)  # NotFound first, as for every other call
    raise Unimplemented("CheckpointContainer is not supported by podkit (no CRIU checkpoint/restore)")
