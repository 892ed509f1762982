"""Import and export of images as files.

Import understands, told apart by their content:

- a plain root file system tarball (plain, gzip or zstd): one layer, a config
  made from ``--change`` instructions;
- a docker-save archive (``manifest.json`` + config + layer tars);
- an OCI image layout in a tar (``oci-layout`` + ``index.json`` + ``blobs/``),
  including the combined form docker 25+ writes.

The upload is first written into the content store as one blob (streamed,
hashed); a root file system tarball *is* then its layer blob, an archive is read
from there with random access and dropped when done.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import tarfile
from typing import Any, BinaryIO

from podkit.errors import InvalidArgument, PodkitError
from podkit.images.changes import apply_changes
from podkit.images.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    Platform,
)
from podkit.images.unpack import decompressed, sniff_compression

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def diff_id_of(f: BinaryIO, compression: str) -> str:
    h = hashlib.sha256()
    src = decompressed(f, compression)
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            return "sha256:" + h.hexdigest()
        h.update(chunk)


def sniff(content: Any, digest: str) -> tuple[str, str]:
    """('rootfs' | 'docker' | 'oci', compression) of an uploaded blob."""
    with content.open(digest) as f:
        compression = sniff_compression(f.read(8))
        f.seek(0)
        names: set[str] = set()
        try:
            with tarfile.open(fileobj=decompressed(f, compression), mode="r|") as tf:
                for m in tf:
                    n = m.name.removeprefix("./").rstrip("/")
                    if "/" not in n:
                        names.add(n)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise InvalidArgument(f"the upload is not a tar archive (plain, gzip or zstd): {e}") from None
    if "oci-layout" in names and "index.json" in names:
        return "oci", compression
    if "manifest.json" in names:
        return "docker", compression
    return "rootfs", compression


def build_rootfs_image(content: Any, layer_digest: str, compression: str, changes: list[str],
                       message: str = "", platform: Platform | None = None) -> Descriptor:
    """Write config and manifest for a one-layer image; returns the manifest descriptor."""
    with content.open(layer_digest) as f:
        diff_id = layer_digest if compression == "" else diff_id_of(f, compression)
    plat = platform or Platform.host()
    created = now_rfc3339()
    cfg: dict[str, Any] = apply_changes({}, changes)
    config: dict[str, Any] = {
        "created": created,
        "architecture": plat.architecture,
        "os": plat.os,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "podkit image import",
                     **({"comment": message} if message else {})}],
    }
    if plat.variant:
        config["variant"] = plat.variant
    cfg_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    cfg_digest = content.put(cfg_bytes)
    media = {"": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}[compression]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": len(cfg_bytes)},
        "layers": [{"mediaType": media, "digest": layer_digest, "size": content.size(layer_digest)}],
    }
    m_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    m_digest = content.put(m_bytes)
    return Descriptor(OCI_MANIFEST, m_digest, len(m_bytes))


class ImportResult:
    def __init__(self) -> None:
        self.images: list[Any] = []

    def to_dict(self) -> dict[str, Any]:
        return {"images": [i.to_dict() for i in self.images]}


def _is_podkit_error(e: BaseException) -> bool:
    return isinstance(e, PodkitError)
