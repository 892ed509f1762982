"""podkit build checked against an independent builder: Debian's buildah (1.28) builds
the same Dockerfile (`buildah bud`, its own --root/--runroot under the test's
directory, vfs storage; buildah 1.28 has no heredocs, so those are checked in
tests/test_build.py alone); both images' file trees and config fields must agree.
buildah's image comes back into podkit by a docker-archive, so both trees are read the
same way (a created, never started container's export)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Daemon

BUILDAH = shutil.which("buildah")
pytestmark = [pytest.mark.root, pytest.mark.skipif(BUILDAH is None, reason="buildah is not installed")]

DOCKERFILE = """\
ARG BASE=busybox
FROM $BASE AS build
WORKDIR /src
COPY app/ ./
RUN mkdir -p /out && cat *.txt > /out/all.txt && ln /out/all.txt /out/hard && rm -f /etc/group
RUN echo heredoc > /out/h

FROM busybox
ARG VERSION=1.0
ENV APP_VERSION=$VERSION PATH=/usr/local/bin:/usr/bin:/bin
COPY --from=build /out/ /opt/app/
COPY --chown=1000:1000 --chmod=640 app/a.txt /opt/owned.txt
WORKDIR /opt/app
USER 1000:1000
EXPOSE 8080 9090/udp
LABEL org.example.name="demo app" version=$VERSION
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD ["cat", "/opt/app/all.txt"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /opt/app/all.txt"]
"""

FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels", "Volumes", "StopSignal")


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon


def _buildah(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert BUILDAH is not None
    cmd = [
        BUILDAH,
        "--root",
        str(root / "root"),
        "--runroot",
        str(root / "run"),
        "--storage-driver",
        "vfs",
        *args,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)}:\n{r.stdout}\n{r.stderr}"
    return r


def _tree(d: Daemon, image: str) -> dict[str, tuple[Any, ...]]:
    c = d.client()
    r = d.cli("create", "--entrypoint", "", image, "true")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    buf = io.BytesIO()
    try:
        c.containers.export(cid, buf)
    finally:
        c.containers.remove(cid, force=True)
    out: dict[str, tuple[Any, ...]] = {}
    skip = ("etc/hosts", "etc/hostname", "etc/resolv.conf")
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        for m in tf.getmembers():
            if m.name in skip or m.name.split("/")[0] in ("proc", "sys", "dev", "run"):
                continue
            f = tf.extractfile(m) if m.isfile() else None
            data = f.read() if f else b""
            out[m.name] = (m.type, m.mode, m.uid, m.gid, m.linkname if m.issym() else "", data)
    return out


def test_same_tree_and_config_as_buildah(d: Daemon, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "app").mkdir(parents=True)
    (ctx / "app" / "a.txt").write_text("alpha\n")
    (ctx / "app" / "b.txt").write_text("beta\n")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    r = d.cli("build", "-t", "pk:1", "--build-arg", "VERSION=2.5", str(ctx))
    assert r.returncode == 0, r.stdout + r.stderr

    broot = tmp_path / "buildah"
    archive = tmp_path / "busybox.tar"
    out = tmp_path / "bh.tar"
    d.client().images.save("busybox", archive)
    try:
        _buildah(broot, "pull", f"docker-archive:{archive}")
        _buildah(
            broot,
            "bud",
            "--format",
            "docker",
            "--pull-never",
            "--isolation",
            "chroot",
            "--build-arg",
            "VERSION=2.5",
            "-t",
            "bh:1",
            str(ctx),
        )
        _buildah(broot, "push", "bh:1", f"docker-archive:{out}:localhost/bh:1")
    finally:
        subprocess.run(["umount", "-R", str(broot / "root")], capture_output=True)
    d.client().images.load(out)

    pk = d.client().images.get("pk:1").config["config"]
    bh = d.client().images.get("localhost/bh:1").config["config"]
    bh["Labels"].pop("io.buildah.version", None)  # buildah's own mark
    for f in FIELDS:
        assert pk.get(f) == bh.get(f), f
    assert pk["Healthcheck"]["Test"] == bh["Healthcheck"]["Test"]
    assert pk["Healthcheck"]["Interval"] == bh["Healthcheck"]["Interval"]

    a, b = _tree(d, "pk:1"), _tree(d, "localhost/bh:1")
    assert set(a) == set(b), set(a) ^ set(b)
    diffs = {k: (a[k][:5], b[k][:5]) for k in a if a[k] != b[k]}
    assert diffs == {}
    assert a["opt/app/h"][5] == b"heredoc\n" and a["opt/owned.txt"][1:4] == (0o640, 1000, 1000)
