"""docker-py (the ``docker`` package from PyPI), its high-level client, against
podkitd's Docker API: the calls scripts and test frameworks make."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.docker_env import DockerEnv, docker_env
from tests.fixtures.registry import push_busybox
from tests.helpers import wait_for

pytestmark = pytest.mark.root  # a daemon of its own per module (tests/docker_env.py)
docker = pytest.importorskip("docker", reason="docker-py is not installed (pip install docker)")


@pytest.fixture(scope="module")
def env(busybox_tarball: Path) -> Iterator[DockerEnv]:
    with docker_env(with_registry=True, tarball=busybox_tarball) as e:
        yield e


@pytest.fixture
def client(env: DockerEnv) -> Iterator[Any]:
    c = docker.DockerClient(base_url=env.host, version="auto", timeout=60)
    try:
        yield c
    finally:
        for ctr in c.containers.list(all=True):
            ctr.remove(force=True, v=True)
        c.close()


def test_ping_version_info(client: Any) -> None:
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.51"
    assert client.api.api_version == "1.51"
    assert client.info()["OSType"] == "linux"


def test_a_pinned_old_version_gets_its_own_shapes(env: DockerEnv) -> None:
    """docker-py pinned to 1.41 sends Config.MacAddress and reads VirtualSize (old shapes)."""
    c = docker.DockerClient(base_url=env.host, version="1.41", timeout=60)
    try:
        assert c.api.api_version == "1.41"
        img = c.api.inspect_image("busybox")
        assert img["VirtualSize"] == img["Size"] and "ContainerConfig" in img
        out = c.containers.run(
            "busybox", ["cat", "/sys/class/net/eth0/address"], remove=True, mac_address="02:42:ac:11:00:41"
        )
        assert out == b"02:42:ac:11:00:41\n"
        ctr = c.containers.create("busybox", ["true"], mac_address="02:42:ac:11:00:43")
        try:
            assert c.api.inspect_container(ctr.id)["Config"]["MacAddress"] == "02:42:ac:11:00:43"
        finally:
            ctr.remove(force=True)
    finally:
        c.close()


def test_run_returns_output_and_raises_on_failure(client: Any) -> None:
    assert client.containers.run("busybox", ["echo", "hi"], remove=True) == b"hi\n"
    with pytest.raises(docker.errors.ContainerError) as e:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 2"], remove=True, stderr=True)
    assert e.value.exit_status == 2
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nosuch")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nosuch:1")


def test_detached_container_exec_logs_archive_stats(client: Any) -> None:
    c = client.containers.run(
        "busybox",
        ["sh", "-c", "echo started; exec sleep 300"],
        detach=True,
        name="dpy1",
        labels={"suite": "dpy"},
        environment={"A": "1"},
    )
    c.reload()
    assert c.status == "running" and c.name == "dpy1" and c.labels["suite"] == "dpy"
    assert [x.name for x in client.containers.list(filters={"label": "suite=dpy"})] == ["dpy1"]
    code, out = c.exec_run(["sh", "-c", "echo $A; echo e >&2; exit 7"])
    assert code == 7 and b"1\n" in out
    code, (so, se) = c.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
    assert (code, so, se) == (0, b"o\n", b"e\n")
    wait_for(lambda: b"started" in c.logs(), 20, what="the log line")
    assert c.logs() == b"started\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"via put_archive\n"
        ti = tarfile.TarInfo("note.txt")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    assert c.put_archive("/tmp", buf.getvalue()) is True
    bits, stat = c.get_archive("/tmp/note.txt")
    assert stat["name"] == "note.txt" and stat["size"] == len(data)
    with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as tf:
        member = tf.extractfile("note.txt")
        assert member is not None and member.read() == data
    s = c.stats(stream=False)
    assert s["pids_stats"]["current"] >= 1 and s["memory_stats"]["usage"] > 0
    assert s["cpu_stats"]["system_cpu_usage"] > 0
    assert "PID" in c.top()["Titles"]
    c.stop(timeout=1)
    c.reload()
    assert c.status == "exited"
    assert c.wait()["StatusCode"] in (137, 143)
    c.remove()
    assert not client.containers.list(all=True, filters={"name": "dpy1"})


def test_images_pull_tag_push_remove(client: Any, env: DockerEnv, tmp_path: Path) -> None:
    assert env.registry is not None
    ref = push_busybox(env.registry, tmp_path, "library/dpypull:1")
    img = client.images.pull(ref)
    assert ref in img.tags
    assert any(ref in i.tags for i in client.images.list())
    target = f"{env.registry.host}/dpy/pushed"
    assert img.tag(target, "v1")
    lines = list(client.images.push(target, tag="v1", stream=True, decode=True))
    assert not [x for x in lines if "error" in x], lines
    assert any("aux" in x and x["aux"].get("Digest") for x in lines), lines
    client.images.remove(f"{target}:v1")
    client.images.remove(ref)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(ref)


def test_networks_volumes_and_events(client: Any) -> None:
    since = time.time() - 1
    net = client.networks.create("dpynet", driver="bridge", labels={"k": "v"})
    vol = client.volumes.create("dpyvol", labels={"k": "v"})
    try:
        assert client.networks.get("dpynet").attrs["Labels"] == {"k": "v"}
        c = client.containers.run(
            "busybox",
            "sleep 300",
            detach=True,
            network="dpynet",
            volumes={"dpyvol": {"bind": "/v", "mode": "rw"}},
        )
        net.reload()
        assert [x.id for x in net.containers] == [c.id]
        assert "dpyvol" in [v.name for v in client.volumes.list()]
        c.remove(force=True)
        until = time.time() + 1
        evs = list(client.events(since=since, until=until, decode=True, filters={"type": "container"}))
        assert ("create", c.id) in [(e["Action"], e["Actor"]["ID"]) for e in evs]
        assert "destroy" in [e["Action"] for e in evs if e["Actor"]["ID"] == c.id]
    finally:
        net.remove()
        vol.remove()
    assert "dpynet" not in [n.name for n in client.networks.list()]
    pruned = client.containers.prune()
    assert "ContainersDeleted" in pruned


def test_logs_follow_and_attach_logs_of_a_stopped_container(client: Any) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo l$i; done"], detach=True)
    assert b"".join(c.logs(stream=True, follow=True)) == b"l1\nl2\nl3\n"
    assert c.wait()["StatusCode"] == 0
    # attach with logs=1&stream=0 replays what was written, even once it has stopped
    assert c.attach(stdout=True, stderr=True, stream=False, logs=True) == b"l1\nl2\nl3\n"
    c.remove()
