"""ListPodSandbox: filters by id (or its prefix), state and label selector."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import sandbox_view
from podkit.cri.context import CRI, matches, user_labels


async def handle(cri: CRI, req: pb.ListPodSandboxRequest) -> pb.ListPodSandboxResponse:
    f = req.filter
    items = []
    for pod in cri.cri_pods():
        if f.id and not pod.id.startswith(f.id):
            continue
        if f.label_selector and not matches(user_labels(pod.spec.labels), f.label_selector):
            continue
        item = sandbox_view.summary(cri, pod)
        if f.HasField("state") and item.state != f.state.state:
            continue
        items.append(item)
    items.sort(key=lambda p: p.created_at)
    return pb.ListPodSandboxResponse(items=items)
