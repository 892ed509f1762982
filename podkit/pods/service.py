"""``PodService``: pod sandboxes and the life of the containers in them.

A pod is built from the bottom up, each step recorded so that a crash at any point
can be undone (see ``recover``):

1. the record, state ``creating``, in SQLite (name unique per namespace);
2. its state directory ``<state>/pods/<id>``: hostname, hosts, resolv.conf;
3. the shared namespaces: net pinned by the network layer (``<state>/netns/pod-<id>``)
   and wired through CNI (loopback, bridge), its published ports forwarded by podkit's
   own iptables rules (network/portfwd.py; portmap on a network from a user's CNI file
   that lists it); ipc and uts pinned here under ``ns/`` (uts gets the pod's hostname);
4. ``/dev/shm``: a tmpfs under ``shm/``, bind-mounted into every container;
5. the pod cgroup (``--memory``/``--cpus`` of the whole pod), parent of the
   containers' cgroups;
6. the infra container (catatonit -P) joining net/ipc/uts by path, with a pid
   namespace of its own that the containers join when pid is shared;
7. state ``ready``.

Tear-down runs the other way and tolerates any step being already undone, so it
serves ``pod rm``, a failed create and recovery alike.

``PodService`` is the layer's public face and only delegates: each operation is a
module of functions of the shared ``PodContext`` (context.py): ``create``,
``prepare`` (the kernel pieces), ``members``, ``hooks``, ``start``, ``stop``,
``remove``, ``views``, ``logs``, ``stats``, ``play`` (kube) and ``recover``.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.pods import create as _create
from podkit.pods import hooks as _hooks
from podkit.pods import logs as _logs
from podkit.pods import members as _members
from podkit.pods import recover as _recover
from podkit.pods import remove as _remove
from podkit.pods import start as _start
from podkit.pods import stats as _stats
from podkit.pods import stop as _stop
from podkit.pods import views as _views
from podkit.pods.context import KUBE_LABEL, NETNS_KIND, POD_LABEL, POD_NAME_LABEL, Events, PodContext
from podkit.pods.model import Pod, PodSpec
from podkit.pods.store import PodStore
from podkit.store import Content, Database

if TYPE_CHECKING:
    from podkit.containers.options import CreateOptions
    from podkit.containers.service import ContainerService
    from podkit.containers.store import Record
    from podkit.images.service import ImageService
    from podkit.network.manager import NetworkManager
    from podkit.runtime.cgroups import CgroupManager
    from podkit.runtime.engine import Runtime

__all__ = ["KUBE_LABEL", "NETNS_KIND", "POD_LABEL", "POD_NAME_LABEL", "PodService"]


class PodService:
    """Pods of one daemon: create, start, stop, remove, reads, logs, stats, kube, recovery."""

    def __init__(
        self,
        db: Database,
        events: Events,
        *,
        root: Path,
        state: Path,
        containers: ContainerService,
        networks: NetworkManager,
        images: ImageService,
        content: Content,
        runtime: Runtime | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        cfg = config or {}
        if runtime is not None:
            cgroups = runtime.cgroups
        else:
            from podkit.runtime.cgroups import CgroupManager

            cgroups = CgroupManager()
        self._ctx = PodContext(
            db=db,
            events=events,
            store=PodStore(db),
            root=Path(root),
            state=Path(state),
            containers=containers,
            networks=networks,
            images=images,
            content=content,
            runtime=runtime,
            # The runtime's convention: pods at /podkit/pods/<pod>, containers beneath.
            cgroup_root=str(cfg.get("cgroup_parent", "podkit/pods")).strip("/"),
            cgroups=cgroups,
        )

    # The layers and paths the service was built with (read by the API and the CRI).

    @property
    def db(self) -> Database:
        return self._ctx.db

    @property
    def events(self) -> Events:
        return self._ctx.events

    @property
    def store(self) -> PodStore:
        return self._ctx.store

    @property
    def root(self) -> Path:
        return self._ctx.root

    @property
    def state(self) -> Path:
        return self._ctx.state

    @property
    def containers(self) -> ContainerService:
        return self._ctx.containers

    @property
    def networks(self) -> NetworkManager:
        return self._ctx.networks

    @property
    def images(self) -> ImageService:
        return self._ctx.images

    @property
    def content(self) -> Content:
        return self._ctx.content

    @property
    def runtime(self) -> Runtime | None:
        return self._ctx.runtime

    @property
    def cgroup_root(self) -> str:
        return self._ctx.cgroup_root

    @property
    def cgroups(self) -> CgroupManager:
        return self._ctx.cgroups

    # -- create (create.py, members.py) ------------------------------------------------

    def parse_spec(self, body: dict[str, Any]) -> PodSpec:
        return _create.parse_spec(body)

    def get(self, ns: str, ref: str) -> Pod:
        return self._ctx.get(ns, ref)

    async def create(self, ns: str, spec: PodSpec) -> Pod:
        return await _create.create(self._ctx, ns, spec)

    def apply_pod(self, pod: Pod, opts: CreateOptions, infra_container: bool = False) -> CreateOptions:
        """Fill the pods layer's hooks of a containers-layer ``CreateOptions``."""
        return _members.apply_pod(self._ctx, pod, opts, infra_container)

    async def add_container(self, ns: str, ref: str, body: dict[str, Any], start: bool = False) -> Record:
        return await _members.add_container(self._ctx, ns, ref, body, start)

    # -- the containers layer's hooks (hooks.py) ---------------------------------------

    async def before_create(self, ns: str, opts: CreateOptions) -> CreateOptions:
        return await _hooks.before_create(self._ctx, ns, opts)

    async def after_create(self, ns: str, record: Record) -> None:
        await _hooks.after_create(self._ctx, ns, record)

    async def before_start(self, ns: str, record: Record) -> None:
        await _hooks.before_start(self._ctx, ns, record)

    async def before_remove(self, ns: str, record: Record) -> None:
        await _hooks.before_remove(self._ctx, ns, record)

    async def after_remove(self, ns: str, record: Record) -> None:
        await _hooks.after_remove(self._ctx, ns, record)

    async def ensure_running(self, ns: str, pod_id: str) -> None:
        """Before a member container starts: the pod's sandbox and infra must be up."""
        await _start.ensure_running(self._ctx, ns, pod_id)

    # -- start, stop, remove (start.py, stop.py, remove.py) ----------------------------

    async def start(self, ns: str, ref: str) -> Pod:
        return await _start.start(self._ctx, ns, ref)

    async def stop(self, ns: str, ref: str, timeout: int | None = None, release_network: bool = False) -> Pod:
        """Stop the containers, then the infra. The sandbox stays, so a restart keeps the
        pod's IP; ``release_network`` (the CRI's StopPodSandbox) also gives the IP and
        ports back (CNI DEL, netns unpinned; a warm sandbox's in the background, on record
        when this returns) — the next start wires a new one."""
        return await _stop.stop(self._ctx, ns, ref, timeout, release_network)

    async def remove(
        self, ns: str, ref: str, force: bool = False, timeout: int | None = None, background: bool = False
    ) -> str:
        return await _remove.remove(self._ctx, ns, ref, force, timeout, background)

    async def finish_teardowns(self) -> None:
        """At shutdown: background removals finish (10 s at most; recovery does the rest)."""
        await _remove.finish_teardowns(self._ctx)

    async def prune(self, ns: str) -> builtins.list[str]:
        return await _remove.prune(self._ctx, ns)

    # -- reads (views.py) --------------------------------------------------------------

    def status(self, pod: Pod, members: builtins.list[Record]) -> str:
        return _views.status(pod, members)

    def to_dict(self, pod: Pod) -> dict[str, Any]:
        return _views.to_dict(self._ctx, pod)

    async def inspect(self, ns: str, ref: str) -> dict[str, Any]:
        return _views.to_dict(self._ctx, self._ctx.get(ns, ref))

    async def list(self, ns: str, labels: builtins.list[str] | None = None) -> builtins.list[dict[str, Any]]:
        return _views.list_pods(self._ctx, ns, labels)

    def info(self, ns: str) -> dict[str, Any]:
        return _views.info(self._ctx, ns)

    # -- recovery (recover.py) ---------------------------------------------------------

    async def recover(self) -> None:
        """On daemon start: finish what a crash interrupted, and clean what has no pod."""
        await _recover.recover(self._ctx)

    # -- logs, stats, top (logs.py, stats.py) ------------------------------------------

    async def logs(
        self, ns: str, ref: str, follow: bool = False, tail: int | None = None, timestamps: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Every container's log lines, tagged with its name: merged in time order, then
        (with ``follow``) as they come."""
        return await _logs.logs(self._ctx, ns, ref, follow, tail, timestamps)

    async def stats(self, ns: str, ref: str, stream: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Samples of the pod's usage (one, or one a second); NotFound before the first."""
        return await _stats.stats(self._ctx, ns, ref, stream)

    async def top(self, ns: str, ref: str, ps_args: str = "") -> dict[str, Any]:
        return await _stats.top(self._ctx, ns, ref, ps_args)

    # -- kube (play.py) ----------------------------------------------------------------

    # The kube parsers (and decimal) are imported at the first play: podkitd's idle RSS.
    async def play_kube(self, ns: str, text: str, start: bool = True) -> dict[str, Any]:
        from podkit.pods import play

        return await play.play_kube(self._ctx, ns, text, start)

    async def down_kube(self, ns: str, text: str) -> dict[str, Any]:
        from podkit.pods import play

        return await play.down_kube(self._ctx, ns, text)
