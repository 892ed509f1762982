"""A runtime create killed mid-way (the fault campaign's `kill runc`, scripts/chaos.py):
the create fails within seconds, naming what happened, instead of waiting out the 60 s
create timeout; nothing of it is left; the next create works.

runc create killed after its init has started leaves that init behind (re-parented to
conmon, which is a subreaper), waiting for a start that never comes and holding the
container's stderr open; conmon reports a failed create only after reading stderr to
its end, so it never reports. The runtime here is a wrapper named ``runc`` (so podkit
treats it as runc) that passes every command to the real runc and, for one create
only, SIGKILLs the real runc create once its init waits on the exec fifo.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podkit.errors import PodkitError
from tests.fixtures.images import import_busybox
from tests.helpers import Daemon

RUNC = shutil.which("runc") or "/usr/sbin/runc"

WRAPPER = """#!/bin/sh
marker={marker}
case " $* " in
  *" create "*) ;;
  *) exec {runc} "$@" ;;
esac
if ! rm "$marker" 2>/dev/null; then exec {runc} "$@"; fi
{runc} "$@" &
p=$!
for id in "$@"; do :; done  # the container id: create's last argument
# until its init waits on the exec fifo for the start (runc create's last moments)
until for f in /proc/[0-9]*; do
    [ "$(cat $f/comm 2>/dev/null)" = "runc:[2:INIT]" ] && grep -q "$id" $f/cgroup 2>/dev/null &&
      [ "$(cat $f/wchan 2>/dev/null)" = fifo_open ] && break
  done; [ -d "$f" ] && [ "$(cat $f/wchan 2>/dev/null)" = fifo_open ]; do
  kill -0 $p 2>/dev/null || exit 1
  sleep 0.002
done
kill -9 $p
wait $p
exit 137
"""


def _inits_of(cid: str) -> list[int]:
    """Live processes in the container's cgroups (a killed one may wait as a zombie for
    the host's init to reap it: that one has ended)."""
    out = []
    for f in Path("/proc").iterdir():
        try:
            live = f.name.isdigit() and "State:\tZ" not in (f / "status").read_text()
            if live and cid in (f / "cgroup").read_text():
                out.append(int(f.name))
        except OSError:
            continue
    return out


def _created_ids(d: Daemon) -> list[str]:
    """The 64-hex ids the daemon's log names (its containers', among others)."""
    import re

    return sorted(set(re.findall(r"containers?/?\s?([0-9a-f]{64})", d.log.read_text())))


@pytest.fixture
def killing_runtime(workdir: Path, busybox_tarball: Path) -> Iterator[tuple[Daemon, Path]]:
    bindir = workdir / "bin"
    bindir.mkdir()
    marker = workdir / "kill-next-create"
    wrapper = bindir / "runc"
    wrapper.write_text(WRAPPER.format(runc=RUNC, marker=marker))
    wrapper.chmod(0o755)
    (workdir / "d").mkdir()
    d = Daemon(workdir / "d", extra_config=f'[runtime]\nruntime = "{wrapper}"\n').start()
    try:
        import_busybox(d, busybox_tarball)
        yield d, marker
    finally:
        d.stop()
        d.drop_host_network()


def test_a_killed_runtime_create_fails_fast_and_leaves_nothing(killing_runtime: tuple[Daemon, Path]) -> None:
    d, marker = killing_runtime
    c = d.client()
    marker.write_text("")
    t0 = time.monotonic()
    with pytest.raises(PodkitError, match="was it killed"):
        c.containers.run("busybox", ["true"], auto_remove=True, network="none")
    took = time.monotonic() - t0
    assert not marker.exists(), "the wrapper did not kill a create"
    assert took < 30, f"the failed create took {took:.1f} s (the create timeout is 60 s)"
    # As after any failed start of a run --rm: the container is gone, nothing of it
    # running (its init, which the killed create left behind, included).
    assert c.containers.list(all=True) == []
    ids = _created_ids(d)
    assert ids and not any(_inits_of(cid) for cid in ids)
    # the next one works
    r = c.containers.run("busybox", ["sh", "-c", "echo ok"], detach=False, auto_remove=True, network="none")
    assert (r.exit_code, r.stdout) == (0, b"ok\n")
