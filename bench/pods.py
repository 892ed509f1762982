#!/usr/bin/env python3
"""Pods at scale: N pods of two containers each, networked, one published port each.

For each engine, every pod goes through create (sandbox + two containers) → start →
stop → remove; the bench reports the median time per pod for each phase and the
memory each running pod costs the engine (podkit: daemon RSS growth + its conmons;
podman: its conmons — podman has no daemon). The containers' own processes (sleep,
catatonit) are the same on both sides and are not counted.

Engines: podkit (a private podkitd with its own root, state, socket, bridge and
subnet), podman (own --root/--runroot, if installed), containerd through the CRI
(crictl, if installed; Debian 12 does not package it, so usually skipped).

    python bench/pods.py            # N=50
    python bench/pods.py -n 20
    python bench/pods.py --quick    # N=3, a smoke run
    python bench/pods.py --pool-size 0   # podkit without pre-warmed network sandboxes
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.images import BUSYBOX_CHANGES, build_busybox_rootfs, tar_directory  # noqa: E402
from tests.helpers import Daemon  # noqa: E402

PORT_BASE = 23000
# A workload that stops on SIGTERM (a bare `sleep` as PID 1 ignores it, and every stop
# would measure the stop timeout instead of the engine).
WORKLOAD = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def procs(pred: Callable[[str], bool]) -> list[int]:
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{e}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pred(cmd):
            out.append(int(e))
    return out


def conmons_mentioning(text: str) -> list[int]:
    return procs(lambda c: c.startswith(("conmon ", "/usr/bin/conmon ")) and text in c)


def median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000 if xs else float("nan")


class Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.create: list[float] = []
        self.start: list[float] = []
        self.stop: list[float] = []
        self.remove: list[float] = []
        self.mem_per_pod_kb = 0.0

    def row(self) -> list[str]:
        return [
            self.name,
            f"{median_ms(self.create):.0f}",
            f"{median_ms(self.start):.0f}",
            f"{median_ms(self.stop):.0f}",
            f"{median_ms(self.remove):.0f}",
            f"{self.mem_per_pod_kb / 1024:.1f}",
        ]


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# -- podkit -----------------------------------------------------------------------------


def bench_podkit(n: int, tarball: Path, work: Path, pool_size: int) -> Result:
    res = Result("podkit")
    (work / "podkit").mkdir()
    # pool_size: podkitd's [network] pool_size (the test helper's default is 0)
    d = Daemon(work / "podkit", pool_size=pool_size).start()
    try:
        c = d.client()
        c.images.import_(tarball, name="docker.io/library/busybox:latest", changes=BUSYBOX_CHANGES)
        # Warm-up: the first pod builds the infra image; not counted.
        w = c.pods.create("warm")
        c.pods.remove(w.id, force=True)
        base_rss = rss_kb(d.proc.pid)  # type: ignore[union-attr]
        pods = []
        for i in range(n):
            name = f"bp{i}"

            def create(name: str = name, i: int = i) -> None:
                c.pods.create(name, ports=[f"127.0.0.1:{PORT_BASE + i}:80"])
                for k in ("a", "b"):
                    c.containers.create("busybox", name=f"{name}-{k}", cmd=WORKLOAD, pod=name)

            res.create.append(timed(create))
            res.start.append(timed(lambda name=name: c.pods.start(name)))
            pods.append(name)
        conmon = sum(rss_kb(p) for p in conmons_mentioning(str(d.state)))
        res.mem_per_pod_kb = (rss_kb(d.proc.pid) - base_rss + conmon) / n  # type: ignore[union-attr]
        for name in pods:
            res.stop.append(timed(lambda name=name: c.pods.stop(name, timeout=10)))
        for name in pods:
            res.remove.append(timed(lambda name=name: c.pods.remove(name, force=True)))
    finally:
        # Whatever happened, leave no pod running behind the daemon.
        with contextlib.suppress(Exception):
            for p in d.client().pods.list():
                d.client().pods.remove(p.id, force=True)
        d.stop()
        # The default network's bridge (made by the first attachment) goes with the bench.
        subprocess.run(["ip", "link", "del", d.bridge], capture_output=True)
    return res


# -- podman -----------------------------------------------------------------------------


def bench_podman(n: int, tarball: Path, work: Path) -> Result | None:
    podman = shutil.which("podman")
    if not podman:
        print("podman: not installed, skipped (apt-get install podman to compare)")
        return None
    root, runroot = work / "podman-root", work / "podman-run"
    base = [
        podman,
        "--root",
        str(root),
        "--runroot",
        str(runroot),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
        "--runtime",
        "runc",
    ]

    def pm(*args: str) -> str:
        r = subprocess.run([*base, *args], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout.strip()

    # This host lacks CAP_SYS_RESOURCE: podman's default nofile/nproc rlimits (above the
    # current hard limits) make runc fail, so give it modest ones (they cost nothing here).
    conf = work / "containers.conf"
    conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n')
    os.environ["CONTAINERS_CONF"] = str(conf)
    res = Result("podman")
    from tests.fixtures.network import podman_bridge_guard

    drop_bridge = podman_bridge_guard()
    try:
        pm("import", "--change", 'CMD ["sh"]', str(tarball), "localhost/busybox:bench")
        pods = []
        for i in range(n):
            name = f"bp{i}"

            def create(name: str = name, i: int = i) -> None:
                pm("pod", "create", "--name", name, "-p", f"127.0.0.1:{PORT_BASE + 1000 + i}:80")
                for k in ("a", "b"):
                    pm("create", "--pod", name, "--name", f"{name}-{k}", "localhost/busybox:bench", *WORKLOAD)

            res.create.append(timed(create))
            res.start.append(timed(lambda name=name: pm("pod", "start", name)))
            pods.append(name)
        conmon = sum(rss_kb(p) for p in conmons_mentioning(str(runroot)))
        res.mem_per_pod_kb = conmon / n
        for name in pods:
            res.stop.append(timed(lambda name=name: pm("pod", "stop", "-t", "10", name)))
        for name in pods:
            res.remove.append(timed(lambda name=name: pm("pod", "rm", "-f", name)))
    except RuntimeError as e:
        print(f"podman: failed, skipped: {e}")
        return None
    finally:
        subprocess.run([*base, "pod", "rm", "-a", "-f"], capture_output=True)
        subprocess.run([*base, "system", "reset", "-f"], capture_output=True)
        drop_bridge()
    return res


def bench_cri() -> None:
    if not shutil.which("crictl"):
        print("containerd (CRI): crictl is not installed (Debian 12 does not package it), skipped")
        return
    print(
        "containerd (CRI): crictl found, but a CRI pod bench needs a containerd configured for "
        "this host; skipped"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=50, help="pods per engine (default 50)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 3 pods")
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument(
        "--pool-size", type=int, default=3, help="podkitd's [network] pool_size (0: no pre-warmed sandboxes)"
    )
    args = ap.parse_args()
    n = 3 if args.quick else args.n
    if os.geteuid() != 0:
        sys.exit("bench/pods.py runs as root (runc, CNI)")
    work = Path(tempfile.mkdtemp(prefix="podkit-bench-pods-", dir="/var/tmp"))
    try:
        tarball = tar_directory(build_busybox_rootfs(work / "rootfs"), work / "busybox.tar")
        print(
            f"{n} pods x 2 containers (busybox sleep), networked, one published port each; "
            f"podkitd's network pool_size {args.pool_size}\n"
        )
        results = [bench_podkit(n, tarball, work, args.pool_size)]
        if not args.no_podman:
            r = bench_podman(n, tarball, work)
            if r:
                results.append(r)
        bench_cri()
        heads = ["engine", "create ms/pod", "start ms/pod", "stop ms/pod", "rm ms/pod", "MiB/pod"]
        rows = [heads] + [r.row() for r in results]
        widths = [max(len(row[i]) for row in rows) for i in range(len(heads))]
        print()
        for row in rows:
            print("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i]) for i, c in enumerate(row)))
        if len(results) > 1:
            pk, other = results[0], results[1]
            print(f"\nratios podman/podkit (>1: podkit is faster/leaner), medians of {n} pods:")
            for label, a, b in (
                ("create", other.create, pk.create),
                ("start", other.start, pk.start),
                ("stop", other.stop, pk.stop),
                ("remove", other.remove, pk.remove),
            ):
                print(f"  {label:7s} {median_ms(a) / median_ms(b):.2f}x")
            # podman gives the network back at stop, podkit at rm: compare the teardown whole.
            down = (median_ms(other.stop) + median_ms(other.remove)) / (
                median_ms(pk.stop) + median_ms(pk.remove)
            )
            print(f"  stop+rm {down:.2f}x")
            if pk.mem_per_pod_kb:
                print(f"  memory  {other.mem_per_pod_kb / pk.mem_per_pod_kb:.2f}x")
    finally:
        from tests.leaks import unmount_all_under

        unmount_all_under(work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
