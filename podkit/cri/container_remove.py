"""RemoveContainer: killed if running, then removed with its rootfs and podkit's log
directory (the CRI log under the pod's log_directory is the kubelet's to delete).
Idempotent: a container already gone is no error."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import stats_view
from podkit.cri.context import CRI
from podkit.errors import InvalidArgument, NotFound


async def handle(cri: CRI, req: pb.RemoveContainerRequest) -> pb.RemoveContainerResponse:
    if not req.container_id:
        raise InvalidArgument("container_id is empty")
    try:
        rec = cri.container(req.container_id)
        await cri.containers.remove(cri.ns, rec.id, force=True)
    except NotFound:
        pass
    else:
        stats_view.forget(rec.id)
    return pb.RemoveContainerResponse()
