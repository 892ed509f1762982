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
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from podkit.errors import InvalidArgument
from podkit.pods.model import DNSConfig, PodSpec, PortMapping

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
_CONTAINER_FIELDS = {
    "name",
    "image",
    "command",
    "args",
    "env",
    "workingDir",
    "ports",
    "volumeMounts",
    "resources",
    "securityContext",
    "imagePullPolicy",
    "stdin",
    "tty",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "envFrom",
}
_SECURITY_FIELDS = {
    "runAsUser",
    "runAsGroup",
    "privileged",
    "readOnlyRootFilesystem",
    "capabilities",
    "allowPrivilegeEscalation",
    "runAsNonRoot",
}
_DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class KubeMount:
    source: str  # host path (hostPath, or the emptyDir's directory once made)
    target: str
    readonly: bool = False
    volume: str = ""
    empty_dir: bool = False
    create: str = ""  # hostPath DirectoryOrCreate → "dir", FileOrCreate → "file"


@dataclass
class KubeContainer:
    name: str
    image: str
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = ""
    mounts: list[KubeMount] = field(default_factory=list)
    memory: int = 0
    cpus: float = 0.0
    user: str = ""
    privileged: bool = False
    read_only: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    no_new_privileges: bool | None = None
    tty: bool = False
    stdin: bool = False


@dataclass
class KubePod:
    spec: PodSpec
    containers: list[KubeContainer]
    empty_dirs: list[str] = field(default_factory=list)
    kind: str = "Pod"
    source_name: str = ""  # the object's metadata.name (the Deployment's for a Deployment)
    warnings: list[str] = field(default_factory=list)


def parse_quantity(v: Any, what: str) -> Decimal:
    """A Kubernetes quantity ("64Mi", "1G", "500m", "0.5", 1e3) as a number."""
    suffixes = {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "Pi": 2**50,
        "Ei": 2**60,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
        "P": 10**15,
        "E": 10**18,
        "m": Decimal("0.001"),
        "": 1,
    }
    s = str(v).strip()
    m = re.fullmatch(r"([+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?", s)
    if not m:
        raise InvalidArgument(f"{what}: {v!r} is not a quantity (like 64Mi, 1G, 500m)")
    try:
        return Decimal(m.group(1)) * Decimal(suffixes[m.group(2) or ""])
    except InvalidOperation:
        raise InvalidArgument(f"{what}: {v!r} is not a quantity") from None


def load_documents(text: str) -> list[dict[str, Any]]:
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise InvalidArgument(f"invalid YAML: {e}") from None
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
        where = f"document {i + 1} ({kind or 'no kind'})"
        if kind == "Pod":
            if api != "v1":
                raise InvalidArgument(f"{where}: a Pod is apiVersion v1, not {api!r}")
            meta = _mapping(doc.get("metadata"), f"{where}: metadata")
            pods.append(_pod(meta, _mapping(doc.get("spec"), f"{where}: spec"), where, "Pod"))
        elif kind == "Deployment":
            if api != "apps/v1":
                raise InvalidArgument(f"{where}: a Deployment is apiVersion apps/v1, not {api!r}")
            meta = _mapping(doc.get("metadata"), f"{where}: metadata")
            dspec = _mapping(doc.get("spec"), f"{where}: spec")
            tmpl = _mapping(dspec.get("template"), f"{where}: spec.template")
            tmeta = dict(_mapping(tmpl.get("metadata") or {}, f"{where}: spec.template.metadata"))
            tmeta["name"] = meta.get("name") or tmeta.get("name")
            tmeta.setdefault("namespace", meta.get("namespace"))
            kp = _pod(tmeta, _mapping(tmpl.get("spec"), f"{where}: spec.template.spec"), where, "Deployment")
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


