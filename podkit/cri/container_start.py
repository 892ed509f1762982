"""StartContainer: runc under conmon, the CRI log at the path the kubelet chose."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI
from podkit.cri.errors import FailedPrecondition


async def handle(cri: CRI, req: pb.StartContainerRequest) -> pb.StartContainerResponse:
    rec = cri.container(req.container_id)
    if rec.state != "created":
        raise FailedPrecondition(f"container {rec.id} is {rec.state}: only a created container can start")
    await cri.containers.start(cri.ns, rec.id)
    return pb.StartContainerResponse()
