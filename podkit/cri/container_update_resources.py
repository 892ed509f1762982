"""UpdateContainerResources: cpu, cpuset and memory limits, live through runc update."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri.container_create import resources_body
from podkit.cri.context import CRI


async def handle(cri: CRI, req: pb.UpdateContainerResourcesRequest) -> pb.UpdateContainerResourcesResponse:
    rec = cri.container(req.container_id)
    if not req.HasField("linux"):
        return pb.UpdateContainerResourcesResponse()
    body = resources_body(req.linux, "linux")
    if body:
        await cri.containers.update(cri.ns, rec.id, body)
    return pb.UpdateContainerResourcesResponse()
