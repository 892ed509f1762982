"""Published ports: ``-p [ip:][hostPort:]containerPort[/proto]`` and their CNI form."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import asdict, dataclass
from typing import Any

from podkit.errors import InvalidArgument

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortMapping:
    """One host port forwarded to one container port. host_port 0: pick a free one."""

    host_ip: str
    host_port: int
    container_port: int
    protocol: str = "tcp"

    def to_cni(self) -> dict[str, Any]:
        """The portmap plugin's ``runtimeConfig.portMappings`` entry."""
        m: dict[str, Any] = {
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol,
        }
        if self.host_ip:
            m["hostIP"] = self.host_ip
        return m

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PortMapping:
        if not isinstance(d, dict):
            raise InvalidArgument(f"invalid port mapping {d!r}: want a spec string or an object")
        container_port = d.get("container_port", d.get("containerPort"))
        if container_port is None:
            raise InvalidArgument(f"invalid port mapping {d!r}")
        try:
            return cls(
                host_ip=str(d.get("host_ip") or d.get("hostIP") or ""),
                host_port=int(d.get("host_port", d.get("hostPort", 0)) or 0),
                container_port=int(container_port),
                protocol=str(d.get("protocol") or "tcp").lower(),
            ).validated()
        except (TypeError, ValueError):
            raise InvalidArgument(f"invalid port mapping {d!r}") from None

    def validated(self) -> PortMapping:
        if self.protocol not in PROTOCOLS:
            raise InvalidArgument(f"invalid protocol {self.protocol!r} in port mapping: use tcp or udp")
        if not 1 <= self.container_port <= 65535:
            raise InvalidArgument(f"invalid container port {self.container_port}: must be 1-65535")
        if not 0 <= self.host_port <= 65535:
            raise InvalidArgument(f"invalid host port {self.host_port}: must be 1-65535")
        if self.host_ip:
            ip = _check_ip(self.host_ip, str(self))
            if ip != self.host_ip:
                return PortMapping(ip, self.host_port, self.container_port, self.protocol)
        return self

    def __str__(self) -> str:
        ip = f"[{self.host_ip}]" if ":" in self.host_ip else self.host_ip
        host = f"{ip}:{self.host_port}" if ip else f"0.0.0.0:{self.host_port}"
        return f"{host}->{self.container_port}/{self.protocol}"


def _check_ip(text: str, spec: str) -> str:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid host IP {text!r} in port spec {spec!r}") from None
    # 0.0.0.0 / :: mean every address, which portmap spells as no hostIP at all
    # (a "-d 0.0.0.0/32" rule would match nothing).
    return "" if ip.is_unspecified else str(ip)


def _port_range(text: str, what: str, spec: str, allow_empty: bool = False) -> tuple[int, int]:
    if text == "" and allow_empty:
        return (0, 0)
    lo_s, sep, hi_s = text.partition("-")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r} in port spec {spec!r}") from None
    if not (1 <= lo <= 65535 and 1 <= hi <= 65535):
        raise InvalidArgument(f"invalid {what} {text!r} in port spec {spec!r}: ports are 1-65535")
    if hi < lo:
        raise InvalidArgument(f"invalid {what} range {text!r} in port spec {spec!r}: end before start")
    return lo, hi


def parse_port_spec(text: str) -> list[PortMapping]:
    """Parse docker's ``[ip:][hostPort:]containerPort[/proto]`` (ports may be ranges).

    ``80`` publishes container port 80 on a free host port (host_port 0);
    ``127.0.0.1::80`` does the same on one address; ``8000-8001:80-81/udp`` maps
    ranges of equal length pairwise.
    """
    spec = text.strip()
    if not spec:
        raise InvalidArgument("empty port spec")
    body, slash, proto = spec.rpartition("/") if "/" in spec else (spec, "", "tcp")
    proto = proto.lower()
    if slash and proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in port spec {text!r}: use tcp or udp")
    host_ip = ""
    if body.startswith("["):  # [v6addr]:host:container
        end = body.find("]")
        if end < 0 or body[end + 1 : end + 2] != ":":
            raise InvalidArgument(f"invalid IPv6 address in port spec {text!r}")
        host_ip = _check_ip(body[1:end], text)
        rest = body[end + 2 :].split(":")
        if len(rest) != 2:
            raise InvalidArgument(f"invalid port spec {text!r}: expected [ip]:hostPort:containerPort")
        host_part, cont_part = rest
    else:
        parts = body.split(":")
        if len(parts) == 1:
            host_part, cont_part = "", parts[0]
        elif len(parts) == 2:
            host_part, cont_part = parts
            if host_part == "":
                raise InvalidArgument(f"invalid port spec {text!r}: empty host port")
        elif len(parts) == 3:
            host_ip = _check_ip(parts[0], text) if parts[0] else ""
            host_part, cont_part = parts[1], parts[2]
        else:
            raise InvalidArgument(
                f"invalid port spec {text!r}: expected [ip:][hostPort:]containerPort[/tcp|udp]"
            )
    c_lo, c_hi = _port_range(cont_part, "container port", text)
    h_lo, h_hi = _port_range(host_part, "host port", text, allow_empty=True)
    n = c_hi - c_lo + 1
    if h_lo and (h_hi - h_lo + 1) != n:
        raise InvalidArgument(
            f"invalid port spec {text!r}: host range {host_part} and container range {cont_part} "
            "differ in length"
        )
    return [PortMapping(host_ip, (h_lo + i) if h_lo else 0, c_lo + i, proto) for i in range(n)]


def parse_port_specs(specs: list[str]) -> list[PortMapping]:
    """Parse several ``-p`` values and refuse a host port published twice."""
    out: list[PortMapping] = []
    seen: dict[tuple[str, int, str], str] = {}
    for spec in specs:
        for m in parse_port_spec(spec):
            key = (m.host_ip or "0.0.0.0", m.host_port, m.protocol)
            if m.host_port and key in seen:
                raise InvalidArgument(
                    f"host port {m.host_port}/{m.protocol} is published twice ({seen[key]!r}, {spec!r})"
                )
            seen[key] = spec
            out.append(m)
    return out


def free_host_port(protocol: str = "tcp", host_ip: str = "") -> int:
    """A port the kernel says is free now (the portmap rule then claims it by DNAT)."""
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    fam = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    with socket.socket(fam, kind) as s:
        s.bind((host_ip or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), 0))
        return int(s.getsockname()[1])
