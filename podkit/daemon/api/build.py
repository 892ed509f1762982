"""The build route: a context tar in, progress lines out (JSON lines, as docker's
classic builder sends them: ``{"stream"}``, ``{"aux": {"ID"}}``, ``{"error", "errorDetail"}``)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from podkit.daemon.api._routing import Ctx, Router
from podkit.errors import PodkitError

log = logging.getLogger(__name__)
router = Router("build")


@router.post(
    "/build",
    "Build an image from a Dockerfile in a context tar (the body)",
    params={
        "t": "name:tag (repeatable)",
        "dockerfile": "path of the Dockerfile in the context (default Dockerfile)",
        "buildargs": "JSON object of build arguments",
        "target": "the stage to build",
        "nocache": "do not use the build cache",
        "labels": "JSON object of labels for the image",
        "networkmode": "network of RUN steps",
        "pull": "pull the base images",
        "q": "no progress output",
        "platform": "host platform only",
    },
    stream=True,
)
async def build(ctx: Ctx) -> web.StreamResponse:
    from podkit.build import session

    opts = session.options_from_query(ctx.query)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(ctx.request)

    async def emit(text: str) -> None:
        await resp.write(json.dumps({"stream": text}).encode() + b"\n")

    async def body() -> AsyncIterator[bytes]:
        async for chunk in ctx.request.content.iter_chunked(1 << 20):
            yield chunk

    svcs = ctx.services
    try:
        # A build whose client left (^C) stops at once, even in a RUN that prints
        # nothing: its step container and views are removed by the builder's finally.
        iid = await ctx.unless_client_leaves(
            session.run(svcs.images, svcs.containers, ctx.ns, svcs.containers.state_dir, body(), opts, emit),
            "build",
        )
        await resp.write(json.dumps({"aux": {"ID": iid}}).encode() + b"\n")
    except ConnectionError:
        return resp
    except Exception as e:
        msg = session.error_message(e)
        if not isinstance(e, PodkitError):
            log.exception("build failed")
        await resp.write(json.dumps({"error": msg, "errorDetail": {"message": msg}}).encode() + b"\n")
    await resp.write_eof()
    return resp
