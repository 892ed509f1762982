"""Images in the SDK: list, inspect, tag, remove, prune, import, load, save.

Pull/push/login come from ``DistributionMixin``. Uploads are streamed from a file
object or a path (never read whole into memory); ``save`` streams the archive
into a file object or a path.
"""

from __future__ import annotations

import builtins
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from podkit import errors
from podkit.client._json import JSONObject
from podkit.client._transport import Transport
from podkit.client.distribution import DistributionMixin

_CHUNK = 1 << 20


@dataclass
class Image:
    name: str
    id: str
    digest: str
    repository: str = ""
    tag: str = ""
    familiar: str = ""
    dangling: bool = False
    media_type: str = ""
    manifest_digest: str = ""
    config: JSONObject = field(default_factory=dict)
    layers: list[JSONObject] = field(default_factory=list)
    diff_ids: list[str] = field(default_factory=list)
    chain_id: str | None = None
    size: int = 0
    created: float = 0.0
    image_created: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    platform: str = ""
    platforms: list[str] = field(default_factory=list)
    os: str = ""
    architecture: str = ""
    names: list[str] = field(default_factory=list)  # inspect only: every name of this id
    unpacked: bool | None = None  # whether its layers are in snapshots (list and inspect)
    unpacked_size: int = 0  # bytes on disk of the unpacked layers (list and inspect)
    raw: JSONObject = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, d: JSONObject) -> Image:
        known = {f for f in cls.__dataclass_fields__ if f != "raw"}
        img = cls(**{k: v for k, v in d.items() if k in known})
        img.raw = d
        return img

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[-1][:12]

    @property
    def cmd(self) -> list[str] | None:
        cmd: list[str] | None = (self.config.get("config") or {}).get("Cmd")
        return cmd

    def to_dict(self) -> JSONObject:
        return dict(self.raw)


@dataclass
class RemoveResult:
    results: list[dict[str, str]]  # [{"Untagged": name} | {"Deleted": id}]
    errors: list[dict[str, str]]  # [{"ref", "code", "message"}]
    space_reclaimed: int = 0


@dataclass
class PruneResult:
    deleted: list[dict[str, str]]
    space_reclaimed: int


