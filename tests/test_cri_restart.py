"""The CRI across a podkitd crash: SIGKILL the daemon while CRI pods run; after the
restart the kubelet must see no difference (lists, statuses, logs in the same file,
exec), and tearing down afterwards leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

from cri_api.v1 import api_pb2 as pb

from tests.fixtures.cri import CRIClient
from tests.helpers import wait_for


def _snapshot(cri: CRIClient) -> tuple[list[str], list[str]]:
    pods = cri.rt.ListPodSandbox(pb.ListPodSandboxRequest()).items
    ctrs = cri.rt.ListContainers(pb.ListContainersRequest()).containers
    return (
        sorted(p.SerializeToString(deterministic=True).hex() for p in pods),
        sorted(c.SerializeToString(deterministic=True).hex() for c in ctrs),
    )


def test_sigkill_restart_keeps_everything(cri: CRIClient) -> None:
    sid, scfg = cri.run_sandbox("survivor")
    loop = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"
    cid = cri.run(sid, scfg, "ticker", ["sh", "-c", loop])
    done = cri.run(sid, scfg, "done", ["sh", "-c", "exit 3"])
    cri.wait_exited(done)
    log = Path(scfg.log_directory) / "ticker.log"
    wait_for(lambda: log.exists() and "tick 2" in log.read_text(), what="ticks")
    before = _snapshot(cri)
    sbox = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    st_run, st_done = cri.status(cid).status, cri.status(done).status
    inode = log.stat().st_ino

    cri.daemon.kill()
    cri.daemon.start()
    cri.reconnect()
    cri.wait_up()

    assert _snapshot(cri) == before
    assert cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status == sbox
    assert cri.status(cid).status == st_run
    assert cri.status(done).status == st_done
    # The log goes on in the same file.
    n = log.read_text().count("tick")
    wait_for(lambda: log.read_text().count("tick") > n + 2, what="more ticks after the restart")
    assert log.stat().st_ino == inode
    r = cri.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["echo", "still here"], timeout=10))
    assert (r.stdout, r.exit_code) == (b"still here\n", 0)

    info = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid, verbose=True)).info["info"]
    import json

    netns = json.loads(info)["netNamespacePath"]
    cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    assert cri.rt.ListContainers(pb.ListContainersRequest()).containers == []
    wait_for(lambda: cri.daemon.client("k8s.io").pods.list() == [], what="the background tear-down")
    assert not os.path.exists(netns)
    assert not any((cri.daemon.state / "pods").iterdir()) if (cri.daemon.state / "pods").exists() else True


def test_sigkill_during_background_removal_leaves_nothing(cri: CRIClient) -> None:
    """RemovePodSandbox / RemoveContainer answer once the removal is durable and tear
    down in the background: a SIGKILL right after the replies loses none of it (the
    restart's recovery finishes it) and leaks no netns, lease, directory or record."""
    sid, scfg = cri.run_sandbox("doomed")
    cid = cri.run(sid, scfg, "sleeper", ["sleep", "1000"])
    lone_sid, lone_cfg = cri.run_sandbox("kept")
    lone = cri.run(lone_sid, lone_cfg, "short", ["true"])
    cri.wait_exited(lone)
    cri.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=lone))
    cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))  # running: killed
    # Gone for the CRI at once, whatever the background has done so far.
    assert [p.id for p in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest()).items] == [lone_sid]
    assert cri.rt.ListContainers(pb.ListContainersRequest()).containers == []
    cri.daemon.kill()
    cri.daemon.start()
    cri.reconnect()
    cri.wait_up()
    client = cri.daemon.client("k8s.io")
    assert [p.id for p in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest()).items] == [lone_sid]
    assert [p.id for p in client.pods.list()] == [lone_sid]
    # Only the kept sandbox's infra is left, and nothing of the removed ones.
    assert all(c.id not in (cid, lone) for c in client.containers.list(all=True))
    for gone in (cid, lone):
        assert not (cri.daemon.root / "containers" / gone).exists()
        assert not (cri.daemon.state / "containers" / gone).exists()
    assert [p.name for p in (cri.daemon.state / "netns").iterdir()] == [f"pod-{lone_sid}"]
    ipam = cri.daemon.root / "networks" / "ipam"
    leases = [
        p for p in ipam.rglob("*") if p.is_file() and p.name != "lock" and "last_reserved" not in p.name
    ]
    assert len(leases) == 1, leases
    pods_dir = cri.daemon.state / "pods"
    assert sorted(p.name for p in pods_dir.iterdir()) == [lone_sid]
    cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=lone_sid))
    cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=lone_sid))
    wait_for(lambda: client.pods.list() == [], what="the last tear-down")
