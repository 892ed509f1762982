#!/usr/bin/env python3
"""The fault campaign (issue 10): SIGKILL podkitd at random points, restart, check.

Each round starts an operation in a client process (the podkit CLI, the Docker API
over its socket, a CRI call), lets it run for a random moment, SIGKILLs podkitd,
restarts it, and checks the invariants:

- the sentinel container started at the beginning is still running and exec works;
- every blob in the content store matches its digest;
- no stray temp files (ingest area, ``*.tmp`` under root and state);
- nothing half-made once recovery has run (no container "removing"/"restarting",
  no container "running" whose process is gone);

Some rounds kill a container's conmon instead (the daemon must record the exit).
After the last round everything is removed, podkitd stopped, and nothing may be
left: mounts, processes, netns, veths on the bridge, iptables rules, IPAM leases,
cgroups. Prints the counts and each failure with its seed and round (a run with
the same ``--seed`` replays the same choices).

    .venv/bin/python scripts/chaos.py --minutes 10     # make chaos
    .venv/bin/python scripts/chaos.py --seconds 60     # tests/test_chaos.py
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fixtures.images import BUSYBOX_CHANGES, build_busybox_rootfs, tar_directory  # noqa: E402
from tests.fixtures.network import iptables_lines, leases, scrub_subnet, subnet_prefix  # noqa: E402
from tests.helpers import Daemon, wait_for  # noqa: E402
from tests.leaks import children_of, mounts_under, processes_mentioning, unmount_all_under  # noqa: E402


class Campaign:
    def __init__(self, base: Path, seed: int) -> None:
        self.base = base
        self.rng = random.Random(seed)
        self.seed = seed
        (base / "d").mkdir()
        self.d = Daemon(base / "d", '[cri]\nenabled = true\nsandbox_image = "localhost/none/pause:never"\n')
        self.counts: dict[str, int] = {"kill points": 0, "survived": 0, "conmon kills": 0}
        self.by_op: dict[str, int] = {}
        self.failures: list[str] = []
        self.round = 0
        self.sentinel = ""

    # ---- operations, each a client process started and left running ----

    def _cli(self, *args: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PODKIT_HOST=self.d.host)
        return subprocess.Popen(
            [str(REPO / ".venv/bin/podkit"), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _docker(self, script: str) -> subprocess.Popen[bytes]:
        sock = self.d.state / "docker.sock"
        curl = f"curl -s --max-time 30 --unix-socket {sock}"
        return subprocess.Popen(["sh", "-c", script.replace("CURL", curl)], stdout=subprocess.DEVNULL)

    def _cri(self, call: str) -> subprocess.Popen[bytes]:
        code = (
            "import grpc,sys\n"
            "from cri_api.v1 import api_pb2 as pb, api_pb2_grpc as g\n"
            f"ch=grpc.insecure_channel('unix://{self.d.state / 'cri.sock'}')\n"
            "rt=g.RuntimeServiceStub(ch); im=g.ImageServiceStub(ch)\n"
            f"{call}\n"
        )
        return subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def operations(self) -> dict[str, Callable[[], subprocess.Popen[bytes]]]:
        port = str(20000 + self.rng.randrange(20000))
        name = f"c{self.round}"
        return {
            "run": lambda: self._cli("run", "-d", "--name", name, "busybox", "sleep", "30"),
            "run --rm": lambda: self._cli("run", "--rm", "busybox", "sh", "-c", "echo hi; sleep 0.3"),
            "run -p": lambda: self._cli("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "30"),
            "pod create": lambda: self._cli("pod", "create", "--name", f"p{self.round}"),
            "rm": lambda: self._cli("rm", "-f", *self._some("container")),
            "pod rm": lambda: self._cli("pod", "rm", "-f", *self._some("pod")),
            "exec": lambda: self._cli("exec", self.sentinel, "sh", "-c", "echo x > /tmp/x; cat /tmp/x"),
            "import": lambda: self._cli("import", str(self.tarball), f"imp:{self.round}"),
            "docker run": lambda: self._docker(
                "id=$(CURL -X POST -H 'Content-Type: application/json' "
                '-d \'{"Image":"busybox","Cmd":["true"]}\' http://d/containers/create '
                '| sed \'s/.*"Id":"\\([0-9a-f]*\\)".*/\\1/\'); '
                "CURL -X POST http://d/containers/$id/start; CURL -X POST http://d/containers/$id/wait; "
                "CURL -X DELETE http://d/containers/$id"
            ),
            "docker ps": lambda: self._docker(
                "CURL 'http://d/containers/json?all=1'; CURL http://d/images/json"
            ),
            "cri": lambda: self._cri(
                "rt.Version(pb.VersionRequest(), timeout=10)\n"
                "rt.ListContainers(pb.ListContainersRequest(), timeout=10)\n"
                "im.ImageFsInfo(pb.ImageFsInfoRequest(), timeout=10)"
            ),
        }

    def _some(self, kind: str) -> list[str]:
        c = self.d.client()
        try:
            if kind == "pod":
                ids = [p.id for p in c.pods.list()]
            else:
                ids = [x.id for x in c.containers.list(all=True) if x.id != self.sentinel]
        except Exception:
            ids = []
        self.rng.shuffle(ids)
        return ids[:3] or ["none-such"]

    # ---- the invariants ----

    def check(self, what: str) -> None:
        problems: list[str] = []
        c = self.d.client()
        try:
            s = c.containers.get(self.sentinel).raw
            if s["state"] != "running":
                problems.append(f"sentinel is {s['state']}")
            else:
                r = self.d.cli("exec", self.sentinel, "echo", "alive", timeout=30)
                if r.stdout.strip() != "alive":
                    problems.append(f"exec in the sentinel: {r.returncode} {r.stderr.strip()}")
        except Exception as e:  # noqa: BLE001 - a failure to report, not to raise
            problems.append(f"sentinel: {e}")
        blobs = self.d.root / "content" / "blobs" / "sha256"
        for p in blobs.iterdir() if blobs.exists() else []:
            h = hashlib.sha256(p.read_bytes()).hexdigest()
            if h != p.name:
                problems.append(f"blob {p.name[:12]} has content {h[:12]}")
        ingest = self.d.root / "content" / "ingest"
        if ingest.exists() and any(ingest.iterdir()):
            problems.append(f"ingest not swept: {[x.name for x in ingest.iterdir()]}")
        for top in (self.d.root, self.d.state):
            for p in top.rglob("*.tmp"):
                if "/snapshots/" not in str(p) and "/volumes/" not in str(p):
                    problems.append(f"temp file {p}")

        def settled() -> bool:
            try:
                return all(
                    x.raw["state"] not in ("removing", "restarting") for x in c.containers.list(all=True)
                )
            except Exception:
                return False

        try:
            wait_for(settled, 30, what="recovery to finish the half-made")
        except Exception:  # noqa: BLE001
            problems.append("containers left removing/restarting after recovery")
        try:
            for x in c.containers.list():
                pid = x.raw.get("pid") or 0
                if x.raw["state"] == "running" and pid and not os.path.exists(f"/proc/{pid}"):
                    problems.append(f"container {x.id[:12]} is Up but its pid {pid} is gone")
        except Exception as e:  # noqa: BLE001
            problems.append(f"list: {e}")
        if problems:
            self.failures.append(f"round {self.round} ({what}), seed {self.seed}: " + "; ".join(problems))
        else:
            self.counts["survived"] += 1

    # ---- rounds ----

    def kill_round(self) -> None:
        ops = self.operations()
        what = self.rng.choice(sorted(ops))
        self.by_op[what] = self.by_op.get(what, 0) + 1
        proc = ops[what]()
        # a random kill point inside the operation (a delay, not a synchronisation)
        time.sleep(self.rng.uniform(0.0, 1.2))
        self.d.kill()
        self.counts["kill points"] += 1
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.failures.append(
                f"round {self.round} ({what}), seed {self.seed}: the client hung after the kill"
            )
        self.d.start()
        self.check(what)

    def conmon_round(self) -> None:
        r = self.d.cli("run", "-d", "busybox", "sleep", "300", timeout=60)
        cid = r.stdout.strip()
        if r.returncode != 0 or not cid:
            self.failures.append(f"round {self.round} (conmon): run failed: {r.stderr.strip()}")
            return
        self.counts["conmon kills"] += 1
        pidfile = self.d.state / "runtime" / "containers" / cid / "conmon.pid"
        conmon = int(pidfile.read_text())
        kids = children_of(conmon)
        os.kill(conmon, signal.SIGKILL)
        for k in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(k, signal.SIGKILL)
        try:
            wait_for(
                lambda: self.d.client().containers.get(cid).raw["state"] != "running", 30, what="the exit"
            )
            self.d.cli("rm", "-f", cid, timeout=60)
            self.counts["survived"] += 1
        except Exception as e:  # noqa: BLE001
            self.failures.append(f"round {self.round} (conmon kill), seed {self.seed}: {e}")

    def setup(self) -> None:
        self.d.start()
        rootfs = build_busybox_rootfs(self.base / "busybox")
        self.tarball = tar_directory(rootfs, self.base / "busybox.tar")
        self.d.client().images.import_(
            self.tarball, name="docker.io/library/busybox:latest", changes=BUSYBOX_CHANGES
        )
        self.sentinel = self.d.client().containers.run("busybox", ["sleep", "100000"]).id

    def teardown(self) -> list[str]:
        """Remove everything, stop podkitd; what is left behind is a leak."""
        leaks: list[str] = []
        c = self.d.client()
        with contextlib.suppress(Exception):
            for p in c.pods.list():
                self.d.cli("pod", "rm", "-f", p.id, timeout=60)
            for x in c.containers.list(all=True):
                c.containers.remove(x.id, force=True)
            wait_for(lambda: not c.containers.list(all=True), 60, what="every container removed")
        self.d.stop()
        base = str(self.base)
        procs = processes_mentioning(base)
        if procs:
            leaks.append(f"processes: {procs}")
        mounts = mounts_under(self.base)
        if mounts:
            leaks.append(f"mounts: {mounts}")
        ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        bridge = f"/sys/class/net/{self.d.bridge}/brif"
        if os.path.isdir(bridge) and os.listdir(bridge):
            leaks.append(f"veths on {self.d.bridge}: {os.listdir(bridge)}")
        rules = iptables_lines(subnet_prefix(self.d.subnet))
        rules = [r for r in rules if "MASQUERADE" not in r or "-s" in r]
        if [r for r in rules if "DNAT" in r]:
            leaks.append(f"iptables: {rules}")
        lease = leases(self.d.root / "networks" / "ipam")
        if lease:
            leaks.append(f"ipam leases: {lease}")
        cg = subprocess.run(
            ["sh", "-c", "find /sys/fs/cgroup -maxdepth 4 -type d -name '*podkit*' 2>/dev/null"],
            capture_output=True,
            text=True,
        ).stdout.split()
        ids = (
            {x.name for x in (self.d.state / "containers").iterdir()}
            if (self.d.state / "containers").exists()
            else set()
        )
        left_cg = [p for p in cg if any(i in p for i in ids)]
        if left_cg:
            leaks.append(f"cgroups: {left_cg}")
        del ns
        return leaks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=0)
    ap.add_argument("--seconds", type=float, default=0)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    budget = args.seconds + 60 * args.minutes or 600.0
    base = Path(tempfile.mkdtemp(prefix="podkit-chaos-", dir="/var/tmp"))
    camp = Campaign(base, args.seed)
    leaks: list[str] = []
    try:
        camp.setup()
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            camp.round += 1
            if camp.round % 8 == 0:  # every 8th round kills a conmon instead
                camp.conmon_round()
            else:
                camp.kill_round()
    except Exception as e:  # noqa: BLE001 - reported with the counts
        camp.failures.append(f"round {camp.round}, seed {camp.seed}: campaign stopped: {e!r}")
    finally:
        try:
            leaks = camp.teardown()
        finally:
            for pid, _ in processes_mentioning(str(base)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            unmount_all_under(base)
            if os.path.exists(f"/sys/class/net/{camp.d.bridge}"):
                subprocess.run(["ip", "link", "del", camp.d.bridge], capture_output=True)
            scrub_subnet(camp.d.subnet)
    camp.failures += [f"leak after the final cleanup: {x}" for x in leaks]
    report = {
        "seed": camp.seed,
        "seconds": budget,
        **camp.counts,
        "operations": camp.by_op,
        "failures": camp.failures,
    }
    print(json.dumps(report, indent=1))
    if not camp.failures:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"kept {base} (daemon log: {camp.d.log})", file=sys.stderr)
    return 1 if camp.failures else 0


if __name__ == "__main__":
    sys.exit(main())
