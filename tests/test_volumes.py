"""Named volumes through the CLI and the SDK: life cycle, seeding, in-use refusal, prune."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from podkit import errors
from tests.helpers import Daemon
from tests.test_containers import remove_all_and_check


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    remove_all_and_check(daemon)


def test_volume_cli_lifecycle(d: Daemon) -> None:
    assert d.cli("volume", "create", "-l", "team=a", "vol1", check=True).stdout == "vol1\n"
    r = d.cli("volume", "create", "vol1")
    assert r.returncode != 0 and "already exists" in r.stderr
    r = d.cli("volume", "create", "bad/name")
    assert r.returncode != 0 and "invalid volume name" in r.stderr
    info = json.loads(d.cli("volume", "inspect", "vol1", check=True).stdout)[0]
    assert info["labels"] == {"team": "a"} and Path(info["mountpoint"]).is_dir()
    assert d.cli("volume", "ls", "-q", "-f", "label=team=a", check=True).stdout.split() == ["vol1"]
    r = d.cli("run", "--rm", "-v", "vol1:/data", "busybox", "sh", "-c", "echo kept > /data/f")
    assert r.returncode == 0, r.stderr
    r = d.cli("run", "--rm", "-v", "vol1:/data:ro", "busybox", "sh", "-c", "cat /data/f; touch /data/g")
    assert r.stdout == "kept\n" and r.returncode != 0  # read-only the second time
    d.cli("create", "--name", "user", "-v", "vol1:/data", "busybox", "true", check=True)
    r = d.cli("volume", "rm", "vol1")
    assert r.returncode != 0 and "in use" in r.stderr
    # docker's --format json: a line of JSON a volume, in its template fields
    listed = d.cli("volume", "ls", "--format", "json", "-f", "dangling=false", check=True).stdout
    assert [json.loads(line)["Name"] for line in listed.splitlines()] == ["vol1"]
    d.cli("rm", "user", check=True)
    d.cli("volume", "rm", "vol1", check=True)
    assert not Path(info["mountpoint"]).exists()
    r = d.cli("volume", "inspect", "vol1")
    assert r.returncode != 0 and "no such volume" in r.stderr


def test_seeding_anonymous_and_prune(d: Daemon) -> None:
    c = d.client()
    # seeded from the image's /etc on first use, and only then
    r = c.containers.run(
        "busybox",
        ["sh", "-c", "grep -c root /etc/group; echo x > /etc/extra"],
        detach=False,
        volumes=["etc:/etc"],
    )
    assert r.exit_code == 0 and r.stdout == b"1\n"
    r = c.containers.run("busybox", ["cat", "/etc/extra"], detach=False, volumes=["etc:/etc"])
    assert r.stdout == b"x\n"
    # an anonymous volume goes with its container when removed with -v
    ctr = c.containers.create("busybox", ["true"], volumes=["/scratch"])
    anon = [m["source"] for m in c.containers.inspect(ctr.id)["mounts"]]
    assert len(anon) == 1 and c.volumes.get(anon[0]).anonymous
    c.containers.remove(ctr.id, volumes=True)
    with pytest.raises(errors.NotFound):
        c.volumes.get(anon[0])
    # prune: unused anonymous ones by default, named ones too with all
    ctr = c.containers.create("busybox", ["true"], volumes=["/scratch2"])
    c.containers.remove(ctr.id)
    c.volumes.create("named")
    before = {v.name for v in c.volumes.list()}
    pruned = c.volumes.prune()
    assert len(pruned) == 1 and "named" in before - set(pruned)
    for x in c.containers.list(all=True):
        c.containers.remove(x.id)
    assert set(c.volumes.prune(all=True)) == {"named", "etc"}
    assert c.volumes.list() == []
