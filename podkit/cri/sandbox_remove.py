"""RemovePodSandbox: containers killed and removed, then the sandbox. Idempotent: a
sandbox that is gone already is no error (the CRI asks for that).

The reply comes once the removal is durable (pod ``removing``, name given up): the
sandbox and its containers are gone for the CRI from then on (``CRI.sandbox``,
``CRI.container``, the lists), and the stop, tear-down and deletion go on in the
background, redone by recovery after a crash (``PodService.remove(background=True)``)."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import stats_view
from podkit.cri.context import CRI
from podkit.errors import InvalidArgument, NotFound


async def handle(cri: CRI, req: pb.RemovePodSandboxRequest) -> pb.RemovePodSandboxResponse:
    if not req.pod_sandbox_id:
        raise InvalidArgument("pod_sandbox_id is empty")
    try:
        pod = cri.sandbox(req.pod_sandbox_id)
    except NotFound:
        return pb.RemovePodSandboxResponse()
    members = [r.id for r in cri.cri_containers() if r.pod_id == pod.id]
    try:
        await cri.pods.remove(cri.ns, pod.id, force=True, background=True)
    except NotFound:
        pass
    for key in (pod.id, *members):
        stats_view.forget(key)  # removed meanwhile
    return pb.RemovePodSandboxResponse()
