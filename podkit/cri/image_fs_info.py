"""TODO"""

from __future__ import annotations

from typing import Any

from podkit.cri.context import CRI
from podkit.cri.errors import Unimplemented


async def handle(cri: CRI, req: Any) -> Any:
    raise Unimplemented("image_fs_info: not implemented")
