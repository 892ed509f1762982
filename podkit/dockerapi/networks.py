"""Network endpoints: create, list, inspect, delete, prune (connect and disconnect
answer 501 until podkit can change a running container's networks).

podkit's default network is shown under docker's name for it, ``bridge``; ``host``
and ``none`` are listed as docker lists them, and cannot be removed."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web

from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import (
    MAX_VERSION,
    NAMESPACE,
    Forbidden,
    NotImplementedYet,
    Version,
    api_version,
    body,
    containers,
    filters,
    json_response,
    networks,
    no_content,
    rfc3339,
)
from podkit.errors import AlreadyExists, InvalidArgument, NotFound, PodkitError
from podkit.prune import NETWORK_KEYS, PruneFilters

routes = Routes()
_BUILTIN = ("host", "none")
_BRIDGE_NAME_OPT = "com.docker.network.bridge.name"
_ENDPOINT_SYSCTLS = "com.docker.network.endpoint.sysctls"


def _pseudo_id(name: str) -> str:
    return hashlib.sha256(f"podkit-docker-network-{name}".encode()).hexdigest()


def _pseudo(name: str, version: Version = MAX_VERSION) -> dict[str, Any]:
    return {
        "Name": name,
        "Id": _pseudo_id(name),
        "Created": rfc3339(0),
        "Scope": "local",
        "Driver": "host" if name == "host" else "null",
        **({"EnableIPv4": True} if version >= (1, 48) else {}),
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {},
        "Options": {},
        "Labels": {},
    }


def _view(request: web.Request, n: Any, with_containers: bool = True) -> dict[str, Any]:
    version = api_version(request)
    cfg: dict[str, Any] = {"Subnet": n.subnet, "Gateway": n.gateway}
    if n.ip_range:
        cfg["IPRange"] = n.ip_range
    members: dict[str, Any] = {}
    if with_containers:
        svc = containers(request)
        for a in networks(request).attachments(network=n.id if not n.default else None):
            if a.get("network_id") != n.id or a.get("kind") != "container":
                continue
            try:
                name = svc.resolve(NAMESPACE, a["owner_id"]).name
            except PodkitError:
                continue  # another namespace's container, or gone
            members[a["owner_id"]] = {
                "Name": name,
                "EndpointID": a["owner_id"][:32] + n.id[:32],
                "MacAddress": a.get("mac") or "",
                "IPv4Address": f"{a['ip']}/{a['prefix']}" if a.get("ip") else "",
                "IPv6Address": "",
            }
    opts: dict[str, str] = {_BRIDGE_NAME_OPT: n.bridge}
    if n.options.get("mtu"):
        opts["com.docker.network.driver.mtu"] = str(n.options["mtu"])
    return {
        "Name": "bridge" if n.default else n.name,
        "Id": n.id,
        "Created": rfc3339(n.created),
        "Scope": "local",
        "Driver": n.driver or "bridge",
        **({"EnableIPv4": True} if version >= (1, 48) else {}),  # shown from 1.48 on
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": [cfg]},
        "Internal": bool(n.internal),
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": members,
        "Options": opts,
        "Labels": dict(n.labels),
    }


def _find(request: web.Request, ref: str) -> Any:
    try:
        return networks(request).get(ref)
    except NotFound:
        raise NotFound(f"network {ref} not found") from None


@routes.get("/networks")
async def list_networks(request: web.Request) -> web.StreamResponse:
    f = filters(request)
    unknown = sorted(set(f) - {"name", "id", "label", "driver", "type", "scope", "dangling"})
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    out = [_view(request, n) for n in networks(request).list()] + [
        _pseudo(x, api_version(request)) for x in _BUILTIN
    ]
    if f.get("name"):
        out = [d for d in out if any(v in d["Name"] for v in f["name"])]
    if f.get("id"):
        out = [d for d in out if any(d["Id"].startswith(v) for v in f["id"])]
    if f.get("driver"):
        out = [d for d in out if d["Driver"] in f["driver"]]
    if f.get("scope"):
        out = [d for d in out if d["Scope"] in f["scope"]]
    if f.get("type"):
        builtin = {"bridge", *_BUILTIN}
        want = set(f["type"])
        out = [d for d in out if ("builtin" if d["Name"] in builtin else "custom") in want]
    for lab in f.get("label") or []:
        k, eq, v = lab.partition("=")
        out = [d for d in out if k in d["Labels"] and (not eq or d["Labels"][k] == v)]
    if f.get("dangling"):
        want_dangling = f["dangling"][-1].lower() in ("1", "true")
        out = [
            d
            for d in out
            if (not d["Containers"] and d["Name"] not in ("bridge", *_BUILTIN)) == want_dangling
        ]
    return json_response(out)


@routes.get("/networks/{id}")
async def inspect_network(request: web.Request) -> web.StreamResponse:
    ref = request.match_info["id"]
    for x in _BUILTIN:
        if ref == x or (len(ref) >= 3 and _pseudo_id(x).startswith(ref)):
            return json_response(_pseudo(x, api_version(request)))
    return json_response(_view(request, _find(request, ref)))


@routes.post("/networks/create")
async def create_network(request: web.Request) -> web.StreamResponse:
    b = await body(request)
    name = b.get("Name")
    if not name or not isinstance(name, str):
        raise InvalidArgument("network name is required (Name)")
    if name in ("bridge", *_BUILTIN):
        raise Forbidden(f"{name} is a pre-defined network and cannot be created")
    if b.get("EnableIPv6"):
        raise InvalidArgument("EnableIPv6 is not supported by podkit yet")
    if b.get("EnableIPv4") is False and api_version(request) >= (1, 48):
        raise InvalidArgument("EnableIPv4=false (an IPv6-only network) is not supported by podkit: no IPv6")
    for f in ("Ingress", "ConfigOnly", "ConfigFrom", "Scope"):
        if b.get(f) and b.get(f) != "local":
            raise InvalidArgument(f"{f} is not supported by podkit (no swarm)")
    ipam = b.get("IPAM") or {}
    if (ipam.get("Driver") or "default") != "default":
        raise InvalidArgument(f"IPAM driver {ipam['Driver']!r} is not supported: only 'default'")
    configs = ipam.get("Config") or []
    if len(configs) > 1:
        raise InvalidArgument("more than one IPAM config is not supported by podkit yet")
    cfg = configs[0] if configs else {}
    if cfg.get("AuxiliaryAddresses"):
        raise InvalidArgument("IPAM.Config.AuxiliaryAddresses is not supported by podkit yet")
    opts = dict(b.get("Options") or {})
    bridge = opts.pop(_BRIDGE_NAME_OPT, None)
    # Options docker's bridge driver takes that change nothing podkit does differently.
    for k in ("com.docker.network.bridge.enable_ip_masquerade", "com.docker.network.bridge.enable_icc"):
        if str(opts.get(k, "true")).lower() == "true":
            opts.pop(k, None)
    if networks(request).list() and any(n.name == name for n in networks(request).list()):
        raise AlreadyExists(f"network with name {name} already exists")
    n = await networks(request).create(
        name,
        subnet=cfg.get("Subnet") or None,
        gateway=cfg.get("Gateway") or None,
        ip_range=cfg.get("IPRange") or None,
        bridge=bridge,
        labels={str(k): str(v) for k, v in (b.get("Labels") or {}).items()},
        internal=bool(b.get("Internal")),
        driver=str(b.get("Driver") or "bridge"),
        options=opts or None,
    )
    return json_response({"Id": n.id, "Warning": ""}, status=201)


@routes.delete("/networks/{id}")
async def remove_network(request: web.Request) -> web.StreamResponse:
    ref = request.match_info["id"]
    if ref in ("bridge", *_BUILTIN):
        raise Forbidden(f"{ref} is a pre-defined network and cannot be removed")
    n = _find(request, ref)
    if n.default:
        raise Forbidden("bridge is a pre-defined network and cannot be removed")
    await networks(request).remove(n.id)
    return no_content()


@routes.post("/networks/prune")
async def prune_networks(request: web.Request) -> web.StreamResponse:
    f = PruneFilters.parse(filters(request), NETWORK_KEYS, "network prune")
    gone = await networks(request).prune(f)
    return json_response({"NetworksDeleted": [n.name for n in gone] or None})


def _container(request: web.Request, b: dict[str, Any]) -> Any:
    ref = b.get("Container")
    if not ref or not isinstance(ref, str):
        raise InvalidArgument("Container is required")
    try:
        return containers(request).resolve(NAMESPACE, ref)
    except NotFound:
        raise NotFound(f"No such container: {ref}") from None


def _net_of(rec: Any) -> str:
    mode = str(rec.config.get("network") or "bridge")
    return "bridge" if mode == "default" else mode


def _same(request: web.Request, name: str, n: Any) -> bool:
    if name in ("bridge", "none"):
        return bool(n.default) if name == "bridge" else False
    try:
        return bool(networks(request).get(name).id == n.id)
    except NotFound:
        return False


# Before a container starts on network none, connect sets its one network (docker-compose
# creates, then disconnects and reconnects with aliases); otherwise the container gets
# one more network, live (eth1...) if it runs.
@routes.post("/networks/{id}/connect")
async def connect(request: web.Request) -> web.StreamResponse:
    n = _find(request, request.match_info["id"])
    b = await body(request)
    rec = _container(request, b)
    ep = b.get("EndpointConfig") or {}
    ipam = ep.get("IPAMConfig") or {}
    if ipam.get("IPv6Address"):
        raise NotImplementedYet(
            "IPv6 addresses (EndpointConfig.IPAMConfig.IPv6Address) are not supported by podkit"
        )
    ip = str(ipam.get("IPv4Address") or "") or None
    driver_opts = ep.get("DriverOpts") or {}
    if (
        isinstance(driver_opts, dict)
        and driver_opts.get(_ENDPOINT_SYSCTLS)
        and api_version(request) >= (1, 46)
    ):
        raise InvalidArgument(
            f"EndpointConfig.DriverOpts {_ENDPOINT_SYSCTLS} is not supported by podkit yet on connect "
            "(it is at create: docker run --network name=NET,driver-opt=...)"
        )
    gw = ep.get("GwPriority") if api_version(request) >= (1, 48) else None
    if gw:
        # docker moves the default route to the highest priority; podkit's stays the first's
        raise InvalidArgument(
            "EndpointConfig.GwPriority is not supported by podkit yet on connect: "
            "the first network gives the default route"
        )
    current = _net_of(rec)
    if _same(request, current, n):
        raise Forbidden(f"endpoint with name {rec.name} already exists in network {n.name}")
    aliases = [str(a) for a in ep.get("Aliases") or [] if a] if not n.default else None
    running = rec.state in ("running", "paused", "restarting")
    if current == "none" and not running and not ip:
        await containers(request).set_network(NAMESPACE, rec.id, "bridge" if n.default else n.name, aliases)
    else:
        await containers(request).connect(NAMESPACE, rec.id, n.name, aliases, ip)
    return web.Response(status=200)


@routes.post("/networks/{id}/disconnect")
async def disconnect(request: web.Request) -> web.StreamResponse:
    n = _find(request, request.match_info["id"])
    b = await body(request)
    rec = _container(request, b)
    running = rec.state in ("running", "paused", "restarting")
    if _same(request, _net_of(rec), n) and not running and not rec.config.get("networks"):
        await containers(request).set_network(NAMESPACE, rec.id, "none")
        return web.Response(status=200)
    try:
        await containers(request).disconnect(NAMESPACE, rec.id, n.name)
    except NotFound:
        raise Forbidden(f"container {rec.id} is not connected to network {n.name}") from None
    return web.Response(status=200)
