"""RuntimeConfig: the cgroup driver the kubelet must match (podkit uses cgroupfs paths)."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI


async def handle(cri: CRI, req: pb.RuntimeConfigRequest) -> pb.RuntimeConfigResponse:
    return pb.RuntimeConfigResponse(linux=pb.LinuxRuntimeConfiguration(cgroup_driver=pb.CGROUPFS))
