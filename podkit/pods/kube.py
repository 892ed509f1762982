"""Kubernetes YAML → pod plans (`podkit play kube`).

Reads v1 Pods and the pod template of apps/v1 Deployments from a (multi-document)
YAML file and turns each into a ``KubePod``: a ``PodSpec`` plus the containers to
create in it. Only parsing and validation live here; the pod service executes plans.
Fields podkit does not implement are reported as warnings, never silently dropped;
fields that are malformed, or whose meaning podkit cannot honour (env valueFrom,
configMap volumes), are errors that name the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from podkit.errors import InvalidArgument
from podkit.network.ports import PortMapping
from podkit.pods.kube_container import KubeContainer, KubeMount, container
from podkit.pods.kube_fields import boolean, items, mapping, parse_quantity, strings
from podkit.pods.model import DNSConfig, PodSpec

__all__ = ["KubeContainer", "KubeMount", "KubePod", "load_documents", "parse", "parse_quantity"]

RESTART = {"Always": "always", "OnFailure": "on-failure", "Never": "no"}

_POD_SPEC_FIELDS = {
    "containers",
    "initContainers",
    "volumes",
    "hostname",
    "hostNetwork",
    "shareProcessNamespace",
    "dnsConfig",
    "dnsPolicy",
    "hostAliases",
    "restartPolicy",
    "terminationGracePeriodSeconds",
    "securityContext",
    "nodeSelector",
    "affinity",
    "tolerations",
    "serviceAccountName",
    "automountServiceAccountToken",
    "priorityClassName",
    "schedulerName",
    "subdomain",
    "enableServiceLinks",
    "hostIPC",
    "hostPID",
    "imagePullSecrets",
    "nodeName",
}
# Fields that only matter to a cluster: quietly meaningless on one host, but said so.
_CLUSTER_ONLY = {
    "nodeSelector",
    "affinity",
    "tolerations",
    "serviceAccountName",
    "schedulerName",
    "automountServiceAccountToken",
    "priorityClassName",
    "enableServiceLinks",
    "imagePullSecrets",
    "nodeName",
    "subdomain",
}


@dataclass
class KubePod:
    spec: PodSpec
    containers: list[KubeContainer]
    empty_dirs: list[str] = field(default_factory=list)
    kind: str = "Pod"
    source_name: str = ""  # the object's metadata.name (the Deployment's for a Deployment)
    warnings: list[str] = field(default_factory=list)


def load_documents(text: str) -> list[dict[str, Any]]:
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise InvalidArgument(f"invalid YAML: {e}") from None
    except RecursionError:
        raise InvalidArgument("invalid YAML: nested too deeply") from None
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            raise InvalidArgument(f"YAML document {i + 1} is not a mapping")
    if not docs:
        raise InvalidArgument("the YAML file holds no documents")
    return docs


# Kinds that describe no container to run; skipped with a warning.
_IGNORED_KINDS = frozenset(
    {
        "Service",
        "Ingress",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceAccount",
    }
)


def parse(text: str) -> list[KubePod]:
    """Every Pod and Deployment in the file, as plans; other kinds are errors."""
    pods: list[KubePod] = []
    skipped: list[str] = []
    for i, doc in enumerate(load_documents(text)):
        kind = doc.get("kind")
        api = doc.get("apiVersion")
        if kind is not None and not isinstance(kind, str):
            raise InvalidArgument(f"document {i + 1}: kind must be a string, not {kind!r}")
        where = f"document {i + 1} ({kind or 'no kind'})"
        if kind == "Pod":
            if api != "v1":
                raise InvalidArgument(f"{where}: a Pod is apiVersion v1, not {api!r}")
            meta = mapping(doc.get("metadata"), f"{where}: metadata")
            pods.append(_pod(meta, mapping(doc.get("spec"), f"{where}: spec"), where, "Pod"))
        elif kind == "Deployment":
            if api != "apps/v1":
                raise InvalidArgument(f"{where}: a Deployment is apiVersion apps/v1, not {api!r}")
            meta = mapping(doc.get("metadata"), f"{where}: metadata")
            dspec = mapping(doc.get("spec"), f"{where}: spec")
            tmpl = mapping(dspec.get("template"), f"{where}: spec.template")
            tmeta = dict(mapping(tmpl.get("metadata") or {}, f"{where}: spec.template.metadata"))
            tmeta["name"] = meta.get("name") or tmeta.get("name")
            tmeta.setdefault("namespace", meta.get("namespace"))
            kp = _pod(tmeta, mapping(tmpl.get("spec"), f"{where}: spec.template.spec"), where, "Deployment")
            replicas = dspec.get("replicas", 1)
            if not isinstance(replicas, int) or replicas < 0:
                raise InvalidArgument(f"{where}: spec.replicas must be a non-negative integer")
            if replicas != 1:
                kp.warnings.append(f"{where}: replicas={replicas}: podkit runs one pod per Deployment")
            pods.append(kp)
        elif kind in _IGNORED_KINDS:
            # Files written for a cluster carry these next to the workload; like
            # podman, play them as what they describe no process of ours.
            skipped.append(f"{where}: kind {kind} is ignored (podkit plays Pods and Deployments)")
        else:
            raise InvalidArgument(f"{where}: podkit plays kind Pod and Deployment, not {kind!r}")
    if not pods:
        raise InvalidArgument("the YAML file holds no Pod or Deployment")
    pods[0].warnings[:0] = skipped
    names = [p.spec.name for p in pods]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InvalidArgument(f"the file defines pod {sorted(dup)[0]!r} more than once")
    return pods


def _string_map(value: object, what: str) -> dict[str, str]:
    """Labels or annotations: a mapping (Kubernetes takes strings; scalars are kept as text)."""
    m = mapping(value or {}, what)
    for k, v in m.items():
        if isinstance(v, dict | list):
            raise InvalidArgument(f"{what}: the value of {k!r} must be a string")
    return {str(k): str(v) for k, v in m.items()}


def _pod(meta: dict[str, Any], spec: dict[str, Any], where: str, kind: str) -> KubePod:
    """One pod (a Pod, or a Deployment's template) as a plan."""
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{where}: metadata.name is required")
    warnings: list[str] = []
    ps = PodSpec(
        name=name,
        labels=_string_map(meta.get("labels"), f"{where}: metadata.labels"),
        annotations=_string_map(meta.get("annotations"), f"{where}: metadata.annotations"),
        uid=str(meta.get("uid") or ""),
        kube_namespace=str(meta.get("namespace") or ""),
    )
    for k in sorted(set(spec) - _POD_SPEC_FIELDS):
        warnings.append(f"{where}: spec.{k} is not supported and was ignored")
    for k in sorted(set(spec) & _CLUSTER_ONLY):
        warnings.append(f"{where}: spec.{k} only matters in a cluster and was ignored")
    ps.hostname = str(spec["hostname"]) if spec.get("hostname") is not None else name[:63]
    _namespaces(ps, spec, where)
    if "dnsConfig" in spec:
        ps.dns = _dns(mapping(spec["dnsConfig"], f"{where}: spec.dnsConfig"), where)
    for ha in items(spec.get("hostAliases"), f"{where}: spec.hostAliases"):
        ip = ha.get("ip")
        if not ip:
            raise InvalidArgument(f"{where}: spec.hostAliases[] needs an ip")
        for h in strings(ha.get("hostnames") or [], f"{where}: spec.hostAliases[].hostnames"):
            ps.add_hosts.append(f"{h}:{ip}")
    rp = spec.get("restartPolicy", "Always")
    if not isinstance(rp, str) or rp not in RESTART:
        raise InvalidArgument(f"{where}: spec.restartPolicy must be Always, OnFailure or Never, not {rp!r}")
    ps.restart_policy = RESTART[rp]
    _pod_security(
        ps, mapping(spec.get("securityContext") or {}, f"{where}: spec.securityContext"), where, warnings
    )
    if spec.get("initContainers"):
        warnings.append(f"{where}: spec.initContainers are not supported and were ignored")
    volumes, empty_dirs = _volumes(spec.get("volumes"), where, warnings)
    containers, host_ports = _containers(spec.get("containers"), where, volumes, warnings)
    if ps.network == "host" and host_ports:
        warnings.append(
            f"{where}: hostPort needs no mapping with hostNetwork: the container's own "
            "ports are the host's (ignored)"
        )
        host_ports = []
    ps.ports = host_ports
    ps.validate()
    return KubePod(
        spec=ps, containers=containers, empty_dirs=empty_dirs, kind=kind, source_name=name, warnings=warnings
    )


def _namespaces(ps: PodSpec, spec: dict[str, Any], where: str) -> None:
    """hostNetwork, shareProcessNamespace, hostPID, hostIPC → what the pod shares."""
    if spec.get("hostNetwork") is not None and boolean(spec["hostNetwork"], f"{where}: spec.hostNetwork"):
        ps.network = "host"
    share = ["net", "ipc", "uts"]
    if spec.get("shareProcessNamespace") is not None and boolean(
        spec["shareProcessNamespace"], f"{where}: spec.shareProcessNamespace"
    ):
        share.append("pid")
    if spec.get("hostPID") is not None and boolean(spec["hostPID"], f"{where}: spec.hostPID"):
        if "pid" in share:
            raise InvalidArgument(f"{where}: hostPID and shareProcessNamespace exclude each other")
        ps.host_pid = True
    if spec.get("hostIPC") is not None and boolean(spec["hostIPC"], f"{where}: spec.hostIPC"):
        share.remove("ipc")
        ps.host_ipc = True
    ps.share = share


def _dns(dc: dict[str, Any], where: str) -> DNSConfig:
    opts = []
    for o in items(dc.get("options"), f"{where}: spec.dnsConfig.options"):
        if "name" not in o:
            raise InvalidArgument(f"{where}: spec.dnsConfig.options[] needs a name")
        opts.append(f"{o['name']}:{o['value']}" if o.get("value") is not None else str(o["name"]))
    return DNSConfig(
        servers=strings(dc.get("nameservers") or [], f"{where}: dnsConfig.nameservers"),
        searches=strings(dc.get("searches") or [], f"{where}: dnsConfig.searches"),
        options=opts,
    )


def _pod_security(ps: PodSpec, psc: dict[str, Any], where: str, warnings: list[str]) -> None:
    for sc in items(psc.get("sysctls"), f"{where}: spec.securityContext.sysctls"):
        if not sc.get("name"):
            raise InvalidArgument(f"{where}: spec.securityContext.sysctls[] needs a name")
        ps.sysctls[str(sc["name"])] = str(sc.get("value", ""))
    for k in sorted(set(psc) - {"sysctls"}):
        warnings.append(f"{where}: spec.securityContext.{k} is not supported and was ignored")


def _volumes(raw: object, where: str, warnings: list[str]) -> tuple[dict[str, KubeMount], list[str]]:
    """spec.volumes: hostPath and emptyDir, by name; and the emptyDirs to make."""
    volumes: dict[str, KubeMount] = {}
    empty_dirs: list[str] = []
    for v in items(raw, f"{where}: spec.volumes"):
        vname = v.get("name")
        if not isinstance(vname, str) or not vname:
            raise InvalidArgument(f"{where}: spec.volumes[] needs a name")
        if vname in volumes:
            raise InvalidArgument(f"{where}: volume {vname!r} is defined twice")
        if "hostPath" in v:
            volumes[vname] = _host_path(
                mapping(v["hostPath"], f"{where}: volume {vname!r} hostPath"), vname, where, warnings
            )
        elif "emptyDir" in v:
            ed = mapping(v["emptyDir"] or {}, f"{where}: volume {vname!r} emptyDir")
            if ed.get("medium") == "Memory":
                warnings.append(f"{where}: volume {vname!r}: emptyDir medium Memory is backed by disk")
            volumes[vname] = KubeMount(source="", target="", volume=vname, empty_dir=True)
            empty_dirs.append(vname)
        else:
            kinds = sorted(set(v) - {"name"})
            raise InvalidArgument(
                f"{where}: volume {vname!r}: only hostPath and emptyDir volumes are supported, "
                f"not {', '.join(kinds) or 'an empty volume'}"
            )
    return volumes, empty_dirs


def _host_path(hp: dict[str, Any], vname: str, where: str, warnings: list[str]) -> KubeMount:
    path = hp.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidArgument(f"{where}: volume {vname!r}: hostPath.path must be absolute")
    htype = hp.get("type") or ""
    if not isinstance(htype, str):
        raise InvalidArgument(f"{where}: volume {vname!r}: hostPath.type must be a string")
    if htype not in ("", "Directory", "DirectoryOrCreate", "File", "FileOrCreate"):
        warnings.append(f"{where}: volume {vname!r}: hostPath.type {htype!r} is not checked")
    mount = KubeMount(
        source=path,
        target="",
        volume=vname,
        create={"DirectoryOrCreate": "dir", "FileOrCreate": "file"}.get(htype, ""),
    )
    if htype in ("Directory", "File") and not os.path.exists(path):
        raise InvalidArgument(f"{where}: volume {vname!r}: hostPath {path} does not exist")
    return mount


def _containers(
    raw: object, where: str, volumes: dict[str, KubeMount], warnings: list[str]
) -> tuple[list[KubeContainer], list[PortMapping]]:
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument(f"{where}: spec.containers must list at least one container")
    containers: list[KubeContainer] = []
    host_ports: list[PortMapping] = []
    for c in raw:
        kc = container(mapping(c, f"{where}: spec.containers[]"), where, volumes, host_ports, warnings)
        if any(kc.name == o.name for o in containers):
            raise InvalidArgument(f"{where}: container name {kc.name!r} is used twice")
        containers.append(kc)
    return containers, host_ports
