"""``PodService``: pod sandboxes and the life of the containers in them.

A pod is built from the bottom up, each step recorded so that a crash at any point
can be undone (see ``recover``):

1. the record, state ``creating``, in SQLite (name unique per namespace);
2. its state directory ``<state>/pods/<id>``: hostname, hosts, resolv.conf;
3. the shared namespaces: net pinned by the network layer (``<state>/netns/pod-<id>``)
   and wired through CNI (loopback, bridge, portmap for the published ports); ipc and
   uts pinned here under ``ns/`` (uts gets the pod's hostname);
4. ``/dev/shm``: a tmpfs under ``shm/``, bind-mounted into every container;
5. the pod cgroup (``--memory``/``--cpus`` of the whole pod), parent of the
   containers' cgroups;
6. the infra container (catatonit -P) joining net/ipc/uts by path, with a pid
   namespace of its own that the containers join when pid is shared;
7. state ``ready``.

Tear-down runs the other way and tolerates any step being already undone, so it
serves ``pod rm``, a failed create and recovery alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit.errors import Conflict, InvalidArgument, NotFound, PodkitError
from podkit.pods import files, infra, sandbox
from podkit.pods.model import (
    STATE_CREATING,
    STATE_READY,
    STATE_REMOVING,
    Pod,
    PodSpec,
)
from podkit.pods.store import PodStore

if TYPE_CHECKING:
    from podkit.containers.options import CreateOptions
    from podkit.containers.store import Record

log = logging.getLogger(__name__)

POD_LABEL = "io.podkit.pod"
POD_NAME_LABEL = "io.podkit.pod.name"
KUBE_LABEL = "io.podkit.kube"
NETNS_KIND = "pod"

# The pods whose lock the current task (and the tasks it gathers, which copy its
# context) holds: a member started from inside such a section must not have its
# before_start hook wait for the pod's lock again (asyncio locks do not nest).
_HELD: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "podkit_pods_held", default=frozenset()
)


class PodService:
    def __init__(
        self,
        db: Any,
        events: Any,
        *,
        root: Path,
        state: Path,
        containers: Any,
        networks: Any,
        images: Any,
        content: Any,
        runtime: Any = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.db = db
        self.events = events
        self.store = PodStore(db)
        self.root = Path(root)
        self.state = Path(state)
        self.containers = containers
        self.networks = networks
        self.images = images
        self.content = content
        self.runtime = runtime
        cfg = config or {}
        # The runtime's convention: pods at /podkit/pods/<pod>, containers beneath.
        self.cgroup_root = str(cfg.get("cgroup_parent", "podkit/pods")).strip("/")
        cg = getattr(runtime, "cgroups", None)
        if cg is None:
            from podkit.runtime.cgroups import CgroupManager

            cg = CgroupManager()
        self.cgroups = cg
        self._locks: dict[str, asyncio.Lock] = {}
        self._infra_lock = asyncio.Lock()

    # -- helpers ---------------------------------------------------------------------

    def _lock(self, pod_id: str) -> asyncio.Lock:
        return self._locks.setdefault(pod_id, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _locked(self, pod_id: str) -> AsyncIterator[None]:
        """Hold the pod's lock, noted in the task's context (see ``_HELD``)."""
        async with self._lock(pod_id):
            token = _HELD.set(_HELD.get() | {pod_id})
            try:
                yield
            finally:
                _HELD.reset(token)

    def parse_spec(self, body: dict[str, Any]) -> PodSpec:
        body = dict(body)
        from podkit.containers.options import parse_size

        for key, what in (("memory", "pod memory limit"), ("shm_size", "shm size")):
            if isinstance(body.get(key), str):
                body[key] = parse_size(body[key], what)
        if body.get("memory") is None:
            body.pop("memory", None)
        if body.get("cpus") is None:
            body.pop("cpus", None)
        else:
            try:
                body["cpus"] = float(body["cpus"])
            except (TypeError, ValueError):
                raise InvalidArgument(f"invalid cpus {body['cpus']!r}: want a number") from None
        if isinstance(body.get("share"), str):
            body["share"] = body["share"].split(",")
        return PodSpec.from_dict(body)

    def get(self, ns: str, ref: str) -> Pod:
        return self.store.get(ns, ref)

    def _dir(self, pod: Pod) -> Path:
        return Path(pod.state_dir)

    def _members(self, pod: Pod) -> list[Any]:
        """Container records of the pod, infra first."""
        from podkit.containers.store import Record

        # By the indexed pod_id column: `pod ls` reads this for every pod.
        rows = self.db.query(
            "SELECT * FROM containers WHERE pod_id=? AND namespace=?", (pod.id, pod.namespace)
        )
        recs = [Record.from_row(r) for r in rows]
        recs.sort(key=lambda r: (not r.infra, r.created))
        return recs

    def _publish(self, pod: Pod, action: str) -> None:
        self.events.publish(pod.namespace, "pod", action, pod.id, name=pod.name)

    # -- create ----------------------------------------------------------------------

    async def create(self, ns: str, spec: PodSpec) -> Pod:
        spec.validate()
        pod_id = secrets.token_hex(32)
        if not spec.name:
            spec.name = f"pod-{pod_id[:10]}"
        if not spec.hostname:
            spec.hostname = spec.name[:63].replace("_", "-").strip(".-") or "pod"
        if spec.network not in ("bridge", "host", "none", ""):
            for name in _networks(spec.network):
                if name != "bridge":
                    self.networks.get(name)  # NotFound now, before anything is made
        if "net" not in spec.share and spec.network not in ("bridge", ""):
            raise InvalidArgument("--network needs the pod to share its network namespace")
        pod = Pod(
            id=pod_id,
            namespace=ns,
            spec=spec,
            created=time.time(),
            state=STATE_CREATING,
            state_dir=str(self.state / "pods" / pod_id),
        )
        self.db.ensure_namespace(ns)
        self.store.insert(pod)  # AlreadyExists for a taken name, before anything else
        try:
            await self._build(pod)
        except BaseException as e:
            log.info("pod %s: create failed (%s), undoing", pod.id[:12], e)
            try:
                await asyncio.shield(self._teardown(pod))
            except Exception as te:
                # Keep the record, marked: the next start of podkitd finishes the job.
                log.warning("pod %s: undoing a failed create: %s", pod.id[:12], te)
                pod.state = STATE_REMOVING
                self.store.update(pod)
            else:
                self.store.delete(ns, pod.id)
            raise
        pod.state = STATE_READY
        self.store.update(pod)
        self._publish(pod, "create")
        return pod

    async def _build(self, pod: Pod) -> None:
        d = self._dir(pod)
        (d / "ns").mkdir(parents=True, exist_ok=True, mode=0o711)
        await self._sandbox(pod)
        await self._make_infra(pod)

    async def _make_infra(self, pod: Pod) -> None:
        async with self._infra_lock:  # two first pods at once build one image, not two
            ref = await asyncio.to_thread(infra.ensure_image, self.images, self.content, pod.namespace)
        pod.spec.infra_image = pod.spec.infra_image or ref
        opts = self._options(
            pod,
            {
                "image": pod.spec.infra_image,
                "name": f"{pod.name}-infra",
                "labels": {POD_LABEL: pod.id, POD_NAME_LABEL: pod.name},
            },
            infra_container=True,
        )
        rec = await self.containers.create(pod.namespace, opts)
        pod.infra_id = _id_of(rec)
        self.store.update(pod)

    async def _sandbox(self, pod: Pod) -> None:
        """Make (or re-make, after a reboot emptied the state dir) the pod's kernel pieces."""
        spec = pod.spec
        d = self._dir(pod)
        (d / "ns").mkdir(parents=True, exist_ok=True, mode=0o711)
        for name in ("hosts", "resolv.conf", "hostname"):
            (d / name).touch(mode=0o644)
        files.write_in_place(d / "hostname", spec.hostname + "\n")
        files.write_in_place(d / "resolv.conf", files.resolv_conf(spec.dns))
        pins = {
            k: d / "ns" / k
            for k in ("ipc", "uts")
            if k in spec.share and not sandbox.is_pinned(d / "ns" / k, k)
        }
        await asyncio.to_thread(sandbox.pin_namespaces, pins, spec.hostname)
        if "ipc" in spec.share:
            await asyncio.to_thread(sandbox.mount_shm, d / "shm", spec.shm_size)
        if not pod.cgroup_path or not self.cgroups.exists(pod.cgroup_path):
            await self._cgroup_create(pod)
        if "net" in spec.share and spec.network != "host":
            await self._network_up(pod)
        if spec.sysctls:
            paths = {"net": pod.netns_path, "ipc": str(d / "ns" / "ipc"), "uts": str(d / "ns" / "uts")}
            try:
                await asyncio.to_thread(sandbox.apply_sysctls, spec.sysctls, paths)
            except OSError as e:
                raise InvalidArgument(f"cannot set the pod's sysctls: {e.strerror or e}") from None
        self._write_hosts(pod)

    async def _network_up(self, pod: Pod) -> None:
        from podkit.network.netns import is_netns

        path = self.networks.netns_path(pod.id, NETNS_KIND)
        if is_netns(path) and pod.netns_path:
            return
        if not is_netns(path):
            # A reboot took the pin (and so the interfaces) away: let CNI forget the old ones.
            with contextlib.suppress(PodkitError):
                await self.networks.detach(pod.id)
            path = self.networks.create_netns(pod.id, NETNS_KIND)
        pod.netns_path = path
        self.store.update(pod)
        # Interfaces eth0, eth1... one per network; published ports go to the first.
        nets = (
            []
            if pod.spec.network == "none"
            else ["" if n == "bridge" else n for n in _networks(pod.spec.network)]
        )
        if nets:
            res = await self.networks.attach(
                pod.id, path, nets, pod.spec.ports, kind=NETNS_KIND, namespace=pod.namespace
            )
            pod.ips = [f"{r['ip']}/{r['prefix']}" for r in res if r.get("ip")]
            pod.gateway = next((r["gateway"] for r in res if r.get("gateway")), "")
            from podkit.network.ports import PortMapping

            pod.ports = [PortMapping.from_dict(p) for r in res for p in r.get("ports", [])]
        else:
            # none: only loopback.
            await self.networks.loopback_up(pod.id, path)
        self.store.update(pod)

    def _write_hosts(self, pod: Pod) -> None:
        names = [r.name for r in self._members(pod) if not r.infra] if self.containers else []
        text = files.hosts_file(pod.spec.hostname, pod.ips, [pod.name, *names], pod.spec.add_hosts)
        with contextlib.suppress(FileNotFoundError):
            files.write_in_place(self._dir(pod) / "hosts", text)

    def _options(self, pod: Pod, body: dict[str, Any], infra_container: bool = False) -> Any:
        """Container options for a member of the pod: the pod's namespaces, files, cgroup."""
        from podkit.containers.options import CreateOptions

        opts = body if isinstance(body, CreateOptions) else CreateOptions.parse(body)
        self.apply_pod(pod, opts, infra_container)
        return opts

    def apply_pod(self, pod: Pod, opts: Any, infra_container: bool = False) -> Any:
        """Fill the pods layer's hooks of a containers-layer ``CreateOptions``."""
        spec = pod.spec
        d = self._dir(pod)
        if opts.ports and "net" in spec.share:
            raise InvalidArgument(
                f"a container in pod {pod.name} cannot publish ports itself: publish them on the pod "
                "(podkit pod create -p)"
            )
        if opts.network not in ("bridge", "pod", "") and "net" in spec.share:
            raise InvalidArgument(
                f"a container in pod {pod.name} uses the pod's network; --network {opts.network} conflicts"
            )
        opts.pod_id = pod.id
        opts.infra = infra_container
        ns: dict[str, str] = {}
        if "net" in spec.share:
            opts.network = "pod"
            if spec.network == "host":
                ns["network"] = "host"
            else:
                # The pin's path, fixed for the pod's life (its network may be released
                # and wired again meanwhile).
                ns["network"] = self.networks.netns_path(pod.id, NETNS_KIND)
        if "ipc" in spec.share:
            ns["ipc"] = str(d / "ns" / "ipc")
            opts.shm_path = str(d / "shm")
        if "uts" in spec.share:
            ns["uts"] = str(d / "ns" / "uts")
            # Not set by runc in a joined uts namespace; kept for $HOSTNAME and /etc/hostname.
            opts.hostname = spec.hostname
        elif not opts.hostname:
            opts.hostname = spec.hostname
        if "pid" in spec.share and not infra_container:
            # Re-pinned to the infra's pid namespace each time the infra starts.
            ns["pid"] = str(d / "ns" / "pid")
        if spec.host_pid:
            ns["pid"] = "host"
        if spec.host_ipc:
            ns["ipc"] = "host"
            opts.shm_path = "/dev/shm"
        opts.namespaces = {**opts.namespaces, **ns}
        opts.hosts_file = str(d / "hosts")
        opts.resolv_file = str(d / "resolv.conf")
        if pod.cgroup_path:
            opts.cgroup_parent = pod.cgroup_path
        opts.labels = {**opts.labels, POD_LABEL: pod.id, POD_NAME_LABEL: pod.name}
        if spec.restart_policy and not infra_container and opts.restart.get("name") == "no":
            opts.restart = {"name": spec.restart_policy, "max_retries": 0}
        return opts

    # -- cgroups -----------------------------------------------------------------------

    async def _cgroup_create(self, pod: Pod) -> None:
        if not pod.cgroup_path:
            parent = pod.spec.cgroup_parent.strip("/") or self.cgroup_root
            # Recorded before it exists: a crash right after mkdir still finds it to remove.
            # (The cgroup tree is host-wide, shared with other daemons: never sweep it by
            # listing, only remove what our own records name.)
            pod.cgroup_path = f"/{parent}/{pod.id}"
            self.store.update(pod)
        from podkit.runtime.cgroups import ParentLimits

        limits = ParentLimits(memory=pod.spec.memory or None, cpus=pod.spec.cpus or None)
        await asyncio.to_thread(self.cgroups.create_parent, pod.cgroup_path, limits)

    async def _cgroup_remove(self, pod: Pod) -> None:
        if not pod.cgroup_path:
            return
        await asyncio.to_thread(self.cgroups.remove, pod.cgroup_path)

    # -- adding containers ------------------------------------------------------------

    # The containers layer's hooks (podkit.containers.hooks.ContainerHooks), registered
    # by the daemon with containers.add_hooks: `pod` in a create body (podkit run --pod)
    # puts the container into that pod; starting a member first brings the pod's sandbox
    # and infra up; the infra cannot be removed on its own; /etc/hosts follows the members.

    async def before_create(self, ns: str, opts: CreateOptions) -> CreateOptions:
        if not opts.pod:
            return opts
        pod = self.get(ns, opts.pod)
        if pod.state != STATE_READY:
            raise Conflict(f"pod {pod.name} is {pod.state}")
        opts.pod = None  # resolved: pod_id and the rest say it from now on
        return self.apply_pod(pod, opts)

    async def after_create(self, ns: str, record: Record) -> None:
        if record.pod_id:
            with contextlib.suppress(NotFound):
                self._write_hosts(self.get(ns, record.pod_id))  # its name resolves

    async def before_start(self, ns: str, record: Record) -> None:
        if not record.pod_id or record.infra:
            return
        # Started from a section holding the pod's lock (pod start): the infra is up.
        # Tasks spawned there keep the context after the lock is gone, hence locked().
        if record.pod_id in _HELD.get() and self._lock(record.pod_id).locked():
            return
        await self.ensure_running(ns, record.pod_id)

    async def before_remove(self, ns: str, record: Record) -> None:
        if not (record.infra and record.pod_id):
            return
        with contextlib.suppress(NotFound):
            pod = self.get(ns, record.pod_id)
            # A pod being created (undone) or removed takes its infra away itself.
            if pod.state == STATE_READY:
                raise Conflict(
                    f"container {record.name} is the infra container of pod {pod.name}: "
                    f"remove the pod instead (podkit pod rm {pod.name})"
                )

    async def after_remove(self, ns: str, record: Record) -> None:
        if not record.pod_id:
            return
        with contextlib.suppress(NotFound):
            pod = self.get(ns, record.pod_id)
            if pod.state == STATE_READY:  # a tear-down rewrites nothing
                self._write_hosts(pod)  # its name no longer resolves

    async def ensure_running(self, ns: str, pod_id: str) -> None:
        """Before a member container starts: the pod's sandbox and infra must be up."""
        async with self._locked(pod_id):
            pod = self.get(ns, pod_id)  # again, under the lock: a removal may have won
            if pod.state != STATE_READY:
                raise Conflict(f"pod {pod.name} is {pod.state}")
            await self._start_infra(pod)

    async def add_container(self, ns: str, ref: str, body: dict[str, Any], start: bool = False) -> Any:
        pod = self.get(ns, ref)
        opts = self._options(pod, body)
        rec = await self.containers.create(ns, opts)  # after_create rewrites /etc/hosts
        if start:
            await self.containers.start(ns, _id_of(rec))  # before_start brings the infra up
        return rec

    # -- start / stop -------------------------------------------------------------------

    async def _start_infra(self, pod: Pod) -> None:
        await self._sandbox(pod)
        infra_rec = self.containers.store.get(pod.infra_id) if pod.infra_id else None
        if infra_rec is None:
            # Gone (removed behind podkit's back, or a crash before it was recorded):
            # the sandbox's namespaces are pinned, so a new infra can simply hold them.
            log.warning("pod %s has no infra container: making a new one", pod.name)
            await self._make_infra(pod)
            infra_rec = self.containers.store.get(pod.infra_id)
        if infra_rec.state != "running":
            await self.containers.start(pod.namespace, pod.infra_id)
            infra_rec = self.containers.store.get(pod.infra_id)
            # The pod starts with its infra, also when `run --pod` brings it up (not
            # only `pod start`): inspect's "started" said 0 for such a running pod.
            pod.started = time.time()
            self.store.update(pod)
        pid_pin = self._dir(pod) / "ns" / "pid"
        if (
            "pid" in pod.spec.share
            and infra_rec is not None
            and infra_rec.pid
            and not (sandbox.is_pinned(pid_pin, "pid") and _same_ns(pid_pin, infra_rec.pid))
        ):
            await asyncio.to_thread(sandbox.pin_pid, pid_pin, infra_rec.pid)

    async def start(self, ns: str, ref: str) -> Pod:
        pod = self.get(ns, ref)
        async with self._locked(pod.id):
            pod = self.get(ns, pod.id)
            if pod.state != STATE_READY:
                raise Conflict(f"pod {pod.name} is {pod.state}")
            await self._start_infra(pod)
            members = [
                r for r in self._members(pod) if not r.infra and r.state in ("created", "exited", "dead")
            ]
            results = await asyncio.gather(
                *(self.containers.start(ns, r.id) for r in members), return_exceptions=True
            )
            pod.started = time.time()
            self.store.update(pod)
        errs = [(r, e) for r, e in zip(members, results, strict=True) if isinstance(e, BaseException)]
        self._publish(pod, "start")
        if errs:
            r, e = errs[0]
            msg = e.message if isinstance(e, PodkitError) else str(e)
            raise Conflict(f"pod {pod.name}: container {r.name} failed to start: {msg}")
        return pod

    async def stop(self, ns: str, ref: str, timeout: int | None = None, release_network: bool = False) -> Pod:
        """Stop the containers, then the infra. The sandbox stays, so a restart keeps the
        pod's IP; ``release_network`` (the CRI's StopPodSandbox) also gives the IP and
        ports back (CNI DEL, netns unpinned) — the next start wires a new one."""
        pod = self.get(ns, ref)
        async with self._locked(pod.id):
            pod = self.get(ns, pod.id)
            await self._stop_members(pod, timeout)
            if release_network and pod.netns_path:
                await self.networks.detach(pod.id)
                self.networks.remove_netns(pod.id, NETNS_KIND)
                pod.netns_path, pod.ips, pod.gateway, pod.ports = "", [], "", []
                self.store.update(pod)
        self._publish(pod, "stop")
        return pod

    async def _stop_members(self, pod: Pod, timeout: int | None) -> None:
        members = self._members(pod)
        live = ("running", "paused", "restarting")
        workers = [r for r in members if not r.infra and r.state in live]
        res = await asyncio.gather(
            *(self.containers.stop(pod.namespace, r.id, timeout=timeout) for r in workers),
            return_exceptions=True,
        )
        for r, e in zip(workers, res, strict=True):
            if isinstance(e, BaseException) and not isinstance(e, NotFound):
                log.warning("pod %s: stopping %s failed: %s", pod.name, r.name, e)
        for r in members:
            if r.infra and r.state in live:
                await self.containers.stop(pod.namespace, r.id, timeout=timeout)

    # -- remove -------------------------------------------------------------------------

    async def remove(self, ns: str, ref: str, force: bool = False, timeout: int | None = None) -> str:
        pod = self.get(ns, ref)
        async with self._locked(pod.id):
            pod = self.get(ns, pod.id)
            running = [
                r.name
                for r in self._members(pod)
                if not r.infra and r.state in ("running", "paused", "restarting")
            ]
            if running and not force:
                raise Conflict(
                    f"pod {pod.name} has running containers ({', '.join(running)}): stop it first "
                    "or remove it with -f"
                )
            pod.state = STATE_REMOVING
            self.store.update(pod)
            # -f is docker rm -f: SIGKILL at once unless a timeout is given.
            await self._stop_members(pod, timeout if timeout is not None else 0)
            await self._teardown(pod)
            self.store.delete(ns, pod.id)
        self._locks.pop(pod.id, None)
        self._publish(pod, "remove")
        return pod.id

    async def _teardown(self, pod: Pod) -> None:
        """Undo every piece of a pod; each step copes with its piece being gone already."""
        errors: list[str] = []
        members = self._members(pod)

        async def rm(group: list[Any]) -> None:
            res = await asyncio.gather(
                *(self.containers.remove(pod.namespace, r.id, force=True) for r in group),
                return_exceptions=True,
            )
            for r, e in zip(group, res, strict=True):
                if isinstance(e, BaseException) and not isinstance(e, NotFound):
                    errors.append(f"container {r.name}: {e}")  # keep tearing down the rest

        # Workers together, then the infra that holds their namespaces.
        await rm([r for r in members if not r.infra])
        await rm([r for r in members if r.infra])
        try:
            await self.networks.detach(pod.id)
        except Exception as e:
            errors.append(f"network: {e}")
        try:
            self.networks.remove_netns(pod.id, NETNS_KIND)
        except Exception as e:
            errors.append(f"netns: {e}")
        d = self._dir(pod)
        await asyncio.to_thread(sandbox.release, d)
        try:
            await self._cgroup_remove(pod)
        except Exception as e:
            errors.append(f"cgroup: {e}")
        await asyncio.to_thread(shutil.rmtree, d, True)
        vol = self.root / "pods" / pod.id
        if vol.exists():
            await asyncio.to_thread(shutil.rmtree, vol, True)
        if errors:
            log.warning("pod %s: tear-down incomplete: %s", pod.id[:12], "; ".join(errors))
            raise PodkitError(f"pod {pod.name}: could not remove everything: {'; '.join(errors)}")

    async def prune(self, ns: str) -> list[str]:
        out = []
        for pod in self.store.list(ns):
            if pod.state != STATE_READY:
                continue
            if any(r.state in ("running", "paused", "restarting") for r in self._members(pod)):
                continue
            with contextlib.suppress(NotFound, Conflict):
                out.append(await self.remove(ns, pod.id))
        return out

    # -- reads --------------------------------------------------------------------------

    def status(self, pod: Pod, members: list[Any]) -> str:
        if pod.state != STATE_READY:
            return pod.state.capitalize()
        states = [r.state for r in members]
        if not states:
            return "Created"
        running = sum(s in ("running", "paused", "restarting") for s in states)
        if running == len(states):
            return "Running"
        if running:
            return "Degraded"
        if all(s == "created" for s in states):
            return "Created"
        return "Exited"

    def to_dict(self, pod: Pod) -> dict[str, Any]:
        members = self._members(pod)
        d = pod.to_record()
        spec = d.pop("spec")
        d.update(spec)
        d["name"] = pod.name
        d["status"] = self.status(pod, members)
        d["ports"] = [p.to_dict() for p in (pod.ports or pod.spec.ports)]
        d["ports_text"] = [str(p) for p in (pod.ports or pod.spec.ports)]
        d["containers"] = [{"id": r.id, "name": r.name, "state": r.state, "infra": r.infra} for r in members]
        d["num_containers"] = len(members)
        sd = self._dir(pod)
        d["hosts_path"] = str(sd / "hosts")
        d["resolv_conf_path"] = str(sd / "resolv.conf")
        d["shm_path"] = str(sd / "shm") if "ipc" in pod.spec.share else ""
        infra_rec = next((r for r in members if r.infra), None)
        d["infra_pid"] = infra_rec.pid if infra_rec is not None and infra_rec.state == "running" else 0
        return d

    async def inspect(self, ns: str, ref: str) -> dict[str, Any]:
        return self.to_dict(self.get(ns, ref))

    async def list(self, ns: str, labels: list[str] | None = None) -> list[dict[str, Any]]:
        out = []
        for pod in self.store.list(ns):
            if labels and not all(_label_match(pod.spec.labels, sel) for sel in labels):
                continue
            out.append(self.to_dict(pod))
        return out

    # -- recovery -----------------------------------------------------------------------

    async def recover(self) -> None:
        """On daemon start: finish what a crash interrupted, and clean what has no pod."""
        for pod in self.store.list():
            if pod.state in (STATE_CREATING, STATE_REMOVING):
                log.info(
                    "pod %s (%s) was being %s when podkitd stopped: removing it",
                    pod.name,
                    pod.id[:12],
                    "created" if pod.state == STATE_CREATING else "removed",
                )
                try:
                    await self._teardown(pod)
                except PodkitError as e:
                    log.warning("recovery of pod %s: %s", pod.id[:12], e.message)
                self.store.delete(pod.namespace, pod.id)
        live = {p.id for p in self.store.list()}
        # Containers that claim a pod that no longer exists (crash between steps).
        for r in self.containers.store.list():
            if r.pod_id and r.pod_id not in live:
                with contextlib.suppress(Exception):
                    await self.containers.remove(r.namespace, r.id, force=True)
        await self.networks.cleanup_stale(live, kind=NETNS_KIND)
        pods_dir = self.state / "pods"
        if pods_dir.is_dir():
            for d in pods_dir.iterdir():
                if d.name not in live:
                    await asyncio.to_thread(sandbox.release, d)
                    await asyncio.to_thread(shutil.rmtree, d, True)

    def info(self, ns: str) -> dict[str, Any]:
        pods = self.store.list(ns)
        return {"pods": len(pods), "infra_image": infra.INFRA_REF}

    # -- logs, stats, top ---------------------------------------------------------------

    async def logs(
        self, ns: str, ref: str, follow: bool = False, tail: int | None = None, timestamps: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Every container's log lines, tagged with its name: merged in time order, then
        (with ``follow``) as they come."""
        pod = self.get(ns, ref)
        members = [r for r in self._members(pod) if not r.infra]
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=1024)

        def item(r: Any, e: Any) -> dict[str, Any]:
            data = e.data.decode("utf-8", "replace") if isinstance(e.data, bytes) else str(e.data)
            out = {"container": r.name, "stream": e.stream, "line": data}
            if timestamps:
                out["time"] = e.ts
            return out

        if not follow:
            # Everything is on disk already: one sorted merge, not arrival order.
            lines: list[tuple[float, int, dict[str, Any]]] = []
            for r in members:
                with contextlib.suppress(NotFound):
                    async for e in await self.containers.logs(ns, r.id, tail=tail):
                        lines.append((e.time, len(lines), item(r, e)))
            lines.sort(key=lambda x: (x[0], x[1]))

            async def merged() -> AsyncIterator[dict[str, Any]]:
                for _, _, it in lines:
                    yield it

            return merged()

        async def pump(r: Any) -> None:
            try:
                it = await self.containers.logs(ns, r.id, follow=True, tail=tail)
                async for e in it:
                    await queue.put(item(r, e))
            except NotFound:
                pass  # removed while we read
            finally:
                await queue.put(None)

        async def gen() -> AsyncIterator[dict[str, Any]]:
            tasks = [asyncio.create_task(pump(r)) for r in members]
            left = len(tasks)
            try:
                while left:
                    item = await queue.get()
                    if item is None:
                        left -= 1
                        continue
                    yield item
            finally:
                for t in tasks:
                    t.cancel()

        return gen()

    async def stats(self, ns: str, ref: str, stream: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Samples of the pod's usage (one, or one a second); NotFound before the first."""
        pod = self.get(ns, ref)

        async def gen() -> AsyncIterator[dict[str, Any]]:
            prev: dict[str, tuple[float, float]] = {}
            while True:
                yield await asyncio.to_thread(self._sample, pod, prev)
                if not stream:
                    return
                await asyncio.sleep(1.0)
                try:
                    self.store.get(ns, pod.id)
                except NotFound:
                    return  # removed meanwhile: the stream ends

        return gen()

    def _sample(self, pod: Pod, prev: dict[str, tuple[float, float]]) -> dict[str, Any]:
        from podkit.pods import usage

        now = time.monotonic()

        def flat(path: str) -> dict[str, Any]:
            # A container may end (its cgroup go, its pid be reused) while we read.
            if not path.strip("/"):
                return {}
            try:
                if not self.cgroups.exists(path):
                    return {}
                st = self.cgroups.stats(path)
            except (OSError, PodkitError):
                return {}
            return {
                "memory_usage": st["memory"]["usage"],
                "memory_limit": st["memory"]["limit"],
                "cpu_usage_ns": st["cpu"]["usage_ns"],
                "pids": st["pids"]["current"],
            }

        pod_stats = flat(pod.cgroup_path)
        out: dict[str, Any] = {"id": pod.id, "name": pod.name, "time": time.time(), **pod_stats}
        out["cpu_percent"] = usage.cpu_percent(prev, pod.id, now, pod_stats.get("cpu_usage_ns"))
        conts = []
        for r in self._members(pod):
            st = flat(usage.container_cgroup(r)) if r.state == "running" else {}
            conts.append(
                {
                    "container": r.name,
                    "id": r.id,
                    "infra": r.infra,
                    "state": r.state,
                    **st,
                    "cpu_percent": usage.cpu_percent(prev, r.id, now, st.get("cpu_usage_ns")),
                }
            )
        out["containers"] = conts
        return out

    async def top(self, ns: str, ref: str, ps_args: str = "") -> dict[str, Any]:
        from podkit.pods import usage

        pod = self.get(ns, ref)
        members = [r for r in self._members(pod) if r.state == "running"]
        if not members:
            raise Conflict(f"pod {pod.name} is not running")
        return await usage.top(pod.cgroup_path, members, ps_args)

    # -- kube -------------------------------------------------------------------------

    async def play_kube(self, ns: str, text: str, start: bool = True) -> dict[str, Any]:
        from podkit.pods import kube

        plans = await asyncio.to_thread(kube.parse, text)
        for p in plans:  # all-or-nothing on names: fail before creating anything
            with contextlib.suppress(NotFound):
                self.get(ns, p.spec.name)
                raise Conflict(
                    f"pod {p.spec.name!r} already exists: remove it first (podkit play kube --down FILE)"
                )
        out: list[dict[str, Any]] = []
        warnings: list[str] = []
        made: list[str] = []
        try:
            for plan in plans:
                warnings.extend(plan.warnings)
                out.append(await self._play_one(ns, plan, start, made))
        except BaseException:
            for pid in made:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.remove(ns, pid, force=True, timeout=0))
            raise
        return {"pods": out, "warnings": warnings}

    async def _play_one(self, ns: str, plan: Any, start: bool, made: list[str]) -> dict[str, Any]:
        spec = plan.spec
        spec.labels = {**spec.labels, KUBE_LABEL: plan.kind.lower()}
        pod = await self.create(ns, spec)
        made.append(pod.id)
        vol_dir = self.root / "pods" / pod.id / "volumes"
        for name in plan.empty_dirs:
            (vol_dir / name).mkdir(parents=True, exist_ok=True, mode=0o777)
            os.chmod(vol_dir / name, 0o777)  # any runAsUser may write, as in Kubernetes
            pod.volumes[name] = str(vol_dir / name)
        self.store.update(pod)
        for kc in plan.containers:
            body: dict[str, Any] = {
                "image": kc.image,
                "name": f"{pod.name}-{kc.name}",
                "env": kc.env,
                "labels": {"io.podkit.kube.container": kc.name},
                "read_only": kc.read_only,
                "privileged": kc.privileged,
                "cap_add": kc.cap_add,
                "cap_drop": kc.cap_drop,
                "tty": kc.tty,
                "open_stdin": kc.stdin,
                "mounts": [],
            }
            if kc.entrypoint is not None:
                body["entrypoint"] = kc.entrypoint
                body["cmd"] = kc.cmd or []
            elif kc.cmd is not None:
                body["cmd"] = kc.cmd
            if kc.workdir:
                body["workdir"] = kc.workdir
            if kc.user:
                body["user"] = kc.user
            if kc.memory:
                body["memory"] = kc.memory
            if kc.cpus:
                body["cpus"] = kc.cpus
            if kc.no_new_privileges is not None:
                body["no_new_privileges"] = kc.no_new_privileges
            for m in kc.mounts:
                src = pod.volumes[m.volume] if m.empty_dir else m.source
                if m.create == "dir":
                    os.makedirs(src, exist_ok=True)
                elif m.create == "file" and not os.path.exists(src):
                    os.makedirs(os.path.dirname(src), exist_ok=True)
                    with open(src, "a"):
                        pass
                body["mounts"].append(
                    {"type": "bind", "source": src, "target": m.target, "readonly": m.readonly}
                )
            await self.add_container(ns, pod.id, body)
        if start:
            await self.start(ns, pod.id)
        return self.to_dict(self.get(ns, pod.id))

    async def down_kube(self, ns: str, text: str) -> dict[str, Any]:
        from podkit.pods import kube

        plans = await asyncio.to_thread(kube.parse, text)
        removed, missing = [], []
        for plan in plans:
            try:
                pod = self.get(ns, plan.spec.name)
            except NotFound:
                missing.append(plan.spec.name)
                continue
            await self.remove(ns, pod.id, force=True, timeout=0)
            removed.append(pod.name)
        return {"removed": removed, "missing": missing}


def _networks(text: str) -> list[str]:
    """``--network a,b``: the pod's networks, in order (bridge = the default one)."""
    return list(dict.fromkeys(n.strip() for n in (text or "bridge").split(",") if n.strip())) or ["bridge"]


def _id_of(rec: Any) -> str:
    if isinstance(rec, str):
        return rec
    if isinstance(rec, dict):
        return rec["id"]
    return rec.id


def _same_ns(pin: Path, pid: int) -> bool:
    try:
        return os.stat(pin).st_ino == os.stat(f"/proc/{pid}/ns/pid").st_ino
    except OSError:
        return False


def _label_match(labels: dict[str, str], sel: str) -> bool:
    k, eq, v = sel.partition("=")
    return k in labels and (not eq or labels[k] == v)
