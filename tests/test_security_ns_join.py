"""Joining another container's namespaces (``--network/--pid/--ipc container:X``, the
CRI's TARGET pid namespace) goes
through X's checked process (containers/process_root.py, ns_pins.py): a pid whose
process is not the one recorded at X's create (what a reused pid looks like) is refused
with a 409 naming it, not joined; a signal is not sent to it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2 as pb

from podkit import errors
from podkit.client.containers import ExecResult
from tests.fixtures.cri import CRIClient
from tests.helpers import Daemon, wait_for

pytestmark = pytest.mark.root


def _ns_fds(d: Daemon) -> list[str]:
    """What podkitd's descriptors of namespaces name (a pin left open shows here)."""
    assert d.proc is not None
    fd_dir = f"/proc/{d.proc.pid}/fd"
    links = []
    for n in os.listdir(fd_dir):
        try:
            links.append(os.readlink(f"{fd_dir}/{n}"))
        except OSError:
            pass  # closed meanwhile
    return [x for x in links if x.startswith(("net:", "pid:", "ipc:"))]


def test_joins_check_the_containers_pid_is_still_its_process(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    ctr = c.containers.run("busybox", ["sleep", "300"], name="nsx", ipc="shareable")
    try:
        pid = c.containers.get(ctr.id).raw["pid"]
        meta_file = daemon.state / "runtime" / "containers" / ctr.id / "meta.json"
        meta = json.loads(meta_file.read_text())
        fds = _ns_fds(daemon)
        meta_file.write_text(json.dumps(dict(meta, init_start=meta["init_start"] + 1)))
        for flag, opts in (
            ("--network", {"network": "container:nsx"}),
            ("--pid", {"pid": "container:nsx"}),
            ("--ipc", {"ipc": "container:nsx"}),
        ):
            with pytest.raises(
                errors.Conflict, match=f"{flag} container:nsx: .*pid {pid} now belongs to another"
            ):
                c.containers.run("busybox", ["true"], detach=False, auto_remove=True, **opts)
        assert _ns_fds(daemon) == fds  # no pin left open
        meta_file.write_text(json.dumps(meta))
        out = c.containers.run(
            "busybox",
            ["sh", "-c", "for k in net pid ipc; do readlink /proc/self/ns/$k; done"],
            detach=False,
            auto_remove=True,
            network="container:nsx",
            pid="container:nsx",
            ipc="container:nsx",
        )
        assert isinstance(out, ExecResult) and out.exit_code == 0, out
        assert out.stdout.decode().split() == [
            os.readlink(f"/proc/{pid}/ns/{k}") for k in ("net", "pid", "ipc")
        ]
        assert _ns_fds(daemon) == fds
        # a signal too goes only to the checked process (containers/stop.py)
        meta_file.write_text(json.dumps(dict(meta, init_start=meta["init_start"] + 1)))
        c.containers.kill("nsx", "KILL")
        assert Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # not signalled
        assert c.containers.get("nsx").raw["state"] == "running"
        meta_file.write_text(json.dumps(meta))
        c.containers.kill("nsx", "KILL")
        wait_for(lambda: c.containers.get("nsx").raw["state"] == "exited", what="nsx to be killed")
    finally:
        for x in c.containers.list(all=True):
            c.containers.remove(x.id, force=True)


def test_cri_target_pid_namespace_checks_the_targets_process(cri: CRIClient) -> None:
    """A CRI container sharing a target's pid namespace (NamespaceMode TARGET) joins it
    at StartContainer through the target's checked process: FAILED_PRECONDITION naming
    the reused pid, then the target's namespace once its record is true again."""
    sid, scfg = cri.run_sandbox("nsjoin")
    target = cri.run(sid, scfg, "target", ["sleep", "300"])
    pid = json.loads(cri.status(target, verbose=True).info["info"])["pid"]
    nso = pb.NamespaceOption(pid=pb.TARGET, target_id=target)
    linux = pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(namespace_options=nso))
    joiner = cri.create(sid, scfg, cri.container_config("joiner", ["sleep", "300"], linux=linux))
    meta_file = cri.daemon.state / "runtime" / "containers" / target / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps(dict(meta, init_start=meta["init_start"] + 1)))
    with pytest.raises(grpc.RpcError) as e:
        cri.rt.StartContainer(pb.StartContainerRequest(container_id=joiner))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"pid {pid} now belongs to another process" in str(e.value.details())
    meta_file.write_text(json.dumps(meta))
    cri.rt.StartContainer(pb.StartContainerRequest(container_id=joiner))
    jpid = json.loads(cri.status(joiner, verbose=True).info["info"])["pid"]
    assert os.readlink(f"/proc/{jpid}/ns/pid") == os.readlink(f"/proc/{pid}/ns/pid")
    # POD in a sandbox that shares no pid namespace: the infra's, resolved the same way
    nso = pb.NamespaceOption(pid=pb.POD)
    linux = pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(namespace_options=nso))
    member = cri.run(sid, scfg, "member", ["sleep", "300"], linux=linux)
    mpid = json.loads(cri.status(member, verbose=True).info["info"])["pid"]
    req = pb.PodSandboxStatusRequest(pod_sandbox_id=sid, verbose=True)
    infra_pid = json.loads(cri.rt.PodSandboxStatus(req).info["info"])["pid"]
    assert os.readlink(f"/proc/{mpid}/ns/pid") == os.readlink(f"/proc/{infra_pid}/ns/pid")


def test_reads_by_pid_go_through_the_checked_process() -> None:
    """Stats' /proc/<pid> reads (net/dev, cgroup) of a pid whose start time is not the
    recorded one read nothing: another process's counters or cgroup are not the container's."""
    from podkit.containers.inspect import _net_dev
    from podkit.containers.process_root import ProcessRoot, read_in_process
    from podkit.pods.usage import cgroup_of
    from podkit.runtime.proc_identity import start_time

    me = ProcessRoot(os.getpid(), start_time(os.getpid()))
    stranger = ProcessRoot(me.pid, start_time(me.pid) + 1)
    assert read_in_process(me, "cgroup") == Path("/proc/self/cgroup").read_bytes()
    with pytest.raises(errors.NotFound, match=f"pid {me.pid} now belongs to another process"):
        read_in_process(stranger, "net/dev")
    assert cgroup_of(me) != "" and cgroup_of(stranger) == ""
    assert _net_dev(stranger) == (0, 0)
