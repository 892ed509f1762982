"""PodSandboxStatus: state, IPs and namespace modes; with verbose, podkit's view too."""

from __future__ import annotations

import time

from cri_api.v1 import api_pb2 as pb

from podkit.cri import sandbox_view
from podkit.cri.context import CRI


async def handle(cri: CRI, req: pb.PodSandboxStatusRequest) -> pb.PodSandboxStatusResponse:
    pod = cri.sandbox(req.pod_sandbox_id)
    resp = pb.PodSandboxStatusResponse(status=sandbox_view.status(cri, pod), timestamp=time.time_ns())
    if req.verbose:
        resp.info.update(sandbox_view.verbose_info(cri, pod))
    return resp
