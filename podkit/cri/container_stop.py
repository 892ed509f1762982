"""StopContainer: the image's stop signal (or SIGTERM), SIGKILL after ``timeout``
seconds. Stopping a stopped container is no error."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI
from podkit.errors import InvalidArgument


async def handle(cri: CRI, req: pb.StopContainerRequest) -> pb.StopContainerResponse:
    rec = cri.container(req.container_id)
    if req.timeout < 0:
        raise InvalidArgument("timeout must not be negative")
    if rec.state in ("running", "paused", "restarting"):
        await cri.containers.stop(cri.ns, rec.id, timeout=int(req.timeout))
    return pb.StopContainerResponse()
