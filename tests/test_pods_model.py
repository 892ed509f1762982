"""Pod pieces that need no daemon: spec validation, hosts/resolv files, namespace pins."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from podkit.errors import InvalidArgument
from podkit.pods import files, sandbox
from podkit.pods.model import DNSConfig, Pod, PodSpec


def test_spec_defaults_and_round_trip() -> None:
    s = PodSpec.from_dict(
        {
            "name": "p1",
            "ports": ["127.0.0.1:8080:80", "9000:9000/udp"],
            "share": ["pid", "net", "ipc", "uts"],
            "labels": {"a": 1},
        }
    )
    assert s.share == ["net", "ipc", "uts", "pid"]
    assert [(p.host_ip, p.host_port, p.container_port, p.protocol) for p in s.ports] == [
        ("127.0.0.1", 8080, 80, "tcp"),
        ("", 9000, 9000, "udp"),
    ]
    assert s.labels == {"a": "1"}
    pod = Pod(id="x" * 64, namespace="default", spec=s, created=1.0)
    back = Pod.from_record(pod.to_record())
    assert back == pod


@pytest.mark.parametrize(
    "body,needle",
    [
        ({"name": "bad name"}, "invalid pod name"),
        ({"share": ["net", "mnt"]}, "cannot share mnt"),
        ({"share": ["ipc"], "ports": ["80:80"]}, "shared network"),
        ({"ports": ["80:80", "80:81"]}, "published twice"),
        ({"ports": ["99999:80"]}, "1-65535"),
        ({"network": "host", "ports": ["80:80"]}, "host network"),
        ({"add_hosts": ["nocolon"]}, "NAME:IP"),
        ({"add_hosts": ["db:not-an-ip"]}, "not an IP address"),
        ({"memory": 1024}, "at least 6MB"),
        ({"hostname": "-bad"}, "invalid hostname"),
        ({"frob": 1}, "unknown pod field"),
        ({"shm_size": 10}, "at least 64k"),
        ({"hostname": 5}, "'hostname' must be a string"),
        ({"host_pid": "yes"}, "must be true or false"),
        ({"share": "net"}, "must be a list"),
        ({"attempt": 1.5}, "must be an integer"),
        ({"dns": {"servers": "10.0.0.1"}}, "dns.servers must be a list"),
        ({"dns": {"servers": ["dns.example"]}}, "not an IP address"),
    ],
)
def test_spec_rejects_bad_input(body: dict, needle: str) -> None:
    with pytest.raises(InvalidArgument) as ei:
        PodSpec.from_dict(body)
    assert needle in ei.value.message


def test_resolv_conf_drops_loopback_and_applies_overrides(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text(
        "nameserver 127.0.0.53\nnameserver ::1\nnameserver 192.0.2.1\n"
        "search corp.example\noptions ndots:1 rotate\n"
    )
    text = files.resolv_conf(DNSConfig(), host)
    assert "127.0.0.53" not in text and "::1" not in text
    assert "nameserver 192.0.2.1" in text and "search corp.example" in text
    text = files.resolv_conf(
        DNSConfig(servers=["10.0.0.53"], searches=["pod.local"], options=["ndots:5"]), host
    )
    assert "nameserver 10.0.0.53" in text and "192.0.2.1" not in text
    assert "search pod.local" in text
    assert "options rotate ndots:5" in text  # the host's ndots replaced, rotate kept


def test_hosts_file_names_the_pod_and_its_containers() -> None:
    text = files.hosts_file("web", ["10.200.0.5/24"], ["web-srv", "web-side"], ["db:10.1.1.1"])
    assert "127.0.0.1\tlocalhost" in text
    assert "10.200.0.5\tweb web-srv web-side" in text
    assert "10.1.1.1\tdb" in text
    # Without an IP the names still resolve, to loopback.
    assert "127.0.1.1\tweb" in files.hosts_file("web", [], [], [])


def test_write_in_place_keeps_the_inode(tmp_path: Path) -> None:
    p = tmp_path / "hosts"
    files.write_in_place(p, "a much longer first version\n")
    ino = os.stat(p).st_ino
    files.write_in_place(p, "short\n")
    assert os.stat(p).st_ino == ino and p.read_text() == "short\n"


@pytest.mark.root
def test_pinned_ipc_uts_and_shm(workdir: Path) -> None:
    d = workdir / "pod"
    (d / "ns").mkdir(parents=True)
    sandbox.pin_namespaces({"ipc": d / "ns/ipc", "uts": d / "ns/uts"}, "podhost")
    sandbox.mount_shm(d / "shm", 1 << 20)
    try:
        assert sandbox.is_pinned(d / "ns/ipc", "ipc") and sandbox.is_pinned(d / "ns/uts", "uts")
        assert not sandbox.is_pinned(d / "ns/uts", "ipc")
        # The uts namespace carries the pod's hostname; ours is untouched.
        out = subprocess.run(
            ["nsenter", f"--uts={d / 'ns/uts'}", "hostname"], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert out == "podhost" and os.uname().nodename != "podhost"
        # A distinct ipc namespace from the host's.
        assert os.stat(d / "ns/ipc").st_ino != os.stat("/proc/self/ns/ipc").st_ino
        assert os.path.ismount(d / "shm")
    finally:
        sandbox.release(d)
    assert not os.path.ismount(d / "shm")
    assert not sandbox.is_pinned(d / "ns/ipc", "ipc")
    assert str(d) not in Path("/proc/self/mountinfo").read_text()


def test_pod_processes_on_fake_cgroup_trees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cgroup v2 (one tree) and v1 (per controller) layouts, on files: no host needed."""
    from podkit.pods import usage

    v2 = tmp_path / "v2"
    (v2 / "podkit/pods/p1/c1").mkdir(parents=True)
    (v2 / "podkit/pods/p1/c2").mkdir(parents=True)
    (v2 / "cgroup.controllers").write_text("cpu memory pids\n")
    (v2 / "podkit/pods/p1/cgroup.procs").write_text("")
    (v2 / "podkit/pods/p1/c1/cgroup.procs").write_text("11\n12\n")
    (v2 / "podkit/pods/p1/c2/cgroup.procs").write_text("21\n")
    monkeypatch.setattr(usage, "CGROUP", v2)
    assert usage.is_v2()
    assert usage.procs_under("/podkit/pods/p1") == [11, 12, 21]
    assert usage.procs_under("/podkit/pods/p1/c2") == [21]
    assert usage.procs_under("") == []

    v1 = tmp_path / "v1"
    (v1 / "pids/podkit/pods/p1/c1").mkdir(parents=True)
    (v1 / "pids/podkit/pods/p1/c1/cgroup.procs").write_text("7\n")
    monkeypatch.setattr(usage, "CGROUP", v1)
    assert not usage.is_v2()
    assert usage.procs_under("/podkit/pods/p1") == [7]

    text_v1 = "12:pids:/podkit/pods/p1/c1\n4:memory:/podkit/pods/p1/c1\n1:name=systemd:/x\n0::/\n"
    assert usage.cgroup_from_text(text_v1, v2=False) == "/podkit/pods/p1/c1"
    assert usage.cgroup_from_text("0::/podkit/pods/p1/c2\n", v2=True) == "/podkit/pods/p1/c2"
    prev: dict[str, tuple[float, float]] = {}
    assert usage.cpu_percent(prev, "k", 1.0, 1_000_000_000) == 0.0  # first sample: no rate yet
    assert usage.cpu_percent(prev, "k", 2.0, 1_500_000_000) == pytest.approx(50.0)
