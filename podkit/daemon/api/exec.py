"""Exec routes: run extra processes in a running container."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from podkit.daemon.api._routing import Ctx, Router
from podkit.daemon.api._stdio import serve_stdio

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService

router = Router("exec")


def _svc(ctx: Ctx) -> ContainerService:
    return ctx.services.containers


@router.post(
    "/containers/{ref}/exec",
    "Prepare an exec session",
    status=201,
    body={
        "type": "object",
        "required": ["cmd"],
        "properties": {
            "cmd": {"type": "array", "items": {"type": "string"}},
            "env": {"type": "array"},
            "user": {"type": "string"},
            "workdir": {"type": "string"},
            "tty": {"type": "boolean"},
            "stdin": {"type": "boolean"},
            "privileged": {"type": "boolean"},
            "console_size": {"type": "array", "items": {"type": "integer"}},
        },
    },
    response={"type": "object", "properties": {"id": {"type": "string"}}},
)
async def exec_create(ctx: Ctx) -> dict[str, str]:
    body = await ctx.json()
    ex = await _svc(ctx).exec_create(ctx.ns, ctx.match["ref"], body)
    return {"id": ex.id}


@router.get("/exec/{id}", "Inspect an exec session")
async def exec_inspect(ctx: Ctx) -> object:
    return _svc(ctx).exec_get(ctx.ns, ctx.match["id"]).to_dict()


@router.post(
    "/exec/{id}/start",
    "Start an exec session detached",
    status=204,
    params={"detach": "must be true: attached sessions use the WebSocket"},
)
async def exec_start(ctx: Ctx) -> None:
    await _svc(ctx).exec_start_detached(ctx.ns, ctx.match["id"])


@router.get("/exec/{id}/ws", "Start an exec session attached (WebSocket)")
async def exec_ws(ctx: Ctx) -> web.StreamResponse:
    svc = _svc(ctx)
    ex = svc.exec_get(ctx.ns, ctx.match["id"])
    session = await svc.exec_attach(ctx.ns, ex.id)

    async def wait_exit() -> int:
        return await svc.exec_wait(ctx.ns, ex.id)

    return await serve_stdio(ctx.request, session, wait_exit)


@router.post(
    "/exec/{id}/resize", "Resize an exec session's tty", status=204, params={"h": "rows", "w": "columns"}
)
async def exec_resize(ctx: Ctx) -> None:
    await _svc(ctx).exec_resize(ctx.ns, ctx.match["id"], ctx.int_arg("h", 24), ctx.int_arg("w", 80))
