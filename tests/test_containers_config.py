"""What `run` options become inside the container, network modes, listing and pruning."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from podkit import errors
from tests.fixtures.network import iptables_lines
from tests.helpers import Daemon, served, wait_for
from tests.test_containers import remove_all_and_check


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    yield daemon
    remove_all_and_check(daemon)


def _out(d: Daemon, *args: str) -> str:
    r = d.cli("run", "--rm", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_process_options(d: Daemon) -> None:
    assert (
        _out(
            d,
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-h",
            "hostx",
            "-e",
            "A=b",
            "busybox",
            "sh",
            "-c",
            "id -u; pwd; hostname; echo $A; cat /etc/hostname",
        )
        == "65534\n/tmp\nhostx\nb\nhostx\n"
    )
    assert _out(d, "--user", "1234:5678", "busybox", "sh", "-c", "id -u; id -g") == "1234\n5678\n"
    r = d.cli("run", "--rm", "--user", "nosuchuser", "busybox", "true")
    assert r.returncode == 125 and "unable to find user" in r.stderr
    r = d.cli("run", "--rm", "--read-only", "busybox", "touch", "/x")
    assert r.returncode != 0 and "Read-only" in r.stderr
    assert (
        _out(d, "--read-only", "--tmpfs", "/scratch", "busybox", "sh", "-c", "touch /scratch/ok && echo ok")
        == "ok\n"
    )
    # capabilities: the default set has CHOWN; --cap-drop takes it away
    assert _out(d, "busybox", "sh", "-c", "chown 1 /tmp && echo yes") == "yes\n"
    r = d.cli("run", "--rm", "--cap-drop", "chown", "busybox", "chown", "1", "/tmp")
    assert r.returncode != 0
    assert "CapEff" in _out(d, "busybox", "grep", "CapEff", "/proc/self/status")
    assert _out(d, "--entrypoint", "echo", "busybox", "via", "entrypoint") == "via entrypoint\n"
    assert _out(
        d,
        "--pids-limit",
        "50",
        "--memory",
        "32m",
        "--cpus",
        "0.5",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory/memory.limit_in_bytes "
        "2>/dev/null || cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/memory.max",
    ).split() == ["50", str(32 << 20)]
    assert _out(d, "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '").startswith(
        "/run/podkit-init"
    )
    assert _out(d, "--ulimit", "nofile=100:200", "busybox", "sh", "-c", "ulimit -n") == "100\n"
    assert (
        _out(
            d,
            "--device",
            "/dev/null:/dev/mynull",
            "busybox",
            "sh",
            "-c",
            "echo x > /dev/mynull && echo dev-ok",
        )
        == "dev-ok\n"
    )
    default_caps = _out(d, "busybox", "grep", "CapEff", "/proc/self/status")
    assert _out(d, "--privileged", "busybox", "grep", "CapEff", "/proc/self/status") != default_caps
    # stop uses --stop-signal (else the image's StopSignal, else SIGTERM)
    c = d.client()
    c.containers.run(
        "busybox",
        ["sh", "-c", "trap 'exit 42' USR1; echo ready; while true; do sleep 0.1; done"],
        name="sig",
        stop_signal="SIGUSR1",
    )
    wait_for(lambda: c.containers.logs("sig") == "ready\n", what="the trap to be set")
    c.containers.stop("sig", timeout=10)
    assert c.containers.get("sig").exit_code == 42


def test_network_modes_and_ports(d: Daemon) -> None:
    c = d.client()
    out = _out(d, "busybox", "sh", "-c", "ip -o -4 addr show eth0 | wc -l; cat /etc/resolv.conf")
    assert out.startswith("1\n")
    assert "nameserver 127." not in out
    assert _out(d, "--network", "none", "busybox", "sh", "-c", "ls /sys/class/net") == "lo\n"
    assert socket.gethostname() in _out(d, "--network", "host", "busybox", "hostname")
    c.containers.run(
        "busybox",
        ["sh", "-c", "echo hello-from-ctr > /tmp/i; exec httpd -f -p 8000 -h /tmp"],
        name="srv",
        ports=["127.0.0.1::8000"],
    )
    port = c.containers.port("srv")
    hp = port[0]["host_port"]
    assert hp > 0 and d.cli("port", "srv", check=True).stdout.strip() == f"8000/tcp -> 127.0.0.1:{hp}"

    assert "hello-from-ctr" in wait_for(
        lambda: served(hp, "hello"),
        timeout=30,
        what=lambda: (
            f"the published port {hp} ({c.containers.get('srv').status}, "
            f"log {c.containers.logs('srv')!r}, "
            f"nat rules {iptables_lines(f'--dport {hp} ', f'--dports {hp}')})"
        ),
    )
    # another container joins srv's network namespace
    assert "hello-from-ctr" in _out(
        d, "--network", "container:srv", "busybox", "wget", "-qO-", "http://127.0.0.1:8000/i"
    )
    r = d.cli("run", "--rm", "--network", "no-such-net", "busybox", "true")
    assert r.returncode == 125
    c.containers.remove("srv", force=True)


def test_listing_filters_inspect_prune(d: Daemon) -> None:
    c = d.client()
    a = c.containers.run("busybox", ["sleep", "300"], name="a", labels={"tier": "web"}, init=True)
    b = c.containers.create("busybox", ["true"], name="b")
    e = c.containers.run("busybox", ["sh", "-c", "exit 2"], name="e")
    assert c.containers.wait("e") == 2
    assert [x.name for x in c.containers.list()] == ["a"]
    assert {x.name for x in c.containers.list(all=True)} == {"a", "b", "e"}
    assert [x.name for x in c.containers.list(filters={"status": "exited"})] == ["e"]
    assert [x.name for x in c.containers.list(all=True, filters={"exited": "2"})] == ["e"]
    assert [x.name for x in c.containers.list(filters={"label": "tier=web"})] == ["a"]
    assert d.cli("ps", "-q", check=True).stdout.split() == [a.id[:12]]
    rows = d.cli("ps", "-a", "--format", "json", check=True).stdout.splitlines()  # a line each
    assert {json.loads(r)["Names"] for r in rows} == {"a", "b", "e"}
    table = d.cli("ps", "-a", check=True).stdout
    assert "Exited (2)" in table and "Created" in table and "Up " in table
    with pytest.raises(errors.InvalidArgument):
        c.containers.list(filters={"bogus": "1"})
    assert c.containers.get(a.id[:8]).name == "a"  # unique id prefix
    both = json.loads(d.cli("inspect", "a", "busybox", check=True).stdout)
    assert both[0]["Name"] == "a" and "Config" in both[1]  # docker's shape for each kind
    assert set(c.containers.prune()) == {b.id, e.id}
    assert [x.name for x in c.containers.list(all=True)] == ["a"]
    # the pods layer's hooks: an infra container is hidden from a plain listing
    inf = c.containers.run("busybox", ["sleep", "300"], name="inf", infra=True, pod_id="p" * 64, init=True)
    assert [x.name for x in c.containers.list()] == ["a"]
    assert [x.name for x in c.containers.list(filters={"infra": "true"})] == ["inf"]
    assert [x.name for x in c.containers.list(filters={"pod": "ppp"})] == ["inf"]
    assert d.cli("ps", "-q", "--filter", "pod=" + "p" * 12, check=True).stdout.split() == [inf.id[:12]]
    c.containers.remove("inf", force=True)
    c.containers.remove("a", force=True)


def test_seccomp_profile_file_kept_from_create(d: Daemon, workdir) -> None:  # noqa: ANN001
    prof = workdir / "no-mkdir.json"
    prof.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
            }
        )
    )
    d.cli(
        "create",
        "--name",
        "sc",
        "--security-opt",
        f"seccomp={prof}",
        "busybox",
        "sh",
        "-c",
        "mkdir /tmp/x",
        check=True,
    )
    prof.unlink()  # the profile was taken at create time
    r = d.cli("start", "-a", "sc")
    assert r.returncode != 0 and "not permitted" in r.stderr.lower()
    assert (
        _out(d, "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c", "mkdir /tmp/x && echo made")
        == "made\n"
    )


def test_image_in_use_is_not_removed(d: Daemon) -> None:
    d.restart()  # the hook must be in place from the daemon's start on
    d.cli("create", "--name", "holder", "busybox", "true", check=True)
    r = d.cli("rmi", "busybox")
    assert r.returncode != 0 and "holder" in r.stderr
    d.cli("rm", "holder", check=True)


def test_an_ended_container_shows_no_address(d: Daemon) -> None:
    """Its IP and netns are released at exit and may be another container's by then."""
    c = d.client()
    c.containers.run("busybox", ["true"], detach=False, name="ended")
    raw = c._t.get("/containers/ended")
    assert raw["state"] == "exited"
    assert raw["network"] == {"mode": "bridge"}, raw["network"]
    c.containers.remove("ended")
