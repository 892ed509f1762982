"""ImageStatus: the image a ref names, or an empty answer (not an error) when absent."""

from __future__ import annotations

import json

from cri_api.v1 import api_pb2 as pb

from podkit.cri import image_view
from podkit.cri.context import CRI
from podkit.errors import InvalidArgument, NotFound


async def handle(cri: CRI, req: pb.ImageStatusRequest) -> pb.ImageStatusResponse:
    ref = req.image.image
    if not ref:
        raise InvalidArgument("image.image is empty")
    try:
        img = cri.images.get(cri.ns, ref)
    except NotFound:
        return pb.ImageStatusResponse()
    except InvalidArgument:
        return pb.ImageStatusResponse()
    resp = pb.ImageStatusResponse(image=image_view.image(cri, img))
    if req.verbose:
        info = {
            "imageSpec": img.config,
            "chainID": img.chain_id,
            "manifestDigest": img.manifest_digest,
            "names": cri.images.names_of(cri.ns, img.id),
        }
        resp.info["info"] = json.dumps(info)
    return resp
