"""ListPodSandboxStats: stats of the ready sandboxes the filter selects."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import stats_view
from podkit.cri.context import CRI, matches, pod_ready, user_labels


async def handle(cri: CRI, req: pb.ListPodSandboxStatsRequest) -> pb.ListPodSandboxStatsResponse:
    f = req.filter
    out = []
    for pod in cri.cri_pods():
        if not pod_ready(cri, pod):
            continue
        if f.id and not pod.id.startswith(f.id):
            continue
        if f.label_selector and not matches(user_labels(pod.spec.labels), f.label_selector):
            continue
        out.append(await stats_view.sandbox_stats(cri, pod))
    return pb.ListPodSandboxStatsResponse(stats=out)
