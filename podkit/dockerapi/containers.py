"""Container endpoints: create, list, inspect, the lifecycle verbs, wait, top,
rename, update, prune, delete."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from podkit.containers.options import CreateOptions
from podkit.dockerapi import create, views
from podkit.dockerapi.app import Routes
from podkit.dockerapi.common import (
    NAMESPACE,
    NotImplementedYet,
    api_version,
    body,
    containers,
    filters,
    flag,
    images,
    int_arg,
    json_response,
    networks_or_none,
    no_content,
    records,
)
from podkit.errors import Conflict, InvalidArgument, NotFound, PodkitError
from podkit.prune import CONTAINER_KEYS, PruneFilters
from podkit.runtime.runc import parse_signal

log = logging.getLogger(__name__)
routes = Routes()


def _resolve(request: web.Request) -> Any:
    ref = request.match_info["id"]
    try:
        return containers(request).resolve(NAMESPACE, ref)
    except NotFound:
        raise NotFound(f"No such container: {ref}") from None


@routes.post("/containers/create")
async def create_container(request: web.Request) -> web.StreamResponse:
    b = await body(request)
    name = request.query.get("name") or None
    warnings: list[str] = []
    opts = create.translate(b, name, api_version(request), warnings)
    if request.query.get("platform"):
        opts["platform"] = request.query["platform"]  # the host's only: CreateOptions says so
    for m in opts.get("mounts") or []:
        if m["type"] == "image":  # by ID: a later tag of the name does not change it
            try:
                img = await asyncio.to_thread(images(request).get, NAMESPACE, m["source"])
            except NotFound:
                # a 400, not the 404 after which the docker CLI would pull the container's image
                raise InvalidArgument(f"image mount at {m['target']}: No such image: {m['source']}") from None
            m["source"] = img.id
    # the settings are checked before the image is looked up, as dockerd's
    parsed = await asyncio.to_thread(CreateOptions.parse, opts)
    # docker answers 404 for a missing image and lets the client pull it (with its
    # progress bar); podkit's own create would pull it silently instead.
    try:
        await asyncio.to_thread(images(request).get, NAMESPACE, opts["image"])
    except NotFound:
        raise NotFound(f"No such image: {opts['image']}") from None
    svc = containers(request)
    if name:
        try:
            other = svc.resolve(NAMESPACE, name)
        except NotFound:
            other = None
        if other is not None and other.name == name.lstrip("/"):
            raise Conflict(
                f'Conflict. The container name "/{other.name}" is already in use by container '
                f'"{other.id}". You have to remove (or rename) that container to be able to reuse that name.'
            )
    rec = await svc.create(NAMESPACE, parsed)
    return json_response({"Id": rec.id, "Warnings": [*parsed.warnings, *warnings]}, status=201)


_LIST_FILTERS = (
    "id",
    "name",
    "label",
    "status",
    "exited",
    "ancestor",
    "network",
    "volume",
    "before",
    "since",
    "is-task",
    "health",
    "publish",
    "expose",
)


@routes.get("/containers/json")
async def list_containers(request: web.Request) -> web.StreamResponse:
    svc = containers(request)
    f = filters(request)
    unknown = sorted(set(f) - set(_LIST_FILTERS))
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    podkit_filters = {
        k: v for k, v in f.items() if k in ("id", "name", "label", "status", "exited", "ancestor")
    }
    limit = int_arg(request, "limit")
    # docker: a limit counts the most recently created, running or not
    every = flag(request, "all") or (limit is not None and limit > 0)
    rows = await svc.list(NAMESPACE, all=every, filters=podkit_filters)
    recs = records(svc, rows)
    recs = [r for r in recs if not r.infra]
    if f.get("network"):
        recs = [r for r in recs if str(r.config.get("network") or "bridge") in f["network"]]
    if f.get("volume"):
        recs = [
            r
            for r in recs
            if any(
                m.get("source") in f["volume"] or m.get("target") in f["volume"]
                for m in r.config.get("mounts") or []
            )
        ]
    if f.get("is-task") and f["is-task"][-1] == "true":
        recs = []  # no swarm, so no task containers
    if f.get("health"):
        # Healthchecks come with issue 12 part A: until then every container has none.
        recs = recs if "none" in f["health"] else []
    for key, side in (("publish", "host_port"), ("expose", "container_port")):
        for want in f.get(key) or []:
            port, _, proto = want.partition("/")
            recs = [r for r in recs if _has_port(r, side, port, proto or "tcp")]
    for key in ("before", "since"):
        for ref in f.get(key) or []:
            pivot = svc.resolve(NAMESPACE, ref)
            recs = [
                r
                for r in recs
                if (r.created < pivot.created if key == "before" else r.created > pivot.created)
            ]
    recs.sort(key=lambda r: r.created, reverse=True)
    if limit is not None and limit > 0:
        recs = recs[:limit]
    net = networks_or_none(request)
    version = api_version(request)
    out = [views.container_summary(svc, r, net, version) for r in recs]
    if flag(request, "size"):
        for d, r in zip(out, recs, strict=True):
            d.update(await _sizes(svc, r))
    return json_response(out)


async def _sizes(svc: Any, rec: Any) -> dict[str, int]:
    s = await svc.sizes(NAMESPACE, rec.id)
    return {"SizeRw": s["size_rw"], "SizeRootFs": s["size_root_fs"]}


def _has_port(rec: Any, side: str, port: str, proto: str) -> bool:
    ports = views.live_ports(rec) if side == "host_port" else list(rec.config.get("ports") or [])
    return any(str(p.get(side)) == port and (p.get("protocol") or "tcp") == proto for p in ports)


@routes.get("/containers/{id}/json")
async def inspect_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    svc = containers(request)
    net = networks_or_none(request)
    d = views.container_inspect(svc, rec, net, api_version(request))
    if flag(request, "size"):
        d.update(await _sizes(svc, rec))
    return json_response(d)


@routes.post("/containers/{id}/start")
async def start_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    if rec.state in ("running", "paused"):
        return web.Response(status=304)
    svc = containers(request)
    try:
        await svc.start(NAMESPACE, rec.id)
    except PodkitError:
        # docker removes an --rm container that could not start; `docker run --rm`
        # waits for that removal before it reports the error.
        if rec.config.get("auto_remove"):
            try:
                await svc.remove(NAMESPACE, rec.id, force=True, volumes=True)
            except PodkitError as e:
                log.warning("removing --rm container %s after its failed start: %s", rec.id[:12], e.message)
        raise
    return no_content()


def _timeout(request: web.Request) -> int | None:
    return int_arg(request, "t", int_arg(request, "timeout"))


@routes.post("/containers/{id}/stop")
async def stop_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    sig = request.query.get("signal") or None
    if rec.state not in ("running", "paused", "restarting"):
        if sig:
            parse_signal(sig)  # docker checks the signal first
        return web.Response(status=304)
    await containers(request).stop(NAMESPACE, rec.id, timeout=_timeout(request), signal=sig)
    return no_content()


@routes.post("/containers/{id}/restart")
async def restart_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    sig = request.query.get("signal") or None
    await containers(request).restart(NAMESPACE, rec.id, timeout=_timeout(request), signal=sig)
    return no_content()


@routes.post("/containers/{id}/kill")
async def kill_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    if rec.state not in ("running", "paused", "restarting"):
        raise Conflict(
            f"Cannot kill container: {request.match_info['id']}: container {rec.id} is not running"
        )
    await containers(request).kill(NAMESPACE, rec.id, request.query.get("signal") or "KILL")
    return no_content()


@routes.post("/containers/{id}/pause")
async def pause_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    await containers(request).pause(NAMESPACE, rec.id)
    return no_content()


@routes.post("/containers/{id}/unpause")
async def unpause_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    await containers(request).unpause(NAMESPACE, rec.id)
    return no_content()


@routes.post("/containers/{id}/rename")
async def rename_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    new = request.query.get("name")
    if not new:
        raise InvalidArgument("a new name is required (query parameter name)")
    await containers(request).rename(NAMESPACE, rec.id, new)
    return no_content()


# docker update fields -> podkit's; the rest are refused by name when set.
_UPDATE = {
    "Memory": "memory",
    "MemorySwap": "memory_swap",
    "NanoCpus": "cpus",
    "CpuShares": "cpu_shares",
    "CpuPeriod": "cpu_period",
    "CpuQuota": "cpu_quota",
    "CpusetCpus": "cpuset_cpus",
    "CpusetMems": "cpuset_mems",
    "PidsLimit": "pids_limit",
}


@routes.post("/containers/{id}/update")
async def update_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    b = await body(request)
    change: dict[str, Any] = {}
    for k, v in b.items():
        if v in (None, 0, "", [], {}):
            continue  # docker's zero value: left as it is
        if k in _UPDATE:
            if k == "NanoCpus":
                if not isinstance(v, int) or isinstance(v, bool):
                    raise InvalidArgument(f"invalid NanoCpus {v!r}: want an integer")
                v = v / 1e9
            change[_UPDATE[k]] = v
        elif k == "RestartPolicy":
            if not isinstance(v, dict):
                raise InvalidArgument("RestartPolicy must be an object")
            name = str(v.get("Name") or "no")
            n = int(v.get("MaximumRetryCount") or 0)
            change["restart"] = f"{name}:{n}" if name == "on-failure" and n else name
        else:
            raise InvalidArgument(f"updating {k} is not supported by podkit yet")
    if change:
        await containers(request).update(NAMESPACE, rec.id, change)
    return json_response({"Warnings": []})


@routes.post("/containers/{id}/wait")
async def wait_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    cond = request.query.get("condition") or "not-running"
    if cond not in ("not-running", "next-exit", "removed"):
        raise InvalidArgument(f"invalid condition: {cond!r}: use not-running, next-exit or removed")
    svc = containers(request)
    # A created container's next exit is its first: wait for it to have run, so that
    # `docker run`'s wait-then-start cannot miss a quick exit.
    podkit_cond = "not-running" if cond == "next-exit" and rec.state == "created" else cond
    # The docker CLI starts the container once it has these headers. The waiter takes
    # its baseline in its first step, which the loop runs before reading any later
    # request (tasks run in the order they were scheduled).
    waiter = asyncio.ensure_future(svc.wait(NAMESPACE, rec.id, podkit_cond))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    await resp.write(b"")
    while not waiter.done():
        # A client that stops waiting (^C) leaves no waiter behind.
        await asyncio.wait({waiter}, timeout=1.0)
        t = request.transport
        if not waiter.done() and (t is None or t.is_closing()):
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
            return resp
    try:
        code = waiter.result()
        err = None
    except NotFound:
        code, err = -1, None
    except Exception as e:  # the status line is gone: say it in the body, as docker does
        code, err = -1, {"Message": str(e)}
    try:
        await resp.write(json.dumps({"StatusCode": code, "Error": err}).encode() + b"\n")
        await resp.write_eof()
    except ConnectionResetError:
        pass  # the client stopped waiting (docker run's --rm wait when the CLI exits)
    return resp


@routes.delete("/containers/{id}")
async def remove_container(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    if flag(request, "link"):
        raise NotImplementedYet("container links are not supported by podkit")
    svc = containers(request)
    if rec.state in ("running", "paused", "restarting") and not flag(request, "force"):
        raise Conflict(
            f"You cannot remove a running container {rec.id}. Stop the container before attempting "
            "removal or force remove"
        )
    await svc.remove(NAMESPACE, rec.id, force=flag(request, "force"), volumes=flag(request, "v"))
    return no_content()


@routes.post("/containers/prune")
async def prune_containers(request: web.Request) -> web.StreamResponse:
    f = PruneFilters.parse(filters(request), CONTAINER_KEYS, "container prune")
    removed = await containers(request).prune(NAMESPACE, f)
    return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})


@routes.get("/containers/{id}/top")
async def top(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    t = await containers(request).top(NAMESPACE, rec.id, request.query.get("ps_args") or None)
    return json_response({"Titles": t["titles"], "Processes": t["processes"]})


@routes.post("/containers/{id}/resize")
async def resize(request: web.Request) -> web.StreamResponse:
    rec = _resolve(request)
    h, w = int_arg(request, "h", 0) or 0, int_arg(request, "w", 0) or 0
    if h and w:
        await containers(request).resize(NAMESPACE, rec.id, h, w)
    return web.Response(status=200)
