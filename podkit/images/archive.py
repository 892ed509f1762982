"""Import and export of images as files.

Import understands, told apart by their content:

- a plain root file system tarball (plain, gzip or zstd): one layer, a config
  made from ``--change`` instructions;
- a docker-save archive (``manifest.json`` + config + layer tars);
- an OCI image layout in a tar (``oci-layout`` + ``index.json`` + ``blobs/``),
  including the combined form docker 25+ writes.

The upload is first written into the content store as one blob (streamed,
hashed); a root file system tarball *is* then its layer blob, an archive is read
from there with random access and dropped when done.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import posixpath
import secrets
import tarfile
from typing import Any, BinaryIO

from podkit.errors import DigestMismatch, InvalidArgument
from podkit.images.changes import apply_changes
from podkit.images.context import ImageContent
from podkit.images.oci import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Descriptor,
    Platform,
    parse_json,
)
from podkit.images.unpack import decompressed, sniff_compression
from podkit.store import Content

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def diff_id_of(f: BinaryIO, compression: str) -> str:
    h = hashlib.sha256()
    src = decompressed(f, compression)
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            return "sha256:" + h.hexdigest()
        h.update(chunk)


def sniff(content: Content, digest: str) -> tuple[str, str, str]:
    """('rootfs' | 'docker' | 'oci', compression, diff ID) of an uploaded blob.

    A plain tar is scanned header by header (seeking over the data); a compressed one
    is read once, and that pass also yields the uncompressed digest (the diff ID a
    root file system tarball needs), so nothing is decompressed twice for it.
    """
    from podkit.images.unpack import _HashingReader, _is_format_error

    names: set[str] = set()
    with content.open(digest) as f:
        compression = sniff_compression(f.read(8))
        f.seek(0)
        diff_id = digest
        try:
            if compression == "":
                with tarfile.open(fileobj=f, mode="r:") as tf:  # random access: headers only
                    for m in tf:
                        _top(m.name, names)
            else:
                reader = _HashingReader(decompressed(f, compression))
                with tarfile.open(fileobj=reader, mode="r|") as tf:  # type: ignore[call-overload]
                    for m in tf:
                        _top(m.name, names)
                reader.drain()
                diff_id = "sha256:" + reader.hash.hexdigest()
        except (tarfile.TarError, EOFError, OSError) as e:
            raise InvalidArgument(f"the upload is not a tar archive (plain, gzip or zstd): {e}") from None
        except Exception as e:
            if not _is_format_error(e):
                raise
            raise InvalidArgument(f"the upload is not a tar archive (plain, gzip or zstd): {e}") from None
    if not names:
        raise InvalidArgument("the upload is an empty tar archive")
    if "oci-layout" in names and "index.json" in names:
        return "oci", compression, diff_id
    if "manifest.json" in names:
        return "docker", compression, diff_id
    return "rootfs", compression, diff_id


def _top(name: str, names: set[str]) -> None:
    """Note the top-level entry a member belongs to (files named at the top stand alone)."""
    n = name.removeprefix("./").strip("/")
    if not n:
        return
    first, sep, _ = n.partition("/")
    names.add(first + ("/" if sep else ""))


def build_rootfs_image(
    content: Content,
    layer_digest: str,
    compression: str,
    changes: list[str],
    message: str = "",
    platform: Platform | None = None,
    diff_id: str | None = None,
) -> Descriptor:
    """Write config and manifest for a one-layer image; returns the manifest descriptor."""
    if diff_id is None:
        with content.open(layer_digest) as f:
            diff_id = layer_digest if compression == "" else diff_id_of(f, compression)
    plat = platform or Platform.host()
    created = now_rfc3339()
    cfg: dict[str, Any] = apply_changes({}, changes)
    config: dict[str, Any] = {
        "created": created,
        "architecture": plat.architecture,
        "os": plat.os,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [
            {
                "created": created,
                "created_by": "podkit image import",
                **({"comment": message} if message else {}),
            }
        ],
    }
    if plat.variant:
        config["variant"] = plat.variant
    cfg_bytes = json.dumps(config, separators=(",", ":"), sort_keys=True).encode()
    cfg_digest = content.put(cfg_bytes)
    media = {"": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}[compression]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": len(cfg_bytes)},
        "layers": [{"mediaType": media, "digest": layer_digest, "size": content.size(layer_digest)}],
    }
    m_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    m_digest = content.put(m_bytes)
    return Descriptor(OCI_MANIFEST, m_digest, len(m_bytes))


# -- reading archives ----------------------------------------------------------------


class _Archive:
    """Random access to the members of an uploaded tar (decompressed aside if needed)."""

    def __init__(self, content: ImageContent, digest: str, compression: str) -> None:
        self.content = content
        self.digest = digest
        self._tmp: str | None = None
        if compression:
            self._tmp = os.path.join(content.ingest_dir, "archive-" + secrets.token_hex(8))
            with content.open(digest) as src, open(self._tmp, "wb") as out:
                dsrc = decompressed(src, compression)
                while True:
                    chunk = dsrc.read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
            self.f: BinaryIO = open(self._tmp, "rb")  # noqa: SIM115 - closed in close()
        else:
            self.f = content.open(digest)
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            self.tf = tarfile.open(fileobj=self.f, mode="r:")  # noqa: SIM115 - closed with self.f
            for m in self.tf.getmembers():  # a member cut short fails here
                self.members[_norm(m.name)] = m
        except tarfile.TarError as e:
            self.close()
            raise InvalidArgument(f"the archive is not a valid tar: {e}") from None

    def close(self) -> None:
        try:
            self.f.close()
        except OSError as e:
            log.warning("could not close archive %s: %s", self.digest, e)
        if self._tmp:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)

    def member(self, name: str, seen: int = 0) -> tarfile.TarInfo:
        m = self.members.get(_norm(name))
        if m is None:
            raise InvalidArgument(f"the archive has no {name!r}")
        if m.issym() or m.islnk():
            if seen > 10:
                raise InvalidArgument(f"the archive's {name!r} is a link loop")
            target = m.linkname if m.islnk() else posixpath.join(posixpath.dirname(_norm(name)), m.linkname)
            return self.member(posixpath.normpath(target), seen + 1)
        if not m.isfile():
            raise InvalidArgument(f"the archive's {name!r} is not a file")
        return m

    def has(self, name: str) -> bool:
        return _norm(name) in self.members

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        m = self.member(name)
        if m.size > limit:
            raise InvalidArgument(f"the archive's {name!r} is too large for a JSON document ({m.size} bytes)")
        f = self.tf.extractfile(m)
        assert f is not None
        return f.read()

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.read(name))
        except RecursionError:
            raise InvalidArgument(f"the archive's {name!r} is not valid JSON: nested too deeply") from None
        except ValueError as e:
            raise InvalidArgument(f"the archive's {name!r} is not valid JSON: {e}") from None

    def ingest(self, name: str, expected: str | None = None, size: int | None = None) -> tuple[str, int]:
        """Copy a member into the content store (verified against ``expected``)."""
        m = self.member(name)
        if size is not None and m.size != size:
            raise DigestMismatch(f"the archive's {name!r} has {m.size} bytes, its descriptor says {size}")
        if expected and self.content.has(expected):
            return expected, m.size
        f = self.tf.extractfile(m)
        assert f is not None
        with self.content.writer(expected, m.size) as w:
            while True:
                chunk = f.read(_CHUNK)
                if not chunk:
                    break
                w.write(chunk)
            return w.commit(), m.size


def _norm(name: str) -> str:
    n = posixpath.normpath(name.lstrip("/"))
    return "" if n == "." else n


def _blob_path(digest: str) -> str:
    algo, _, hex_ = _str(digest, "digest").partition(":")
    if algo != "sha256" or len(hex_) != 64:
        raise InvalidArgument(f"unsupported digest {digest!r} in the archive")
    return f"blobs/sha256/{hex_}"


def read_archive(
    content: ImageContent, digest: str, kind: str, compression: str, platform: Platform | None = None
) -> list[tuple[Descriptor, list[str]]]:
    """Copy an archive's images into the content store; returns (target, names) per image."""
    arc = _Archive(content, digest, compression)
    try:
        if kind == "oci":
            return _read_oci(arc)
        return _read_docker(arc)
    except (tarfile.TarError, EOFError) as e:
        # A member cut short or damaged (its header said more than the file holds). The
        # JSON documents' shapes are checked where they are read (_obj, _list, _strs).
        raise InvalidArgument(f"the archive is damaged ({kind} format): {e}") from None
    finally:
        arc.close()


