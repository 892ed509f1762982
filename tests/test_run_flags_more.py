"""docker's less common run flags in real containers: --uts host, --domainname,
--cgroupns, --cgroup-parent, --oom-score-adj, --oom-kill-disable, --memory-swappiness,
--cpu-period/--cpu-quota, --device-read-bps/--device-write-iops, --device-cgroup-rule,
--link, --mac-address, --annotation, --label-file, and what is discarded with a warning
or refused; through the podkit CLI and the docker CLI.

One podkitd for the module (tests/docker_env.py); few containers, each checking many
flags from inside (the cgroup files a container sees are its own).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from podkit.runtime import spec_host
from tests.docker_env import DOCKER, DockerEnv, docker_env
from tests.helpers import wait_for

pytestmark = pytest.mark.root

V1 = not spec_host.cgroup_v2()
LOOP = "/dev/loop0"


@pytest.fixture(scope="module")
def env(busybox_tarball: Path) -> Iterator[DockerEnv]:
    with docker_env(tarball=busybox_tarball) as e:
        yield e


def _run(env: DockerEnv, *args: str) -> tuple[str, str]:
    r = env.daemon.cli(*args)
    assert r.returncode == 0, f"podkit {' '.join(args)}: {r.returncode} {r.stderr}"
    return r.stdout, r.stderr


def _refused(env: DockerEnv, *args: str) -> str:
    r = env.daemon.cli(*args)
    assert r.returncode == 125, f"podkit {' '.join(args)}: {r.returncode} {r.stdout} {r.stderr}"
    return r.stderr


def _cgroup_dirs(parent: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    if not V1:
        return [root / parent.strip("/")]
    return [d / parent.strip("/") for d in root.iterdir() if (d / parent.strip("/")).is_dir()]


@pytest.mark.skipif(not V1 or not os.path.exists(LOOP), reason="cgroup v1 files and a loop device")
def test_namespaces_cgroups_and_limits(env: DockerEnv, tmp_path: Path) -> None:
    parent = f"/pkt-{secrets.token_hex(4)}"
    labels = tmp_path / "labels"
    labels.write_text("# a comment\nfrom.file=1\n\n")
    loop = os.stat(LOOP).st_rdev
    dev = f"{os.major(loop)}:{os.minor(loop)}"
    script = (
        "hostname; cat /proc/sys/kernel/domainname /proc/self/oom_score_adj; "
        "grep -c ':/pkt-' /proc/self/cgroup; "
        "grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control; "
        "cat /sys/fs/cgroup/memory/memory.swappiness "
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
        "/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device "
        "/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device; "
        f"grep -c '^b {os.major(loop)}:\\* rwm' /sys/fs/cgroup/devices/devices.list"
    )
    try:
        out, err = _run(
            env,
            *("run", "--rm", "--name", "lim", "-h", "box", "--domainname", "example.org"),
            *("--oom-score-adj", "500", "--oom-kill-disable", "-m", "64m", "--memory-swappiness", "10"),
            *("--cgroup-parent", parent, "--cpu-period", "50000", "--cpu-quota", "25000"),
            *("--device-read-bps", f"{LOOP}:1mb", "--device-write-iops", f"{LOOP}:100"),
            *("--device-cgroup-rule", f"b {os.major(loop)}:* rwm", "--kernel-memory", "16m"),
            *("--blkio-weight", "300", "--cpu-count", "2", "--label-file", str(labels)),
            *("--annotation", "io.podkit.test=1", "--stop-timeout", "3", "--cgroupns", "host"),
            *("busybox", "sh", "-c", script),
        )
        lines = out.splitlines()
        assert int(lines.pop(3)) >= 5, out  # each v1 hierarchy's path is under the parent
        assert lines == [
            "box",
            "example.org",
            "500",
            "oom_kill_disable 1",
            "10",
            "50000",
            "25000",
            f"{dev} 1048576",
            f"{dev} 100",
            "1",
        ], out
        assert "WARNING: Specifying a kernel memory limit is deprecated" in err
        assert "WARNING: linux does not support CPU count" in err
        assert ("Weight discarded" in err) != spec_host.blkio_support()["weight"]
    finally:
        # run --rm returns as the removal begins: the container's cgroups go, then the parent's
        wait_for(
            lambda: all(not [c for c in d.iterdir() if c.is_dir()] for d in _cgroup_dirs(parent)),
            20,
            what="the container's cgroups under the parent",
        )
        for d in _cgroup_dirs(parent):
            d.rmdir()

    # the host's UTS namespace, a private cgroup namespace (its cgroups are its roots)
    out, _ = _run(
        env,
        *("run", "--rm", "--uts", "host", "--cgroupns", "private", "busybox", "sh", "-c"),
        "hostname; readlink /proc/self/ns/uts; grep ':memory:' /proc/self/cgroup",
    )
    name, uts, memcg = out.splitlines()
    assert name == os.uname().nodename and uts == os.readlink("/proc/self/ns/uts")
    assert memcg.endswith(":memory:/")
    # the host's network, a UTS namespace of its own for the domainname (the host's is untouched)
    host_domain = Path("/proc/sys/kernel/domainname").read_text()
    out, _ = _run(
        env,
        "run",
        "--rm",
        "--network",
        "host",
        "--domainname",
        "d.org",
        "busybox",
        "cat",
        "/proc/sys/kernel/domainname",
    )
    assert out == "d.org\n" and Path("/proc/sys/kernel/domainname").read_text() == host_domain
    created = env.daemon.cli("create", "--uts", "host", "--oom-kill-disable", "busybox").stdout.strip()
    hc = json.loads(_run(env, "inspect", created)[0])[0]["HostConfig"]
    assert hc["UTSMode"] == "host" and hc["OomKillDisable"] is True and hc["CgroupnsMode"] == "host"
    _run(env, "rm", created)


def test_links_and_mac_address(env: DockerEnv) -> None:
    _run(
        env,
        "run",
        "-d",
        "--name",
        "lk-web",
        "-e",
        "SECRET=s1",
        "--expose",
        "8080",
        "busybox",
        "sleep",
        "1000",
    )
    try:
        web = json.loads(_run(env, "inspect", "lk-web")[0])[0]
        ip = web["NetworkSettings"]["IPAddress"]
        out, _ = _run(
            env,
            *(
                "run",
                "--rm",
                "--name",
                "lk-client",
                "--link",
                "lk-web:db",
                "--mac-address",
                "02:42:ac:11:00:99",
                "--use-api-socket",
            ),
            *("busybox", "sh", "-c"),
            "cat /sys/class/net/eth0/address; grep -w db /etc/hosts; "
            "test -S /var/run/docker.sock && echo sock; env | sort",
        )
        lines = out.splitlines()
        assert lines[0] == "02:42:ac:11:00:99"
        assert lines[1].split() == [ip, "db", web["Id"][:12], "lk-web"]
        assert lines[2] == "sock"  # --use-api-socket: the Docker API's socket
        env_vars = set(lines[3:])
        assert {
            f"DB_PORT=tcp://{ip}:8080",
            f"DB_PORT_8080_TCP_ADDR={ip}",
            "DB_PORT_8080_TCP_PORT=8080",
            "DB_ENV_SECRET=s1",
            "DB_NAME=/lk-client/db",
        } <= env_vars, env_vars
        # a link kept while its container is stopped is refused at start, as docker's
        _run(env, "create", "--name", "lk-later", "--link", "lk-web", "busybox", "true")
        hc = json.loads(_run(env, "inspect", "lk-later")[0])[0]["HostConfig"]
        assert hc["Links"] == ["/lk-web:/lk-later/lk-web"]
        _run(env, "run", "-d", "--name", "lk-sleeper", "--link", "lk-web:db", "busybox", "sleep", "1000")
        _run(env, "stop", "-t", "0", "lk-web")
        r = env.daemon.cli("start", "lk-later")
        assert r.returncode == 1 and "Cannot link to a non running container: /lk-web" in r.stderr
        # restarted (on the next free address): a running linker's /etc/hosts follows, as docker's
        _run(env, "start", "lk-web")
        ip = json.loads(_run(env, "inspect", "lk-web")[0])[0]["NetworkSettings"]["IPAddress"]
        hosts = _run(env, "exec", "lk-sleeper", "grep", "-w", "db", "/etc/hosts")[0]
        assert hosts.split()[:2] == [ip, "db"], (ip, hosts)
        try:
            import docker as docker_py
        except ImportError:
            docker_py = None
        if docker_py is not None:
            # docker-py sends Config.MacAddress (before 1.44 the place; migrated to the
            # endpoint, with dockerd's deprecation warning, from 1.44 on), HostConfig.Links, UTSMode
            client = docker_py.DockerClient(base_url=env.host, version="auto", timeout=60)
            out_b = client.containers.run(
                "busybox",
                ["sh", "-c", "cat /sys/class/net/eth0/address; grep -w db /etc/hosts"],
                remove=True,
                mac_address="02:42:ac:11:00:97",
                links={"lk-web": "db"},
            )
            client.close()
            got = out_b.decode().splitlines()
            assert got[0] == "02:42:ac:11:00:97" and got[1].split()[:2] == [ip, "db"], got
        if DOCKER is not None:
            r = env.docker(
                *("run", "--rm", "--link", "lk-web:db", "--domainname", "d.example"),
                *("--oom-score-adj", "300", "--use-api-socket", "busybox", "sh", "-c"),
                "cat /proc/sys/kernel/domainname /proc/self/oom_score_adj; grep -w db /etc/hosts; "
                "test -S /var/run/docker.sock && echo sock",
            )
            d = r.stdout.splitlines()
            assert d[:2] == ["d.example", "300"] and d[2].split()[:2] == [ip, "db"], r.stdout
            assert d[3] == "sock"
    finally:
        env.daemon.cli("rm", "-f", "lk-web", "lk-later", "lk-sleeper")
    assert "could not get container for nosuch" in _refused(env, "run", "--rm", "--link", "nosuch", "busybox")
    err = _refused(env, "run", "--rm", "--network", "host", "--link", "x", "busybox")
    assert "--link cannot be used with network mode 'host'" in err


def test_refusals(env: DockerEnv) -> None:
    """What podkit cannot honour fails before anything is made, naming the reason."""
    cases = [
        (("--userns", "private"), "no user namespace remapping"),
        (("--gpus", "all"), "no GPU"),
        (("--runtime", "crun"), "runc"),
        (("--uts", "host", "-h", "x"), "conflicting options: hostname and the UTS mode"),
        (("--device-read-bps", "/dev/null:1mb"), "not a block device"),
        (("--disable-content-trust=false",), "content trust is not supported"),
        (("--storage-opt", "size=1G"), "no per-container size quota"),
        (("--mac-address", "01:00:5e:00:00:01"), "multicast"),
    ]
    for flags, message in cases:
        assert message in _refused(env, "run", "--rm", *flags, "busybox", "true"), flags
    assert env.daemon.cli("ps", "-aq").stdout == ""  # nothing was left behind
    # the SDK raises what the daemon discarded as Python warnings
    client = env.daemon.client()
    with pytest.warns(UserWarning, match="kernel memory limit is deprecated"):
        c = client.containers.create("busybox", "true", kernel_memory="16m")
    client.containers.remove(c.id)


def test_health_start_interval(env: DockerEnv) -> None:
    """During the start period the checks run every --health-start-interval: healthy in
    moments although --health-interval is an hour."""
    _run(
        env,
        *("run", "-d", "--name", "hsi", "--health-cmd", "true", "--health-interval", "1h"),
        *("--health-start-period", "60s", "--health-start-interval", "200ms", "busybox", "sleep", "1000"),
    )
    try:

        def status() -> str:
            return _run(env, "inspect", "-f", "{{.State.Health.Status}}", "hsi")[0].strip()

        wait_for(lambda: status() == "healthy", 20, what="the first check, at the start interval")
    finally:
        _run(env, "rm", "-f", "hsi")
