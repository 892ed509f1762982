"""PodSandboxStats: the pod cgroup's usage, its network counters, its containers'."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import stats_view
from podkit.cri.context import CRI


async def handle(cri: CRI, req: pb.PodSandboxStatsRequest) -> pb.PodSandboxStatsResponse:
    pod = cri.sandbox(req.pod_sandbox_id)
    return pb.PodSandboxStatsResponse(stats=await stats_view.sandbox_stats(cri, pod))
