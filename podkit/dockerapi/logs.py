"""``GET /containers/{id}/logs``: the container's log in docker's stream framing."""

from __future__ import annotations

from aiohttp import web

from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import NAMESPACE, containers, flag
from podkit.dockerapi.containers import _resolve
from podkit.dockerapi.streams import MULTIPLEXED_STREAM, RAW_STREAM, frame, stream_id
from podkit.errors import InvalidArgument

routes = Routes()


@routes.get("/containers/{id}/logs")
async def container_logs(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    want = tuple(s for s in ("stdout", "stderr") if flag(request, s))
    if not want:
        raise InvalidArgument("You must choose at least one stream")
    tail_arg = request.query.get("tail", "all")
    if tail_arg in ("", "all"):
        tail = None
    else:
        try:
            tail = int(tail_arg)
        except ValueError:
            raise InvalidArgument(f"invalid tail {tail_arg!r}: a number or 'all'") from None
        if tail < 0:
            tail = None
    since = request.query.get("since")
    if since in ("0", ""):
        since = None
    until = request.query.get("until")
    if until in ("0", ""):
        until = None
    timestamps = flag(request, "timestamps")
    tty = bool(rec.config.get("tty"))

    def wanted() -> bool:
        t = request.transport
        return t is not None and not t.is_closing()

    entries = await containers(request).logs(
        NAMESPACE,
        rec.id,
        follow=flag(request, "follow"),
        since=since,
        until=until,
        tail=tail,
        streams=want,
        wanted=wanted,
    )
    resp = web.StreamResponse(headers={"Content-Type": RAW_STREAM if tty else MULTIPLEXED_STREAM})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        async for e in entries:
            data = (e.ts.encode() + b" " + e.data) if timestamps else e.data
            await resp.write(data if tty else frame(stream_id(e.stream), data))
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client stopped following (^C): the normal end
    finally:
        await entries.aclose()  # type: ignore[attr-defined]
    return resp
