"""ReopenContainerLog: after the kubelet renamed the log to rotate it, conmon opens a
new file at the same path."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI
from podkit.cri.errors import FailedPrecondition
from podkit.errors import Conflict


async def handle(cri: CRI, req: pb.ReopenContainerLogRequest) -> pb.ReopenContainerLogResponse:
    rec = cri.container(req.container_id)
    try:
        await cri.containers.reopen_log(cri.ns, rec.id)
    except Conflict as e:
        raise FailedPrecondition(e.message) from None
    return pb.ReopenContainerLogResponse()
