"""Inputs that made a 500 where a 4xx is right (issue 10, item 7): JSON nested 100k deep
(our API and the Docker API), play kube with `labels` as a list or YAML nested deep,
an image archive whose manifest is nested 200k deep. (A registry answering nonsense:
tests/test_security_registry_responses.py.)
"""

from __future__ import annotations

import io
import json
import tarfile

import yaml

from podkit.errors import InvalidArgument
from podkit.pods import kube
from tests.helpers import Daemon
from tests.rawhttp import call, error_message

_DEEP = b"[" * 100_000 + b"]" * 100_000


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}


def _kube(**meta: object) -> str:
    doc = json.loads(json.dumps(_POD))
    doc["metadata"].update(meta)
    return yaml.safe_dump(doc)


def test_no_500_for_hostile_inputs(daemon: Daemon) -> None:
    sock, docker = str(daemon.socket), str(daemon.state / "docker.sock")
    deep_manifest = b'{"a":' * 200_000 + b"1" + b"}" * 200_000
    cases = [
        ("deep body", sock, "POST", "/v1/volumes", _DEEP, {}),
        ("deep create", sock, "POST", "/v1/containers", _DEEP, {}),
        ("docker deep", docker, "POST", "/containers/create", _DEEP, {}),
        ("kube labels list", sock, "POST", "/v1/play/kube", {"yaml": _kube(labels=["a=b"])}, {}),
        ("kube annotations str", sock, "POST", "/v1/play/kube", {"yaml": _kube(annotations="x")}, {}),
        (
            "kube deep yaml",
            sock,
            "POST",
            "/v1/play/kube",
            {"yaml": "a: " + "[" * 100_000 + "]" * 100_000},
            {},
        ),
        (
            "load deep manifest.json",
            sock,
            "POST",
            "/v1/images/load",
            _tar({"manifest.json": deep_manifest}),
            {"Content-Type": "application/x-tar"},
        ),
        (
            "load deep index.json",
            sock,
            "POST",
            "/v1/images/load",
            _tar({"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": deep_manifest}),
            {"Content-Type": "application/x-tar"},
        ),
    ]
    wrong = []
    try:
        for what, path, method, url, body, headers in cases:
            status, payload = call(path, method, url, body, headers=headers, timeout=60)
            if not 400 <= status < 500:
                wrong.append((what, status, error_message(payload)[:200]))
    finally:  # what a failing run made (a pod outlives its daemon)
        c = daemon.client()
        for pod in c.pods.list():
            c.pods.remove(pod.id, force=True)
    assert not wrong, "\n".join(map(str, wrong))


def test_kube_metadata_maps_are_checked() -> None:
    for meta, field in (({"labels": ["a=b"]}, "labels"), ({"annotations": {"a": {"b": 1}}}, "annotations")):
        try:
            kube.parse(_kube(**meta))
        except InvalidArgument as e:
            assert f"metadata.{field}" in e.message
        else:
            raise AssertionError(f"{meta} was taken")
