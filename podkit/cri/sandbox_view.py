"""A podkit pod as the CRI's PodSandbox and PodSandboxStatus (shared by several RPCs)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI, ns_time, nsopts, pod_metadata, pod_ready, user_labels

if TYPE_CHECKING:
    from podkit.pods.model import Pod


def state(cri: CRI, pod: Pod) -> int:
    return int(pb.SANDBOX_READY if pod_ready(cri, pod) else pb.SANDBOX_NOTREADY)


def summary(cri: CRI, pod: Pod) -> pb.PodSandbox:
    return pb.PodSandbox(
        id=pod.id,
        metadata=pod_metadata(pod),
        state=state(cri, pod),  # type: ignore[arg-type]
        created_at=ns_time(pod.created),
        labels=user_labels(pod.spec.labels),
        annotations=pod.spec.annotations,
        runtime_handler="",
    )


def status(cri: CRI, pod: Pod) -> pb.PodSandboxStatus:
    ips = [ip.split("/")[0] for ip in pod.ips]
    opts = nsopts(pod)
    return pb.PodSandboxStatus(
        id=pod.id,
        metadata=pod_metadata(pod),
        state=state(cri, pod),  # type: ignore[arg-type]
        created_at=ns_time(pod.created),
        network=pb.PodSandboxNetworkStatus(
            ip=ips[0] if ips else "", additional_ips=[pb.PodIP(ip=ip) for ip in ips[1:]]
        ),
        linux=pb.LinuxPodSandboxStatus(
            namespaces=pb.Namespace(
                options=pb.NamespaceOption(
                    network=int(opts.get("network", 0)),  # type: ignore[arg-type]
                    pid=int(opts.get("pid", 0)),  # type: ignore[arg-type]
                    ipc=int(opts.get("ipc", 0)),  # type: ignore[arg-type]
                )
            )
        ),
        labels=user_labels(pod.spec.labels),
        annotations=pod.spec.annotations,
        runtime_handler="",
    )


def verbose_info(cri: CRI, pod: Pod) -> dict[str, str]:
    d = cri.pods.to_dict(pod)
    infra = cri.containers.store.get(pod.infra_id) if pod.infra_id else None
    info = {
        "sandboxID": pod.id,
        "podkitPod": pod.name,
        "pid": d.get("infra_pid", 0),
        "processStatus": infra.state if infra is not None else "deleted",
        "netNamespacePath": pod.netns_path,
        "netNamespaceClosed": not pod.netns_path and pod.spec.network != "host",
        "image": pod.spec.infra_image,
        "cgroupPath": pod.cgroup_path,
        "logDirectory": pod.spec.log_directory,
        "hostname": pod.spec.hostname,
        "ports": d.get("ports_text", []),
        "containers": d.get("containers", []),
    }
    return {"info": json.dumps(info)}
