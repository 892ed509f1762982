"""What every CRI operation shares: the services, the ``k8s.io`` namespace, lookups,
the reserved labels podkit keeps its CRI bookkeeping in, and conversions."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from cri_api.v1 import api_pb2 as pb

from podkit.cri.config import CRIConfig
from podkit.errors import InvalidArgument, NotFound

# The state of a container or pod whose removal was answered and goes on in the
# background (containers' and pods' own "removing"): gone, for the CRI.
REMOVING = "removing"

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService
    from podkit.containers.store import Record
    from podkit.daemon.services import Services
    from podkit.images.service import ImageService
    from podkit.pods.model import Pod
    from podkit.pods.service import PodService

log = logging.getLogger(__name__)

NAMESPACE = "k8s.io"

# Reserved labels: what the CRI needs to give back that podkit's objects have no field
# for. Never shown to CRI clients (see user_labels).
LABEL_PREFIX = "io.podkit.cri."
L_NAME = LABEL_PREFIX + "name"  # metadata.name (pod or container)
L_ATTEMPT = LABEL_PREFIX + "attempt"  # container metadata.attempt
L_PRIVILEGED = LABEL_PREFIX + "privileged"  # the sandbox allows privileged containers
L_NSOPTS = LABEL_PREFIX + "nsopts"  # namespace options as given, JSON
L_IMAGE_REF = LABEL_PREFIX + "image"  # the image as the kubelet named it
L_IMAGE_DIGEST = LABEL_PREFIX + "image-ref"  # its repo digest at create time (status's image_ref)
L_RESOURCES = LABEL_PREFIX + "resources"  # container linux resources as last set, JSON
L_CRI = LABEL_PREFIX + "managed"  # made through the CRI
_HIDDEN = ("io.podkit.pod", "io.podkit.pod.name")


class StreamingURLs(Protocol):
    """The streaming server's side the CRI needs (podkit.cri.streaming.StreamingServer)."""

    def exec_url(
        self,
        namespace: str,
        container_id: str,
        cmd: list[str],
        *,
        tty: bool,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> str: ...

    def attach_url(
        self, namespace: str, container_id: str, *, tty: bool, stdin: bool, stdout: bool, stderr: bool
    ) -> str: ...

    def port_forward_url(self, namespace: str, pod_id: str, ports: list[int]) -> str: ...


class CRI:
    """The state of the CRI front end; operations are functions of it (see server.py)."""

    def __init__(self, services: Services, config: CRIConfig, streaming: StreamingURLs | None = None) -> None:
        self.services = services
        self.config = config
        self.streaming = streaming
        self.ns = NAMESPACE
        self.pod_cidr = ""  # UpdateRuntimeConfig
        self.pod_network = ""  # the podkit network of CRI pods, decided at the first (cni_network.py)
        self.sandbox_image_retry_at = 0.0  # monotonic time; see sandbox_run.sandbox_image
        self._sandbox_image_lock = asyncio.Lock()

    @property
    def pods(self) -> PodService:
        return self.services.pods

    @property
    def containers(self) -> ContainerService:
        return self.services.containers

    @property
    def images(self) -> ImageService:
        return self.services.images

    # -- lookups ---------------------------------------------------------------------

    def sandbox(self, sandbox_id: str, field: str = "pod_sandbox_id") -> Pod:
        if not sandbox_id:
            raise InvalidArgument(f"{field} is empty")
        try:
            pod: Pod = self.pods.get(self.ns, sandbox_id)
        except NotFound:
            raise NotFound(f"pod sandbox {sandbox_id!r} not found") from None
        if pod.spec.labels.get(L_CRI) != "true" or pod.state == REMOVING:
            # removing: RemovePodSandbox answered, the tear-down goes on in the background
            raise NotFound(f"pod sandbox {sandbox_id!r} not found")
        return pod

    def container(self, container_id: str, field: str = "container_id") -> Record:
        if not container_id:
            raise InvalidArgument(f"{field} is empty")
        try:
            rec: Record = self.containers.resolve(self.ns, container_id)
        except NotFound:
            raise NotFound(f"container {container_id!r} not found") from None
        if (
            rec.infra
            or rec.labels.get(L_CRI) != "true"
            or rec.state == REMOVING  # RemoveContainer answered, the rest in the background
            or (rec.pod_id and self._pod_removing(rec.pod_id))  # RemovePodSandbox answered
        ):
            raise NotFound(f"container {container_id!r} not found")
        return rec

    def _pod_removing(self, pod_id: str) -> bool:
        try:
            return self.pods.get(self.ns, pod_id).state == REMOVING
        except NotFound:
            return False  # the container's own lookups say what that means

    def cri_pods(self) -> list[Pod]:
        return [
            p
            for p in self.pods.store.list(self.ns)
            if p.spec.labels.get(L_CRI) == "true" and p.state != REMOVING
        ]

    def cri_containers(self) -> list[Record]:
        gone = {p.id for p in self.pods.store.list(self.ns) if p.state == REMOVING}
        return [
            r
            for r in self.containers.store.list(self.ns)
            if not r.infra
            and r.labels.get(L_CRI) == "true"
            and r.state != REMOVING
            and not (r.pod_id and r.pod_id in gone)
        ]


# -- conversions ---------------------------------------------------------------------


def user_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if not k.startswith(LABEL_PREFIX) and k not in _HIDDEN}


def ns_time(t: float | None) -> int:
    """podkit's float seconds → the CRI's int nanoseconds (0 for never)."""
    return int(t * 1e9) if t else 0


def matches(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pod_ready(cri: CRI, pod: Pod) -> bool:
    if pod.state != "ready" or not pod.infra_id:
        return False
    rec = cri.containers.store.get(pod.infra_id)
    return rec is not None and rec.state in ("running", "paused")


def pod_metadata(pod: Pod) -> pb.PodSandboxMetadata:
    return pb.PodSandboxMetadata(
        name=pod.spec.labels.get(L_NAME, pod.name),
        uid=pod.spec.uid,
        namespace=pod.spec.kube_namespace,
        attempt=pod.spec.attempt,
    )


def container_metadata(rec: Record) -> pb.ContainerMetadata:
    return pb.ContainerMetadata(
        name=rec.labels.get(L_NAME, rec.name), attempt=int(rec.labels.get(L_ATTEMPT, "0"))
    )


def container_state(rec: Record) -> int:
    if rec.state in ("running", "paused", "restarting"):
        return int(pb.CONTAINER_RUNNING)
    if rec.state == "created" and not rec.error:
        return int(pb.CONTAINER_CREATED)
    if rec.state in ("exited", "dead", "created", "removing"):
        return int(pb.CONTAINER_EXITED)
    return int(pb.CONTAINER_UNKNOWN)


def image_ref_of(cri: CRI, rec: Record) -> str:
    """The image as the CRI names it: its config digest (what containerd reports)."""
    return rec.image_id or rec.image


def nsopts(pod: Pod) -> dict[str, Any]:
    raw = pod.spec.labels.get(L_NSOPTS)
    if not raw:
        return {}
    try:
        v = json.loads(raw)
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}
