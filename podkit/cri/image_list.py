"""ListImages: the images of namespace k8s.io, optionally only those matching a ref."""

from __future__ import annotations

from cri_api.v1 import api_pb2 as pb

from podkit.cri import image_view
from podkit.cri.context import CRI
from podkit.errors import InvalidArgument, NotFound


async def handle(cri: CRI, req: pb.ListImagesRequest) -> pb.ListImagesResponse:
    want = req.filter.image.image if req.HasField("filter") else ""
    if want:
        try:
            imgs = [cri.images.get(cri.ns, want)]
        except (NotFound, InvalidArgument):
            imgs = []
    else:
        imgs = [i for i in cri.images.list(cri.ns) if not i.dangling]
    # One entry per image id, with all its names (one listing for all of them).
    names: dict[str, list[str]] = {}
    for i in cri.images.list(cri.ns):
        names.setdefault(i.id, []).append(i.name)
    seen: dict[str, pb.Image] = {}
    for img in imgs:
        if img.id not in seen:
            seen[img.id] = image_view.image(cri, img, names.get(img.id, []))
    return pb.ListImagesResponse(images=list(seen.values()))
