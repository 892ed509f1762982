"""Unit tests of container option parsing and CRI log reading (no daemon needed)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from podkit.containers.logrotate import shift
from podkit.containers.logs import LogReader, format_time, parse_since, parse_time
from podkit.containers.options import (
    CreateOptions,
    parse_port,
    parse_restart,
    parse_signal,
    parse_size,
    parse_ulimit,
    parse_volume,
)
from podkit.errors import InvalidArgument


def test_sizes_and_signals() -> None:
    assert parse_size("64m") == 64 << 20
    assert parse_size("1g") == 1 << 30
    assert parse_size("512") == 512
    assert parse_size("1.5k") == 1536
    with pytest.raises(InvalidArgument, match="'12x'"):
        parse_size("12x")
    assert parse_signal("TERM") == 15
    assert parse_signal("SIGKILL") == 9
    assert parse_signal("2") == 2
    with pytest.raises(InvalidArgument):
        parse_signal("SIGNOPE")


def test_volume_specs(tmp_path: Path) -> None:
    m = parse_volume(f"{tmp_path}:/data:ro")
    assert (m.type, m.source, m.target, m.readonly) == ("bind", str(tmp_path), "/data", True)
    m = parse_volume("cache:/var/cache")
    assert (m.type, m.source, m.readonly) == ("volume", "cache", False)
    assert parse_volume("/anon").type == "volume" and parse_volume("/anon").source == ""
    for bad in ("data:relative", "a:b:c:d", "x:/y:bogus", "../up:/y", "vol:/"):
        with pytest.raises(InvalidArgument):
            parse_volume(bad)


def test_port_specs() -> None:
    assert parse_port("8080:80") == [
        {"host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp"}
    ]
    assert parse_port("127.0.0.1:53:53/udp")[0]["protocol"] == "udp"
    assert len(parse_port("9000-9002:9000-9002")) == 3
    assert parse_port("80")[0]["host_port"] == 0
    for bad in ("99999:80", "a:b", "1.2.3:80:80", "80/icmp", "1-3:1-2"):
        with pytest.raises(InvalidArgument):
            parse_port(bad)


def test_restart_and_ulimit() -> None:
    assert parse_restart("on-failure:3") == {"name": "on-failure", "max_retries": 3}
    assert parse_restart(None)["name"] == "no"
    with pytest.raises(InvalidArgument):
        parse_restart("always:3")
    with pytest.raises(InvalidArgument):
        parse_restart("sometimes")
    assert parse_ulimit("nofile=1024:2048") == ("nofile", 1024, 2048)
    with pytest.raises(InvalidArgument):
        parse_ulimit("nofile=10:5")
    with pytest.raises(InvalidArgument):
        parse_ulimit("bogus=1")


def test_create_options_parse_and_roundtrip(tmp_path: Path) -> None:
    envf = tmp_path / "env"
    envf.write_text("# comment\nA=1\n\nB=two\n")
    o = CreateOptions.parse(
        {
            "image": "busybox",
            "name": "web-1",
            "cmd": ["sh", "-c", "echo hi"],
            "env": ["C=3"],
            "env_file": [str(envf)],
            "volumes": [f"{tmp_path}:/h:ro", "v1:/v"],
            "tmpfs": ["/t:size=1m"],
            "memory": "64m",
            "cpus": "0.5",
            "ulimits": ["nofile=100:200"],
            "restart": "on-failure:2",
            "ports": ["8080:80"],
            "security_opt": ["seccomp=unconfined", "no-new-privileges=false"],
            "cap_add": ["net_admin"],
            "stop_signal": "SIGINT",
            "labels": ["a=b"],
        }
    )
    assert o.env == ["A=1", "B=two", "C=3"]
    assert o.memory == 64 << 20 and o.cpus == 0.5
    assert [m.type for m in o.mounts] == ["bind", "volume", "tmpfs"]
    assert o.seccomp == "unconfined" and o.no_new_privileges is False
    assert o.cap_add == ["CAP_NET_ADMIN"] and o.stop_signal == 2
    back = CreateOptions.from_stored(o.to_dict())
    assert back == o


@pytest.mark.parametrize(
    "body, msg",
    [
        ({}, "image is required"),
        ({"image": "x", "name": "bad name"}, "invalid container name"),
        ({"image": "x", "memory": "1k"}, "minimum memory"),
        ({"image": "x", "volumes": ["/no/such/dir/here:/x"]}, "does not exist"),
        ({"image": "x", "restart": "always", "auto_remove": True}, "--restart and --rm"),
        ({"image": "x", "network": "host", "ports": ["80:80"]}, "port publishing"),
        ({"image": "x", "bogus": 1}, "unknown container option"),
        ({"image": "x", "workdir": "rel"}, "must be absolute"),
        ({"image": "x", "volumes": ["/tmp:/x", "/var:/x"]}, "duplicate mount point"),
    ],
)
def test_create_options_refusals(body: dict, msg: str) -> None:
    with pytest.raises(InvalidArgument, match=msg):
        CreateOptions.parse(body)


def test_time_parsing() -> None:
    t = parse_time("2026-11-27T01:02:03.123456789Z")
    assert abs(t - parse_time("2026-11-27T02:02:03.123456789+01:00")) < 1e-6
    assert parse_time(format_time(t)) == pytest.approx(t, abs=1e-6)
    assert parse_since("10m", now=1000.0) == pytest.approx(400.0)
    assert parse_since("1700000000") == 1700000000.0
    with pytest.raises(InvalidArgument):
        parse_since("yesterday-ish")


def _write_log(p: Path, lines: list[tuple[float, str, str, str]]) -> None:
    with open(p, "a") as f:
        for t, s, tag, text in lines:
            f.write(f"{format_time(t)} {s} {tag} {text}\n")


def test_log_reader_filters_and_partials(tmp_path: Path) -> None:
    p = tmp_path / "ctr.log"
    _write_log(
        p,
        [
            (100, "stdout", "F", "one"),
            (101, "stderr", "F", "err1"),
            (102, "stdout", "P", "par"),
            (102.5, "stdout", "F", "tial"),
            (103, "stdout", "F", "three"),
        ],
    )
    r = LogReader(p)
    assert [e.data for e in r.read()] == [b"one\n", b"err1\n", b"partial\n", b"three\n"]
    assert [e.data for e in r.read(streams=("stderr",))] == [b"err1\n"]
    assert [e.data for e in r.read(tail=2)] == [b"partial\n", b"three\n"]
    assert [e.data for e in r.read(since=101.5, until=102.9)] == [b"partial\n"]
    assert LogReader(tmp_path / "none").read() == []


def test_log_follow_handles_replaced_file(tmp_path: Path) -> None:
    """conmon's --log-size-max swaps in a new file: the follower reopens it."""
    p = tmp_path / "ctr.log"
    _write_log(p, [(100, "stdout", "F", "a")])
    state = {"running": True}

    async def main() -> list[bytes]:
        got: list[bytes] = []
        agen = LogReader(p).follow(running=lambda: state["running"], poll=0.01)
        async for e in agen:
            got.append(e.data)
            if e.data == b"a\n":
                tmp = tmp_path / "ctr.log.tmp"
                _write_log(tmp, [(101, "stdout", "F", "b")])
                tmp.replace(p)
            if e.data == b"b\n":
                _write_log(p, [(102, "stderr", "F", "c")])
                state["running"] = False
        return got

    assert asyncio.run(asyncio.wait_for(main(), 10)) == [b"a\n", b"b\n", b"c\n"]


