#!/usr/bin/env python3
"""Container start benchmark: podkit vs containerd's ctr vs podman, side by side.

One busybox image (built from the host's busybox-static) is pushed by podkit to
Debian's docker-registry on 127.0.0.1 and pulled from there by each engine, each with
its own temporary root/state/socket. Then, round after round (so that load on the
machine hits all of them alike):

  run --rm busybox true         podkit / ctr run --rm / podman run --rm / bare runc run
  run -d, stop, rm              the detached cycle (podkit, podman; ctr: run -d, kill, rm)

and the memory per running container: podkitd RSS delta + conmon RSS for podkit,
containerd-shim RSS for containerd (10 sleeping containers each). Prints medians and
ratios. Usage: bench/run.py [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sh(
    *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout)
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return r


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pids_of(name: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                if (p / "comm").read_text().strip() == name:
                    out.append(int(p.name))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--containers", type=int, default=10, help="for the memory figure")
    a = ap.parse_args()
    from tests.fixtures.images import BUSYBOX_CHANGES, build_busybox_rootfs, tar_directory
    from tests.fixtures.registry import RegistryServer
    from tests.helpers import Daemon

    base = Path(tempfile.mkdtemp(prefix="podkit-bench-run-", dir="/var/tmp"))
    cleanups: list[Callable[[], object]] = []
    try:
        rootfs = build_busybox_rootfs(base / "rootfs")
        tarball = tar_directory(rootfs, base / "busybox.tar")
        reg = RegistryServer(base / "registry").start()
        cleanups.append(reg.stop)
        ref = f"{reg.host}/bench/busybox:latest"

        (base / "pk").mkdir()
        d = Daemon(base / "pk").start()
        cleanups.append(d.stop)
        env = dict(os.environ, PODKIT_HOST=d.host)
        # An installed podkit has its bytecode cached; this environment may forbid writing
        # it (PYTHONDONTWRITEBYTECODE), which would make every CLI call compile podkit from
        # source. Cache it in a private directory instead, as an installation would.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        pk = str(BIN / "podkit")
        sh(pk, "import", *sum((["-c", c] for c in BUSYBOX_CHANGES), []), str(tarball), "busybox", env=env)
        sh(pk, "tag", "busybox", ref, env=env)
        sh(pk, "push", "-q", ref, env=env)
        sh(pk, "rmi", "busybox", ref, env=env, check=False)
        sh(pk, "pull", "-q", ref, env=env)
        sh(pk, "run", "--rm", "--network", "none", ref, "true", env=env)  # warm caches

        engines: dict[str, dict[str, Callable[[], object]]] = {}

        # ctr run has no network; podkit and podman run with --network none to match.
        def pk_run() -> None:
            sh(pk, "run", "--rm", "--network", "none", ref, "true", env=env)

        def pk_cycle() -> None:
            cid = sh(pk, "run", "-d", "--network", "none", ref, "sleep", "60", env=env).stdout.strip()
            sh(pk, "stop", "-t", "0", cid, env=env)
            sh(pk, "rm", cid, env=env)

        engines["podkit"] = {"run": pk_run, "cycle": pk_cycle}

        # bare runc, for the floor
        bundle = base / "runc-bundle"
        (bundle / "rootfs").mkdir(parents=True)
        shutil.copytree(rootfs, bundle / "rootfs", dirs_exist_ok=True, symlinks=True)
        sh("runc", "spec", "-b", str(bundle))
        spec = json.loads((bundle / "config.json").read_text())
        spec["process"]["args"] = ["true"]
        spec["process"]["terminal"] = False
        (bundle / "config.json").write_text(json.dumps(spec))
        runc_root = base / "runc-root"
        n = [0]

        def runc_run() -> None:
            n[0] += 1
            sh("runc", "--root", str(runc_root), "run", "-b", str(bundle), f"bench{n[0]}")

        engines["runc"] = {"run": runc_run}

        ctr_sock = None
        if shutil.which("containerd") and shutil.which("ctr"):
            cd = base / "containerd"
            ctr_sock = str(cd / "c.sock")
            (cd / "root").mkdir(parents=True)
            cfg = cd / "config.toml"
            cfg.write_text(
                'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  disable = true\n'
                '[plugins."io.containerd.internal.v1.opt"]\n  path = "' + str(cd / "opt") + '"\n'
            )
            proc = subprocess.Popen(
                [
                    "containerd",
                    "--config",
                    str(cfg),
                    "--root",
                    str(cd / "root"),
                    "--state",
                    str(cd / "state"),
                    "--address",
                    ctr_sock,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

            def stop_containerd() -> None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

            cleanups.append(stop_containerd)
            deadline = time.monotonic() + 20
            while not os.path.exists(ctr_sock) and time.monotonic() < deadline:
                time.sleep(0.05)
            ctr = ["ctr", "-a", ctr_sock]
            sh(*ctr, "images", "pull", "--plain-http", ref)
            m = [0]

            def ctr_run() -> None:
                m[0] += 1
                sh(*ctr, "run", "--rm", ref, f"b{m[0]}", "true")

            def ctr_cycle() -> None:
                m[0] += 1
                name = f"c{m[0]}"
                sh(*ctr, "run", "-d", ref, name, "sleep", "60")
                sh(*ctr, "task", "kill", "-s", "SIGKILL", name)
                deadline = time.monotonic() + 10
                while sh(*ctr, "task", "delete", name, check=False).returncode != 0:
                    if time.monotonic() > deadline:
                        raise SystemExit("ctr task delete failed")
                    time.sleep(0.01)
                sh(*ctr, "containers", "rm", name)

            engines["ctr"] = {"run": ctr_run, "cycle": ctr_cycle}

        if shutil.which("podman"):
            pm = [
                "podman",
                "--root",
                str(base / "podman" / "root"),
                "--runroot",
                str(base / "podman" / "run"),
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
                "--runtime",
                "runc",
            ]
            # No CAP_SYS_RESOURCE here: podman's default nofile ulimit cannot be set.
            conf = base / "containers.conf"
            conf.write_text("[containers]\ndefault_ulimits = []\n")
            pm_env = dict(os.environ, CONTAINERS_CONF=str(conf))
            pull = sh(*pm, "pull", "--tls-verify=false", "-q", ref, check=False, env=pm_env)
            if pull.returncode == 0:

                def pm_run() -> None:
                    sh(*pm, "run", "--rm", "--network", "none", ref, "true", env=pm_env)

                def pm_cycle() -> None:
                    cid = sh(
                        *pm, "run", "-d", "--network", "none", ref, "sleep", "60", env=pm_env
                    ).stdout.strip()
                    sh(*pm, "stop", "-t", "0", cid, env=pm_env)
                    sh(*pm, "rm", cid, env=pm_env)

                engines["podman"] = {"run": pm_run, "cycle": pm_cycle}
                cleanups.append(lambda: sh(*pm, "rm", "-a", "-f", check=False, env=pm_env))
            else:
                log(f"podman pull failed, skipping podman: {pull.stderr.strip()[-300:]}")

        results: dict[str, dict[str, list[float]]] = {e: {k: [] for k in fs} for e, fs in engines.items()}
        for i in range(a.runs):
            for e, fs in engines.items():
                for k, fn in fs.items():
                    results[e][k].append(timed(fn))
            log(f"round {i + 1}/{a.runs} done")

        # memory per running container
        mem: dict[str, float] = {}
        dpid = d.proc.pid if d.proc else 0
        before = rss_kb(dpid)
        ids = [
            sh(pk, "run", "-d", "--init", ref, "sleep", "300", env=env).stdout.strip()
            for _ in range(a.containers)
        ]
        after = rss_kb(dpid)
        conmons = [rss_kb(p) for p in pids_of("conmon")]
        mem["podkit"] = (after - before) / a.containers + (statistics.mean(conmons) if conmons else 0)
        for cid in ids:
            sh(pk, "rm", "-f", cid, env=env)
        if "ctr" in engines and ctr_sock:
            ctr = ["ctr", "-a", ctr_sock]
            names = [f"m{i}" for i in range(a.containers)]
            for nme in names:
                sh(*ctr, "run", "-d", ref, nme, "sleep", "300")
            shims = [rss_kb(p) for p in pids_of("containerd-shim")]
            mem["containerd"] = statistics.mean(shims) if shims else 0
            for nme in names:
                sh(*ctr, "task", "kill", "-s", "SIGKILL", nme, check=False)
                for _ in range(200):
                    if sh(*ctr, "task", "delete", nme, check=False).returncode == 0:
                        break
                    time.sleep(0.02)
                sh(*ctr, "containers", "rm", nme, check=False)

        med = {e: {k: statistics.median(v) for k, v in ks.items()} for e, ks in results.items()}
        print(f"\nmedians of {a.runs} runs (ms), measured side by side:")
        for e, ks in med.items():
            print(f"  {e:8s} " + "  ".join(f"{k}={v * 1000:.0f}" for k, v in ks.items()))
        p = med["podkit"]
        for other in ("ctr", "podman", "runc"):
            if other in med:
                for k in ("run", "cycle"):
                    if k in med[other]:
                        print(f"  podkit {k} / {other} {k}: {p[k] / med[other][k]:.2f}")
        print("memory per running container (kB):")
        for e, v in mem.items():
            print(f"  {e:10s} {v:.0f}")
        if "containerd" in mem and mem["containerd"]:
            print(f"  podkit / containerd-shim: {mem['podkit'] / mem['containerd']:.2f}")
    finally:
        for c in reversed(cleanups):
            with contextlib.suppress(Exception):
                c()
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-R", "-l", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
