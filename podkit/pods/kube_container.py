"""One container of a Kubernetes pod spec → a ``KubeContainer`` of the plan."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from podkit.errors import InvalidArgument
from podkit.network.ports import PortMapping
from podkit.pods.kube_fields import boolean, cap, items, mapping, parse_quantity, strings

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


def container(
    c: dict[str, Any],
    where: str,
    volumes: dict[str, KubeMount],
    host_ports: list[PortMapping],
    warnings: list[str],
) -> KubeContainer:
    """One entry of spec.containers; its hostPorts are added to ``host_ports``."""
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
        kc.entrypoint = strings(c["command"], f"{w}: command")
    if c.get("args") is not None:
        kc.cmd = strings(c["args"], f"{w}: args")
    _env(kc, c.get("env"), w)
    if c.get("workingDir"):
        kc.workdir = str(c["workingDir"])
    _ports(c.get("ports"), w, host_ports)
    _mounts(kc, c.get("volumeMounts"), w, volumes)
    _resources(kc, c.get("resources"), w, warnings)
    _security(kc, mapping(c.get("securityContext") or {}, f"{w}: securityContext"), w, warnings)
    kc.tty = bool(c.get("tty", False))
    kc.stdin = bool(c.get("stdin", False))
    return kc


def _env(kc: KubeContainer, env: object, w: str) -> None:
    for e in items(env, f"{w}: env"):
        ename = e.get("name")
        if not isinstance(ename, str) or not ename:
            raise InvalidArgument(f"{w}: env[] needs a name")
        if "valueFrom" in e:
            raise InvalidArgument(
                f"{w}: env {ename!r} uses valueFrom, which podkit does not support; give a value"
            )
        val = e.get("value", "")
        kc.env[ename] = "" if val is None else str(val)


def _ports(ports: object, w: str, host_ports: list[PortMapping]) -> None:
    for p in items(ports, f"{w}: ports"):
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


def _mounts(kc: KubeContainer, mounts: object, w: str, volumes: dict[str, KubeMount]) -> None:
    for m in items(mounts, f"{w}: volumeMounts"):
        vname = m.get("name")
        if not isinstance(vname, str) or vname not in volumes:
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


def _resources(kc: KubeContainer, resources: object, w: str, warnings: list[str]) -> None:
    res = mapping(resources or {}, f"{w}: resources")
    limits = mapping(res.get("limits") or {}, f"{w}: resources.limits")
    if "memory" in limits:
        kc.memory = int(parse_quantity(limits["memory"], f"{w}: resources.limits.memory"))
    if "cpu" in limits:
        kc.cpus = float(parse_quantity(limits["cpu"], f"{w}: resources.limits.cpu"))
    if res.get("requests"):
        warnings.append(f"{w}: resources.requests are not enforced on one host (only limits)")


def _security(kc: KubeContainer, sc: dict[str, Any], w: str, warnings: list[str]) -> None:
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
        kc.privileged = boolean(sc["privileged"], f"{w}: securityContext.privileged")
    if "readOnlyRootFilesystem" in sc:
        kc.read_only = boolean(sc["readOnlyRootFilesystem"], f"{w}: securityContext.readOnlyRootFilesystem")
    if "allowPrivilegeEscalation" in sc:
        kc.no_new_privileges = not boolean(
            sc["allowPrivilegeEscalation"], f"{w}: securityContext.allowPrivilegeEscalation"
        )
    caps = mapping(sc.get("capabilities") or {}, f"{w}: securityContext.capabilities")
    kc.cap_add = [cap(x) for x in strings(caps.get("add") or [], f"{w}: capabilities.add")]
    kc.cap_drop = [cap(x) for x in strings(caps.get("drop") or [], f"{w}: capabilities.drop")]
