"""Command forms (issue 12, A.5): `container CMD` / `image CMD` / `system df|prune|info|
events`, --filter on every prune, Go-template --format against a real podkitd; and the
same through the docker CLI where it is installed. One podkitd for the module."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_env import DOCKER, DockerEnv, docker_env
from tests.helpers import Daemon, unique_network

pytestmark = pytest.mark.root
needs_docker = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")


@pytest.fixture(scope="module")
def env(busybox_tarball: Path) -> Iterator[DockerEnv]:
    with docker_env(tarball=busybox_tarball) as e:
        yield e


@pytest.fixture
def d(env: DockerEnv) -> Iterator[Daemon]:
    yield env.daemon
    c = env.daemon.client()
    for ctr in c.containers.list(all=True):
        c.containers.remove(ctr.id, force=True, volumes=True)
    for v in c.volumes.list():
        c.volumes.remove(v.name, force=True)


def test_container_and_image_management_commands(d: Daemon) -> None:
    d.cli("container", "run", "-d", "--name", "f1", "-l", "app=web", "busybox", "sleep", "300", check=True)
    assert d.cli("container", "ls", "--format", "{{.Names}}", check=True).stdout == "f1\n"
    assert (
        d.cli("container", "ps", "-q", check=True).stdout.strip()
        == d.cli("ps", "-q", check=True).stdout.strip()
    )
    assert d.cli(
        "container", "inspect", "-f", "{{.Config.Image}} {{.State.Status}}", "f1", check=True
    ).stdout == ("busybox running\n")
    assert d.cli("container", "exec", "f1", "echo", "hi", check=True).stdout == "hi\n"
    assert d.cli("container", "top", "f1", check=True).stdout.count("sleep") == 1
    d.cli("container", "rename", "f1", "f2", check=True)
    d.cli("container", "stop", "-t", "0", "f2", check=True)
    assert d.cli("container", "wait", "f2", check=True).stdout.strip() == "137"
    d.cli("container", "rm", "f2", check=True)
    assert d.cli("container", "ls", "-a", "-q", check=True).stdout == ""
    # images
    assert "busybox:latest" in d.cli("image", "ls", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout
    d.cli("image", "tag", "busybox:latest", "forms:1", check=True)
    tags = d.cli("image", "inspect", "-f", "{{range .RepoTags}}{{.}} {{end}}", "forms:1", check=True).stdout
    assert "forms:1" in tags.split()
    hist = d.cli(
        "image", "history", "--format", "{{.ID}}|{{.Size}}", "forms:1", check=True
    ).stdout.splitlines()
    assert hist and "|" in hist[0]
    d.cli("image", "rm", "forms:1", check=True)
    r = d.cli("container", "nosuch")
    assert r.returncode == 125 and "invalid choice" in r.stderr and "'run'" in r.stderr


def test_format_templates(d: Daemon) -> None:
    d.cli("run", "-d", "--name", "t1", "-l", "app=web", "-v", "/data", "busybox", "sleep", "300", check=True)
    out = d.cli("ps", "--format", r"table {{.Names}}\t{{.Label `app`}}\t{{.State}}", check=True).stdout
    assert out.splitlines() == ["NAMES     APP       STATE", "t1        web       running"]
    row = json.loads(d.cli("ps", "--format", "{{json .}}", check=True).stdout)
    assert row["Names"] == "t1" and row["State"] == "running" and "Label" not in row
    assert d.cli("ps", "--format", "{{.Networks}} {{.LocalVolumes}}", check=True).stdout == "bridge 1\n"
    mounts = d.cli("inspect", "-f", "{{range .Mounts}}{{.Destination}}{{end}}", "t1", check=True).stdout
    assert mounts == "/data\n"
    stats = d.cli("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "t1", check=True).stdout
    assert stats == "t1 1\n"
    version = d.client().version()["version"]
    assert (
        d.cli("info", "--format", "{{.ServerVersion}} {{.ContainersRunning}}", check=True).stdout
        == f"{version} 1\n"
    )
    assert d.cli("system", "info", "--format", "{{.ServerVersion}}", check=True).stdout == f"{version}\n"
    assert d.cli("version", "--format", "{{.Server.Version}}", check=True).stdout == f"{version}\n"
    assert "podkit" in d.cli("network", "ls", "--format", "{{.Name}} {{.Driver}}", check=True).stdout
    assert d.cli("volume", "ls", "--format", "{{.Driver}}", check=True).stdout == "local\n"
    since = str(time.time() - 120)
    ev = d.cli(
        "system",
        "events",
        "--since",
        since,
        "--until",
        str(time.time()),
        "--format",
        "{{.Type}} {{.Action}}",
        check=True,
    ).stdout.splitlines()
    assert "container start" in ev
    for bad in ("{{.Nope}}", "{{.Names", "{{upper 1}}"):
        r = d.cli("ps", "--format", bad)
        assert (
            r.returncode == 1 and r.stderr.startswith("Error: template: ") and "Traceback" not in r.stderr
        ), r


def _names(d: Daemon) -> set[str]:
    return set(d.cli("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split())


def test_system_df_and_prunes_with_filters(d: Daemon) -> None:
    for name, keep in (("p-old", "no"), ("p-keep", "yes")):
        d.cli(
            "run",
            "--name",
            name,
            "-l",
            f"keep={keep}",
            "-v",
            "/anon",
            "busybox",
            "sh",
            "-c",
            "echo x > /f",
            check=True,
        )
    d.cli("run", "-d", "--name", "p-up", "busybox", "sleep", "300", check=True)
    df = d.cli("system", "df", check=True).stdout.splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split("  ")[0] for line in df[1:]] == [
        "Images",
        "Containers",
        "Local Volumes",
        "Build Cache",
    ]
    rows = dict(
        line.split(":", 1)
        for line in d.cli(
            "system", "df", "--format", "{{.Type}}:{{.TotalCount}}/{{.Active}}", check=True
        ).stdout.splitlines()
    )
    assert rows["Containers"] == "3/1" and rows["Local Volumes"] == "2/2" and rows["Images"] == "1/1"
    verbose = d.cli("system", "df", "-v", check=True).stdout
    assert "Images space usage:" in verbose and "p-old" in verbose and "Build cache usage:" in verbose
    raw = d.client().df()
    assert {c["name"]: c["size_rw"] > 0 for c in raw["containers"]}["p-old"]

    # until: only what was created before; nothing here is an hour old
    r = d.cli("container", "prune", "--filter", "until=1h", check=True)
    assert "Total reclaimed: 0 containers" in r.stdout and {"p-old", "p-keep"} <= _names(d)
    r = d.cli("container", "prune", "--filter", "label=keep=no", check=True)
    assert _names(d) == {"p-keep", "p-up"}
    r = d.cli("container", "prune", "--filter", "nope=1")
    assert r.returncode == 1 and "invalid filter 'nope'" in r.stderr
    r = d.cli("image", "prune", "-f", "--filter", "until=yesterday")
    assert r.returncode == 1 and "until=yesterday" in r.stderr

    net, subnet = unique_network()
    d.cli("network", "create", "--label", "forms=1", "--subnet", subnet, "--bridge", net, net, check=True)
    d.cli("network", "prune", "--filter", "label!=forms", check=True)
    assert net in d.cli("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    d.cli("volume", "create", "-l", "forms=1", "fv", check=True)
    d.cli("volume", "prune", "--filter", "label=forms=2", "--filter", "all=true", check=True)
    assert "fv" in d.cli("volume", "ls", "-q", check=True).stdout.split()

    r = d.cli("system", "prune", "-f", "--volumes", "--filter", "until=1h")
    assert r.returncode == 1 and '"until" filter is not supported with --volumes' in r.stderr
    r = d.cli("system", "prune", "-f", "--volumes", check=True)
    assert "Deleted Containers:" in r.stdout and "Deleted Networks:" in r.stdout
    assert "Total reclaimed space:" in r.stdout
    assert _names(d) == {"p-up"}  # the running one stays
    assert net not in d.cli("network", "ls", "--format", "{{.Name}}", check=True).stdout.split()
    # anonymous volumes went with --volumes; the named one stays (no -a for volumes)
    assert d.cli("volume", "ls", "-q", check=True).stdout.split() == ["fv"]
    assert "busybox:latest" in d.cli("images", "--format", "{{.Repository}}:{{.Tag}}", check=True).stdout


@needs_docker
def test_docker_cli_prune_filters_and_sizes(env: DockerEnv, d: Daemon) -> None:
    env.docker("run", "--name", "dp-old", "--label", "dp=old", "busybox", "sh", "-c", "echo x > /f")
    env.docker("run", "--name", "dp-new", "busybox", "true")
    out = env.docker("ps", "-a", "-s", "--format", "{{.Names}} {{.Size}}", "--filter", "name=dp-old").stdout
    assert out.startswith("dp-old ") and "virtual" in out
    assert int(env.docker("inspect", "-s", "-f", "{{.SizeRw}}", "dp-old").stdout) > 0
    env.docker("container", "prune", "-f", "--filter", "label=dp=old")
    names = env.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert "dp-old" not in names and "dp-new" in names
    # image prune filters answered 501 before: now a label that nothing has removes nothing
    r = env.docker("image", "prune", "-a", "-f", "--filter", "label=nosuch=1")
    assert "Total reclaimed space: 0B" in r.stdout
    assert "busybox" in env.docker("images", "--format", "{{.Repository}}").stdout
    net, subnet = unique_network()
    env.docker(
        "network",
        "create",
        "--label",
        "dp=1",
        "--subnet",
        subnet,
        "-o",
        f"com.docker.network.bridge.name={net}",
        net,
    )
    env.docker("network", "prune", "-f", "--filter", "label=dp=2")
    assert net in env.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    env.docker("network", "prune", "-f", "--filter", "label=dp=1")
    assert net not in env.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    r = env.docker("system", "prune", "-f", "--filter", "label=nosuch=1")
    assert "Total reclaimed space" in r.stdout
    assert "dp-new" in env.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    verbose = env.docker("system", "df", "-v").stdout
    assert "Images space usage:" in verbose and "dp-new" in verbose