def test_log_opts_parse() -> None:
    o = CreateOptions.parse({"image": "x", "log_opts": ["max-size=10m", "max-file=3"]})
    assert (o.log_size_max, o.log_max_file, o.log_driver) == (10 << 20, 3, None)
    o = CreateOptions.parse({"image": "x", "log_driver": "json-file", "log_opts": {"max-size": "1k"}})
    assert (o.log_size_max, o.log_max_file, o.log_driver) == (1024, None, "json-file")
    o = CreateOptions.parse({"image": "x", "log_driver": "local"})  # docker's local defaults
    assert (o.log_size_max, o.log_max_file) == (20 << 20, 5)
    assert CreateOptions.from_stored(o.to_dict()) == o
    for body, msg in (
        ({"log_driver": "syslog"}, "log driver 'syslog' is not supported"),
        ({"log_opts": ["labels=a"]}, "unknown log opt 'labels'"),
        ({"log_opts": ["max-size"]}, "want KEY=VALUE"),
        ({"log_opts": ["max-size=lots"]}, "max-size"),
        ({"log_opts": ["max-size=0"]}, "more than 0"),
        ({"log_opts": ["max-file=0"]}, "max-file"),
        ({"log_opts": {"compress": "true"}}, "compress is not supported"),
        ({"log_opts": "max-size=1m"}, "log_opts must be a list"),
    ):
        with pytest.raises(InvalidArgument, match=msg):
            CreateOptions.parse({"image": "x", **body})


