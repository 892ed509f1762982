"""RUN: the command in a container of the build namespace, its output the build's
progress; its changes become the step's layer, and its snapshot that layer's committed
snapshot (see _commit_layer)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from podkit.build import cache
from podkit.build.dockerfile import Instruction
from podkit.build.state import BUILD_NS, BuildContext, Stage
from podkit.errors import PodkitError

if TYPE_CHECKING:
    from podkit.containers.store import Record

log = logging.getLogger(__name__)


async def run(bc: BuildContext, stage: Stage, ins: Instruction) -> None:
    words = ins.json_args()
    env = bc.env(stage)
    if ins.heredocs and words is None:
        script = ins.heredocs[0][1]
        argv = [*stage.shell, script]
    else:
        argv = words if words is not None else [*stage.shell, ins.args]
    key = cache.key(bc, stage, "RUN " + json.dumps(argv))
    if await cache.cached(bc, stage, key):
        return
    if stage.image is None:
        raise ins.fail("cannot RUN in an empty (scratch) stage: there is no shell")
    ref = await cache.base_ref(bc, stage)
    cfg = stage.config["config"]
    body: dict[str, Any] = {
        "image": ref,
        "name": f"podkit-build-{secrets.token_hex(6)}",
        "cmd": argv,
        "entrypoint": "",
        "env": [f"{k}={v}" for k, v in env.items()],
        "labels": {"podkit/build": "step"},
    }
    if cfg.get("WorkingDir"):
        body["workdir"] = cfg["WorkingDir"]
    if cfg.get("User"):
        body["user"] = cfg["User"]
    net = ins.flags.get("network") or bc.opts.network
    if net and net != "default":
        body["network"] = net
    svc = bc.containers
    rec = None
    # The lease is older than the step container's snapshot: GC keeps that, and the
    # layer's blob and snapshot, until the step's image is recorded.
    with bc.images.leases.lease(BUILD_NS) as lease:
        try:
            # A create cut short by a cancellation (the client left) would leave a
            # half-made container: let it finish, then the finally removes it.
            making = asyncio.ensure_future(svc.create(BUILD_NS, body))
            try:
                rec = await asyncio.shield(making)
            except asyncio.CancelledError:
                with contextlib.suppress(PodkitError):
                    rec = await making
                raise
            await svc.start(BUILD_NS, rec.id)
            entries = await svc.logs(BUILD_NS, rec.id, follow=True)
            async for e in entries:
                await bc.say(e.data.decode(errors="replace"))
            code = await svc.wait(BUILD_NS, rec.id)
            if code != 0:
                raise ins.fail(f"The command '{' '.join(argv)}' returned a non-zero code: {code}")
            created_by = "/bin/sh -c " + ins.args if words is None else "RUN " + json.dumps(argv)
            await _commit_layer(bc, stage, key, rec, lease, created_by)
        finally:
            if rec is not None:
                await asyncio.shield(_remove(bc, rec.id))


async def _commit_layer(
    bc: BuildContext, stage: Stage, key: str, rec: Record, lease: str, created_by: str
) -> None:
    """The step container's changes as the step's layer; its snapshot, pruned to
    that layer, becomes the layer's committed snapshot (the next step prepares on
    it, no unpack). A snapshot committed for a step whose image is not recorded
    (a failure, a cancellation) is removed again."""
    from podkit.containers import commit as _commit
    from podkit.images.image import chain_id_of

    ctx = bc.containers.ctx
    dropped: list[str] = []
    found = await asyncio.to_thread(_commit.changes_of, ctx, rec, dropped)

    def write() -> tuple[str, str, int]:
        with bc.images.content.writer() as w:
            return _commit.write_gzip_layer(w, found)

    layer = await asyncio.to_thread(write)
    bc.images.leases.add(BUILD_NS, lease, "content", layer[1])
    assert stage.image is not None
    bc.images.leases.add(BUILD_NS, lease, "snapshot", chain_id_of(stage.image.chain_id, layer[0]))
    keeping = asyncio.ensure_future(_commit.keep_snapshot(ctx, rec, layer[0], layer[1], dropped))
    chain: str | None = None
    try:
        chain = await asyncio.shield(keeping)
        await cache.make(bc, stage, key, stage.config, layer, created_by)
    except BaseException:
        if chain is None and not keeping.cancelled():
            with contextlib.suppress(PodkitError):
                chain = await keeping
        if chain is not None:
            _drop_snapshot(bc, chain)
        raise


def _drop_snapshot(bc: BuildContext, chain: str) -> None:
    try:
        bc.images.snapshots.remove(chain)
    except PodkitError as e:
        log.warning("build: removing the snapshot %s of a step that failed: %s", chain, e.message)


async def _remove(bc: BuildContext, cid: str) -> None:
    try:
        await bc.containers.remove(BUILD_NS, cid, force=True)
    except PodkitError as e:
        log.warning("build: removing step container %s failed: %s", cid[:12], e.message)
