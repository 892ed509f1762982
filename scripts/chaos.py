#!/usr/bin/env python3
"""The fault campaign (issue 10): SIGKILL podkitd at random points, restart, check.

Each round starts one operation in a client process — the podkit CLI, the Docker API
over its socket (curl), the CRI over its socket (a grpc client with the generated
messages, or crictl for a streaming exec) — lets it run for a random moment, SIGKILLs
podkitd, restarts it, and checks the invariants:

- the sentinel container (and the CRI's sentinel sandbox and container) still run
  and answer exec;
- every blob in the content store matches its digest; every image's manifest,
  config and layers are in the store;
- no stray temp files (ingest area, ``*.tmp`` under root and state);
- nothing half-made once recovery has run: no container "removing"/"restarting",
  no container "running" whose process is gone, no pod "creating"/"removing", no
  layer being extracted, no snapshot tree without its row, no container snapshot
  without its container, no container of a pod that is gone, no CRI container whose
  sandbox is gone;
- after a pull round, the image pulls again and runs, and its files are intact.

Pulls come from a docker-registry on 127.0.0.1 the campaign starts, holding busybox
and a busybox with an 8 MiB random layer (pushed by podkitd at setup). Other rounds
kill a container's conmon (the daemon must record the exit), or fill the daemon's
root — a small tmpfs — from a container, kill podkitd and restart it into the full
disk: it must come up, answer listings, refuse a write with a clear no-space error,
remove the filler (which frees the space) and then work as before.

The daemon keeps a pool of warm sandboxes (``pool_size`` 2), so runs and pods take,
refill and release them; the run, run --rm, -p, pod start, rm and pod rm rounds kill
podkitd either during the request or, in two of five, just after its answer — into the
background teardown (--rm, pod rm), the release and the pool's refill that follow it.

Child-kill rounds ("kill runc", "kill cni", "kill iptables-restore";
scripts/chaos_children.py) SIGKILL one child of podkitd mid-operation — a runc create,
kill or delete, a bridge/host-local/loopback plugin's ADD or DEL, an iptables-restore —
found only among the descendants of this campaign's podkitd and of its conmons, while a
run, run --rm, -p, pod start/rm, rm, CRI sandbox or three concurrent runs (more than the
pool holds) go on. The client must end (no hang) with a clean error or, when what died
was background work or was retried, succeed with its published ports forwarded once
each; the workload's own removal must work; and nothing may be unaccounted for, before
and after a graceful restart: IPAM leases, veths, forwarding rules, netns pins, runc
state and conmons that no attachment, container, pod or pool sandbox of the store names.
Per kind, ``at`` counts what was killed during which operation, and the client's exit.

Rounds go through the kinds in a shuffled order (every kind once per cycle); each
round's own choices come from ``Random(f"{seed}/{round}")``, so ``--seed S --round N``
replays round N (after the same setup). After the last round everything is removed,
podkitd stopped, and nothing may be left: mounts, processes, netns, veths on the
bridge, iptables rules, IPAM leases, cgroups. Prints the counts as JSON (per kill
point: kills, survived, failed) and each failure with its reproduction.

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
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import grpc  # noqa: E402
from cri_api.v1 import api_pb2 as pb  # noqa: E402
from cri_api.v1 import api_pb2_grpc as pb_grpc  # noqa: E402

from scripts.chaos_children import CNI_PLUGINS, ChildKiller  # noqa: E402
from tests.fixtures.images import BUSYBOX_CHANGES, build_busybox_rootfs, tar_directory  # noqa: E402
from tests.fixtures.network import iptables_lines, leases, scrub_subnet, subnet_prefix  # noqa: E402
from tests.fixtures.registry import RegistryServer  # noqa: E402
from tests.helpers import Daemon, shared_dir, wait_for  # noqa: E402
from tests.leaks import children_of, mounts_under, processes_mentioning, unmount_all_under  # noqa: E402

BUSYBOX = "docker.io/library/busybox:latest"
CRI_NS = "k8s.io"
ROOT_MB = 320  # the daemon's root: a tmpfs this size, so a round can fill it
BIG_BYTES = 8 << 20  # the random layer of the big image (a pull long enough to kill in)
# Every kind of round; a cycle runs each once, in an order drawn from the seed.
KINDS = (
    "run",
    "run --rm",
    "run -p",
    "pod create",
    "pod start",
    "rm",
    "pod rm",
    "exec",
    "import",
    "pull",
    "docker run",
    "docker ps",
    "docker exec",
    "docker pull",
    "docker rm",
    "cri pod",
    "cri rm",
    "cri exec",
    "cri pull",
    "cri list",
    "conmon",
    "disk full",
    "kill runc",
    "kill cni",
    "kill iptables-restore",
)
# What a child-kill round runs while its victim is watched for (chaos_children.py): each
# makes that child run, in the request or in what follows it in the background (a
# pool's refill, a teardown, a release).
CHILD_OPS = {
    # (runc start is podkit's own (the exec fifo); runc delete runs where podkit cannot
    # do without it: the members of a pod that shares its pid namespace)
    "runc": ("run", "run --rm", "pod start", "pod rm", "cri pod"),
    # ("run x3": three at once, more than the pool holds: the last makes its own sandbox
    # or waits for one being made, so a plugin dies in the request too)
    "cni": ("run", "run -p", "run --rm", "run x3", "run x3", "pod start", "pod rm", "rm", "cri pod"),
    "iptables-restore": ("run -p", "pod start", "rm", "pod rm"),
}
# Kinds whose podkitd kill may wait for the client's answer: the work that goes on after
# it (a --rm's or pod rm's teardown, a release, the pool's refill) is then hit.
LATE = ("run", "run --rm", "run -p", "pod start", "rm", "pod rm")
POOL_SIZE = 2  # warm sandboxes: takes, refills and releases in every round that runs


class RoundFailed(Exception):
    pass


# Log lines that say nothing of what podkitd was doing (a kill point's step is the last
# other line before the kill).
NOISE = (" asyncio: ", " grpc.", " aiohttp.access")


class Campaign:
    def __init__(self, base: Path, seed: int, kinds: tuple[str, ...] = KINDS) -> None:
        self.base = base
        self.seed = seed
        self.kinds = kinds
        (base / "d").mkdir()
        self.d = Daemon(
            base / "d",
            '[cri]\nenabled = true\nsandbox_image = "localhost/none/pause:never"\n',
            pool_size=POOL_SIZE,
        )
        self.registry = RegistryServer(base / "registry")
        self.counts: dict[str, int] = {
            "kill points": 0,
            "survived": 0,
            "conmon kills": 0,
            "disk fills": 0,
            "child kills": 0,
            "child kills missed": 0,
        }
        # per kind: kills, survived, failed, and "at": where podkitd was when killed
        self.by_kind: dict[str, dict[str, Any]] = {}
        self.failures: list[dict[str, Any]] = []
        self.round = 0
        self.rng = random.Random(seed)
        self.sentinel = ""
        self.cri_sentinel = ""
        self.cri_sandbox = ""
        self.big_sha = ""
        self.tarball = Path()
        self.channel: grpc.Channel | None = None

    # ---- plumbing ----

    @property
    def refs(self) -> dict[str, str]:
        return {
            "busybox": f"{self.registry.host}/chaos/busybox:1",
            "big": f"{self.registry.host}/chaos/big:1",
        }

    def rt(self) -> Any:
        if self.channel is None:
            self.channel = grpc.insecure_channel(f"unix://{self.d.state / 'cri.sock'}")
        return pb_grpc.RuntimeServiceStub(self.channel)

    def drop_channel(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def _cli(self, *args: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, PODKIT_HOST=self.d.host)
        return subprocess.Popen(
            [str(REPO / ".venv/bin/podkit"), *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _sh(self, script: str, err: Path | None = None) -> subprocess.Popen[bytes]:
        """A shell script of podkit commands ("$P" is the CLI); its stderr to ``err``."""
        env = dict(os.environ, PODKIT_HOST=self.d.host, P=str(REPO / ".venv/bin/podkit"))
        with open(err or os.devnull, "wb") as f:
            return subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.DEVNULL, stderr=f)

    def _docker(self, script: str) -> subprocess.Popen[bytes]:
        sock = self.d.state / "docker.sock"
        curl = f"curl -s --max-time 30 --unix-socket {sock}"
        return subprocess.Popen(
            ["sh", "-c", script.replace("CURL", curl)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

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

    def _crictl(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                str(shared_dir() / "bin" / "crictl"),
                "--runtime-endpoint",
                f"unix://{self.d.state / 'cri.sock'}",
                "--timeout",
                "20s",
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _rmi(self, ref: str) -> None:
        """Make the next pull of ``ref`` download it: a removal frees its blobs at once once
        no namespace names them (so both lose it; only the big one's layer goes: the
        pushed busybox is another name of local busybox, pulled as "Already exists")."""
        for ns in ("default", CRI_NS):
            r = self.d.cli("-n", ns, "rmi", ref, timeout=60)  # untagged only: busybox shares its id
            if r.returncode != 0 and "no such image" not in r.stderr.lower():
                raise RoundFailed(f"rmi {ref} in {ns} before the pull: {r.stderr.strip()[-300:]}")

    def _some(self, rng: random.Random, kind: str, ns: str = "default") -> list[str]:
        c = self.d.client(ns)
        keep = {self.sentinel, self.cri_sentinel, self.cri_sandbox}
        try:
            if kind == "pod":
                ids = sorted(p.id for p in c.pods.list() if p.id not in keep)
            else:
                ids = sorted(x.id for x in c.containers.list(all=True) if x.id not in keep)
        except Exception:
            ids = []
        rng.shuffle(ids)
        return ids[:3] or ["none-such"]

    def _sandbox_config(self, name: str) -> pb.PodSandboxConfig:
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="chaos", attempt=0),
            hostname=name,
            log_directory=str(self.base / "podlogs" / name),
            linux=pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(pid=pb.CONTAINER)
                )
            ),
        )

    # ---- operations: each a client process started and left running ----

    def operation(self, kind: str, rng: random.Random) -> Callable[[], subprocess.Popen[bytes]]:
        n = self.round
        port = str(20000 + rng.randrange(20000))
        ref = self.refs[rng.choice(("busybox", "big"))]
        streamed = "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.2; done"
        if kind == "run":
            return lambda: self._cli("run", "-d", "--name", f"c{n}", "busybox", "sleep", "30")
        if kind == "run --rm":
            return lambda: self._cli("run", "--rm", "busybox", "sh", "-c", "echo hi; sleep 0.3")
        if kind == "run -p":
            return lambda: self._cli("run", "-d", "-p", f"127.0.0.1:{port}:80", "busybox", "sleep", "30")
        if kind == "pod create":
            return lambda: self._cli("pod", "create", "--name", f"p{n}")
        if kind == "pod start":  # a pod with a published port, started, and a member
            return lambda: self._sh(
                f'"$P" pod create --name p{n} -p 127.0.0.1:{port}:80 --start && '
                f'"$P" run -d --pod p{n} --name c{n} busybox sleep 30'
            )
        if kind == "rm":
            victims = self._some(rng, "container")
            return lambda: self._cli("rm", "-f", *victims)
        if kind == "pod rm":
            victims = self._some(rng, "pod")
            return lambda: self._cli("pod", "rm", "-f", *victims)
        if kind == "exec":  # an attached exec: its output streams while podkitd dies
            return lambda: self._cli("exec", self.sentinel, "sh", "-c", streamed)
        if kind == "import":
            return lambda: self._cli("import", str(self.tarball), f"imp:{n}")
        if kind == "pull":
            self._rmi(ref)
            return lambda: self._cli("pull", ref)
        if kind == "docker run":
            return lambda: self._docker(
                "id=$(CURL -X POST -H 'Content-Type: application/json' "
                '-d \'{"Image":"busybox","Cmd":["true"]}\' http://d/containers/create '
                '| sed \'s/.*"Id":"\\([0-9a-f]*\\)".*/\\1/\'); '
                "CURL -X POST http://d/containers/$id/start; CURL -X POST http://d/containers/$id/wait; "
                "CURL -X DELETE http://d/containers/$id"
            )
        if kind == "docker ps":
            return lambda: self._docker("CURL 'http://d/containers/json?all=1'; CURL http://d/images/json")
        if kind == "docker exec":
            body = json.dumps({"Cmd": ["sh", "-c", streamed], "AttachStdout": True, "AttachStderr": True})
            return lambda: self._docker(
                f"id=$(CURL -X POST -H 'Content-Type: application/json' -d '{body}' "
                f"http://d/containers/{self.sentinel}/exec "
                '| sed \'s/.*"Id":"\\([0-9a-f]*\\)".*/\\1/\'); '
                "CURL -X POST -H 'Content-Type: application/json' -d '{\"Detach\":false}' "
                "http://d/exec/$id/start"
            )
        if kind == "docker pull":
            self._rmi(ref)
            repo, tag = ref.rsplit(":", 1)
            return lambda: self._docker(f"CURL -X POST 'http://d/images/create?fromImage={repo}&tag={tag}'")
        if kind == "docker rm":
            victims = self._some(rng, "container")
            return lambda: self._docker(
                "; ".join(f"CURL -X DELETE 'http://d/containers/{v}?force=1'" for v in victims)
            )
        if kind == "cri pod":
            cfg = self._sandbox_config(f"cp{n}")
            remove = rng.random() < 0.5
            return lambda: self._cri(
                f"cfg=pb.PodSandboxConfig.FromString({cfg.SerializeToString()!r})\n"
                "sid=rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg),timeout=60).pod_sandbox_id\n"
                "cc=pb.ContainerConfig(metadata=pb.ContainerMetadata(name='c'),"
                f"image=pb.ImageSpec(image={BUSYBOX!r}),command=['sleep','30'],log_path='c.log')\n"
                "cid=rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid,config=cc,"
                "sandbox_config=cfg),timeout=60).container_id\n"
                "rt.StartContainer(pb.StartContainerRequest(container_id=cid),timeout=60)\n"
                + (
                    "rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid),timeout=60)\n"
                    "rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid),timeout=60)\n"
                    if remove
                    else ""
                )
            )
        if kind == "cri rm":
            victims = [p.id for p in self.rt().ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items]
            victims = sorted(v for v in victims if v != self.cri_sandbox)
            rng.shuffle(victims)
            return lambda: self._cri(
                f"for sid in {victims[:3]!r}:\n"
                "    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid),timeout=60)\n"
                "    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid),timeout=60)\n"
                "rt.RemoveContainer(pb.RemoveContainerRequest(container_id='none-such'),timeout=60)"
            )
        if kind == "cri exec":  # the streaming Exec (crictl follows the URL it is given)
            return lambda: self._crictl("exec", self.cri_sentinel, "sh", "-c", streamed)
        if kind == "cri pull":
            self._rmi(ref)
            return lambda: self._cri(f"im.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image={ref!r})))")
        if kind == "cri list":
            return lambda: self._cri(
                "rt.Version(pb.VersionRequest(), timeout=10)\n"
                "rt.ListContainers(pb.ListContainersRequest(), timeout=10)\n"
                "rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=10)\n"
                "im.ImageFsInfo(pb.ImageFsInfoRequest(), timeout=10)"
            )
        raise AssertionError(f"no operation {kind}")

    # ---- the invariants ----

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(f"file:{self.d.root / 'metadata.db'}?mode=ro", uri=True, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def _half_made(self) -> list[str]:
        """What the metadata and the trees on disk say was left half-made."""
        problems: list[str] = []
        with contextlib.closing(self._db()) as db:
            snaps = db.execute("SELECT driver, key, id, kind FROM snapshots").fetchall()
            ctrs = {r["id"]: r for r in db.execute("SELECT id, state, pod_id, infra FROM containers")}
            pods = {r["id"]: (r["state"], json.loads(r["record"])) for r in db.execute("SELECT * FROM pods")}
            images = db.execute("SELECT namespace, name, digest FROM images").fetchall()
        for s in snaps:
            if s["key"].startswith("extract-"):
                problems.append(f"layer extraction {s['key']} left")
            if s["key"].startswith("ctr-") and s["key"][4:] not in ctrs:
                problems.append(f"snapshot {s['key'][:16]} of no container")
        for drv in {s["driver"] for s in snaps}:
            ids = {str(s["id"]) for s in snaps if s["driver"] == drv}
            top = self.d.root / "snapshots" / drv
            lost = (
                [p.name for p in top.iterdir() if p.name.isdigit() and p.name not in ids]
                if top.exists()
                else []
            )
            if lost:
                problems.append(f"{drv} snapshot trees without a row: {lost}")
        for cid, r in ctrs.items():
            if r["pod_id"] and r["pod_id"] not in pods:
                problems.append(f"container {cid[:12]} of a pod that is gone ({r['pod_id'][:12]})")
        for pid, (state, rec) in pods.items():
            if state in ("creating", "removing"):
                problems.append(f"pod {pid[:12]} left {state}")
            elif rec.get("infra_id") and rec["infra_id"] not in ctrs:
                problems.append(f"pod {pid[:12]} lost its infra container")
        blobs = self.d.root / "content" / "blobs" / "sha256"
        for im in images:
            missing = self._missing_blobs(blobs, im["digest"])
            if missing:
                problems.append(f"image {im['name']} ({im['namespace']}) lacks blobs {missing}")
        return problems

    @staticmethod
    def _missing_blobs(blobs: Path, digest: str) -> list[str]:
        """Blobs an image needs (its manifest, config and layers; for an index, those of
        the manifests it has) that the store lacks."""
        p = blobs / digest.split(":", 1)[1]
        if not p.exists():
            return [digest[:19]]
        doc = json.loads(p.read_bytes())
        if "manifests" in doc:
            present = [m for m in doc["manifests"] if (blobs / m["digest"].split(":", 1)[1]).exists()]
            if not present:
                return ["every manifest of the index"]
            return [x for m in present for x in Campaign._missing_blobs(blobs, m["digest"])]
        need = [doc["config"]["digest"], *(layer["digest"] for layer in doc.get("layers", []))]
        return [x[:19] for x in need if not (blobs / x.split(":", 1)[1]).exists()]

    def _cri_problems(self) -> list[str]:
        problems: list[str] = []
        rt = self.rt()
        sandboxes = {p.id: p for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items}
        for c in rt.ListContainers(pb.ListContainersRequest(), timeout=30).containers:
            if c.pod_sandbox_id not in sandboxes:
                problems.append(f"CRI container {c.id[:12]} of a sandbox that is gone")
            rt.ContainerStatus(pb.ContainerStatusRequest(container_id=c.id), timeout=30)
        for sid in sandboxes:
            rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid), timeout=30)
        st = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=self.cri_sentinel), timeout=30).status
        if st.state != pb.CONTAINER_RUNNING:
            problems.append(f"the CRI sentinel is {pb.ContainerState.Name(st.state)}")
        else:
            r = rt.ExecSync(
                pb.ExecSyncRequest(container_id=self.cri_sentinel, cmd=["echo", "alive"], timeout=20)
            )
            if r.exit_code != 0 or r.stdout.strip() != b"alive":
                problems.append(f"ExecSync in the CRI sentinel: {r.exit_code} {r.stderr!r}")
        if sandboxes.get(self.cri_sandbox) is None or sandboxes[self.cri_sandbox].state != pb.SANDBOX_READY:
            problems.append("the CRI sentinel's sandbox is not ready")
        return problems

    def invariants(self) -> list[str]:
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
                for ns in ("default", CRI_NS):
                    if any(
                        x.raw["state"] in ("removing", "restarting")
                        for x in self.d.client(ns).containers.list(all=True)
                    ):
                        return False
                with contextlib.closing(self._db()) as db:
                    return not db.execute(
                        "SELECT 1 FROM pods WHERE state IN ('creating','removing')"
                    ).fetchall()
            except Exception:
                return False

        try:
            wait_for(settled, 30, what="recovery to finish the half-made")
        except Exception:  # noqa: BLE001
            problems.append("containers or pods left removing/restarting/creating after recovery")
        try:
            for ns in ("default", CRI_NS):
                for x in self.d.client(ns).containers.list():
                    pid = x.raw.get("pid") or 0
                    if x.raw["state"] == "running" and pid and not os.path.exists(f"/proc/{pid}"):
                        problems.append(f"container {x.id[:12]} is Up but its pid {pid} is gone")
        except Exception as e:  # noqa: BLE001
            problems.append(f"list: {e}")
        try:
            problems += self._half_made()
        except Exception as e:  # noqa: BLE001
            problems.append(f"metadata: {e!r}")
        try:
            problems += self._cri_problems()
        except grpc.RpcError as e:
            problems.append(f"CRI: {e.code()} {e.details()}")
        return problems

    def _pulls_again(self, kind: str) -> list[str]:
        """After a pull round: the image pulls again (whatever the kill left) and runs
        with its files intact."""
        ns = CRI_NS if kind == "cri pull" else "default"
        problems = []
        for name, ref in self.refs.items():
            r = self.d.cli("-n", ns, "pull", "-q", ref, timeout=120)
            if r.returncode != 0:
                problems.append(f"re-pull of {name} in {ns}: {r.returncode} {r.stderr.strip()[-300:]}")
        r = self.d.cli("-n", ns, "run", "--rm", self.refs["big"], "sha256sum", "/big", timeout=120)
        if r.returncode != 0 or r.stdout.split()[:1] != [self.big_sha]:
            problems.append(f"run of the re-pulled image: {r.returncode} {r.stdout[:80]!r} {r.stderr[-300:]}")
        return problems

    # ---- rounds ----

    def kind_of(self, n: int) -> str:
        cycle, i = divmod(n - 1, len(self.kinds))
        order = list(self.kinds)
        random.Random(f"{self.seed}/cycle{cycle}").shuffle(order)
        return order[i]

    def play(self, n: int) -> None:
        self.round = n
        kind = self.kind_of(n)
        rng = random.Random(f"{self.seed}/{n}")
        tally = self.by_kind.setdefault(kind, {"kills": 0, "survived": 0, "failed": 0})
        info: dict[str, Any] = {"round": n, "kind": kind, "step": "setting up the round"}
        try:
            if kind == "conmon":
                problems = self.conmon_round(info)
            elif kind == "disk full":
                problems = self.disk_round(rng, info)
            elif kind.startswith("kill "):
                problems = self.child_round(kind.removeprefix("kill "), rng, info)
            else:
                problems = self.kill_round(kind, rng, info)
        except Exception as e:  # noqa: BLE001 - reported with its round, the campaign goes on
            problems = [f"the round stopped: {e!r}"[:1500]]
            if self.d.proc is not None and self.d.proc.poll() is not None:
                self.d.proc = None
            if self.d.proc is None:
                with contextlib.suppress(Exception):
                    self._restart()
        if problems:
            tally["failed"] += 1
            info["problems"] = problems
            only = f" --kinds '{','.join(self.kinds)}'" if self.kinds != KINDS else ""
            info["replay"] = f"scripts/chaos.py --seed {self.seed} --round {n}{only}"
            self.failures.append(info)
            print(f"FAIL {json.dumps(info)}", file=sys.stderr, flush=True)
        else:
            tally["survived"] += 1
            self.counts["survived"] += 1

    def _kill(self, info: dict[str, Any], log_from: int, registry_from: int | None = None) -> None:
        """SIGKILL podkitd; what it was doing (its last log line) is the kill point's step,
        and its logger (with a trace line's phase) where it counts. For a pull, podkitd
        logs nothing: the registry's access log tells (a request is logged once
        answered: after "manifest fetched", blobs were being fetched)."""
        self.d.kill()
        self.drop_channel()
        self.counts["kill points"] += 1
        tally = self.by_kind[info["kind"]]
        tally["kills"] += 1
        with open(self.d.log, "rb") as f:
            f.seek(log_from)
            lines = [
                x.split(" ", 2)[-1]  # without the date and time
                for x in f.read().decode(errors="replace").splitlines()
                if x[:4].isdigit() and not any(noise in x for noise in NOISE)
            ]
        info["step"] = lines[-1][:200] if lines else "(nothing logged since the operation began)"
        where = _where(lines[-1]) if lines else "(before any log line)"
        if registry_from is not None:
            with open(self.registry.log, "rb") as f:
                f.seek(registry_from)
                asked = [x for x in f.read().decode(errors="replace").splitlines() if " /v2/" in x]
            blobs = sum("/blobs/" in x and '"GET ' in x for x in asked)
            where = (
                f"registry: {blobs} blob(s) fetched"
                if blobs
                else "registry: manifest fetched"
                if any("/manifests/" in x and '"GET ' in x for x in asked)
                else "registry: manifest checked (HEAD)"
                if asked
                else "registry: nothing asked yet"
            )
            info["step"] = f"{where}; podkitd's last line: {info['step']}"
        at = tally.setdefault("at", {})
        at[where] = at.get(where, 0) + 1

    def _restart(self) -> None:
        assert self.d.proc is None, "podkitd still runs"  # (a second one would not start)
        self.d.start()
        self._cri_started()

    def _cri_started(self) -> None:
        self.d.cli("version", timeout=60)  # the CRI's gRPC server starts at its first use
        wait_for(self._cri_up, 30, what="the CRI socket to answer")

    def _cri_up(self) -> bool:
        try:
            self.rt().Version(pb.VersionRequest(), timeout=2)
            return True
        except grpc.RpcError:
            self.drop_channel()
            return False

    def kill_round(self, kind: str, rng: random.Random, info: dict[str, Any]) -> list[str]:
        start = self.operation(kind, rng)
        # (a client takes 0.3-0.6 s to start: the early kills find podkitd idle or the
        # request arriving, the later ones inside it)
        delay = rng.uniform(0.0, 1.2 if kind.endswith("pull") else 1.8)  # a pull takes ~0.5 s
        info["delay"] = round(delay, 3)
        log_from = self.d.log.stat().st_size
        registry_from = self.registry.log.stat().st_size
        proc = start()
        if kind in LATE and rng.random() < 0.4:
            # after the answer: into the teardown, release or refill that follows it
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            delay = rng.uniform(0.0, 0.4)
            info["delay"] = f"after the answer +{delay:.3f}"
        time.sleep(delay)  # a random kill point inside the operation (not a synchronisation)
        self._kill(info, log_from, registry_from if kind.endswith("pull") else None)
        problems = []
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            problems.append("the client hung after the kill")
        self._restart()
        problems += self.invariants()
        if kind in ("pull", "docker pull", "cri pull"):
            problems += self._pulls_again(kind)
        return problems

    def conmon_round(self, info: dict[str, Any]) -> list[str]:
        r = self.d.cli("run", "-d", "busybox", "sleep", "300", timeout=60)
        cid = r.stdout.strip()
        if r.returncode != 0 or not cid:
            return [f"run failed: {r.stderr.strip()}"]
        self.counts["conmon kills"] += 1
        info["step"] = "SIGKILL of conmon and the container's process"
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
        except Exception as e:  # noqa: BLE001
            return [str(e)]
        return []

    # ---- child kills ----

    def _our_roots(self) -> list[int]:
        """podkitd and the conmons of its state dir (a conmon leaves podkitd when it
        daemonizes; runc create runs under it): where a child kill's victim is looked for."""
        roots = [self.d.proc.pid] if self.d.proc is not None else []
        for pidfile in (self.d.state / "runtime" / "containers").glob("*/conmon.pid"):
            with contextlib.suppress(OSError, ValueError):
                pid = int(pidfile.read_text())
                # (a pid file of a conmon that ended may name a reused pid: only ours count)
                if str(self.base) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    roots.append(pid)
        return roots

    def _child_op(
        self, op: str, n: int, publish: list[str], err: Path, share: str = ""
    ) -> Callable[[], subprocess.Popen[bytes]]:
        """A child-kill round's operation (its set-up, not watched, done here)."""
        pod = f'"$P" pod create --name p{n} {" ".join(publish)} {share} --start'
        member = f'"$P" run -d --pod p{n} --name c{n} busybox sleep 30'
        if op == "rm":
            self.d.cli(
                "run", "-d", "--name", f"c{n}", *publish, "busybox", "sleep", "30", check=True, timeout=60
            )
        if op == "pod rm":
            self._sh(f"{pod} && {member}").wait(120)
        script = {
            "run": f'"$P" run -d --name c{n} busybox sleep 30',
            "run -p": f'"$P" run -d --name c{n} {" ".join(publish)} busybox sleep 30',
            "run --rm": f'"$P" run --rm --name c{n} {" ".join(publish)} busybox true',
            "pod start": f"{pod} && {member}",
            "rm": f'"$P" rm -f c{n}',
            "pod rm": f'"$P" pod rm -f p{n}',
            "run x3": " ; ".join(f'"$P" run -d --name c{n}-{i} busybox sleep 30 & p{i}=$!' for i in range(3))
            + " ; wait $p0 && wait $p1 && wait $p2",
        }.get(op)
        if script is not None:
            return lambda: self._sh(script, err)
        assert op == "cri pod", op
        cfg = self._sandbox_config(f"cp{n}")
        code = (
            "import grpc,sys\n"
            "from cri_api.v1 import api_pb2 as pb, api_pb2_grpc as g\n"
            f"ch=grpc.insecure_channel('unix://{self.d.state / 'cri.sock'}')\n"
            "rt=g.RuntimeServiceStub(ch)\n"
            f"cfg=pb.PodSandboxConfig.FromString({cfg.SerializeToString()!r})\n"
            "try:\n"
            "    sid=rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg),timeout=60).pod_sandbox_id\n"
            "    cc=pb.ContainerConfig(metadata=pb.ContainerMetadata(name='c'),"
            f"image=pb.ImageSpec(image={BUSYBOX!r}),command=['sleep','30'],log_path='c.log')\n"
            "    cid=rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=sid,config=cc,"
            "sandbox_config=cfg),timeout=60).container_id\n"
            "    rt.StartContainer(pb.StartContainerRequest(container_id=cid),timeout=60)\n"
            "except grpc.RpcError as e:\n"
            "    sys.exit(f'Error: {e.code().name}: {e.details()}')\n"
        )

        def start() -> subprocess.Popen[bytes]:
            with open(err, "wb") as f:
                return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=f)

        return start

    def child_round(self, target: str, rng: random.Random, info: dict[str, Any]) -> list[str]:
        """SIGKILL a child of podkitd (``target``: chaos_children.TARGETS) during an
        operation: the client must end with a clear error (or succeed, when what was
        killed was background work), the workload's own cleanup must work, and after a
        restart nothing may be left of what the operation half made."""
        n = self.round
        op = rng.choice(CHILD_OPS[target])
        publish = ["-p", f"127.0.0.1:{20000 + rng.randrange(20000)}:80"]
        if target != "iptables-restore" and rng.random() < 0.5:
            publish = []
        # (bridge runs host-local: either may be the one to die; loopback runs first)
        plugins = (rng.choice(CNI_PLUGINS),)
        # (an iptables-restore or a host-local lives 1-5 ms, a bridge's ADD or a runc
        # create 10-50 ms)
        short = target == "iptables-restore" or target == "cni" and plugins == ("host-local",)
        delay = rng.uniform(0.0, 0.002 if short else 0.015)
        info.update(op=op, delay=round(delay, 4), published=bool(publish))
        err = self.base / f"round{n}.err"
        share = "--share net,ipc,uts,pid" if target == "runc" else ""
        start = self._child_op(op, n, publish, err, share)
        # (podkit retries a failed iptables-restore once: two kills fail the request)
        count = rng.choice((1, 1, 2, 3)) if target != "runc" else 1
        info["count"] = count
        killer = ChildKiller(target, self._our_roots, str(self.base), delay, plugins, count)
        killer.start()
        problems: list[str] = []
        t0 = time.monotonic()
        proc = start()
        try:
            proc.wait(90)  # (longer than podkit's own 60 s limits: their errors are seen)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            problems.append(f"{op}: the client hung after the {target} kill")
        took = time.monotonic() - t0
        info["seconds"] = round(took, 1)
        if 30 < took < 90:
            problems.append(f"{op}: the client waited {took:.0f} s for its answer after the {target} kill")
        # a background step's child (a refill's ADD, a teardown's DEL) may come later
        with contextlib.suppress(Exception):
            wait_for(lambda: len(killer.killed.split("; ")) >= count, 2, what="the victims")
        what = killer.stop()
        tally = self.by_kind[info["kind"]]
        at = tally.setdefault("at", {})
        where = f"{what or 'nothing killed'} during {op}"
        outcome = f"{where}: exit {proc.returncode}"
        at[outcome] = at.get(outcome, 0) + 1
        text = err.read_text(errors="replace").strip() if err.exists() else ""
        info["step"] = f"{where}; client exit {proc.returncode}: {text[-300:]}"
        if proc.returncode != 0:  # one sample of what the client said, per outcome
            tally.setdefault("errors", {}).setdefault(outcome, text.splitlines()[-1][:200] if text else "")
        if what:
            self.counts["child kills"] += 1
            tally["kills"] += 1
        else:
            self.counts["child kills missed"] += 1
        if proc.returncode != 0 and ("Traceback" in text or "Error" not in text):
            problems.append(f"{op}: not a clean error after the {what or 'no'} kill: {text[-600:]}")
        if proc.returncode != 0 and not what:
            problems.append(f"{op} failed with nothing killed: {text[-600:]}")
        if op in ("run", "run -p", "pod start"):
            problems += self._forwarded(n)
        problems += self._cleanup_round(n)
        # what the running daemon leaves (a failed refill's sandbox, a release's rules) ...
        problems += [f"before the restart: {x}" for x in self._leftovers()]
        self.d.stop()  # ... and what a graceful restart leaves: left for good
        self._restart()
        problems += self.invariants()
        problems += self._leftovers()
        return problems

    def _forwarded(self, n: int) -> list[str]:
        """Every attachment of round ``n``'s container or pod (its own, or the pool
        sandbox it holds) that publishes ports through podkit's own rules has them, once
        each (a killed iptables-restore is retried: the retry must not double them).
        Only the round's: an earlier round's container that ends now has its rules
        removed before its attachment goes."""
        c = self.d.client()
        holders = set()
        for get in (lambda: c.containers.get(f"c{n}").id, lambda: c.pods.get(f"p{n}").id):
            with contextlib.suppress(Exception):
                holders.add(get())
        with contextlib.closing(self._db()) as db:
            atts = db.execute(
                "SELECT owner_id, network_id, ports, conflist FROM net_attachments WHERE status = 'ready'"
            ).fetchall()
            holders |= {
                r["id"] for r in db.execute("SELECT id, holder FROM net_sandboxes") if r["holder"] in holders
            }
        atts = [a for a in atts if a["owner_id"] in holders]
        lines = iptables_lines("podkit ports net ")
        problems = []
        for a in atts:
            plugins = (json.loads(a["conflist"] or "{}") or {}).get("plugins") or []
            if not json.loads(a["ports"] or "[]") or any(p.get("type") == "portmap" for p in plugins):
                continue
            mine = [x for x in lines if f"podkit ports net {a['network_id'][:16]} id {a['owner_id']}" in x]
            if not mine:
                problems.append(f"{a['owner_id'][:12]} publishes ports but has no forwarding rule")
            elif len(set(mine)) != len(mine):
                problems.append(f"{a['owner_id'][:12]}'s forwarding rules are doubled: {mine}")
        return problems

    def _cleanup_round(self, n: int) -> list[str]:
        """The workload's own cleanup of what round ``n`` made (whatever the kill left)."""
        problems = []
        with contextlib.suppress(Exception):
            wait_for(lambda: not self._removing(), 30, what="background removals")
        for args in (("rm", "-f", f"c{n}", f"c{n}-0", f"c{n}-1", f"c{n}-2"), ("pod", "rm", "-f", f"p{n}")):
            r = self.d.cli(*args, timeout=60)
            if r.returncode != 0 and "no such" not in r.stderr.lower():
                problems.append(f"cleanup {' '.join(args)}: {r.returncode} {r.stderr.strip()[-300:]}")
        rt = self.rt()
        for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
            if p.metadata.name == f"cp{n}":
                try:
                    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
                    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
                except grpc.RpcError as e:
                    problems.append(f"cleanup of sandbox cp{n}: {e.code()} {e.details()}")
        return problems

    def _removing(self) -> bool:
        try:
            return any(
                x.raw["state"] in ("removing", "restarting")
                for ns in ("default", CRI_NS)
                for x in self.d.client(ns).containers.list(all=True)
            )
        except Exception:
            return True

    def _leftovers(self) -> list[str]:
        """What nothing in the store accounts for (waited on a while: a restart's
        recovery and the pool's refill may still be at work)."""
        found: list[str] = []

        def none() -> bool:
            found[:] = self._unaccounted()
            return not found

        with contextlib.suppress(Exception):
            wait_for(none, 20, what="nothing unaccounted")
        return found

    def _unaccounted(self) -> list[str]:
        with contextlib.closing(self._db()) as db:
            atts = db.execute("SELECT owner_id, network_id, ports FROM net_attachments").fetchall()
            nets = {r["id"]: r["bridge"] for r in db.execute("SELECT id, bridge FROM networks")}
            known = {r["id"] for r in db.execute("SELECT id FROM containers")}
            ctrs = set(known)
            known |= {r["id"] for r in db.execute("SELECT id FROM pods")}
            known |= {r["id"] for r in db.execute("SELECT id FROM net_sandboxes")}
        owners = {a["owner_id"] for a in atts}
        known |= owners
        problems: list[str] = []
        ipam = self.d.root / "networks" / "ipam"
        for f in ipam.rglob("*") if ipam.exists() else []:
            if f.is_file() and f.name != "lock" and not f.name.startswith("last_reserved_ip"):
                words = f.read_text(errors="replace").split()
                if not words or words[0] not in owners:
                    problems.append(f"IPAM lease {f.name} of {words[:1]}: no attachment")
        for nid, bridge in nets.items():
            brif = Path(f"/sys/class/net/{bridge}/brif")
            want = sum(a["network_id"] == nid for a in atts)
            if brif.exists() and len(os.listdir(brif)) != want:
                problems.append(f"{len(os.listdir(brif))} veths on {bridge}, {want} attachments")
        published = {a["owner_id"] for a in atts if json.loads(a["ports"] or "[]")}
        for line in iptables_lines(*(f"podkit ports net {nid[:16]} id " for nid in nets)):
            owner = line.rsplit(" id ", 1)[1].split('"')[0].split()[0]
            if owner not in published:
                problems.append(f"iptables rule of {owner[:12]}, which publishes nothing: {line[:160]}")
        pins = self.d.state / "netns"
        for pin in pins.iterdir() if pins.exists() else []:
            if not any(k in pin.name for k in known):
                problems.append(f"netns pin {pin.name} of nothing")
        runc = self.d.state / "runtime" / "runc"
        for d in runc.iterdir() if runc.exists() else []:
            if d.is_dir() and d.name not in ctrs:
                problems.append(f"runc state of {d.name[:12]}, no container")
        for pid, cmd in processes_mentioning(str(self.base)):
            if cmd.startswith(("conmon", "/usr/bin/conmon")) and not any(c in cmd for c in ctrs):
                problems.append(f"conmon {pid} of no container: {cmd[:160]}")
        return problems

    def _free_mb(self) -> float:
        st = os.statvfs(self.d.root)
        return st.f_bavail * st.f_frsize / (1 << 20)

    def disk_round(self, rng: random.Random, info: dict[str, Any]) -> list[str]:
        """Fill the root from a container, kill podkitd at a random moment of it, restart
        into the full disk; it must answer, refuse a write clearly and remove the filler."""
        self.counts["disk fills"] += 1
        name = f"fill{self.round}"
        log_from = self.d.log.stat().st_size
        r = self.d.cli(
            "run",
            "-d",
            "--name",
            name,
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/zero of=/fill bs=1M; sleep 600",
            timeout=60,
        )
        if r.returncode != 0:
            return [f"the filler did not start: {r.stderr.strip()}"]
        if rng.random() < 0.5:  # killed while the disk fills, or once it is full
            time.sleep(rng.uniform(0.0, 1.0))
            info["delay"] = "while filling"
        else:
            # (full: dd stopped at ENOSPC, after which metadata gave back its 4 MiB
            # reserve; blob writes keep 8 MiB free, so less than that refuses them)
            wait_for(lambda: self._free_mb() < 8, 60, what="the root to fill")
            info["delay"] = "once full"
        self._kill(info, log_from)
        self._restart()
        wait_for(lambda: self._free_mb() < 8, 60, what="the root to fill")
        problems = []
        for args in (("ps", "-a"), ("images",), ("pod", "ls"), ("inspect", name)):
            r = self.d.cli(*args, timeout=60)
            if r.returncode != 0:
                problems.append(f"{' '.join(args)} on a full disk: {r.returncode} {r.stderr.strip()[-200:]}")
        r = self.d.cli("import", str(self.tarball), f"full:{self.round}", timeout=60)
        if r.returncode != 1 or "no space left" not in r.stderr or "Traceback" in r.stderr:
            problems.append(f"import on a full disk: {r.returncode} {r.stderr.strip()[-300:]}")
        r = self.d.cli("rm", "-f", name, timeout=60)
        if r.returncode != 0:
            problems.append(f"rm of the filler on a full disk: {r.stderr.strip()[-300:]}")
        try:
            wait_for(lambda: self._free_mb() > 64, 30, what="the space back")
        except Exception as e:  # noqa: BLE001
            problems.append(str(e))
        problems += self.invariants()
        r = self.d.cli("run", "--rm", "busybox", "sh", "-c", "echo room > /f && cat /f", timeout=60)
        if r.returncode != 0 or r.stdout.strip() != "room":
            problems.append(f"run after the space came back: {r.returncode} {r.stderr.strip()[-300:]}")
        return problems

    # ---- setup and teardown ----

    def setup(self) -> None:
        root = self.d.root
        root.mkdir(parents=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={ROOT_MB}m", "podkit-chaos", str(root)], check=True
        )
        self.registry.start()
        self.d.start()
        rootfs = build_busybox_rootfs(self.base / "busybox")
        self.tarball = tar_directory(rootfs, self.base / "busybox.tar")
        for ns in ("default", CRI_NS):
            self.d.client(ns).images.import_(self.tarball, name=BUSYBOX, changes=BUSYBOX_CHANGES)
        self.sentinel = self.d.client().containers.run("busybox", ["sleep", "100000"]).id
        # The big image: busybox and a layer of random bytes, made and pushed by podkitd.
        r = self.d.cli(
            "run", "--name", "bigsrc", "busybox", "sh", "-c",
            f"head -c {BIG_BYTES} /dev/urandom > /big && sha256sum /big",
            check=True, timeout=120,
        )  # fmt: skip
        self.big_sha = r.stdout.split()[0]
        self.d.cli("commit", "bigsrc", self.refs["big"], check=True, timeout=120)
        self.d.cli("rm", "bigsrc", check=True)
        self.d.cli("tag", "busybox", self.refs["busybox"], check=True)
        for ref in self.refs.values():
            self.d.cli("push", ref, check=True, timeout=120)
            self._rmi(ref)
        self._cri_started()
        cfg = self._sandbox_config("sentinel")
        rt = self.rt()
        self.cri_sandbox = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
        cc = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="sentinel"),
            image=pb.ImageSpec(image=BUSYBOX),
            command=["sleep", "100000"],
            log_path="sentinel.log",
        )
        req = pb.CreateContainerRequest(pod_sandbox_id=self.cri_sandbox, config=cc, sandbox_config=cfg)
        self.cri_sentinel = rt.CreateContainer(req, timeout=60).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=self.cri_sentinel), timeout=60)

    def teardown(self) -> list[str]:
        """Remove everything, stop podkitd; what is left behind is a leak."""
        leaks: list[str] = []
        try:
            if self.d.proc is not None and self.d.proc.poll() is not None:
                self.d.proc = None
            if self.d.proc is None:
                self._restart()
            rt = self.rt()
            for p in rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30).items:
                rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
                rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
            for ns in ("default", CRI_NS):
                c = self.d.client(ns)
                for pod in c.pods.list():
                    self.d.cli("-n", ns, "pod", "rm", "-f", pod.id, timeout=60)
                for x in c.containers.list(all=True):
                    c.containers.remove(x.id, force=True)
                wait_for(
                    lambda c=c: not c.containers.list(all=True), 60, what=f"every container of {ns} removed"
                )
        except Exception as e:  # noqa: BLE001 - the cleanup's failure is the campaign's
            leaks.append(f"the final cleanup failed: {e!r}")
        self.drop_channel()
        self.d.stop()
        self.registry.stop()
        base = str(self.base)
        procs = processes_mentioning(base)
        if procs:
            leaks.append(f"processes: {procs}")
        mounts = [m for m in mounts_under(self.base) if m != str(self.d.root)]
        if mounts:
            leaks.append(f"mounts: {mounts}")
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
        return leaks