def test_log_shift_keeps_max_file_and_fills_a_crash_gap(tmp_path: Path) -> None:
    p = tmp_path / "ctr.log"
    for n in range(5):
        p.write_text(f"gen{n}")
        assert shift(p, 3)
    names = sorted(x.name for x in tmp_path.iterdir())
    assert names == ["ctr.log.1", "ctr.log.2"]  # + the ctr.log conmon makes: three files
    assert [(tmp_path / n).read_text() for n in names] == ["gen4", "gen3"]
    assert not shift(p, 3)  # nothing to rotate
    # a crash after the first rename of a shift (.1 moved to .2, ctr.log not yet moved)
    (tmp_path / "ctr.log.2").unlink()
    os.rename(tmp_path / "ctr.log.1", tmp_path / "ctr.log.2")
    p.write_text("gen5")
    assert shift(p, 3)  # fills the free .1: gen4 is not dropped
    assert (tmp_path / "ctr.log.1").read_text() == "gen5" and (tmp_path / "ctr.log.2").read_text() == "gen4"


def test_log_reader_reads_and_follows_rotated_files(tmp_path: Path) -> None:
    p = tmp_path / "ctr.log"
    _write_log(tmp_path / "ctr.log.2", [(100, "stdout", "F", "a"), (101, "stdout", "P", "b1")])
    _write_log(tmp_path / "ctr.log.1", [(102, "stdout", "F", "b2")])  # a P-run across files
    _write_log(p, [(103, "stderr", "F", "c")])
    (tmp_path / "ctr.log.tmp").write_text("not a log file of ours\n")
    r = LogReader(p)
    assert r.files() == [f"{p}.2", f"{p}.1", str(p)]
    assert [e.data for e in r.read()] == [b"a\n", b"b1b2\n", b"c\n"]
    assert [e.data for e in r.read(tail=1)] == [b"c\n"]
    state = {"running": True}

    async def main() -> list[bytes]:
        got: list[bytes] = []
        async for e in r.follow(running=lambda: state["running"], poll=0.01):
            got.append(e.data)
            if e.data == b"c\n":
                # a rotation as logrotate.py does it; conmon writes on into the renamed
                # file until it has made the new one
                assert shift(p, 3)
                _write_log(tmp_path / "ctr.log.1", [(104, "stdout", "F", "d")])
                _write_log(p, [(105, "stdout", "F", "e")])
            if e.data == b"e\n":
                state["running"] = False
        return got

    assert asyncio.run(asyncio.wait_for(main(), 10)) == [b"a\n", b"b1b2\n", b"c\n", b"d\n", b"e\n"]


def test_stats_parsing_cgroup_v1_and_v2() -> None:
    """The shapes `runc events --stats` prints on a v1 host (this one) and a v2 host (fixture)."""
    from podkit.containers.runtime_driver import parse_runc_stats

    v1 = {
        "cpu": {"usage": {"total": 123456789}},
        "memory": {
            "usage": {"usage": 10 << 20, "limit": 64 << 20, "max": 12 << 20},
            "raw": {"total_inactive_file": 2 << 20, "cache": 3 << 20},
        },
        "pids": {"current": 3},
        "blkio": {
            "ioServiceBytesRecursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "Write", "value": 8192},
                {"major": 8, "minor": 0, "op": "Total", "value": 12288},
            ]
        },
    }
    s = parse_runc_stats(v1)
    assert (s["cpu_usage"], s["memory_usage"], s["memory_limit"], s["pids"]) == (
        123456789,
        8 << 20,
        64 << 20,
        3,
    )
    assert (s["block_read"], s["block_write"]) == (4096, 8192)
    v2 = {
        "cpu": {"usage": {"total": 5}},
        "memory": {
            "usage": {"usage": 4 << 20, "limit": 2**64 - 1},
            "raw": {"inactive_file": 1 << 20, "anon": 3 << 20},
        },
        "pids": {"current": 1},
        "blkio": {
            "ioServiceBytesRecursive": [
                {"major": 254, "minor": 0, "op": "read", "value": 10},
                {"major": 254, "minor": 0, "op": "write", "value": 20},
            ]
        },
    }
    s = parse_runc_stats(v2)
    assert (s["memory_usage"], s["memory_limit"], s["block_read"], s["block_write"]) == (3 << 20, 0, 10, 20)
    assert parse_runc_stats({})["memory_usage"] == 0