# The archive's JSON documents are untrusted: a list where an object belongs, a number
# for a path is a malformed upload, refused naming what is wrong.


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidArgument(f"the archive's {what} is not a JSON object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    """A JSON array (absent or null: empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"the archive's {what} is not a JSON array")
    return value


def _strs(value: Any, what: str) -> list[str]:
    items = _list(value, what)
    if not all(isinstance(v, str) for v in items):
        raise InvalidArgument(f"the archive's {what} holds something other than strings")
    return items


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"the archive's {what} is not a string")
    return value


def _read_oci(arc: _Archive) -> list[tuple[Descriptor, list[str]]]:
    from podkit.images.oci import INDEX_TYPES, MANIFEST_TYPES

    layout = arc.json("oci-layout")
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise InvalidArgument("the archive's oci-layout has no imageLayoutVersion")
    index = _obj(arc.json("index.json"), "index.json")
    repo_tags = _docker_repo_tags(arc)

    def walk(desc: Descriptor, top: bool) -> bool:
        """Ingest a descriptor and what it references; False if a child manifest is absent."""
        path = _blob_path(desc.digest)
        if not arc.has(path):
            if top:
                raise InvalidArgument(f"the archive lacks blob {desc.digest} named in index.json")
            return False
        if desc.media_type in INDEX_TYPES or desc.media_type in MANIFEST_TYPES or not desc.media_type:
            data = arc.read(path)
            doc = parse_json(data, f"the archive's {path!r}")
            if not isinstance(doc, dict):
                raise InvalidArgument(f"the archive's {path!r} is not a JSON object")
            if not desc.media_type:
                desc.media_type = _str(doc.get("mediaType") or "", f"{path!r} mediaType") or (
                    "application/vnd.oci.image.index.v1+json" if "manifests" in doc else OCI_MANIFEST
                )
            arc.ingest(path, desc.digest, desc.size)
            if "manifests" in doc:
                kids = _list(doc.get("manifests"), f"{path!r} manifests")
                present = [walk(Descriptor.from_dict(m), False) for m in kids]
                if not any(present):
                    raise InvalidArgument(f"the archive has none of the manifests of index {desc.digest}")
            else:
                if "config" not in doc:
                    raise InvalidArgument(f"the archive's manifest {path!r} has no config")
                cfg = Descriptor.from_dict(doc["config"])
                arc.ingest(_blob_path(cfg.digest), cfg.digest, cfg.size)
                for layer in _list(doc.get("layers"), f"{path!r} layers"):
                    ld = Descriptor.from_dict(layer)
                    arc.ingest(_blob_path(ld.digest), ld.digest, ld.size)
            return True
        arc.ingest(path, desc.digest, desc.size)
        return True

    out: list[tuple[Descriptor, list[str]]] = []
    for m in _list(index.get("manifests"), "index.json manifests"):
        desc = Descriptor.from_dict(m)
        walk(desc, True)
        ann = desc.annotations
        names: list[str] = []
        full = _str(ann.get("io.containerd.image.name", ""), "io.containerd.image.name annotation")
        ref_name = _str(ann.get("org.opencontainers.image.ref.name", ""), "ref.name annotation")
        if full:
            names.append(full)
        elif ref_name and ("/" in ref_name or ":" in ref_name) and _valid_ref(ref_name):
            names.append(ref_name)
        if not names and repo_tags:
            names = repo_tags.get(_config_of(arc, desc), [])
        desc.annotations = {}
        # One target per digest: several index entries may name the same image.
        for t, n in out:
            if t.digest == desc.digest:
                n.extend(x for x in names if x not in n)
                break
        else:
            out.append((desc, names))
    if not out:
        raise InvalidArgument("the archive's index.json lists no images")
    return _group_platforms(arc, out)


