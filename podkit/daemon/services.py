"""The composition root: builds every layer, bottom up, for one daemon.

Each layer is constructed here and handed only what is below it. API handlers
(and the front ends: the CRI, the Docker Engine API) reach the layers through
``Services``, whose fields are typed with each layer's public class or protocol;
the layers never import the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from podkit.daemon.config import Config
from podkit.daemon.events import EventBus
from podkit.daemon.memory import MemoryKeeper
from podkit.store import ContentStore, Database

if TYPE_CHECKING:
    # For the annotations only: each layer is imported by build(), in its order, so
    # that importing this module (the API handlers do) costs nothing.
    from podkit.containers.service import ContainerService
    from podkit.containers.volumes import VolumeService
    from podkit.images.distribution import Registry
    from podkit.images.service import ImageService
    from podkit.network import NetworkManager
    from podkit.pods.service import PodService
    from podkit.runtime.engine import Runtime
    from podkit.snapshots import Snapshotter

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]


class Services:
    """Every layer of one daemon. The layer fields are set by ``build()``, bottom up;
    reading one before its layer is built is an AttributeError, never a None."""

    snapshots: Snapshotter
    images: ImageService
    registry: Registry
    runtime: Runtime
    volumes: VolumeService
    networks: NetworkManager
    containers: ContainerService
    pods: PodService

    def __init__(self, config: Config) -> None:
        self.config = config
        config.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        config.state.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.db = Database(config.root / "metadata.db")
        self.content = ContentStore(config.root)
        self.memory = MemoryKeeper()
        self.events = EventBus(on_publish=self.memory.touch)
        self._startup: list[Hook] = []
        self._shutdown: list[Hook] = []

    def on_startup(self, hook: Hook) -> None:
        self._startup.append(hook)

    def on_shutdown(self, hook: Hook) -> None:
        self._shutdown.append(hook)

    async def start(self) -> None:
        swept = self.content.sweep_ingest()
        if swept:
            log.info("removed %d half-written blobs left by an earlier crash", swept)
        for hook in self._startup:
            await hook()

    async def close(self) -> None:
        for hook in reversed(self._shutdown):
            try:
                await hook()
            except Exception:  # keep shutting the rest down; the traceback goes to the log
                log.exception("shutdown hook %s failed", getattr(hook, "__qualname__", hook))
        self.memory.close()
        self.db.close()


def build(config: Config) -> Services:
    """Every layer, bottom up, with its start-up and shutdown hooks.

    Long on purpose: one block per layer, in dependency order, so the composition of
    the daemon reads top to bottom in one place."""
    s = Services(config)
    # Layers are added below in dependency order (snapshots, images, runtime,
    # network, containers, pods). Each block is owned by its layer.

    # snapshots + images: overlayfs unless the kernel/file system lacks it ([images]
    # snapshotter = "overlay" | "native" | "auto"). Start-up drops half-applied layers.
    from podkit.images.service import ImageService
    from podkit.snapshots import new_snapshotter

    s.snapshots = new_snapshotter(s.db, config.root, str(config.section("images").get("snapshotter", "auto")))
    s.images = ImageService(s.db, s.content, s.snapshots, s.events.publish)

    async def _images_startup() -> None:
        import asyncio

        s.images.cleanup()
        # Content orphaned by a crash (older than the GC grace period) goes in the
        # background, so a big store does not slow the start.
        s.images.gc_task = asyncio.get_running_loop().create_task(s.images.gc_async())

    async def _images_shutdown() -> None:
        if s.images.gc_task is not None:
            await s.images.gc_task  # the database closes after the hooks

    s.on_startup(_images_startup)
    s.on_shutdown(_images_shutdown)

    # registry (pull/push/login)
    from podkit.images.distribution import Registry

    # The image service and snapshotter are looked up when used, so the order of
    # the blocks in this function does not matter to the registry.
    s.registry = Registry(
        s.content, lambda: s.images, s.db, config.section("registries"), snapshots=lambda: s.snapshots
    )
    s.on_startup(s.registry.startup)
    s.on_shutdown(s.registry.close)

    # runtime: runc (or [runtime] runtime = name/path) under one conmon per
    # container; its state lives under <state>/runtime and survives daemon restarts.
    from podkit.runtime.engine import Runtime

    s.runtime = Runtime.from_config(config.section("runtime"), config.state)

    # network (CNI): networks are host-wide; the startup hook makes the default
    # network and undoes attachments whose netns is gone. Shutdown leaves running
    # containers' networks alone.
    from podkit.network import NetworkManager

    s.networks = NetworkManager(
        s.db, config.root, config.state, config.section("network"), publish=s.events.publish
    )
    s.on_startup(s.networks.startup)
    s.on_shutdown(s.networks.shutdown)

    # containers: named volumes, the container service (runc under conmon via the
    # runtime layer), restart policies. Start-up recovers every container's true
    # state; shutdown leaves containers running under their conmon.
    from podkit.containers import setup as setup_containers

    setup_containers(s)

    # pods: sandboxes (pinned net/ipc/uts, shm, pod cgroup, catatonit infra) built on
    # the containers and network layers. Keep this block last: its start-up recovery
    # must run after the containers' own. Its container hooks let `pod` in a container
    # create body (podkit run --pod) put the container into a pod, and start members'
    # sandboxes first (podkit.containers.hooks).
    from podkit.pods.service import PodService

    s.pods = PodService(
        s.db,
        s.events,
        root=config.root,
        state=config.state,
        containers=s.containers,
        networks=s.networks,
        images=s.images,
        content=s.content,
        runtime=s.runtime,
        config=config.section("pods"),
    )
    s.containers.add_hooks(s.pods)
    s.on_startup(s.pods.recover)
    s.on_shutdown(s.pods.finish_teardowns)  # first of the shutdown hooks (reverse order)

    # build: what a build cut short by a crash left (its step container, --from views,
    # work directory under <state>/build) goes at start, after the containers' recovery;
    # a shutdown waits for the work directories still being removed.
    async def _build_startup() -> None:
        from podkit.build.workdir import sweep

        await sweep(s.containers.state_dir, s.snapshots, s.containers)

    async def _build_shutdown() -> None:
        from podkit.build.workdir import finish_removals

        await finish_removals()

    s.on_startup(_build_startup)
    s.on_shutdown(_build_shutdown)
    return s
