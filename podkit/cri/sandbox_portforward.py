"""PortForward: a one-time URL on the streaming server into the sandbox's network."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import streaming_urls
from podkit.cri.context import CRI, pod_ready
from podkit.cri.errors import FailedPrecondition
from podkit.errors import InvalidArgument


async def handle(cri: CRI, req: pb.PortForwardRequest) -> pb.PortForwardResponse:
    pod = cri.sandbox(req.pod_sandbox_id)
    if not pod_ready(cri, pod):
        raise FailedPrecondition(f"pod sandbox {pod.id} is not ready")
    bad = [p for p in req.port if not 0 < p < 65536]
    if bad:
        raise InvalidArgument(f"port: {bad[0]} is not a port number")
    url = streaming_urls.server(cri).port_forward_url(cri.ns, pod.id, list(req.port))
    return pb.PortForwardResponse(url=url)
