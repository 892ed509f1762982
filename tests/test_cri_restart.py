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
    assert not os.path.exists(netns)
    assert not any((cri.daemon.state / "pods").iterdir()) if (cri.daemon.state / "pods").exists() else True
