#!/usr/bin/env python3
"""podkitd's CPU per `podkit run --rm busybox true`, A/B between source trees.

Each tree given (a checkout or `git archive` of podkit, e.g. main's and a branch's) gets
a podkitd of its own (tests/helpers.py Daemon: own root, state, bridge); the runs
alternate between them, round after round, so that what else loads the machine hits
all alike. After each run the bench waits for the container's background teardown and
for the daemon to go quiet, then takes the daemon's CPU time since the run began: all
its threads (``/proc/<pid>/task/*/schedstat``, ns), so worker threads and the
teardown count. Prints medians and means per tree and mode, the user/system split and
the event loop's (main thread's) share.

Why not bench/run.py: its CPU figure is a sum over the engines' cgroups, at debug
level; this one is the daemon alone, at the level given, for changes of a fraction of
a millisecond (the run-to-run spread of one tree here is ~0.5 ms: give it 40 runs or
more). The same CLI (this checkout's) drives every tree.

Usage: bench/daemon_cpu.py [--runs N] [--mode none|net|both] [--level info] NAME=TREE ...
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
PODKIT = str(BIN / "podkit")


def cpu_ns(pid: int) -> int:
    """CPU time of all of a process's live threads, ns."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that ended meanwhile
    return total


def main_thread_ns(pid: int) -> int:
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def user_sys_ticks(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("trees", nargs="+", help="NAME=PATH of a source tree holding podkit/")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--mode", choices=["none", "net", "both"], default="both")
    ap.add_argument("--level", choices=["debug", "info"], default="info")
    ap.add_argument("--pool-size", type=int, default=3)
    a = ap.parse_args()
    from tests.fixtures.images import BUSYBOX_CHANGES, build_busybox_rootfs, tar_directory
    from tests.helpers import Daemon, wait_for

    class TreeDaemon(Daemon):
        """A podkitd importing podkit from ``tree``."""

        def __init__(self, base: Path, tree: Path, level: str, pool_size: int) -> None:
            super().__init__(base, pool_size=pool_size)
            self.tree, self.level = tree, level

        def start(self, timeout: float = 60.0) -> TreeDaemon:
            tree = str(self.tree)
            code = f"import sys; sys.path.insert(0, {tree!r}); from podkit.daemon.main import main; main()"
            with open(self.log, "ab") as logf:
                self.proc = subprocess.Popen(
                    [sys.executable, "-c", code, "--config", str(self.config), "--root", str(self.root)]
                    + ["--state", str(self.state), "--socket", str(self.socket), "--log-level", self.level],
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    cwd="/",  # not this checkout: `-c` puts the working directory first on sys.path
                )
            wait_for(lambda: self.socket.exists() and self.client().ping(), timeout, what="podkitd")
            return self

    def settle(d: TreeDaemon) -> None:
        """The run's teardown done (its bundle gone) and the daemon quiet for 40 ms."""
        assert d.proc is not None
        bundles = d.state / "containers"
        wait_for(lambda: not bundles.exists() or not any(bundles.iterdir()), 30, what="the teardown")
        last = cpu_ns(d.proc.pid)
        for _ in range(200):
            time.sleep(0.04)  # a measurement delay: no CPU used over it means quiet
            now = cpu_ns(d.proc.pid)
            if now == last:
                return
            last = now

    base = Path(tempfile.mkdtemp(prefix="podkit-bench-dcpu-", dir="/var/tmp"))
    daemons: list[tuple[str, TreeDaemon]] = []
    try:
        tarball = tar_directory(build_busybox_rootfs(base / "rootfs"), base / "busybox.tar")
        for spec in a.trees:
            name, _, tree = spec.partition("=")
            (base / name).mkdir()
            d = TreeDaemon(base / name, Path(tree).resolve(), a.level, a.pool_size).start()
            daemons.append((name, d))
            env = dict(os.environ, PODKIT_HOST=d.host)
            changes = sum((["-c", c] for c in BUSYBOX_CHANGES), [])
            subprocess.run([PODKIT, "import", *changes, str(tarball), "busybox"], env=env, check=True)
            for net in (["--network", "none"], []):  # warm caches
                subprocess.run([PODKIT, "run", "--rm", *net, "busybox", "true"], env=env, check=True)
            settle(d)
        modes = ["none", "net"] if a.mode == "both" else [a.mode]
        start = {
            n: (main_thread_ns(d.proc.pid), cpu_ns(d.proc.pid), user_sys_ticks(d.proc.pid))
            for n, d in daemons
            if d.proc
        }
        got: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for i in range(a.runs):
            for mode in modes:
                for name, d in daemons if i % 2 == 0 else reversed(daemons):
                    assert d.proc is not None
                    net = ["--network", "none"] if mode == "none" else []
                    env = dict(os.environ, PODKIT_HOST=d.host)
                    c0, t0 = cpu_ns(d.proc.pid), time.perf_counter()
                    subprocess.run([PODKIT, "run", "--rm", *net, "busybox", "true"], env=env, check=True)
                    wall = time.perf_counter() - t0
                    settle(d)
                    got.setdefault((mode, name), []).append((wall, (cpu_ns(d.proc.pid) - c0) / 1e6))
        n = a.runs * len(modes)
        tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
        print(
            f"podkitd CPU per run --rm (ms; {a.runs} runs per tree and mode, alternated;"
            f" log level {a.level}):"
        )
        for (mode, name), v in sorted(got.items()):
            cpu = [c for _, c in v]
            print(
                f"  {mode:4s} {name:12s} cpu median {statistics.median(cpu):5.1f}"
                f" mean {statistics.mean(cpu):5.1f}"
                f"   wall median {statistics.median(w for w, _ in v) * 1000:6.1f}"
            )
        for name, d in daemons:
            assert d.proc is not None
            m0, c0, (u0, s0) = start[name]
            u1, s1 = user_sys_ticks(d.proc.pid)
            print(
                f"  {name:12s} per run, all modes:"
                f" main thread {(main_thread_ns(d.proc.pid) - m0) / 1e6 / n:.1f},"
                f" all threads {(cpu_ns(d.proc.pid) - c0) / 1e6 / n:.1f}"
                f" (user {(u1 - u0) * tick_ms / n:.1f}, system {(s1 - s0) * tick_ms / n:.1f})"
            )
    finally:
        for _, d in daemons:
            d.stop()
            d.drop_host_network()
        subprocess.run(["umount", "-R", "-l", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
