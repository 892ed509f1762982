"""ListContainers: filters by id / sandbox id (or their prefixes), state, labels."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import container_view
from podkit.cri.context import CRI, container_state, matches, user_labels


async def handle(cri: CRI, req: pb.ListContainersRequest) -> pb.ListContainersResponse:
    f = req.filter
    out = []
    for rec in cri.cri_containers():
        if f.id and not rec.id.startswith(f.id):
            continue
        if f.pod_sandbox_id and not (rec.pod_id or "").startswith(f.pod_sandbox_id):
            continue
        if f.HasField("state") and container_state(rec) != f.state.state:
            continue
        if f.label_selector and not matches(user_labels(rec.labels), f.label_selector):
            continue
        out.append(container_view.summary(cri, rec))
    out.sort(key=lambda c: c.created_at)
    return pb.ListContainersResponse(containers=out)
