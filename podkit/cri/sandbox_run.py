"""RunPodSandbox: a podkit pod made from the kubelet's PodSandboxConfig, started.

The pod (net/ipc/uts pinned, /dev/shm, its cgroup, CNI, the infra container) is the
pods layer's; this maps the config onto a PodSpec. A failure anywhere removes what was
made (the pods layer undoes a failed create; a failed start removes the pod here).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time

from cri_api.v1 import api_pb2 as pb

from podkit.cri.cni_network import pod_network
from podkit.cri.context import CRI, L_CRI, L_NAME, L_NSOPTS, L_PRIVILEGED, LABEL_PREFIX
from podkit.errors import InvalidArgument, PodkitError
from podkit.network.ports import PortMapping
from podkit.pods.infra import INFRA_REF
from podkit.pods.model import DNSConfig, PodSpec

log = logging.getLogger(__name__)

_PROTOCOLS = {pb.TCP: "tcp", pb.UDP: "udp", pb.SCTP: "sctp"}
_NAME_OK = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_HOST_OK = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$")
RUNTIME_HANDLERS = ("", "runc")


def pod_name(meta: pb.PodSandboxMetadata) -> str:
    """podkit's unique pod name for a sandbox: containerd's name_namespace_uid_attempt."""
    name = f"{meta.name}_{meta.namespace}_{meta.uid}_{meta.attempt}"
    if _NAME_OK.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", meta.name)[:100].lstrip("_.-") or "pod"
    return f"{safe}_{digest}"


def spec_from_config(cri: CRI, config: pb.PodSandboxConfig) -> PodSpec:
    meta = config.metadata
    if not config.HasField("metadata"):
        raise InvalidArgument("config.metadata is required")
    if not meta.name:
        raise InvalidArgument("config.metadata.name is empty")
    for label in list(config.labels) + list(config.annotations):
        if label.startswith(LABEL_PREFIX):
            raise InvalidArgument(f"config.labels: the prefix {LABEL_PREFIX} is podkit's own ({label!r})")
    linux = config.linux
    sc = linux.security_context
    nso = sc.namespace_options
    hostname = config.hostname or os.uname().nodename
    if not _HOST_OK.fullmatch(hostname):
        raise InvalidArgument(f"config.hostname: invalid hostname {hostname!r}")
    spec = PodSpec(
        name=pod_name(meta),
        hostname=hostname,
        labels={
            **dict(config.labels),
            L_CRI: "true",
            L_NAME: meta.name,
            L_PRIVILEGED: "true" if sc.privileged else "false",
            L_NSOPTS: json.dumps({"network": nso.network, "pid": nso.pid, "ipc": nso.ipc}),
        },
        annotations=dict(config.annotations),
        uid=meta.uid,
        kube_namespace=meta.namespace,
        attempt=meta.attempt,
        log_directory=config.log_directory,
        cgroup_parent=linux.cgroup_parent,
        sysctls=dict(linux.sysctls),
    )
    if config.log_directory and not config.log_directory.startswith("/"):
        raise InvalidArgument(f"config.log_directory must be absolute, got {config.log_directory!r}")
    # As containerd: the sandbox's process runs without seccomp unless the pod asks for
    # one (a filter costs runc create ~50-100 ms here, for a process that only waits).
    profile = sc.seccomp.profile_type if sc.HasField("seccomp") else None
    asked = profile in (pb.SecurityProfile.RuntimeDefault, pb.SecurityProfile.Localhost) or (
        sc.seccomp_profile_path not in ("", "unconfined")
    )
    spec.infra_seccomp = "default" if asked else "unconfined"
    share = ["net", "ipc", "uts"]
    if nso.network == pb.NODE:
        spec.network = "host"
    elif nso.network not in (pb.POD, pb.CONTAINER):
        raise InvalidArgument("config.linux.security_context.namespace_options.network: must be POD or NODE")
    if nso.ipc == pb.NODE:
        share.remove("ipc")
        spec.host_ipc = True
    if nso.pid == pb.NODE:
        spec.host_pid = True
    elif nso.pid == pb.POD:
        share.append("pid")
    elif nso.pid == pb.TARGET:
        raise InvalidArgument("config.linux.security_context.namespace_options.pid: TARGET is for containers")
    spec.share = share
    if config.HasField("dns_config"):
        d = config.dns_config
        spec.dns = DNSConfig(servers=list(d.servers), searches=list(d.searches), options=list(d.options))
    ports: list[PortMapping] = []
    for i, p in enumerate(config.port_mappings):
        if p.host_port <= 0:
            continue  # declared container ports come with host_port 0: nothing to publish
        if not 0 < p.container_port < 65536 or p.host_port > 65535:
            raise InvalidArgument(f"config.port_mappings[{i}]: ports must be 1-65535")
        proto = _PROTOCOLS.get(p.protocol)
        if proto is None or proto == "sctp":
            raise InvalidArgument(f"config.port_mappings[{i}].protocol: only TCP and UDP are supported")
        ports.append(
            PortMapping(
                host_ip=p.host_ip, host_port=p.host_port, container_port=p.container_port, protocol=proto
            )
        )
    if spec.network == "host":
        ports = []  # the host's ports are the pod's already
    spec.ports = ports
    res = linux.resources if linux.HasField("resources") else None
    if res is not None:
        if res.memory_limit_in_bytes > 0:
            spec.memory = res.memory_limit_in_bytes + (
                linux.overhead.memory_limit_in_bytes if linux.HasField("overhead") else 0
            )
        if res.cpu_quota > 0 and res.cpu_period > 0:
            spec.cpus = res.cpu_quota / res.cpu_period
    try:
        spec.validate()
    except InvalidArgument as e:
        raise InvalidArgument(f"config: {e.message}") from None
    return spec


async def sandbox_image(cri: CRI) -> str:
    """The configured sandbox image, pulled once; podkit's own infra image ("") when
    it can be neither found nor pulled (offline hosts)."""
    ref = cri.config.sandbox_image
    if ref == INFRA_REF:
        return ""
    async with cri._sandbox_image_lock:
        try:
            cri.images.get(cri.ns, ref)
            return ref
        except PodkitError:
            pass
        # A failed pull is not retried for every sandbox (offline, each costs a timeout).
        if time.monotonic() < cri.sandbox_image_retry_at:
            return ""
        try:
            await cri.services.registry.pull(cri.ns, ref)
            return ref
        except PodkitError as e:
            log.info("sandbox image %s unavailable (%s): using podkit's infra image", ref, e.message)
            cri.sandbox_image_retry_at = time.monotonic() + 60.0
            return ""


async def handle(cri: CRI, req: pb.RunPodSandboxRequest) -> pb.RunPodSandboxResponse:
    if req.runtime_handler not in RUNTIME_HANDLERS:
        raise InvalidArgument(f"runtime_handler {req.runtime_handler!r}: only runc is configured")
    if not req.HasField("config"):
        raise InvalidArgument("config is required")
    spec = spec_from_config(cri, req.config)
    t0 = time.perf_counter()
    spec.infra_image = await sandbox_image(cri)
    if spec.network != "host":
        spec.network = await pod_network(cri)
    t1 = time.perf_counter()
    pod = await cri.pods.create(cri.ns, spec)
    t2 = time.perf_counter()
    try:
        await cri.pods.start(cri.ns, pod.id)
        log.debug(
            "RunPodSandbox %s: %.1f ms (image %.1f, create %.1f, start %.1f)",
            pod.id[:12],
            (time.perf_counter() - t0) * 1000,
            (t1 - t0) * 1000,
            (t2 - t1) * 1000,
            (time.perf_counter() - t2) * 1000,
        )
    except BaseException:
        try:
            await cri.pods.remove(cri.ns, pod.id, force=True)
        except Exception as e:
            log.warning("RunPodSandbox: removing pod %s after a failed start: %s", pod.id[:12], e)
        raise
    return pb.RunPodSandboxResponse(pod_sandbox_id=pod.id)
