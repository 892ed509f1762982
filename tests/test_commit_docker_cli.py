"""docker commit, diff and export (a real docker 28 client) against podkitd's Docker
Engine API. Skipped where the docker CLI is not installed."""

from __future__ import annotations

import tarfile
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
