"""The CRI front end (runtime.v1 over gRPC): server, Version/Status, pod sandboxes.

Driven through the PyPI stubs against a real podkitd (real runc, conmon, CNI).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import grpc
import pytest
from cri_api.v1 import api_pb2 as pb

from tests.fixtures.cri import CRI_NS, CRIClient, code_of
from tests.helpers import Daemon, wait_for


def test_socket_is_root_only(cri_daemon: Daemon) -> None:
    sock = cri_daemon.state / "cri.sock"
    c = CRIClient(cri_daemon, cri_daemon.base / "logs")
    try:
        c.wait_up()
        st = sock.stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0 and st.st_gid == 0
        v = c.rt.Version(pb.VersionRequest(version="v1"))
        assert (v.runtime_name, v.runtime_api_version, v.version) == ("podkit", "v1", "0.1.0")
        rc = c.rt.RuntimeConfig(pb.RuntimeConfigRequest())
        assert rc.linux.cgroup_driver == pb.CGROUPFS
    finally:
        c.close()
    cri_daemon.stop()
    assert not sock.exists(), "the CRI socket outlived the daemon"


def test_cri_disabled_by_config(daemon: Daemon) -> None:
    # The test helper's default config has [cri] enabled = false.
    assert not (daemon.state / "cri.sock").exists()
    assert daemon.client().ping()


def test_status_and_runtime_config(cri: CRIClient) -> None:
    st = cri.rt.Status(pb.StatusRequest(verbose=True))
    conds = {c.type: c.status for c in st.status.conditions}
    assert conds == {"RuntimeReady": True, "NetworkReady": True}
    info = json.loads(st.info["config"])
    assert info["cgroupDriver"] == "cgroupfs" and info["namespace"] == CRI_NS
    cri.rt.UpdateRuntimeConfig(
        pb.UpdateRuntimeConfigRequest(
            runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="10.244.0.0/24"))
        )
    )
    assert (
        json.loads(cri.rt.Status(pb.StatusRequest(verbose=True)).info["config"])["podCIDR"] == "10.244.0.0/24"
    )
    bad = pb.UpdateRuntimeConfigRequest(
        runtime_config=pb.RuntimeConfig(network_config=pb.NetworkConfig(pod_cidr="nonsense"))
    )
    assert code_of(lambda: cri.rt.UpdateRuntimeConfig(bad)) == grpc.StatusCode.INVALID_ARGUMENT


def test_sandbox_lifecycle(cri: CRIClient) -> None:
    sid, cfg = cri.run_sandbox("web", labels={"app": "web", "tier": "front"})
    st = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid, verbose=True))
    s = st.status
    assert s.id == sid and s.state == pb.SANDBOX_READY
    assert (s.metadata.name, s.metadata.namespace, s.metadata.uid) == ("web", "testns", cfg.metadata.uid)
    assert dict(s.labels) == {"app": "web", "tier": "front"}  # podkit's own labels hidden
    assert dict(s.annotations) == {"note": "a"}
    assert s.network.ip.startswith(cri.daemon.subnet.rsplit(".", 1)[0] + ".")
    assert s.linux.namespaces.options.pid == pb.CONTAINER
    info = json.loads(st.info["info"])
    assert info["pid"] > 0 and os.path.exists(f"/proc/{info['pid']}")
    netns = info["netNamespacePath"]
    assert os.path.exists(netns)
    # The pod is a podkit pod in namespace k8s.io.
    pods = cri.daemon.client(CRI_NS).pods.list()
    assert [p.id for p in pods] == [sid]

    # By id prefix, state, label selector.
    other, _ = cri.run_sandbox("db", labels={"app": "db"})
    ls = lambda f: [p.id for p in cri.rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=f)).items]  # noqa: E731
    assert set(ls(pb.PodSandboxFilter())) == {sid, other}
    assert ls(pb.PodSandboxFilter(id=sid[:12])) == [sid]
    assert ls(pb.PodSandboxFilter(label_selector={"app": "db"})) == [other]
    assert ls(pb.PodSandboxFilter(label_selector={"app": "web", "tier": "front"})) == [sid]

    cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    s = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    assert s.state == pb.SANDBOX_NOTREADY and s.network.ip == ""
    assert not os.path.exists(netns), "StopPodSandbox kept the network namespace"
    ready = pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_READY))
    notready = pb.PodSandboxFilter(state=pb.PodSandboxStateValue(state=pb.SANDBOX_NOTREADY))
    assert ls(ready) == [other] and ls(notready) == [sid]
    cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))  # idempotent

    cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))  # idempotent
    assert ls(pb.PodSandboxFilter()) == [other]
    # A running sandbox is removed too (its containers killed).
    cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=other))
    assert ls(pb.PodSandboxFilter()) == []
    assert cri.rt.ListContainers(pb.ListContainersRequest()).containers == []
    # The tear-down goes on in the background after the reply.
    wait_for(lambda: cri.daemon.client(CRI_NS).pods.list() == [], what="the pod records gone")


def test_sandbox_bad_requests(cri: CRIClient) -> None:
    rt = cri.rt
    INVALID, NOTFOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND

    def run(cfg: pb.PodSandboxConfig, handler: str = "") -> None:
        rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg, runtime_handler=handler))

    assert code_of(lambda: rt.RunPodSandbox(pb.RunPodSandboxRequest())) == INVALID
    assert code_of(lambda: run(pb.PodSandboxConfig(hostname="x"))) == INVALID  # no metadata
    cfg = cri.sandbox_config("bad")
    cfg.metadata.name = ""
    try:
        run(cfg)
    except grpc.RpcError as e:
        assert e.code() == INVALID and "metadata.name" in (e.details() or "")
    else:
        raise AssertionError("an empty name was accepted")
    assert code_of(lambda: run(cri.sandbox_config("h", hostname="no_underscores!"))) == INVALID
    assert code_of(lambda: run(cri.sandbox_config("r"), handler="kata")) == INVALID
    sys_cfg = cri.sandbox_config("s")
    sys_cfg.linux.sysctls["kernel.hostname_host_wide"] = "1"
    assert code_of(lambda: run(sys_cfg)) == INVALID
    reserved = cri.sandbox_config("l", labels={"io.podkit.cri.name": "x"})
    assert code_of(lambda: run(reserved)) == INVALID
    # Nothing half-made is left behind.
    assert rt.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
    assert cri.daemon.client(CRI_NS).pods.list() == []

    for call in (
        lambda: rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id="nope")),
        lambda: rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id="nope")),
    ):
        assert code_of(call) == NOTFOUND
    assert code_of(lambda: rt.PodSandboxStatus(pb.PodSandboxStatusRequest())) == INVALID


def test_sandbox_host_namespaces_and_ports(cri: CRIClient, workdir: Path) -> None:
    nso = pb.NamespaceOption(network=pb.NODE, pid=pb.NODE, ipc=pb.NODE)
    linux = pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(namespace_options=nso))
    sid, _ = cri.run_sandbox("host", linux=linux)
    s = cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    o = s.linux.namespaces.options
    assert (o.network, o.pid, o.ipc) == (pb.NODE, pb.NODE, pb.NODE)
    info = json.loads(
        cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid, verbose=True)).info["info"]
    )
    assert os.readlink(f"/proc/{info['pid']}/ns/net") == os.readlink("/proc/self/ns/net")
    # Declared container ports (host_port 0) publish nothing; a host port does.
    from tests.fixtures.registry import free_port

    hp = free_port()
    sid2, _ = cri.run_sandbox(
        "ports",
        port_mappings=[
            pb.PortMapping(container_port=80, host_port=0),
            pb.PortMapping(container_port=8080, host_port=hp, protocol=pb.TCP),
        ],
    )
    pod = cri.daemon.client(CRI_NS).pods.inspect(sid2)
    assert pod["ports_text"] == [f"0.0.0.0:{hp}->8080/tcp"]


def test_nothing_left_after_sandboxes_go(cri: CRIClient) -> None:
    """Sandboxes and containers made and removed through the CRI leave no netns pin, IP
    lease, pod cgroup, state directory or podkit log directory behind."""
    made = []
    for name in ("l1", "l2"):
        sid, scfg = cri.run_sandbox(name)
        cid = cri.run(sid, scfg, "c", ["sleep", "1000"])
        info = json.loads(
            cri.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid, verbose=True)).info["info"]
        )
        made.append((sid, cid, info["cgroupPath"]))
    ipam = cri.daemon.root / "networks" / "ipam"
    leases = lambda: sorted(  # noqa: E731
        p.name
        for p in ipam.rglob("*")
        if p.is_file() and p.name not in ("lock",) and "last_reserved" not in p.name
    )
    assert len(leases()) == 2
    for sid, _, _ in made:
        cri.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
    assert leases() == [], "StopPodSandbox kept the IP leases"
    for sid, _, _ in made:
        cri.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
    # Answered once durable; the tear-down goes on in the background (sandbox_remove.py).
    client = cri.daemon.client(CRI_NS)
    wait_for(lambda: client.pods.list() == [], what="the background tear-downs to finish")
    assert leases() == []
    assert list((cri.daemon.state / "netns").iterdir()) == []
    pods_dir = cri.daemon.state / "pods"
    assert not pods_dir.exists() or list(pods_dir.iterdir()) == []
    for _sid, cid, cg in made:
        assert not Path(f"/sys/fs/cgroup/memory{cg}").exists(), f"pod cgroup {cg} left"
        assert not (cri.daemon.root / "containers" / cid).exists()
        assert not (cri.daemon.state / "containers" / cid).exists()
    assert cri.daemon.client(CRI_NS).containers.list(all=True) == []


def test_failed_sandbox_leaves_nothing(cri: CRIClient) -> None:
    """A RunPodSandbox that fails half-way (its host port is taken) is undone whole."""
    import socket

    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        taken = s.getsockname()[1]
        mappings = [pb.PortMapping(container_port=80, host_port=taken)]
        code = code_of(lambda: cri.run_sandbox("clash", port_mappings=mappings))
    assert code != grpc.StatusCode.OK
    assert cri.rt.ListPodSandbox(pb.ListPodSandboxRequest()).items == []
    assert cri.daemon.client(CRI_NS).pods.list() == []
    assert cri.daemon.client(CRI_NS).containers.list(all=True) == []
    assert list((cri.daemon.state / "netns").iterdir()) == []


@pytest.mark.root
def test_pods_join_the_cni_conf_dirs_bridge(workdir: Path) -> None:
    """The first CNI config by name in cni_conf_dir (a bridge with host-local IPAM)
    becomes the network of CRI pods; one podkit cannot run itself falls back. The
    file's portmap entry stays in the network: a pod's published port is portmap's
    DNAT (not podkit's own rules), gone with the pod."""
    from tests.fixtures.cri import cleanup_daemon, start_cri_daemon
    from tests.fixtures.network import iptables_lines, scrub_subnet
    from tests.fixtures.registry import free_port
    from tests.helpers import unique_network

    bridge, subnet = unique_network()
    conf = workdir / "net.d"
    conf.mkdir()
    ipam = {"type": "host-local", "ranges": [[{"subnet": subnet}]]}
    portmap = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    first = {
        "cniVersion": "1.0.0",
        "name": "k8s-pod-network",
        "plugins": [{"type": "bridge", "bridge": bridge, "ipam": ipam}, portmap],
    }
    (conf / "10-pods.conflist").write_text(json.dumps(first))
    (conf / "99-other.conflist").write_text(json.dumps({"name": "x", "plugins": [{"type": "flannel"}]}))
    d = start_cri_daemon(workdir / "d", extra=f'cni_conf_dir = "{conf}"\n')
    try:
        c = CRIClient(d, workdir / "logs")
        c.wait_up()
        ports = [pb.PortMapping(container_port=80, host_port=free_port())]
        sid, _ = c.run_sandbox("netted", port_mappings=ports)
        ip = c.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.network.ip
        import ipaddress

        assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet)
        assert os.path.exists(f"/sys/class/net/{bridge}")
        info = json.loads(c.rt.Status(pb.StatusRequest(verbose=True)).info["config"])
        assert info["podNetwork"] == "cri-k8s-pod-network"
        plugins = d.client().networks.inspect("cri-k8s-pod-network")["cni"]["plugins"]
        assert "portmap" in [p["type"] for p in plugins]
        dnat = f'dnat name: \\"cri-k8s-pod-network\\" id: \\"{sid}\\"'
        assert iptables_lines(dnat)  # portmap's own rule ...
        assert iptables_lines(f"id {sid}") == []  # ... and none of podkit's
        c.remove_all()
        wait_for(lambda: iptables_lines(sid) == [], what="portmap's rules to go with the pod")
        c.close()
    finally:
        cleanup_daemon(d)
        if os.path.exists(f"/sys/class/net/{bridge}"):
            import subprocess

            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        scrub_subnet(subnet)


@pytest.mark.root
def test_pods_fall_back_to_the_default_network(workdir: Path) -> None:
    from tests.fixtures.cri import cleanup_daemon, start_cri_daemon

    conf = workdir / "net.d"
    conf.mkdir()
    (conf / "10-flannel.conflist").write_text(json.dumps({"name": "cbr0", "plugins": [{"type": "flannel"}]}))
    d = start_cri_daemon(workdir / "d", extra=f'cni_conf_dir = "{conf}"\n')
    try:
        c = CRIClient(d, workdir / "logs")
        c.wait_up()
        sid, _ = c.run_sandbox("plain")
        ip = c.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.network.ip
        assert ip.startswith(d.subnet.rsplit(".", 1)[0] + "."), ip
        assert "not a bridge with host-local IPAM" in d.log.read_text()
        c.remove_all()
        c.close()
    finally:
        cleanup_daemon(d)
