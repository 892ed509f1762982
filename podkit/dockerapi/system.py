"""System endpoints: _ping, version, info, events, system/df, auth."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import time
from typing import Any

from aiohttp import web

from podkit._version import __version__
from podkit.dockerapi import views
from podkit.dockerapi.app import API_VERSION, MIN_API_VERSION, Routes
from podkit.dockerapi.common import (
    NAMESPACE,
    api_version,
    body,
    containers,
    events,
    filters,
    images,
    json_response,
    networks,
    parse_time,
    records,
    registry,
    rfc3339,
    services,
    volumes,
)
from podkit.errors import InvalidArgument

routes = Routes()

_PING_HEADERS = {
    "API-Version": API_VERSION,
    "Docker-Experimental": "false",
    "OSType": "linux",
    "Builder-Version": "",
    "Swarm": "inactive",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}


@routes.get("/_ping")
async def ping(request: web.Request) -> web.StreamResponse:
    return web.Response(text="OK", headers=_PING_HEADERS)


@routes.head("/_ping")
async def ping_head(request: web.Request) -> web.StreamResponse:
    return web.Response(headers={**_PING_HEADERS, "Content-Type": "text/plain; charset=utf-8"})


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(m, m)


@routes.get("/version")
async def version(request: web.Request) -> web.StreamResponse:
    ver = f"podkit-{__version__}"
    return json_response(
        {
            "Platform": {"Name": "podkit"},
            "Components": [
                {
                    "Name": "Engine",
                    "Version": ver,
                    "Details": {
                        "ApiVersion": API_VERSION,
                        "MinAPIVersion": MIN_API_VERSION,
                        "Os": "linux",
                        "Arch": _arch(),
                        "KernelVersion": platform.release(),
                        "Experimental": "false",
                    },
                }
            ],
            "Version": ver,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "Os": "linux",
            "Arch": _arch(),
            "KernelVersion": platform.release(),
            "BuildTime": "",
        }
    )


def _mem_total() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    return 0


def _cgroup_version() -> str:
    return "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"


@routes.get("/info")
async def info(request: web.Request) -> web.StreamResponse:
    s = services(request)
    c = containers(request).info(NAMESPACE)
    n_images = len({i.id for i in await asyncio.to_thread(images(request).list, NAMESPACE)})
    osname = "linux"
    with contextlib.suppress(OSError):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    d: dict[str, Any] = {
        "ID": _daemon_id(s.config.root),
        "Containers": c["containers"],
        "ContainersRunning": c["running"],
        "ContainersPaused": c["paused"],
        "ContainersStopped": c["stopped"],
        "Images": n_images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "podkit snapshots"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"], "Log": ["json-file"]},
        "MemoryLimit": True,
        "SwapLimit": True,
        "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True,
        "PidsLimit": True,
        "IPv4Forwarding": True,
        "Debug": False,
        "NFd": len(os.listdir("/proc/self/fd")),
        "NGoroutines": len(asyncio.all_tasks()),
        "SystemTime": views.rfc3339_now(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": _cgroup_version(),
        "NEventsListener": 0,
        "KernelVersion": platform.release(),
        "OperatingSystem": osname,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "DockerRootDir": str(s.config.root),
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": platform.node(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": f"podkit-{__version__}",
        "Runtimes": {"runc": {"path": "runc"}},
        "DefaultRuntime": "runc",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "catatonit",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
    }
    return json_response(_info_for(d, api_version(request)))


def _info_for(d: dict[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """/info as each version has it: fields come (CDISpecDirs 1.44, FirewallBackend 1.49,
    DiscoveredDevices 1.50) and go (AllowNondistributableArtifacts* 1.47, the commits'
    Expected 1.49, BridgeNfIp*tables 1.50)."""
    if version >= (1, 44):
        d["CDISpecDirs"] = []  # no CDI devices here
    if version < (1, 47):
        d["RegistryConfig"].update(
            {"AllowNondistributableArtifactsCIDRs": None, "AllowNondistributableArtifactsHostnames": None}
        )
    if version >= (1, 49):
        d["FirewallBackend"] = {"Driver": "iptables"}  # published ports are iptables rules
    else:
        for k in ("ContainerdCommit", "RuncCommit", "InitCommit"):
            d[k]["Expected"] = d[k]["ID"]
    if version >= (1, 50):
        d["DiscoveredDevices"] = []
    else:
        d["BridgeNfIptables"] = d["BridgeNfIp6tables"] = False
    return d


def _daemon_id(root: Any) -> str:
    import hashlib

    return hashlib.sha256(str(root).encode()).hexdigest()[:48].upper()


@routes.get("/system/df")
async def system_df(request: web.Request) -> web.StreamResponse:
    from podkit.daemon.system_usage import disk_usage

    want = set(request.query.getall("type", [])) or {"container", "image", "volume", "build-cache"}
    version = api_version(request)
    out: dict[str, Any] = {"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": []}
    # sizes as `podkit system df` has them: a layer shared by images counts once, and is
    # each one's SharedSize (docker's CLI reclaims what in-use images do not share)
    usage = await disk_usage(services(request), NAMESPACE)
    csvc = containers(request)
    recs = await csvc.list(NAMESPACE, all=True)
    if "image" in want:
        isvc = images(request)
        imgs = await asyncio.to_thread(isvc.list, NAMESPACE)
        sizes = {i["id"]: i for i in usage["images"]}
        seen: dict[str, dict[str, Any]] = {}
        for img in imgs:
            d = await asyncio.to_thread(views.image_summary, isvc, img, [img], version)
            if img.id in seen:
                seen[img.id]["RepoTags"] = sorted(set(seen[img.id]["RepoTags"]) | set(d["RepoTags"]))
                continue
            u = sizes.get(img.id) or {}
            d["Containers"] = int(u.get("containers", 0))
            d["SharedSize"] = int(u.get("shared_size", 0))
            d["Size"] = int(u.get("size") or d["Size"])
            if "VirtualSize" in d:  # before 1.44
                d["VirtualSize"] = d["Size"]
            seen[img.id] = d
        out["Images"] = list(seen.values())
        out["LayersSize"] = int(usage["layers_size"])
    if "container" in want:
        written = {c["id"]: c for c in usage["containers"]}
        for rec in records(csvc, recs):
            d = views.container_summary(csvc, rec, networks(request), version)
            sz = written.get(rec.id) or await csvc.sizes(NAMESPACE, rec.id)
            d["SizeRw"], d["SizeRootFs"] = sz["size_rw"], sz["size_root_fs"]
            out["Containers"].append(d)
    if "volume" in want:
        used = {v["name"]: v for v in usage["volumes"]}
        vsvc = volumes(request)
        for v in await asyncio.to_thread(vsvc.list, NAMESPACE):
            d = views.volume(v)
            u = used.get(v["name"]) or {}
            d["UsageData"] = {"Size": int(u.get("size", 0)), "RefCount": len(v.get("in_use_by") or [])}
            out["Volumes"].append(d)
    if "build-cache" in want:
        out["BuildCache"] = [
            {
                "ID": c["id"].split(":", 1)[-1],
                "Parents": [],
                "Type": c["type"],
                "Description": c["name"],
                "InUse": c["in_use"],
                "Shared": c["shared"],
                "Size": c["size"],
                "CreatedAt": rfc3339(c["created"]),
                "LastUsedAt": rfc3339(c["last_used"]),
                "UsageCount": 0,
            }
            for c in usage["build_cache"]
        ]
    return json_response(out)


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


@routes.post("/auth")
async def auth(request: web.Request) -> web.StreamResponse:
    from podkit.images.registry.auth import Credentials

    b = await body(request)
    server = str(b.get("serveraddress") or "docker.io")
    creds = Credentials(
        username=str(b.get("username") or ""),
        password=str(b.get("password") or ""),
        identitytoken=str(b.get("identitytoken") or ""),
    )
    await registry(request).login(server, creds)
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


# ------------------------------------------------------------------ events
_EVENT_FILTERS = ("type", "event", "container", "image", "label", "network", "volume", "scope", "daemon")


def _event_matches(ev: Any, f: dict[str, list[str]]) -> bool:
    if ev.namespace != NAMESPACE:
        return False
    attrs = ev.attributes
    if f.get("type") and ev.type not in f["type"]:
        return False
    if f.get("event") and ev.action not in f["event"] and ev.action.split(":")[0] not in f["event"]:
        return False
    if f.get("container") and (
        ev.type != "container"
        or not any(v == attrs.get("name") or ev.id.startswith(v) for v in f["container"])
    ):
        return False
    if f.get("image") and not any(
        v in (attrs.get("image"), ev.id if ev.type == "image" else None, attrs.get("name"))
        for v in f["image"]
    ):
        return False
    if f.get("network") and (
        ev.type != "network" or not any(v in (ev.id, attrs.get("name")) for v in f["network"])
    ):
        return False
    if f.get("volume") and (ev.type != "volume" or ev.id not in f["volume"]):
        return False
    for lab in f.get("label") or []:
        k, eq, v = lab.partition("=")
        if k not in attrs or (eq and attrs[k] != v):
            return False
    return True


def _as_docker(ev: Any) -> list[Any]:
    """podkit's event as dockerd's: a built image is ``create`` (API 1.46's event for
    every new image built), then ``tag`` when the build named it."""
    if ev.type != "image" or ev.action != "build":
        return [ev]
    out = [dataclasses.replace(ev, action="create")]
    if ev.attributes.get("name"):
        out.append(dataclasses.replace(ev, action="tag"))
    return out


def _event_json(ev: Any) -> dict[str, Any]:
    attrs = dict(ev.attributes)
    d: dict[str, Any] = {
        "Type": ev.type,
        "Action": ev.action,
        "Actor": {"ID": ev.id, "Attributes": attrs},
        "scope": "local",
        "time": int(ev.time),
        "timeNano": int(ev.time * 1e9),
    }
    if ev.type == "container":  # the pre-1.22 fields docker still sends
        d["status"] = ev.action
        d["id"] = ev.id
        d["from"] = attrs.get("image", "")
    return d


@routes.get("/events")
async def events_stream(request: web.Request) -> web.StreamResponse:
    f = filters(request)
    unknown = sorted(set(f) - set(_EVENT_FILTERS))
    if unknown:
        raise InvalidArgument(f"invalid filter '{unknown[0]}'")
    since = parse_time(request.query["since"]) if request.query.get("since") else None
    until = parse_time(request.query["until"]) if request.query.get("until") else None
    bus = events(request)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    # Subscribe before replaying, so nothing falls between the backlog and live events.
    live = bus.subscribe()
    first = asyncio.ensure_future(live.__anext__())
    try:
        seen_until = 0.0
        if since is not None:
            for ev in bus.recent(since):
                if until is not None and ev.time > until:
                    break
                for d in _as_docker(ev):
                    if _event_matches(d, f):
                        await resp.write(json.dumps(_event_json(d)).encode() + b"\n")
                seen_until = ev.time
        if until is not None and until <= time.time():
            return resp
        while True:
            # Wake up every second: a client that left (^C) must not leave this
            # handler waiting for an event forever (and holding up the daemon's exit).
            timeout = 1.0 if until is None else max(0.0, min(1.0, until - time.time()))
            done, _ = await asyncio.wait({first}, timeout=timeout)
            if not done:
                t = request.transport
                if t is None or t.is_closing() or (until is not None and time.time() >= until):
                    return resp
                continue
            ev = first.result()
            first = asyncio.ensure_future(live.__anext__())
            if ev.time <= seen_until:
                continue
            if until is not None and ev.time > until:
                return resp
            for d in _as_docker(ev):
                if _event_matches(d, f):
                    await resp.write(json.dumps(_event_json(d)).encode() + b"\n")
    except (ConnectionResetError, asyncio.CancelledError):
        return resp
    finally:
        first.cancel()
        with contextlib.suppress(BaseException):
            await first
        aclose = getattr(live, "aclose", None)  # the bus's generator: unsubscribe now
        if aclose is not None:
            await aclose()
