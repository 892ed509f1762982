"""The cgroup and namespace fields of docker's ``HostConfig``, from a container's
stored config: one mapping for ``podkit inspect`` (client side) and the Docker API's
inspect (podkitd). Standard library only, so the CLI's import path stays cheap."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


def device_list(entries: object, field: str) -> list[dict[str, Any]]:
    """``PATH:VALUE`` entries as docker's ``[{Path, Rate}]`` (or ``Weight``)."""
    out: list[dict[str, Any]] = []
    for e in entries if isinstance(entries, list) else []:
        path, _, value = str(e).rpartition(":")
        out.append({"Path": path, field: int(value)})
    return out


def resource_fields(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The limits set by run's resource flags, with docker's names and zero values."""
    return {
        "CgroupParent": cfg.get("cgroup_parent") or "",
        "CpuPeriod": int(cfg.get("cpu_period") or 0),
        "CpuQuota": int(cfg.get("cpu_quota") or 0),
        "CpusetCpus": cfg.get("cpuset_cpus") or "",
        "CpusetMems": cfg.get("cpuset_mems") or "",
        "MemoryReservation": int(cfg.get("memory_reservation") or 0),
        "MemorySwap": int(cfg.get("memory_swap") or 0),
        "MemorySwappiness": cfg.get("memory_swappiness"),
        "OomKillDisable": bool(cfg.get("oom_kill_disable")),
        "OomScoreAdj": int(cfg.get("oom_score_adj") or 0),
        "BlkioWeight": int(cfg.get("blkio_weight") or 0),
        "BlkioWeightDevice": device_list(cfg.get("blkio_weight_device"), "Weight"),
        "BlkioDeviceReadBps": device_list(cfg.get("device_read_bps"), "Rate"),
        "BlkioDeviceWriteBps": device_list(cfg.get("device_write_bps"), "Rate"),
        "BlkioDeviceReadIOps": device_list(cfg.get("device_read_iops"), "Rate"),
        "BlkioDeviceWriteIOps": device_list(cfg.get("device_write_iops"), "Rate"),
        "DeviceCgroupRules": cfg.get("device_cgroup_rules") or None,
        "Annotations": cfg.get("annotations") or None,
    }
