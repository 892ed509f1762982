"""PullImage: from the registry (or its configured mirrors), with the kubelet's
credentials when given; answers the image id."""

from __future__ import annotations

import base64
import binascii

from cri_api.v1 import api_pb2 as pb

from podkit.cri.context import CRI
from podkit.errors import InvalidArgument
from podkit.images.registry.auth import Credentials


def credentials(auth: pb.AuthConfig) -> Credentials | None:
    user, password = auth.username, auth.password
    if auth.auth:
        try:
            user, _, password = base64.b64decode(auth.auth, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument("auth.auth: not base64 of user:password") from None
    creds = Credentials(
        username=user, password=password, identitytoken=auth.identity_token, registrytoken=auth.registry_token
    )
    return creds if creds else None


async def handle(cri: CRI, req: pb.PullImageRequest) -> pb.PullImageResponse:
    ref = req.image.image
    if not ref:
        raise InvalidArgument("image.image is empty")
    creds = credentials(req.auth) if req.HasField("auth") else None
    await cri.services.registry.pull(cri.ns, ref, creds=creds)
    img = cri.images.get(cri.ns, ref)
    return pb.PullImageResponse(image_ref=img.id)
