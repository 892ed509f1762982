#!/usr/bin/env python3
"""CRI life-cycle latency: podkit against containerd's CRI plugin, side by side in one run.

Both runtimes get the same offline images (a local registry with the stand-ins of
../shared/critest, mirrored for registry.k8s.io / gcr.io / docker.io), runc, and a
CNI bridge network of their own; ``critest -benchmark`` drives each in turn and
writes its JSON per operation, from which this prints medians and podkit/containerd
ratios (below 1: podkit is faster).

containerd (Debian's 1.6, `apt-get install containerd`) runs with its own root, state
and socket under a temporary directory, ``restrict_oom_score_adj = true`` (this host
refuses negative oom_score_adj), and is stopped by its pid. Skipped when absent.

    python bench/cri.py           # 20 samples each
    python bench/cri.py -n 5
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import critest as runner  # noqa: E402

from tests.helpers import unique_network, wait_for  # noqa: E402
from tests.leaks import unmount_all_under  # noqa: E402

# What containerd's figures in the issue are: medians of the operations and their sums.
POD_OPS = ("CreatePod", "StatusPod", "StopPod", "RemovePod")
CTR_OPS = ("CreateContainer", "StartContainer", "StatusContainer", "StopContainer", "RemoveContainer")


def params(n: int, path: Path) -> Path:
    path.write_text(
        f"containersNumber: {n}\ncontainersNumberParallel: 1\ncontainerBenchmarkTimeoutSeconds: 60\n"
        f"podsNumber: {n}\npodsNumberParallel: 1\npodBenchmarkTimeoutSeconds: 60\n"
        "imagesNumber: 1\nimagesNumberParallel: 1\nimageBenchmarkTimeoutSeconds: 120\n"
    )
    return path


def run_critest(endpoint: str, params_file: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(runner.CRITEST),
        "-benchmark",
        "-runtime-endpoint",
        endpoint,
        "-image-endpoint",
        endpoint,
        "-ginkgo.no-color",
        "-benchmarking-params-file",
        str(params_file),
        "-benchmarking-output-dir",
        str(out),
        # Pod and container life cycles only: the image benchmarks pull from the internet.
        "-ginkgo.focus=lifecycle",
    ]
    log = out / "critest.log"
    with open(log, "wb") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=1800)


def medians(outs: list[Path]) -> dict[str, float]:
    """Median ms per operation, and per whole life cycle (the sum of each sample's),
    over the samples of every round."""
    res: dict[str, float] = {}
    for fname, ops, total in (
        ("pod_benchmark_data.json", POD_OPS, "pod life cycle"),
        ("container_benchmark_data.json", CTR_OPS, "container life cycle"),
    ):
        rows: list[list[int]] = []
        names: list[str] = []
        for out in outs:
            p = out / fname
            if p.exists():
                data = json.loads(p.read_text())
                names = data["operationsNames"]
                rows += [d["operationsDurationsNs"] for d in data["datapoints"]]
        if not rows:
            continue
        for op in ops:
            if op in names:
                i = names.index(op)
                res[op] = statistics.median(r[i] for r in rows) / 1e6
        res[total] = statistics.median(sum(r) for r in rows) / 1e6
    return res


class Containerd:
    def __init__(self, base: Path, registry_host: str) -> None:
        self.base = base
        self.sock = base / "containerd.sock"
        self.bridge, self.subnet = unique_network()
        self.registry = registry_host
        self.proc: subprocess.Popen[bytes] | None = None

    def config(self) -> Path:
        cni = self.base / "cni"
        cni.mkdir(parents=True, exist_ok=True)
        (cni / "10-bench.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "name": "bench",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": self.bridge,
                            "isGateway": True,
                            "ipMasq": False,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": self.subnet}]],
                                "dataDir": str(self.base / "ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                }
            )
        )
        mirrors = "".join(
            f'[plugins."io.containerd.grpc.v1.cri".registry.mirrors."{h}"]\n  endpoint = ["http://{self.registry}"]\n'
            for h in runner.MIRRORED
        )
        cfg = self.base / "config.toml"
        cfg.write_text(
            f"""version = 2
root = "{self.base / "root"}"
state = "{self.base / "state"}"
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.base / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{cni}"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
{mirrors}"""
        )
        return cfg

    def start(self) -> Containerd:
        cfg = self.config()
        log = open(self.base / "containerd.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["containerd", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"containerd exited:\n{(self.base / 'containerd.log').read_text()[-3000:]}")
            r = subprocess.run(
                [str(runner.SHARED / "bin" / "crictl"), "-r", f"unix://{self.sock}", "info"],
                capture_output=True,
                text=True,
            )
            return r.returncode == 0 and '"NetworkReady"' in r.stdout

        wait_for(up, 60, what="containerd's CRI")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        # Shims of anything critest left behind name our socket: end exactly those.
        from tests.leaks import processes_mentioning

        for pid, _ in processes_mentioning(str(self.base)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if os.path.exists(f"/sys/class/net/{self.bridge}"):
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        from tests.fixtures.network import scrub_subnet

        scrub_subnet(self.subnet)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="samples per benchmark (default 20)")
    ap.add_argument(
        "--rounds", type=int, default=2, help="alternate the runtimes this many times (default 2)"
    )
    args = ap.parse_args()
    if runner.find_critest() is None:
        print("bench/cri.py: critest not found: skipped")
        return 0
    work = Path(tempfile.mkdtemp(prefix="podkit-bench-cri-", dir="/var/tmp"))
    # The samples are split over rounds that alternate the two runtimes, so that a
    # busy moment of the host does not land on one side only.
    per_round = max(1, args.n // args.rounds)
    pfile = params(per_round, work / "params.yaml")
    reg = runner.start_registry()
    outs: dict[str, list[Path]] = {"podkit": [], "containerd": []}
    d = cd = None
    try:
        d = runner.start_daemon(work / "podkit", reg)
        endpoints = {"podkit": f"unix://{d.state / 'cri.sock'}"}
        if shutil.which("containerd"):
            cd = Containerd(work / "containerd", reg.host).start()
            endpoints["containerd"] = f"unix://{cd.sock}"
        else:
            print("containerd not installed (apt-get install containerd): podkit alone")
        for r in range(args.rounds):
            for name, ep in endpoints.items():
                t = time.monotonic()
                out = work / f"out-{name}-{r}"
                run_critest(ep, pfile, out)
                outs[name].append(out)
                print(f"round {r + 1}: {name} {time.monotonic() - t:.0f} s", flush=True)
        results = {name: medians(dirs) for name, dirs in outs.items() if dirs}
    finally:
        if d is not None:
            runner.stop_daemon(d)
        if cd is not None:
            cd.stop()
        reg.stop()
        unmount_all_under(work)
        keep = os.environ.get("BENCH_KEEP")
        if keep:
            skip = shutil.ignore_patterns("root", "state", "*.sock*", "opt", "ipam")
            shutil.copytree(work, keep, dirs_exist_ok=True, ignore=skip)
        shutil.rmtree(work, ignore_errors=True)
    ops = list(POD_OPS) + ["pod life cycle"] + list(CTR_OPS) + ["container life cycle"]
    pk, cd_ = results.get("podkit", {}), results.get("containerd", {})
    n = per_round * args.rounds
    print(f"\nmedians of {n}, ms      podkit   containerd   podkit/containerd")
    for op in ops:
        a, b = pk.get(op), cd_.get(op)
        ratio = f"{a / b:8.2f}" if a and b else "       -"
        na, nb = a if a is not None else float("nan"), b if b is not None else float("nan")
        print(f"{op:24} {na:9.1f} {nb:12.1f}   {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
