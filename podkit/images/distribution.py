"""``Registry``: the daemon's distribution service (pull, push, login).

Built by the composition root as ``services.registry`` from the content store,
the image service, the database and the ``[registries]`` config section::

    [registries]
    max_concurrent_downloads = 4
    max_concurrent_uploads = 4

    [registries."registry.example:5000"]
    mirrors = ["mirror.local:5000"]
    insecure = false
    plain_http = false
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from podkit.errors import InvalidArgument
from podkit.images import reference
from podkit.images.late import Late
from podkit.images.oci import INDEX_TYPES, Descriptor, Platform, descriptors, parse_json
from podkit.images.pull import Emit, Puller
from podkit.images.push import Pusher
from podkit.images.registry.auth import Credentials, from_docker_config
from podkit.images.registry.client import RegistryClient
from podkit.images.registry.hosts import RegistryHosts
from podkit.images.registry.sources import BlobSources
from podkit.images.registry.transport import StallLimit
from podkit.snapshots import Snapshotter
from podkit.store import Content, Database, Leases

if TYPE_CHECKING:
    from podkit.images.service import Image, ImageService

log = logging.getLogger(__name__)

# stall_timeout/stall_min_bytes: a body (blob, manifest, token) that brings fewer than
# stall_min_bytes in stall_timeout seconds has stalled and fails (registry.transport.StallLimit).
_SCALARS = {
    "max_concurrent_downloads": 4,
    "max_concurrent_uploads": 4,
    "stall_timeout": 60,
    "stall_min_bytes": 64 << 10,
}


class Registry:
    def __init__(
        self,
        content: Content,
        images: ImageService | Callable[[], ImageService | None] | None,
        db: Database,
        config: dict[str, Any] | None = None,
        *,
        snapshots: Snapshotter | Callable[[], Snapshotter | None] | None = None,
        docker_config: Path | None = None,
        client: RegistryClient | None = None,
    ) -> None:
        config = dict(config or {})
        limits: dict[str, int] = {}
        for key, default in _SCALARS.items():
            value = config.pop(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidArgument(f"config: [registries] {key} must be a positive integer")
            limits[key] = value
        self.hosts = RegistryHosts(config)
        stall = StallLimit(float(limits["stall_timeout"]), limits["stall_min_bytes"])
        self.client = client or RegistryClient(self.hosts, stall=stall)
        self.docker_config = docker_config
        self.db = db
        self.content = content
        # The image service and snapshotter may be given as look-ups: the composition
        # root may build them after the registry.
        images_late: Late[ImageService] = Late(_lookup(images), "image service")
        snaps_late: Late[Snapshotter] = Late(_lookup(snapshots), "snapshotter")
        self.sources = BlobSources(db)
        downloads = limits["max_concurrent_downloads"]
        self.puller = Puller(content, images_late, db, self.client, snaps_late, downloads, self.sources)
        self.pusher = Pusher(
            content, images_late, db, self.client, limits["max_concurrent_uploads"], self.sources
        )

    def credentials(self, registry: str, given: Credentials | None = None) -> Credentials:
        """The request's credentials, else those in the daemon user's docker config."""
        if given:
            return given
        return from_docker_config(registry, self.docker_config)

    async def pull(
        self,
        ns: str,
        ref: str,
        *,
        platform: str | None = None,
        creds: Credentials | None = None,
        emit: Emit | None = None,
        all_platforms: bool = False,
    ) -> Image:
        r = reference.parse(ref)
        plat = Platform.parse(platform) if platform else None
        return await self.puller.pull(
            ns,
            r,
            platform=plat,
            creds=self.credentials(r.registry, creds),
            emit=emit,
            all_platforms=all_platforms,
        )

    async def push(
        self, ns: str, ref: str, *, creds: Credentials | None = None, emit: Emit | None = None
    ) -> dict[str, Any]:
        r = reference.parse(ref)
        return await self.pusher.push(ns, r, creds=self.credentials(r.registry, creds), emit=emit)

    async def inspect(self, ref: str, *, creds: Credentials | None = None) -> dict[str, Any]:
        """What the registry holds under ``ref``, without pulling it: the descriptor,
        the manifest or index itself, and the platforms it offers."""
        r = reference.parse(ref)
        repo = self.client.repository(r, self.credentials(r.registry, creds))
        desc, data = await repo.resolve(r.object)
        where = f"{desc.media_type or 'manifest'} {desc.digest} from {r.registry}"
        doc = parse_json(data, where)
        if not isinstance(doc, dict):
            raise InvalidArgument(f"{where} is not a JSON object")
        if desc.media_type in INDEX_TYPES:
            platforms = [str(m.platform) for m in descriptors(doc, "manifests", where) if m.platform]
        else:
            config = Descriptor.from_dict(doc.get("config") or {})
            cfg: Any = {}
            if config.digest:
                cfg = parse_json(await repo.read_blob(config), f"image config {config.digest}")
            if not isinstance(cfg, dict):
                raise InvalidArgument(f"image config {config.digest} from {r.registry} is not a JSON object")
            plat = Platform.from_dict({k: cfg.get(k, "") for k in ("os", "architecture", "variant")})
            platforms = [str(plat)] if plat and cfg.get("architecture") else []
        return {"name": str(r), "descriptor": desc.to_dict(), "platforms": platforms, "manifest": doc}

    async def login(self, registry: str, creds: Credentials) -> None:
        """Check credentials against the registry (raises Unauthorized when refused)."""
        if not creds:
            raise InvalidArgument("login needs a username and password (or an identity token)")
        await self.client.login(normalise_registry(registry), creds)

    async def startup(self) -> None:
        """Drop the leases of pulls and pushes a previous daemon left when it died: no
        such operation can be running now, and their blobs are not worth pinning (the
        next pull finds those already committed, whatever GC has not taken)."""
        rows = self.db.query("SELECT namespace, id FROM leases WHERE id LIKE 'pull-%' OR id LIKE 'push-%'")
        leases = Leases(self.db)
        for r in rows:
            leases.delete(r["namespace"], r["id"])
        if rows:
            log.info("released %d lease(s) of pulls/pushes cut short by a crash", len(rows))
        self.sources.prune(self.content.has)

    async def close(self) -> None:
        await self.client.close()


def normalise_registry(text: str) -> str:
    """'https://index.docker.io/v1/' -> 'docker.io'; 'http://h:5000/' -> 'h:5000'."""
    host = text.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if not host:
        raise InvalidArgument(f"invalid registry {text!r}")
    if host in ("index.docker.io", "registry-1.docker.io"):
        return "docker.io"
    return host


T = TypeVar("T")


def _lookup(given: T | Callable[[], T | None] | None) -> Callable[[], T | None]:
    """A layer given as itself or as a look-up, as a look-up."""
    if callable(given):
        return given
    return lambda: given
