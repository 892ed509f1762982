"""Where and how to reach a registry: the ``[registries."host:port"]`` config section.

    [registries."registry.example:5000"]
    mirrors = ["mirror.local:5000", "https://other-mirror.example"]
    insecure = true      # HTTPS without verifying the certificate
    plain_http = true    # HTTP instead of HTTPS
    ca_file = "/etc/podkit/certs/registry.example.pem"   # extra CA to trust

Like docker, a registry on a loopback address (127.0.0.0/8, ::1, localhost) is
reached over plain HTTP without any configuration: that is how local test and
cache registries are run (``plain_http = false`` makes it HTTPS). Docker Hub's name ``docker.io`` is served by
``registry-1.docker.io``. Mirrors are tried first, in order, for pulls only;
pushes always go to the registry itself.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from podkit.errors import InvalidArgument

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"


@dataclass(frozen=True)
class Endpoint:
    """One base URL to talk to for a registry."""

    host: str  # host[:port] as in the URL
    scheme: str  # "http" | "https"
    verify_tls: bool = True
    mirror: bool = False
    ca_file: str = ""

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}"


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1, with or without a port."""
    name = split_host(host)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_host(host: str) -> tuple[str, str]:
    """('host', 'port') from 'host:port', '[::1]:5000' or 'host'."""
    if host.startswith("["):
        end = host.find("]")
        return host[1:end], host[end + 2 :] if end + 1 < len(host) and host[end + 1] == ":" else ""
    name, _, port = host.partition(":")
    return name, port


@dataclass(frozen=True)
class HostSettings:
    mirrors: tuple[str, ...] = ()
    insecure: bool = False
    plain_http: bool | None = None  # None: plain HTTP on loopback addresses only
    ca_file: str = ""


class RegistryHosts:
    """Maps a registry name to the endpoints to try, per the daemon config."""

    def __init__(self, section: dict[str, Any] | None = None) -> None:
        self._settings: dict[str, HostSettings] = {}
        for host, raw in (section or {}).items():
            if not isinstance(raw, dict):
                raise InvalidArgument(f'config: [registries."{host}"] must be a table')
            unknown = set(raw) - {"mirrors", "insecure", "plain_http", "ca_file"}
            if unknown:
                raise InvalidArgument(
                    f'config: [registries."{host}"]: unknown keys {sorted(unknown)} '
                    "(known: mirrors, insecure, plain_http, ca_file)"
                )
            for key in ("insecure", "plain_http"):
                if key in raw and not isinstance(raw[key], bool):
                    raise InvalidArgument(f'config: [registries."{host}"] {key} must be true or false')
            ca_file = raw.get("ca_file", "")
            if not isinstance(ca_file, str):
                raise InvalidArgument(f'config: [registries."{host}"] ca_file must be a path')
            mirrors = raw.get("mirrors", [])
            if not isinstance(mirrors, list) or not all(isinstance(m, str) and m for m in mirrors):
                raise InvalidArgument(f'config: [registries."{host}"] mirrors must be a list of hosts')
            self._settings[host] = HostSettings(
                tuple(mirrors), raw.get("insecure", False), raw.get("plain_http"), ca_file
            )

    def settings(self, registry: str) -> HostSettings:
        return self._settings.get(registry) or HostSettings()

    def endpoint(self, registry: str) -> Endpoint:
        """The registry's own endpoint (used for pushes and logins, and after mirrors)."""
        return self._endpoint_for(registry, mirror=False)

    def pull_endpoints(self, registry: str) -> list[Endpoint]:
        """Mirrors first, in configured order, then the registry itself."""
        out = [self._endpoint_for(m, mirror=True) for m in self.settings(registry).mirrors]
        out.append(self.endpoint(registry))
        return out

    def _endpoint_for(self, name: str, mirror: bool) -> Endpoint:
        scheme = ""
        if "://" in name:
            scheme, _, name = name.partition("://")
            if scheme not in ("http", "https"):
                raise InvalidArgument(f"registry mirror {name!r}: scheme must be http or https")
            name = name.rstrip("/")
        s = self.settings(name)
        host = DOCKER_HUB_API if name == DOCKER_HUB else name
        if not scheme:
            plain = s.plain_http if s.plain_http is not None else is_loopback(host)
            scheme = "http" if plain else "https"
        return Endpoint(host=host, scheme=scheme, verify_tls=not s.insecure, mirror=mirror, ca_file=s.ca_file)
