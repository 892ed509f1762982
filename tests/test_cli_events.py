"""`podkit events --since/--until/--filter` take what docker users type."""

from __future__ import annotations

import argparse
import datetime
import time

import pytest

from podkit.cli.system import _event_filter, _matches, _when
from tests.helpers import Daemon


def test_when_forms() -> None:
    assert _when("1700000000.5") == 1700000000.5
    assert abs(_when("10m") - (time.time() - 600)) < 5
    assert abs(_when("1h30m") - (time.time() - 5400)) < 5
    assert (
        _when("2026-11-27T03:20:00Z")
        == datetime.datetime(2026, 11, 27, 3, 20, tzinfo=datetime.UTC).timestamp()
    )
    for bad in ("bogus", "", "10x", "m"):
        with pytest.raises(argparse.ArgumentTypeError):
            _when(bad)


def test_filters_match_like_docker() -> None:
    ev = {
        "type": "container",
        "action": "start",
        "id": "9745ee2ba0b7" + "0" * 52,
        "attributes": {"name": "web", "image": "docker.io/library/busybox:latest"},
    }
    net = {
        "type": "network",
        "action": "connect",
        "id": "7b9b" + "1" * 60,
        "attributes": {"name": "podkit", "container": ev["id"]},
    }
    img = {
        "type": "image",
        "action": "tag",
        "id": "sha256:82da" + "2" * 60,
        "attributes": {"name": "docker.io/library/busybox:latest"},
    }
    f = _event_filter
    assert _matches(ev, [f("container=web")]) and _matches(ev, [f("container=9745ee")])
    assert _matches(ev, [f("image=busybox")]) and _matches(img, [f("image=busybox:latest")])
    assert not _matches(ev, [f("image=bus")])  # a name, not a prefix of one
    assert _matches(img, [f("image=82da")]) and _matches(img, [f("image=sha256:82da")])
    assert _matches(net, [f("container=9745ee"), f("type=network")])
    # one key's values are alternatives; different keys must all hold
    assert _matches(ev, [f("event=die"), f("event=start")])
    assert not _matches(ev, [f("event=start"), f("container=other")])
    for bad in ("nokey=1", "container", "container="):
        with pytest.raises(argparse.ArgumentTypeError):
            f(bad)


def test_events_since_and_filter(daemon: Daemon, busybox_image: str) -> None:
    daemon.cli("tag", "busybox", "one", check=True)
    daemon.cli("tag", "busybox", "two", check=True)
    until = str(time.time() + 0.001)  # the replay then ends: no waiting for live events
    r = daemon.cli(
        "events", "--since", "5m", "--until", until, "-f", "type=image", "-f", "event=tag", check=True
    )
    lines = r.stdout.splitlines()
    assert len(lines) >= 2 and all(" image tag " in ln for ln in lines)
    assert any("docker.io/library/two:latest" in ln for ln in lines)
    r = daemon.cli("events", "--since", "nonsense")
    assert r.returncode == 125 and "duration like 10m" in r.stderr
