"""ContainerStats: cpu, memory and writable-layer usage of one container."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import stats_view
from podkit.cri.context import CRI


async def handle(cri: CRI, req: pb.ContainerStatsRequest) -> pb.ContainerStatsResponse:
    rec = cri.container(req.container_id)
    return pb.ContainerStatsResponse(stats=await stats_view.container_stats(cri, rec))
