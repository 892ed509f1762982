"""The pod record: what a pod sandbox is made of, in a shape the CRI can fill too.

A pod is a set of containers that share some kernel namespaces (net, ipc, uts and
optionally pid) held by an infra process, plus the files and mounts those
containers share (/etc/hosts, /etc/resolv.conf, /dev/shm) and a cgroup that parents
theirs. ``Pod`` carries everything Kubernetes' PodSandboxConfig can ask for
(metadata name/uid/namespace/attempt, hostname, log directory, DNS config, port
mappings, labels/annotations, cgroup parent, namespace options, sysctls) so the
CRI front end can map onto it without another model.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from podkit.errors import InvalidArgument
from podkit.limits import check_labels
from podkit.network.dns import parse_add_host
from podkit.network.ports import PortMapping, parse_port_specs
from podkit.pods.sandbox import sysctl_kind

# What a pod may share; net+ipc+uts is what Kubernetes pods share by default.
SHAREABLE = ("net", "ipc", "uts", "pid")
DEFAULT_SHARE = ("net", "ipc", "uts")

# Lifecycle of the record itself. The pod's reported status (Running, Degraded,
# Exited...) is derived from its containers at read time.
STATE_CREATING = "creating"  # resources being set up; a crash here is rolled back on start
STATE_READY = "ready"  # every sandbox resource exists
STATE_REMOVING = "removing"  # tear-down began; finished on the next start if it crashed

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
HOSTNAME_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$")


@dataclass
class DNSConfig:
    servers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


@dataclass
class PodSpec:
    """What a client asks for (the body of POST /pods, the CRI's PodSandboxConfig)."""

    name: str = ""
    hostname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    share: list[str] = field(default_factory=lambda: list(DEFAULT_SHARE))
    # The host's pid / ipc namespace for every container (CRI NamespaceMode NODE,
    # kube hostPID / hostIPC); the host's network is network="host".
    host_pid: bool = False
    host_ipc: bool = False
    # bridge (the default network) | host | none | a network's name
    network: str = "bridge"
    ports: list[PortMapping] = field(default_factory=list)
    dns: DNSConfig = field(default_factory=DNSConfig)
    add_hosts: list[str] = field(default_factory=list)  # "name:ip"
    cgroup_parent: str = ""  # where the pod's own cgroup goes (CRI); default podkit's
    memory: int = 0  # bytes, 0 = unlimited
    cpus: float = 0.0  # CPUs, 0 = unlimited
    shm_size: int = 64 * 1024 * 1024
    log_directory: str = ""
    sysctls: dict[str, str] = field(default_factory=dict)
    # CRI metadata (uid, namespace, attempt), kept as given
    uid: str = ""
    kube_namespace: str = ""
    attempt: int = 0
    restart_policy: str = ""  # for containers added without their own policy
    infra_image: str = ""
    # The infra container's seccomp: "" the containers layer's default, or "default" /
    # "unconfined" (the CRI's sandboxes are unconfined unless their config asks).
    infra_seccomp: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PodSpec:
        if not isinstance(d, dict):
            raise InvalidArgument("pod spec must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidArgument(f"unknown pod field(s): {', '.join(unknown)}")
        kw = dict(d)
        for key, want in _FIELD_TYPES.items():
            if key in kw and kw[key] is not None and not _is(kw[key], want):
                raise InvalidArgument(f"pod field {key!r} must be {_TYPE_WORDS[want]}, got {kw[key]!r}")
            if key in kw and kw[key] is None:
                del kw[key]
        if "ports" in kw:
            raw = kw["ports"] or []
            if not isinstance(raw, list):
                raise InvalidArgument("ports must be a list of [ip:]hostPort:containerPort[/proto]")
            kw["ports"] = parse_port_specs([p for p in raw if isinstance(p, str)]) + [
                p if isinstance(p, PortMapping) else PortMapping.from_dict(p)
                for p in raw
                if not isinstance(p, str)
            ]
        if "dns" in kw:
            dns = kw["dns"] or {}
            if not isinstance(dns, dict):
                raise InvalidArgument("dns must be an object with servers, searches, options")
            parts = {}
            for k in ("servers", "searches", "options"):
                v = dns.get(k) or []
                if not _is(v, list):
                    raise InvalidArgument(f"dns.{k} must be a list of strings")
                parts[k] = list(v)
            kw["dns"] = DNSConfig(**parts)
        for k in ("labels", "annotations", "sysctls"):
            if k in kw:
                v = kw[k] or {}
                if not isinstance(v, dict):
                    raise InvalidArgument(f"{k} must be an object of strings")
                kw[k] = {str(a): str(b) for a, b in v.items()}
                if k != "sysctls":
                    check_labels(kw[k], f"pod {k}")
        spec = cls(**kw)
        spec.validate()
        return spec

    def validate(self) -> None:
        if self.infra_seccomp not in ("", "default", "unconfined"):
            raise InvalidArgument(f"invalid infra_seccomp {self.infra_seccomp!r}: use default or unconfined")
        if self.name and not NAME_RE.fullmatch(self.name):
            raise InvalidArgument(
                f"invalid pod name {self.name!r}: use letters, digits, '_', '.', '-' (max 128)"
            )
        if self.hostname and not HOSTNAME_RE.fullmatch(self.hostname):
            raise InvalidArgument(f"invalid hostname {self.hostname!r}")
        share = [s.strip() for s in self.share if s.strip()]
        bad = [s for s in share if s not in SHAREABLE]
        if bad:
            raise InvalidArgument(
                f"cannot share {', '.join(bad)}: a pod shares any of {', '.join(SHAREABLE)}"
            )
        if "net" not in share and self.ports:
            raise InvalidArgument("published ports need a shared network namespace (--share net)")
        for kind, on_host in (("pid", self.host_pid), ("ipc", self.host_ipc)):
            if on_host and kind in share:
                raise InvalidArgument(
                    f"a pod either shares its own {kind} namespace or uses the host's, not both"
                )
        self.share = sorted(set(share), key=SHAREABLE.index)
        if self.memory < 0 or self.cpus < 0:
            raise InvalidArgument("memory and cpus must not be negative")
        if not isinstance(self.shm_size, int) or self.shm_size < 64 * 1024:
            raise InvalidArgument(f"invalid shm size {self.shm_size!r}: at least 64k")
        if self.memory and self.memory < 6 * 1024 * 1024:
            raise InvalidArgument("pod memory limit must be at least 6MB")
        for key in self.sysctls:
            kind = sysctl_kind(key)
            if not kind:
                raise InvalidArgument(
                    f"sysctl {key!r} is not namespaced: a pod may set net.*, kernel.shm*/msg*/sem, "
                    "fs.mqueue.* (and not host-wide settings)"
                )
            if kind == "net" and self.network == "host" or kind not in self.share:
                raise InvalidArgument(f"sysctl {key!r} needs the pod's own {kind} namespace")
        nets = [n.strip() for n in self.network.split(",")]
        if len(nets) > 1 and ({"host", "none"} & set(nets) or "" in nets):
            raise InvalidArgument(f"invalid network list {self.network!r}: host and none stand alone")
        if self.network == "host" and self.ports:
            raise InvalidArgument("published ports make no sense with the host network")
        for server in self.dns.servers:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise InvalidArgument(f"invalid DNS server {server!r}: not an IP address") from None
        # name:ip with a real IP (v6 too); normalised, so hosts files stay well-formed.
        self.add_hosts = ["{}:{}".format(*parse_add_host(h)) for h in self.add_hosts]
        seen: set[tuple[int, str, str]] = set()
        for p in self.ports:
            port = (p.host_port, p.protocol, p.host_ip)
            if p.host_port and port in seen:
                raise InvalidArgument(f"host port {p.host_port}/{p.protocol} published twice")
            seen.add(port)


_FIELD_TYPES: dict[str, type] = {
    "name": str,
    "hostname": str,
    "network": str,
    "cgroup_parent": str,
    "log_directory": str,
    "uid": str,
    "kube_namespace": str,
    "restart_policy": str,
    "infra_image": str,
    "infra_seccomp": str,
    "attempt": int,
    "memory": int,
    "shm_size": int,
    "cpus": float,
    "host_pid": bool,
    "host_ipc": bool,
    "share": list,
    "add_hosts": list,
}
_TYPE_WORDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list"}


def _is(v: object, want: type) -> bool:
    if want is bool:
        return isinstance(v, bool)
    if want in (int, float) and isinstance(v, bool):
        return False
    if want is float:
        return isinstance(v, int | float)
    if want is list:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)
    return isinstance(v, want)


@dataclass
class Pod:
    """A pod as stored: the spec plus what podkit made for it."""

    id: str
    namespace: str
    spec: PodSpec
    created: float
    state: str = STATE_CREATING
    infra_id: str = ""
    netns_path: str = ""  # "" when the pod uses the host's network
    ips: list[str] = field(default_factory=list)
    gateway: str = ""
    # aardvark-dns on a user network's gateway, when it serves the pod's names: the
    # pod's resolv.conf names it (unless the pod was given servers) at every start.
    dns_server: str = ""
    ports: list[PortMapping] = field(default_factory=list)  # as published (free ports resolved)
    cgroup_path: str = ""  # the pod's own cgroup, relative to each hierarchy
    state_dir: str = ""  # hosts, resolv.conf, shm, pinned ipc/uts namespaces
    started: float = 0.0
    # emptyDir volumes made for kube pods: name -> host directory
    volumes: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, d: dict[str, Any]) -> Pod:
        d = dict(d)
        spec = dict(d.pop("spec"))
        spec["ports"] = [PortMapping.from_dict(p) for p in spec.get("ports", [])]
        d["ports"] = [PortMapping.from_dict(p) for p in d.get("ports", [])]
        spec["dns"] = DNSConfig(**spec.get("dns", {}))
        known = {f.name for f in fields(PodSpec)}
        pod_known = {f.name for f in fields(cls)}
        return cls(
            spec=PodSpec(**{k: v for k, v in spec.items() if k in known}),
            **{k: v for k, v in d.items() if k in pod_known},
        )
