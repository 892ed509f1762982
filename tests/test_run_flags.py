"""docker's run flags (issue 12 A4) in real containers: --pid/--ipc, --sysctl, --group-add,
cpuset and memory limits, -P/--expose, --mount, --volumes-from, --cidfile, --pull,
--platform, -a, --dns and --ip; through the podkit CLI and, where cheap, the docker CLI.

One podkitd for the module (tests/docker_env.py); each test removes what it made.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_env import DOCKER, DockerEnv, docker_env
from tests.helpers import unique_network, wait_for

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def env(busybox_tarball: Path) -> Iterator[DockerEnv]:
    with docker_env(tarball=busybox_tarball) as e:
        yield e


def _pk(env: DockerEnv, *args: str) -> str:
    r = env.daemon.cli(*args)
    assert r.returncode == 0, f"podkit {' '.join(args)}: {r.returncode} {r.stderr}"
    return r.stdout


def _refused(env: DockerEnv, *args: str) -> str:
    r = env.daemon.cli(*args)
    assert r.returncode == 125, f"podkit {' '.join(args)}: {r.returncode} {r.stdout} {r.stderr}"
    return r.stderr


def _pid(env: DockerEnv, name: str) -> int:
    return int(_pk(env, "inspect", "-f", "{{.State.Pid}}", name).strip())


def shm_mounts(env: DockerEnv) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return [ln for ln in lines if f"{env.base}/" in ln and "/shm " in ln]


def test_pid_ipc_sysctl_group_add(env: DockerEnv) -> None:
    # the first container has its own IPC namespace with a sysctl set in it and a file in
    # its /dev/shm; the second joins its pid and IPC namespaces and sees all three
    _pk(
        env,
        *("run", "-d", "--name", "nsa", "--ipc", "shareable", "--sysctl", "kernel.shmmax=123456789"),
        *("busybox", "sh", "-c", "echo shared > /dev/shm/f; exec sleep 1000"),
    )
    try:
        pid = _pid(env, "nsa")
        assert len(shm_mounts(env)) == 1  # its /dev/shm, on the host
        out = _pk(
            env,
            *("run", "--rm", "--pid", "container:nsa", "--ipc", "container:nsa"),
            *("--sysctl", "net.ipv4.ip_forward=1", "--group-add", "daemon", "--group-add", "1234"),
            *("busybox", "sh", "-c"),
            "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; cat /proc/sys/kernel/shmmax "
            "/proc/sys/net/ipv4/ip_forward /dev/shm/f; id -G; ps -o args | grep -c '^sleep 1000'",
        ).split("\n")
        assert out[0] == os.readlink(f"/proc/{pid}/ns/pid") and out[1] == os.readlink(f"/proc/{pid}/ns/ipc")
        assert out[2:5] == ["123456789", "1", "shared"]
        assert out[5].split() == ["0", "1", "1234"] and out[6] == "1"
        hc = json.loads(_pk(env, "inspect", "nsa"))[0]["HostConfig"]
        assert hc["Sysctls"] == {"kernel.shmmax": "123456789"}
        # the host's pid namespace
        host = _pk(env, "run", "--rm", "--pid", "host", "busybox", "readlink", "/proc/self/ns/pid").strip()
        assert host == os.readlink("/proc/self/ns/pid")
        # the first container's sysctl stayed in its namespace
        assert Path("/proc/sys/kernel/shmmax").read_text().strip() != "123456789"
    finally:
        _pk(env, "rm", "-f", "nsa")
    assert "only namespaced sysctls" in _refused(env, "run", "--rm", "--sysctl", "vm.swappiness=1", "busybox")
    err = _refused(env, "run", "--rm", "--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox")
    assert "--network host" in err
    assert "nosuch" in _refused(env, "run", "--rm", "--pid", "container:nosuch", "busybox", "true")
    private = _pk(env, "create", "busybox", "true").strip()
    assert "not shareable" in _refused(env, "run", "--rm", "--ipc", f"container:{private}", "busybox", "true")
    shareable = _pk(env, "create", "--ipc", "shareable", "busybox", "true").strip()
    assert "not running" in _refused(env, "run", "--rm", "--ipc", f"container:{shareable}", "busybox", "true")
    _pk(env, "rm", private, shareable)
    # a shareable container's host-side /dev/shm goes with a failed start and with an exit
    assert env.daemon.cli("run", "--rm", "--ipc", "shareable", "busybox", "nosuchcmd").returncode == 127
    _pk(env, "run", "--rm", "--ipc", "shareable", "busybox", "true")

    # (run --rm returns as the release begins: wait for it)
    wait_for(lambda: not shm_mounts(env), 20, what="the shareable /dev/shm to be unmounted")
    assert "unable to find group nogroup" in _refused(env, "run", "--rm", "--group-add", "nogroup", "busybox")


def test_cpuset_and_memory_limits(env: DockerEnv) -> None:
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    files = (
        "/sys/fs/cgroup/cpuset.cpus /sys/fs/cgroup/cpuset.mems "
        "/sys/fs/cgroup/memory.low /sys/fs/cgroup/memory.swap.max"
        if v2
        else "/sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/cpuset/cpuset.mems "
        "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"
    )
    out = _pk(
        env,
        *("run", "--rm", "--cpuset-cpus", "0", "--cpuset-mems", "0", "-m", "64m"),
        *("--memory-swap", "96m", "--memory-reservation", "32m", "busybox", "cat", *files.split()),
    ).split()
    # runc maps swap (memory + swap) to memory.swap.max as the swap part alone on v2
    assert out == ["0", "0", str(32 << 20), str((32 if v2 else 96) << 20)]
    assert "not available" in _refused(env, "run", "--rm", "--cpuset-cpus", "0-4095", "busybox", "true")
    err = _refused(env, "run", "--rm", "--memory-swap", "96m", "busybox", "true")
    assert "memory limit" in err


def test_publish_all_exposes_image_and_flag_ports(env: DockerEnv, busybox_tarball: Path) -> None:
    env.daemon.client().images.import_(
        busybox_tarball, name="exposed:1", changes=['CMD ["sh"]', "EXPOSE 7070"]
    )
    serve = "nc -ll -p 7070 -e echo hi & nc -ll -p 7071 -e echo two & wait"
    _pk(env, "run", "-d", "--name", "pa", "-P", "--expose", "7071", "exposed:1", "sh", "-c", serve)
    try:
        lines = _pk(env, "port", "pa").splitlines()
        ports = {ln.split(" -> ")[0]: int(ln.rsplit(":", 1)[1]) for ln in lines}
        assert set(ports) == {"7070/tcp", "7071/tcp"}, lines

        def answer(port: int) -> bytes:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    return s.recv(100)
            except OSError:
                return b""

        wait_for(lambda: answer(ports["7070/tcp"]) == b"hi\n", 20, what="the image's exposed port")
        assert answer(ports["7071/tcp"]) == b"two\n"
        assert json.loads(_pk(env, "inspect", "pa"))[0]["HostConfig"]["PublishAllPorts"] is True
    finally:
        _pk(env, "rm", "-f", "pa")
        _pk(env, "rmi", "exposed:1")


def test_mount_volumes_from_cidfile_pull_attach(env: DockerEnv, tmp_path: Path) -> None:
    host = tmp_path / "h"
    host.mkdir()
    (host / "in").write_text("from-host\n")
    out = _pk(
        env,
        *("run", "--rm", "--mount", f"type=bind,src={host},dst=/b,readonly"),
        *(
            "--mount",
            "type=volume,src=mvol,dst=/v",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1700",
        ),
        *("busybox", "sh", "-c"),
        "cat /b/in; touch /b/x 2>/dev/null || echo ro; echo kept > /v/f; stat -c %a /t; df -k /t | tail -1",
    ).splitlines()
    assert out[:3] == ["from-host", "ro", "1700"] and out[3].split()[1] == "1024"
    out = _pk(
        env,
        "run",
        "--rm",
        "--ipc",
        "none",
        "busybox",
        "sh",
        "-c",
        "grep ' /dev/shm ' /proc/mounts || echo no",
    )
    assert out == "no\n"  # --ipc none: no /dev/shm
    # --volumes-from: the volume and the bind of another (stopped) container, read-only here
    _pk(
        env,
        "run",
        "--name",
        "vsrc",
        "-v",
        "/data",
        "-v",
        f"{host}:/hb",
        "busybox",
        "sh",
        "-c",
        "echo s > /data/f",
    )
    try:
        out = _pk(
            env,
            *("run", "--rm", "--volumes-from", "vsrc:ro", "busybox", "sh", "-c"),
            "cat /data/f /hb/in; touch /data/g 2>/dev/null || echo ro",
        )
        assert out == "s\nfrom-host\nro\n"
        assert "no such container" in _refused(
            env, "run", "--rm", "--volumes-from", "nope", "busybox", "true"
        )
    finally:
        _pk(env, "rm", "-v", "vsrc")
    _pk(env, "volume", "rm", "mvol")
    # --cidfile: written with the id; an existing file is refused before anything is made
    cidfile = tmp_path / "cid"
    cid = _pk(env, "create", "--cidfile", str(cidfile), "busybox", "true").strip()
    assert cidfile.read_text() == cid
    before = _pk(env, "ps", "-aq")
    assert "container ID file found" in _refused(env, "run", "--cidfile", str(cidfile), "busybox", "true")
    assert _pk(env, "ps", "-aq") == before
    _pk(env, "rm", cid)
    # --pull never / --platform: this host's images only
    assert "No such image" in _refused(env, "run", "--rm", "--pull", "never", "nosuch:1", "true")
    assert "not this host's" in _refused(env, "run", "--rm", "--platform", "linux/s390x", "busybox", "true")
    # -a: only the streams asked for
    r = env.daemon.cli("run", "--rm", "-a", "stderr", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "err\n")


def test_dns_replaces_and_fixed_ip(env: DockerEnv) -> None:
    out = _pk(env, "run", "--rm", "--dns", "192.0.2.53", "busybox", "grep", "nameserver", "/etc/resolv.conf")
    assert out == "nameserver 192.0.2.53\n"
    name, subnet = unique_network()
    _pk(env, "network", "create", "--subnet", subnet, name)
    try:
        ip = subnet.rsplit(".", 1)[0] + ".77"
        out = _pk(
            env,
            *("run", "--rm", "--network", name, "--ip", ip, "--dns", "192.0.2.53", "busybox", "sh", "-c"),
            "ip -4 addr show eth0; grep nameserver /etc/resolv.conf",
        )
        assert f"inet {ip}/" in out and out.endswith("nameserver 192.0.2.53\n")
        assert "not in the subnet" in _refused(
            env, "run", "--rm", "--network", name, "--ip", "192.0.2.9", "busybox"
        )
        assert "user defined networks" in _refused(env, "run", "--rm", "--ip", ip, "busybox", "true")
    finally:
        _pk(env, "network", "rm", name)


@pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")
def test_docker_cli_run_flags(env: DockerEnv) -> None:
    env.docker(
        "run",
        "-d",
        "--name",
        "dp",
        "-P",
        "--expose",
        "7073",
        "busybox",
        "nc",
        "-ll",
        "-p",
        "7073",
        "-e",
        "echo",
        "d",
    )
    try:
        port = int(env.docker("port", "dp", "7073/tcp").stdout.splitlines()[0].rsplit(":", 1)[1])

        def answer() -> bytes:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    return s.recv(100)
            except OSError:
                return b""

        wait_for(lambda: answer() == b"d\n", 20, what="docker run -P's port")
        pid = int(env.docker("inspect", "-f", "{{.State.Pid}}", "dp").stdout)
        out = env.docker(
            *(
                "run",
                "--rm",
                "--pid",
                "container:dp",
                "--sysctl",
                "net.ipv4.ip_forward=1",
                "--group-add",
                "daemon",
            ),
            *("--mount", "type=tmpfs,dst=/t,tmpfs-mode=1770", "busybox", "sh", "-c"),
            "readlink /proc/self/ns/pid; cat /proc/sys/net/ipv4/ip_forward; id -G; stat -c %a /t",
        ).stdout.split("\n")
        assert out[:4] == [os.readlink(f"/proc/{pid}/ns/pid"), "1", "0 1", "1770"]
        # (the docker CLI checks --sysctl names itself; an IPC one with the host's IPC is ours to refuse)
        r = env.docker(
            "run", "--rm", "--ipc", "host", "--sysctl", "kernel.shmmax=1", "busybox", "true", check=False
        )
        assert r.returncode == 125 and "--ipc host" in r.stderr
        hc = env.docker(
            "inspect", "-f", "{{.HostConfig.PublishAllPorts}} {{.HostConfig.PidMode}}", "dp"
        ).stdout
        assert hc.split() == ["true"]
        # --ip: IPAMConfig.IPv4Address of the network's endpoint
        name, subnet = unique_network()
        env.docker("network", "create", "--subnet", subnet, name)
        try:
            ip = subnet.rsplit(".", 1)[0] + ".78"
            out = env.docker(
                "run", "--rm", "--network", name, "--ip", ip, "busybox", "ip", "-4", "addr", "show", "eth0"
            )
            assert f"inet {ip}/" in out.stdout
        finally:
            env.docker("network", "rm", name)
    finally:
        env.docker("rm", "-f", "dp")
