"""Pure spec building: capabilities, masks, seccomp, namespaces, resources, users, clamping."""

from __future__ import annotations

import json
import os
import resource
import signal
from pathlib import Path
from typing import Any

import pytest

from podkit.errors import CannotExecute, CommandNotFound, InvalidArgument, NotFound
from podkit.runtime import seccomp, spec, spec_host, users
from podkit.runtime.spec import Device, Resources, SpecOptions, Ulimit, build_spec


def build(**kw: Any) -> dict[str, Any]:
    kw.setdefault("rootfs", "/tmp/rootfs")
    kw.setdefault("args", ["sh"])
    return build_spec(SpecOptions(**kw))


def rules(s: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [r for r in s["linux"]["seccomp"]["syscalls"] if name in r["names"]]


def test_defaults_are_docker_like() -> None:
    s = build(hostname="box", env=["A=1"])
    caps = s["process"]["capabilities"]
    assert sorted(caps["bounding"]) == sorted(spec.DEFAULT_CAPS)
    assert caps["effective"] == caps["bounding"] == caps["permitted"]
    assert "ambient" not in caps
    assert s["process"]["noNewPrivileges"] is True
    assert s["process"]["env"][0].startswith("PATH=")
    assert "A=1" in s["process"]["env"]
    assert s["hostname"] == "box"
    assert set(s["linux"]["maskedPaths"]) >= {
        "/proc/kcore",
        "/proc/keys",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    }
    assert "/proc/sys" in s["linux"]["readonlyPaths"]
    dests = [m["destination"] for m in s["mounts"]]
    for d in ("/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"):
        assert d in dests
    sysfs = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert "ro" in sysfs["options"]
    shm = next(m for m in s["mounts"] if m["destination"] == "/dev/shm")
    assert f"size={64 * 1024 * 1024}" in shm["options"]
    ns = {n["type"] for n in s["linux"]["namespaces"]}
    assert ns == {"pid", "network", "ipc", "uts", "mount"}
    devrules = s["linux"]["resources"]["devices"]
    assert devrules[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in devrules
    assert s["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    json.dumps(s)  # serialisable as config.json


def test_cap_add_drop_and_all() -> None:
    s = build(cap_add=["sys_admin", "CAP_NET_ADMIN"], cap_drop=["net_raw", "MKNOD"])
    caps = s["process"]["capabilities"]["bounding"]
    assert "CAP_SYS_ADMIN" in caps and "CAP_NET_ADMIN" in caps
    assert "CAP_NET_RAW" not in caps and "CAP_MKNOD" not in caps
    s = build(cap_drop=["ALL"], cap_add=["chown"])
    assert s["process"]["capabilities"]["bounding"] == ["CAP_CHOWN"]
    with pytest.raises(InvalidArgument, match="unknown capability"):
        build(cap_add=["CAP_MAKE_COFFEE"])


def test_privileged() -> None:
    s = build(privileged=True)
    bnd = spec._bounding_set()
    expected = [c for i, c in enumerate(spec.ALL_CAPS) if bnd is None or bnd >> i & 1]
    assert s["process"]["capabilities"]["bounding"] == expected  # all we hold ourselves
    assert "seccomp" not in s["linux"]
    assert "maskedPaths" not in s["linux"] and "readonlyPaths" not in s["linux"]
    assert s["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert any(d["path"] == "/dev/null" for d in s["linux"]["devices"]) or s["linux"]["devices"]
    sysfs = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sysfs["options"]


def test_seccomp_default_blocks_namespaces_unless_sys_admin() -> None:
    s = build()
    allowed = s["linux"]["seccomp"]["syscalls"][0]["names"]
    for blocked in (
        "mount",
        "unshare",
        "setns",
        "keyctl",
        "add_key",
        "reboot",
        "init_module",
        "kexec_load",
        "pivot_root",
    ):
        assert blocked not in allowed
    syscalls = s["linux"]["seccomp"]["syscalls"]
    for ok in ("read", "write", "execve", "clone", "futex", "exit_group"):
        assert any(ok in r["names"] and r["action"] == "SCMP_ACT_ALLOW" for r in syscalls)
    (clone,) = rules(s, "clone")
    assert clone["args"][0]["op"] == "SCMP_CMP_MASKED_EQ" and clone["args"][0]["valueTwo"] == 0
    assert clone["args"][0]["value"] & 0x10000000  # CLONE_NEWUSER is in the mask
    (clone3,) = rules(s, "clone3")
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == 38
    assert {r["args"][0]["value"] for r in rules(s, "personality")} >= {0, 8, 0xFFFFFFFF}
    (sock,) = rules(s, "socket")
    assert sock["args"] == [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]  # no AF_VSOCK

    s = build(cap_add=["SYS_ADMIN"])
    allowed = s["linux"]["seccomp"]["syscalls"][0]["names"]
    assert "mount" in allowed and "unshare" in allowed and "setns" in allowed
    assert "keyctl" not in allowed
    syscalls = s["linux"]["seccomp"]["syscalls"]
    assert any(r["names"] == ["clone", "clone3"] and "args" not in r for r in syscalls)


def test_seccomp_unconfined_and_files(tmp_path: Path) -> None:
    assert "seccomp" not in build(seccomp="unconfined")["linux"]
    docker_style = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
            {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": None},
        ],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["futuristic"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["chmod"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}},
        ],
    }
    p = tmp_path / "p.json"
    p.write_text(json.dumps(docker_style))
    prof = build(seccomp=str(p))["linux"]["seccomp"]
    names = [n for r in prof["syscalls"] for n in r["names"]]
    assert "read" in names and "mount" not in names and "chmod" not in names
    assert "ptrace" in names and "futuristic" not in names  # minKernel against this kernel
    assert "includes" not in json.dumps(prof)
    if os.uname().machine == "x86_64":
        assert prof["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    prof = build(seccomp=str(p), cap_add=["SYS_ADMIN"])["linux"]["seccomp"]
    assert "mount" in [n for r in prof["syscalls"] for n in r["names"]]
    with pytest.raises(InvalidArgument, match="does-not-exist"):
        build(seccomp=str(tmp_path / "does-not-exist.json"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        build(seccomp=str(tmp_path / "bad.json"))


def test_namespaces_join_and_host(tmp_path: Path) -> None:
    netns = tmp_path / "netns"
    netns.touch()
    s = build(
        hostname="h",
        namespaces={
            "pid": "host",
            "network": str(netns),
            "ipc": "/proc/self/ns/ipc",
            "uts": "/proc/self/ns/uts",
            "mount": None,
        },
    )
    ns = {n["type"]: n.get("path") for n in s["linux"]["namespaces"]}
    assert "pid" not in ns
    assert ns["network"] == str(netns) and ns["ipc"] == "/proc/self/ns/ipc" and ns["mount"] is None
    assert "hostname" not in s  # a joined UTS namespace keeps its own hostname
    with pytest.raises(InvalidArgument, match="does not exist"):
        build(namespaces={"network": "/proc/does-not-exist/ns/net", "mount": None})
    with pytest.raises(InvalidArgument, match="unknown namespace"):
        build(namespaces={"time": None, "mount": None})
    s = build(shm_path="/dev/shm-of-pod")
    shm = [m for m in s["mounts"] if m["destination"] == "/dev/shm"]
    assert shm == [
        {
            "destination": "/dev/shm",
            "type": "bind",
            "source": "/dev/shm-of-pod",
            "options": ["rbind", "nosuid", "noexec", "nodev"],
        }
    ]


def test_user_mounts_override_defaults_and_init() -> None:
    s = build(
        mounts=[
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["size=1m"]},
            {"destination": "/data", "type": "bind", "source": "/srv", "options": ["rbind", "ro"]},
        ],
        init=True,
        args=["sleep", "1"],
    )
    shm = [m for m in s["mounts"] if m["destination"] == "/dev/shm"]
    assert len(shm) == 1 and shm[0]["options"] == ["size=1m"]
    assert s["mounts"][-1]["source"] == spec.INIT_PATH
    assert s["process"]["args"] == [spec.INIT_DEST, "--", "sleep", "1"]


def test_resources() -> None:
    r = Resources(
        memory=64 * 1024 * 1024,
        memory_swap=128 * 1024 * 1024,
        cpus=1.5,
        cpu_shares=512,
        pids_limit=20,
        blkio_weight=300,
    )
    s = build(resources=r, cgroups_path="/podkit/default/c1")
    res = s["linux"]["resources"]
    assert res["memory"] == {"limit": 64 * 1024 * 1024, "swap": 128 * 1024 * 1024}
    assert res["cpu"] == {"quota": 150000, "period": 100000, "shares": 512}
    assert res["pids"] == {"limit": 20}
    assert res["blockIO"] == {"weight": 300}
    assert s["linux"]["cgroupsPath"] == "/podkit/default/c1"
    with pytest.raises(InvalidArgument, match="6MB"):
        build(resources=Resources(memory=1024))
    with pytest.raises(InvalidArgument, match="larger than"):
        build(resources=Resources(memory=64 << 20, memory_swap=32 << 20))
    assert build(resources=Resources(pids_limit=0))["linux"]["resources"]["pids"] == {"limit": -1}
    res = build(
        resources=Resources(
            cpu_quota=50000,
            cpu_period=200000,
            cpuset_cpus="0",
            cpuset_mems="0",
            oom_kill_disable=True,
            memory_swappiness=10,
        )
    )["linux"]["resources"]
    assert res["cpu"] == {"quota": 50000, "period": 200000, "cpus": "0", "mems": "0"}
    assert res["memory"] == {"disableOOMKiller": True, "swappiness": 10}
    for bad in (
        Resources(cpus=1, cpu_quota=1000),
        Resources(cpus=10_000),
        Resources(cpu_quota=10),
        Resources(cpuset_cpus="0;rm -rf"),
        Resources(memory_swappiness=101),
        Resources(cpu_period=10),
    ):
        with pytest.raises(InvalidArgument):
            build(resources=bad)


def test_swap_without_swap_accounting(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mocked: a host without memory.memsw.* (this one has it).
    monkeypatch.setattr(spec_host, "swap_accounting", lambda: False)
    res = build(resources=Resources(memory=64 << 20, memory_swap=128 << 20))["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20}


def test_devices(tmp_path: Path) -> None:
    d = Device.parse("/dev/null:/dev/mynull:rw")
    assert (d.path, d.container_path, d.permissions) == ("/dev/null", "/dev/mynull", "rw")
    assert Device.parse("/dev/zero:r").container_path == "/dev/zero"
    s = build(devices=[Device.parse("/dev/null:/dev/mynull:rw")])
    (node,) = [n for n in s["linux"]["devices"] if n["path"] == "/dev/mynull"]
    assert (node["type"], node["major"], node["minor"]) == ("c", 1, 3)
    rule = {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}
    assert rule in s["linux"]["resources"]["devices"]
    for bad in ("", "relative", "/dev/null:/x:rwz", "a:b:c:d"):
        with pytest.raises(InvalidArgument):
            Device.parse(bad)
    with pytest.raises(InvalidArgument, match="does-not-exist"):
        build(devices=[Device.parse("/dev/does-not-exist")])
    (tmp_path / "f").touch()
    with pytest.raises(InvalidArgument, match="not a character or block device"):
        build(devices=[Device(str(tmp_path / "f"), "/dev/f")])


def test_clamping_without_cap_sys_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    # Mocked: whether we hold CAP_SYS_RESOURCE (this host lacks it; both branches checked).
    monkeypatch.setattr(spec_host, "has_sys_resource", lambda: False)
    own = spec._own_oom_score_adj()
    s = build(oom_score_adj=-999)
    assert s["process"]["oomScoreAdj"] == max(-999, own)
    assert build(oom_score_adj=500)["process"]["oomScoreAdj"] == 500
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    s = build(resources=Resources(ulimits=[Ulimit.parse("nofile=10000000:20000000")]))
    (rl,) = s["process"]["rlimits"]
    assert rl["type"] == "RLIMIT_NOFILE"
    if hard != resource.RLIM_INFINITY:
        assert rl["hard"] == hard and rl["soft"] == hard
    s = build(resources=Resources(ulimits=[Ulimit.parse("nproc=100:200")]))
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NPROC", "soft": 100, "hard": 200}]
    monkeypatch.setattr(spec_host, "has_sys_resource", lambda: True)
    assert build(oom_score_adj=-999)["process"]["oomScoreAdj"] == -999
    with pytest.raises(InvalidArgument):
        build(oom_score_adj=-5000)


def test_ulimit_parse() -> None:
    assert Ulimit.parse("nofile=1024:2048") == Ulimit("nofile", 1024, 2048)
    assert Ulimit.parse("core=-1").hard == resource.RLIM_INFINITY
    for bad in ("nofile", "bogus=1", "nofile=a", "nofile=10:5"):
        with pytest.raises(InvalidArgument):
            Ulimit.parse(bad)


def test_bad_input() -> None:
    with pytest.raises(InvalidArgument, match="no command"):
        build(args=[])
    with pytest.raises(InvalidArgument, match="absolute"):
        build(cwd="relative")
    with pytest.raises(InvalidArgument, match="NAME=VALUE"):
        build(env=["NOEQUALS"])
    with pytest.raises(InvalidArgument, match="mount namespace"):
        build(namespaces={"pid": None})
    with pytest.raises(InvalidArgument, match="NUL"):
        build(args=["echo", "a\0b"])
    with pytest.raises(InvalidArgument, match="NAME=VALUE"):
        build(env=["=x"])
    with pytest.raises(InvalidArgument, match="64 bytes"):
        build(hostname="h" * 65)
    for bad in (
        {"destination": "relative", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/a/../etc", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/data", "type": "bind"},
    ):
        with pytest.raises(InvalidArgument):
            build(mounts=[bad])
    with pytest.raises(InvalidArgument, match="user or group id"):
        build(user=spec.User(uid=-1))


# ----------------------------------------------------------------- users


@pytest.fixture
def urootfs(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
        "bob:x:1001:1001::/home/bob:/bin/sh\n"
    )
    (r / "etc" / "group").write_text(
        "root:x:0:\nwheel:x:10:alice\naudio:x:29:alice,bob\nalice:x:1000:\nstaff:x:50:\n"
    )
    return r


def test_users_resolve(urootfs: Path) -> None:
    u = users.resolve(urootfs, "")
    assert (u.uid, u.gid, u.name, u.home) == (0, 0, "root", "/root")
    u = users.resolve(urootfs, "alice")
    assert (u.uid, u.gid, sorted(u.additional_gids), u.home) == (1000, 1000, [10, 29], "/home/alice")
    u = users.resolve(urootfs, "1001")
    assert (u.uid, u.gid, u.additional_gids, u.name) == (1001, 1001, [29], "bob")
    u = users.resolve(urootfs, "4242")  # unknown uid: allowed, gid 0
    assert (u.uid, u.gid, u.additional_gids, u.home) == (4242, 0, [], "/")
    u = users.resolve(urootfs, "4242:77")
    assert (u.uid, u.gid) == (4242, 77)
    u = users.resolve(urootfs, "alice:staff")
    assert (u.uid, u.gid) == (1000, 50) and 29 in u.additional_gids
    u = users.resolve(urootfs, "bob", group_add=["staff", "123"])
    assert u.additional_gids == [29, 50, 123]
    assert users.resolve(urootfs, "alice").to_spec().additional_gids == [10, 29]
    with pytest.raises(NotFound, match="unable to find user mallory"):
        users.resolve(urootfs, "mallory")
    with pytest.raises(NotFound, match="unable to find group nogroup"):
        users.resolve(urootfs, "alice:nogroup")
    with pytest.raises(InvalidArgument):
        users.resolve(urootfs, ":10")
    with pytest.raises(InvalidArgument):
        users.resolve(urootfs, "alice:")


def test_users_never_leave_the_rootfs(tmp_path: Path, urootfs: Path) -> None:
    host_etc = tmp_path / "hostetc"
    host_etc.mkdir()
    (host_etc / "passwd").write_text("mallory:x:666:666::/:/bin/sh\n")
    (urootfs / "etc" / "passwd").unlink()
    # Absolute and ../ links resolve inside the rootfs, never to host_etc.
    (urootfs / "etc" / "passwd").symlink_to(str(host_etc / "passwd"))
    with pytest.raises(NotFound):
        users.resolve(urootfs, "mallory")
    (urootfs / "etc" / "passwd").unlink()
    (urootfs / "etc" / "passwd").symlink_to("../../../../../../../" + str(host_etc / "passwd"))
    with pytest.raises(NotFound):
        users.resolve(urootfs, "mallory")
    # A link within the rootfs is followed.
    (urootfs / "etc" / "passwd").unlink()
    (urootfs / "etc" / "real-passwd").write_text("carol:x:7:7::/c:/bin/sh\n")
    (urootfs / "etc" / "passwd").symlink_to("/etc/real-passwd")
    assert users.resolve(urootfs, "carol").uid == 7
    # No passwd at all: numeric ids work, names don't.
    (urootfs / "etc" / "passwd").unlink()
    assert users.resolve(urootfs, "12:34").gid == 34
    with pytest.raises(NotFound):
        users.resolve(urootfs, "carol")


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the x32 ABI is x86_64's")
def test_seccomp_default_has_x32_only_where_the_kernel_runs_it() -> None:
    # Independent of the probe: the kernel's build config says whether x32 is there.
    import gzip

    try:
        config = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    except OSError:
        pytest.skip("no /proc/config.gz to check the probe against")
    built = "CONFIG_X86_X32_ABI=y" in config
    if not built:
        assert seccomp._kernel_runs_x32() is False
    arches = seccomp.default_profile(spec.DEFAULT_CAPS)["architectures"]
    assert arches[:2] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert ("SCMP_ARCH_X32" in arches) == seccomp._kernel_runs_x32()


def test_seccomp_profile_is_stable_json() -> None:
    a = seccomp.default_profile(spec.DEFAULT_CAPS)
    b = json.loads(json.dumps(a))
    assert a == b


def test_default_namespaces_per_cgroup_mode() -> None:
    assert "cgroup" not in spec.default_namespaces("hybrid")
    assert "cgroup" not in spec.default_namespaces("v1")
    v2 = spec.default_namespaces("v2")
    assert v2["cgroup"] is None and v2["network"] is None
    s = build(namespaces=v2)
    assert {"type": "cgroup"} in s["linux"]["namespaces"]


def test_sysctls_only_namespaced() -> None:
    s = build(sysctls={"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000000", "fs.mqueue.msg_max": "20"})
    assert s["linux"]["sysctl"]["net.ipv4.ip_forward"] == "1"
    with pytest.raises(InvalidArgument, match="not namespaced"):
        build(sysctls={"kernel.panic": "1"})
    with pytest.raises(InvalidArgument, match="own network namespace"):
        build(
            sysctls={"net.ipv4.ip_forward": "1"}, namespaces={"network": "host", "mount": None, "ipc": None}
        )


def test_parse_signal() -> None:
    from podkit.runtime.runc import classify_start_error, parse_signal

    assert [parse_signal(s) for s in ("KILL", "sigterm", "15", 9, "HUP")] == [9, 15, 15, 9, 1]
    assert parse_signal("RTMIN+1") == signal.SIGRTMIN + 1
    for bad in ("NOPE", 0, "99", ""):
        with pytest.raises(InvalidArgument):
            parse_signal(bad)
    # runc's start errors, mapped to docker's 127 / 126
    assert isinstance(classify_start_error('exec: "x": executable file not found in $PATH'), CommandNotFound)
    assert isinstance(
        classify_start_error('unable to start container process: exec: "/etc": permission denied'),
        CannotExecute,
    )
    assert isinstance(
        classify_start_error('chdir to cwd ("/nope") set in config.json failed: no such file or directory'),
        CannotExecute,
    )
    other = classify_start_error("invalid rootfs: stat /x: no such file or directory")
    assert type(other).__name__ == "Internal"


def test_runtime_auto_choice(tmp_path: Path) -> None:
    from podkit.runtime.engine import Runtime, choose_runtime

    assert choose_runtime("hybrid") == "runc"  # crun refuses hybrid cgroups
    rt = Runtime(tmp_path / "rt", runtime="auto")
    if rt.cgroups.mode == "hybrid":
        assert rt.oci.name == "runc"
    with pytest.raises(Exception, match="not found"):
        _ = Runtime(tmp_path / "rt2", runtime="no-such-runtime").oci


def test_conmon_protocol_helpers(tmp_path: Path) -> None:
    from podkit.runtime.conmon import read_exit_file, read_sync_messages, sync_value

    raw = b'{"data": 4242}\nnot json\n{"data": -1, "message": "runc: boom"}\n{"pid": 7}\n'
    msgs = read_sync_messages(raw)
    assert [sync_value(m) for m in msgs] == [4242, -1, 7]
    assert msgs[1]["message"] == "runc: boom"
    f = tmp_path / "exit"
    assert read_exit_file(f) is None
    f.write_text("")
    assert read_exit_file(f) is None  # conmon is still writing it
    f.write_text("137")
    code, finished = read_exit_file(f)
    assert code == 137 and finished == f.stat().st_mtime
    f.write_text("garbage")
    assert read_exit_file(f) is None


def test_no_shm_for_ipc_none() -> None:
    from podkit.runtime.spec import SpecOptions, build_spec

    dests = [m["destination"] for m in build_spec(SpecOptions(rootfs="/r", args=["sh"], shm=False))["mounts"]]
    assert "/dev/shm" not in dests and "/dev/mqueue" in dests
    dests = [m["destination"] for m in build_spec(SpecOptions(rootfs="/r", args=["sh"]))["mounts"]]
    assert "/dev/shm" in dests