def _where(line: str) -> str:
    """What a log line says podkitd was at: its logger, with the phase for a trace line
    ("DEBUG podkit.trace: <id> snapshot-done <time>" is podkit.trace:snapshot-done)."""
    words = line.split()
    logger = words[1].rstrip(":") if len(words) > 1 else line
    if logger == "podkit.trace" and len(words) > 3:
        return f"{logger}:{words[3]}"
    return logger


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--minutes", type=float, default=0)
    ap.add_argument("--seconds", type=float, default=0, help="the whole budget, setup included")
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--round", type=int, action="append", default=[], help="replay only these rounds")
    ap.add_argument("--kinds", default="", help="only these kinds of rounds, comma-separated")
    args = ap.parse_args()
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip()) or KINDS
    if set(kinds) - set(KINDS):
        ap.error(f"unknown kinds {sorted(set(kinds) - set(KINDS))}; the kinds are {', '.join(KINDS)}")
    t0 = time.monotonic()
    budget = args.seconds + 60 * args.minutes or 600.0
    base = Path(tempfile.mkdtemp(prefix="podkit-chaos-", dir="/var/tmp"))
    camp = Campaign(base, args.seed, kinds)
    leaks: list[str] = []
    try:
        camp.setup()
        if args.round:
            for n in args.round:
                camp.play(n)
        else:
            n = 0
            while time.monotonic() < t0 + budget:
                n += 1
                camp.play(n)
    except Exception as e:  # noqa: BLE001 - reported with the counts
        camp.failures.append({"round": camp.round, "problems": [f"campaign stopped: {e!r}"]})
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
    camp.failures += [{"leak after the final cleanup": x} for x in leaks]
    report = {
        "seed": camp.seed,
        "seconds": round(time.monotonic() - t0),
        "rounds": camp.round,
        **camp.counts,
        "per kill point": dict(sorted(camp.by_kind.items())),
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
