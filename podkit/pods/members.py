"""A pod's member containers: their create options, and adding one to a pod."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from podkit.errors import InvalidArgument
from podkit.pods.context import NETNS_KIND, POD_LABEL, POD_NAME_LABEL, PodContext, pod_dir
from podkit.pods.model import Pod

if TYPE_CHECKING:
    from podkit.containers.options import CreateOptions
    from podkit.containers.store import Record


def options(
    ctx: PodContext, pod: Pod, body: dict[str, Any] | CreateOptions, infra_container: bool = False
) -> CreateOptions:
    """Container options for a member of the pod: the pod's namespaces, files, cgroup."""
    from podkit.containers.options import CreateOptions

    opts = body if isinstance(body, CreateOptions) else CreateOptions.parse(body)
    return apply_pod(ctx, pod, opts, infra_container)


def _check_member(pod: Pod, opts: CreateOptions) -> None:
    if opts.ports and "net" in pod.spec.share:
        raise InvalidArgument(
            f"a container in pod {pod.name} cannot publish ports itself: publish them on the pod "
            "(podkit pod create -p)"
        )
    if opts.network not in ("bridge", "pod", "") and "net" in pod.spec.share:
        raise InvalidArgument(
            f"a container in pod {pod.name} uses the pod's network; --network {opts.network} conflicts"
        )


def _namespaces(ctx: PodContext, pod: Pod, opts: CreateOptions, infra_container: bool) -> dict[str, str]:
    """The namespaces a member joins (by path, or "host"); sets what goes with them."""
    spec = pod.spec
    d = pod_dir(pod)
    ns: dict[str, str] = {}
    if "net" in spec.share:
        opts.network = "pod"
        if spec.network == "host":
            ns["network"] = "host"
        else:
            # The pin's path, fixed for the pod's life (its network may be released
            # and wired again meanwhile).
            ns["network"] = ctx.networks.netns_path(pod.id, NETNS_KIND)
    if "ipc" in spec.share:
        ns["ipc"] = str(d / "ns" / "ipc")
        opts.shm_path = str(d / "shm")
    if "uts" in spec.share:
        ns["uts"] = str(d / "ns" / "uts")
        # Not set by runc in a joined uts namespace; kept for $HOSTNAME and /etc/hostname.
        opts.hostname = spec.hostname
    elif not opts.hostname:
        opts.hostname = spec.hostname
    if "pid" in spec.share and not infra_container:
        # Re-pinned to the infra's pid namespace each time the infra starts.
        ns["pid"] = str(d / "ns" / "pid")
    if spec.host_pid:
        ns["pid"] = "host"
    if spec.host_ipc:
        ns["ipc"] = "host"
        opts.shm_path = "/dev/shm"
    return ns


def apply_pod(ctx: PodContext, pod: Pod, opts: CreateOptions, infra_container: bool = False) -> CreateOptions:
    """Fill the pods layer's hooks of a containers-layer ``CreateOptions``."""
    _check_member(pod, opts)
    opts.pod_id = pod.id
    opts.infra = infra_container
    ns = _namespaces(ctx, pod, opts, infra_container)
    d = pod_dir(pod)
    opts.namespaces = {**opts.namespaces, **ns}
    opts.hosts_file = str(d / "hosts")
    opts.resolv_file = str(d / "resolv.conf")
    if pod.cgroup_path:
        opts.cgroup_parent = pod.cgroup_path
    opts.labels = {**opts.labels, POD_LABEL: pod.id, POD_NAME_LABEL: pod.name}
    if pod.spec.restart_policy and not infra_container and opts.restart.get("name") == "no":
        opts.restart = {"name": pod.spec.restart_policy, "max_retries": 0}
    return opts


async def add_container(
    ctx: PodContext, ns: str, ref: str, body: dict[str, Any], start: bool = False
) -> Record:
    pod = ctx.get(ns, ref)
    opts = options(ctx, pod, body)
    rec = await ctx.containers.create(ns, opts)  # after_create rewrites /etc/hosts
    if start:
        await ctx.containers.start(ns, rec.id)  # before_start brings the infra up
    return rec
