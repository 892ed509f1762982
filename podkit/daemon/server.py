"""The aiohttp application: routes under /v1, JSON errors, OpenAPI at /openapi.json."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from podkit._version import API_VERSION, __version__
from podkit.daemon.api import routers
from podkit.daemon.api._routing import Ctx, Route
from podkit.daemon.memory import watch_responses
from podkit.daemon.services import Services
from podkit.errors import Internal, PodkitError, is_no_space, no_space
from podkit.limits import LARGE_JSON_BODY_MAX

log = logging.getLogger(__name__)
PREFIX = f"/{API_VERSION}"


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)


def _error_response(err: PodkitError) -> web.Response:
    return web.json_response(err.to_dict(), status=err.status, dumps=_dumps)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except PodkitError as e:
        if e.status >= 500:
            log.warning("%s %s: %s", request.method, request.path, e.message)
        return _error_response(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status, "http_error")
        return web.json_response(
            {"error": {"code": code, "message": f"{e.reason}: {request.method} {request.path}"}},
            status=e.status,
        )
    except (ConnectionResetError, BrokenPipeError):
        raise
    except Exception as e:
        if is_no_space(e):
            # A full disk is the user's to fix (free space, rm, prune), not a daemon bug:
            # a clear 507 naming where, and no traceback per request.
            err = no_space(e, request.app["services"].config.root)
            log.warning(
                "%s %s: %s",
                request.method,
                request.path,
                err.message,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            return _error_response(err)
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _error_response(Internal(f"internal error: {type(e).__name__}: {e}"))


def _wrap(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = Ctx(request)
        ctx.body_schema = route.body
        ctx.max_body = route.max_body
        result = await route.handler(ctx)
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204)
        return web.json_response(result, status=route.status, dumps=_dumps)

    handler.__name__ = route.handler.__name__
    return handler


def openapi(all_routes: list[Route]) -> dict[str, Any]:
    """The OpenAPI 3 document of the routes, from their declarations (GET /openapi.json)."""
    paths: dict[str, dict[str, Any]] = {}
    for r in all_routes:
        op: dict[str, Any] = {
            "summary": r.summary,
            "operationId": r.handler.__name__,
            "tags": [r.tag],
            "parameters": [
                {
                    "name": "X-Podkit-Namespace",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "default": "default"},
                },
            ],
            "responses": {},
        }
        for seg in r.path.split("/"):
            if seg.startswith("{") and seg.endswith("}"):
                name = seg[1:-1].split(":")[0]
                op["parameters"].append(
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                )
        for name, desc in r.params.items():
            op["parameters"].append(
                {
                    "name": name,
                    "in": "query",
                    "required": False,
                    "description": desc,
                    "schema": {"type": "string"},
                }
            )
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": r.body}},
            }
        if r.stream:
            ok = {
                "description": "newline-delimited JSON stream",
                "content": {"application/x-ndjson": {"schema": r.response or {"type": "object"}}},
            }
        elif r.status == 204:
            ok = {"description": "done"}
        else:
            ok = {"description": "ok", "content": {"application/json": {"schema": r.response or {}}}}
        op["responses"][str(r.status)] = ok
        op["responses"]["default"] = {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        path = PREFIX + "".join(
            "/" + (seg.split(":")[0] + "}" if seg.startswith("{") and ":" in seg else seg)
            for seg in r.path.strip("/").split("/")
        )
        paths.setdefault(path, {})[r.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "podkit API",
            "version": __version__,
            "description": "The HTTP/JSON API of podkitd, served on its unix socket.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "details": {"type": "object"},
                            },
                            "required": ["code", "message"],
                        }
                    },
                }
            }
        },
    }


def make_app(services: Services) -> web.Application:
    # Handlers read JSON through Ctx.json (each route's max_body); streamed uploads read
    # request.content, which this does not bound. The cap is for anything else.
    app = web.Application(middlewares=[errors_middleware], client_max_size=LARGE_JSON_BODY_MAX)
    watch_responses(app, services.memory)
    app["services"] = services
    all_routes: list[Route] = []
    for router in routers():
        for r in router.routes:
            app.router.add_route(r.method, PREFIX + r.path, _wrap(r))
            all_routes.append(r)

    async def get_openapi(request: web.Request) -> web.Response:
        # Built per request (a few ms): kept, the document was 0.2 MB of idle RSS.
        return web.json_response(openapi(all_routes))

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="OK")

    app.router.add_get("/openapi.json", get_openapi)
    app.router.add_get("/_ping", ping)
    return app
