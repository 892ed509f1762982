"""ListMetricDescriptors: the metrics ListPodSandboxMetrics reports (cAdvisor's names)."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI

LABELS = ["container", "pod", "namespace", "id"]
DESCRIPTORS = [
    ("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds."),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
    ),
    ("container_memory_working_set_bytes", "Current working set in bytes."),
    ("container_memory_rss", "Size of RSS in bytes."),
]


async def handle(cri: CRI, req: pb.ListMetricDescriptorsRequest) -> pb.ListMetricDescriptorsResponse:
    return pb.ListMetricDescriptorsResponse(
        descriptors=[pb.MetricDescriptor(name=n, help=h, label_keys=LABELS) for n, h in DESCRIPTORS]
    )
