#!/usr/bin/env python3
"""Container start benchmark: podkit vs containerd's ctr vs podman, side by side.

One busybox image (built from the host's busybox-static) is pushed by podkit to
Debian's docker-registry on 127.0.0.1 and pulled from there by each engine, each with
its own temporary root/state/socket. Then, round after round (so that load on the
machine hits all of them alike):

  run --rm busybox true         podkit / ctr run --rm / podman run --rm / bare runc run,
                                with --network none (run) and on the default network (net;
                                ctr run has no network: its one figure is the anchor of both)
  run --rm --seccomp busybox true   ctr with its default seccomp profile (seccomp): like for
                                like, as podkit applies docker's default profile and plain
                                `ctr run` none (the goals are stated against plain `ctr run`)
  run --rm -p 127.0.0.1::80     podkit / podman on the default network with a published port
                                (ports; on a warm sandbox podkit runs portmap alone)
  run -d, stop, rm              the detached cycle (podkit, podman; ctr: run -d, kill, rm)

Each engine's processes run in a cpuacct cgroup of their own (cgroup v1), so the CPU time
per run is counted whole: CLI (its rusage), daemon (podkitd's /proc stat; containerd),
and what they spawn (conmon, runc, CNI plugins, shims). podkit's `run --rm` is also
broken down into phases: the daemon logs a wall-clock mark at each step (podkit.trace,
at debug) and the bench lines them up with its own clock around the CLI.

Then the idle RSS of podkitd and containerd, and the memory per running container:
podkitd RSS delta + conmon RSS for podkit, containerd-shim RSS for containerd (10
sleeping containers each). Prints medians and ratios. Usage: bench/run.py [--runs N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
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


CPUACCT = Path("/sys/fs/cgroup/cpuacct")
BENCH_CG = f"podkit-bench-run-{os.getpid()}"


class CpuGroup:
    """A cpuacct cgroup (v1) that an engine's processes run in: their CPU time, whole."""

    def __init__(self, name: str) -> None:
        self.rel = f"/{BENCH_CG}/{name}"
        self.path = CPUACCT / BENCH_CG / name
        self.ok = CPUACCT.is_dir() and (CPUACCT / "cpuacct.usage").exists()
        if self.ok:
            self.path.mkdir(parents=True, exist_ok=True)

    def seconds(self) -> float:
        if not self.ok:
            return 0.0
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def add(self, pid: int) -> None:
        if self.ok:
            (self.path / "cgroup.procs").write_text(str(pid))

    def joiner(self) -> Callable[[], None] | None:
        if not self.ok:
            return None
        procs = str(self.path / "cgroup.procs")

        def join() -> None:  # in the child, before exec
            with open(procs, "w") as f:
                f.write(str(os.getpid()))

        return join


