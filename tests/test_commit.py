"""commit, diff and export of a real container (busybox under runc, overlay snapshots),
through the SDK and the CLI: the change list as docker prints it, the committed image
runs with the changes and the --change config, export is the whole tree, and none of it
leaves a mount or a container paused."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import pytest

from tests.helpers import Daemon, wait_for


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    c = daemon.client()
    for ctr in c.containers.list(all=True):
        c.containers.remove(ctr.id, force=True)


def _mounts(d: Daemon) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(d.base) in line and "/cp/" in line.split()[4]]


def test_diff_commit_export_of_a_stopped_container(d: Daemon) -> None:
    c = d.client()
    c.containers.run(
        "busybox",
        [
            "sh",
            "-c",
            "echo hi > /root/new && ln -s /etc /root/l && rm /etc/group && mkdir -p /srv/x && touch /srv/x/f",
        ],
        name="changer",
    )
    assert c.containers.wait("changer") == 0
    diff = {(x["Kind"], x["Path"]) for x in c.containers.diff("changer")}
    assert (1, "/root/new") in diff
    assert (2, "/etc/group") in diff
    assert (0, "/etc") in diff
    assert (1, "/srv") in diff and (1, "/srv/x/f") in diff
    assert not any(p in ("/etc/hosts", "/etc/resolv.conf", "/etc/hostname") for _, p in diff)

    r = d.cli("diff", "changer")
    assert r.returncode == 0, r.stderr
    assert "A /root/new" in r.stdout.splitlines() and "D /etc/group" in r.stdout.splitlines()

    out = c.containers.commit(
        "changer", "committed:v1", message="a note", author="me", changes=["CMD cat /root/new", "ENV A=1"]
    )
    assert out["id"].startswith("sha256:")
    r = d.cli("run", "--rm", "committed:v1")
    assert r.returncode == 0 and r.stdout == "hi\n", r.stderr
    r = d.cli("run", "--rm", "committed:v1", "sh", "-c", "echo $A; test -e /etc/group || echo nogroup")
    assert r.stdout.split() == ["1", "nogroup"], r.stderr

    buf = io.BytesIO()
    c.containers.export("changer", buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        names = set(tf.getnames())
        link = tf.getmember("root/l")
    assert {"root/new", "bin/busybox", "srv/x/f"} <= names
    assert "etc/group" not in names
    assert link.issym() and link.linkname == "/etc"  # kept as a link, not followed
    assert not any(n.startswith("root/l/") for n in names)
    assert _mounts(d) == []


def test_commit_of_a_running_container_via_cli(d: Daemon) -> None:
    c = d.client()
    c.containers.run(
        "busybox", ["sh", "-c", "echo live > /live; sleep 300"], name="live", detach=True, init=True
    )
    wait_for(lambda: any(x["Path"] == "/live" for x in c.containers.diff("live")), timeout=20)
    r = d.cli("commit", "-m", "msg", "-c", 'CMD ["cat", "/live"]', "live", "fromlive")
    assert r.returncode == 0, r.stderr
    assert c.containers.inspect("live")["state"] == "running"  # paused only while committing
    r = d.cli("run", "--rm", "fromlive")
    assert r.stdout == "live\n", r.stderr
    r = d.cli("export", "-o", str(d.base / "live.tar"), "live")
    assert r.returncode == 0, r.stderr
    with tarfile.open(d.base / "live.tar") as tf:
        names = set(tf.getnames())
    assert {"live", "bin/busybox"} <= names  # the live root walked, not just its top
    assert "proc" in names and not any(n.startswith("proc/") for n in names)  # another fs: empty
    r = d.cli("commit", "nosuch", "x")
    assert r.returncode != 0 and "nosuch" in r.stderr
