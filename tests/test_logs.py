"""Container logs: the CRI log file conmon writes, read back with docker's filters."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from podkit.containers.logs import parse_time
from tests.helpers import Daemon, wait_for
from tests.test_containers import remove_all_and_check


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    remove_all_and_check(daemon)


def test_cri_format_filters_and_cli(d: Daemon) -> None:
    c = d.client()
    ctr = c.containers.run(
        "busybox", ["sh", "-c", "for i in 1 2 3; do echo out$i; echo err$i >&2; done; printf 'no newline'"]
    )
    assert c.containers.wait(ctr.id) == 0
    raw = (d.root / "containers" / ctr.id / "ctr.log").read_text().splitlines()
    ts, stream, tag, text = raw[0].split(" ", 3)
    parse_time(ts)  # RFC 3339 with nanoseconds
    assert stream in ("stdout", "stderr") and tag in ("F", "P")
    entries = list(c.containers.stream_logs(ctr.id))
    outs = [e.data for e in entries if e.stream == "stdout"]
    errs = [e.data for e in entries if e.stream == "stderr"]
    assert outs == ["out1\n", "out2\n", "out3\n", "no newline"]
    assert errs == ["err1\n", "err2\n", "err3\n"]
    assert [e.data for e in c.containers.stream_logs(ctr.id, tail=2)][-1] == "no newline"
    mid = entries[2].time
    assert all(e.time >= mid for e in c.containers.stream_logs(ctr.id, since=mid))
    assert all(e.time <= mid for e in c.containers.stream_logs(ctr.id, until=mid))
    r = d.cli("logs", ctr.id, check=True)
    assert r.stdout == "out1\nout2\nout3\nno newline" and r.stderr == "err1\nerr2\nerr3\n"
    r = d.cli("logs", "-t", "--tail", "1", ctr.id, check=True)
    stamp, _, rest = r.stdout.partition(" ")
    parse_time(stamp)
    assert rest == "no newline"
    assert d.cli("logs", "--since", "1m", ctr.id, check=True).stdout.count("\n") == 3
    r = d.cli("logs", "--since", "not-a-time", ctr.id)
    assert r.returncode != 0 and "invalid time" in r.stderr


def test_follow_until_exit(d: Daemon) -> None:
    c = d.client()
    # a fifo the test writes to, so the second line comes after following began
    ctr = c.containers.run(
        "busybox", ["sh", "-c", "mkfifo /tmp/go; echo first; read x < /tmp/go; echo second"], init=True
    )
    got: list[str] = []

    def follow() -> None:
        for e in c.containers.stream_logs(ctr.id, follow=True):
            got.append(e.data)

    t = threading.Thread(target=follow)
    t.start()
    wait_for(lambda: got == ["first\n"], what="the first line while following")
    c.containers.exec(ctr.id, ["sh", "-c", "echo go > /tmp/go"])
    t.join(15)
    assert not t.is_alive(), "follow did not end when the container exited"
    assert got == ["first\n", "second\n"]


def test_rotation_by_size(d: Daemon) -> None:
    """conmon's --log-size-max: the file never grows far past the limit; the newest lines stay."""
    c = d.client()
    ctr = c.containers.run(
        "busybox",
        [
            "sh",
            "-c",
            "i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done",
        ],
        log_size_max="8k",
    )
    assert c.containers.wait(ctr.id) == 0
    path = d.root / "containers" / ctr.id / "ctr.log"
    assert path.stat().st_size <= 16 * 1024
    text = c.containers.logs(ctr.id)
    # The newest line survives; if conmon rotated in the middle of it, its tail does.
    assert text.endswith("\n")
    last = text.splitlines()[-1]
    assert last and ("line-399-" + "x" * 32).endswith(last), text[-200:]
    assert "line-0-" not in text