def remove_cgroups() -> None:
    """The bench's cgroups, deepest first, in every v1 hierarchy (conmon's are made in all)."""
    for h in Path("/sys/fs/cgroup").iterdir():
        top = h / BENCH_CG
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                d.rmdir()
            except OSError as e:
                log(f"removing cgroup {d}: {e}")
        with contextlib.suppress(OSError):
            top.rmdir()


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid: int) -> float:
    """user+sys of a process (all its threads), seconds."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


def sh(
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
    cg: CpuGroup | None = None,
) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        preexec_fn=cg.joiner() if cg is not None else None,
    )
    if check and r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return r


def timed(fn: Callable[[], object]) -> float:
    """How long fn takes; or what it returns, if a float (its own timing of the CLI)."""
    t = time.perf_counter()
    r = fn()
    return r if isinstance(r, float) else time.perf_counter() - t


# podkit's phase marks (podkit.containers.trace), in the order one `run --rm` passes them;
# each phase is named for the step between its mark and the next. The CLI returns once
# the exit is on record ("release"); the teardown after it runs in the background.
PHASES = [
    ("t0", "CLI start + create request"),
    ("create", "create: parse, image, record"),
    ("snapshot", "snapshot prepare"),
    ("snapshot-done", "create: rest, reply"),
    ("created", "CLI: attach + start request"),
    ("mount", "mount rootfs"),
    ("network", "network (netns + CNI ADD)"),
    ("spec", "spec + bundle files"),
    ("runtime-create", "conmon + runc create"),
    ("start", "runc start + record"),
    ("started", "container runs, exit seen"),
    ("exit-seen", "exit recorded (+ removal scheduled)"),
    ("release", "CLI: exit code back, CLI exit"),
    ("t1", ""),
]
BACKGROUND = [
    ("release", "runc delete, CNI DEL, umount"),
    ("released", "to remove"),
    ("remove", "snapshot, dirs, record"),
    ("removed", ""),
]


def marks_of(log_text: str) -> dict[str, float]:
    marks: dict[str, float] = {}
    for line in log_text.splitlines():
        if "podkit.trace: " in line:
            parts = line.split("podkit.trace: ", 1)[1].split()
            if len(parts) == 3:
                marks.setdefault(parts[1], float(parts[2]))
    return marks


def spans(marks: dict[str, float], order: list[tuple[str, str]]) -> dict[str, float] | None:
    if any(k not in marks for k, _ in order):
        return None
    return {name: marks[nxt] - marks[k] for (k, name), (nxt, _) in zip(order, order[1:], strict=False)}


def rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def settle() -> None:
    """Idle means settled: podkitd trims its heap once quiet (podkit.daemon.memory), and
    containerd's Go runtime returns memory on its own schedule; both get the same wait.
    A measurement delay, not synchronisation."""
    from podkit.daemon.memory import QUIET

    time.sleep(2 * QUIET + 1)


def pids_of(name: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                if (p / "comm").read_text().strip() == name:
                    out.append(int(p.name))
    return out


class Meter:
    """CPU seconds spent in each engine's runs, by part, summed over the runs."""

    def __init__(self) -> None:
        self.parts: dict[str, dict[str, float]] = {}
        self.runs: dict[str, int] = {}

    def around(
        self, key: str, fn: Callable[[], object], cg: CpuGroup, daemon_pid: int = 0
    ) -> Callable[[], object]:
        def run() -> object:
            c0, g0, d0 = children_cpu(), cg.seconds(), proc_cpu(daemon_pid) if daemon_pid else 0.0
            r = fn()
            c1, g1, d1 = children_cpu(), cg.seconds(), proc_cpu(daemon_pid) if daemon_pid else 0.0
            p = self.parts.setdefault(key, {"total": 0.0, "cli": 0.0, "daemon": 0.0})
            # The CLI runs in the engine's cgroup too: total is everything the engine spent.
            p["total"] += g1 - g0
            p["cli"] += c1 - c0
            p["daemon"] += d1 - d0
            self.runs[key] = self.runs.get(key, 0) + 1
            return r

        return run

    def per_run(self, key: str) -> dict[str, float]:
        n = self.runs.get(key, 0) or 1
        return {k: v / n for k, v in self.parts.get(key, {}).items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--containers", type=int, default=10, help="for the memory figure")
    ap.add_argument("--pool-size", type=int, default=3, help="podkitd's [network] pool_size")
    a = ap.parse_args()
    from tests.fixtures.images import BUSYBOX_CHANGES, build_busybox_rootfs, tar_directory
    from tests.fixtures.registry import RegistryServer
    from tests.helpers import Daemon

    base = Path(tempfile.mkdtemp(prefix="podkit-bench-run-", dir="/var/tmp"))
    cleanups: list[Callable[[], object]] = [remove_cgroups]
    meter = Meter()
    try:
        rootfs = build_busybox_rootfs(base / "rootfs")
        tarball = tar_directory(rootfs, base / "busybox.tar")
        reg = RegistryServer(base / "registry").start()
        cleanups.append(reg.stop)
        ref = f"{reg.host}/bench/busybox:latest"

        (base / "pk").mkdir()
        pk_cg = CpuGroup("podkit")
        # conmon in a cgroup under the engine's, so that its CPU time is the engine's too
        # (podkit moves it out of the daemon's cgroup, by default into /podkit/conmon).
        # pool_size: podkitd's default (the test helper's is 0)
        d = Daemon(
            base / "pk",
            extra_config=f'[runtime]\nconmon_cgroup = "{pk_cg.rel}/conmon"\n',
            pool_size=a.pool_size,
        ).start()
        cleanups.append(d.drop_host_network)  # after the stop (cleanups run in reverse)
        cleanups.append(d.stop)
        dpid = d.proc.pid if d.proc else 0
        pk_cg.add(dpid)
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
        sh(pk, "run", "--rm", ref, "true", env=env)
        settle()
        idle: dict[str, int] = {"podkitd": rss_kb(dpid)}

        engines: dict[str, dict[str, Callable[[], object]]] = {}
        phases: dict[str, list[dict[str, float]]] = {"none": [], "net": [], "ports": []}
        background: dict[str, list[dict[str, float]]] = {"none": [], "net": [], "ports": []}

        def pk_traced(mode: str, *net: str) -> Callable[[], float]:
            def run() -> float:
                offset = d.log.stat().st_size
                t0 = time.time()
                sh(pk, "run", "--rm", *net, ref, "true", env=env, cg=pk_cg)
                t1 = time.time()

                def read() -> dict[str, float]:
                    with open(d.log, "rb") as f:
                        f.seek(offset)
                        return marks_of(f.read().decode(errors="replace"))

                # The removal goes on after the CLI's exit: wait for it (its CPU time is
                # the run's too, and the next run should not overlap it).
                deadline = time.monotonic() + 30
                marks = read()
                while "removed" not in marks and time.monotonic() < deadline:
                    time.sleep(0.01)
                    marks = read()
                marks.update(t0=t0, t1=t1)
                for into, order in ((phases, PHASES), (background, BACKGROUND)):
                    got = spans(marks, order)
                    if got is not None:
                        into[mode].append(got)
                return t1 - t0

            return run

        def pk_cycle() -> None:
            cid = sh(
                pk, "run", "-d", "--network", "none", ref, "sleep", "60", env=env, cg=pk_cg
            ).stdout.strip()
            sh(pk, "stop", "-t", "0", cid, env=env, cg=pk_cg)
            sh(pk, "rm", cid, env=env, cg=pk_cg)

        engines["podkit"] = {
            "run": meter.around("podkit run", pk_traced("none", "--network", "none"), pk_cg, dpid),
            "net": meter.around("podkit net", pk_traced("net"), pk_cg, dpid),
            "ports": meter.around("podkit ports", pk_traced("ports", "-p", "127.0.0.1::80"), pk_cg, dpid),
            "cycle": pk_cycle,
        }

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
        runc_cg = CpuGroup("runc")
        n = [0]

        def runc_run() -> None:
            n[0] += 1
            sh("runc", "--root", str(runc_root), "run", "-b", str(bundle), f"bench{n[0]}", cg=runc_cg)

        engines["runc"] = {"run": meter.around("runc run", runc_run, runc_cg)}

        ctr_sock = None
        cd_pid = 0
        if shutil.which("containerd") and shutil.which("ctr"):
            cd = base / "containerd"
            ctr_sock = str(cd / "c.sock")
            (cd / "root").mkdir(parents=True)
            cfg = cd / "config.toml"
            cfg.write_text(
                'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  disable = true\n'
                '[plugins."io.containerd.internal.v1.opt"]\n  path = "' + str(cd / "opt") + '"\n'
            )
            ctr_cg = CpuGroup("containerd")
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
                preexec_fn=ctr_cg.joiner(),
            )
            cd_pid = proc.pid

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
            sh(*ctr, "run", "--rm", ref, "warm", "true")
            settle()
            idle["containerd"] = rss_kb(cd_pid)
            m = [0]

            def ctr_run() -> None:
                m[0] += 1
                sh(*ctr, "run", "--rm", ref, f"b{m[0]}", "true", cg=ctr_cg)

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

            def ctr_seccomp() -> None:
                m[0] += 1
                sh(*ctr, "run", "--rm", "--seccomp", ref, f"s{m[0]}", "true", cg=ctr_cg)

            engines["ctr"] = {
                "run": meter.around("ctr run", ctr_run, ctr_cg, cd_pid),
                "seccomp": meter.around("ctr seccomp", ctr_seccomp, ctr_cg, cd_pid),
                "cycle": ctr_cycle,
            }

        if shutil.which("podman"):
            from tests.fixtures.network import podman_bridge_guard

            cleanups.append(podman_bridge_guard())  # runs after podman's rm (reverse order)
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
            # This host lacks CAP_SYS_RESOURCE: podman's default nofile/nproc rlimits
            # (above the hard limits here) cannot be set; lower ones can (as bench/pods.py).
            conf = base / "containers.conf"
            conf.write_text('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n')
            pm_env = dict(os.environ, CONTAINERS_CONF=str(conf))
            pm_cg = CpuGroup("podman")
            pull = sh(*pm, "pull", "--tls-verify=false", "-q", ref, check=False, env=pm_env)
            if pull.returncode == 0:

                def pm_run(*net: str) -> Callable[[], None]:
                    def run() -> None:
                        sh(*pm, "run", "--rm", *net, ref, "true", env=pm_env, cg=pm_cg)

                    return run

                def pm_cycle() -> None:
                    cid = sh(
                        *pm, "run", "-d", "--network", "none", ref, "sleep", "60", env=pm_env
                    ).stdout.strip()
                    sh(*pm, "stop", "-t", "0", cid, env=pm_env)
                    sh(*pm, "rm", cid, env=pm_env)

                engines["podman"] = {
                    "run": meter.around("podman run", pm_run("--network", "none"), pm_cg),
                    "cycle": pm_cycle,
                }
                if sh(*pm, "run", "--rm", ref, "true", env=pm_env, check=False).returncode == 0:
                    engines["podman"]["net"] = meter.around("podman net", pm_run(), pm_cg)
                    engines["podman"]["ports"] = meter.around(
                        "podman ports", pm_run("-p", "127.0.0.1::80"), pm_cg
                    )
                else:
                    log("podman run on its default network failed: podman net skipped")
                cleanups.append(lambda: sh(*pm, "rm", "-a", "-f", check=False, env=pm_env))
            else:
                log(f"podman pull failed, skipping podman: {pull.stderr.strip()[-300:]}")

        results: dict[str, dict[str, list[float]]] = {e: {k: [] for k in fs} for e, fs in engines.items()}
        for i in range(a.runs):
            for e, fs in engines.items():
                for k, fn in fs.items():
                    results[e][k].append(timed(fn))
            log(f"round {i + 1}/{a.runs} done")

        settle()
        idle_after = {"podkitd": rss_kb(dpid)}
        if cd_pid:
            idle_after["containerd"] = rss_kb(cd_pid)

        # memory per running container
        mem: dict[str, float] = {}
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

        report(a.runs, results, phases, background, meter, idle, idle_after, mem)
    finally:
        for c in reversed(cleanups):
            with contextlib.suppress(Exception):
                c()
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-R", "-l", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def report(
    runs: int,
    results: dict[str, dict[str, list[float]]],
    phases: dict[str, list[dict[str, float]]],
    background: dict[str, list[dict[str, float]]],
    meter: Meter,
    idle: dict[str, int],
    idle_after: dict[str, int],
    mem: dict[str, float],
) -> None:
    med = {e: {k: statistics.median(v) for k, v in ks.items()} for e, ks in results.items()}
    print(
        f"\nmedians of {runs} runs (ms), measured side by side (run: --network none; net: default network;"
        " ports: default network, -p 127.0.0.1::80):"
    )
    for e, ks in med.items():
        print(f"  {e:8s} " + "  ".join(f"{k}={v * 1000:.0f}" for k, v in ks.items()))
    p = med["podkit"]
    print("ratios (podkit / other; < 1: podkit is faster):")
    for other in ("ctr", "podman", "runc"):
        if other not in med:
            continue
        o = med[other]
        for k in ("run", "net", "ports", "cycle"):
            # ctr run has no network: it anchors both of podkit's runs
            ok = k if k in o else ("run" if k == "net" and other != "podman" else None)
            if ok is not None and ok in o and k in p:
                print(f"  podkit {k} / {other} {ok}: {p[k] / o[ok]:.2f}")
        if "seccomp" in o:  # like for like: both apply a seccomp profile
            for k in ("run", "net"):
                print(f"  podkit {k} / {other} run --seccomp: {p[k] / o['seccomp']:.2f}")
    for mode, label in (
        ("none", "--network none"),
        ("net", "default network"),
        ("ports", "default network, -p 127.0.0.1::80"),
    ):
        got = phases[mode]
        if not got:
            continue
        print(f"podkit run --rm phases, {label} (medians of {len(got)} runs, ms):")
        total = 0.0
        for name in got[0]:
            v = statistics.median(x[name] for x in got)
            total += v
            print(f"  {name:42s} {v * 1000:7.1f}")
        print(f"  {'(sum of medians)':42s} {total * 1000:7.1f}")
        bg = background[mode]
        if bg:
            print(f"  after the CLI's exit, in the background (medians of {len(bg)}):")
            for name in bg[0]:
                print(f"    {name:40s} {statistics.median(x[name] for x in bg) * 1000:7.1f}")
    print("CPU time per run (ms, user+sys; total = all the engine's processes):")
    for key in sorted(meter.parts):
        c = meter.per_run(key)
        rest = c["total"] - c["cli"] - c["daemon"]
        extra = ""
        names = {"podkit": ("podkitd", "conmon+runc+CNI"), "ctr": ("containerd", "shim+runc")}
        for prefix, (dname, rname) in names.items():
            if key.startswith(prefix):
                extra = (
                    f"  (cli {c['cli'] * 1000:.0f}, {dname} {c['daemon'] * 1000:.0f},"
                    f" {rname} {rest * 1000:.0f})"
                )
        print(f"  {key:12s} total {c['total'] * 1000:6.0f}{extra}")
    pk_run = meter.per_run("podkit run").get("total", 0.0)
    pk_net = meter.per_run("podkit net").get("total", 0.0)
    for key in ("ctr run", "podman run", "podman net"):
        o = meter.per_run(key).get("total", 0.0)
        if o:
            mine = pk_net if key == "podman net" else pk_run
            print(f"  CPU podkit {'net' if key == 'podman net' else 'run'} / {key}: {mine / o:.2f}")
    if "ctr run" in meter.parts and pk_net:
        print(f"  CPU podkit net / ctr run: {pk_net / meter.per_run('ctr run')['total']:.2f}")
    print("idle RSS (kB; after start-up and warm-up / after the runs):")
    for k, v in idle.items():
        print(f"  {k:10s} {v} / {idle_after.get(k, 0)}")
    if idle.get("containerd"):
        print(f"  podkitd / containerd: {idle['podkitd'] / idle['containerd']:.2f}")
    print("memory per running container (kB):")
    for e, v in mem.items():
        print(f"  {e:10s} {v:.0f}")
    if "containerd" in mem and mem["containerd"]:
        print(f"  podkit / containerd-shim: {mem['podkit'] / mem['containerd']:.2f}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
