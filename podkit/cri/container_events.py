"""GetContainerEvents: the stream the kubelet's evented PLEG reads — created, started,
stopped, deleted, with the sandbox's and its containers' statuses at that moment.

Events of a sandbox's infra container are reported under the sandbox's id, as
containerd reports its sandbox tasks.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from cri_api.v1 import api_pb2 as pb

from podkit.cri import container_view, sandbox_view
from podkit.cri.context import CRI, L_CRI
from podkit.errors import NotFound

_TYPES = {
    "create": pb.CONTAINER_CREATED_EVENT,
    "start": pb.CONTAINER_STARTED_EVENT,
    "die": pb.CONTAINER_STOPPED_EVENT,
    "destroy": pb.CONTAINER_DELETED_EVENT,
}


def _response(cri: CRI, cid: str, kind: int, when: float, pod_id: str | None) -> pb.ContainerEventResponse:
    resp = pb.ContainerEventResponse(container_id=cid, container_event_type=kind, created_at=int(when * 1e9))  # type: ignore[arg-type]
    if pod_id:
        with contextlib.suppress(NotFound):
            pod = cri.sandbox(pod_id)
            resp.pod_sandbox_status.CopyFrom(sandbox_view.status(cri, pod))
            resp.containers_statuses.extend(
                container_view.status(cri, r) for r in cri.cri_containers() if r.pod_id == pod.id
            )
    return resp


async def handle(cri: CRI, req: pb.GetEventsRequest) -> AsyncIterator[pb.ContainerEventResponse]:
    pod_of: dict[str, tuple[str | None, bool]] = {}  # container id -> (pod id, infra), for "destroy"
    async for ev in cri.services.events.subscribe():
        if ev.namespace != cri.ns or ev.type != "container":
            continue
        kind = _TYPES.get(ev.action)
        if kind is None:
            continue
        rec = cri.containers.store.get(ev.id)
        if rec is not None:
            if rec.labels.get(L_CRI) != "true" and not rec.infra:
                continue
            pod_of[ev.id] = (rec.pod_id, rec.infra)
        known = pod_of.get(ev.id)
        if known is None:
            continue
        pod_id, infra = known
        if ev.action == "destroy":
            pod_of.pop(ev.id, None)
        yield _response(cri, pod_id if infra and pod_id else ev.id, kind, ev.time, pod_id)
