"""RemoveContainer: killed if running, then removed with its rootfs and podkit's log
directory (the CRI log under the pod's log_directory is the kubelet's to delete).
Idempotent: a container already gone is no error.

The reply comes once the removal is durable (record ``removing``, name given up):
from then on the container is gone for the CRI (lists, status: ``CRI.container``),
and its unmount, deletion and network release go on in the background, resumed by
recovery after a crash (``ContainerService.remove(background=True)``)."""

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
        await cri.containers.remove(cri.ns, rec.id, force=True, background=True)
    except NotFound:
        pass
    else:
        stats_view.forget(rec.id)
    return pb.RemoveContainerResponse()
