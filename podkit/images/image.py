"""Images as the image service returns them, and the chain IDs of their layers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from podkit.errors import PodkitError
from podkit.images import reference
from podkit.images.oci import Descriptor

DANGLING_PREFIX = "<none>@"
LABEL_IMAGE = "podkit/image"  # on a container's snapshot: the image id it was made from
LABEL_NAMESPACE = "podkit/namespace"


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain IDs per the OCI image spec: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))."""
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append("sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def chain_id_of(parent: str | None, diff_id: str) -> str:
    if not parent:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


@dataclass
class Image:
    name: str  # normalised reference, or "<none>@<digest>" when dangling
    digest: str  # target descriptor digest (index or manifest): what `name@digest` matches
    media_type: str  # target media type
    id: str  # config digest: docker's IMAGE ID
    config: dict[str, Any]
    manifest_digest: str
    layers: list[Descriptor]
    diff_ids: list[str]
    chain_id: str | None  # top layer's chain ID (None for an image without layers)
    size: int  # compressed: manifest + config + layers
    created: float  # when this record was made
    labels: dict[str, str] = field(default_factory=dict)
    platform: str = ""
    target_size: int = 0
    updated: float = 0.0
    platforms: list[str] = field(default_factory=list)  # all of an index's platforms

    @property
    def dangling(self) -> bool:
        return self.name.startswith(DANGLING_PREFIX)

    @property
    def target(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.target_size)

    @property
    def repository(self) -> str:
        if self.dangling:
            return "<none>"
        return reference.parse(self.name, default_tag=False).name

    @property
    def tag(self) -> str:
        if self.dangling:
            return "<none>"
        ref = reference.parse(self.name, default_tag=False)
        return ref.tag or "<none>"

    @property
    def chain(self) -> list[str]:
        return chain_ids(self.diff_ids)

    def to_dict(self) -> dict[str, Any]:
        cfg_created = self.config.get("created") or ""
        familiar = "" if self.dangling else familiar_name(self.name, "")
        return {
            "name": self.name,
            "familiar": familiar,
            "repository": self.repository,
            "tag": self.tag,
            "dangling": self.dangling,
            "id": self.id,
            "digest": self.digest,
            "media_type": self.media_type,
            "manifest_digest": self.manifest_digest,
            "config": self.config,
            "layers": [d.to_dict() for d in self.layers],
            "diff_ids": self.diff_ids,
            "chain_id": self.chain_id,
            "size": self.size,
            "created": self.created,
            "updated": self.updated,
            "image_created": cfg_created,
            "labels": self.labels,
            "platform": self.platform,
            "platforms": self.platforms,
            "os": self.config.get("os", ""),
            "architecture": self.config.get("architecture", ""),
        }


@dataclass
class Resolved:
    """What a target descriptor resolves to: one manifest, its config and layers."""

    manifest_digest: str
    config_digest: str
    config: dict[str, Any]
    layers: list[Descriptor]
    size: int
    platform: str
    platforms: list[str]


def familiar_name(name: str, default: str | None = None) -> str:
    """docker's short form of a name (``busybox:latest``); ``default`` (else the name) if unparsable."""
    try:
        return reference.parse(name, default_tag=False).familiar()
    except PodkitError:
        return name if default is None else default
