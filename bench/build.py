"""Build benchmark: one multi-step Dockerfile (a COPY of a few thousand files, several
RUNs, a second stage) built by podkit, `buildah bud` and `podman build`, cold
(--no-cache) and fully cached, each with its own storage under a private directory
(overlay for all three). Prints seconds (median of --runs) and podkit's ratios.

    sudo .venv/bin/python bench/build.py [--runs 3] [--files 3000]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
BIN = Path(sys.executable).parent

DOCKERFILE = """\
FROM busybox AS build
WORKDIR /src
COPY files/ ./files/
RUN find files -type f | wc -l > /count
RUN cat files/d0/* | md5sum > /sum
RUN mkdir -p /out && cp /count /sum /out/
FROM busybox
COPY --from=build /out/ /result/
ENV RESULT=/result
RUN cat /result/count
CMD ["cat", "/result/sum"]
"""


def make_context(root: Path, files: int) -> Path:
    ctx = root / "ctx"
    for i in range(files):
        d = ctx / "files" / f"d{i % 30}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.txt").write_text(f"file {i}\n" * 4)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    return ctx


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--files", type=int, default=3000)
    a = ap.parse_args()
    from tests.fixtures.images import BUSYBOX_CHANGES, build_busybox_rootfs, tar_directory
    from tests.helpers import Daemon

    base = Path(tempfile.mkdtemp(prefix="podkit-bench-build-", dir="/var/tmp"))
    d = None
    try:
        tarball = tar_directory(build_busybox_rootfs(base / "rootfs"), base / "busybox.tar")
        ctx = make_context(base, a.files)
        (base / "pk").mkdir()
        d = Daemon(base / "pk").start()
        env = dict(os.environ, PODKIT_HOST=d.host)
        pk = str(BIN / "podkit")
        changes = sum((["-c", c] for c in BUSYBOX_CHANGES), [])
        subprocess.run(
            [pk, "import", *changes, str(tarball), "busybox"], env=env, check=True, capture_output=True
        )
        archive = base / "busybox-image.tar"
        subprocess.run([pk, "save", "-o", str(archive), "busybox"], env=env, check=True, capture_output=True)

        engines: dict[str, tuple[list[str], list[str], dict[str, str] | None]] = {
            "podkit": (
                [pk, "build", "-q", "-t", "bench:1"],
                [pk, "build", "-q", "--no-cache", "-t", "bench:1"],
                env,
            )
        }
        for tool in ("buildah", "podman"):
            exe = shutil.which(tool)
            if exe is None:
                print(f"{tool}: not installed, skipped")
                continue
            store = [
                "--root",
                str(base / tool / "root"),
                "--runroot",
                str(base / tool / "run"),
                "--storage-driver",
                "overlay",
            ]
            load = "pull" if tool == "buildah" else "load"
            src = f"docker-archive:{archive}" if tool == "buildah" else str(archive)
            subprocess.run(
                [exe, *store, load, *(["-i"] if tool == "podman" else []), src],
                check=True,
                capture_output=True,
            )
            verb = ["bud"] if tool == "buildah" else ["build"]
            common = [
                exe,
                *store,
                *verb,
                "--pull-never" if tool == "buildah" else "--pull=never",
                "-q",
                "-t",
                "bench:1",
            ]
            if tool == "buildah":
                common += ["--isolation", "chroot"]
            else:
                common += ["--network", "none", "--cgroup-manager", "cgroupfs"]
            engines[tool] = (common, [*common, "--no-cache"], None)

        results: dict[str, dict[str, float]] = {}
        for name, (cached_cmd, cold_cmd, e) in engines.items():
            cold = [timed([*cold_cmd, str(ctx)], e) for _ in range(a.runs)]
            cached = [timed([*cached_cmd, str(ctx)], e) for _ in range(a.runs)]
            results[name] = {"cold": statistics.median(cold), "cached": statistics.median(cached)}
            print(
                f"{name:8s} cold {results[name]['cold']:7.2f} s   cached {results[name]['cached']:7.2f} s",
                flush=True,
            )
        pk_r = results["podkit"]
        for name, r in results.items():
            if name == "podkit":
                continue
            print(
                f"{name}/podkit: cold {r['cold'] / pk_r['cold']:.2f}x, "
                f"cached {r['cached'] / pk_r['cached']:.2f}x (above 1: podkit is faster)"
            )
    finally:
        for tool in ("buildah", "podman"):
            exe = shutil.which(tool)
            if exe and (base / tool).exists():
                store = [
                    "--root",
                    str(base / tool / "root"),
                    "--runroot",
                    str(base / tool / "run"),
                    "--storage-driver",
                    "overlay",
                ]
                subprocess.run([exe, *store, "rmi", "-a", "-f"], capture_output=True)
                subprocess.run(["umount", "-R", str(base / tool / "root")], capture_output=True)
                if tool == "podman":
                    subprocess.run([exe, *store, "system", "reset", "-f"], capture_output=True)
        if d is not None:
            d.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