def _mapping(v: Any, what: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise InvalidArgument(f"{what} must be a mapping")
    return v


def _strings(v: Any, what: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str | int | float) for x in v):
        raise InvalidArgument(f"{what} must be a list of strings")
    return [str(x) for x in v]


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise InvalidArgument(f"{what} must be true or false")
    return v


def _pod(meta: dict[str, Any], spec: dict[str, Any], where: str, kind: str) -> KubePod:
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{where}: metadata.name is required")
    warnings: list[str] = []
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    ps = PodSpec(
        name=name,
        labels=labels,
        annotations=annotations,
        uid=str(meta.get("uid") or ""),
        kube_namespace=str(meta.get("namespace") or ""),
    )
    for k in sorted(set(spec) - _POD_SPEC_FIELDS):
        warnings.append(f"{where}: spec.{k} is not supported and was ignored")
    for k in sorted(set(spec) & _CLUSTER_ONLY):
        warnings.append(f"{where}: spec.{k} only matters in a cluster and was ignored")
    if spec.get("hostname") is not None:
        ps.hostname = str(spec["hostname"])
    else:
        ps.hostname = name[:63]
    if spec.get("hostNetwork") is not None and _bool(spec["hostNetwork"], f"{where}: spec.hostNetwork"):
        ps.network = "host"
    share = ["net", "ipc", "uts"]
    if spec.get("shareProcessNamespace") is not None and _bool(
        spec["shareProcessNamespace"], f"{where}: spec.shareProcessNamespace"
    ):
        share.append("pid")
    if spec.get("hostPID") is not None and _bool(spec["hostPID"], f"{where}: spec.hostPID"):
        if "pid" in share:
            raise InvalidArgument(f"{where}: hostPID and shareProcessNamespace exclude each other")
        ps.host_pid = True
    if spec.get("hostIPC") is not None and _bool(spec["hostIPC"], f"{where}: spec.hostIPC"):
        share.remove("ipc")
        ps.host_ipc = True
    ps.share = share
    if "dnsConfig" in spec:
        dc = _mapping(spec["dnsConfig"], f"{where}: spec.dnsConfig")
        opts = []
        for o in dc.get("options") or []:
            o = _mapping(o, f"{where}: spec.dnsConfig.options[]")
            if "name" not in o:
                raise InvalidArgument(f"{where}: spec.dnsConfig.options[] needs a name")
            opts.append(f"{o['name']}:{o['value']}" if o.get("value") is not None else str(o["name"]))
        ps.dns = DNSConfig(
            servers=_strings(dc.get("nameservers") or [], f"{where}: dnsConfig.nameservers"),
            searches=_strings(dc.get("searches") or [], f"{where}: dnsConfig.searches"),
            options=opts,
        )
    for ha in spec.get("hostAliases") or []:
        ha = _mapping(ha, f"{where}: spec.hostAliases[]")
        ip = ha.get("ip")
        if not ip:
            raise InvalidArgument(f"{where}: spec.hostAliases[] needs an ip")
        for h in _strings(ha.get("hostnames") or [], f"{where}: spec.hostAliases[].hostnames"):
            ps.add_hosts.append(f"{h}:{ip}")
    rp = spec.get("restartPolicy", "Always")
    if rp not in RESTART:
        raise InvalidArgument(f"{where}: spec.restartPolicy must be Always, OnFailure or Never, not {rp!r}")
    ps.restart_policy = RESTART[rp]
    psc = _mapping(spec.get("securityContext") or {}, f"{where}: spec.securityContext")
    for sc in psc.get("sysctls") or []:
        sc = _mapping(sc, f"{where}: spec.securityContext.sysctls[]")
        if not sc.get("name"):
            raise InvalidArgument(f"{where}: spec.securityContext.sysctls[] needs a name")
        ps.sysctls[str(sc["name"])] = str(sc.get("value", ""))
    for k in sorted(set(psc) - {"sysctls"}):
        warnings.append(f"{where}: spec.securityContext.{k} is not supported and was ignored")
    if spec.get("initContainers"):
        warnings.append(f"{where}: spec.initContainers are not supported and were ignored")

    volumes: dict[str, KubeMount] = {}
    empty_dirs: list[str] = []
    for v in spec.get("volumes") or []:
        v = _mapping(v, f"{where}: spec.volumes[]")
        vname = v.get("name")
        if not isinstance(vname, str) or not vname:
            raise InvalidArgument(f"{where}: spec.volumes[] needs a name")
        if vname in volumes:
            raise InvalidArgument(f"{where}: volume {vname!r} is defined twice")
        if "hostPath" in v:
            hp = _mapping(v["hostPath"], f"{where}: volume {vname!r} hostPath")
            path = hp.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise InvalidArgument(f"{where}: volume {vname!r}: hostPath.path must be absolute")
            htype = hp.get("type") or ""
            if htype not in ("", "Directory", "DirectoryOrCreate", "File", "FileOrCreate"):
                warnings.append(f"{where}: volume {vname!r}: hostPath.type {htype!r} is not checked")
            volumes[vname] = KubeMount(
                source=path,
                target="",
                volume=vname,
                create={"DirectoryOrCreate": "dir", "FileOrCreate": "file"}.get(htype, ""),
            )
            if htype in ("Directory", "File") and not os.path.exists(path):
                raise InvalidArgument(f"{where}: volume {vname!r}: hostPath {path} does not exist")
        elif "emptyDir" in v:
            ed = v["emptyDir"] or {}
            ed = _mapping(ed, f"{where}: volume {vname!r} emptyDir")
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

    raw_containers = spec.get("containers")
    if not isinstance(raw_containers, list) or not raw_containers:
        raise InvalidArgument(f"{where}: spec.containers must list at least one container")
    containers: list[KubeContainer] = []
    host_ports: list[PortMapping] = []
    for c in raw_containers:
        kc = _container(_mapping(c, f"{where}: spec.containers[]"), where, volumes, host_ports, warnings)
        if any(kc.name == o.name for o in containers):
            raise InvalidArgument(f"{where}: container name {kc.name!r} is used twice")
        containers.append(kc)
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


