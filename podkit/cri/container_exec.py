"""Exec: a one-time URL on the streaming server for an interactive exec."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import streaming_urls
from podkit.cri.context import CRI
from podkit.errors import InvalidArgument


async def handle(cri: CRI, req: pb.ExecRequest) -> pb.ExecResponse:
    cid = streaming_urls.running_container(cri, req.container_id)
    if not req.cmd:
        raise InvalidArgument("cmd is empty")
    streaming_urls.check_streams(req.stdin, req.stdout, req.stderr, req.tty)
    url = streaming_urls.server(cri).exec_url(
        cri.ns, cid, list(req.cmd), tty=req.tty, stdin=req.stdin, stdout=req.stdout, stderr=req.stderr
    )
    return pb.ExecResponse(url=url)
