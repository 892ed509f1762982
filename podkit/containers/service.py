"""The container service: a container's whole life, from image to exit and removal.

A container is a record (store.py), a writable snapshot of its image keyed by its
id, a bundle directory under the state dir (config.json, rootfs mount point,
hosts/resolv.conf/hostname), and, while it runs, one conmon that holds its stdio,
writes its CRI log and its exit code.

``ContainerService`` is the public face the API front ends use; each operation lives
in a module of its own, as containerd's CRI server keeps ``container_create.go``,
``container_start.go``... apart: create.py, start.py (with spec.py and networking.py),
exit.py (watching, the exit path, wait), stop.py (stop, kill, restart, pause), remove.py,
update.py (rename, update), inspect.py (view, ps, logs, stats, top, port), attach.py,
cp.py (archives) and exec.py. They share one ``ContainerContext`` (context.py): the
layers below, the store, and the per-container locks and change events.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.containers import attach as _attach
from podkit.containers import create as _create
from podkit.containers import exit as _exit
from podkit.containers import inspect as _inspect
from podkit.containers import networking as _networking
from podkit.containers import remove as _remove
from podkit.containers import start as _start
from podkit.containers import stop as _stop
from podkit.containers import update as _update
from podkit.containers.context import ContainerContext, Lazy
from podkit.containers.exec import Execs, ExecSession
from podkit.containers.health import HealthMonitor
from podkit.containers.hooks import ContainerHooks, HookChain
from podkit.containers.logs import Entry
from podkit.containers.options import CreateOptions
from podkit.containers.store import ContainerStore, Record
from podkit.prune import PruneFilters
from podkit.publish import Publish

if TYPE_CHECKING:
    from podkit.containers.archive import AsyncReader, BlockingReader
    from podkit.containers.attach import StdioSession
    from podkit.containers.commit import TarStream
    from podkit.containers.restart import RestartManager
    from podkit.containers.runtime_driver import ExecSessionIO, RuntimeDriver
    from podkit.containers.volumes import VolumeService
    from podkit.images.distribution import Registry
    from podkit.images.service import ImageService
    from podkit.network.manager import NetworkManager
    from podkit.snapshots.api import Snapshotter
    from podkit.store.metadata import Database


class ContainerService:
    def __init__(
        self,
        *,
        db: Database,
        root: Path,
        state: Path,
        images: Lazy[ImageService],
        snapshots: Lazy[Snapshotter],
        runtime: RuntimeDriver,
        networks: Lazy[NetworkManager | None],
        volumes: VolumeService,
        publish: Publish,
        registry: Lazy[Registry | None] = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.ctx = ContainerContext(
            db=db,
            root=root,
            state=state,
            images=images,
            snapshots=snapshots,
            runtime=runtime,
            networks=networks,
            volumes=volumes,
            publish=publish,
            registry=registry,
            config=config,
        )
        self.execs = Execs(self.ctx)
        self.ctx.health = HealthMonitor(self.ctx, self.execs)

    # ------------------------------------------------------- shared state
    # (attributes of the service before the split; the front ends read some of them)
    @property
    def db(self) -> Database:
        return self.ctx.db

    @property
    def store(self) -> ContainerStore:
        return self.ctx.store

    @property
    def root(self) -> Path:
        return self.ctx.root

    @property
    def state_dir(self) -> Path:
        return self.ctx.state_dir

    @property
    def logs_dir(self) -> Path:
        return self.ctx.logs_dir

    @property
    def bundles(self) -> Path:
        return self.ctx.bundles

    @property
    def volumes(self) -> VolumeService:
        return self.ctx.volumes

    @property
    def publish(self) -> Publish:
        return self.ctx.publish

    @property
    def cfg(self) -> dict[str, Any]:
        return self.ctx.cfg

    @property
    def rt(self) -> RuntimeDriver:
        return self.ctx.rt

    @property
    def default_log_size(self) -> int:
        return self.ctx.default_log_size

    @property
    def hooks(self) -> HookChain:
        return self.ctx.hooks

    @property
    def restarts(self) -> RestartManager | None:
        return self.ctx.restarts

    @restarts.setter
    def restarts(self, manager: RestartManager | None) -> None:
        self.ctx.restarts = manager

    @property
    def images(self) -> ImageService:
        return self.ctx.images

    @property
    def snapshots(self) -> Snapshotter:
        return self.ctx.snapshots

    @property
    def networks(self) -> NetworkManager | None:
        return self.ctx.networks

    @property
    def registry(self) -> Registry | None:
        return self.ctx.registry

    def add_hooks(self, hooks: ContainerHooks) -> None:
        """Register a higher layer's hooks (the pods layer's: ``pod`` in a create body)."""
        self.ctx.hooks.add(hooks)

    def resolve(self, ns: str, ref: str) -> Record:
        return self.ctx.resolve(ns, ref)

    def bundle(self, cid: str) -> Path:
        return self.ctx.bundle(cid)

    def log_path(self, cid: str) -> Path:
        return self.ctx.log_path(cid)

    def log_file(self, rec: Record) -> Path:
        """Where conmon writes the container's log: the CRI's path when one was given."""
        return self.ctx.log_file(rec)

    # ------------------------------------------------------------ lifecycle
    async def create(self, ns: str, body: dict[str, Any] | CreateOptions) -> Record:
        return await _create.create(self.ctx, ns, body)

    async def ensure_image(self, ns: str, ref: str, pull: str = "missing") -> None:
        """Pull the image as create would (``pull``: missing, always, never): a step on its
        own, so that the API can cancel it when its client leaves, which create cannot be."""
        await _create.image_for(self.ctx, ns, ref, pull)

    async def start(self, ns: str, ref: str) -> None:
        await _start.start(self.ctx, ns, ref)

    async def stop(
        self, ns: str, ref: str, timeout: int | None = None, signal: str | int | None = None
    ) -> None:
        await _stop.stop(self.ctx, ns, ref, timeout, signal)

    async def kill(self, ns: str, ref: str, sig: str | int = "KILL") -> None:
        await _stop.kill(self.ctx, ns, ref, sig)

    async def restart(
        self, ns: str, ref: str, timeout: int | None = None, signal: str | int | None = None
    ) -> None:
        await _stop.restart(self.ctx, ns, ref, timeout, signal)

    async def pause(self, ns: str, ref: str) -> None:
        await _stop.pause(self.ctx, ns, ref)

    async def unpause(self, ns: str, ref: str) -> None:
        await _stop.unpause(self.ctx, ns, ref)

    async def connect(
        self, ns: str, ref: str, network: str, aliases: list[str] | None = None, ip: str | None = None
    ) -> None:
        """Connect a container to one more network: live (CNI ADD of eth1...) if it runs,
        and at every later start."""
        await _networking.connect(self.ctx, ns, ref, network, list(aliases or []), ip)

    async def disconnect(self, ns: str, ref: str, network: str) -> None:
        """Disconnect a container from a network: live (CNI DEL) if it runs, and for later starts."""
        await _networking.disconnect(self.ctx, ns, ref, network)

    async def set_network(self, ns: str, ref: str, network: str, aliases: list[str] | None = None) -> None:
        """Change the network a container that is not running will start on (the Docker
        API's connect/disconnect before start), and its ``--network-alias`` names there;
        running containers keep theirs."""
        await _update.set_network(self.ctx, ns, ref, network, aliases)

    async def rename(self, ns: str, ref: str, new: str) -> None:
        await _update.rename(self.ctx, ns, ref, new)

    async def update(self, ns: str, ref: str, body: dict[str, Any]) -> None:
        """Change resource limits (live, through the runtime) and/or the restart policy."""
        await _update.update(self.ctx, ns, ref, body)

    async def wait(self, ns: str, ref: str, condition: str = "not-running") -> int:
        return await _exit.wait(self.ctx, ns, ref, condition)

    async def remove(
        self, ns: str, ref: str, force: bool = False, volumes: bool = False, background: bool = False
    ) -> None:
        await _remove.remove(self.ctx, ns, ref, force, volumes, background)

    async def prune(self, ns: str, filters: PruneFilters | None = None) -> builtins.list[str]:
        """Remove stopped containers (``filters``: until, labels); their ids."""
        return await _remove.prune(self.ctx, ns, filters)

    # ----------------------------------------------------------- inspection
    def view(self, r: Record, full: bool = False) -> dict[str, Any]:
        return _inspect.view(self.ctx, r, full)

    async def inspect(self, ns: str, ref: str, size: bool = False) -> dict[str, Any]:
        return await _inspect.inspect(self.ctx, ns, ref, size)

    async def sizes(self, ns: str, ref: str) -> dict[str, int]:
        """``size_rw`` and ``size_root_fs`` (docker's SizeRw, SizeRootFs), measured now."""
        return await _inspect.measure(self.ctx, ns, ref)

    async def list(
        self,
        ns: str,
        all: bool = False,
        filters: dict[str, builtins.list[str]] | None = None,
        size: bool = False,
    ) -> builtins.list[dict[str, Any]]:
        return await _inspect.listing(self.ctx, ns, all, filters or {}, size)

    async def logs(
        self,
        ns: str,
        ref: str,
        *,
        follow: bool = False,
        since: str | float | None = None,
        until: str | float | None = None,
        tail: int | None = None,
        streams: tuple[str, ...] = ("stdout", "stderr"),
        wanted: Callable[[], bool] | None = None,
    ) -> AsyncIterator[Entry]:
        """Log entries; with ``follow``, until the container stops (or ``wanted()`` turns false:
        the client went away)."""
        return await _inspect.logs(
            self.ctx,
            ns,
            ref,
            follow=follow,
            since=since,
            until=until,
            tail=tail,
            streams=streams,
            wanted=wanted,
        )

    async def reopen_log(self, ns: str, ref: str) -> None:
        """conmon closes and reopens the log file (the kubelet renamed it to rotate)."""
        await _inspect.reopen_log(self.ctx, ns, ref)

    async def stats(self, ns: str, ref: str, prev: dict[str, Any] | None = None) -> dict[str, Any]:
        return await _inspect.stats(self.ctx, ns, ref, prev)

    async def top(self, ns: str, ref: str, ps_args: str | None = None) -> dict[str, Any]:
        return await _inspect.top(self.ctx, ns, ref, ps_args)

    async def port(self, ns: str, ref: str) -> builtins.list[dict[str, Any]]:
        return _inspect.ports(self.resolve(ns, ref))

    # ---------------------------------------------------- attach, archives
    async def attach(self, ns: str, ref: str, stdin: bool = False, logs: bool = False) -> StdioSession:
        """The container's stdio (its log replayed first with ``logs``); a created one's
        is connected when it starts, so an attached ``run`` loses no output."""
        return await _attach.attach(self.ctx, ns, ref, stdin, logs)

    async def resize(self, ns: str, ref: str, h: int, w: int) -> None:
        await _attach.resize(self.ctx, ns, ref, h, w)

    # cp and commit (tar, the diff walker) are imported at their first use: most of an
    # idle podkitd's memory is the code it has imported (podkit.daemon.memory).
    async def archive_get(
        self, ns: str, ref: str, path: str, follow_link: bool = False
    ) -> tuple[dict[str, Any], AsyncGenerator[bytes, None]]:
        """A tar of ``path``; a symlink there is copied as a link unless ``follow_link``."""
        from podkit.containers import cp as _cp

        return await _cp.archive_get(self.ctx, ns, ref, path, follow_link)

    async def archive_stat(self, ns: str, ref: str, path: str, follow_link: bool = False) -> dict[str, Any]:
        """What ``archive_get`` reports about ``path`` (name, size, mode...), without the tar."""
        from podkit.containers import cp as _cp

        return await _cp.archive_stat(self.ctx, ns, ref, path, follow_link)

    async def archive_put(
        self, ns: str, ref: str, path: str, stream: BlockingReader | AsyncReader, copy_uid_gid: bool = True
    ) -> None:
        """Unpack a tar ``stream`` (a file object, or an aiohttp request body) at ``path``;
        owned as the tar says, or by root without ``copy_uid_gid``."""
        from podkit.containers import cp as _cp

        await _cp.archive_put(self.ctx, ns, ref, path, stream, copy_uid_gid)

    # ------------------------------------------------- commit, diff, export
    async def commit(
        self,
        ns: str,
        ref: str,
        name: str | None = None,
        *,
        message: str = "",
        author: str = "",
        changes: builtins.list[str] | None = None,
        pause: bool = True,
    ) -> dict[str, Any]:
        """A new image from the container's changes: ``{"id", "name"}``."""
        from podkit.containers import commit as _commit

        return await _commit.commit(
            self.ctx, ns, ref, name, message=message, author=author, changes_=changes, pause=pause
        )

    async def changes(self, ns: str, ref: str) -> builtins.list[dict[str, Any]]:
        """What the container changed in its image: ``[{"Path", "Kind"}]`` (0 C, 1 A, 2 D)."""
        from podkit.containers import commit as _commit

        return await _commit.changes(self.ctx, ns, ref)

    async def export(self, ns: str, ref: str) -> TarStream:
        """The container's whole file system as a tar stream."""
        from podkit.containers import commit as _commit

        return await _commit.export(self.ctx, ns, ref)

    # ----------------------------------------------------------------- exec
    async def exec_create(self, ns: str, ref: str, body: dict[str, Any]) -> ExecSession:
        return await self.execs.create(ns, ref, body)

    def exec_get(self, ns: str, eid: str) -> ExecSession:
        return self.execs.get(ns, eid)

    async def exec_attach(self, ns: str, eid: str) -> ExecSessionIO:
        return await self.execs.attach(ns, eid)

    async def exec_wait(self, ns: str, eid: str) -> int:
        return await self.execs.wait(ns, eid)

    async def exec_start_detached(self, ns: str, eid: str) -> None:
        await self.execs.start_detached(ns, eid)

    async def exec_resize(self, ns: str, eid: str, h: int, w: int) -> None:
        await self.execs.resize(ns, eid, h, w)

    # --------------------------------------------------------------- daemon
    def info(self, ns: str) -> dict[str, Any]:
        recs = self.store.list(ns)
        return {
            "containers": len(recs),
            "running": sum(r.state == "running" for r in recs),
            "paused": sum(r.state == "paused" for r in recs),
            "stopped": sum(r.state not in ("running", "paused") for r in recs),
        }

    async def shutdown(self) -> None:
        """Containers live on under conmon: only stop watching them."""
        if self.ctx.restarts is not None:
            self.ctx.restarts.close()
        await self.ctx.finish_teardowns()
        self.ctx.cancel_tasks()
