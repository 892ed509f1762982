"""Version: who answers, and which CRI version it speaks."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit._version import __version__
from podkit.cri.context import CRI

RUNTIME_NAME = "podkit"
API_VERSION = "v1"


async def handle(cri: CRI, req: pb.VersionRequest) -> pb.VersionResponse:
    # `version` is the kubelet's API version, "0.1.0" as in every runtime's answer.
    return pb.VersionResponse(
        version="0.1.0",
        runtime_name=RUNTIME_NAME,
        runtime_version=__version__,
        runtime_api_version=API_VERSION,
    )
