"""Container routes: lifecycle, inspection, logs, stats, attach, archives."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from podkit.containers.options import CreateOptions
from podkit.daemon.api._routing import Ctx, Router
from podkit.daemon.api._stdio import serve_stdio
from podkit.daemon.api.volumes import filters_arg
from podkit.daemon.leaving import stream_out
from podkit.errors import InvalidArgument
from podkit.limits import LARGE_JSON_BODY_MAX
from podkit.prune import CONTAINER_KEYS, PruneFilters

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService

log = logging.getLogger(__name__)
router = Router("containers")

_CONTAINER = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "image": {"type": "string"},
        "state": {"type": "string"},
        "status": {"type": "string"},
        "exit_code": {"type": "integer"},
        "pid": {"type": "integer"},
        "created": {"type": "number"},
        "config": {"type": "object"},
    },
}
_OPTIONS = {
    "type": "object",
    "required": ["image"],
    "description": "docker-style options: image, name, cmd, entrypoint, env, env_file, volumes, tmpfs, "
    "ports, network, memory, cpus, cpu_shares, pids_limit, ulimits, restart, auto_remove, "
    "user, workdir, hostname, labels, cap_add, cap_drop, privileged, security_opt, devices, "
    "read_only, init, stop_signal, stop_timeout, tty, open_stdin, pod_id, namespaces, ...",
}


def _svc(ctx: Ctx) -> ContainerService:
    return ctx.services.containers


@router.post(
    "/containers",
    "Create a container",
    body=_OPTIONS,
    status=201,
    max_body=LARGE_JSON_BODY_MAX,  # env files and a seccomp profile, inline
    response={
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
    },
)
async def create_container(ctx: Ctx) -> dict[str, object]:
    body = await ctx.json()
    # Off the event loop: a raw API body may still name an env file or a seccomp profile
    # that the parser reads (checked and bounded there); a slow disk stalls no one else.
    opts = await asyncio.to_thread(CreateOptions.parse, body)
    # A missing image is pulled as a step of its own, cancelled if the client leaves
    # (`run` of an image on a stalled registry, then ^C), as an explicit pull is.
    pulling = _svc(ctx).ensure_image(ctx.ns, opts.image, opts.pull)
    await ctx.unless_client_leaves(pulling, f"pull of {opts.image}")
    if opts.pull == "always":
        opts.pull = "missing"  # pulled just now: create need not pull again
    rec = await _svc(ctx).create(ctx.ns, opts)
    # what was discarded (a limit this host's cgroups cannot apply...), as docker's Warnings
    return {"id": rec.id, "name": rec.name, "warnings": opts.warnings}


@router.get(
    "/containers",
    "List containers",
    params={
        "all": "include stopped ones",
        "filters": "JSON: id, name, label, status, ancestor, pod, exited, infra",
        "size": "add size_rw and size_root_fs (measured: slower)",
    },
    response={"type": "array", "items": _CONTAINER},
)
async def list_containers(ctx: Ctx) -> object:
    return await _svc(ctx).list(ctx.ns, all=ctx.flag("all"), filters=filters_arg(ctx), size=ctx.flag("size"))


@router.post(
    "/containers/prune", "Remove every stopped container", params={"filters": "JSON: until, label, label!"}
)
async def prune_containers(ctx: Ctx) -> dict[str, object]:
    f = PruneFilters.parse(filters_arg(ctx), CONTAINER_KEYS, "container prune")
    return {"removed": await _svc(ctx).prune(ctx.ns, f)}


@router.get(
    "/containers/{ref}",
    "Inspect a container",
    response=_CONTAINER,
    params={"size": "add size_rw and size_root_fs (measured: slower)"},
)
async def inspect_container(ctx: Ctx) -> object:
    return await _svc(ctx).inspect(ctx.ns, ctx.match["ref"], size=ctx.flag("size"))


@router.post("/containers/{ref}/start", "Start a container", status=204)
async def start_container(ctx: Ctx) -> None:
    await _svc(ctx).start(ctx.ns, ctx.match["ref"])


@router.post(
    "/containers/{ref}/stop",
    "Stop: the stop signal, then SIGKILL after timeout seconds",
    status=204,
    params={"timeout": "seconds before SIGKILL", "signal": "instead of the container's stop signal"},
)
async def stop_container(ctx: Ctx) -> None:
    await _svc(ctx).stop(
        ctx.ns, ctx.match["ref"], timeout=ctx.int_arg("timeout"), signal=ctx.query.get("signal") or None
    )


@router.post("/containers/{ref}/kill", "Send a signal", status=204, params={"signal": "default KILL"})
async def kill_container(ctx: Ctx) -> None:
    await _svc(ctx).kill(ctx.ns, ctx.match["ref"], ctx.query.get("signal") or "KILL")


@router.post(
    "/containers/{ref}/restart",
    "Stop then start",
    status=204,
    params={"timeout": "seconds before SIGKILL", "signal": "instead of the container's stop signal"},
)
async def restart_container(ctx: Ctx) -> None:
    await _svc(ctx).restart(
        ctx.ns, ctx.match["ref"], timeout=ctx.int_arg("timeout"), signal=ctx.query.get("signal") or None
    )


@router.post("/containers/{ref}/pause", "Freeze every process", status=204)
async def pause_container(ctx: Ctx) -> None:
    await _svc(ctx).pause(ctx.ns, ctx.match["ref"])


@router.post("/containers/{ref}/unpause", "Thaw", status=204)
async def unpause_container(ctx: Ctx) -> None:
    await _svc(ctx).unpause(ctx.ns, ctx.match["ref"])


@router.post("/containers/{ref}/rename", "Rename", status=204, params={"name": "the new name"})
async def rename_container(ctx: Ctx) -> None:
    name = ctx.query.get("name")
    if not name:
        raise InvalidArgument("a new name is required")
    await _svc(ctx).rename(ctx.ns, ctx.match["ref"], name)


@router.post(
    "/containers/{ref}/update", "Change resource limits of a container", body={"type": "object"}, status=204
)
async def update_container(ctx: Ctx) -> None:
    await _svc(ctx).update(ctx.ns, ctx.match["ref"], await ctx.json())


@router.post(
    "/containers/{ref}/wait",
    "Block until the container stops; its exit code",
    params={"condition": "not-running (default), next-exit or removed"},
)
async def wait_container(ctx: Ctx) -> dict[str, int]:
    code = await _svc(ctx).wait(ctx.ns, ctx.match["ref"], ctx.query.get("condition") or "not-running")
    return {"exit_code": code}


@router.delete(
    "/containers/{ref}",
    "Remove a container",
    status=204,
    params={"force": "kill it first if running", "volumes": "remove its anonymous volumes"},
)
async def remove_container(ctx: Ctx) -> None:
    await _svc(ctx).remove(ctx.ns, ctx.match["ref"], force=ctx.flag("force"), volumes=ctx.flag("volumes"))


@router.get(
    "/containers/{ref}/logs",
    "Container logs (CRI log file), ndjson",
    stream=True,
    params={
        "follow": "keep streaming",
        "since": "time or duration",
        "until": "time or duration",
        "tail": "last N lines",
        "stdout": "default true",
        "stderr": "default true",
    },
)
async def container_logs(ctx: Ctx) -> web.StreamResponse:
    streams = tuple(s for s in ("stdout", "stderr") if ctx.flag(s, True))
    tail = ctx.query.get("tail")
    tail_n = None if tail in (None, "", "all") else ctx.int_arg("tail")

    def wanted() -> bool:  # a follower whose client left stops at the next poll
        t = ctx.request.transport
        return t is not None and not t.is_closing()

    it = await _svc(ctx).logs(
        ctx.ns,
        ctx.match["ref"],
        follow=ctx.flag("follow"),
        since=ctx.query.get("since"),
        until=ctx.query.get("until"),
        tail=tail_n,
        streams=streams,
        wanted=wanted,
    )

    async def gen() -> AsyncIterator[dict[str, Any]]:
        async for e in it:
            yield e.to_json()

    return await ctx.stream(gen())


@router.get(
    "/containers/{ref}/stats",
    "Resource usage (CPU, memory, pids, block I/O, network)",
    stream=True,
    params={"stream": "keep sending every second (default true)"},
)
async def container_stats(ctx: Ctx) -> web.StreamResponse:
    svc = _svc(ctx)
    ref = ctx.match["ref"]
    stream = ctx.flag("stream", True)
    first = await svc.stats(ctx.ns, ref)

    async def gen() -> AsyncIterator[dict[str, Any]]:
        prev = first
        if not stream:
            # One sample needs two readings for a CPU percentage.
            await asyncio.sleep(0.2)
            yield await svc.stats(ctx.ns, ref, prev)
            return
        while True:
            await asyncio.sleep(1.0)
            cur = await svc.stats(ctx.ns, ref, prev)
            yield cur
            prev = cur
            if cur.get("state") not in ("running", "paused"):
                return

    return await ctx.stream(gen())


@router.get("/containers/{ref}/top", "Processes of a container", params={"ps_args": "ps options"})
async def container_top(ctx: Ctx) -> object:
    return await _svc(ctx).top(ctx.ns, ctx.match["ref"], ctx.query.get("ps_args"))


@router.get("/containers/{ref}/port", "Published ports")
async def container_port(ctx: Ctx) -> object:
    return await _svc(ctx).port(ctx.ns, ctx.match["ref"])


@router.get(
    "/containers/{ref}/attach",
    "Attach to stdio (WebSocket; see podkit.client._ws)",
    params={
        "stdin": "forward stdin",
        "logs": "replay the log first",
        "start": "start the container once attached",
        "removed": "with auto_remove, end once the container is gone (default true); false: once its"
        " exit is on record with its removal, which finishes in the background",
    },
)
async def attach_container(ctx: Ctx) -> web.StreamResponse:
    svc = _svc(ctx)
    rec = svc.resolve(ctx.ns, ctx.match["ref"])
    start = ctx.flag("start")
    session = await svc.attach(ctx.ns, rec.id, stdin=ctx.flag("stdin"), logs=ctx.flag("logs"))

    async def before() -> None:
        if start:
            try:
                await svc.start(ctx.ns, rec.id)
            except Exception:
                # `run` that could not start leaves nothing behind (no record, snapshot, volume).
                if ctx.flag("rm_on_fail", True):
                    try:
                        await svc.remove(ctx.ns, rec.id, force=True, volumes=True)
                    except Exception as e:  # the start's error is the one to report
                        log.warning("run: removing container %s after its failed start: %s", rec.id, e)
                raise

    # An auto_remove container's exit is recorded together with its removal's start
    # (state "removing", resumed after a crash): "not-running" then returns while the
    # teardown goes on in the background (`run --rm` no longer waits for it).
    until = "removed" if rec.config.get("auto_remove") and ctx.flag("removed", True) else "not-running"

    async def wait_exit() -> int:
        return await svc.wait(ctx.ns, rec.id, until)

    return await serve_stdio(ctx.request, session, wait_exit, before)


@router.post(
    "/containers/{ref}/resize", "Resize the container's tty", status=204, params={"h": "rows", "w": "columns"}
)
async def resize_container(ctx: Ctx) -> None:
    await _svc(ctx).resize(ctx.ns, ctx.match["ref"], ctx.int_arg("h", 24), ctx.int_arg("w", 80))


@router.get(
    "/containers/{ref}/archive",
    "A tar of a path in the container",
    params={
        "path": "path in the container",
        "follow_link": "a symlink named as path: copy what it points to (cp -L), not the link",
    },
)
async def get_archive(ctx: Ctx) -> web.StreamResponse:
    path = ctx.query.get("path")
    if not path:
        raise InvalidArgument("a path is required")
    stat, chunks = await _svc(ctx).archive_get(ctx.ns, ctx.match["ref"], path, ctx.flag("follow_link"))
    try:
        resp = web.StreamResponse(
            headers={"Content-Type": "application/x-tar", "X-Podkit-Path-Stat": json.dumps(stat)}
        )
        resp.enable_chunked_encoding()
        await resp.prepare(ctx.request)
        async for chunk in chunks:
            await resp.write(chunk)
        await resp.write_eof()
    except ConnectionError:
        pass  # the client left; nothing to answer
    finally:
        # A client that leaves early: stop the tar now (its descriptors, a stopped
        # container's mount), not whenever the generator is collected.
        await chunks.aclose()
    return resp


@router.put(
    "/containers/{ref}/archive",
    "Extract a tar into a directory of the container",
    status=204,
    params={
        "path": "destination directory in the container",
        "copy_uid_gid": "keep the tar's owners (default true; false: root's, as cp without -a)",
    },
)
async def put_archive(ctx: Ctx) -> None:
    path = ctx.query.get("path")
    if not path:
        raise InvalidArgument("a path is required")
    keep = ctx.flag("copy_uid_gid", default=True)
    await _svc(ctx).archive_put(ctx.ns, ctx.match["ref"], path, ctx.request.content, keep)


@router.post(
    "/containers/{ref}/commit",
    "An image from the container's changes",
    status=201,
    params={
        "name": "the new image's name (none: a dangling image)",
        "message": "commit message (history comment)",
        "author": "author",
        "pause": "pause a running container while its layer is written (default true)",
        "changes": "JSON list of Dockerfile instructions (CMD, ENV, ...) applied to the config",
    },
    response={"type": "object", "properties": {"id": {"type": "string"}, "name": {"type": "string"}}},
)
async def commit_container(ctx: Ctx) -> dict[str, Any]:
    q = ctx.query
    raw = q.get("changes") or "[]"
    try:
        changes = json.loads(raw)
    except ValueError:
        raise InvalidArgument("changes must be a JSON list of strings") from None
    if not isinstance(changes, list) or not all(isinstance(c, str) for c in changes):
        raise InvalidArgument("changes must be a JSON list of strings")
    return await _svc(ctx).commit(
        ctx.ns,
        ctx.match["ref"],
        q.get("name") or None,
        message=q.get("message", ""),
        author=q.get("author", ""),
        changes=changes,
        pause=q.get("pause", "true").lower() not in ("0", "false", "no"),
    )


@router.get(
    "/containers/{ref}/changes",
    "The container's changes to its image's file system",
    response={"type": "array", "items": {"type": "object"}},
)
async def container_changes(ctx: Ctx) -> list[dict[str, Any]]:
    return await _svc(ctx).changes(ctx.ns, ctx.match["ref"])


@router.get("/containers/{ref}/export", "The container's file system as a tar")
async def export_container(ctx: Ctx) -> web.StreamResponse:
    chunks = await _svc(ctx).export(ctx.ns, ctx.match["ref"])
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    try:
        resp.enable_chunked_encoding()
        await resp.prepare(ctx.request)
        await stream_out(ctx.request, resp, chunks, f"export of {ctx.match['ref']}")
    except ConnectionError:
        pass  # the client left before the headers
    finally:
        await chunks.aclose()
    return resp
