"""Property-based fuzzing (hypothesis) of the parsers that take outside input.

References, manifests and indexes, image configs, layer tars, kube YAML and API
bodies (podkit's container create and the Docker API's): whatever comes in, the
parser returns or raises InvalidArgument (the API's 4xx), never another exception
(the API's 500) and never hangs. No root, no daemon: the unit tier. Examples and
deadlines are bounded so the file takes seconds.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podkit.containers.options import CreateOptions
from podkit.dockerapi.create import translate
from podkit.errors import InvalidArgument, PodkitError
from podkit.images import reference
from podkit.images.oci import Platform, check_image_config, descriptors, parse_json, select_manifest
from podkit.images.unpack import apply_layer
from podkit.pods import kube

FAST = settings(
    max_examples=80, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# JSON values, shallow and small (deep nesting has its own regression tests).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4),
    max_leaves=20,
)


def _refused_or_ok(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except InvalidArgument:
        pass


@FAST
@given(st.text(max_size=300))
def test_references(text: str) -> None:
    try:
        ref = reference.parse(text)
    except InvalidArgument:
        return
    # what parses, prints back to something that parses to the same
    assert reference.parse(str(ref)) == ref


@FAST
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_/:@", max_size=120))
def test_references_near_valid(text: str) -> None:
    _refused_or_ok(reference.parse, text)


def _descriptor() -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {},
        optional={
            "mediaType": st.sampled_from(
                [
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "x",
                ]
            )
            | json_values,
            "digest": st.just("sha256:" + "a" * 64) | json_values,
            "size": st.integers(-5, 10**12) | json_values,
            "platform": st.fixed_dictionaries({}, optional={"os": json_values, "architecture": json_values})
            | json_values,
            "urls": json_values,
            "annotations": json_values,
        },
    )


@FAST
@given(st.fixed_dictionaries({}, optional={"manifests": st.lists(_descriptor(), max_size=4) | json_values}))
def test_indexes(index: dict[str, Any]) -> None:
    _refused_or_ok(select_manifest, index, Platform.host())


@FAST
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "layers": st.lists(_descriptor(), max_size=4) | json_values,
            "config": _descriptor() | json_values,
        },
    )
)
def test_manifests(manifest: dict[str, Any]) -> None:
    _refused_or_ok(descriptors, manifest, "layers", "manifest")


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_json_documents(data: bytes) -> None:
    _refused_or_ok(parse_json, data, "manifest")


@FAST
@given(
    json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "config": st.dictionaries(
                st.sampled_from(
                    ["User", "Env", "Cmd", "Entrypoint", "ExposedPorts", "Volumes", "Labels", "WorkingDir"]
                ),
                json_values,
            )
            | json_values,
            "rootfs": json_values,
        },
    )
)
def test_image_configs(config: Any) -> None:
    _refused_or_ok(check_image_config, config, "sha256:" + "0" * 64)


_NAMES = st.sampled_from(
    ["a", "a/b", "../x", "/abs", "./c", ".wh.a", "a/.wh..wh..opq", "", ".", "d/../../e", "x" * 300]
)
_MEMBER = st.tuples(
    _NAMES,
    st.sampled_from(
        [tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE, b"Z"]
    ),
    _NAMES,
    st.binary(max_size=64),
    st.integers(0, 0o7777),
)


def _tar(members: list[tuple[str, bytes, str, bytes, int]], cut: int | None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, link, data, mode in members:
            ti = tarfile.TarInfo(name or "x")
            ti.type = kind
            ti.linkname = link
            ti.mode = mode
            if kind == tarfile.REGTYPE:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    raw = buf.getvalue()
    return raw[:cut] if cut is not None else raw


@settings(max_examples=30, deadline=5000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(st.lists(_MEMBER, max_size=6), st.none() | st.integers(0, 2048))
def test_layer_tars(members: list[tuple[str, bytes, str, bytes, int]], cut: int | None) -> None:
    data = _tar(members, cut)
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "rootfs"
        target.mkdir()
        try:
            apply_layer(io.BytesIO(data), "", target, whiteouts="native")
        except PodkitError as e:
            assert e.status < 500, e
        # nothing lands outside the target
        outside = {p.name for p in Path(d).iterdir()}
        assert outside == {"rootfs"}, outside


_KUBE_KEYS = [
    "apiVersion", "kind", "metadata", "spec", "name", "labels", "containers", "image", "command", "env",
    "ports", "volumeMounts", "volumes", "hostPath", "resources", "securityContext", "restartPolicy",
]  # fmt: skip


def _kube_doc() -> st.SearchStrategy[Any]:
    leaf = (
        st.none()
        | st.booleans()
        | st.integers(-3, 70000)
        | st.text(max_size=8)
        | st.sampled_from(["Pod", "v1", "busybox"])
    )
    return st.recursive(
        leaf,
        lambda kids: (
            st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(_KUBE_KEYS), kids, max_size=5)
        ),
        max_leaves=25,
    )


@FAST
@given(_kube_doc())
def test_kube_documents(doc: Any) -> None:
    import yaml

    _refused_or_ok(kube.parse, yaml.safe_dump(doc))
    _refused_or_ok(
        kube.parse,
        yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": doc}),
    )


@FAST
@given(st.text(max_size=200))
def test_kube_text(text: str) -> None:
    _refused_or_ok(kube.parse, text)


_CREATE_KEYS = [
    "image", "name", "cmd", "entrypoint", "env", "labels", "ports", "volumes", "mounts", "tmpfs",
    "restart", "user", "workdir", "network", "memory", "cpus", "ulimits", "devices", "cap_add",
    "security_opt", "hostname", "dns", "healthcheck", "tty", "auto_remove", "stop_signal",
]  # fmt: skip


@FAST
@given(st.dictionaries(st.sampled_from(_CREATE_KEYS), json_values, max_size=6))
def test_create_bodies(body: dict[str, Any]) -> None:
    body.setdefault("image", "busybox")
    _refused_or_ok(CreateOptions.parse, body)


_DOCKER_KEYS = [
    "Image", "Cmd", "Entrypoint", "Env", "Labels", "ExposedPorts", "WorkingDir", "User", "Tty",
    "StopSignal", "Healthcheck", "Volumes", "HostConfig", "NetworkingConfig",
]  # fmt: skip
_HOST_KEYS = [
    "Binds", "PortBindings", "Memory", "NanoCpus", "RestartPolicy", "Mounts", "Tmpfs", "CapAdd",
    "Privileged", "NetworkMode", "Devices", "Ulimits", "AutoRemove", "SecurityOpt", "LogConfig",
]  # fmt: skip


@FAST
@given(
    st.dictionaries(st.sampled_from(_DOCKER_KEYS), json_values, max_size=5),
    st.dictionaries(st.sampled_from(_HOST_KEYS), json_values, max_size=5),
)
def test_docker_create_bodies(body: dict[str, Any], host: dict[str, Any]) -> None:
    body.setdefault("Image", "busybox")
    if host:
        body["HostConfig"] = host
    try:
        opts = translate(body, None)
        CreateOptions.parse(opts)
    except InvalidArgument:
        pass
    json.dumps(body)  # the body was JSON: a real client could send it


# What the fuzzer found (each was a 500): kept as plain cases.
@pytest.mark.parametrize(
    "body",
    [
        {"Image": "b", "HostConfig": {"Memory": ":"}},
        {"Image": "b", "HostConfig": {"Memory": [None]}},
        {"Image": "b", "NetworkingConfig": "0"},
        {"Image": "b", "HostConfig": {"LogConfig": 1.0}},
    ],
)
def test_docker_create_wrong_types_found_by_fuzzing(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        translate(body, None)
