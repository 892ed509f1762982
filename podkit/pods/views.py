"""Reads of pods: status from the members' states, the inspect/list shape, info."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from podkit.pods import infra
from podkit.pods.context import LIVE_STATES, PodContext, pod_dir
from podkit.pods.model import STATE_READY, Pod

if TYPE_CHECKING:
    from podkit.containers.store import Record


def status(pod: Pod, members: list[Record]) -> str:
    if pod.state != STATE_READY:
        return pod.state.capitalize()
    states = [r.state for r in members]
    if not states:
        return "Created"
    running = sum(s in LIVE_STATES for s in states)
    if running == len(states):
        return "Running"
    if running:
        return "Degraded"
    if all(s == "created" for s in states):
        return "Created"
    return "Exited"


def to_dict(ctx: PodContext, pod: Pod) -> dict[str, Any]:
    members = ctx.members(pod)
    d = pod.to_record()
    spec = d.pop("spec")
    d.update(spec)
    d["name"] = pod.name
    d["status"] = status(pod, members)
    d["ports"] = [p.to_dict() for p in (pod.ports or pod.spec.ports)]
    d["ports_text"] = [str(p) for p in (pod.ports or pod.spec.ports)]
    d["containers"] = [{"id": r.id, "name": r.name, "state": r.state, "infra": r.infra} for r in members]
    d["num_containers"] = len(members)
    sd = pod_dir(pod)
    d["hosts_path"] = str(sd / "hosts")
    d["resolv_conf_path"] = str(sd / "resolv.conf")
    d["shm_path"] = str(sd / "shm") if "ipc" in pod.spec.share else ""
    infra_rec = next((r for r in members if r.infra), None)
    d["infra_pid"] = infra_rec.pid if infra_rec is not None and infra_rec.state == "running" else 0
    return d


def list_pods(ctx: PodContext, ns: str, labels: list[str] | None = None) -> list[dict[str, Any]]:
    return [
        to_dict(ctx, pod)
        for pod in ctx.store.list(ns)
        if not labels or all(_label_match(pod.spec.labels, sel) for sel in labels)
    ]


def info(ctx: PodContext, ns: str) -> dict[str, Any]:
    return {"pods": len(ctx.store.list(ns)), "infra_image": infra.INFRA_REF}


def _label_match(labels: dict[str, str], sel: str) -> bool:
    k, eq, v = sel.partition("=")
    return k in labels and (not eq or labels[k] == v)
