"""The infra (pause) image: one layer holding the host's static catatonit.

Built locally the first time a pod needs it, so pods work without any registry:
a rootfs tarball with ``/catatonit`` imported through the image service as
``localhost/podkit/pause:<version>`` with ``ENTRYPOINT ["/catatonit", "-P"]``.
In pause mode catatonit sleeps, reaps any zombie handed to it (it is PID 1 when the
pod shares its pid namespace) and exits on SIGTERM/SIGINT.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from podkit._version import __version__
from podkit.errors import Unavailable

if TYPE_CHECKING:
    from podkit.images.oci import Descriptor
    from podkit.images.service import ImageService
    from podkit.store import Content

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
    import tarfile  # at the first pod, not in every idle podkitd

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


CHANGES = [f"ENTRYPOINT {json.dumps(ENTRYPOINT)}", "WORKDIR /", "LABEL io.podkit.infra=true"]


def build_blobs(content: Content) -> Descriptor:
    """The infra image through the image store's rootfs-import path: the layer into the
    content store, then config and manifest as `podkit image import` writes them.

    Blobs are content-addressed and the layer is reproducible, so a build cut short by a
    crash leaves nothing that a later build does not reuse.
    """
    from podkit.images.archive import build_rootfs_image

    layer = rootfs_tar()
    digest = content.put(layer)
    return build_rootfs_image(
        content, str(digest), "", CHANGES, message="podkit infra image", diff_id=str(digest)
    )


def ensure_image(images: ImageService, content: Content, ns: str) -> str:
    """The infra image's reference in namespace ``ns``, building it when missing."""
    from podkit.errors import NotFound

    try:
        images.get(ns, INFRA_REF)
        return INFRA_REF
    except NotFound:  # built below
        pass
    images.record(ns, INFRA_REF, build_blobs(content), labels={"io.podkit.infra": "true"}, action="build")
    return INFRA_REF
