#!/usr/bin/env python3
"""Load: 100 concurrent `run --rm`, 200 pods created and removed, 1,000 containers
listed, and podkitd's RSS before and after a 500-run soak; nothing may leak.

A throwaway podkitd (its own root, state, bridge) with busybox imported. Prints
throughput, p50/p99 latency per phase, RSS (VmRSS of podkitd) and the load average
beside them (the machine may be shared). ``--scale 0.1`` runs a tenth of each.

    .venv/bin/python bench/load.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.images import BUSYBOX_CHANGES, build_busybox_rootfs, tar_directory  # noqa: E402
from tests.fixtures.network import scrub_subnet  # noqa: E402
from tests.helpers import Daemon, wait_for  # noqa: E402
from tests.leaks import mounts_under, processes_mentioning, unmount_all_under  # noqa: E402


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def timed(n: int, workers: int, fn: Callable[[int], None]) -> dict[str, float]:
    lat: list[float] = []

    def one(i: int) -> None:
        t = time.monotonic()
        fn(i)
        lat.append(time.monotonic() - t)

    t0 = time.monotonic()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, range(n)))
    wall = time.monotonic() - t0
    lat.sort()
    return {
        "n": n,
        "per_s": round(n / wall, 2),
        "p50_ms": round(statistics.median(lat) * 1000, 1),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1),
        "loadavg": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()

    def sc(n: int) -> int:
        return max(1, int(n * args.scale))

    base = Path(tempfile.mkdtemp(prefix="podkit-load-", dir="/var/tmp"))
    (base / "d").mkdir()
    d = Daemon(base / "d").start()
    out: dict[str, object] = {"loadavg_start": os.getloadavg()}
    failures: list[str] = []
    try:
        tar = tar_directory(build_busybox_rootfs(base / "bb"), base / "bb.tar")
        d.client().images.import_(tar, name="docker.io/library/busybox:latest", changes=BUSYBOX_CHANGES)

        def run_rm(i: int) -> None:
            r = d.cli("run", "--rm", "busybox", "true", timeout=300)
            if r.returncode != 0:
                failures.append(f"run --rm {i}: {r.returncode} {r.stderr.strip()}")

        out["run_rm_concurrent"] = timed(sc(100), sc(100), run_rm)

        def pod(i: int) -> None:
            r = d.cli("pod", "create", "--name", f"p{i}", timeout=300)
            r2 = d.cli("pod", "rm", "-f", f"p{i}", timeout=300)
            if r.returncode or r2.returncode:
                failures.append(f"pod {i}: {r.stderr.strip()} {r2.stderr.strip()}")

        out["pods_create_rm"] = timed(sc(200), 8, pod)

        c = d.client()
        with ThreadPoolExecutor(8) as ex:
            ids = list(ex.map(lambda i: c.containers.create("busybox", ["true"]).id, range(sc(1000))))
        out["list_containers"] = timed(20, 1, lambda i: c.containers.list(all=True))
        out["list_containers"]["containers"] = len(c.containers.list(all=True))  # type: ignore[index]
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda cid: c.containers.remove(cid, force=True), ids))

        assert d.proc is not None
        before = rss_kib(d.proc.pid)
        out["soak"] = timed(sc(500), 4, run_rm)
        out["rss_kib_before_soak"] = before
        out["rss_kib_after_soak"] = rss_kib(d.proc.pid)
        # run --rm returns at the exit; the removal finishes in the background
        try:
            wait_for(lambda: not c.containers.list(all=True), 60, what="the soak's removals")
        except AssertionError:
            pass
        left = c.containers.list(all=True)
        if left:
            failures.append(f"containers left: {len(left)}")
    finally:
        d.stop()
        procs = processes_mentioning(str(base))
        mounts = mounts_under(base)
        if procs or mounts:
            failures.append(f"leaks: processes {procs}, mounts {mounts}")
        unmount_all_under(base)
        if os.path.exists(f"/sys/class/net/{d.bridge}"):
            subprocess.run(["ip", "link", "del", d.bridge], capture_output=True)
        scrub_subnet(d.subnet)
        shutil.rmtree(base, ignore_errors=True)
    out["failures"] = failures[:20]
    print(json.dumps(out, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
