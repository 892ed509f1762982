"""``/containers/{id}/archive``: GET (a tar of a path), HEAD (its stat), PUT (extract
a tar into a directory). The stat travels base64-encoded in
``X-Docker-Container-Path-Stat`` with Go's file mode bits, as the docker CLI decodes it."""

from __future__ import annotations

import base64
import json
import stat
from typing import Any

from aiohttp import web

from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import NAMESPACE, containers, flag, rfc3339
from podkit.dockerapi.containers import _resolve
from podkit.errors import InvalidArgument

routes = Routes()
STAT_HEADER = "X-Docker-Container-Path-Stat"


def go_mode(mode: int) -> int:
    """A unix st_mode as Go's os.FileMode (type bits at the top, permissions below)."""
    m = mode & 0o777
    if mode & stat.S_ISUID:
        m |= 1 << 23
    if mode & stat.S_ISGID:
        m |= 1 << 22
    if mode & stat.S_ISVTX:
        m |= 1 << 20
    if stat.S_ISDIR(mode):
        m |= 1 << 31
    elif stat.S_ISLNK(mode):
        m |= 1 << 27
    elif stat.S_ISFIFO(mode):
        m |= 1 << 25
    elif stat.S_ISSOCK(mode):
        m |= 1 << 24
    elif stat.S_ISCHR(mode):
        m |= (1 << 26) | (1 << 21)
    elif stat.S_ISBLK(mode):
        m |= 1 << 26
    return m


def _stat_header(st: dict[str, Any]) -> str:
    doc = {
        "name": st["name"],
        "size": st["size"],
        "mode": go_mode(int(st["mode"])),
        "mtime": rfc3339(st["mtime"]),
        "linkTarget": st.get("link_target") or "",
    }
    return base64.b64encode(json.dumps(doc).encode()).decode()


def _path(request: web.Request) -> str:
    path = request.query.get("path")
    if not path:
        raise InvalidArgument("path is required (query parameter path)")
    return path


@routes.get("/containers/{id}/archive")
async def get_archive(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    st, chunks = await containers(request).archive_get(NAMESPACE, rec.id, _path(request))
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar", STAT_HEADER: _stat_header(st)})
    resp.enable_chunked_encoding()
    try:
        await resp.prepare(request)
        async for c in chunks:
            await resp.write(c)
        await resp.write_eof()
    finally:
        await chunks.aclose()
    return resp


@routes.head("/containers/{id}/archive")
async def stat_archive(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    st = await containers(request).archive_stat(NAMESPACE, rec.id, _path(request))
    return web.Response(status=200, headers={STAT_HEADER: _stat_header(st)})


@routes.put("/containers/{id}/archive")
async def put_archive(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    # docker: the tar's owners with copyUIDGID (cp -a), else the container's root
    keep = flag(request, "copyUIDGID")
    await containers(request).archive_put(NAMESPACE, rec.id, _path(request), request.content, keep)
    return web.Response(status=200)