class ImagesAPI(DistributionMixin):
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(
        self, filters: builtins.list[str] | dict[str, str] | None = None, all: bool = False
    ) -> builtins.list[Image]:
        """Images of the namespace; filters like docker's: reference=, dangling=, before=, since=, label=."""
        if isinstance(filters, dict):
            filters = [f"{k}={v}" for k, v in filters.items()]
        data: builtins.list[JSONObject] = self._t.get(
            "/images", params={"filter": list(filters or []), "all": all or None}
        )
        return [Image.from_dict(d) for d in data]

    def get(self, ref: str, platform: str | None = None) -> Image:
        return Image.from_dict(self._t.get("/images/inspect", params={"ref": ref, "platform": platform}))

    def exists(self, ref: str) -> bool:
        try:
            self.get(ref)
            return True
        except errors.NotFound:
            return False

    def tag(self, source: str, target: str) -> Image:
        return Image.from_dict(self._t.post("/images/tag", json_body={"source": source, "target": target}))

    def remove(self, *refs: str, force: bool = False) -> RemoveResult:
        """docker rmi. Raises the first error when nothing at all could be removed."""
        d: JSONObject = self._t.post("/images/remove", json_body={"refs": list(refs), "force": force})
        res = RemoveResult(d["results"], d["errors"], d.get("space_reclaimed", 0))
        if res.errors and not res.results and len(refs) == 1:
            e = res.errors[0]
            raise errors.from_dict({"error": {"code": e["code"], "message": e["message"]}})
        return res

    def prune(self, all: bool = False, filters: dict[str, builtins.list[str]] | None = None) -> PruneResult:
        """Remove dangling (``all``: unused) images; ``filters``: dangling, until, label, label!."""
        d: JSONObject = self._t.post(
            "/images/prune", json_body={"all": all}, params={"filters": filters or None}
        )
        return PruneResult(d["deleted"], d["space_reclaimed"])

    def import_(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        name: str | None = None,
        changes: builtins.list[str] | None = None,
        message: str = "",
        platform: str | None = None,
        unpack: bool = True,
    ) -> builtins.list[Image]:
        """Import a root file system tarball (or an image archive, or an OCI layout directory)."""
        return self._upload(
            "/images/import",
            source,
            {
                "name": name,
                "change": list(changes or []),
                "message": message or None,
                "platform": platform,
                "unpack": unpack,
            },
        )

    def load(
        self, source: str | os.PathLike[str] | BinaryIO, name: str | None = None, platform: str | None = None
    ) -> builtins.list[Image]:
        """Load a docker-save archive, an OCI archive or an OCI layout directory."""
        return self._upload("/images/load", source, {"name": name, "platform": platform})

    def _upload(
        self, path: str, source: str | os.PathLike[str] | BinaryIO, params: dict[str, object]
    ) -> builtins.list[Image]:
        import json

        # Refuse what the daemon would refuse before it reads the upload: an early answer
        # cuts the body off mid-send, and the error would be lost in a broken pipe.
        if params.get("name"):
            from podkit.images.reference import parse

            parse(str(params["name"]))
        if params.get("platform"):
            from podkit.images.oci import Platform

            Platform.parse(str(params["platform"]))
        fh: BinaryIO | None = None
        body: Iterable[bytes]
        if isinstance(source, str | os.PathLike):
            p = os.fspath(source)
            if os.path.isdir(p):
                body = _tar_dir(p)
            else:
                try:
                    fh = open(p, "rb")  # noqa: SIM115 - closed below
                except FileNotFoundError:
                    raise errors.InvalidArgument(f"{p}: no such file or directory") from None
                body = _chunks(fh)
        else:
            body = _chunks(source)
        # Sent as chunked MiB pieces (http.client would send a file 8 KiB at a time).
        try:
            try:
                conn, resp = self._t.open(
                    "POST",
                    path,
                    params=params,
                    body=body,
                    headers={"Content-Type": "application/x-tar"},
                    timeout=None,
                )
            except (BrokenPipeError, ConnectionResetError) as e:
                raise errors.Unavailable(
                    f"podkitd closed the connection during the upload ({e}); see the daemon's log"
                ) from None
            try:
                data: JSONObject = json.loads(resp.read())
            finally:
                conn.close()
        finally:
            if fh is not None:
                fh.close()
        return [Image.from_dict(d) for d in data["images"]]

    def save(
        self,
        refs: str | builtins.list[str],
        dest: str | os.PathLike[str] | BinaryIO,
        format: str = "docker",
        platform: str | None = None,
    ) -> int:
        """Write an archive of the images to ``dest``; returns the bytes written."""
        refs = [refs] if isinstance(refs, str) else list(refs)
        conn, resp = self._t.open(
            "GET", "/images/save", params={"ref": refs, "format": format, "platform": platform}, timeout=None
        )
        n = 0
        out: BinaryIO
        close = False
        tmp = final = None
        if isinstance(dest, str | os.PathLike):
            # Written aside and renamed, so a failed save never leaves a truncated archive.
            final = os.fspath(dest)
            tmp = final + ".podkit-tmp"
            out = open(tmp, "wb")  # noqa: SIM115
            close = True
        else:
            out = dest
        ok = False
        try:
            while True:
                chunk = resp.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                n += len(chunk)
            ok = True
        except (OSError, errors.PodkitError) as e:
            raise errors.Unavailable(f"save: the archive stream broke off: {e}") from None
        finally:
            conn.close()
            if close:
                out.close()
                if tmp and final and ok:
                    os.replace(tmp, final)
                elif tmp:
                    os.unlink(tmp)
        return n


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    while True:
        b = f.read(_CHUNK)
        if not b:
            return
        yield b


def _tar_dir(path: str) -> Iterator[bytes]:
    """Stream a directory (an OCI layout) as a tar, file by file, without a temp file."""
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            full = os.path.join(root, name)
            ti = tarfile.TarInfo(os.path.relpath(full, path))
            st = os.lstat(full)
            ti.mtime = int(st.st_mtime)
            ti.mode = st.st_mode & 0o7777
            ti.uid, ti.gid = st.st_uid, st.st_gid
            if os.path.islink(full):
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(full)
            elif os.path.isdir(full):
                ti.type = tarfile.DIRTYPE
            elif os.path.isfile(full):
                ti.size = st.st_size
            else:
                continue
            yield ti.tobuf(tarfile.PAX_FORMAT)
            if ti.isfile():
                with open(full, "rb") as fh:
                    yield from _chunks(fh)
                if ti.size % 512:
                    yield b"\0" * (512 - ti.size % 512)
    yield b"\0" * 1024