def _group_platforms(
    arc: _Archive, found: list[tuple[Descriptor, list[str]]]
) -> list[tuple[Descriptor, list[str]]]:
    """Several platform manifests under one name (listed straight in index.json rather
    than through a nested index) become one image: an index made for them."""
    from podkit.images.oci import OCI_INDEX

    groups: dict[tuple[str, ...], list[Descriptor]] = {}
    for desc, names in found:
        groups.setdefault(tuple(sorted(names)), []).append(desc)
    out: list[tuple[Descriptor, list[str]]] = []
    for key, descs in groups.items():
        if len(descs) > 1 and all(
            d.platform
            and d.media_type in (OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json")
            for d in descs
        ):
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d.to_dict() for d in descs]}
            data = json.dumps(index, separators=(",", ":")).encode()
            out.append((Descriptor(OCI_INDEX, arc.content.put(data), len(data)), list(key)))
            continue
        for d in descs:
            d.platform = None
            out.append((d, list(key)))
    return out


def _valid_ref(text: str) -> bool:
    from podkit.images import reference

    try:
        reference.parse(text)
        return True
    except InvalidArgument:
        return False


def _config_of(arc: _Archive, desc: Descriptor) -> str:
    try:
        doc = json.loads(arc.read(_blob_path(desc.digest)))
    except (InvalidArgument, ValueError, RecursionError):
        return ""
    cfg = doc.get("config") if isinstance(doc, dict) else None
    digest = cfg.get("digest", "") if isinstance(cfg, dict) else ""
    return digest if isinstance(digest, str) else ""


