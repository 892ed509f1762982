"""CreateContainer: a podkit container in the sandbox's pod from a ContainerConfig.

The mapping (image, command/args, env, mounts, devices, resources, security
context) builds a containers-layer ``CreateOptions`` body, checked by the same parser
as the HTTP API's, then the pods layer puts it into the pod (namespaces, files,
cgroup). The image must be present: the CRI never pulls on create.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import TYPE_CHECKING, Any

from cri_api.v1 import api_pb2 as pb

from podkit.containers.options import CreateOptions
from podkit.cri.context import (
    CRI,
    L_ATTEMPT,
    L_CRI,
    L_IMAGE_DIGEST,
    L_IMAGE_REF,
    L_NAME,
    L_PRIVILEGED,
    L_RESOURCES,
    LABEL_PREFIX,
)
from podkit.cri.image_view import repo_digests, repo_tags
from podkit.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from podkit.images.service import Image
    from podkit.pods.model import Pod


_PROPAGATION = {
    pb.PROPAGATION_PRIVATE: "rprivate",
    pb.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    pb.PROPAGATION_BIDIRECTIONAL: "rshared",
}
_NAME_OK = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


def container_name(pod_name: str, meta: pb.ContainerMetadata) -> str:
    """podkit's unique name: name_pod_attempt, made safe and short when it is not."""
    name = f"{meta.name}_{pod_name}_{meta.attempt}"
    if _NAME_OK.fullmatch(name):
        return name
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", meta.name)[:60].lstrip("_.-") or "ctr"
    return f"{safe}_{hashlib.sha256(name.encode()).hexdigest()[:16]}_{meta.attempt}"


def image_name(cri: CRI, image: Image, given: str) -> str:
    """The image as status reports it: the name the kubelet gave, or (when it gave an
    id, as it does after PullImage) the image's first tag, as containerd does."""
    if given.startswith("sha256:"):
        tags = repo_tags(cri, image)
        return tags[0] if tags else given
    return given


