#!/usr/bin/env python3
"""`podkit cp` of many small files, out of and into a running container.

A tree of --files small files (100 per directory) is copied into a running busybox
container and back out of it with the CLI, round after round; prints the median of
each direction and the files per second. Usage: bench/cp.py [--files N] [--runs N]
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


def sh(*args: str, env: dict[str, str]) -> None:
    r = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-800:]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    from tests.fixtures.images import BUSYBOX_CHANGES, build_busybox_rootfs, tar_directory
    from tests.helpers import Daemon

    base = Path(tempfile.mkdtemp(prefix="podkit-bench-cp-", dir="/var/tmp"))
    d = None
    try:
        tarball = tar_directory(build_busybox_rootfs(base / "rootfs"), base / "busybox.tar")
        tree = base / "tree"
        for i in range(a.files):
            sub = tree / f"d{i // 100:03d}"
            if i % 100 == 0:
                sub.mkdir(parents=True)
            (sub / f"f{i:05d}").write_bytes(os.urandom(64) * 4)
        (base / "pk").mkdir()
        d = Daemon(base / "pk").start()
        env = dict(os.environ, PODKIT_HOST=d.host)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        pk = str(BIN / "podkit")
        sh(pk, "import", *sum((["-c", c] for c in BUSYBOX_CHANGES), []), str(tarball), "busybox", env=env)
        sh(pk, "run", "-d", "--name", "cpbench", "--network", "none", "busybox", "sleep", "3600", env=env)
        into, out = [], []
        for r in range(a.runs):
            t = time.perf_counter()
            sh(pk, "cp", str(tree), f"cpbench:/tmp/t{r}", env=env)
            into.append(time.perf_counter() - t)
            dest = base / f"out{r}"
            t = time.perf_counter()
            sh(pk, "cp", f"cpbench:/tmp/t{r}", str(dest), env=env)
            out.append(time.perf_counter() - t)
            got = sum(len(fs) for _, _, fs in os.walk(dest))
            if got != a.files:
                raise SystemExit(f"copied out {got} files, expected {a.files}")
            shutil.rmtree(dest)
        for what, xs in (("into", into), ("out of", out)):
            m = statistics.median(xs)
            print(f"cp {a.files} files {what} a container: median {m:.3f}s ({a.files / m:.0f} files/s)")
    finally:
        if d is not None:
            subprocess.run(
                [str(BIN / "podkit"), "rm", "-f", "cpbench"], env=dict(os.environ, PODKIT_HOST=d.host)
            )
            d.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
