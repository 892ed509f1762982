"""Cgroup usage as the CRI's ContainerStats / PodSandboxStats (shared by four RPCs).

CPU usage in nano-cores needs two samples: the previous one of each id is kept here
(containerd does the same), so the first answer has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from cri_api.v1 import api_pb2 as pb

from podkit.containers.process_root import ProcessRoot, read_in_process
from podkit.cri.context import CRI, container_metadata, pod_metadata, user_labels
from podkit.errors import NotFound, PodkitError

if TYPE_CHECKING:
    from podkit.containers.store import Record
    from podkit.pods.model import Pod

_prev: dict[str, tuple[int, int]] = {}  # id -> (time ns, cpu ns)


def _cg_stats(cri: CRI, path: str | None) -> dict[str, Any] | None:
    if not path or not path.strip("/"):
        return None
    cg = cri.services.runtime.cgroups
    try:
        if not cg.exists(path):
            return None
        st: dict[str, Any] = cg.stats(path)
        return st
    except (OSError, PodkitError):
        return None


def _u64(v: Any) -> pb.UInt64Value:
    return pb.UInt64Value(value=max(0, int(v or 0)))


def _cpu(key: str, now: int, st: dict[str, Any] | None) -> pb.CpuUsage:
    cpu = pb.CpuUsage(timestamp=now)
    if st is None:
        return cpu
    used = int(st["cpu"]["usage_ns"] or 0)
    cpu.usage_core_nano_seconds.CopyFrom(_u64(used))
    prev = _prev.get(key)
    if prev is not None and now > prev[0]:
        cpu.usage_nano_cores.CopyFrom(_u64((used - prev[1]) * 1_000_000_000 // (now - prev[0])))
    _prev[key] = (now, used)
    return cpu


def _memory(now: int, st: dict[str, Any] | None) -> pb.MemoryUsage:
    m = pb.MemoryUsage(timestamp=now)
    if st is None:
        return m
    mem = st["memory"]
    m.working_set_bytes.CopyFrom(_u64(mem.get("working_set")))
    m.usage_bytes.CopyFrom(_u64(mem.get("usage")))
    m.rss_bytes.CopyFrom(_u64(mem.get("rss")))
    limit = mem.get("limit") or 0
    if 0 < limit < 1 << 62 and mem.get("working_set") is not None:
        m.available_bytes.CopyFrom(_u64(limit - mem["working_set"]))
    return m


async def container_stats(cri: CRI, rec: Record) -> pb.ContainerStats:
    now = time.time_ns()
    live = rec.state in ("running", "paused")
    st = await asyncio.to_thread(_cg_stats, cri, cri.services.runtime.cgroup_path(rec.id)) if live else None
    out = pb.ContainerStats(
        attributes=pb.ContainerAttributes(
            id=rec.id,
            metadata=container_metadata(rec),
            labels=user_labels(rec.labels),
            annotations=rec.config.get("annotations") or {},
        ),
        cpu=_cpu(rec.id, now, st),
        memory=_memory(now, st),
    )
    layer = pb.FilesystemUsage(
        timestamp=now, fs_id=pb.FilesystemIdentifier(mountpoint=str(cri.services.config.root))
    )
    with contextlib.suppress(PodkitError, OSError):
        u = await asyncio.to_thread(cri.services.snapshots.usage, f"ctr-{rec.id}")
        layer.used_bytes.CopyFrom(_u64(u.size))
        layer.inodes_used.CopyFrom(_u64(u.inodes))
    out.writable_layer.CopyFrom(layer)
    return out


async def sandbox_stats(cri: CRI, pod: Pod) -> pb.PodSandboxStats:
    now = time.time_ns()
    st = await asyncio.to_thread(_cg_stats, cri, pod.cgroup_path)
    members = [r for r in cri.cri_containers() if r.pod_id == pod.id]
    linux = pb.LinuxPodSandboxStats(
        cpu=_cpu(pod.id, now, st),
        memory=_memory(now, st),
        containers=[await container_stats(cri, r) for r in members if r.state in ("running", "paused")],
    )
    if st is not None:
        linux.process.CopyFrom(pb.ProcessUsage(timestamp=now, process_count=_u64(st["pids"]["current"])))
    infra = cri.containers.store.get(pod.infra_id) if pod.infra_id else None
    if infra is not None and infra.pid and pod.netns_path:
        rx_tx = await asyncio.to_thread(_net_dev, cri.containers.rt.process(infra.id, infra.pid))
        ifaces = [
            pb.NetworkInterfaceUsage(
                name=name, rx_bytes=_u64(rx), rx_errors=_u64(rxe), tx_bytes=_u64(tx), tx_errors=_u64(txe)
            )
            for name, (rx, rxe, tx, txe) in rx_tx.items()
            if name != "lo"
        ]
        net = pb.NetworkUsage(timestamp=now, interfaces=ifaces)
        if ifaces:
            net.default_interface.CopyFrom(next((i for i in ifaces if i.name == "eth0"), ifaces[0]))
        linux.network.CopyFrom(net)
    return pb.PodSandboxStats(
        attributes=pb.PodSandboxAttributes(
            id=pod.id,
            metadata=pod_metadata(pod),
            labels=user_labels(pod.spec.labels),
            annotations=pod.spec.annotations,
        ),
        linux=linux,
    )


def _net_dev(infra: ProcessRoot) -> dict[str, tuple[int, int, int, int]]:
    """Per interface of the sandbox (through its infra's checked process: a reused pid's
    counters are not the sandbox's): rx bytes, rx errors, tx bytes, tx errors."""
    out: dict[str, tuple[int, int, int, int]] = {}
    try:
        lines = read_in_process(infra, "net/dev").decode("ascii", "replace").splitlines()[2:]
    except NotFound:
        return out
    for line in lines:
        name, _, rest = line.partition(":")
        v = rest.split()
        if len(v) >= 11:
            out[name.strip()] = (int(v[0]), int(v[2]), int(v[8]), int(v[10]))
    return out


def forget(key: str) -> None:
    _prev.pop(key, None)
