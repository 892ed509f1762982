"""OCI image-spec (and Docker schema2) vocabulary: media types, descriptors, platforms.

Docker schema2 manifests and manifest lists are treated as equivalents of OCI
manifests and indexes throughout podkit.
"""

from __future__ import annotations

import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from podkit.errors import InvalidArgument

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})

# Accept header for manifest fetches: everything we can read, most preferred first.
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])


def layer_compression(media_type: str) -> str:
    """'gzip', 'zstd' or '' (plain tar) for a layer media type."""
    if media_type.endswith("+gzip") or media_type.endswith(".tar.gzip") or media_type.endswith("tar.gzip"):
        return "gzip"
    if media_type.endswith("+zstd"):
        return "zstd"
    if media_type in (OCI_LAYER, DOCKER_LAYER) or media_type.endswith(".tar"):
        return ""
    raise InvalidArgument(f"unsupported layer media type {media_type!r}")


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    @classmethod
    def host(cls) -> Platform:
        m = _platform.machine()
        arch, variant = _ARCH.get(m, (m, ""))
        return cls("linux", arch, variant)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """'linux/arm64', 'linux/arm/v7', 'amd64'."""
        parts = [p for p in text.strip().split("/") if p]
        if len(parts) == 1:
            parts = ["linux", parts[0]]
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"invalid platform {text!r}: want os/arch[/variant]")
        arch, variant = _ARCH.get(parts[1], (parts[1], ""))
        return cls(parts[0], arch, parts[2] if len(parts) == 3 else variant)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Platform | None:
        if not d:
            return None
        if not isinstance(d, dict):
            raise InvalidArgument(f"malformed platform {d!r}: want an object")
        parts = (d.get("os", ""), d.get("architecture", ""), d.get("variant", ""))
        if not all(isinstance(p, str) for p in parts):
            raise InvalidArgument(f"malformed platform {d!r}: os, architecture and variant are strings")
        return cls(*parts)

    def matches(self, other: Platform | None) -> bool:
        if other is None:
            return False
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return not self.variant or not other.variant or self.variant == other.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def to_dict(self) -> dict[str, str]:
        d = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            d["variant"] = self.variant
        return d


_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"),
    "i686": ("386", ""),
    "i386": ("386", ""),
}


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Descriptor:
        if not isinstance(d, dict):
            raise InvalidArgument(f"malformed descriptor {str(d)[:100]!r}: want an object")
        if not isinstance(d.get("mediaType", ""), str) or not isinstance(d.get("digest", ""), str):
            raise InvalidArgument(f"malformed descriptor {str(d)[:100]!r}: mediaType and digest are strings")
        try:
            return cls(
                media_type=d.get("mediaType", ""),
                digest=d["digest"],
                size=int(d["size"]),
                annotations=dict(d.get("annotations") or {}),
                platform=Platform.from_dict(d.get("platform")),
                urls=list(d.get("urls") or []),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InvalidArgument(f"malformed descriptor {d!r}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = self.annotations
        if self.platform:
            d["platform"] = self.platform.to_dict()
        if self.urls:
            d["urls"] = self.urls
        return d


def image_manifest(config_digest: str, config_size: int, layers: list[dict[str, Any]]) -> bytes:
    """An OCI image manifest for a config and its layers, as compact JSON (what a build
    step and a commit store)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def parse_json(data: bytes | str, what: str) -> Any:
    """JSON from outside (a registry, an archive, the store): InvalidArgument if it is not.

    A document nested deeper than the interpreter's recursion limit is refused too (a
    manifest of 200,000 brackets made json.loads raise RecursionError, a 500).
    """
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise InvalidArgument(f"{what} is not valid JSON: nested too deeply") from None


def descriptors(doc: dict[str, Any], key: str, what: str) -> list[Descriptor]:
    """The descriptors of ``doc[key]`` (an index's manifests, a manifest's layers)."""
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise InvalidArgument(f"{what}: {key} must be a list of descriptors")
    return [Descriptor.from_dict(d) for d in items]


def select_manifest(index: dict[str, Any], want: Platform) -> Descriptor:
    """Pick the manifest for a platform out of an index / manifest list."""
    candidates = descriptors(index, "manifests", "index")
    for d in candidates:
        if (d.media_type in MANIFEST_TYPES or not d.media_type) and want.matches(d.platform):
            return d
    available = ", ".join(str(d.platform) for d in candidates if d.platform) or "none"
    raise InvalidArgument(f"no manifest for platform {want} in the index (available: {available})")


# Field -> JSON type of the process part ("config") of an image config. Everything
# the runtime later reads from an image must have the type it expects, or a bad
# image would turn into a 500 deep in container creation.
_CONFIG_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "User": (str,),
    "WorkingDir": (str,),
    "StopSignal": (str,),
    "Env": (list,),
    "Entrypoint": (list,),
    "Cmd": (list,),
    "ExposedPorts": (dict,),
    "Volumes": (dict,),
    "Labels": (dict,),
}
_STRING_LISTS = ("Env", "Entrypoint", "Cmd")


def check_image_config(config: object, digest: str) -> dict[str, Any]:
    """Refuse an image config whose shape podkit cannot use; return it unchanged."""
    where = f"image config {digest}"
    if not isinstance(config, dict):
        raise InvalidArgument(f"{where} is not a JSON object")
    proc = config.get("config")
    if proc is None:
        return config
    if not isinstance(proc, dict):
        raise InvalidArgument(f"{where}: 'config' is not a JSON object")
    for name, types in _CONFIG_FIELD_TYPES.items():
        value = proc.get(name)
        if value is None:
            continue
        if not isinstance(value, types):
            raise InvalidArgument(f"{where}: config.{name} must be a JSON {types[0].__name__}")
        if name in _STRING_LISTS and isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise InvalidArgument(f"{where}: config.{name} must be a list of strings")
    return config
