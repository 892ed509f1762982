"""UpdatePodSandboxResources (kubelet 1.33+, in-place pod resize): not supported yet."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI
from podkit.cri.errors import Unimplemented


async def handle(cri: CRI, req: pb.UpdatePodSandboxResourcesRequest) -> pb.UpdatePodSandboxResourcesResponse:
    cri.sandbox(req.pod_sandbox_id)
    raise Unimplemented("UpdatePodSandboxResources is not supported by podkit")
