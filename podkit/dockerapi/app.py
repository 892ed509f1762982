"""The Docker API application: routes (bare and version-prefixed), version checks,
and docker's ``{"message": ...}`` errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from podkit.daemon.memory import watch_responses
from podkit.dockerapi.common import (
    API_VERSION,
    EXEC_EXTRA,
    MIN_API_VERSION,
    NAMESPACE,
    SERVICES,
    json_response,
    parse_version,
)
from podkit.errors import PodkitError
from podkit.limits import LARGE_JSON_BODY_MAX

if TYPE_CHECKING:
    from podkit.daemon.services import Services

log = logging.getLogger(__name__)

__all__ = ["API_VERSION", "MIN_API_VERSION", "NAMESPACE", "Routes", "make_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_VERSION_PREFIX = r"/v{version:[0-9]+\.[0-9]+}"


class Routes:
    """One area's routes; each is served both bare and under ``/vX.Y``."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, Handler]] = []

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.items.append((method, path, fn))
            return fn

        return deco

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("GET", path)

    def head(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("HEAD", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("POST", path)

    def put(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("PUT", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path)


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)


@web.middleware
async def _middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = request.match_info.get("version")
    if version is not None:
        if parse_version(version) < parse_version(MIN_API_VERSION):
            return error_response(
                400,
                f"client version {version} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version",
            )
        if parse_version(version) > parse_version(API_VERSION):
            return error_response(
                400, f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
            )
    try:
        return await handler(request)
    except PodkitError as e:
        if e.status >= 500 and e.status not in (501, 503):
            log.warning("docker API %s %s: %s", request.method, request.path, e.message)
        return error_response(e.status, e.message)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        msg = "page not found" if e.status == 404 else f"{e.reason}: {request.method} {request.path}"
        return error_response(e.status, msg)
    except (ConnectionResetError, BrokenPipeError):
        raise
    except Exception as e:
        log.exception("docker API: unhandled error in %s %s", request.method, request.path)
        return error_response(500, f"internal error: {type(e).__name__}: {e}")


def make_app(services: Services) -> web.Application:
    from podkit.dockerapi import (
        archive,
        attach,
        build,
        commit,
        containers,
        distribution,
        exec,
        images,
        logs,
        networks,
        stats,
        system,
        unsupported,
        volumes,
    )

    # JSON bodies are read whole (common.body): bounded, a 413 over it (docs/security.md).
    # Uploads (archives, image load) stream from request.content, which this does not cap.
    app = web.Application(middlewares=[_middleware], client_max_size=LARGE_JSON_BODY_MAX)
    watch_responses(app, services.memory)
    app[SERVICES] = services
    app[EXEC_EXTRA] = {}
    areas = (
        system,
        containers,
        logs,
        attach,
        exec,
        stats,
        archive,
        commit,
        build,
        images,
        distribution,
        networks,
        volumes,
    )
    for area in (*areas, unsupported):  # the catch-alls last
        for method, path, fn in area.routes.items:
            app.router.add_route(method, path, fn)
            app.router.add_route(method, _VERSION_PREFIX + path, fn)
    return app
