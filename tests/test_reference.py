"""Image references: docker normalisation, tags, digests, registries with ports, refusals."""

from __future__ import annotations

import pytest

from podkit.errors import InvalidArgument
from podkit.images.reference import looks_like_id, parse

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    "text,want",
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36"),
        ("user/app", "docker.io/user/app:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest"),
        ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
        ("registry-1.docker.io/user/x", "docker.io/user/x:latest"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/app:dev", "localhost:5000/app:dev"),
        ("127.0.0.1:5000/a/b/c:1.0-rc_1", "127.0.0.1:5000/a/b/c:1.0-rc_1"),
        ("[::1]:5000/app", "[::1]:5000/app:latest"),
        ("quay.io/org/app", "quay.io/org/app:latest"),
        (f"busybox@{D}", f"docker.io/library/busybox@{D}"),
        (f"busybox:1.36@{D}", f"docker.io/library/busybox:1.36@{D}"),
        ("a__b/c--d.e_f", "docker.io/a__b/c--d.e_f:latest"),
        ("busybox:TAG_1.0-x", "docker.io/library/busybox:TAG_1.0-x"),
        ("LOCALHOST:5000/app", "LOCALHOST:5000/app:latest"),
    ],
)
def test_normalisation(text: str, want: str) -> None:
    assert str(parse(text)) == want


def test_parts_and_object() -> None:
    r = parse(f"127.0.0.1:5000/team/app:1.0@{D}")
    assert (r.registry, r.repository, r.tag, r.digest) == ("127.0.0.1:5000", "team/app", "1.0", D)
    assert r.object == D  # the digest wins when pulling
    assert parse("busybox").object == "latest"
    assert parse("busybox", default_tag=False).tag is None


def test_familiar() -> None:
    assert parse("busybox").familiar() == "busybox:latest"
    assert parse("user/app:2").familiar() == "user/app:2"
    assert parse("localhost:5000/app").familiar() == "localhost:5000/app:latest"


def test_with_tag_and_digest() -> None:
    r = parse("busybox:1")
    assert str(r.with_tag("2")) == "docker.io/library/busybox:2"
    assert str(r.with_digest(D)) == f"docker.io/library/busybox@{D}"


@pytest.mark.parametrize(
    "text,words",
    [
        ("", "empty"),
        (" busybox", "spaces"),
        ("Busybox", "lowercase"),
        ("busybox:", "invalid tag"),
        ("busybox:-x", "invalid tag"),
        ("busybox:" + "t" * 129, "invalid tag"),
        ("busybox:t\u00e4g", "invalid tag"),  # tags are ASCII only
        ("busybox@sha256:abc", "digest"),
        ("busybox@md5:" + "a" * 32, "digest"),
        ("bad_host:5000/app", "bad registry"),
        ("host:99999x/app", "bad registry"),
        ("app//x", "bad repository"),
        ("app/-x", "bad repository"),
        ("a" * 300, "too long"),
        (":tag", "no repository"),
    ],
)
def test_invalid_refused_with_reason(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        parse(text)
    assert "invalid reference format" in ei.value.message
    assert words in ei.value.message


def test_looks_like_id() -> None:
    assert looks_like_id("ab" * 32)
    assert looks_like_id(D)
    assert not looks_like_id("busybox")
    assert not looks_like_id("abc")