def _container(
    c: dict[str, Any],
    where: str,
    volumes: dict[str, KubeMount],
    host_ports: list[PortMapping],
    warnings: list[str],
) -> KubeContainer:
    name = c.get("name")
    if not isinstance(name, str) or not _DNS_NAME.fullmatch(name):
        raise InvalidArgument(f"{where}: container name {name!r} must be a DNS label (a-z, 0-9, '-')")
    w = f"{where}: container {name!r}"
    image = c.get("image")
    if not isinstance(image, str) or not image:
        raise InvalidArgument(f"{w}: image is required")
    for k in sorted(set(c) - _CONTAINER_FIELDS):
        warnings.append(f"{w}: {k} is not supported and was ignored")
    for k in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
        if k in c:
            warnings.append(f"{w}: {k} is not supported and was ignored")
    if c.get("envFrom"):
        raise InvalidArgument(f"{w}: envFrom is not supported (no ConfigMaps or Secrets here)")
    kc = KubeContainer(name=name, image=image)
    if c.get("command") is not None:
        kc.entrypoint = _strings(c["command"], f"{w}: command")
    if c.get("args") is not None:
        kc.cmd = _strings(c["args"], f"{w}: args")
    for e in c.get("env") or []:
        e = _mapping(e, f"{w}: env[]")
        ename = e.get("name")
        if not isinstance(ename, str) or not ename:
            raise InvalidArgument(f"{w}: env[] needs a name")
        if "valueFrom" in e:
            raise InvalidArgument(
                f"{w}: env {ename!r} uses valueFrom, which podkit does not support; give a value"
            )
        val = e.get("value", "")
        kc.env[ename] = "" if val is None else str(val)
    if c.get("workingDir"):
        kc.workdir = str(c["workingDir"])
    for p in c.get("ports") or []:
        p = _mapping(p, f"{w}: ports[]")
        if "containerPort" not in p:
            raise InvalidArgument(f"{w}: ports[] needs containerPort")
        proto = str(p.get("protocol") or "TCP").lower()
        if p.get("hostPort"):
            host_ports.append(
                PortMapping.from_dict(
                    {
                        "host_port": p["hostPort"],
                        "container_port": p["containerPort"],
                        "protocol": proto,
                        "host_ip": p.get("hostIP") or "",
                    }
                )
            )
        else:
            PortMapping.from_dict({"container_port": p["containerPort"], "protocol": proto}).validated()
    for m in c.get("volumeMounts") or []:
        m = _mapping(m, f"{w}: volumeMounts[]")
        vname = m.get("name")
        if vname not in volumes:
            raise InvalidArgument(f"{w}: volumeMount {vname!r} names no volume of the pod")
        target = m.get("mountPath")
        if not isinstance(target, str) or not target.startswith("/"):
            raise InvalidArgument(f"{w}: volumeMount {vname!r}: mountPath must be absolute")
        if m.get("subPath"):
            raise InvalidArgument(f"{w}: volumeMount {vname!r}: subPath is not supported")
        v = volumes[vname]
        kc.mounts.append(
            KubeMount(
                source=v.source,
                target=target,
                volume=vname,
                empty_dir=v.empty_dir,
                create=v.create,
                readonly=bool(m.get("readOnly", False)),
            )
        )
    res = _mapping(c.get("resources") or {}, f"{w}: resources")
    limits = _mapping(res.get("limits") or {}, f"{w}: resources.limits")
    if "memory" in limits:
        kc.memory = int(parse_quantity(limits["memory"], f"{w}: resources.limits.memory"))
    if "cpu" in limits:
        kc.cpus = float(parse_quantity(limits["cpu"], f"{w}: resources.limits.cpu"))
    if res.get("requests"):
        warnings.append(f"{w}: resources.requests are not enforced on one host (only limits)")
    sc = _mapping(c.get("securityContext") or {}, f"{w}: securityContext")
    for k in sorted(set(sc) - _SECURITY_FIELDS):
        warnings.append(f"{w}: securityContext.{k} is not supported and was ignored")
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    for k, v in (("runAsUser", uid), ("runAsGroup", gid)):
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            raise InvalidArgument(f"{w}: securityContext.{k} must be a non-negative integer")
    if uid is not None:
        kc.user = str(uid) + (f":{gid}" if gid is not None else "")
    elif gid is not None:
        kc.user = f"0:{gid}"
    if sc.get("runAsNonRoot") and not uid:
        raise InvalidArgument(f"{w}: runAsNonRoot needs a non-zero runAsUser")
    if "privileged" in sc:
        kc.privileged = _bool(sc["privileged"], f"{w}: securityContext.privileged")
    if "readOnlyRootFilesystem" in sc:
        kc.read_only = _bool(sc["readOnlyRootFilesystem"], f"{w}: securityContext.readOnlyRootFilesystem")
    if "allowPrivilegeEscalation" in sc:
        kc.no_new_privileges = not _bool(
            sc["allowPrivilegeEscalation"], f"{w}: securityContext.allowPrivilegeEscalation"
        )
    caps = _mapping(sc.get("capabilities") or {}, f"{w}: securityContext.capabilities")
    kc.cap_add = [_cap(x) for x in _strings(caps.get("add") or [], f"{w}: capabilities.add")]
    kc.cap_drop = [_cap(x) for x in _strings(caps.get("drop") or [], f"{w}: capabilities.drop")]
    kc.tty = bool(c.get("tty", False))
    kc.stdin = bool(c.get("stdin", False))
    return kc


def _cap(name: str) -> str:
    n = name.upper()
    if n == "ALL":
        return n
    return n if n.startswith("CAP_") else f"CAP_{n}"
