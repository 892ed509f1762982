"""What every container operation works with, in one object the operation modules take.

The layers below (images, snapshots, the runtime driver, networks, the registry), the
container store, volumes, the event bus, the higher layers' hooks, and the per-container
state the operations share: a lock per container (start, exit and remove of one
container never interleave), a change event per container (``stop`` and ``wait`` sleep
on it), the exit watchers, the last exit codes of removed containers and the daemon's
background tasks.

Lower layers may be given as zero-argument callables: the daemon builds its layers in
any order, and they are looked up when first used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from podkit.containers.hooks import HookChain
from podkit.containers.logrotate import LogRotation
from podkit.containers.store import ContainerStore, Record
from podkit.publish import Publish

if TYPE_CHECKING:
    from podkit.containers.health import HealthMonitor
    from podkit.containers.restart import RestartManager
    from podkit.containers.runtime_driver import RuntimeDriver
    from podkit.containers.volumes import VolumeService
    from podkit.images.distribution import Registry
    from podkit.images.service import Image, ImageService
    from podkit.network.manager import NetworkManager
    from podkit.snapshots.api import Snapshotter
    from podkit.store.metadata import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
Lazy: TypeAlias = T | Callable[[], T]  # a layer, or how to look it up when first used

ACTIVE = ("running", "paused", "restarting")
SHUTDOWN_TEARDOWN_WAIT = 10.0  # seconds a shutdown gives the teardowns under way


def removing_name(rec: Record) -> str:
    """The name of a container whose removal is under way: never a user's (a '~' is not
    allowed in names), unique (its id), and telling whose it was."""
    return rec.name if "~" in rec.name else f"{rec.name}~removing-{rec.id[:12]}"


def original_name(name: str) -> str:
    """The name a container had before ``removing_name``."""
    return name.split("~removing-", 1)[0]


LABEL_IMAGE = "podkit/image"
LABEL_NAMESPACE = "podkit/namespace"


def snap_key(cid: str) -> str:
    """The key of a container's writable snapshot."""
    return f"ctr-{cid}"


def _get(layer: Lazy[T]) -> T:
    return layer() if callable(layer) else layer


class ContainerContext:
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
        self.db = db
        self.store = ContainerStore(db)
        self.root = Path(root)
        self.state_dir = Path(state)
        self._images = images
        self._snapshots = snapshots
        self._networks = networks
        self._registry = registry
        self.rt = runtime
        self.volumes = volumes
        self.publish = publish
        self.cfg: dict[str, Any] = config or {}
        self.logs_dir = self.root / "containers"
        self.bundles = self.state_dir / "containers"
        for d in (self.logs_dir, self.bundles):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.default_log_size = int(self.cfg.get("log_size_max", 50 * 1024 * 1024))
        self.default_log_files = max(1, int(self.cfg.get("log_max_file", 1)))  # see logrotate.py
        self.log_rotation = LogRotation(self)
        self.hooks = HookChain()  # higher layers' say (pods), see hooks.py
        self.restarts: RestartManager | None = None  # set by the daemon wiring
        self.health: HealthMonitor | None = None  # set by the service (health.py)
        self.watchers: dict[str, asyncio.Task[None]] = {}
        # Watchers past the exit: releasing, removing (an auto_remove container's teardown
        # runs there after its waiters went on); a shutdown lets them finish.
        self.exiting: set[asyncio.Task[Any]] = set()
        self.last_exit: dict[str, int] = {}  # of containers removed since
        self._events: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._bg: set[asyncio.Task[Any]] = set()
        self._hooked = False
        volumes.users = self._volume_users

    # ------------------------------------------------------------ the layers
    @property
    def images(self) -> ImageService:
        img = _get(self._images)
        if img is not None and not self._hooked:
            img.usage_hooks.append(self._image_users)
            self._hooked = True
        return img

    @property
    def snapshots(self) -> Snapshotter:
        return _get(self._snapshots)

    @property
    def networks(self) -> NetworkManager | None:
        return _get(self._networks)

    @property
    def registry(self) -> Registry | None:
        return _get(self._registry)

    # --------------------------------------------------------------- records
    def resolve(self, ns: str, ref: str) -> Record:
        return self.store.resolve(ns, ref)

    def bundle(self, cid: str) -> Path:
        return self.bundles / cid

    def log_path(self, cid: str) -> Path:
        return self.logs_dir / cid / "ctr.log"

    def log_file(self, rec: Record) -> Path:
        """Where conmon writes the container's log: the CRI's path when one was given."""
        given = rec.config.get("log_path")
        return Path(given) if given else self.log_path(rec.id)

    def _volume_users(self, ns: str, name: str) -> list[str]:
        out = []
        for r in self.store.list(ns):
            if r.state == "removing" and not r.pid:  # ended: its mounts went with it
                continue
            for m in r.config.get("mounts") or []:
                if m.get("type") == "volume" and m.get("source") == name:
                    out.append(r.id)
        return out

    def _image_users(self, ns: str, image: Image) -> list[str]:
        return [
            r.name
            for r in self.store.list(ns)
            if r.image_id == image.id
            or any(
                m.get("type") == "image" and m.get("source") == image.id for m in r.config.get("mounts") or []
            )
        ]

    # ------------------------------------------------ locks, changes, tasks
    def lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def forget_lock(self, cid: str) -> None:
        self._locks.pop(cid, None)

    def changed(self, cid: str) -> None:
        """Wake whoever waits for the container's next change (its record was updated)."""
        ev = self._events.pop(cid, None)
        if ev is not None:
            ev.set()

    async def next_change(self, cid: str, timeout: float | None = None) -> None:
        ev = self._events.setdefault(cid, asyncio.Event())
        if timeout is None:
            await ev.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), timeout)

    def spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[Any]:
        """A background task of the daemon's (cancelled at shutdown); its failure is logged."""
        t = asyncio.ensure_future(coro)
        self._bg.add(t)
        t.add_done_callback(self._done)
        return t

    def _done(self, t: asyncio.Task[Any]) -> None:
        self._bg.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.warning("background task %s failed: %r", t.get_name(), t.exception())

    async def finish_teardowns(self) -> None:
        """Let the teardowns under way (`run --rm`'s above all) finish rather than leave
        them to the next start's recovery; one stuck is left to it."""
        if not self.exiting:
            return
        _, stuck = await asyncio.wait(set(self.exiting), timeout=SHUTDOWN_TEARDOWN_WAIT)
        if stuck:
            log.warning("%d container teardowns left to the next start's recovery", len(stuck))

    def cancel_tasks(self) -> None:
        for w in list(self.watchers.values()):
            w.cancel()
        for t in list(self._bg):
            t.cancel()
