"""``[cri]`` settings of podkitd.toml, checked once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podkit.errors import InvalidArgument

DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.6"
DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d"


@dataclass
class CRIConfig:
    enabled: bool = True
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    cni_conf_dir: str = DEFAULT_CNI_CONF_DIR
    stream_address: str = "127.0.0.1"
    stream_port: int = 0  # 0: a free port
    stream_token_ttl: float = 60.0
    # Whole-container stop grace when the kubelet gives none (StopContainer timeout 0).
    default_stop_timeout: int = 0

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> CRIConfig:
        known = {
            "enabled",
            "socket",
            "sandbox_image",
            "cni_conf_dir",
            "stream_address",
            "stream_port",
            "stream_token_ttl",
        }
        unknown = sorted(set(section) - known)
        if unknown:
            raise InvalidArgument(f"config: unknown [cri] setting(s): {', '.join(unknown)}")
        c = cls()
        if "enabled" in section:
            if not isinstance(section["enabled"], bool):
                raise InvalidArgument("config: [cri] enabled must be true or false")
            c.enabled = section["enabled"]
        for key in ("sandbox_image", "cni_conf_dir", "stream_address"):
            if key in section:
                v = section[key]
                if not isinstance(v, str) or not v:
                    raise InvalidArgument(f"config: [cri] {key} must be a non-empty string")
                setattr(c, key, v)
        if "stream_port" in section:
            v = section["stream_port"]
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 65535:
                raise InvalidArgument("config: [cri] stream_port must be a port number (0: a free one)")
            c.stream_port = v
        if "stream_token_ttl" in section:
            v = section["stream_token_ttl"]
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                raise InvalidArgument("config: [cri] stream_token_ttl must be a positive number of seconds")
            c.stream_token_ttl = float(v)
        return c


def cni_conflist(conf_dir: str) -> Path | None:
    """The first CNI config file by name, as containerd picks it; None when there is none."""
    d = Path(conf_dir)
    if not d.is_dir():
        return None
    files = sorted(p for p in d.iterdir() if p.suffix in (".conflist", ".conf", ".json") and p.is_file())
    return files[0] if files else None
