"""docker-compose 1.29 (Debian's, a real Docker API client) against podkitd: a
three-service project with a user network, a named volume and a published port,
brought up and then down with -v, leaving nothing behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_env import DOCKER, DockerEnv, docker_env
from tests.fixtures.registry import free_port
from tests.helpers import unique_network, wait_for

COMPOSE = shutil.which("docker-compose")
pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed (Debian docker-compose)"),
    pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed"),
]
PROJECT = "pkcompose"

COMPOSE_FILE = """\
version: "3.7"
services:
  writer:
    image: busybox
    command: ["sh", "-c", "echo from-writer > /data/index.html; exec sleep 3600"]
    volumes:
      - data:/data
    networks: [appnet]
  web:
    image: busybox
    command: ["sh", "-c", "while [ ! -s /srv/index.html ]; do sleep 0.1; done; exec httpd -f -p 8080 -h /srv"]
    volumes:
      - data:/srv:ro
    ports:
      - "127.0.0.1:{port}:8080"
    networks: [appnet]
    depends_on: [writer]
  client:
    image: busybox
    command: ["sleep", "3600"]
    networks: [appnet]
    depends_on: [web]
networks:
  appnet:
    ipam:
      config:
        - subnet: {subnet}
volumes:
  data: {{}}
"""


class Project:
    def __init__(self, env: DockerEnv, base: Path, port: int) -> None:
        self.env, self.base, self.port = env, base, port
        self.file = base / "docker-compose.yml"
        # A subnet of its own (parallel runs on this host must not share one).
        self.subnet = unique_network()[1]
        self.file.write_text(COMPOSE_FILE.format(port=port, subnet=self.subnet))

    def compose(
        self, *args: str, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        assert COMPOSE is not None
        r = subprocess.run(
            [COMPOSE, "-p", PROJECT, "-f", str(self.file), *args],
            env=self.env.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.base,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"docker-compose {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
            )
        return r


@pytest.fixture(scope="module")
def project(busybox_tarball: Path) -> Iterator[Project]:
    with docker_env(tarball=busybox_tarball) as env:
        base = env.base / "compose"
        base.mkdir()
        p = Project(env, base, free_port())
        p.compose("up", "-d")
        try:
            yield p
        finally:
            p.compose("down", "-v", "--timeout", "1", check=False)


def _served(port: int) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as r:
            return bytes(r.read())
    except OSError:
        return None


def test_up_runs_three_services_on_the_network_with_the_volume(project: Project) -> None:
    env = project.env
    names = env.docker(
        "ps", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format", "{{.Names}}"
    ).stdout.split()
    assert sorted(names) == [f"{PROJECT}_client_1", f"{PROJECT}_web_1", f"{PROJECT}_writer_1"]
    ps = project.compose("ps").stdout
    assert ps.count(" Up ") == 3, ps
    net = json.loads(env.docker("network", "inspect", f"{PROJECT}_appnet").stdout)[0]
    assert net["IPAM"]["Config"][0]["Subnet"] == project.subnet
    assert sorted(m["Name"] for m in net["Containers"].values()) == sorted(names)
    vol = json.loads(env.docker("volume", "inspect", f"{PROJECT}_data").stdout)[0]
    assert vol["Labels"]["com.docker.compose.project"] == PROJECT


def test_published_port_serves_what_another_service_wrote_to_the_volume(project: Project) -> None:
    wait_for(lambda: _served(project.port) == b"from-writer\n", 30, what="web on its published port")
    assert project.compose("exec", "-T", "writer", "cat", "/data/index.html").stdout == "from-writer\n"
    logs = project.compose("logs", "--no-color", "writer").stdout
    assert "writer_1" in logs or logs == ""


def test_services_reach_each_other_by_name(project: Project) -> None:
    wait_for(lambda: _served(project.port) is not None, 30, what="web to serve")
    r = project.compose(
        # (busybox-static's wget crashes on -T; the exec's own timeout bounds it.)
        "exec",
        "-T",
        "client",
        "wget",
        "-q",
        "-O-",
        "http://web:8080/index.html",
        check=False,
    )
    assert r.stdout == "from-writer\n", r.stderr


def test_down_v_leaves_nothing(project: Project) -> None:
    # The last test of the module: the daemon is this module's own, so "nothing"
    # means nothing at all (no container, volume or network but docker's three).
    env = project.env
    project.compose("down", "-v", "--timeout", "1")
    assert env.docker("ps", "-aq").stdout.strip() == ""
    assert env.docker("volume", "ls", "-q").stdout.strip() == ""
    nets = sorted(env.docker("network", "ls", "--format", "{{.Name}}").stdout.split())
    assert nets == ["bridge", "host", "none"]
    assert env.daemon.client().containers.list(all=True) == []
    assert _served(project.port) is None
