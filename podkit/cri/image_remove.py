"""RemoveImage: every name of the image goes (as containerd's); images that containers
still use stay, nameless, until those containers go. Idempotent."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI
from podkit.errors import InvalidArgument, NotFound


async def handle(cri: CRI, req: pb.RemoveImageRequest) -> pb.RemoveImageResponse:
    ref = req.image.image
    if not ref:
        raise InvalidArgument("image.image is empty")
    try:
        img = cri.images.get(cri.ns, ref)
    except NotFound:
        return pb.RemoveImageResponse()
    try:
        cri.images.remove(cri.ns, img.id, force=True)
    except NotFound:
        pass
    return pb.RemoveImageResponse()
