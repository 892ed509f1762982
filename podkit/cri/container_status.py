"""ContainerStatus: state, times, exit code and reason, mounts, log path; verbose adds
podkit's record and the OCI spec."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import container_view
from podkit.cri.context import CRI


async def handle(cri: CRI, req: pb.ContainerStatusRequest) -> pb.ContainerStatusResponse:
    rec = cri.container(req.container_id)
    resp = pb.ContainerStatusResponse(status=container_view.status(cri, rec))
    if req.verbose:
        resp.info.update(container_view.verbose_info(cri, rec))
    return resp
