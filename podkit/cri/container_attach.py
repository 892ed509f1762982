"""Attach: a one-time URL on the streaming server to the container's own stdio."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import streaming_urls
from podkit.cri.context import CRI


async def handle(cri: CRI, req: pb.AttachRequest) -> pb.AttachResponse:
    cid = streaming_urls.running_container(cri, req.container_id)
    streaming_urls.check_streams(req.stdin, req.stdout, req.stderr, req.tty)
    url = streaming_urls.server(cri).attach_url(
        cri.ns, cid, tty=req.tty, stdin=req.stdin, stdout=req.stdout, stderr=req.stderr
    )
    return pb.AttachResponse(url=url)
