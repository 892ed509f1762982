"""What podkit does not do, answered as docker answers it: swarm objects as a docker
that is not a swarm manager (503), plugins and BuildKit
sessions as not implemented (501), with a message saying so."""

from __future__ import annotations

from aiohttp import web

from podkit.dockerapi.app import Routes, error_response
from podkit.dockerapi.common import json_response

routes = Routes()

_NOT_SWARM = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect '
    "this node to swarm and try again."
)


async def _not_swarm(request: web.Request) -> web.StreamResponse:
    return error_response(503, _NOT_SWARM)


def _not_implemented(message: str) -> object:
    async def handler(request: web.Request) -> web.StreamResponse:
        return error_response(501, message)

    return handler


for _area in ("swarm", "services", "tasks", "secrets", "configs", "nodes"):
    for _path in (f"/{_area}", f"/{_area}/{{tail:.*}}"):
        for _m in ("GET", "POST", "DELETE", "PUT"):
            routes.route(_m, _path)(_not_swarm)

_PLUGINS = _not_implemented("plugins are not supported by podkit")
_BUILD = _not_implemented("BuildKit sessions are not supported: use the classic builder (DOCKER_BUILDKIT=0)")

for _m in ("GET", "POST", "DELETE"):
    routes.route(_m, "/plugins")(_PLUGINS)  # type: ignore[arg-type]
    routes.route(_m, "/plugins/{tail:.*}")(_PLUGINS)  # type: ignore[arg-type]
routes.get("/session")(_BUILD)  # type: ignore[arg-type]
routes.post("/session")(_BUILD)  # type: ignore[arg-type]


def _no_space_targets(request: web.Request) -> None:
    """keep-storage (renamed reserved-space in 1.48), max-used-space and min-free-space
    (1.48) ask to keep part of the cache; podkit's prune removes all that is unused, so
    one of them set is refused rather than pruning more than asked."""
    from podkit.dockerapi.common import api_version
    from podkit.errors import InvalidArgument

    names = ["keep-storage"]
    if api_version(request) >= (1, 48):
        names += ["reserved-space", "max-used-space", "min-free-space"]
    for name in names:
        v = request.query.get(name) or "0"
        try:
            set_ = float(v) != 0
        except ValueError:
            raise InvalidArgument(f"{name} is in bytes and expects an integer, got {v!r}") from None
        if set_:
            raise InvalidArgument(
                f"build/prune {name} is not supported by podkit: its prune removes all the unused build "
                "cache (use filters until, label)"
            )


@routes.post("/build/prune")
async def build_prune(request: web.Request) -> web.StreamResponse:
    """The build cache is the images of the build namespace (podkit/build): every one no
    build is using goes (``docker builder prune``, ``docker system prune``); the filters
    until and label(!) narrow it, BuildKit's other keys do not apply and are ignored."""
    import asyncio

    from podkit.daemon.system_usage import BUILD_NS
    from podkit.dockerapi.common import filters, images
    from podkit.prune import SYSTEM_KEYS, PruneFilters

    _no_space_targets(request)
    f = PruneFilters.parse({k: v for k, v in filters(request).items() if k in SYSTEM_KEYS}, SYSTEM_KEYS)
    res = await asyncio.to_thread(images(request).prune, BUILD_NS, True, f)
    gone = [str(d["Deleted"]).split(":", 1)[-1] for d in res.get("deleted") or [] if "Deleted" in d]
    return json_response(
        {"CachesDeleted": gone or None, "SpaceReclaimed": int(res.get("space_reclaimed") or 0)}
    )
