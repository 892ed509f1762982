"""Status: the RuntimeReady and NetworkReady conditions the kubelet gates pods on."""

from __future__ import annotations

import json

from cri_api.v1 import api_pb2 as pb

from podkit.cri.config import cni_conflist
from podkit.cri.context import CRI


async def handle(cri: CRI, req: pb.StatusRequest) -> pb.StatusResponse:
    net_ok, net_reason = cri.services.networks.ready()
    conditions = [
        pb.RuntimeCondition(type="RuntimeReady", status=True),
        pb.RuntimeCondition(
            type="NetworkReady",
            status=net_ok,
            reason="" if net_ok else "NetworkPluginNotReady",
            message=net_reason,
        ),
    ]
    resp = pb.StatusResponse(
        status=pb.RuntimeStatus(conditions=conditions),
        runtime_handlers=[
            pb.RuntimeHandler(name="", features=pb.RuntimeHandlerFeatures()),
            pb.RuntimeHandler(name="runc", features=pb.RuntimeHandlerFeatures()),
        ],
    )
    if req.verbose:
        conf = cni_conflist(cri.config.cni_conf_dir)
        info = {
            "sandboxImage": cri.config.sandbox_image,
            "cniConfDir": cri.config.cni_conf_dir,
            "cniConfig": str(conf) if conf else "",
            "podNetwork": cri.pod_network or "(chosen at the first RunPodSandbox)",
            "podCIDR": cri.pod_cidr,
            "streamServer": f"{cri.config.stream_address}:{cri.config.stream_port}",
            "cgroupDriver": "cgroupfs",
            "namespace": cri.ns,
        }
        resp.info["config"] = json.dumps(info)
    return resp
