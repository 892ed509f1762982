"""What the pods layer's operations share: one ``PodContext`` per ``PodService``.

``PodService`` is the public face; each operation (create, start/stop, remove,
members and hooks, reads, logs and stats, kube, recovery) is a module of
functions of this context. The layers below are typed by their classes, imported
only for type checking: the pods layer sits on top and is built last.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from podkit.pods.model import Pod
from podkit.pods.store import PodStore
from podkit.store import Content, Database

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService
    from podkit.containers.store import Record
    from podkit.images.service import ImageService
    from podkit.network.manager import NetworkManager
    from podkit.runtime.cgroups import CgroupManager
    from podkit.runtime.engine import Runtime

POD_LABEL = "io.podkit.pod"
POD_NAME_LABEL = "io.podkit.pod.name"
KUBE_LABEL = "io.podkit.kube"
NETNS_KIND = "pod"
LIVE_STATES = ("running", "paused", "restarting")

# The pods whose lock the current task (and the tasks it gathers, which copy its
# context) holds: a member started from inside such a section must not have its
# before_start hook wait for the pod's lock again (asyncio locks do not nest).
HELD: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("podkit_pods_held", default=frozenset())


class Events(Protocol):
    """The daemon's event bus, as far as the pods layer uses it."""

    def publish(self, namespace: str, type: str, action: str, id: str, /, **attributes: str) -> object: ...


@dataclass
class PodContext:
    db: Database
    events: Events
    store: PodStore
    root: Path
    state: Path
    containers: ContainerService
    networks: NetworkManager
    images: ImageService
    content: Content
    runtime: Runtime | None
    # The runtime's convention: pods at /podkit/pods/<pod>, containers beneath.
    cgroup_root: str
    cgroups: CgroupManager
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    # Two first pods at once build one infra image, not two.
    infra_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Removals answered already, going on in the background (remove.py).
    teardowns: set[asyncio.Task[None]] = field(default_factory=set)

    def lock(self, pod_id: str) -> asyncio.Lock:
        return self.locks.setdefault(pod_id, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def locked(self, pod_id: str) -> AsyncIterator[None]:
        """Hold the pod's lock, noted in the task's context (see ``HELD``)."""
        async with self.lock(pod_id):
            token = HELD.set(HELD.get() | {pod_id})
            try:
                yield
            finally:
                HELD.reset(token)

    def get(self, ns: str, ref: str) -> Pod:
        return self.store.get(ns, ref)

    def members(self, pod: Pod) -> list[Record]:
        """Container records of the pod, infra first."""
        from podkit.containers.store import Record

        # By the indexed pod_id column: `pod ls` reads this for every pod.
        rows = self.db.query(
            "SELECT * FROM containers WHERE pod_id=? AND namespace=?", (pod.id, pod.namespace)
        )
        recs = [Record.from_row(r) for r in rows]
        recs.sort(key=lambda r: (not r.infra, r.created))
        return recs

    def publish(self, pod: Pod, action: str) -> None:
        self.events.publish(pod.namespace, "pod", action, pod.id, name=pod.name)


def pod_dir(pod: Pod) -> Path:
    return Path(pod.state_dir)
