"""`podkit inspect` / `ps --format` in docker's shape, so docker users' scripts work."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.helpers import Daemon
from tests.test_containers import remove_all_and_check


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    remove_all_and_check(daemon)


def test_inspect_docker_shape(d: Daemon, workdir) -> None:  # noqa: ANN001
    d.cli(
        "run",
        "-d",
        "--name",
        "web",
        "-e",
        "A=1",
        "-v",
        f"{workdir}:/h:ro",
        "--restart",
        "on-failure:3",
        "-l",
        "k=v",
        "busybox",
        "sleep",
        "300",
        check=True,
    )
    d.cli("run", "--name", "done", "busybox", "sh", "-c", "exit 7")
    [web] = json.loads(d.cli("inspect", "web", check=True).stdout)
    assert web["State"]["Status"] == "running" and web["State"]["Running"] is True
    assert web["State"]["Pid"] > 0 and web["State"]["OOMKilled"] is False
    assert web["Config"]["Env"] == ["A=1"] and web["Config"]["Labels"] == {"k": "v"}
    assert web["Config"]["Cmd"] == ["sleep", "300"] and web["Name"] == "web"
    assert web["NetworkSettings"]["IPAddress"].count(".") == 3
    assert web["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert web["Mounts"] == [
        {
            "Type": "bind",
            "Source": str(workdir),
            "Destination": "/h",
            "Mode": "ro",
            "RW": False,
            "Propagation": "",
        }
    ]
    assert web["Podkit"]["id"] == web["Id"]  # podkit's own record, whole
    # a template, over several containers; an exited one has no address any more
    template = "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.NetworkSettings.IPAddress}}"
    r = d.cli("inspect", "-f", template, "web", "done", check=True)
    lines = r.stdout.splitlines()
    assert lines[0].startswith("web running 0 10.") and lines[1] == "done exited 7 "
    assert d.cli("container", "inspect", "-f", "{{.Name}}", "done", check=True).stdout == "done\n"
    # --type keeps an image from answering for a container name, and the reverse
    r = d.cli("inspect", "--type", "container", "busybox")
    assert r.returncode == 1 and "no such container: busybox" in r.stderr
    assert json.loads(r.stdout) == []
    assert (
        d.cli("inspect", "--type", "image", "-f", "{{.Config.Cmd}}", "busybox", check=True).stdout == "[sh]\n"
    )
    r = d.cli("inspect", "nosuch")
    assert r.returncode == 1 and "no such object: nosuch" in r.stderr
    r = d.cli("inspect", "-f", "{{.Nope}}", "web")
    assert r.returncode != 0 and "Nope" in r.stderr


def test_ps_format_template(d: Daemon) -> None:
    d.cli("run", "-d", "--name", "one", "busybox", "sleep", "300", check=True)
    d.cli("create", "--name", "two", "busybox", "true", check=True)
    assert d.cli("ps", "--format", "{{.Names}} {{.State}}", check=True).stdout == "one running\n"
    out = d.cli("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
    assert sorted(out) == ["one", "two"]
    assert d.cli("container", "ls", "--format", "{{.Image}}", check=True).stdout == "busybox:latest\n"
    r = d.cli("ps", "--format", "{{.Nope}}")
    assert r.returncode != 0 and "Nope" in r.stderr


def test_port_of_a_pod_member_is_the_pods(d: Daemon) -> None:
    from tests.fixtures.registry import free_port

    hp = free_port()
    d.cli("pod", "create", "--name", "pp", "-p", f"{hp}:80", check=True)
    try:
        d.cli("run", "-d", "--pod", "pp", "--name", "member", "busybox", "sleep", "300", check=True)
        assert d.cli("port", "member", check=True).stdout == f"80/tcp -> 0.0.0.0:{hp}\n"
        assert d.cli("port", "member", "80/tcp", check=True).stdout == f"80/tcp -> 0.0.0.0:{hp}\n"
        # and ps shows them in its PORTS column, as podman does
        r = d.cli("ps", "--format", "{{.Names}} {{.Ports}}", check=True)
        assert f"member 0.0.0.0:{hp}->80/tcp" in r.stdout.splitlines()
        assert f"0.0.0.0:{hp}->80/tcp" in d.cli("ps", check=True).stdout
    finally:
        d.cli("pod", "rm", "-f", "pp", check=True)


def test_network_and_volume_inspect_format(daemon: Daemon) -> None:
    daemon.cli("volume", "create", "fv", check=True)
    try:
        mp = daemon.cli("volume", "inspect", "-f", "{{.Mountpoint}}", "fv", check=True).stdout.strip()
        assert mp.endswith("/fv/_data")
        assert (
            json.loads(daemon.cli("volume", "inspect", "--format", "json", "fv", check=True).stdout)[0][
                "name"
            ]
            == "fv"
        )
    finally:
        daemon.cli("volume", "rm", "fv", check=True)
    [net] = json.loads(daemon.cli("network", "inspect", "--format", "json", "podkit", check=True).stdout)
    r = daemon.cli("network", "inspect", "-f", "{{.name}} {{.subnet}}", "podkit", check=True)
    assert r.stdout == f"podkit {net['subnet']}\n"
