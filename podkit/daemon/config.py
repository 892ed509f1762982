"""podkitd configuration: TOML file, overridden by command-line flags.

Core settings are typed fields; each layer reads its own section from ``raw``
(``[runtime]``, ``[network]``, ``[registries."host"]``...) so that a layer can grow
settings without touching this module.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podkit.errors import InvalidArgument

DEFAULT_CONFIG = "/etc/podkit/podkitd.toml"
DEFAULT_ROOT = "/var/lib/podkit"
DEFAULT_STATE = "/run/podkit"
DEFAULT_SOCKET = "/run/podkit/podkit.sock"
DEFAULT_CRI_SOCKET = "/run/podkit/cri.sock"
DEFAULT_DOCKER_SOCKET = "/run/podkit/docker.sock"


@dataclass
class Config:
    root: Path = Path(DEFAULT_ROOT)
    state: Path = Path(DEFAULT_STATE)
    socket: Path = Path(DEFAULT_SOCKET)
    log_level: str = "info"
    cri_socket: Path = Path(DEFAULT_CRI_SOCKET)  # the CRI's gRPC socket ([cri] socket)
    # The Docker Engine API's socket ([docker] socket / --docker-socket); None: not served.
    docker_socket: Path | None = Path(DEFAULT_DOCKER_SOCKET)
    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise InvalidArgument(f"config: [{name}] must be a table")
        return value


def load(path: str | None, overrides: dict[str, Any]) -> Config:
    raw: dict[str, Any] = {}
    cfg_path = Path(path or DEFAULT_CONFIG)
    if cfg_path.exists():
        try:
            raw = tomllib.loads(cfg_path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise InvalidArgument(f"config {cfg_path}: {e}") from None
    elif path:
        raise InvalidArgument(f"config file {cfg_path} does not exist")
    cfg = Config(raw=raw)
    for key in ("root", "state", "socket", "log_level"):
        value = overrides.get(key) or raw.get(key)
        if value is None:
            continue
        setattr(cfg, key, Path(value) if key != "log_level" else str(value))
    if overrides.get("state") and not overrides.get("socket") and "socket" not in raw:
        cfg.socket = cfg.state / "podkit.sock"
    cri_raw = cfg.section("cri").get("socket")
    if cri_raw is not None and (not isinstance(cri_raw, str) or not cri_raw.startswith("/")):
        raise InvalidArgument("config: [cri] socket must be an absolute path")
    if overrides.get("cri_socket"):
        cfg.cri_socket = Path(overrides["cri_socket"])
    elif cri_raw:
        cfg.cri_socket = Path(cri_raw)
    elif overrides.get("state"):
        cfg.cri_socket = cfg.state / "cri.sock"
    cfg.docker_socket = _docker_socket(cfg, overrides)
    return cfg


def _docker_socket(cfg: Config, overrides: dict[str, Any]) -> Path | None:
    """[docker] enabled (default true) and socket; --docker-socket wins; with only
    --state given, the socket sits in that state dir (as podkit.sock does)."""
    docker = cfg.section("docker")
    enabled = docker.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidArgument("config: [docker] enabled must be true or false")
    if overrides.get("docker_socket"):
        return Path(overrides["docker_socket"])
    if not enabled:
        return None
    if docker.get("socket"):
        if not isinstance(docker["socket"], str):
            raise InvalidArgument("config: [docker] socket must be a path")
        return Path(docker["socket"])
    if overrides.get("state"):
        return cfg.state / "docker.sock"
    return Path(DEFAULT_DOCKER_SOCKET)