def _docker_repo_tags(arc: _Archive) -> dict[str, list[str]]:
    """config digest -> RepoTags, from a docker-save manifest.json (when there is one)."""
    if not arc.has("manifest.json"):
        return {}
    out: dict[str, list[str]] = {}
    for entry in _list(arc.json("manifest.json"), "manifest.json"):
        entry = _obj(entry, "manifest.json entry")
        cfg = _str(entry.get("Config", ""), "manifest.json Config")
        hex_ = cfg.rsplit("/", 1)[-1].removesuffix(".json")
        out.setdefault("sha256:" + hex_, []).extend(
            t for t in _strs(entry.get("RepoTags"), "manifest.json RepoTags") if t
        )
    return out


def _read_docker(arc: _Archive) -> list[tuple[Descriptor, list[str]]]:
    from podkit.images.unpack import sniff_compression

    entries = arc.json("manifest.json")
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument("the archive's manifest.json lists no images")
    out: list[tuple[Descriptor, list[str]]] = []
    for e in entries:
        if not isinstance(e, dict) or "Config" not in e or "Layers" not in e:
            raise InvalidArgument("the archive's manifest.json has an entry without Config or Layers")
        cfg_path = _str(e["Config"], "manifest.json Config")
        layer_paths = _strs(e["Layers"], "manifest.json Layers")
        cfg_bytes = arc.read(cfg_path)
        try:
            config = _obj(json.loads(cfg_bytes), f"config {cfg_path!r}")
        except (ValueError, RecursionError) as err:
            raise InvalidArgument(f"the archive's config {cfg_path!r} is not JSON: {err}") from None
        rootfs = _obj(config.get("rootfs") or {}, f"config {cfg_path!r} rootfs")
        diff_ids = _strs(rootfs.get("diff_ids"), f"config {cfg_path!r} diff_ids")
        if len(diff_ids) != len(layer_paths):
            raise InvalidArgument(
                f"the archive's image {cfg_path!r} has {len(layer_paths)} layers but {len(diff_ids)} diff IDs"
            )
        cfg_digest = arc.content.put(cfg_bytes)
        layers = []
        for path, diff_id in zip(layer_paths, diff_ids, strict=True):
            m = arc.member(path)
            f = arc.tf.extractfile(m)
            assert f is not None
            compression = sniff_compression(f.read(8))
            digest, size = arc.ingest(path, diff_id if not compression else None)
            media = {"": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}[compression]
            layers.append({"mediaType": media, "digest": digest, "size": size})
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": len(cfg_bytes)},
            "layers": layers,
        }
        mb = json.dumps(manifest, separators=(",", ":")).encode()
        out.append(
            (
                Descriptor(OCI_MANIFEST, arc.content.put(mb), len(mb)),
                [t for t in _strs(e.get("RepoTags"), "manifest.json RepoTags") if t],
            )
        )
    return out
