"""Registry credentials and authentication challenges.

Credentials come, in this order, from the request (the CLI sends the entry of the
user's ``~/.docker/config.json`` in an ``X-Registry-Auth`` header, as docker does),
then from the daemon user's own ``~/.docker/config.json`` (``$DOCKER_CONFIG``
honoured). Only plain ``auths`` entries are read; credential helpers
(``credsStore``/``credHelpers``) are not run by the daemon.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podkit.errors import InvalidArgument

# Docker Hub is stored under its v1 URL in config.json; accept every alias.
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identitytoken: str = ""  # an OAuth2 refresh token, sent to the token server
    registrytoken: str = ""  # a bearer token used as is

    def __bool__(self) -> bool:
        return bool(self.username or self.identitytoken or self.registrytoken)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def auth_keys(registry: str) -> tuple[str, ...]:
    """The config.json keys an entry for this registry may be stored under."""
    if registry in _HUB_KEYS:
        return _HUB_KEYS
    return (
        registry,
        f"https://{registry}",
        f"http://{registry}",
        f"https://{registry}/v2/",
        f"http://{registry}/v2/",
    )


def entry_to_credentials(entry: dict[str, Any]) -> Credentials:
    user, pw = entry.get("username", ""), entry.get("password", "")
    if entry.get("auth") and not user:
        try:
            user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidArgument("docker config: an 'auth' entry is not base64 of user:password") from None
    return Credentials(user, pw, entry.get("identitytoken", ""), entry.get("registrytoken", ""))


def from_docker_config(registry: str, path: Path | None = None) -> Credentials:
    """The credentials stored for a registry, or empty ones."""
    p = path or docker_config_path()
    try:
        data = json.loads(p.read_text())
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return Credentials()
    except ValueError:
        raise InvalidArgument(f"{p} is not valid JSON") from None
    auths = data.get("auths") if isinstance(data, dict) else None
    if not isinstance(auths, dict):
        return Credentials()
    for key in auth_keys(registry):
        entry = auths.get(key)
        if isinstance(entry, dict):
            return entry_to_credentials(entry)
    return Credentials()


def decode_header(value: str | None) -> Credentials:
    """Decode ``X-Registry-Auth``: base64url JSON of username/password or identitytoken."""
    if not value:
        return Credentials()
    try:
        pad = "=" * (-len(value) % 4)
        data = json.loads(base64.urlsafe_b64decode(value + pad))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument("X-Registry-Auth header is not base64url-encoded JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("X-Registry-Auth header must hold a JSON object")
    return entry_to_credentials(data)


def encode_header(creds: Credentials) -> str:
    d = {
        k: v
        for k, v in (
            ("username", creds.username),
            ("password", creds.password),
            ("identitytoken", creds.identitytoken),
        )
        if v
    }
    return base64.urlsafe_b64encode(json.dumps(d).encode()).decode()


_PARAM_RE = re.compile(r'\s*([a-zA-Z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer" | "basic"
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` (RFC 7235) into challenges, e.g.
    ``Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"``.
    """
    out: list[Challenge] = []
    rest = header.strip()
    while rest:
        m = re.match(r"([A-Za-z][A-Za-z0-9_-]*)\s*", rest)
        if not m:
            break
        scheme = m.group(1).lower()
        rest = rest[m.end() :]
        params: dict[str, str] = {}
        while True:
            pm = _PARAM_RE.match(rest)
            if not pm:
                break
            value = pm.group(2) if pm.group(2) is not None else pm.group(3)
            params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
            rest = rest[pm.end() :]
        out.append(Challenge(scheme, params))
        rest = rest.lstrip(", ")
    return out
