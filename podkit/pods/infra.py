"""The infra (pause) image: one layer holding the host's static catatonit.

Built locally the first time a pod needs it, so pods work without any registry:
a rootfs tarball with ``/catatonit`` imported through the image service as
``localhost/podkit/pause:<version>`` with ``ENTRYPOINT ["/catatonit", "-P"]``.
In pause mode catatonit sleeps, reaps any zombie handed to it (it is PID 1 when the
pod shares its pid namespace) and exits on SIGTERM/SIGINT.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podkit._version import __version__
from podkit.errors import Unavailable

if TYPE_CHECKING:
    from podkit.images.oci import Descriptor

CATATONIT_PATHS = ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit", "/usr/libexec/catatonit")
INFRA_REF = f"localhost/podkit/pause:{__version__}"
ENTRYPOINT = ["/catatonit", "-P"]


def find_catatonit() -> Path:
    for p in CATATONIT_PATHS:
        if os.access(p, os.X_OK):
            return Path(os.path.realpath(p))
    raise Unavailable(
        "catatonit is not installed (looked in " + ", ".join(CATATONIT_PATHS) + "): "
        "pods need it for their infra process; install the Debian package `catatonit`"
    )


def rootfs_tar() -> bytes:
    """The infra image's only layer, reproducible: fixed owner and mtime."""
    src = find_catatonit()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = src.read_bytes()
        ti = tarfile.TarInfo("catatonit")
        ti.size = len(data)
        ti.mode = 0o755
        ti.mtime = 0
        tar.addfile(ti, io.BytesIO(data))
        for d in ("dev", "proc", "sys", "etc"):
            di = tarfile.TarInfo(d)
            di.type = tarfile.DIRTYPE
            di.mode = 0o755
            di.mtime = 0
            tar.addfile(di)
    return buf.getvalue()


def _platform() -> tuple[str, str]:
    from podkit.images.oci import Platform

    p = Platform.host()
    return p.os, p.architecture


def build_blobs(content: Any) -> Descriptor:
    """Write layer, config and manifest of the infra image into the content store.

    Blobs are content-addressed and the layer is reproducible, so building twice
    (two namespaces, a crash half-way) writes the same digests: nothing to undo.
    """
    import hashlib
    import json

    from podkit.images import oci

    layer = rootfs_tar()
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    content.put(layer, layer_digest)
    os_, arch = _platform()
    config = {
        "architecture": arch,
        "os": os_,
        "config": {"Entrypoint": ENTRYPOINT, "Env": ["PATH=/"], "WorkingDir": "/",
                   "Labels": {"io.podkit.infra": "true"}},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "podkit: infra image (catatonit -P)"}],
    }
    config_raw = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = content.put(config_raw)
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.OCI_MANIFEST,
        "config": {"mediaType": oci.OCI_CONFIG, "digest": str(config_digest), "size": len(config_raw)},
        "layers": [{"mediaType": oci.OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
    }
    raw = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    digest = content.put(raw)
    return oci.Descriptor(media_type=oci.OCI_MANIFEST, digest=str(digest), size=len(raw))


def ensure_image(images: Any, content: Any, ns: str) -> str:
    """The infra image's reference in namespace ``ns``, building it when missing."""
    from podkit.errors import NotFound

    try:
        images.get(ns, INFRA_REF)
        return INFRA_REF
    except NotFound:
        pass
    images.record(ns, INFRA_REF, build_blobs(content), labels={"io.podkit.infra": "true"},
                  action="build")
    return INFRA_REF
