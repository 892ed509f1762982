"""An uploaded file (``import``, ``load``, a Docker API image create from source)
received into the content store, for both HTTP front ends (as export.py's
archive_chunks sends a save)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable

from podkit.errors import InvalidArgument
from podkit.store import Content

_BATCH = 4 << 20  # bytes gathered before one write in the worker thread


async def receive_blob(content: Content, chunks: AsyncIterable[bytes], empty: str) -> str:
    """Write ``chunks`` into the content store as one blob; its digest.

    Writes go to a worker thread in batches (a thread hop per network chunk would cost
    more than the write). InvalidArgument ``empty`` when nothing came; a blob cut short
    (the client left, an error) is aborted, never committed."""
    w = content.writer()
    try:
        buf = bytearray()
        async for chunk in chunks:
            buf += chunk
            if len(buf) >= _BATCH:
                await asyncio.to_thread(w.write, bytes(buf))
                buf.clear()
        if buf:
            await asyncio.to_thread(w.write, bytes(buf))
        if w.offset == 0:
            raise InvalidArgument(empty)
        return str(await asyncio.to_thread(w.commit))
    except BaseException:
        w.abort()
        raise
