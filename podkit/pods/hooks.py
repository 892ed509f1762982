"""The containers layer's hooks (``podkit.containers.hooks.ContainerHooks``) for pods.

Registered by the daemon with ``containers.add_hooks``: ``pod`` in a create body
(``podkit run --pod``) puts the container into that pod; starting a member first
brings the pod's sandbox and infra up; the infra cannot be removed on its own;
/etc/hosts follows the members.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from podkit.errors import Conflict, NotFound
from podkit.pods.context import HELD, PodContext
from podkit.pods.members import apply_pod
from podkit.pods.model import STATE_READY
from podkit.pods.prepare import write_hosts
from podkit.pods.start import ensure_running

if TYPE_CHECKING:
    from podkit.containers.options import CreateOptions
    from podkit.containers.store import Record

log = logging.getLogger(__name__)


async def before_create(ctx: PodContext, ns: str, opts: CreateOptions) -> CreateOptions:
    if not opts.pod:
        return opts
    pod = ctx.get(ns, opts.pod)
    if pod.state != STATE_READY:
        raise Conflict(f"pod {pod.name} is {pod.state}")
    opts.pod = None  # resolved: pod_id and the rest say it from now on
    return apply_pod(ctx, pod, opts)


async def after_create(ctx: PodContext, ns: str, record: Record) -> None:
    if not record.pod_id:
        return
    try:
        write_hosts(ctx, ctx.get(ns, record.pod_id))  # its name resolves
    except NotFound:  # the pod went meanwhile
        log.debug("container %s: its pod %s is gone", record.id[:12], record.pod_id[:12])


async def before_start(ctx: PodContext, ns: str, record: Record) -> None:
    if not record.pod_id or record.infra:
        return
    # Started from a section holding the pod's lock (pod start): the infra is up.
    # Tasks spawned there keep the context after the lock is gone, hence locked().
    if record.pod_id in HELD.get() and ctx.lock(record.pod_id).locked():
        return
    await ensure_running(ctx, ns, record.pod_id)


async def before_remove(ctx: PodContext, ns: str, record: Record) -> None:
    if not (record.infra and record.pod_id):
        return
    try:
        pod = ctx.get(ns, record.pod_id)
    except NotFound:
        return
    # A pod being created (undone) or removed takes its infra away itself.
    if pod.state == STATE_READY:
        raise Conflict(
            f"container {record.name} is the infra container of pod {pod.name}: "
            f"remove the pod instead (podkit pod rm {pod.name})"
        )


async def after_remove(ctx: PodContext, ns: str, record: Record) -> None:
    if not record.pod_id:
        return
    try:
        pod = ctx.get(ns, record.pod_id)
    except NotFound:
        return
    if pod.state == STATE_READY:  # a tear-down rewrites nothing
        write_hosts(ctx, pod)  # its name no longer resolves
