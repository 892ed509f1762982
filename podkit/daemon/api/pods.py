"""Pod routes: /pods (create, list, inspect, start, stop, restart, rm, logs, stats, top,
prune) and /play/kube (run or remove the pods of a Kubernetes YAML file)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from podkit.daemon.api._routing import Ctx, Router
from podkit.errors import InvalidArgument
from podkit.limits import LARGE_JSON_BODY_MAX

if TYPE_CHECKING:
    from podkit.pods.service import PodService

router = Router("pods")

_POD_BODY = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "hostname": {"type": "string"},
        "labels": {"type": "object"},
        "annotations": {"type": "object"},
        "share": {"type": "array", "items": {"enum": ["net", "ipc", "uts", "pid"]}},
        "network": {"type": "string", "description": "bridge | host | none | a network name"},
        "ports": {
            "type": "array",
            "items": {"type": "string"},
            "description": "[ip:]hostPort:containerPort[/proto] or objects",
        },
        "dns": {
            "type": "object",
            "properties": {
                "servers": {"type": "array"},
                "searches": {"type": "array"},
                "options": {"type": "array"},
            },
        },
        "add_hosts": {"type": "array", "items": {"type": "string"}},
        "memory": {"type": ["integer", "string"]},
        "cpus": {"type": "number"},
        "cgroup_parent": {"type": "string"},
        "log_directory": {"type": "string"},
        "sysctls": {"type": "object"},
        "uid": {"type": "string"},
        "kube_namespace": {"type": "string"},
        "attempt": {"type": "integer"},
        "start": {"type": "boolean", "description": "start the pod (its infra) right away"},
    },
}


def _svc(ctx: Ctx) -> PodService:
    return ctx.services.pods


@router.post(
    "/pods", "Create a pod (its sandbox: infra, namespaces, network, cgroup)", body=_POD_BODY, status=201
)
async def create_pod(ctx: Ctx) -> dict[str, Any]:
    body = await ctx.json()
    if not isinstance(body, dict):
        raise InvalidArgument("pod spec must be a JSON object")
    start = bool(body.pop("start", False))
    svc = _svc(ctx)
    pod = await svc.create(ctx.ns, svc.parse_spec(body))
    if start:
        await svc.start(ctx.ns, pod.id)
    return await svc.inspect(ctx.ns, pod.id)


@router.get("/pods", "List pods", params={"label": "KEY or KEY=VALUE filter (repeatable)"})
async def list_pods(ctx: Ctx) -> list[dict[str, Any]]:
    return await _svc(ctx).list(ctx.ns, labels=ctx.query.getall("label", []))


@router.get("/pods/{id}", "Inspect a pod")
async def inspect_pod(ctx: Ctx) -> dict[str, Any]:
    return await _svc(ctx).inspect(ctx.ns, ctx.match["id"])


@router.post("/pods/{id}/start", "Start a pod: its infra, then its containers")
async def start_pod(ctx: Ctx) -> dict[str, Any]:
    svc = _svc(ctx)
    pod = await svc.start(ctx.ns, ctx.match["id"])
    return await svc.inspect(ctx.ns, pod.id)


@router.post(
    "/pods/{id}/stop",
    "Stop a pod: its containers, then its infra",
    params={
        "timeout": "seconds before SIGKILL",
        "release_network": "also give back the pod's IP and ports (CNI DEL)",
    },
)
async def stop_pod(ctx: Ctx) -> dict[str, Any]:
    svc = _svc(ctx)
    pod = await svc.stop(
        ctx.ns, ctx.match["id"], timeout=ctx.int_arg("timeout"), release_network=ctx.flag("release_network")
    )
    return await svc.inspect(ctx.ns, pod.id)


@router.post("/pods/{id}/restart", "Stop then start a pod", params={"timeout": "stop timeout"})
async def restart_pod(ctx: Ctx) -> dict[str, Any]:
    svc = _svc(ctx)
    pod = await svc.stop(ctx.ns, ctx.match["id"], timeout=ctx.int_arg("timeout"))
    await svc.start(ctx.ns, pod.id)
    return await svc.inspect(ctx.ns, pod.id)


@router.delete(
    "/pods/{id}",
    "Remove a pod and everything it holds",
    params={"force": "stop running containers first", "timeout": "stop timeout"},
)
async def remove_pod(ctx: Ctx) -> dict[str, Any]:
    pod_id = await _svc(ctx).remove(
        ctx.ns, ctx.match["id"], force=ctx.flag("force"), timeout=ctx.int_arg("timeout")
    )
    return {"id": pod_id}


@router.get(
    "/pods/{id}/logs",
    "Logs of every container of the pod, each line tagged",
    params={"follow": "keep streaming", "tail": "last N lines per container", "timestamps": "add timestamps"},
    stream=True,
)
async def pod_logs(ctx: Ctx) -> web.StreamResponse:
    it = await _svc(ctx).logs(
        ctx.ns,
        ctx.match["id"],
        follow=ctx.flag("follow"),
        tail=ctx.int_arg("tail"),
        timestamps=ctx.flag("timestamps"),
    )
    return await ctx.stream(it)


@router.get(
    "/pods/{id}/stats",
    "Resource usage of the pod and its containers",
    params={"stream": "keep sampling (default true)"},
    stream=True,
)
async def pod_stats(ctx: Ctx) -> web.StreamResponse:
    it = await _svc(ctx).stats(ctx.ns, ctx.match["id"], stream=ctx.flag("stream", True))
    return await ctx.stream(it)


@router.get(
    "/pods/{id}/top", "Processes of the pod's containers", params={"ps_args": "ps options (default -ef)"}
)
async def pod_top(ctx: Ctx) -> dict[str, Any]:
    return await _svc(ctx).top(ctx.ns, ctx.match["id"], ctx.query.get("ps_args") or "")


@router.post("/pods/prune", "Remove every pod with no running container")
async def prune_pods(ctx: Ctx) -> dict[str, Any]:
    return {"removed": await _svc(ctx).prune(ctx.ns)}


_KUBE_BODY = {
    "type": "object",
    "properties": {
        "yaml": {"type": "string", "description": "the YAML file's text"},
        "start": {"type": "boolean", "description": "start the pods (default true)"},
    },
    "required": ["yaml"],
}


async def _kube_text(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    body = await ctx.json()
    if not isinstance(body, dict) or not isinstance(body.get("yaml"), str):
        raise InvalidArgument('send the YAML file\'s text as {"yaml": "..."}')
    return body["yaml"], body


@router.post(
    "/play/kube",
    "Run the Pods and Deployments of a Kubernetes YAML file",
    body=_KUBE_BODY,
    status=201,
    max_body=LARGE_JSON_BODY_MAX,
)
async def play_kube(ctx: Ctx) -> dict[str, Any]:
    text, body = await _kube_text(ctx)
    return await _svc(ctx).play_kube(ctx.ns, text, start=bool(body.get("start", True)))


@router.post(
    "/play/kube/down",
    "Remove what a Kubernetes YAML file created",
    body=_KUBE_BODY,
    max_body=LARGE_JSON_BODY_MAX,
)
async def play_kube_down(ctx: Ctx) -> dict[str, Any]:
    text, _ = await _kube_text(ctx)
    return await _svc(ctx).down_kube(ctx.ns, text)
