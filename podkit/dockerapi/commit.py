"""``/commit``, ``/containers/{id}/changes`` and ``/containers/{id}/export``: a
container's changes as an image, a list, or its whole file system as a tar."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from podkit.daemon.leaving import stream_out
from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import NAMESPACE, containers, flag, json_response
from podkit.dockerapi.containers import _resolve
from podkit.errors import InvalidArgument, NotFound

routes = Routes()


def _config_changes(cfg: dict[str, Any]) -> list[str]:
    """A commit body's container config as Dockerfile instructions (what docker merges)."""
    out: list[str] = []
    for key, word in (("Cmd", "CMD"), ("Entrypoint", "ENTRYPOINT")):
        v = cfg.get(key)
        if isinstance(v, list) and v:
            out.append(f"{word} {json.dumps(v)}")
        elif isinstance(v, str) and v:
            out.append(f"{word} {v}")
    for e in cfg.get("Env") or []:
        if isinstance(e, str) and "=" in e:
            k, _, v = e.partition("=")
            out.append(f"ENV {k}={json.dumps(v)}")
    for k, v in (cfg.get("Labels") or {}).items():
        out.append(f"LABEL {json.dumps(str(k))}={json.dumps(str(v))}")
    if cfg.get("WorkingDir"):
        out.append(f"WORKDIR {cfg['WorkingDir']}")
    if cfg.get("User"):
        out.append(f"USER {cfg['User']}")
    ports = cfg.get("ExposedPorts") or {}
    if ports:
        out.append("EXPOSE " + " ".join(sorted(ports)))
    vols = cfg.get("Volumes") or {}
    if vols:
        out.append("VOLUME " + json.dumps(sorted(vols)))
    if cfg.get("StopSignal"):
        out.append(f"STOPSIGNAL {cfg['StopSignal']}")
    return out


@routes.post("/commit")
async def commit(request: web.Request) -> web.StreamResponse:
    q = request.query
    ref = q.get("container")
    if not ref:
        raise InvalidArgument("container is required")
    try:
        rec = containers(request).resolve(NAMESPACE, ref)
    except NotFound:
        raise NotFound(f"No such container: {ref}") from None
    name = None
    if q.get("repo"):
        name = q["repo"] + (f":{q['tag']}" if q.get("tag") else "")
    changes: list[str] = []
    raw = await request.read()
    if raw.strip():
        try:
            cfg = json.loads(raw)
        except ValueError:
            raise InvalidArgument("the commit body is not JSON") from None
        if isinstance(cfg, dict):
            changes += _config_changes(cfg)
    for c in q.getall("changes", []):
        changes += [line for line in c.splitlines() if line.strip()]
    out = await containers(request).commit(
        NAMESPACE,
        rec.id,
        name,
        message=q.get("comment", ""),
        author=q.get("author", ""),
        changes=changes,
        pause=flag(request, "pause", True),
    )
    return json_response({"Id": out["id"]}, status=201)


@routes.get("/containers/{id}/changes")
async def changes(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    found = await containers(request).changes(NAMESPACE, rec.id)
    return json_response(found or None)


@routes.get("/containers/{id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    chunks = await containers(request).export(NAMESPACE, rec.id)
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    resp.enable_chunked_encoding()
    try:
        await resp.prepare(request)
        await stream_out(request, resp, chunks, f"export of {rec.id[:12]}")
    except ConnectionError:
        pass  # the client left before the headers
    finally:
        await chunks.aclose()
    return resp
