"""read_archive (load/import of docker-save and OCI archives) on JSON documents of the
wrong shape: each is refused with InvalidArgument naming the document, never a
TypeError or AttributeError (a 500) — the catch-all that turned every error into
InvalidArgument is gone, so these checks are what stands between an upload and one."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from podkit.errors import InvalidArgument
from podkit.images.archive import read_archive
from podkit.store import ContentStore

LAYER = b""  # an empty member stands for a layer: the shapes fail before it is read
CFG_OK = json.dumps({"rootfs": {"type": "layers", "diff_ids": []}}).encode()


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _oci(index: Any, blobs: dict[str, bytes] | None = None) -> bytes:
    members = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', "index.json": json.dumps(index).encode()}
    for data in (blobs or {}).values():
        members[f"blobs/sha256/{_sha(data)[7:]}"] = data
    return _tar(members)


def _manifest_desc(doc: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    data = json.dumps(doc).encode()
    desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": _sha(data),
        "size": len(data),
    }
    return desc, {"m": data}


def _docker(entry: Any, config: bytes = CFG_OK) -> bytes:
    return _tar({"manifest.json": json.dumps([entry]).encode(), "c.json": config})


_m_no_config, _b_no_config = _manifest_desc({"schemaVersion": 2, "layers": []})
_m_bad_layers, _b_bad_layers = _manifest_desc(
    {"schemaVersion": 2, "config": {"digest": _sha(CFG_OK), "size": len(CFG_OK)}, "layers": "x"}
)

CASES = [
    ("oci", _oci([1, 2]), "index.json is not a JSON object"),
    ("oci", _oci({"manifests": 5}), "index.json manifests is not a JSON array"),
    ("oci", _oci({"manifests": [{"mediaType": [], "digest": "x", "size": 1}]}), "mediaType and digest"),
    ("oci", _oci({"manifests": [{"digest": 12, "size": 1}]}), "mediaType and digest"),
    ("oci", _oci({"manifests": [_m_no_config]}, _b_no_config), "has no config"),
    (
        "oci",
        _oci({"manifests": [_m_bad_layers]}, {**_b_bad_layers, "c": CFG_OK}),
        "layers is not a JSON array",
    ),
    ("docker", _docker({"Config": 5, "Layers": []}), "Config is not a string"),
    ("docker", _docker({"Config": "c.json", "Layers": [1]}), "Layers holds something other"),
    ("docker", _docker({"Config": "c.json", "Layers": []}, b"[1]"), "is not a JSON object"),
    (
        "docker",
        _docker({"Config": "c.json", "Layers": []}, b'{"rootfs": "x"}'),
        "rootfs is not a JSON object",
    ),
    (
        "docker",
        _docker({"Config": "c.json", "Layers": []}, b'{"rootfs": {"diff_ids": {"a": 1}}}'),
        "diff_ids is not a JSON array",
    ),
    ("docker", _docker({"Config": "c.json", "Layers": [], "RepoTags": 7}), "RepoTags is not a JSON array"),
]


@pytest.mark.parametrize(("kind", "data", "message"), CASES)
def test_wrong_shapes_are_invalid_argument(tmp_path: Path, kind: str, data: bytes, message: str) -> None:
    content = ContentStore(tmp_path)
    digest = str(content.put(data))
    with pytest.raises(InvalidArgument, match=message):
        read_archive(content, digest, kind, "")  # type: ignore[arg-type]  # a plain store is all it reads


def test_a_truncated_member_is_invalid_argument(tmp_path: Path) -> None:
    whole = _docker({"Config": "c.json", "Layers": ["l.tar"]}, CFG_OK)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, payload in (
            ("manifest.json", b'[{"Config": "c.json", "Layers": ["l.tar"]}]'),
            ("c.json", CFG_OK),
        ):
            ti = tarfile.TarInfo(name)
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
        ti = tarfile.TarInfo("l.tar")
        ti.size = 1 << 20
        tf.addfile(ti, io.BytesIO(b"\0" * (1 << 20)))
    data = buf.getvalue()[: len(whole) + 4096]  # the layer's header says more than follows
    content = ContentStore(tmp_path)
    digest = str(content.put(data))
    with pytest.raises(InvalidArgument):
        read_archive(content, digest, "docker", "")  # type: ignore[arg-type]
