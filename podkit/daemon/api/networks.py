"""Network routes: create, list, inspect, remove, prune (networks are host-wide);
connect and disconnect of a container (in the request's namespace)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from podkit.daemon.api._routing import Ctx, Router
from podkit.daemon.api.volumes import filters_arg
from podkit.errors import InvalidArgument
from podkit.prune import NETWORK_KEYS, PruneFilters

if TYPE_CHECKING:
    from podkit.network import Network, NetworkManager

router = Router("networks")

_NETWORK = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "id": {"type": "string"},
        "driver": {"type": "string"},
        "bridge": {"type": "string"},
        "subnet": {"type": "string"},
        "gateway": {"type": "string"},
        "ip_range": {"type": "string"},
        "ipmasq": {"type": "boolean"},
        "internal": {"type": "boolean"},
        "labels": {"type": "object"},
        "created": {"type": "number"},
        "default": {"type": "boolean"},
        "options": {"type": "object"},
        "attachments": {"type": "array", "items": {"type": "object"}},
    },
}


def _svc(ctx: Ctx) -> NetworkManager:
    return ctx.services.networks


def _with_count(svc: NetworkManager, n: Network) -> dict[str, Any]:
    d: dict[str, Any] = n.to_dict()
    d["containers"] = len({a["owner_id"] for a in svc.store.attachments(network_id=n.id)})
    return d


def _str_arg(body: dict[str, Any], key: str) -> str | None:
    v = body.get(key)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise InvalidArgument(f"{key} must be a string")
    return v


@router.post(
    "/networks",
    "Create a bridge network",
    status=201,
    response=_NETWORK,
    body={
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "subnet": {"type": "string"},
            "gateway": {"type": "string"},
            "bridge": {"type": "string"},
            "ip_range": {"type": "string"},
            "internal": {"type": "boolean"},
            "driver": {"type": "string"},
            "labels": {"type": "object"},
            "options": {"type": "object", "description": "driver options: mtu"},
        },
    },
)
async def create(ctx: Ctx) -> dict[str, Any]:
    body = await ctx.json()
    if not isinstance(body, dict):
        raise InvalidArgument("request body must be a JSON object")
    name = body.get("name")
    if not name or not isinstance(name, str):
        raise InvalidArgument("a network needs a name")
    internal = body.get("internal", False)
    if not isinstance(internal, bool):
        raise InvalidArgument("internal must be true or false")
    for key in ("labels", "options"):
        if not isinstance(body.get(key) or {}, dict):
            raise InvalidArgument(f"{key} must be an object")
    svc = _svc(ctx)
    n = await svc.create(
        name,
        subnet=_str_arg(body, "subnet"),
        gateway=_str_arg(body, "gateway"),
        bridge=_str_arg(body, "bridge"),
        labels=body.get("labels") or {},
        ip_range=_str_arg(body, "ip_range"),
        internal=internal,
        driver=_str_arg(body, "driver") or "bridge",
        options=body.get("options") or {},
    )
    ctx.services.events.publish(ctx.ns, "network", "create", n.id, name=n.name, subnet=n.subnet)
    return _with_count(svc, n)


@router.get(
    "/networks",
    "List networks",
    params={"label": "only networks with this label (k or k=v)"},
    response={"type": "array", "items": _NETWORK},
)
async def list_(ctx: Ctx) -> list[dict[str, Any]]:
    svc = _svc(ctx)
    wanted = ctx.request.query.getall("label", [])
    out = []
    for n in svc.list():
        ok = True
        for w in wanted:
            k, sep, v = w.partition("=")
            if k not in n.labels or (sep and n.labels[k] != v):
                ok = False
        if ok:
            out.append(_with_count(svc, n))
    return out


@router.get("/networks/{name}", "Inspect a network (with its CNI config and attachments)", response=_NETWORK)
async def inspect(ctx: Ctx) -> dict[str, Any]:
    return _svc(ctx).inspect(ctx.match["name"])


@router.delete("/networks/{name}", "Remove a network (refused while in use or the default)", status=204)
async def remove(ctx: Ctx) -> None:
    n = await _svc(ctx).remove(ctx.match["name"])
    ctx.services.events.publish(ctx.ns, "network", "remove", n.id, name=n.name)


@router.post(
    "/networks/prune",
    "Remove every unused network except the default",
    params={"filters": "JSON: until, label, label!"},
    response={"type": "object", "properties": {"removed": {"type": "array"}}},
)
async def prune(ctx: Ctx) -> dict[str, Any]:
    gone = await _svc(ctx).prune(PruneFilters.parse(filters_arg(ctx), NETWORK_KEYS, "network prune"))
    for n in gone:
        ctx.services.events.publish(ctx.ns, "network", "remove", n.id, name=n.name)
    return {"removed": [n.name for n in gone]}


_MEMBER = {
    "type": "object",
    "required": ["container"],
    "properties": {
        "container": {"type": "string"},
        "aliases": {"type": "array", "items": {"type": "string"}},
        "ip": {"type": "string"},
    },
}


def _member(body: object) -> tuple[str, list[str], str | None]:
    if not isinstance(body, dict) or not isinstance(body.get("container"), str) or not body["container"]:
        raise InvalidArgument('name the container: {"container": NAME}')
    aliases = body.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise InvalidArgument("aliases must be a list of names")
    return body["container"], aliases, _str_arg(body, "ip")


@router.post(
    "/networks/{name}/connect",
    "Connect a container to the network: live (eth1...) if it runs, and at later starts",
    status=204,
    body=_MEMBER,
)
async def connect(ctx: Ctx) -> None:
    ref, aliases, ip = _member(await ctx.json())
    await ctx.services.containers.connect(ctx.ns, ref, ctx.match["name"], aliases, ip)


@router.post(
    "/networks/{name}/disconnect",
    "Disconnect a container from the network (live if it runs)",
    status=204,
    body=_MEMBER,
)
async def disconnect(ctx: Ctx) -> None:
    ref, _, _ = _member(await ctx.json())
    await ctx.services.containers.disconnect(ctx.ns, ref, ctx.match["name"])
