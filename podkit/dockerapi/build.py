"""``POST /build``: the classic builder's protocol (``DOCKER_BUILDKIT=0 docker build``):
a context tar in, JSON lines out — ``{"stream"}`` for progress, ``{"aux": {"ID"}}``
for the image, ``{"error", "errorDetail"}`` for a failure — over podkit's builder."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from podkit.daemon.leaving import unless_client_leaves
from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import NAMESPACE, containers, images
from podkit.errors import InvalidArgument, PodkitError, Unavailable

log = logging.getLogger(__name__)
routes = Routes()


@routes.post("/build")
async def build(request: web.Request) -> web.StreamResponse:
    from podkit.build import session

    q = request.query
    if q.get("remote"):
        raise InvalidArgument("remote build contexts are not fetched (podkit builds offline)")
    if q.get("version") == "2":
        raise InvalidArgument("BuildKit is not supported: use the classic builder (DOCKER_BUILDKIT=0)")
    opts = session.options_from_query(q)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)

    async def emit(text: str) -> None:
        await resp.write(json.dumps({"stream": text}).encode() + b"\r\n")

    async def body() -> AsyncIterator[bytes]:
        async for chunk in request.content.iter_chunked(1 << 20):
            yield chunk

    svc = containers(request)
    try:
        # A client that leaves (docker build's ^C) stops the build at once, even in a RUN
        # that prints nothing: its step container, views and snapshots are removed by the
        # builder's shielded finally blocks.
        iid = await unless_client_leaves(
            request, session.run(images(request), svc, NAMESPACE, svc.state_dir, body(), opts, emit), "build"
        )
        await resp.write(json.dumps({"aux": {"ID": iid}}).encode() + b"\r\n")
    except (ConnectionError, Unavailable):
        return resp  # nobody to tell
    except Exception as e:
        msg = session.error_message(e)
        if not isinstance(e, PodkitError):
            log.exception("docker API: build failed")
        await resp.write(json.dumps({"errorDetail": {"message": msg}, "error": msg}).encode() + b"\r\n")
    await resp.write_eof()
    return resp