def resources_body(res: pb.LinuxContainerResources, field: str) -> dict[str, Any]:
    """LinuxContainerResources → the containers layer's resource options."""
    body: dict[str, Any] = {}
    if res.memory_limit_in_bytes < 0 or res.cpu_shares < 0 or res.cpu_period < 0:
        raise InvalidArgument(f"{field}: limits must not be negative")
    if res.memory_limit_in_bytes:
        body["memory"] = res.memory_limit_in_bytes
    if res.memory_swap_limit_in_bytes:
        body["memory_swap"] = res.memory_swap_limit_in_bytes
    if res.cpu_shares:
        body["cpu_shares"] = max(2, min(262144, res.cpu_shares))
    if res.cpu_period:
        body["cpu_period"] = res.cpu_period
    if res.cpu_quota:
        body["cpu_quota"] = res.cpu_quota
    if res.cpuset_cpus:
        body["cpuset_cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        body["cpuset_mems"] = res.cpuset_mems
    return body


def _seccomp(sc: pb.LinuxContainerSecurityContext, field: str) -> str:
    if sc.HasField("seccomp"):
        p = sc.seccomp
        if p.profile_type == pb.SecurityProfile.RuntimeDefault:
            return "default"
        if p.profile_type == pb.SecurityProfile.Unconfined:
            return "unconfined"
        if not p.localhost_ref.startswith("/"):
            raise InvalidArgument(f"{field}.seccomp.localhost_ref must be an absolute path")
        return p.localhost_ref
    path = sc.seccomp_profile_path  # the deprecated string form
    if path in ("runtime/default", "docker/default"):
        return "default"
    if path.startswith("localhost/"):
        return path[len("localhost") :]
    if path in ("", "unconfined"):
        return "unconfined"  # the CRI's default: no seccomp unless asked
    raise InvalidArgument(f"{field}.seccomp_profile_path: unknown profile {path!r}")


def _apparmor(sc: pb.LinuxContainerSecurityContext, field: str) -> None:
    wanted = sc.apparmor.profile_type == pb.SecurityProfile.Localhost and sc.HasField("apparmor")
    wanted = wanted or sc.apparmor_profile.startswith("localhost/")
    if wanted and not os.path.exists("/sys/kernel/security/apparmor"):
        raise InvalidArgument(f"{field}.apparmor: this host has no AppArmor to load a profile into")


def build_body(cri: CRI, pod: Pod, config: pb.ContainerConfig, image: Image) -> dict[str, Any]:
    meta = config.metadata
    for key in list(config.labels):
        if key.startswith(LABEL_PREFIX):
            raise InvalidArgument(f"config.labels: the prefix {LABEL_PREFIX} is podkit's own ({key!r})")
    body: dict[str, Any] = {
        "image": image.id,
        "name": container_name(pod.name, meta),
        "labels": {
            **dict(config.labels),
            L_CRI: "true",
            L_NAME: meta.name,
            L_ATTEMPT: str(meta.attempt),
            L_IMAGE_REF: image_name(cri, image, config.image.image),
            L_IMAGE_DIGEST: next(iter(repo_digests(cri, image)), image.id),
        },
        "annotations": dict(config.annotations),
        "tty": config.tty,
        "open_stdin": config.stdin,
        "stdin_once": config.stdin_once,
        "no_new_privileges": False,
        "seccomp": "unconfined",
    }
    if config.command:
        body["entrypoint"] = list(config.command)
        body["cmd"] = list(config.args)  # k8s: a command drops the image's CMD too
    elif config.args:
        body["cmd"] = list(config.args)
    if config.working_dir:
        if not config.working_dir.startswith("/"):
            raise InvalidArgument(f"config.working_dir must be absolute, got {config.working_dir!r}")
        body["workdir"] = config.working_dir
    env = []
    for i, kv in enumerate(config.envs):
        if not kv.key or "=" in kv.key:
            raise InvalidArgument(f"config.envs[{i}].key: invalid name {kv.key!r}")
        env.append(f"{kv.key}={kv.value}")
    body["env"] = env
    log_dir = pod.spec.log_directory
    if config.log_path:
        if os.path.isabs(config.log_path) or ".." in config.log_path.split("/"):
            raise InvalidArgument(
                f"config.log_path must be relative to the sandbox's log_directory: {config.log_path!r}"
            )
        if log_dir:
            body["log_path"] = os.path.join(log_dir, config.log_path)
    mounts = []
    for i, m in enumerate(config.mounts):
        f = f"config.mounts[{i}]"
        if not m.container_path.startswith("/"):
            raise InvalidArgument(f"{f}.container_path must be absolute, got {m.container_path!r}")
        if not m.host_path.startswith("/"):
            raise InvalidArgument(f"{f}.host_path must be absolute, got {m.host_path!r}")
        prop = _PROPAGATION.get(m.propagation)
        if prop is None:
            raise InvalidArgument(f"{f}.propagation: unknown value {m.propagation}")
        mounts.append(
            {
                "type": "bind",
                "source": m.host_path,
                "target": m.container_path,
                "readonly": m.readonly,
                "options": [prop],
            }
        )
    body["mounts"] = mounts
    devices = []
    for i, d in enumerate(config.devices):
        if not d.host_path.startswith("/") or not (d.container_path or d.host_path).startswith("/"):
            raise InvalidArgument(f"config.devices[{i}]: paths must be absolute")
        devices.append(f"{d.host_path}:{d.container_path or d.host_path}:{d.permissions or 'rwm'}")
    body["devices"] = devices
    linux = config.linux
    if linux.HasField("resources"):
        body.update(resources_body(linux.resources, "config.linux.resources"))
        if linux.resources.oom_score_adj:
            body["oom_score_adj"] = max(-1000, min(1000, linux.resources.oom_score_adj))
        body["labels"][L_RESOURCES] = json.dumps(resources_body(linux.resources, ""))
        if linux.resources.hugepage_limits or linux.resources.unified:
            pass  # accepted; not applied on this runtime (docs/cri.md)
    sc = linux.security_context
    field = "config.linux.security_context"
    if sc.privileged:
        if pod.spec.labels.get(L_PRIVILEGED) != "true":
            raise InvalidArgument(f"{field}.privileged: the sandbox does not allow privileged containers")
        body["privileged"] = True
    caps = sc.capabilities
    body["cap_add"] = list(caps.add_capabilities)
    body["cap_drop"] = list(caps.drop_capabilities)
    body["read_only"] = sc.readonly_rootfs
    body["no_new_privileges"] = sc.no_new_privs
    body["seccomp"] = "unconfined" if sc.privileged else _seccomp(sc, field)
    _apparmor(sc, field)
    user = ""
    if sc.HasField("run_as_user"):
        user = str(sc.run_as_user.value)
    elif sc.run_as_username:
        user = sc.run_as_username
    if sc.HasField("run_as_group"):
        if not user:
            raise InvalidArgument(f"{field}.run_as_group needs run_as_user or run_as_username")
        user += f":{sc.run_as_group.value}"
    if user:
        body["user"] = user
    if sc.supplemental_groups:
        body["group_add"] = list(sc.supplemental_groups)
    if not sc.privileged:
        # The kubelet always sends its lists; empty ones mean "none" (procMount Unmasked).
        body["masked_paths"] = list(sc.masked_paths)
        body["readonly_paths"] = list(sc.readonly_paths)
    return body


def _pid_namespace(cri: CRI, pod: Pod, opts: CreateOptions, nso: pb.NamespaceOption, field: str) -> None:
    ns = dict(opts.namespaces)
    if nso.pid == pb.NODE:
        ns["pid"] = "host"
    elif nso.pid == pb.POD:
        pid_pin = os.path.join(pod.state_dir, "ns", "pid")
        if "pid" not in pod.spec.share:
            # The sandbox did not share one: join the infra's, as containerd does.
            infra = cri.containers.store.get(pod.infra_id) if pod.infra_id else None
            if infra is None or not infra.pid:
                raise InvalidArgument(f"{field}.pid: POD needs a running sandbox")
            # Resolved at start through its checked process (containers/networking.py):
            # a /proc/<pid> path would be followed by runc whoever has the pid by then.
            pid_pin = f"container:{infra.id}"
        ns["pid"] = pid_pin
    elif nso.pid == pb.TARGET:
        target = cri.container(nso.target_id, f"{field}.target_id")
        if target.pod_id != pod.id or not target.pid:
            raise InvalidArgument(
                f"{field}.target_id: {nso.target_id!r} is not a running container of the sandbox"
            )
        ns["pid"] = f"container:{target.id}"
    else:
        ns.pop("pid", None)  # its own (also in a host-pid sandbox: the container says)
    opts.namespaces = ns


async def handle(cri: CRI, req: pb.CreateContainerRequest) -> pb.CreateContainerResponse:
    pod = cri.sandbox(req.pod_sandbox_id)
    config = req.config
    if not req.HasField("config"):
        raise InvalidArgument("config is required")
    if not config.HasField("metadata") or not config.metadata.name:
        raise InvalidArgument("config.metadata.name is empty")
    if not config.image.image:
        raise InvalidArgument("config.image.image is empty")
    if pod.state != "ready":
        raise NotFound(f"pod sandbox {pod.id} is being {pod.state}")
    try:
        image = cri.images.get(cri.ns, config.image.image)
    except (NotFound, InvalidArgument):
        raise NotFound(f"image {config.image.image!r} not found: pull it first (PullImage)") from None
    body = build_body(cri, pod, config, image)
    # Host paths that do not exist become directories, as the kubelet expects.
    for m in body["mounts"]:
        if not os.path.exists(m["source"]):
            os.makedirs(m["source"], exist_ok=True)
    opts = CreateOptions.parse(body)
    opts = cri.pods.apply_pod(pod, opts)
    _pid_namespace(
        cri,
        pod,
        opts,
        config.linux.security_context.namespace_options,
        "config.linux.security_context.namespace_options",
    )
    rec = await cri.containers.create(cri.ns, opts)
    return pb.CreateContainerResponse(container_id=rec.id)
