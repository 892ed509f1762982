"""The container service: a container's whole life, from image to exit and removal.

A container is a record (store.py), a writable snapshot of its image keyed by its
id, a bundle directory under the state dir (config.json, rootfs mount point,
hosts/resolv.conf/hostname), and, while it runs, one conmon that holds its stdio,
writes its CRI log and its exit code. The daemon watches conmon through a pidfd:
when conmon exits, the container has ended; the exit file gives its code, the
``oom`` file in conmon's persist dir whether the kernel OOM-killed it.

Start builds the OCI spec from the image config and the options (so pod namespace
paths and networks are current), mounts the rootfs, wires the network and launches
conmon; each step is undone if a later one fails, so a failed start leaves nothing
behind. The exit path undoes them in reverse (runc delete, network, unmount).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import shutil
import signal
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

from podkit.containers import archive
from podkit.containers.attach import AttachAdapter, PendingAttach
from podkit.containers.exec import ExecMixin, ExecSession
from podkit.containers.hooks import ContainerHooks, HookChain
from podkit.containers.logs import Entry, LogReader, parse_since
from podkit.containers.options import CreateOptions, Mount, merge_env, parse_signal, validate_name
from podkit.containers.rootfs import resolve_user, secure_join
from podkit.containers.store import ContainerStore, Record
from podkit.containers.trace import mark
from podkit.containers.volumes import VolumeService
from podkit.errors import (
    CannotExecute,
    CommandNotFound,
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    PodkitError,
)

log = logging.getLogger(__name__)

Publish = Callable[..., Any]
ACTIVE = ("running", "paused", "restarting")
LABEL_IMAGE = "podkit/image"
LABEL_NAMESPACE = "podkit/namespace"

_ADJ = (
    "brave",
    "calm",
    "eager",
    "fancy",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "merry",
    "nimble",
    "proud",
    "quiet",
    "rapid",
    "sharp",
    "tender",
    "vivid",
    "witty",
    "zen",
    "bold",
)
_NOUN = (
    "otter",
    "falcon",
    "maple",
    "comet",
    "river",
    "badger",
    "cedar",
    "lynx",
    "orbit",
    "pebble",
    "quartz",
    "raven",
    "spruce",
    "tiger",
    "violet",
    "walrus",
    "yak",
    "zebra",
    "heron",
    "koala",
)


class ContainerService(ExecMixin):
    def __init__(
        self,
        *,
        db: Any,
        root: Path,
        state: Path,
        images: Any,
        snapshots: Any,
        runtime: Any,
        networks: Any,
        volumes: VolumeService,
        publish: Publish,
        registry: Any = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.db = db
        self.store = ContainerStore(db)
        self.root = Path(root)
        self.state_dir = Path(state)
        # Lower layers may be given as zero-argument callables: the daemon builds its
        # layers in any order, and they are looked up when first used.
        self._layers = {"images": images, "snapshots": snapshots, "networks": networks, "registry": registry}
        self.volumes = volumes
        self.publish = publish
        self.cfg = config or {}
        self.rt = runtime  # podkit.runtime driver (see _runtime.py adapter)
        self.logs_dir = self.root / "containers"
        self.bundles = self.state_dir / "containers"
        for d in (self.logs_dir, self.bundles):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.default_log_size = int(self.cfg.get("log_size_max", 50 * 1024 * 1024))
        self._events: dict[str, asyncio.Event] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_exit: dict[str, int] = {}
        self._execs: dict[str, ExecSession] = {}
        self._bg: set[asyncio.Task[Any]] = set()
        self.restarts: Any = None  # RestartManager, set by the daemon wiring
        self.hooks = HookChain()  # higher layers' say (pods), see hooks.py
        volumes.users = self._volume_users
        self._hooked = False

    def add_hooks(self, hooks: ContainerHooks) -> None:
        """Register a higher layer's hooks (the pods layer's: ``pod`` in a create body)."""
        self.hooks.add(hooks)

    def _layer(self, name: str) -> Any:
        v = self._layers[name]
        return v() if callable(v) else v

    @property
    def images(self) -> Any:
        img = self._layer("images")
        if img is not None and not self._hooked and hasattr(img, "usage_hooks"):
            img.usage_hooks.append(self._image_users)
            self._hooked = True
        return img

    @property
    def snapshots(self) -> Any:
        return self._layer("snapshots")

    @property
    def networks(self) -> Any:
        return self._layer("networks")

    @property
    def registry(self) -> Any:
        return self._layer("registry")

    # ------------------------------------------------------------------ helpers
    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def _changed(self, cid: str) -> None:
        ev = self._events.pop(cid, None)
        if ev is not None:
            ev.set()

    async def _next_change(self, cid: str, timeout: float | None = None) -> None:
        ev = self._events.setdefault(cid, asyncio.Event())
        if timeout is None:
            await ev.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), timeout)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        t = asyncio.ensure_future(coro)
        self._bg.add(t)
        t.add_done_callback(self._bg.discard)
        return t

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
            for m in r.config.get("mounts") or []:
                if m.get("type") == "volume" and m.get("source") == name:
                    out.append(r.id)
        return out

    def _image_users(self, ns: str, image: Any) -> list[str]:
        return [r.name for r in self.store.list(ns) if r.image_id == image.id]

    def _gen_name(self, ns: str) -> str:
        used = self.store.names_in_use(ns)
        for _ in range(50):
            n = f"{random.choice(_ADJ)}_{random.choice(_NOUN)}"
            if n not in used:
                return n
        return f"{random.choice(_ADJ)}_{random.choice(_NOUN)}_{secrets.token_hex(2)}"

    async def _image(self, ns: str, ref: str, pull: bool = True) -> Any:
        try:
            return self.images.get(ns, ref)
        except NotFound:
            if not pull or self.registry is None:
                raise
        log.info("image %s not present: pulling it", ref)
        try:
            await self.registry.pull(ns, ref)
        except InvalidArgument:
            raise  # the reference itself is bad (a 400, not a missing image)
        except PodkitError as e:
            raise NotFound(f"image {ref!r} not found locally and could not be pulled: {e.message}") from None
        return self.images.get(ns, ref)

    # ------------------------------------------------------------------- create
    async def create(self, ns: str, body: dict[str, Any] | CreateOptions) -> Record:
        began = time.time()
        # Parsed off the event loop: a body may name an env file or a seccomp profile the
        # parser reads (checked and bounded: podkit.userfiles.read_regular).
        opts = body if isinstance(body, CreateOptions) else await asyncio.to_thread(CreateOptions.parse, body)
        opts = await self.hooks.before_create(ns, opts)
        if opts.pod:  # a hook resolves it into pod_id, namespaces...; none did
            raise InvalidArgument(f"cannot put the container into pod {opts.pod}: pods are not available")
        image = await self._image(ns, opts.image)
        cfg = image.config.get("config") or {}
        args = self._args(opts, cfg)
        if not args:
            raise InvalidArgument(
                f"no command specified: image {opts.image} has no Cmd or Entrypoint and none was given"
            )
        if opts.network.startswith("container:"):
            other = self.resolve(ns, opts.network.split(":", 1)[1])
            opts.network = f"container:{other.id}"
        elif opts.network not in ("host", "none", "pod", "bridge") and self.networks is not None:
            self.networks.get(opts.network)  # NotFound with a clear message
        if image.chain_id and not self.images.is_unpacked(image):
            await self.images.unpack(ns, image)
        cid = secrets.token_hex(32)
        name = opts.name or self._gen_name(ns)
        opts.name = name
        rec = Record(
            id=cid,
            namespace=ns,
            name=name,
            image=image.name,
            image_id=image.id,
            config=opts.to_dict(),
            labels=opts.labels,
            pod_id=opts.pod_id,
            infra=opts.infra,
        )
        self.store.insert(rec)
        made_volumes: list[str] = []
        try:
            for m in opts.mounts:
                if m.type == "volume":
                    if not m.source:
                        m.source = self.volumes.create(ns, anonymous=True)["name"]
                        made_volumes.append(m.source)
                    elif not self.volumes.exists(ns, m.source):
                        self.volumes.create(ns, m.source)
                        made_volumes.append(m.source)
            rec.config = opts.to_dict()
            self.store.update(cid, config=rec.config)
            labels = {LABEL_IMAGE: image.id, LABEL_NAMESPACE: ns, "podkit/container": cid}
            mark(cid, "create", began)
            mark(cid, "snapshot")
            await asyncio.to_thread(self.snapshots.prepare, self._snap_key(cid), image.chain_id, labels)
            mark(cid, "snapshot-done")
            self.log_path(cid).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if opts.log_path:  # the kubelet's pod log directory may not exist yet
                Path(opts.log_path).parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        except BaseException:
            with contextlib.suppress(Exception):
                self.snapshots.remove(self._snap_key(cid))
            self.store.delete(cid)
            for v in made_volumes:
                with contextlib.suppress(Exception):
                    self.volumes.remove(ns, v)
            raise
        self.publish(ns, "container", "create", cid, name=name, image=image.name)
        await self.hooks.after_create(ns, rec)
        mark(cid, "created")
        return rec

    @staticmethod
    def _snap_key(cid: str) -> str:
        return f"ctr-{cid}"

    @staticmethod
    def _args(opts: CreateOptions, cfg: dict[str, Any]) -> list[str]:
        ep = opts.entrypoint if opts.entrypoint is not None else (cfg.get("Entrypoint") or [])
        if opts.cmd is not None:
            cmd = opts.cmd
        elif opts.entrypoint is not None:
            cmd = []  # docker: a new entrypoint drops the image's Cmd
        else:
            cmd = cfg.get("Cmd") or []
        return list(ep) + list(cmd)

    # -------------------------------------------------------------------- start
    async def start(self, ns: str, ref: str) -> None:
        rec = self.resolve(ns, ref)
        await self.hooks.before_start(ns, rec)  # e.g. a pod member's sandbox comes up first
        async with self._lock(rec.id):
            rec = self.store.get(rec.id) or rec
            if rec.state in ("running", "restarting"):
                return
            if rec.state == "paused":
                raise Conflict(f"container {rec.name} is paused: unpause it instead")
            if rec.state == "removing":
                raise Conflict(f"container {rec.name} is being removed")
            self.store.update(rec.id, manually_stopped=False)
            await self._start(rec)

    async def _start(self, rec: Record) -> None:
        opts = CreateOptions.from_stored(rec.config)
        image = None
        with contextlib.suppress(NotFound):
            image = self.images.get(rec.namespace, rec.image_id) if rec.image_id else None
        if image is None:
            image = self.images.get(rec.namespace, rec.image)
        cfg = image.config.get("config") or {}
        bundle = self.bundle(rec.id)
        rootfs = bundle / "rootfs"
        undo: list[Callable[[], Any]] = []
        marks = [time.perf_counter()]
        mark(rec.id, "mount")
        try:
            bundle.mkdir(parents=True, exist_ok=True, mode=0o700)
            rootfs.mkdir(exist_ok=True)
            if not self._mounted(rootfs):
                key = self._snap_key(rec.id)
                if not self.snapshots.exists(key):  # a crash inside create left no snapshot
                    await asyncio.to_thread(
                        self.snapshots.prepare,
                        key,
                        image.chain_id,
                        {LABEL_IMAGE: image.id, LABEL_NAMESPACE: rec.namespace, "podkit/container": rec.id},
                    )
                mounts = self.snapshots.mounts(key)
                await asyncio.to_thread(self._mount_all, mounts, rootfs)
                undo.append(lambda: self._unmount(rootfs))
            marks.append(time.perf_counter())
            mark(rec.id, "network")
            netinfo, nss, undo_net = await self._network_up(rec, opts)
            marks.append(time.perf_counter())
            mark(rec.id, "spec")
            undo.append(undo_net)
            spec = await self._spec(rec, opts, cfg, rootfs, nss, netinfo)
            (bundle / "config.json").write_text(json.dumps(spec))
            marks.append(time.perf_counter())
            mark(rec.id, "runtime-create")
            log_size = opts.log_size_max if opts.log_size_max is not None else self.default_log_size
            try:
                pid = await self.rt.create(
                    rec.id,
                    rec.name,
                    bundle,
                    log_path=str(self.log_file(rec)),
                    log_size_max=log_size,
                    terminal=opts.tty,
                    stdin=opts.open_stdin,
                    leave_stdin_open=opts.tty if opts.stdin_once is None else not opts.stdin_once,
                )
            except PodkitError:
                raise
            except Exception as e:  # RuntimeCreateError and friends
                raise _classify(getattr(e, "message", str(e))) from None
            undo.append(lambda: self._spawn(self.rt.delete(rec.id, force=True)))
            marks.append(time.perf_counter())
            mark(rec.id, "start")
            try:
                await self.rt.start(rec.id)
            except PodkitError as e:
                if isinstance(e, CommandNotFound | CannotExecute):
                    raise
                raise _classify(e.message) from None
        except BaseException as e:
            for u in reversed(undo):
                with contextlib.suppress(Exception):
                    r = u()
                    if asyncio.iscoroutine(r):
                        await r
            await self._rt_cleanup(rec.id)
            if isinstance(e, PodkitError):
                code = e.exit_code if isinstance(e, CommandNotFound | CannotExecute) else 128
                self.store.update(
                    rec.id,
                    state="exited" if rec.state != "created" else "created",
                    error=e.message,
                    exit_code=code if rec.state != "created" else None,
                )
                self._changed(rec.id)  # waiters (wait not-running, an attach) learn of it
            raise
        marks.append(time.perf_counter())
        log.debug(
            "started %s in %.1f ms (rootfs %.1f, network %.1f, spec %.1f, create %.1f, start %.1f)",
            rec.id[:12],
            (marks[-1] - marks[0]) * 1000,
            *((b - a) * 1000 for a, b in zip(marks, marks[1:], strict=False)),
        )
        now = time.time()
        self.store.update(
            rec.id,
            state="running",
            pid=pid,
            started_at=now,
            finished_at=None,
            exit_code=None,
            oom_killed=False,
            error="",
            network=netinfo,
        )
        self._changed(rec.id)
        self._watch(rec.id)
        mark(rec.id, "started")
        self.publish(rec.namespace, "container", "start", rec.id, name=rec.name, image=rec.image)

    async def _rt_cleanup(self, cid: str) -> None:
        with contextlib.suppress(Exception):
            await self.rt.delete(cid, force=True)
        with contextlib.suppress(Exception):
            self.rt.forget(cid)

    @staticmethod
    def _mounted(p: Path) -> bool:
        from podkit.snapshots.mount import is_mountpoint

        return is_mountpoint(p)

    @staticmethod
    def _mount_all(mounts: list[Any], target: Path) -> None:
        from podkit.snapshots.mount import mount_all

        mount_all(mounts, target)

    @staticmethod
    def _unmount(target: Path) -> None:
        from podkit.snapshots.mount import is_mountpoint, unmount

        if is_mountpoint(target):
            unmount(target)

    async def _network_up(
        self, rec: Record, opts: CreateOptions
    ) -> tuple[dict[str, Any], dict[str, str | None], Callable[[], Any]]:
        """Namespaces to create/join, and the network attachment; with its undo."""
        nss: dict[str, str | None] = {"pid": None, "ipc": None, "uts": None, "mount": None, "network": None}
        for k, v in opts.namespaces.items():
            nss[k] = v
        info: dict[str, Any] = {"mode": opts.network}
        mode = opts.network

        async def nothing() -> None:
            return None

        if mode == "host":
            nss["network"] = "host"
            nss["uts"] = "host" if not opts.hostname else None
            return info, nss, nothing
        if mode == "none" or mode == "pod" or "network" in opts.namespaces:
            return info, nss, nothing
        if mode.startswith("container:"):
            other = self.store.get(mode.split(":", 1)[1])
            if other is None or other.state not in ("running", "paused") or not other.pid:
                raise Conflict(
                    f"cannot join the network of container {mode.split(':', 1)[1][:12]}: it is not running"
                )
            nss["network"] = f"/proc/{other.pid}/ns/net"
            info["ip"] = (other.network or {}).get("ip")
            return info, nss, nothing
        if self.networks is None:
            return info, nss, nothing
        from podkit.network.ports import PortMapping

        netns = await asyncio.to_thread(self.networks.create_netns, rec.id)
        try:
            ports = [PortMapping.from_dict(p) for p in opts.ports]
            atts = await self.networks.attach(
                rec.id, netns, [mode if mode != "bridge" else ""], ports=ports, namespace=rec.namespace
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.networks.remove_netns, rec.id)
            raise
        nss["network"] = netns
        first = atts[0] if atts else {}
        info.update(
            {
                "netns": netns,
                "ip": first.get("ip"),
                "gateway": first.get("gateway"),
                "mac": first.get("mac"),
                "network": first.get("network"),
                "ports": first.get("ports", []),
                "attachments": atts,
            }
        )

        async def undo() -> None:
            await self._network_down(rec.id)

        return info, nss, undo

    async def _network_down(self, cid: str) -> None:
        if self.networks is None:
            return
        with contextlib.suppress(Exception):
            await self.networks.detach(cid)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.networks.remove_netns, cid)

    async def _spec(
        self,
        rec: Record,
        opts: CreateOptions,
        cfg: dict[str, Any],
        rootfs: Path,
        nss: dict[str, str | None],
        netinfo: dict[str, Any],
    ) -> dict[str, Any]:
        from podkit.runtime import spec as S

        bundle = self.bundle(rec.id)
        args = self._args(opts, cfg)
        env = merge_env(cfg.get("Env") or [], opts.env)
        hostname = opts.hostname or rec.id[:12]
        if opts.network == "host" and not opts.hostname:
            hostname = os.uname().nodename
        user = await asyncio.to_thread(resolve_user, rootfs, opts.user or cfg.get("User") or "")
        if not any(e.startswith("HOME=") for e in env):
            env.append(f"HOME={user[3]}")
        if opts.tty and not any(e.startswith("TERM=") for e in env):
            env.append("TERM=xterm")
        env.append(f"HOSTNAME={hostname}")
        mounts: list[dict[str, Any]] = []
        # /etc/hosts, /etc/resolv.conf, /etc/hostname: generated per container unless a pod gives them.
        from podkit.network import dns

        hosts = opts.hosts_file
        if not hosts:
            extra = [dns.parse_add_host(h) for h in opts.add_hosts]
            p = bundle / "hosts"
            if opts.network == "host":
                p.write_text(Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else "")
            else:
                p.write_text(dns.hosts_file(hostname, netinfo.get("ip"), extra))
            hosts = str(p)
        resolv = opts.resolv_file
        if not resolv:
            p = bundle / "resolv.conf"
            p.write_text(dns.resolv_conf(opts.dns or None))
            resolv = str(p)
        (bundle / "hostname").write_text(hostname + "\n")
        for dst, src in (
            ("/etc/hosts", hosts),
            ("/etc/resolv.conf", resolv),
            ("/etc/hostname", str(bundle / "hostname")),
        ):
            mounts.append(
                {
                    "destination": dst,
                    "type": "bind",
                    "source": src,
                    "options": ["rbind", "rprivate"] + (["ro"] if opts.read_only else []),
                }
            )
        for m in opts.mounts:
            mounts.append(await self._mount_spec(rec, m, rootfs))
        workdir = opts.workdir or cfg.get("WorkingDir") or "/"
        if workdir != "/":
            # docker creates a missing working directory in the rootfs
            with contextlib.suppress(OSError):
                target = secure_join(rootfs, workdir)
                if not target.exists():
                    target.mkdir(parents=True, exist_ok=True)
                    os.chown(target, user[0], user[1])
        res = S.Resources(
            memory=opts.memory,
            memory_swap=opts.memory_swap,
            cpus=opts.cpus,
            cpu_shares=opts.cpu_shares,
            pids_limit=opts.pids_limit,
            ulimits=[S.Ulimit(n, s, h) for n, s, h in opts.ulimits],
            cpu_quota=opts.cpu_quota,
            cpuset_cpus=opts.cpuset_cpus,
            cpuset_mems=opts.cpuset_mems,
        )
        if opts.cpu_period:
            res.cpu_period = opts.cpu_period
        devices = [S.Device(d["host"], d["container"], d["permissions"]) for d in opts.devices]
        seccomp = opts.seccomp
        if opts.seccomp_profile is not None and seccomp not in ("default", "unconfined"):
            # the profile as it was at create time: the user's file may be gone or changed since
            p = bundle / "seccomp.json"
            p.write_text(json.dumps(opts.seccomp_profile))
            seccomp = str(p)
        so = S.SpecOptions(
            rootfs=str(rootfs),
            args=args,
            env=env,
            cwd=workdir,
            user=S.User(
                uid=user[0], gid=user[1], additional_gids=sorted({*user[2], *opts.group_add} - {user[1]})
            ),
            terminal=opts.tty,
            hostname=hostname,
            readonly_rootfs=opts.read_only,
            mounts=mounts,
            cap_add=opts.cap_add,
            cap_drop=opts.cap_drop,
            privileged=opts.privileged,
            seccomp=seccomp,
            no_new_privileges=opts.no_new_privileges,
            devices=devices,
            resources=res,
            init=opts.init,
            namespaces=nss,
            shm_path=opts.shm_path,
            cgroups_path=self._cgroups_path(rec, opts),
            annotations={"podkit/name": rec.name, **opts.annotations},
            labels=opts.labels,
            oom_score_adj=opts.oom_score_adj,
            masked_paths=opts.masked_paths,
            readonly_paths=opts.readonly_paths,
        )
        if opts.shm_size:
            so.shm_size = opts.shm_size
        return S.build_spec(so)

    def _cgroups_path(self, rec: Record, opts: CreateOptions) -> str:
        parent = opts.cgroup_parent or self.cfg.get("cgroup_parent") or "/podkit"
        return f"{parent.rstrip('/')}/{rec.id}"

    async def _mount_spec(self, rec: Record, m: Mount, rootfs: Path) -> dict[str, Any]:
        ro = ["ro"] if m.readonly else []
        if m.type == "tmpfs":
            o = [x for x in m.options if x != "ro"]
            if not any(x.startswith("mode=") for x in o):
                o.append("mode=1777")
            return {
                "destination": m.target,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", *o, *ro],
            }
        if m.type == "volume":
            src = self.volumes.path(rec.namespace, m.source)
            if "nocopy" not in m.options:
                with contextlib.suppress(OSError, InvalidArgument):
                    await self.volumes.seed(rec.namespace, m.source, secure_join(rootfs, m.target))
            return {
                "destination": m.target,
                "type": "bind",
                "source": str(src),
                "options": ["rbind", "rprivate", *ro],
            }
        prop = [x for x in m.options if x in ("private", "rprivate", "shared", "rshared", "slave", "rslave")]
        return {
            "destination": m.target,
            "type": "bind",
            "source": m.source,
            "options": ["rbind", *(prop or ["rprivate"]), *ro],
        }

    # ---------------------------------------------------------------- exit path
    def _watch(self, cid: str) -> None:
        old = self._watchers.get(cid)
        if old is not None and not old.done():
            return
        self._watchers[cid] = asyncio.ensure_future(self._watch_task(cid))

    async def _watch_task(self, cid: str) -> None:
        try:
            await self.rt.wait_exit(cid)
        except asyncio.CancelledError:
            return
        except Exception:
            log.exception("watching container %s failed", cid[:12])
        mark(cid, "exit-seen")
        # This run is over: a restart from here on needs (and gets) a watcher of its own.
        if self._watchers.get(cid) is asyncio.current_task():
            del self._watchers[cid]
        try:
            await self._handle_exit(cid)
        except Exception:
            log.exception("handling the exit of container %s failed", cid[:12])

    async def _handle_exit(self, cid: str) -> None:
        async with self._lock(cid):
            rec = self.store.get(cid)
            if rec is None or rec.state not in ACTIVE:
                return
            await self._finish(rec)
        await self._after_exit(cid)

    async def _finish(self, rec: Record) -> None:
        """Record an ended container's exit and release what it held while running."""
        code, finished, oom = await self.rt.exit_status(rec.id)
        if code is None:
            code, finished = 255, time.time()
            log.warning("container %s ended without an exit code", rec.id[:12])
        # conmon's exit file may predate started_at (recorded once runc start returned,
        # after a quick command had already ended): an exit is never before its start.
        finished = max(finished or time.time(), rec.started_at or 0.0)
        # The exit is on record before anything is released: a crash in between leaves an
        # exited container whose leftovers recovery releases, never a lost exit code.
        self.store.update(
            rec.id, state="exited", exit_code=code, finished_at=finished or time.time(), oom_killed=oom, pid=0
        )
        self._last_exit[rec.id] = code
        # Waiters (stop, wait) may go on now; whatever comes next for this container
        # (start, remove) takes the lock and so comes after the release below.
        self._changed(rec.id)
        mark(rec.id, "release")
        await self._release(rec.id)
        mark(rec.id, "released")
        if oom:
            self.publish(rec.namespace, "container", "oom", rec.id, name=rec.name)
        self.publish(rec.namespace, "container", "die", rec.id, name=rec.name, exitCode=code, image=rec.image)
        self._changed(rec.id)

    async def _release(self, cid: str) -> None:
        # Three independent releases, side by side: each mostly waits (on runc delete, on
        # CNI plugins, on the kernel syncing the overlay at unmount), and an exit
        # (`run --rm` above all) is only over once all three are done.
        async def runtime() -> None:
            if self.rt.has_state(cid):
                await self._rt_cleanup(cid)

        async def rootfs() -> None:
            root = self.bundle(cid) / "rootfs"
            if self._mounted(root):
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self._unmount, root)

        await asyncio.gather(runtime(), self._network_down(cid), rootfs())

    async def _after_exit(self, cid: str) -> None:
        rec = self.store.get(cid)
        if rec is None:
            return
        if self.restarts is not None and await self.restarts.on_exit(rec):
            return
        if rec.config.get("auto_remove"):
            with contextlib.suppress(NotFound):
                await self.remove(rec.namespace, cid, force=True, volumes=True)

    # ---------------------------------------------------------- stop/kill/etc.
    async def stop(self, ns: str, ref: str, timeout: int | None = None) -> None:
        rec = self.resolve(ns, ref)
        if self.restarts is not None:
            self.restarts.cancel(rec.id)
        self.store.update(rec.id, manually_stopped=True)
        if rec.state == "restarting":
            self.store.update(rec.id, state="exited")
            self._changed(rec.id)
            return
        if rec.state not in ("running", "paused"):
            raise Conflict(f"container {rec.name} is not running")
        opts = CreateOptions.from_stored(rec.config)
        sig = opts.stop_signal or self._image_stop_signal(rec) or signal.SIGTERM
        t = timeout if timeout is not None else (opts.stop_timeout if opts.stop_timeout is not None else 10)
        if rec.state == "paused":
            with contextlib.suppress(PodkitError):
                await self.rt.resume(rec.id)
        with contextlib.suppress(PodkitError):
            await self._signal(rec, int(sig))
        if t < 0 or not await self._wait_state(rec.id, t):
            with contextlib.suppress(PodkitError):
                await self._signal(rec, signal.SIGKILL, all=True)
            if not await self._wait_state(rec.id, 30):
                raise Internal(f"container {rec.name} did not stop after SIGKILL")
        self.publish(ns, "container", "stop", rec.id, name=rec.name)

    async def _signal(self, rec: Record, sig: int, all: bool = False) -> None:
        """Signal the container's init directly through a pidfd (no runtime process to
        spawn); the runtime's kill where the pid namespace is shared (all=True must then
        reach every process of the cgroup) or the pid is not known."""
        own_pidns = "pid" not in (rec.config.get("namespaces") or {})
        if rec.pid and own_pidns and self.rt.conmon_alive(rec.id):
            try:
                fd = os.pidfd_open(rec.pid)
            except ProcessLookupError:
                return  # already gone; the watcher records the exit
            try:
                signal.pidfd_send_signal(fd, sig)
                return
            except ProcessLookupError:
                return
            finally:
                os.close(fd)
        await self.rt.kill(rec.id, sig, all=all)

    def _image_stop_signal(self, rec: Record) -> int | None:
        with contextlib.suppress(Exception):
            s = (self.images.get(rec.namespace, rec.image_id).config.get("config") or {}).get("StopSignal")
            if s:
                return parse_signal(s)
        return None

    async def _wait_state(self, cid: str, timeout: float, states: tuple[str, ...] = ACTIVE) -> bool:
        """Wait until the container's state is no longer one of ``states``."""
        deadline = time.monotonic() + timeout
        while True:
            rec = self.store.get(cid)
            if rec is None or rec.state not in states:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await self._next_change(cid, left)

    async def kill(self, ns: str, ref: str, sig: str | int = "KILL") -> None:
        rec = self.resolve(ns, ref)
        n = parse_signal(sig)
        if rec.state not in ("running", "paused"):
            # An attached client sees output from the moment `runc start` returns, a moment
            # before the record says running; a signal sent then must not be refused.
            st = None
            if rec.state == "created":
                with contextlib.suppress(PodkitError):
                    st = await self.rt.state(rec.id)
            if not st or st.get("status") not in ("running", "paused"):
                raise Conflict(f"container {rec.name} is not running")
            await self.rt.kill(rec.id, n, all=n == signal.SIGKILL)
            self.publish(ns, "container", "kill", rec.id, name=rec.name, signal=n)
            return
        # Unlike stop, a kill leaves the restart policy in force (as docker does).
        await self._signal(rec, n, all=n == signal.SIGKILL)
        if rec.state == "paused" and n == signal.SIGKILL:
            # a frozen process only dies once thawed
            with contextlib.suppress(PodkitError):
                await self.rt.resume(rec.id)
        self.publish(ns, "container", "kill", rec.id, name=rec.name, signal=n)

    async def restart(self, ns: str, ref: str, timeout: int | None = None) -> None:
        rec = self.resolve(ns, ref)
        if rec.state in ("running", "paused"):
            await self.stop(ns, rec.id, timeout)
        await self.start(ns, rec.id)
        self.publish(ns, "container", "restart", rec.id, name=rec.name)

    async def pause(self, ns: str, ref: str) -> None:
        rec = self.resolve(ns, ref)
        if rec.state != "running":
            raise Conflict(
                f"container {rec.name} is not running"
                if rec.state != "paused"
                else f"container {rec.name} is already paused"
            )
        await self.rt.pause(rec.id)
        self.store.update(rec.id, state="paused")
        self._changed(rec.id)
        self.publish(ns, "container", "pause", rec.id, name=rec.name)

    async def unpause(self, ns: str, ref: str) -> None:
        rec = self.resolve(ns, ref)
        if rec.state != "paused":
            raise Conflict(f"container {rec.name} is not paused")
        await self.rt.resume(rec.id)
        self.store.update(rec.id, state="running")
        self._changed(rec.id)
        self.publish(ns, "container", "unpause", rec.id, name=rec.name)

    async def set_network(self, ns: str, ref: str, network: str) -> None:
        """Change the network a container that is not running will start on (the Docker
        API's connect/disconnect before start, as docker-compose does): a user network's
        name, ``bridge`` or ``none``. Running containers keep theirs until they stop."""
        rec = self.resolve(ns, ref)
        async with self._lock(rec.id):
            rec = self.store.get(rec.id) or rec
            if rec.state in ACTIVE:
                raise Conflict(f"container {rec.name} is {rec.state}: its network cannot change now")
            if network not in ("bridge", "none"):
                if self.networks is None:
                    raise InvalidArgument("networking is not available in this daemon")
                self.networks.get(network)  # NotFound with a clear message
            cfg = dict(rec.config)
            cfg["network"] = network
            self.store.update(rec.id, config=cfg)

    async def rename(self, ns: str, ref: str, new: str) -> None:
        rec = self.resolve(ns, ref)
        new = validate_name(new)
        self.store.rename(rec.id, ns, new)
        self.publish(ns, "container", "rename", rec.id, name=new, oldName=rec.name)

    async def update(self, ns: str, ref: str, body: dict[str, Any]) -> None:
        """Change resource limits (live, through the runtime) and/or the restart policy."""
        from podkit.runtime import spec as S

        rec = self.resolve(ns, ref)
        # The first four are docker's; the cpu period/quota, cpusets and swap the CRI's.
        res_keys = ("memory", "cpus", "cpu_shares", "pids_limit", "memory_swap")
        res_keys += ("cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems")
        keys = (*res_keys, "restart")
        unknown = sorted(set(body) - set(keys))
        if unknown:
            raise InvalidArgument(f"cannot update {', '.join(unknown)}: only {', '.join(keys)}")
        o = CreateOptions.parse({"image": rec.image, **{k: body[k] for k in keys if k in body}})
        cfg = dict(rec.config)
        changed = {k: getattr(o, k) for k in res_keys if getattr(o, k) is not None}
        if "restart" in body:
            if rec.config.get("auto_remove") and o.restart["name"] != "no":
                raise InvalidArgument("a container run with --rm cannot have a restart policy")
            cfg["restart"] = o.restart
        if changed and rec.state in ("running", "paused"):
            res = S.Resources(**{k: v for k, v in changed.items() if k != "cpu_period"})
            if changed.get("cpu_period"):
                res.cpu_period = changed["cpu_period"]
            await self.rt.update(rec.id, res.to_oci())
        cfg.update(changed)
        self.store.update(rec.id, config=cfg)
        self.publish(ns, "container", "update", rec.id, name=rec.name)

    async def wait(self, ns: str, ref: str, condition: str = "not-running") -> int:
        rec = self.resolve(ns, ref)
        cid = rec.id
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidArgument(
                f"invalid wait condition {condition!r}: use not-running, next-exit or removed"
            )
        if condition == "next-exit":
            last = rec.finished_at
            while True:
                r = self.store.get(cid)
                if r is None:
                    return self._last_exit.get(cid, -1)
                if r.finished_at != last and r.state not in ACTIVE:
                    return r.exit_code if r.exit_code is not None else -1
                await self._next_change(cid)
        while True:
            r = self.store.get(cid)
            if r is None:
                return self._last_exit.get(cid, rec.exit_code if rec.exit_code is not None else 0)
            if condition == "not-running" and r.state not in ACTIVE and r.state != "created":
                return r.exit_code if r.exit_code is not None else 0
            if condition == "not-running" and r.state == "created" and r.error:
                return r.exit_code if r.exit_code is not None else 125
            await self._next_change(cid)

    async def remove(self, ns: str, ref: str, force: bool = False, volumes: bool = False) -> None:
        rec = self.resolve(ns, ref)
        await self.hooks.before_remove(ns, rec)  # may refuse (a pod's infra container)
        if rec.state in ACTIVE:
            if not force:
                raise Conflict(f"container {rec.name} is {rec.state}: stop it first or use force (rm -f)")
            if self.restarts is not None:
                self.restarts.cancel(rec.id)
            self.store.update(rec.id, manually_stopped=True)
            if rec.state == "restarting":  # nothing runs between two attempts
                async with self._lock(rec.id):
                    cur = self.store.get(rec.id)
                    if cur is not None and cur.state == "restarting":
                        self.store.update(rec.id, state="exited")
            else:
                if rec.state == "paused":
                    with contextlib.suppress(PodkitError):
                        await self.rt.resume(rec.id)
                with contextlib.suppress(PodkitError):
                    await self._signal(rec, signal.SIGKILL, all=True)
                await self._wait_state(rec.id, 30)
        async with self._lock(rec.id):
            rec = self.store.get(rec.id)
            if rec is None:
                return
            if rec.state in ACTIVE:  # the exit was not seen (no watcher): finish here
                await self._finish(rec)
            mark(rec.id, "remove")
            self.store.update(rec.id, state="removing")
            if self.restarts is not None:
                self.restarts.cancel(rec.id)
            await self._release(rec.id)

            async def snapshot() -> None:
                with contextlib.suppress(NotFound):
                    await asyncio.to_thread(self.snapshots.remove, self._snap_key(rec.id))

            # The snapshot and the logs side by side; the bundle (holding the rootfs mount
            # point) only once the snapshot is gone, as before.
            await asyncio.gather(
                snapshot(), asyncio.to_thread(shutil.rmtree, self.log_path(rec.id).parent, True)
            )
            await asyncio.to_thread(shutil.rmtree, self.bundle(rec.id), True)
            self.store.delete(rec.id)
            mark(rec.id, "removed")
            if rec.exit_code is not None:
                self._last_exit[rec.id] = rec.exit_code
        if volumes:
            for m in rec.config.get("mounts") or []:
                if m.get("type") == "volume" and m.get("source"):
                    with contextlib.suppress(PodkitError):
                        v = self.volumes.inspect(ns, m["source"])
                        if v["anonymous"]:
                            await asyncio.to_thread(self.volumes.remove, ns, m["source"])
        self._locks.pop(rec.id, None)
        self.publish(ns, "container", "destroy", rec.id, name=rec.name)
        self._changed(rec.id)
        await self.hooks.after_remove(ns, rec)

    async def prune(self, ns: str) -> list[str]:
        out = []
        for r in self.store.list(ns):
            if r.state in ("exited", "created", "dead"):
                with contextlib.suppress(PodkitError):
                    await self.remove(ns, r.id)
                    out.append(r.id)
        return out

    # --------------------------------------------------------------- inspection
    def view(self, r: Record, full: bool = False) -> dict[str, Any]:
        cfg = r.config
        d: dict[str, Any] = {
            "id": r.id,
            "name": r.name,
            "image": r.image,
            "image_id": r.image_id,
            "state": r.state,
            "status": _status(r),
            "created": r.created,
            "pid": r.pid,
            "exit_code": r.exit_code,
            "oom_killed": r.oom_killed,
            "error": r.error,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "restart_count": r.restart_count,
            "labels": r.labels,
            "pod_id": r.pod_id,
            "infra": r.infra,
            "command": (cfg.get("entrypoint") or []) + (cfg.get("cmd") or []),
            "ports": ((r.network or {}).get("ports") or []) if r.state in ("running", "paused") else [],
        }
        if full:
            d["config"] = cfg
            # Addresses and the netns belong to a running container only: once it has
            # ended they are released and may already be another container's.
            d["network"] = (
                r.network if r.state in ("running", "paused") else {"mode": (r.network or {}).get("mode")}
            )
            d["namespace"] = r.namespace
            d["restart_policy"] = cfg.get("restart")
            d["log_path"] = str(self.log_file(r))
            d["bundle"] = str(self.bundle(r.id))
            d["mounts"] = [
                {
                    **m,
                    "host_path": str(self.volumes.path(r.namespace, m["source"]))
                    if m.get("type") == "volume"
                    else m.get("source"),
                }
                for m in cfg.get("mounts") or []
            ]
            d["manually_stopped"] = r.manually_stopped
        return d

    async def inspect(self, ns: str, ref: str) -> dict[str, Any]:
        return self.view(self.resolve(ns, ref), full=True)

    async def list(
        self, ns: str, all: bool = False, filters: dict[str, list[str]] | None = None
    ) -> list[dict[str, Any]]:
        filters = filters or {}
        recs = self.store.list(ns)
        if not all and "status" not in filters and "exited" not in filters:
            recs = [r for r in recs if r.state in ("running", "paused", "restarting")]
        if not filters.get("infra") and "pod" not in filters and "id" not in filters and not all:
            recs = [r for r in recs if not r.infra]
        for key, values in filters.items():
            if key == "id":
                recs = [r for r in recs if any(r.id.startswith(v) for v in values)]
            elif key == "name":
                recs = [r for r in recs if any(v.lstrip("/") in r.name for v in values)]
            elif key == "status":
                recs = [r for r in recs if r.state in values]
            elif key == "exited":
                recs = [r for r in recs if r.state == "exited" and str(r.exit_code) in values]
            elif key == "label":

                def has(r: Record, x: str) -> bool:
                    k, eq, v = x.partition("=")
                    return k in r.labels and (not eq or r.labels[k] == v)

                recs = [r for r in recs if not [x for x in values if not has(r, x)]]
            elif key == "ancestor":
                recs = [
                    r
                    for r in recs
                    if any(
                        v in (r.image, r.image_id) or r.image.startswith(v) or _familiar_match(r.image, v)
                        for v in values
                    )
                ]
            elif key == "pod":
                recs = [r for r in recs if r.pod_id and any(r.pod_id.startswith(v) for v in values)]
            elif key == "infra":
                want = values[-1].lower() in ("1", "true")
                recs = [r for r in recs if r.infra == want]
            else:
                raise InvalidArgument(
                    f"invalid filter {key!r}: use id, name, label, status, exited, ancestor, pod or infra"
                )
        return [self.view(r) for r in recs]

    async def logs(
        self,
        ns: str,
        ref: str,
        *,
        follow: bool = False,
        since: Any = None,
        until: Any = None,
        tail: int | None = None,
        streams: tuple[str, ...] = ("stdout", "stderr"),
        wanted: Callable[[], bool] | None = None,
    ) -> AsyncIterator[Entry]:
        """Log entries; with ``follow``, until the container stops (or ``wanted()`` turns false:
        the client went away)."""
        rec = self.resolve(ns, ref)
        s, u = parse_since(since), parse_since(until)
        reader = LogReader(self.log_file(rec))
        if not follow:
            entries = await asyncio.to_thread(reader.read, since=s, until=u, tail=tail, streams=streams)

            async def gen() -> AsyncIterator[Entry]:
                for e in entries:
                    yield e

            return gen()

        def running() -> bool:
            if wanted is not None and not wanted():
                return False
            r = self.store.get(rec.id)
            return r is not None and r.state in ACTIVE

        return reader.follow(since=s, until=u, tail=tail, streams=streams, running=running)

    async def stats(self, ns: str, ref: str, prev: dict[str, Any] | None = None) -> dict[str, Any]:
        rec = self.resolve(ns, ref)
        out: dict[str, Any] = {
            "id": rec.id,
            "name": rec.name,
            "state": rec.state,
            "read": time.time(),
            "cpu_usage": 0,
            "memory_usage": 0,
            "memory_limit": 0,
            "pids": 0,
            "block_read": 0,
            "block_write": 0,
            "net_rx": 0,
            "net_tx": 0,
            "cpu_percent": 0.0,
            "memory_percent": 0.0,
        }
        if rec.state not in ("running", "paused"):
            return out
        st = await self.rt.stats(rec.id)
        out.update({k: v for k, v in st.items() if k in out or k.startswith("cpu") or k.startswith("mem")})
        if rec.pid:
            rx, tx = await asyncio.to_thread(_net_dev, rec.pid)
            out["net_rx"], out["net_tx"] = rx, tx
        if not out["memory_limit"]:
            out["memory_limit"] = _host_memory()
        if out["memory_limit"]:
            out["memory_percent"] = 100.0 * out["memory_usage"] / out["memory_limit"]
        if prev and prev.get("cpu_usage") is not None:
            dt = out["read"] - prev["read"]
            if dt > 0:
                out["cpu_percent"] = 100.0 * (out["cpu_usage"] - prev["cpu_usage"]) / 1e9 / dt
        return out

    async def top(self, ns: str, ref: str, ps_args: str | None = None) -> dict[str, Any]:
        rec = self.resolve(ns, ref)
        if rec.state not in ("running", "paused"):
            raise Conflict(f"container {rec.name} is not running")
        pids = set(await self.rt.ps(rec.id))
        import shlex

        try:
            args = shlex.split(ps_args) if ps_args else ["-ef"]
        except ValueError as e:
            raise InvalidArgument(f"invalid ps options {ps_args!r}: {e}") from None
        proc = await asyncio.create_subprocess_exec(
            "ps", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise InvalidArgument(f"ps {' '.join(args)} failed: {err.decode().strip()}")
        lines = out.decode(errors="replace").splitlines()
        if not lines:
            return {"titles": [], "processes": []}
        titles = lines[0].split()
        if "PID" not in titles:
            raise InvalidArgument("ps output has no PID column: add -o pid to ps_args")
        pi = titles.index("PID")
        procs = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > pi and fields[pi].isdigit() and int(fields[pi]) in pids:
                procs.append(fields)
        return {"titles": titles, "processes": procs}

    async def port(self, ns: str, ref: str) -> list[dict[str, Any]]:
        rec = self.resolve(ns, ref)
        if rec.state not in ("running", "paused"):
            return []
        return list((rec.network or {}).get("ports") or [])

    # ------------------------------------------------------------ attach/resize
    async def attach(self, ns: str, ref: str, stdin: bool = False, logs: bool = False) -> Any:
        rec = self.resolve(ns, ref)
        if rec.state not in ("created", "running", "paused"):
            raise Conflict(f"container {rec.name} is not running: start it first")
        if rec.state == "created":
            return PendingAttach(self, rec.id, stdin)
        backlog: list[tuple[int, bytes]] = []
        if logs:  # docker attach --logs: what was written so far, then live output
            entries = await asyncio.to_thread(LogReader(self.log_file(rec)).read)
            backlog = [(2 if e.stream == "stderr" else 1, e.data) for e in entries]
        sess = await self.rt.attach(rec.id)
        self.publish(ns, "container", "attach", rec.id, name=rec.name)
        return AttachAdapter(sess, stdin, backlog)

    async def resize(self, ns: str, ref: str, h: int, w: int) -> None:
        _check_size(h, w)
        rec = self.resolve(ns, ref)
        await self.rt.resize(rec.id, h, w)

    async def reopen_log(self, ns: str, ref: str) -> None:
        """conmon closes and reopens the log file (the kubelet renamed it to rotate)."""
        rec = self.resolve(ns, ref)
        if rec.state not in ("running", "paused"):
            raise Conflict(f"container {rec.name} is not running")
        await self.rt.reopen_log(rec.id)
        # conmon reads its control fifo on its own time; the kubelet expects the new
        # file once the call returns, so answer when conmon has made it (or give up).
        path = self.log_file(rec)
        deadline = time.monotonic() + 5.0
        while not path.exists() and time.monotonic() < deadline:
            if not self.rt.conmon_alive(rec.id):
                raise Conflict(f"container {rec.name} is not running")
            await asyncio.sleep(0.005)

    # ---------------------------------------------------------------- archives
    async def _root_for(self, rec: Record) -> tuple[Path, Callable[[], Any] | None]:
        """A path where the container's file system can be read: its live root if running."""
        if rec.state in ("running", "paused") and rec.pid:
            return Path(f"/proc/{rec.pid}/root"), None
        tmp = self.state_dir / "cp" / secrets.token_hex(6)
        tmp.mkdir(parents=True, exist_ok=True)
        mounts = self.snapshots.mounts(self._snap_key(rec.id))
        try:
            await asyncio.to_thread(self._mount_all, mounts, tmp)
        except BaseException:
            tmp.rmdir()
            raise

        def done() -> None:
            self._unmount(tmp)
            with contextlib.suppress(OSError):
                tmp.rmdir()

        return tmp, done

    async def archive_get(
        self, ns: str, ref: str, path: str
    ) -> tuple[dict[str, Any], AsyncGenerator[bytes, None]]:
        rec = self.resolve(ns, ref)
        archive.check_path(path)
        root, done = await self._root_for(rec)
        try:
            stat, chunks = await archive.tar_path(root, path)
        except BaseException:
            if done:
                await asyncio.to_thread(done)
            raise

        async def gen() -> AsyncGenerator[bytes, None]:
            try:
                async for c in chunks:
                    yield c
            finally:
                await chunks.aclose()  # its descriptors closed before the unmount
                if done:
                    await asyncio.to_thread(done)

        return stat, gen()

    async def archive_stat(self, ns: str, ref: str, path: str) -> dict[str, Any]:
        """What ``archive_get`` reports about ``path`` (name, size, mode...), without the tar."""
        rec = self.resolve(ns, ref)
        archive.check_path(path)
        root, done = await self._root_for(rec)
        try:
            return await archive.stat_path(root, path)
        finally:
            if done:
                await asyncio.to_thread(done)

    async def archive_put(self, ns: str, ref: str, path: str, stream: Any) -> None:
        rec = self.resolve(ns, ref)
        archive.check_path(path)
        root, done = await self._root_for(rec)
        try:
            await archive.untar_into(root, path, stream)
        finally:
            if done:
                await asyncio.to_thread(done)

    # ------------------------------------------------------------------ daemon
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
        if self.restarts is not None:
            self.restarts.close()
        for t in list(self._watchers.values()):
            t.cancel()
        for t in list(self._bg):
            t.cancel()


def _classify(message: str) -> PodkitError:
    m = message.lower()
    if "executable file not found" in m or ("no such file or directory" in m and "exec" in m):
        return CommandNotFound(message)
    if "permission denied" in m or "exec format error" in m or "is a directory" in m:
        return CannotExecute(message)
    return Internal(message)


def _status(r: Record) -> str:
    from podkit.containers.restart import human_duration

    now = time.time()
    if r.state == "running":
        return f"Up {human_duration(now - (r.started_at or now))}"
    if r.state == "paused":
        return f"Up {human_duration(now - (r.started_at or now))} (Paused)"
    if r.state == "restarting":
        return f"Restarting ({r.exit_code}) {human_duration(now - (r.finished_at or now))} ago"
    if r.state == "exited":
        return f"Exited ({r.exit_code}) {human_duration(now - (r.finished_at or now))} ago"
    if r.state == "created":
        return "Created"
    return r.state.capitalize()


def _familiar_match(image: str, v: str) -> bool:
    short = image.removeprefix("docker.io/library/").removeprefix("docker.io/")
    return short == v or short.split(":")[0] == v


def _check_size(h: int, w: int) -> None:
    if not (0 < h < 65536 and 0 < w < 65536):
        raise InvalidArgument(f"invalid terminal size {h}x{w}: rows and columns are 1..65535")


def _net_dev(pid: int) -> tuple[int, int]:
    rx = tx = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]:
            name, _, rest = line.partition(":")
            if name.strip() == "lo":
                continue
            f = rest.split()
            rx += int(f[0])
            tx += int(f[8])
    return rx, tx


def _host_memory() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0
