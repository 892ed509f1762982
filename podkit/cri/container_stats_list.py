"""ListContainerStats: stats of the running containers the filter selects."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import stats_view
from podkit.cri.context import CRI, matches, user_labels


async def handle(cri: CRI, req: pb.ListContainerStatsRequest) -> pb.ListContainerStatsResponse:
    f = req.filter
    out = []
    for rec in cri.cri_containers():
        if rec.state not in ("running", "paused"):
            continue
        if f.id and not rec.id.startswith(f.id):
            continue
        if f.pod_sandbox_id and not (rec.pod_id or "").startswith(f.pod_sandbox_id):
            continue
        if f.label_selector and not matches(user_labels(rec.labels), f.label_selector):
            continue
        out.append(await stats_view.container_stats(cri, rec))
    return pb.ListContainerStatsResponse(stats=out)