def test_restart_policy_decisions() -> None:
    from podkit.containers.restart import human_duration, should_restart

    on_failure_2 = {"name": "on-failure", "max_retries": 2}
    assert should_restart(on_failure_2, 1, 0, False) and should_restart(on_failure_2, 1, 1, False)
    assert not should_restart(on_failure_2, 1, 2, False)  # retries used up
    assert not should_restart(on_failure_2, 0, 0, False)  # success is not a failure
    assert should_restart({"name": "on-failure", "max_retries": 0}, 3, 99, False)  # 0: no limit
    for name in ("always", "unless-stopped"):
        assert should_restart({"name": name}, 0, 5, False)
        assert not should_restart({"name": name}, 0, 5, True)  # the user stopped it
    assert not should_restart({"name": "no"}, 1, 0, False)
    assert human_duration(0.2) == "Less than a second"
    assert human_duration(5) == "5 seconds" and human_duration(61) == "1 minute"
    assert human_duration(7200) == "2 hours"


def test_wrong_json_types_are_refused_cleanly() -> None:
    """Every field with every wrong JSON type: InvalidArgument or a sane value, never a crash
    (and never an int taken for a file descriptor by open() or os.path.exists())."""
    import dataclasses

    bad = [
        1,
        -1,
        1.5,
        "x",
        True,
        [],
        [1],
        {},
        {"a": 1},
        None,
        [{"a": 1}],
        [[1]],
        ["x"],
        {"type": 1, "target": 2},
    ]
    fields = [f.name for f in dataclasses.fields(CreateOptions)] + [
        "volumes",
        "tmpfs",
        "env_file",
        "security_opt",
        "restart_policy",
    ]
    for name in fields:
        for v in bad:
            try:
                o = CreateOptions.parse({"image": "busybox", name: v})
            except InvalidArgument:
                continue
            assert isinstance(o.image, str) and (o.pod_id is None or isinstance(o.pod_id, str))
            assert all(isinstance(m.source, str) for m in o.mounts)


def test_stats_from_the_runtimes_cgroup_reader() -> None:
    from podkit.containers.runtime_driver import from_cgroup_stats

    raw = {
        "cpu": {"usage_ns": 7, "user_ns": 3, "system_ns": 4},
        "memory": {"usage": 9, "working_set": 5, "limit": None, "max_usage": 11},
        "pids": {"current": 2, "limit": None},
        "blkio": {"read_bytes": 1, "write_bytes": 2},
    }
    assert from_cgroup_stats(raw) == {
        "cpu_usage": 7,
        "memory_usage": 5,
        "memory_limit": 0,
        "memory_max_usage": 11,
        "pids": 2,
        "block_read": 1,
        "block_write": 2,
    }


def test_every_option_has_a_parser() -> None:
    """The parse table names each field of CreateOptions (a new option without a parser
    would be refused as unknown, or silently keep its default)."""
    import dataclasses

    from podkit.containers.options import KNOWN_KEYS

    # warnings: what parse tells the client it discarded, not an option
    assert {f.name for f in dataclasses.fields(CreateOptions)} - {"warnings"} <= KNOWN_KEYS
    extras = {"volumes", "tmpfs", "env_file", "security_opt", "restart_policy", "detach_keys"}
    assert extras <= KNOWN_KEYS


@pytest.mark.parametrize(
    "body, msg",
    [
        ({"env": "A=1"}, "env must be a list"),
        ({"labels": "a=b"}, "labels must be a list"),
        ({"cap_add": "NET_ADMIN"}, "cap_add must be a list"),
        ({"dns": "1.1.1.1"}, "dns must be a list"),
        ({"cpus": float("nan")}, "out of range"),
        ({"memory": "9" * 400}, "too large"),
        ({"ulimits": [["nofile", 1]]}, "invalid ulimit"),
        ({"ports": [{"host_port": 80}]}, "invalid port mapping"),
        ({"restart": {"name": "on-failure", "max_retries": "x"}}, "invalid restart policy"),
        ({"seccomp_profile": [1]}, "must be a JSON object"),
        ({"cmd": "sh -c 'unclosed"}, "invalid cmd"),
    ],
)
def test_wrong_types_are_refused_where_they_are_checked(body: dict, msg: str) -> None:
    with pytest.raises(InvalidArgument, match=msg):
        CreateOptions.parse({"image": "busybox", **body})


