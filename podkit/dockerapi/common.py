"""What every docker API handler shares: typed service access, query parsing,
docker's time formats and filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from podkit.errors import InvalidArgument, NotFound, PodkitError, Unavailable

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService
    from podkit.containers.store import Record
    from podkit.containers.volumes import VolumeService
    from podkit.daemon.events import EventBus
    from podkit.daemon.services import Services
    from podkit.images.distribution import Registry
    from podkit.images.service import ImageService
    from podkit.network.manager import NetworkManager

# The application's state, typed (aiohttp's AppKey): the services, and what the
# exec endpoints keep per session that podkit's sessions do not (detach keys, streams).
SERVICES: web.AppKey[Services] = web.AppKey("podkit_services")
EXEC_EXTRA: web.AppKey[dict[str, dict[str, Any]]] = web.AppKey("docker_exec_extra")

# Docker API objects are podkit's objects in this namespace.
NAMESPACE = "default"
ZERO_TIME = "0001-01-01T00:00:00Z"

# The Docker Engine API versions served (docs/docker.md, "API versions"): a request's
# /vX.Y prefix picks the shapes and behaviour of that version; a bare path gets the
# newest, as dockerd's do.
API_VERSION = "1.51"
MIN_API_VERSION = "1.24"
Version = tuple[int, int]


def parse_version(v: str) -> Version:
    major, _, minor = v.partition(".")
    return int(major), int(minor or 0)


MAX_VERSION = parse_version(API_VERSION)


def api_version(request: web.Request) -> Version:
    """The API version a request speaks: its /vX.Y prefix (checked by the middleware)."""
    v = request.match_info.get("version")
    return parse_version(v) if v else MAX_VERSION


class NotImplementedYet(PodkitError):
    """An endpoint or option podkit does not offer (yet): docker's 501."""

    code = "not_implemented"
    status = 501


class Forbidden(PodkitError):
    """An operation docker refuses outright (removing a pre-defined network): 403."""

    code = "forbidden"
    status = 403


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def containers(request: web.Request) -> ContainerService:
    svc: ContainerService | None = services(request).containers
    if svc is None:
        raise Unavailable("the container service is not available in this daemon")
    return svc


def images(request: web.Request) -> ImageService:
    svc: ImageService = services(request).images
    return svc


def registry(request: web.Request) -> Registry:
    reg: Registry | None = services(request).registry
    if reg is None:
        raise Unavailable("the registry service is not available in this daemon")
    return reg


def networks_or_none(request: web.Request) -> NetworkManager | None:
    net: NetworkManager | None = services(request).networks
    return net


def networks(request: web.Request) -> NetworkManager:
    net: NetworkManager | None = services(request).networks
    if net is None:
        raise Unavailable("networking is not available in this daemon")
    return net


def volumes(request: web.Request) -> VolumeService:
    vol: VolumeService | None = services(request).volumes
    if vol is None:
        raise Unavailable("the volume service is not available in this daemon")
    return vol


def events(request: web.Request) -> EventBus:
    return services(request).events


def flag(request: web.Request, name: str, default: bool = False) -> bool:
    """docker's boolean query values: 1/true/yes (and an empty value counts as false)."""
    v = request.query.get(name)
    if v is None:
        return default
    return v.strip().lower() in ("1", "true", "yes", "on")


def int_arg(request: web.Request, name: str, default: int | None = None) -> int | None:
    v = request.query.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name!r}: {v!r} is not an integer") from None


def json_object(raw: str, not_json: str, not_object: str) -> dict[str, Any]:
    """A query parameter's JSON object; InvalidArgument with the message for what it is
    instead (not JSON at all, or JSON of another kind)."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidArgument(not_json) from None
    if not isinstance(data, dict):
        raise InvalidArgument(not_object)
    return data


def filters(request: web.Request) -> dict[str, list[str]]:
    """The ``filters`` query: ``{"key": ["v", ...]}`` or the old ``{"key": {"v": true}}``."""
    raw = request.query.get("filters") or request.query.get("filter")
    if not raw:
        return {}
    data = json_object(raw, f"invalid filters {raw!r}: not JSON", f"invalid filters {raw!r}: want an object")
    out: dict[str, list[str]] = {}
    for k, v in data.items():
        if isinstance(v, dict):
            out[str(k)] = [str(x) for x, on in v.items() if on]
        elif isinstance(v, list):
            out[str(k)] = [str(x) for x in v]
        else:
            out[str(k)] = [str(v)]
    return out


async def body(request: web.Request) -> dict[str, Any]:
    """A JSON object body; an empty body is an empty object."""
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid JSON in the request body: {e}") from None
    except RecursionError:
        raise InvalidArgument("invalid JSON in the request body: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return data


def rfc3339(t: float | None) -> str:
    """Docker's RFC 3339 with nanoseconds, UTC; the zero time for 'never'."""
    if not t:
        return ZERO_TIME
    dt = datetime.fromtimestamp(t, UTC)
    ns = int(round((t - int(t)) * 1e9))
    if ns >= 1_000_000_000:
        ns = 999_999_999
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def parse_time(value: str) -> float:
    """A docker time argument: unix seconds (with fraction) or RFC 3339."""
    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InvalidArgument(f"invalid time {value!r}: want unix seconds or RFC 3339") from None


def json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json", no charset: the docker CLI reads an error body's
    # message only under that content type (else it prints the raw JSON).
    body = json.dumps(data, default=str).encode()
    return web.Response(body=body, status=status, headers={"Content-Type": "application/json"})


def no_content() -> web.Response:
    return web.Response(status=204)


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def labels_match(labels: dict[str, str], f: dict[str, list[str]]) -> bool:
    """docker's ``label`` / ``label!`` filters (``key`` or ``key=value``) over some labels."""

    def has(x: str) -> bool:
        k, eq, v = x.partition("=")
        return k in labels and (not eq or labels[k] == v)

    return all(has(x) for x in f.get("label") or []) and not any(has(x) for x in f.get("label!") or [])


def records(svc: ContainerService, rows: list[dict[str, Any]]) -> list[Record]:
    """The records behind a container listing, skipping those removed meanwhile."""
    out = []
    for r in rows:
        try:
            out.append(svc.resolve(NAMESPACE, str(r["id"])))
        except NotFound:
            continue
    return out


def check_platform(request: web.Request, img: Any, ref: str, param: str, since: Version) -> None:
    """A ``platform`` query (a JSON OCI platform; API ``since`` on) naming one platform
    of the image: podkit keeps one platform per image, so it must be that one."""
    raw = request.query.getall(param, []) if api_version(request) >= since else []
    if not raw:
        return
    want: list[tuple[str, str, str]] = []
    for r in raw:
        bad = f"invalid {param} {r!r}: want a JSON OCI platform"
        p = json_object(r, bad, bad)
        want.append((str(p.get("os") or ""), str(p.get("architecture") or ""), str(p.get("variant") or "")))
    cfg = img.config
    have = (str(cfg.get("os") or "linux"), str(cfg.get("architecture") or ""), str(cfg.get("variant") or ""))
    for os_, arch, variant in want:
        if (
            (not os_ or os_ == have[0])
            and (not arch or arch == have[1])
            and (not variant or variant == have[2])
        ):
            return
    shown = ", ".join("/".join(x for x in w if x) for w in want)
    raise NotFound(f"image {ref} has no platform {shown}: podkit keeps its one platform, {have[0]}/{have[1]}")
