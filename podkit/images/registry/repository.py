"""The distribution API of one repository: manifests, blobs (streamed, verified,
resumed), uploads (monolithic, chunked, cross-repository mounts), manifest pushes."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
from yarl import URL

from podkit.errors import DigestMismatch, InvalidArgument, Unavailable
from podkit.images.oci import MANIFEST_ACCEPT, Descriptor
from podkit.images.registry.hosts import Endpoint
from podkit.images.registry.transport import (
    RETRY_STATUSES,
    Body,
    RepositoryTransport,
    StallGuard,
    Transient,
    read_limited,
)
from podkit.store import Content, ContentWriter
from podkit.store.content import Digest

log = logging.getLogger(__name__)

MAX_MANIFEST = 4 << 20  # the distribution spec lets registries refuse bigger ones
_CHUNK = 1 << 20  # bytes handed to the hashing writer thread at a time

Progress = Callable[[int], None]  # called with bytes done so far
# Called (on the event loop) each time more of a blob is in its ingest file: the
# file and how many bytes it holds. A layer applier follows the download with it.
Watch = Callable[[Path, int], None]


class Repository(RepositoryTransport):
    """The distribution API of one repository on one registry."""

    # -- API ---------------------------------------------------------------------

    async def ping(self) -> None:
        """GET /v2/: the registry is up and accepts our credentials (when it asks for any)."""
        ep = self.endpoints[-1]
        resp = await self._request("GET", ep, self._url(ep, ""), what="login")
        try:
            if resp.status >= 400:
                raise await self._error(resp, "login")
        finally:
            resp.release()

    async def resolve(
        self, obj: str, local: Callable[[str], bytes | None] | None = None
    ) -> tuple[Descriptor, bytes]:
        """Fetch a manifest or index by tag or digest; returns its descriptor and bytes.

        With ``local`` (digest -> bytes or None, e.g. the content store), a tag is
        first resolved with HEAD, and a manifest already held is not downloaded
        again: an up-to-date pull costs one small request (and registries that
        count pulls, as Docker Hub does, do not count HEADs).
        """

        async def one(ep: Endpoint) -> tuple[Descriptor, bytes]:
            if local is not None:
                digest = obj if obj.startswith("sha256:") else await self._head_manifest(ep, obj)
                data = local(digest) if digest else None
                if data is not None and Digest.of(data) == digest:
                    return self._describe(data, "", f"manifest {obj}", ep), data
            return await self._get_manifest(ep, obj)

        return await self._each_endpoint(one)

    async def _head_manifest(self, ep: Endpoint, obj: str) -> str | None:
        resp = await self._request(
            "HEAD", ep, self._url(ep, f"manifests/{obj}"), headers={"Accept": MANIFEST_ACCEPT}, what="pull"
        )
        try:
            if resp.status == 404:
                raise await self._error(resp, f"manifest {obj}")
            digest = resp.headers.get("Docker-Content-Digest", "")
            return digest if resp.status == 200 and digest.startswith("sha256:") else None
        finally:
            resp.release()

    async def _get_manifest(self, ep: Endpoint, obj: str) -> tuple[Descriptor, bytes]:
        what = f"manifest {obj}"
        resp = await self._request(
            "GET", ep, self._url(ep, f"manifests/{obj}"), headers={"Accept": MANIFEST_ACCEPT}, what="pull"
        )
        try:
            if resp.status != 200:
                raise await self._error(resp, what)
            length = resp.content_length
            if length is not None and length > MAX_MANIFEST:
                raise InvalidArgument(f"{what} is {length} bytes, more than the {MAX_MANIFEST} allowed")
            data = await read_limited(resp, MAX_MANIFEST + 1, self.client.stall, f"{ep.host}: {what}")
            if len(data) > MAX_MANIFEST:
                raise InvalidArgument(f"{what} is larger than {MAX_MANIFEST} bytes")
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip()
        except aiohttp.ClientError as e:
            raise Unavailable(f"{ep.host}: reading {what} failed: {e}") from None
        finally:
            resp.release()
        desc = self._describe(data, ctype, what, ep)
        if obj.startswith("sha256:") and desc.digest != obj:
            raise DigestMismatch(f"{what}: the registry sent content with digest {desc.digest}")
        return desc, data

    def _describe(self, data: bytes, ctype: str, what: str, ep: Endpoint) -> Descriptor:
        try:
            doc = json.loads(data)
        except ValueError:
            raise InvalidArgument(f"{what} from {ep.host} is not JSON") from None
        except RecursionError:
            raise InvalidArgument(f"{what} from {ep.host} is not JSON: nested too deeply") from None
        media_type = (doc.get("mediaType") if isinstance(doc, dict) else None) or ctype
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = _sniff_media_type(doc)
        return Descriptor(media_type=media_type, digest=Digest.of(data), size=len(data))

    async def fetch_manifest(self, desc: Descriptor) -> bytes:
        got, data = await self.resolve(desc.digest)
        if got.size != desc.size and desc.size:
            raise DigestMismatch(f"manifest {desc.digest}: expected {desc.size} bytes, got {got.size}")
        return data

    async def fetch_blob(
        self, desc: Descriptor, content: Content, progress: Progress | None = None, watch: Watch | None = None
    ) -> None:
        """Stream a blob into the content store; it is committed only once verified."""

        async def one(ep: Endpoint) -> None:
            await self._fetch_blob(ep, desc, content, progress, watch)

        await self._each_endpoint(one)

    async def _fetch_blob(
        self, ep: Endpoint, desc: Descriptor, content: Content, progress: Progress | None, watch: Watch | None
    ) -> None:
        writer = content.writer(desc.digest, desc.size)
        url = self._url(ep, f"blobs/{desc.digest}")
        failures = 0
        try:
            while True:
                hdrs = {"Range": f"bytes={writer.offset}-"} if writer.offset else {}
                resp = await self._request("GET", ep, url, headers=hdrs, what="pull")
                try:
                    resumed_at = (
                        _range_start(resp.headers.get("Content-Range", "")) if resp.status == 206 else 0
                    )
                    if resp.status not in (200, 206):
                        raise await self._error(resp, f"blob {desc.digest}")
                    if writer.offset and resumed_at != writer.offset:
                        # The server ignored Range (or answered another one): start over.
                        writer.abort()
                        writer = content.writer(desc.digest, desc.size)
                        if resp.status == 206:
                            continue
                    reader = self.client.stall.reader(resp.content, f"{ep.host}: download of {desc.digest}")
                    await _copy(reader, writer, progress, watch)
                except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as e:
                    failures += 1
                    if failures > self.client.retries:
                        raise Unavailable(
                            f"{ep.host}: download of {desc.digest} kept breaking: {e}"
                        ) from None
                    log.info("download of %s broke at %d bytes (%s); resuming", desc.digest, writer.offset, e)
                    await asyncio.sleep(self.client.backoff * failures)
                    continue
                finally:
                    resp.release()
                break
            await asyncio.to_thread(writer.commit)
        finally:
            writer.abort()  # no-op after a commit: the file was renamed away

    async def read_blob(self, desc: Descriptor, limit: int = 64 << 20) -> bytes:
        """A small blob (an image config) in memory, verified."""
        if desc.size > limit:
            raise InvalidArgument(f"blob {desc.digest} is {desc.size} bytes, more than {limit}")

        async def one(ep: Endpoint) -> bytes:
            resp = await self._request("GET", ep, self._url(ep, f"blobs/{desc.digest}"), what="pull")
            try:
                if resp.status != 200:
                    raise await self._error(resp, f"blob {desc.digest}")
                return await read_limited(
                    resp, limit + 1, self.client.stall, f"{ep.host}: blob {desc.digest}"
                )
            except aiohttp.ClientError as e:
                raise Unavailable(f"{ep.host}: reading blob {desc.digest} failed: {e}") from None
            finally:
                resp.release()

        data = await self._each_endpoint(one)
        if Digest.of(data) != desc.digest:
            raise DigestMismatch(f"blob {desc.digest}: the registry sent other content")
        return data

    async def has_blob(self, digest: str) -> bool:
        ep = self.endpoints[0]
        resp = await self._request("HEAD", ep, self._url(ep, f"blobs/{digest}"), what="push")
        resp.release()
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise await self._error(resp, f"blob {digest}")

    async def upload_blob(
        self, desc: Descriptor, path: str, *, mount_from: str | None = None, progress: Progress | None = None
    ) -> str:
        """Upload a blob unless the registry has it; returns 'exists', 'mounted' or 'pushed'.

        An upload that breaks is started over in a new upload session: what the
        registry kept of the broken one is unknown.
        """
        if await self.has_blob(desc.digest):
            return "exists"
        failures = 0
        while True:
            try:
                return await self._upload_once(desc, path, mount_from, progress)
            except Transient as e:
                failures += 1
                if failures > self.client.retries:
                    raise Unavailable(f"{e} (gave up after {failures} attempts)") from None
                log.info("%s; starting the upload over", e)
                await asyncio.sleep(self.client.backoff * failures)

    async def _upload_once(
        self, desc: Descriptor, path: str, mount_from: str | None, progress: Progress | None
    ) -> str:
        ep = self.endpoints[0]
        q: dict[str, str] = {}
        if mount_from and mount_from != self.name:
            q = {"mount": desc.digest, "from": mount_from}
        url = self._url(ep, "blobs/uploads/").update_query(q)
        resp = await self._request("POST", ep, url, headers={"Content-Length": "0"}, what="push")
        try:
            if resp.status == 201 and q:
                return "mounted"
            if resp.status != 202:
                raise await self._error(resp, f"upload of {desc.digest}")
            location = _location(ep, url, resp)
        finally:
            resp.release()

        async def send(method: str, url: URL, body: Body, headers: dict[str, str]) -> URL | None:
            try:
                resp = await self._request(
                    method, ep, url, body=body, headers=headers, what="push", retries=0
                )
            except Unavailable as e:
                raise Transient(e.message) from None
            try:
                if resp.status in RETRY_STATUSES:
                    raise Transient(f"{ep.host}: upload answered HTTP {resp.status}")
                if resp.status not in (201, 202, 204):
                    raise await self._error(resp, f"upload of {desc.digest}")
                return _location(ep, url, resp) if resp.status == 202 else None
            finally:
                resp.release()

        octet = {"Content-Type": "application/octet-stream"}
        if desc.size <= self.client.chunk_size:
            await send(
                "PUT",
                location.update_query({"digest": desc.digest}),
                lambda: _file_body(path, 0, desc.size, progress),
                {**octet, "Content-Length": str(desc.size)},
            )
            return "pushed"
        offset = 0
        while offset < desc.size:
            n = min(self.client.chunk_size, desc.size - offset)
            nxt = await send(
                "PATCH",
                location,
                functools.partial(_file_body, path, offset, n, progress, offset),
                {**octet, "Content-Length": str(n), "Content-Range": f"{offset}-{offset + n - 1}"},
            )
            if nxt is None:
                raise Unavailable(f"{ep.host}: a chunk upload was not answered with 202 Accepted")
            location = nxt
            offset += n
        await send("PUT", location.update_query({"digest": desc.digest}), None, {"Content-Length": "0"})
        return "pushed"

    async def put_manifest(self, obj: str, media_type: str, data: bytes) -> str:
        ep = self.endpoints[0]
        resp = await self._request(
            "PUT",
            ep,
            self._url(ep, f"manifests/{obj}"),
            body=data,
            headers={"Content-Type": media_type},
            what="push",
        )
        try:
            if resp.status not in (200, 201):
                raise await self._error(resp, f"manifest {obj}")
            return resp.headers.get("Docker-Content-Digest") or Digest.of(data)
        finally:
            resp.release()


async def _copy(
    stream: StallGuard, writer: ContentWriter, progress: Progress | None, watch: Watch | None = None
) -> None:
    """Move a response body into a content Writer.

    Chunks are gathered to ~1 MiB and hashed+written in a worker thread (hashlib and
    file writes drop the GIL), so the event loop keeps reading sockets meanwhile.
    """
    buf = bytearray()
    pending: asyncio.Future[None] | None = None
    inflight = 0
    last = 0.0
    try:
        while True:
            data = await stream.readany()
            if data:
                buf += data
                if len(buf) < _CHUNK:
                    continue
            if pending is not None:
                await pending
                pending = None
            if buf:
                block = bytes(buf)
                buf.clear()
                inflight = len(block)
                pending = asyncio.ensure_future(asyncio.to_thread(writer.write, block))
                if watch is not None:
                    # As soon as the block is in the file, not when the next one is ready:
                    # on a slow link that could be long after.
                    pending.add_done_callback(lambda _f: watch(writer.path, writer.offset))
            if not data:
                break
            if progress is not None:
                now = time.monotonic()
                if now - last > 0.1:
                    last = now
                    progress(writer.offset + inflight)
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError):
        # Keep what arrived, so that the retry asks only for the rest (Range).
        if pending is not None:
            await pending
            pending = None
        if buf:
            await asyncio.to_thread(writer.write, bytes(buf))
        raise
    finally:
        # Whatever happens, the writer's offset must match what it really holds
        # before anyone resumes or aborts it.
        if pending is not None:
            await pending
    if progress is not None:
        progress(writer.offset)


async def _file_body(
    path: str, start: int, length: int, progress: Progress | None, base: int = 0
) -> AsyncIterator[bytes]:
    f = await asyncio.to_thread(open, path, "rb")
    try:
        await asyncio.to_thread(f.seek, start)
        left = length
        done = 0
        while left > 0:
            data = await asyncio.to_thread(f.read, min(_CHUNK, left))
            if not data:
                raise DigestMismatch(f"{path} is shorter than its descriptor says")
            left -= len(data)
            done += len(data)
            yield data
            if progress is not None:
                progress(base + done)
    finally:
        f.close()


def _location(ep: Endpoint, request_url: URL, resp: aiohttp.ClientResponse) -> URL:
    loc = resp.headers.get("Location")
    if not loc:
        raise Unavailable(f"{ep.host}: upload answer without a Location header")
    url = URL(loc)
    if not url.is_absolute():
        url = URL(ep.base).join(url)
    return url


def _range_start(content_range: str) -> int | None:
    """The first byte of a ``Content-Range: bytes START-END/TOTAL`` answer."""
    unit, _, rest = content_range.partition(" ")
    start = rest.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def _sniff_media_type(doc: object) -> str:
    """Old registries may omit mediaType: tell an index from a manifest by its shape."""
    from podkit.images.oci import OCI_INDEX, OCI_MANIFEST

    if isinstance(doc, dict):
        if "manifests" in doc:
            return OCI_INDEX
        if "layers" in doc and "config" in doc:
            return OCI_MANIFEST
        if doc.get("schemaVersion") == 1:
            raise InvalidArgument("Docker schema 1 manifests are not supported (deprecated since 2017)")
    raise InvalidArgument("the registry sent a manifest of unknown type")
