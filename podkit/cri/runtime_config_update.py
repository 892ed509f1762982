"""UpdateRuntimeConfig: the kubelet hands over the node's pod CIDR. podkit's pods take
their addresses from its own networks, so the CIDR is only recorded (Status shows it)."""

from __future__ import annotations

import ipaddress

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI
from podkit.errors import InvalidArgument


async def handle(cri: CRI, req: pb.UpdateRuntimeConfigRequest) -> pb.UpdateRuntimeConfigResponse:
    cidr = req.runtime_config.network_config.pod_cidr
    for part in filter(None, cidr.split(",")):
        try:
            ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            raise InvalidArgument(f"runtime_config.network_config.pod_cidr: invalid CIDR {part!r}") from None
    cri.pod_cidr = cidr
    return pb.UpdateRuntimeConfigResponse()
