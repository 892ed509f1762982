"""StopPodSandbox: every container stopped, the infra too, and the network given back
(CNI DEL, netns unpinned) as the kubelet expects; the pod stays until removed."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI


async def handle(cri: CRI, req: pb.StopPodSandboxRequest) -> pb.StopPodSandboxResponse:
    pod = cri.sandbox(req.pod_sandbox_id)
    # Containers of a stopped sandbox get the kubelet's grace already (StopContainer
    # came first); what is left is killed at once, as containerd does.
    await cri.pods.stop(cri.ns, pod.id, timeout=0, release_network=True)
    return pb.StopPodSandboxResponse()
