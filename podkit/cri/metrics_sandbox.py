"""ListPodSandboxMetrics: per-container cpu and memory metrics of every ready sandbox,
from the same cgroup samples as the stats RPCs."""

from __future__ import annotations

import time

from cri_api.v1 import api_pb2 as pb

from podkit.cri import stats_view
from podkit.cri.context import CRI, pod_ready


def _metric(name: str, now: int, kind: pb.MetricType.ValueType, labels: list[str], value: int) -> pb.Metric:
    return pb.Metric(
        name=name,
        timestamp=now,
        metric_type=kind,
        label_values=labels,
        value=pb.UInt64Value(value=max(0, value)),
    )


async def handle(cri: CRI, req: pb.ListPodSandboxMetricsRequest) -> pb.ListPodSandboxMetricsResponse:
    out = []
    for pod in cri.cri_pods():
        if not pod_ready(cri, pod):
            continue
        now = time.time_ns()
        cms = []
        for rec in cri.cri_containers():
            if rec.pod_id != pod.id or rec.state not in ("running", "paused"):
                continue
            st = await stats_view.container_stats(cri, rec)
            labels = [
                st.attributes.metadata.name,
                pod.spec.labels.get("io.podkit.cri.name", pod.name),
                pod.spec.kube_namespace,
                rec.id,
            ]
            cms.append(
                pb.ContainerMetrics(
                    container_id=rec.id,
                    metrics=[
                        _metric(
                            "container_cpu_usage_seconds_total",
                            now,
                            pb.COUNTER,
                            labels,
                            st.cpu.usage_core_nano_seconds.value // 1_000_000_000,
                        ),
                        _metric(
                            "container_memory_usage_bytes", now, pb.GAUGE, labels, st.memory.usage_bytes.value
                        ),
                        _metric(
                            "container_memory_working_set_bytes",
                            now,
                            pb.GAUGE,
                            labels,
                            st.memory.working_set_bytes.value,
                        ),
                        _metric("container_memory_rss", now, pb.GAUGE, labels, st.memory.rss_bytes.value),
                    ],
                )
            )
        out.append(pb.PodSandboxMetrics(pod_sandbox_id=pod.id, container_metrics=cms))
    return pb.ListPodSandboxMetricsResponse(pod_metrics=out)