def test_a_bug_in_a_parser_is_not_reported_as_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the checks raise InvalidArgument: an exception of any other kind is a bug and
    reaches the daemon's 500 handler (with its traceback) as it is."""
    from podkit.containers import option_table

    def broken(o: CreateOptions, body: object) -> None:
        raise KeyError("a bug")

    table = tuple((keys, broken if keys == ("user",) else p) for keys, p in option_table.TABLE)
    monkeypatch.setattr(option_table, "TABLE", table)
    with pytest.raises(KeyError):
        CreateOptions.parse({"image": "busybox"})


def test_env_object_is_kept_with_env_files(tmp_path: Path) -> None:
    envf = tmp_path / "env"
    envf.write_text("A=1\n")
    o = CreateOptions.parse({"image": "busybox", "env": {"B": "2"}, "env_file": [str(envf)]})
    assert o.env == ["A=1", "B=2"]


def test_a_bare_env_key_takes_nothing_from_the_daemons_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The CLI resolves `-e KEY` from the client's environment; over the raw API a
    # bare KEY must not read the daemon's (its credentials, paths, NOTIFY_SOCKET).
    monkeypatch.setenv("PODKIT_TEST_DAEMON_SECRET", "s3cret")
    o = CreateOptions.parse({"image": "busybox", "env": ["PODKIT_TEST_DAEMON_SECRET", "A=1"]})
    assert o.env == ["A=1"]


def test_mount_flag() -> None:
    """docker's --mount syntax: keys, aliases, per-type options, clear refusals."""
    from podkit.containers.parsers import parse_mount_flag

    m = parse_mount_flag("type=bind,src=/tmp,dst=/b,readonly,bind-propagation=rshared")
    assert (m.type, m.source, m.target, m.readonly, m.options) == ("bind", "/tmp", "/b", True, ["rshared"])
    m = parse_mount_flag("source=data,target=/d,volume-nocopy,ro=false")
    assert (m.type, m.source, m.readonly, m.options) == ("volume", "data", False, ["nocopy"])
    assert parse_mount_flag("type=volume,dst=/anon").source == ""
    m = parse_mount_flag("type=tmpfs,destination=/t,tmpfs-size=1m,tmpfs-mode=1700")
    assert (m.source, m.options) == ("tmpfs", [f"size={1 << 20}", "mode=1700"])
    for bad, msg in (
        ("type=bind,dst=/x", "absolute source"),
        ("type=nfs,dst=/x", "not bind, volume or tmpfs"),
        ("type=volume,src=v", "target"),
        ("type=volume,src=v,dst=/x,bogus=1", "unexpected key 'bogus'"),
        ("type=tmpfs,src=x,dst=/x", "takes no source"),
        ("type=volume,src=v,dst=/x,bind-propagation=shared", "does not apply"),
        ("type=volume,src=v,dst=/x,volume-opt=type=nfs", "takes no options"),
        ("type=tmpfs,dst=/x,tmpfs-mode=abc", "octal"),
        ("type=bind,src=/tmp,dst=/x,bind-propagation=weird", "bind-propagation"),
        ("type=bind,src=/tmp,dst=/x,readonly=maybe", "true or false"),
    ):
        with pytest.raises(InvalidArgument, match=msg):
            parse_mount_flag(bad)
    # through the body: --mount strings go in "mounts", beside -v strings
    o = CreateOptions.parse({"image": "x", "mounts": ["type=tmpfs,dst=/t", "/tmp:/h:ro"]})
    assert [(m.type, m.target) for m in o.mounts] == [("tmpfs", "/t"), ("bind", "/h")]


