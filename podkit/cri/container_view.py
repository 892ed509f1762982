"""A podkit container as the CRI's Container and ContainerStatus."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import (
    CRI,
    L_IMAGE_DIGEST,
    L_IMAGE_REF,
    L_RESOURCES,
    container_metadata,
    container_state,
    ns_time,
    user_labels,
)
from podkit.errors import PodkitError

if TYPE_CHECKING:
    from podkit.containers.store import Record

_PROPAGATION = {
    "rprivate": pb.PROPAGATION_PRIVATE,
    "rslave": pb.PROPAGATION_HOST_TO_CONTAINER,
    "rshared": pb.PROPAGATION_BIDIRECTIONAL,
}


def image_spec(rec: Record) -> pb.ImageSpec:
    return pb.ImageSpec(image=rec.labels.get(L_IMAGE_REF) or rec.image)


def image_ref(cri: CRI, rec: Record) -> str:
    """What containerd reports as image_ref: the repo digest when known, else the id
    (found at create time: the image may have lost its names since)."""
    known = rec.labels.get(L_IMAGE_DIGEST)
    if known:
        return known
    try:
        img = cri.images.get(cri.ns, rec.image_id or rec.image)
    except PodkitError:  # gone or renamed since create: the id is all we know
        return rec.image_id
    from podkit.cri.image_view import repo_digests

    digests = repo_digests(cri, img)
    return digests[0] if digests else img.id


def summary(cri: CRI, rec: Record) -> pb.Container:
    return pb.Container(
        id=rec.id,
        pod_sandbox_id=rec.pod_id or "",
        metadata=container_metadata(rec),
        image=image_spec(rec),
        image_ref=image_ref(cri, rec),
        state=container_state(rec),  # type: ignore[arg-type]
        created_at=ns_time(rec.created),
        labels=user_labels(rec.labels),
        annotations=rec.config.get("annotations") or {},
        image_id=rec.image_id,
    )


def reason(rec: Record) -> tuple[str, str]:
    state = container_state(rec)
    if state == pb.CONTAINER_EXITED:
        if rec.error and rec.started_at is None:
            return "StartError", rec.error
        if rec.oom_killed:
            return "OOMKilled", rec.error
        return ("Completed" if rec.exit_code == 0 else "Error"), rec.error
    return "", ""


def resources(rec: Record) -> pb.ContainerResources | None:
    raw = rec.labels.get(L_RESOURCES)
    cfg = rec.config
    r = pb.LinuxContainerResources(
        cpu_period=int(cfg.get("cpu_period") or 0),
        cpu_quota=int(cfg.get("cpu_quota") or 0),
        cpu_shares=int(cfg.get("cpu_shares") or 0),
        memory_limit_in_bytes=int(cfg.get("memory") or 0),
        memory_swap_limit_in_bytes=int(cfg.get("memory_swap") or 0)
        if (cfg.get("memory_swap") or 0) > 0
        else 0,
        oom_score_adj=int(cfg.get("oom_score_adj") or 0),
        cpuset_cpus=cfg.get("cpuset_cpus") or "",
        cpuset_mems=cfg.get("cpuset_mems") or "",
    )
    if raw is None and r == pb.LinuxContainerResources():
        return None
    return pb.ContainerResources(linux=r)


def status(cri: CRI, rec: Record) -> pb.ContainerStatus:
    why, msg = reason(rec)
    cfg = rec.config
    mounts = []
    for m in cfg.get("mounts") or []:
        if m.get("type") != "bind":
            continue
        prop = next(
            (_PROPAGATION[o] for o in m.get("options") or [] if o in _PROPAGATION), pb.PROPAGATION_PRIVATE
        )
        mounts.append(
            pb.Mount(
                container_path=m["target"],
                host_path=m.get("source", ""),
                readonly=bool(m.get("readonly")),
                propagation=prop,
            )
        )
    state = container_state(rec)
    st = pb.ContainerStatus(
        id=rec.id,
        metadata=container_metadata(rec),
        state=state,  # type: ignore[arg-type]
        created_at=ns_time(rec.created),
        started_at=ns_time(rec.started_at),
        finished_at=ns_time(rec.finished_at) if state == pb.CONTAINER_EXITED else 0,
        exit_code=(rec.exit_code or 0) if state == pb.CONTAINER_EXITED else 0,
        image=image_spec(rec),
        image_ref=image_ref(cri, rec),
        reason=why,
        message=msg,
        labels=user_labels(rec.labels),
        annotations=cfg.get("annotations") or {},
        mounts=mounts,
        log_path=cfg.get("log_path") or "",
        image_id=rec.image_id,
    )
    res = resources(rec)
    if res is not None:
        st.resources.CopyFrom(res)
    return st


def verbose_info(cri: CRI, rec: Record) -> dict[str, str]:
    view = cri.containers.view(rec, full=True)
    spec = None
    try:
        spec = json.loads((cri.containers.bundle(rec.id) / "config.json").read_text())
    except (OSError, ValueError):
        pass
    info = {
        "sandboxID": rec.pod_id,
        "pid": rec.pid if rec.state in ("running", "paused") else 0,
        "podkitName": rec.name,
        "state": rec.state,
        "logPath": view.get("log_path"),
        "bundle": view.get("bundle"),
        "config": rec.config,
        "runtimeSpec": spec,
    }
    return {"info": json.dumps(info, default=str)}
