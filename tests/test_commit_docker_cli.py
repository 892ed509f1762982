"""docker build (classic builder), commit, diff and export (a real docker 28 client) against podkitd's Docker
Engine API. Skipped where the docker CLI is not installed."""

from __future__ import annotations

import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_env import DOCKER, DockerEnv, docker_env

pytestmark = [pytest.mark.root, pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")]


@pytest.fixture(scope="module")
def env(busybox_tarball: Path) -> Iterator[DockerEnv]:
    with docker_env(tarball=busybox_tarball) as e:
        yield e


def test_docker_diff_commit_export(env: DockerEnv, tmp_path: Path) -> None:
    env.docker("run", "--name", "dc1", "busybox", "sh", "-c", "echo x > /added; rm /etc/group")
    lines = env.docker("diff", "dc1").stdout.splitlines()
    assert "A /added" in lines and "D /etc/group" in lines and "C /etc" in lines
    r = env.docker(
        "commit", "-m", "note", "-c", "ENV FOO=bar", "-c", 'CMD ["cat", "/added"]', "dc1", "dcimg:1"
    )
    assert r.stdout.strip().startswith("sha256:")
    assert env.docker("run", "--rm", "dcimg:1").stdout == "x\n"
    env_out = env.docker("image", "inspect", "-f", "{{json .Config.Env}}", "dcimg:1").stdout
    assert "FOO=bar" in env_out
    out = tmp_path / "fs.tar"
    env.docker("export", "-o", str(out), "dc1")
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
    assert "added" in names and "bin/busybox" in names and "etc/group" not in names
    r = env.docker("commit", "nosuch", "x", check=False)
    assert r.returncode != 0 and "No such container: nosuch" in r.stderr
    env.docker("rm", "dc1")
    env.docker("rmi", "dcimg:1")


def test_docker_build_classic(env: DockerEnv, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f.txt").write_text("from-context\n")
    (ctx / "ignored.txt").write_text("no")
    (ctx / ".dockerignore").write_text("ignored.txt\n")
    (ctx / "Dockerfile").write_text(
        'FROM busybox\nARG V=1\nCOPY . /c/\nRUN echo v=$V && ls /c\nLABEL x=y\nCMD ["cat", "/c/f.txt"]\n'
    )
    e = dict(env.env(), DOCKER_BUILDKIT="0")
    assert DOCKER is not None
    since = str(time.time() - 1)
    r = subprocess.run(
        [DOCKER, "build", "-t", "dbuilt:1", "--build-arg", "V=7", "--label", "l=1", str(ctx)],
        env=e,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Step 4/6 : RUN" in r.stdout and "v=7" in r.stdout and "Successfully tagged dbuilt:1" in r.stdout
    assert "ignored.txt" not in r.stdout
    # dockerd's events for a built image: create (API 1.46), then tag
    built = env.docker("image", "inspect", "-f", "{{.Id}}", "dbuilt:1").stdout.strip()
    evs = env.docker(
        *("events", "--since", since, "--until", str(time.time() + 1), "--filter", "type=image"),
        *("--filter", f"image={built}", "--format", "{{.Action}}"),
    ).stdout.split()
    assert evs[-2:] == ["create", "tag"], evs
    assert env.docker("run", "--rm", "dbuilt:1").stdout == "from-context\n"
    labels = env.docker("image", "inspect", "-f", "{{json .Config.Labels}}", "dbuilt:1").stdout
    assert '"x":"y"' in labels and '"l":"1"' in labels
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN exit 4\n")
    r = subprocess.run([DOCKER, "build", str(ctx)], env=e, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Dockerfile:2" in r.stderr and "non-zero code: 4" in r.stderr
    env.docker("rmi", "dbuilt:1")
    # keeping part of the cache is refused (podkit's prune removes all unused), not overdone
    r = env.docker("builder", "prune", "-f", "--keep-storage", "1GB", check=False)
    assert r.returncode != 0 and "keep-storage is not supported by podkit" in r.stderr, r.stderr
    assert env.docker("builder", "prune", "-f").returncode == 0