@pytest.mark.parametrize(
    "body, msg",
    [
        ({"sysctls": ["kernel.hostname=x"]}, "only namespaced sysctls"),
        ({"sysctls": ["vm.swappiness=1"]}, "only namespaced sysctls"),
        ({"sysctls": ["net.ipv4.ip_forward=1"], "network": "host"}, "--network host"),
        ({"sysctls": ["kernel.shmmax=1"], "ipc": "host"}, "--ipc host"),
        ({"sysctls": ["noequals"]}, "KEY=VALUE"),
        ({"pid": "bogus"}, "invalid --pid"),
        ({"ipc": "nothing"}, "invalid --ipc"),
        ({"pid": "host", "pod": "p"}, "--pod"),
        ({"sysctls": ["net.ipv4.ip_forward=1"], "pod": "p"}, "pod create --sysctl"),
        ({"expose": ["80-70"]}, "invalid --expose"),
        ({"expose": ["80/icmp"]}, "invalid --expose"),
        ({"volumes_from": ["c:rx"]}, "invalid --volumes-from"),
        ({"pull": "sometimes"}, "invalid --pull"),
        ({"platform": "linux/s390x"}, "not this host's"),
        ({"ip": "10.1.2.3"}, "user defined networks only"),
        ({"ip": "10.1.2", "network": "mynet"}, "invalid --ip"),
        ({"group_add": ["bad name"]}, "supplemental group"),
        ({"cpuset_cpus": "0-4096"}, "not available"),
        ({"cpuset_cpus": "3-1"}, "low to high"),
        ({"memory": "64m", "memory_swap": "32m"}, "larger than the memory limit"),
        ({"memory": "64m", "memory_reservation": "128m"}, "memory reservation"),
    ],
)
def test_run_flag_refusals(body: dict, msg: str) -> None:
    with pytest.raises(InvalidArgument, match=msg):
        CreateOptions.parse({"image": "x", **body})


def test_run_flags_parse() -> None:
    o = CreateOptions.parse(
        {
            "image": "x",
            "sysctls": ["net.ipv4.ip_forward=1", "kernel.shmmax=65536", "fs.mqueue.msg_max=20"],
            "pid": "container:web",
            "ipc": "shareable",
            "expose": ["7000-7001", "53/udp"],
            "publish_all": True,
            "group_add": ["wheel", "1234", 5],
            "memory": "64m",
            "memory_swap": "-1",
            "memory_reservation": "32m",
            "cpuset_cpus": "0",
            "pull": "never",
            "network": "mynet",
            "ip": "10.9.0.7",
        }
    )
    assert o.sysctls["kernel.shmmax"] == "65536" and o.pid == "container:web" and o.ipc == "shareable"
    assert o.expose == ["7000/tcp", "7001/tcp", "53/udp"] and o.publish_all
    assert o.group_add == ["wheel", 1234, 5] and o.memory_swap == -1 and o.memory_reservation == 32 << 20
    assert (o.pull, o.ip, o.cpuset_cpus) == ("never", "10.9.0.7", "0")
    assert CreateOptions.from_stored(o.to_dict()) == o


@pytest.mark.parametrize(
    "body, msg",
    [
        ({"uts": "private"}, "invalid --uts"),
        ({"uts": "host", "domainname": "d.org"}, "UTS mode"),
        ({"cgroupns": "shared"}, "invalid --cgroupns"),
        ({"domainname": "d.org", "pod": "p"}, "--domainname cannot be combined with --pod"),
        ({"userns": "keep-id"}, "no user namespace remapping"),
        ({"cgroup_parent": "../etc"}, "invalid --cgroup-parent"),
        ({"cgroup_parent": "a b"}, "invalid --cgroup-parent"),
        ({"cgroup_parent": "/x", "pod": "p"}, "--cgroup-parent cannot be combined with --pod"),
        ({"healthcheck": {"test": "true", "start_interval": "5ms"}}, "start interval"),
        ({"links": ["bad name"]}, "invalid --link"),
        ({"links": ["web"], "network": "none"}, "--link cannot be used"),
        ({"mac_address": "02:42:ac:11:00"}, "invalid --mac-address"),
        ({"mac_address": "02:42:ac:11:00:02", "network": "host"}, "--mac-address and network mode"),
        ({"blkio_weight": 5}, "out of range 10..1000"),
        ({"device_read_bps": ["/dev/null"]}, "DEVICE_PATH:VALUE"),
        ({"device_read_bps": ["/nonexistent:1m"]}, "No such file"),
        ({"device_write_iops": ["/dev/null:10"]}, "not a block device"),
        ({"memory_swappiness": 101}, "out of range 0..100"),
        ({"kernel_memory": "lots"}, "kernel memory"),
        ({"device_cgroup_rules": ["c 1:3 rwx"]}, "device cgroup rule"),
        ({"device_cgroup_rules": ["c 1:3 rrw"]}, "device cgroup rule"),
        ({"gpus": "all"}, "no GPU"),
        ({"ip6": "2001:db8::1"}, "IPv4 only"),
        ({"storage_opt": ["size=1G"]}, "size quota"),
        ({"cpu_rt_runtime": 950000}, "real-time"),
        ({"io_maxiops": 5}, "Windows only"),
        ({"runtime": "kata"}, "runc"),
        ({"isolation": "hyperv"}, "only supports 'default'"),
        ({"volume_driver": "nfs"}, "only 'local'"),
    ],
)
def test_run_flags_refused(body: dict[str, object], msg: str) -> None:
    with pytest.raises(InvalidArgument, match=msg):
        CreateOptions.parse({"image": "busybox", **body})


