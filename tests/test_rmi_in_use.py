"""`rmi -f` of an image a container uses: like docker, the names go and the image stays
as <none> — the container still starts, GC keeps the content — until nothing uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import Daemon
from tests.test_containers import remove_all_and_check


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    remove_all_and_check(daemon)


def test_rmi_force_keeps_an_image_in_use_as_dangling(d: Daemon) -> None:
    c = d.client()
    image_id = c.images.get("busybox").id
    d.cli("create", "--name", "user", "busybox", "sh", "-c", "echo still-runs", check=True)
    r = d.cli("rmi", "busybox")
    assert r.returncode == 1 and "must force" in r.stderr
    r = d.cli("rmi", "-f", "busybox", check=True)
    assert "Untagged: busybox:latest" in r.stdout and "Deleted" not in r.stdout
    [left] = c.images.list()
    assert left.id == image_id and left.dangling
    # by id, with nothing left to untag, the image cannot be forced away from its user
    r = d.cli("rmi", "-f", image_id)
    assert r.returncode == 1 and "cannot be forced" in r.stderr and "user" in r.stderr
    # the image's content survives a collection: the container still starts from it
    c.images.prune()
    assert d.cli("start", "-a", "user", check=True).stdout == "still-runs\n"
    d.cli("rm", "user", check=True)
    c.images.prune()
    assert c.images.list() == []