def test_run_flags_parsed_and_discarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's forms are taken; a limit the host's cgroups cannot set is discarded with
    docker's warning (and none is stored)."""
    from podkit.runtime import spec_host

    monkeypatch.setattr(
        spec_host, "blkio_support", lambda: dict.fromkeys(("weight", "weight_device", "throttle"), False)
    )
    monkeypatch.setattr(spec_host, "oom_kill_disable_support", lambda: False)
    monkeypatch.setattr(spec_host, "swappiness_support", lambda: True)
    block = next((d for d in ("/dev/loop0", "/dev/vda", "/dev/sda") if os.path.exists(d)), None)
    o = CreateOptions.parse(
        {
            "image": "b",
            "links": ["/web:/me/db", "cache"],
            "cgroup_parent": "mine/sub/",
            "mac_address": "02:42:AC:11:00:02",
            "blkio_weight": 300,
            "oom_kill_disable": True,
            "memory_swappiness": 0,
            "cpu_percent": 50,
            "device_cgroup_rules": ["a  *:*  rwm"],
            **({"device_read_bps": [f"{block}:1mb"]} if block else {}),
        }
    )
    assert o.links == ["web:db", "cache:cache"] and o.cgroup_parent == "/mine/sub"
    assert o.mac_address == "02:42:ac:11:00:02" and o.memory_swappiness == 0
    assert o.blkio_weight is None and not o.oom_kill_disable and o.device_read_bps == []
    assert o.device_cgroup_rules == ["a *:* rwm"]
    text = " ".join(o.warnings)
    assert "Weight discarded" in text and "OomKillDisable discarded" in text and "CPU percent" in text
    if block:
        assert "--device-read-bps discarded" in text
    assert "warnings" not in o.to_dict() and CreateOptions.from_stored(o.to_dict()).warnings == []
    hc = CreateOptions.parse({"image": "b", "healthcheck": {"test": "true", "start_interval": "2s"}})
    assert hc.healthcheck is not None and hc.healthcheck["start_interval"] == 2.0


def test_run_flags_in_the_spec() -> None:
    """Block I/O throttles and weights, the OOM and swappiness settings, extra device
    rules and the domainname (a sysctl: runc 1.1 has no spec domainname) in config.json."""
    from podkit.runtime import spec as S

    res = S.Resources(
        blkio_weight=300,
        blkio_weight_device=[(7, 0, 200)],
        throttle={"throttleReadBpsDevice": [(7, 0, 1 << 20)]},
        oom_kill_disable=True,
        memory_swappiness=10,
    )
    so = S.SpecOptions(
        rootfs="/tmp",
        args=["true"],
        hostname="h",
        domainname="example.org",
        resources=res,
        device_rules=[{"allow": True, "type": "b", "major": 7, "access": "rwm"}],
    )
    spec = S.build_spec(so)
    r = spec["linux"]["resources"]
    assert r["blockIO"] == {
        "weight": 300,
        "weightDevice": [{"major": 7, "minor": 0, "weight": 200}],
        "throttleReadBpsDevice": [{"major": 7, "minor": 0, "rate": 1 << 20}],
    }
    assert r["memory"] == {"disableOOMKiller": True, "swappiness": 10}
    assert {"allow": True, "type": "b", "major": 7, "access": "rwm"} in r["devices"]
    assert spec["linux"]["sysctl"]["kernel.domainname"] == "example.org"
    so.namespaces = {**so.namespaces, "uts": "host"}
    with pytest.raises(InvalidArgument, match="own UTS namespace"):
        S.build_spec(so)
