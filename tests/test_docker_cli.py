"""The docker CLI (a real docker 28 client) against podkitd's Docker Engine API.

One daemon and one local registry for the module; each test names its own objects
and removes them. Skipped where the docker CLI is not installed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import rawhttp
from tests.docker_env import DOCKER, DockerEnv, Term, docker_env
from tests.fixtures.registry import push_busybox
from tests.helpers import unique_network, wait_for

pytestmark = [pytest.mark.root, pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")]


@pytest.fixture(scope="module")
def env(busybox_tarball: Path) -> Iterator[DockerEnv]:
    with docker_env(with_registry=True, tarball=busybox_tarball) as e:
        yield e


def _ver(v: str) -> tuple[int, int]:
    major, minor = v.split(".")
    return int(major), int(minor)


def test_version_and_info_speak_api_151(env: DockerEnv) -> None:
    v = json.loads(env.docker("version", "--format", "{{json .}}").stdout)
    assert v["Server"]["ApiVersion"] == "1.51"
    assert v["Server"]["MinAPIVersion"] == "1.24"
    # docker 28 speaks its own default (1.50 for 28.2), not a version negotiated down
    want = min(_ver(v["Client"]["DefaultAPIVersion"]), (1, 51))
    assert _ver(v["Client"]["ApiVersion"]) == want and want >= (1, 50)
    info = env.docker("info", "--format", "{{.OSType}} {{.Images}}").stdout.split()
    assert info[0] == "linux" and int(info[1]) >= 1
    # a version past podkit's is refused with dockerd's message
    r = env.docker("version", api_version="1.52", check=False)
    assert r.returncode != 0
    assert "client version 1.52 is too new. Maximum supported API version is 1.51" in r.stderr


def test_run_prints_output_and_returns_the_exit_code(env: DockerEnv) -> None:
    r = env.docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert r.returncode == 3
    assert r.stdout == "out\n"
    assert "err" in r.stderr
    # --rm left nothing behind
    assert env.docker("ps", "-aq").stdout.strip() == ""


def test_run_with_stdin_sees_its_end(env: DockerEnv) -> None:
    # docker run -i: the CLI half-closes the connection at stdin's end; cat must see
    # EOF and exit, and its output must still come back.
    r = env.docker("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done", input=b"line1\nline2\n")
    assert r.stdout == "line1\nline2\ndone\n"


def test_ps_inspect_logs_stop_rm_and_podkit_sees_the_same(env: DockerEnv) -> None:
    cid = env.docker(
        "run", "-d", "--name", "web1", "-l", "app=t", "busybox", "sh", "-c", "echo ready; exec sleep 300"
    ).stdout.strip()
    try:
        ps = env.docker("ps", "--filter", "label=app=t", "--format", "{{.ID}} {{.Names}} {{.Status}}").stdout
        assert ps.startswith(cid[:12] + " web1 Up")
        podkit = {c.name: c.id for c in env.daemon.client().containers.list()}
        assert podkit.get("web1") == cid
        wait_for(lambda: "ready" in env.docker("logs", "web1").stdout, 20, what="the log line")
        state = json.loads(env.docker("inspect", "web1").stdout)[0]
        assert state["State"]["Running"] is True and state["Name"] == "/web1"
        assert state["Config"]["Labels"]["app"] == "t"
        assert state["NetworkSettings"]["IPAddress"]
        assert env.docker("inspect", "-f", "{{.State.Pid}}", "web1").stdout.strip() != "0"
        env.docker("stop", "-t", "1", "web1")
        assert env.docker("inspect", "-f", "{{.State.Status}}", "web1").stdout.strip() == "exited"
    finally:
        env.docker("rm", "-f", "web1", check=False)
    assert "web1" not in env.docker("ps", "-a", "--format", "{{.Names}}").stdout
    r = env.docker("inspect", "web1", check=False)
    assert r.returncode != 0 and "No such" in r.stderr


def test_logs_follow_ends_when_the_container_does(env: DockerEnv) -> None:
    env.docker(
        "run",
        "-d",
        "--name",
        "follow1",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo n$i; sleep 0.2; done",
    )
    try:
        r = env.docker("logs", "-f", "follow1", timeout=30)
        assert r.stdout.split() == ["n1", "n2", "n3"]
        assert env.docker("logs", "--tail", "1", "follow1").stdout == "n3\n"
        ts = env.docker("logs", "-t", "follow1").stdout.splitlines()[0]
        assert ts.endswith(" n1") and ts[:4].isdigit()
    finally:
        env.docker("rm", "-f", "follow1", check=False)


def test_exec_output_exit_code_and_stdin(env: DockerEnv) -> None:
    env.docker("run", "-d", "--name", "ex1", "busybox", "sleep", "300")
    try:
        assert env.docker("exec", "ex1", "echo", "hi").stdout == "hi\n"
        assert env.docker("exec", "ex1", "sh", "-c", "exit 5", check=False).returncode == 5
        r = env.docker("exec", "-i", "ex1", "sh", "-c", "cat; echo end", input=b"from-stdin\n")
        assert r.stdout == "from-stdin\nend\n"
        assert (
            env.docker("exec", "-w", "/tmp", "-e", "X=1", "ex1", "sh", "-c", "echo $X $(pwd)").stdout
            == "1 /tmp\n"
        )
        top = env.docker("top", "ex1").stdout
        assert "sleep" in top
    finally:
        env.docker("rm", "-f", "ex1", check=False)


def test_exec_it_and_run_it_on_a_terminal(env: DockerEnv) -> None:
    env.docker("run", "-d", "--name", "tty1", "busybox", "sleep", "300")
    try:
        t = Term(env, "exec", "-it", "tty1", "sh", rows=30, cols=99)
        t.expect(b"# ")
        t.send(b"stty size; echo $((6*7))\r")
        t.expect(b"30 99")
        t.expect(b"42")
        t.send(b"exit 4\r")
        assert t.wait() == 4
        r = Term(env, "run", "--rm", "-it", "busybox", "sh", "-c", "tty; echo got-$((2+3))")
        r.expect(b"got-5")
        assert r.wait() == 0
        assert b"/dev/pts" in r.seen
    finally:
        env.docker("rm", "-f", "tty1", check=False)


def test_attach_sends_stdin_and_ends_with_the_container(env: DockerEnv) -> None:
    env.docker("run", "-d", "-i", "--name", "att1", "busybox", "sh", "-c", "read x; echo got-$x")
    try:
        r = env.docker("attach", "att1", input=b"hello\n", timeout=30)
        assert "got-hello" in r.stdout
        assert env.docker("wait", "att1").stdout.strip() == "0"
    finally:
        env.docker("rm", "-f", "att1", check=False)


def test_cp_both_ways(env: DockerEnv, tmp_path: Path) -> None:
    env.docker("run", "-d", "--name", "cp1", "busybox", "sleep", "300")
    try:
        src = tmp_path / "in.txt"
        src.write_text("payload\n")
        env.docker("cp", str(src), "cp1:/tmp/")
        assert env.docker("exec", "cp1", "cat", "/tmp/in.txt").stdout == "payload\n"
        env.docker("exec", "cp1", "sh", "-c", "mkdir -p /data/sub && echo deep > /data/sub/f")
        env.docker("cp", "cp1:/data", str(tmp_path / "out"))
        assert (tmp_path / "out" / "sub" / "f").read_text() == "deep\n"
        r = env.docker("cp", "cp1:/nonexistent", str(tmp_path / "x"), check=False)
        assert r.returncode != 0 and "no such" in r.stderr.lower()
    finally:
        env.docker("rm", "-f", "cp1", check=False)


def test_stats_no_stream_draws_a_row(env: DockerEnv) -> None:
    env.docker("run", "-d", "--name", "st1", "busybox", "sleep", "300")
    try:
        out = env.docker(
            "stats", "--no-stream", "--format", "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", "st1"
        ).stdout.strip()
        name, cpu, mem, pids = out.split("|")
        assert name == "st1"
        assert cpu.endswith("%")
        assert "/" in mem and not mem.startswith("0B /")
        assert int(pids) >= 1
    finally:
        env.docker("rm", "-f", "st1", check=False)


def test_pull_push_tag_images_save_load_rmi(env: DockerEnv, tmp_path: Path) -> None:
    assert env.registry is not None
    ref = push_busybox(env.registry, tmp_path, "library/bbpull:1")
    out = env.docker("pull", ref).stdout
    assert "Downloaded newer image" in out or "Image is up to date" in out
    images = env.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert ref in images
    assert json.loads(env.docker("image", "inspect", ref).stdout)[0]["RootFS"]["Layers"]
    assert env.docker("history", "-q", ref).stdout.strip()
    pushed = f"{env.registry.host}/team/retag:2"
    env.docker("tag", ref, pushed)
    env.docker("push", pushed)
    status, _, _ = env.registry.api(
        "/v2/team/retag/manifests/2",
        headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json,"
            " application/vnd.docker.distribution.manifest.v2+json"
        },
    )
    assert status == 200
    archive = tmp_path / "saved.tar"
    env.docker("save", "-o", str(archive), pushed)
    env.docker("rmi", pushed)
    assert pushed not in env.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    loaded = env.docker("load", "-i", str(archive)).stdout
    assert "Loaded image" in loaded
    assert pushed in env.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    env.docker("rmi", pushed, ref)
    r = env.docker("pull", f"{env.registry.host}/library/absent:1", check=False)
    assert r.returncode != 0


def test_networks_volumes_and_system_df(env: DockerEnv) -> None:
    subnet = unique_network()[1]
    env.docker("network", "create", "--subnet", subnet, "--label", "t=1", "dnet1")
    env.docker("volume", "create", "dvol1")
    try:
        nets = env.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert {"bridge", "host", "none", "dnet1"} <= set(nets)
        env.docker(
            "run",
            "-d",
            "--name",
            "nv1",
            "--network",
            "dnet1",
            "-v",
            "dvol1:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f; exec sleep 300",
        )
        ip = env.docker(
            "inspect", "-f", '{{(index .NetworkSettings.Networks "dnet1").IPAddress}}', "nv1"
        ).stdout.strip()
        assert ip.startswith(subnet.rsplit(".", 1)[0] + ".")
        members = json.loads(env.docker("network", "inspect", "dnet1").stdout)[0]["Containers"]
        assert [m["Name"] for m in members.values()] == ["nv1"]
        r = env.docker("network", "rm", "dnet1", check=False)
        assert r.returncode != 0  # in use
        vol = json.loads(env.docker("volume", "inspect", "dvol1").stdout)[0]
        assert vol["Driver"] == "local" and vol["Name"] == "dvol1"
        wait_for(lambda: Path(vol["Mountpoint"], "f").exists(), 20, what="the volume's file")
        df = env.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}}").stdout.splitlines()
        counts = dict(line.rsplit(" ", 1) for line in df)
        assert (
            int(counts["Images"]) >= 1
            and int(counts["Containers"]) >= 1
            and int(counts["Local Volumes"]) >= 1
        )
        env.docker("rm", "-f", "nv1")
    finally:
        env.docker("rm", "-f", "nv1", check=False)
        env.docker("network", "rm", "dnet1", check=False)
        env.docker("volume", "rm", "dvol1", check=False)
    assert "dnet1" not in env.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert "dvol1" not in env.docker("volume", "ls", "-q").stdout.split()


def test_published_port_reaches_the_container(env: DockerEnv) -> None:
    env.docker(
        "run",
        "-d",
        "--name",
        "pub1",
        "-p",
        "127.0.0.1::8080",
        "busybox",
        "sh",
        "-c",
        "echo served > /tmp/i; exec httpd -f -p 8080 -h /tmp",
    )
    try:
        port = env.docker("port", "pub1", "8080/tcp").stdout.strip().rsplit(":", 1)[1]
        assert env.docker("ps", "-q", "--filter", f"publish={port}").stdout.strip()
        assert env.docker("ps", "-q", "--filter", "expose=8080/tcp").stdout.strip()
        assert env.docker("ps", "-q", "--filter", "expose=9999").stdout.strip() == ""
        import urllib.request

        def served() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/i", timeout=2) as r:
                    return r.read() == b"served\n"
            except OSError:
                return False

        wait_for(served, 20, what="the published port")
    finally:
        env.docker("rm", "-f", "pub1", check=False)


def test_errors_are_dockers(env: DockerEnv) -> None:
    r = env.docker("run", "--rm", "--storage-opt", "size=1G", "busybox", "true", check=False)
    assert r.returncode == 125 and "--storage-opt is not supported" in r.stderr
    # A --rm container that cannot start is removed (the CLI waits for that), and
    # the CLI's exit code says why: 127 not found, 126 not executable.
    r = env.docker("run", "--rm", "busybox", "nosuchcmd", check=False, timeout=30)
    assert r.returncode == 127 and "nosuchcmd" in r.stderr
    r = env.docker("run", "--rm", "busybox", "/etc/passwd", check=False, timeout=30)
    assert r.returncode == 126
    assert env.docker("ps", "-aq").stdout.strip() == ""
    r = env.docker("rm", "nosuchctr", check=False)
    assert (
        r.returncode == 1 and r.stderr.strip() == "Error response from daemon: No such container: nosuchctr"
    )
    assert env.docker("system", "prune", "-f").returncode == 0
    r = env.docker("network", "connect", "bridge", "nosuchctr", check=False)
    assert r.returncode != 0
    # docker build (the classic builder) works now; a Dockerfile it cannot parse fails.
    r = env.docker("build", "-", check=False, input=b"FROM busybox\nNOSUCHINSTRUCTION x\n")
    assert r.returncode != 0


def test_run_pulls_a_missing_image_itself(env: DockerEnv, tmp_path: Path) -> None:
    # create answers 404 for an image not here; the CLI pulls it (progress on stderr)
    # and creates again, as with docker.
    assert env.registry is not None
    ref = push_busybox(env.registry, tmp_path, "library/autopull:1")
    r = env.docker("run", "--rm", ref, "echo", "pulled-and-ran")
    assert r.stdout == "pulled-and-ran\n"
    assert "Unable to find image" in r.stderr and "Downloaded newer image" in r.stderr
    env.docker("rmi", ref)


def test_lifecycle_verbs(env: DockerEnv) -> None:
    env.docker(
        "run",
        "-d",
        "--name",
        "lc1",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-usr1' USR1; while :; do sleep 0.1; done",
    )
    try:
        env.docker("pause", "lc1")
        assert env.docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "lc1").stdout.split() == [
            "paused",
            "true",
        ]
        env.docker("unpause", "lc1")
        env.docker("kill", "-s", "USR1", "lc1")
        wait_for(lambda: "got-usr1" in env.docker("logs", "lc1").stdout, 20, what="the trapped signal")
        env.docker("rename", "lc1", "lc2")
        assert env.docker("ps", "--format", "{{.Names}}", "--filter", "name=lc2").stdout.strip() == "lc2"
        env.docker("update", "--memory", "64m", "--restart", "on-failure:3", "lc2")
        hc = json.loads(env.docker("inspect", "lc2").stdout)[0]["HostConfig"]
        assert hc["Memory"] == 64 << 20 and hc["RestartPolicy"] == {
            "Name": "on-failure",
            "MaximumRetryCount": 3,
        }
        pid = env.docker("inspect", "-f", "{{.State.Pid}}", "lc2").stdout.strip()
        env.docker("restart", "-t", "0", "lc2")
        assert env.docker("inspect", "-f", "{{.State.Pid}}", "lc2").stdout.strip() not in ("0", pid)
        env.docker("update", "--restart", "no", "lc2")
        env.docker("kill", "lc2")
        assert env.docker("wait", "lc2").stdout.strip() == "137"
        assert env.docker("start", "lc2").stdout.strip() == "lc2"
        st = env.docker(
            "inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.RestartCount}}", "lc2"
        ).stdout
        assert st.split()[:2] == ["running", "true"], st
    finally:
        env.docker("rm", "-f", "lc1", "lc2", check=False)


def test_mounts_binds_tmpfs_and_anonymous_volumes(env: DockerEnv, tmp_path: Path) -> None:
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "h.txt").write_text("from-host\n")
    r = env.docker(
        "run",
        "--rm",
        "-v",
        f"{host}:/h:ro",
        "--tmpfs",
        "/scratch:size=1m",
        "--mount",
        "type=volume,target=/anon",
        "--mount",
        f"type=bind,source={host},target=/h2",
        "busybox",
        "sh",
        "-c",
        "cat /h/h.txt; grep -c ' /scratch tmpfs' /proc/mounts; touch /h/x 2>/dev/null || echo ro;"
        " echo w > /h2/w",
    )
    assert r.stdout.split() == ["from-host", "1", "ro"]
    assert (host / "w").read_text() == "w\n"
    # --rm took its anonymous volume with it
    assert env.docker("volume", "ls", "-q").stdout.strip() == ""


def test_run_it_detach_keys_then_attach(env: DockerEnv) -> None:
    t = Term(env, "run", "-it", "--name", "dk1", "busybox", "sh")
    try:
        t.expect(b"# ")
        t.send(b"echo one-$((1+1))\r")
        t.expect(b"one-2")
        t.send(b"\x10\x11")  # ctrl-p ctrl-q: detach, the container keeps running
        assert t.wait() == 0
        assert env.docker("inspect", "-f", "{{.State.Running}}", "dk1").stdout.strip() == "true"
        a = Term(env, "attach", "dk1")

        def answered() -> bool:
            a.send(b"echo back-$((2+2))\r")
            try:
                a.expect(b"back-4", timeout=1)
                return True
            except AssertionError:
                return False

        wait_for(answered, 20, what="the attached shell to answer")
        a.send(b"exit 6\r")
        assert a.wait() == 6
    finally:
        env.docker("rm", "-f", "dk1", check=False)


def test_prune_and_events(env: DockerEnv) -> None:
    since = str(int(time.time()) - 1)
    env.docker("create", "--name", "pr1", "busybox", "true")
    env.docker("run", "--name", "pr2", "busybox", "true")
    env.docker("network", "create", "prnet")
    env.docker("volume", "create", "prvol")
    out = env.docker("container", "prune", "-f").stdout
    assert "Deleted Containers" in out
    assert env.docker("ps", "-aq", "--filter", "name=pr").stdout.strip() == ""
    assert "prnet" in env.docker("network", "prune", "-f").stdout
    assert "prvol" in env.docker("volume", "prune", "-af").stdout
    until = str(int(time.time()) + 1)
    evs = env.docker(
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        "type=container",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ).stdout.splitlines()
    assert "create pr1" in evs and "start pr2" in evs and "die pr2" in evs and "destroy pr1" in evs


def test_login_and_registry_auth_header(env: DockerEnv, tmp_path: Path) -> None:
    from tests.fixtures.registry import PASSWORD, USER, RegistryServer

    reg = RegistryServer(tmp_path / "authreg", htpasswd=True).start()
    try:
        target = f"{reg.host}/private/bb:1"
        env.docker("tag", "busybox", target)
        r = env.docker("push", target, check=False)
        assert r.returncode != 0  # no credentials yet
        r = env.docker("login", "-u", USER, "--password-stdin", reg.host, input=b"wrong\n", check=False)
        assert r.returncode != 0
        env.docker("login", "-u", USER, "--password-stdin", reg.host, input=PASSWORD.encode() + b"\n")
        env.docker("push", target)  # credentials travel in X-Registry-Auth
        env.docker("rmi", target)
        env.docker("pull", target)
        env.docker("logout", reg.host)
        env.docker("rmi", target)
    finally:
        reg.stop()


def test_resource_and_identity_flags(env: DockerEnv) -> None:
    r = env.docker(
        "run",
        "--rm",
        "--cpuset-cpus",
        "0",
        "--group-add",
        "1234",
        "--oom-score-adj",
        "100",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        "busybox",
        "sh",
        "-c",
        "id -G; cat /proc/self/oom_score_adj; grep Cpus_allowed_list /proc/self/status",
    )
    groups, oom, cpus = r.stdout.splitlines()
    assert "1234" in groups.split()
    assert oom == "100"
    assert cpus.split() == ["Cpus_allowed_list:", "0"]
    r = env.docker("run", "--rm", "--group-add", "staff", "busybox", "true", check=False)
    # a name is looked up in the image's /etc/group, which has no staff
    assert r.returncode == 125 and "unable to find group staff" in r.stderr, r.stderr


def test_network_alias_names_and_live_connect(env: DockerEnv) -> None:
    sub_a, sub_b = unique_network()[1], unique_network()[1]
    env.docker("network", "create", "--subnet", sub_a, "dnsa")
    env.docker("network", "create", "--subnet", sub_b, "dnsb")
    try:
        env.docker(
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            "dnsa",
            "--network-alias",
            "db",
            "busybox",
            "sleep",
            "300",
        )
        env.docker("run", "-d", "--name", "cli", "--network", "dnsb", "busybox", "sleep", "300")
        # On different networks: no name. Connected live, cli resolves srv by its alias.
        r = env.docker("exec", "cli", "nslookup", "db", check=False)
        assert r.returncode != 0
        env.docker("network", "connect", "--alias", "db2", "dnsb", "srv")
        ips = json.loads(env.docker("inspect", "srv").stdout)[0]["NetworkSettings"]["Networks"]
        b_ip = ips["dnsb"]["IPAddress"]
        assert set(ips) == {"dnsa", "dnsb"} and b_ip.startswith(sub_b.rsplit(".", 1)[0] + ".")
        assert b_ip in env.docker("exec", "srv", "ip", "-4", "addr", "show", "eth1").stdout
        r = env.docker("exec", "cli", "nslookup", "db2")
        assert b_ip in r.stdout
        # a --hostname is one of the names too (docker's DNSNames)
        env.docker(
            "run",
            "-d",
            "--name",
            "hosted",
            "--network",
            "dnsb",
            "--hostname",
            "hh1",
            "busybox",
            "sleep",
            "60",
        )
        hh = json.loads(env.docker("inspect", "hosted").stdout)[0]["NetworkSettings"]["Networks"]["dnsb"]
        assert hh["DNSNames"][0] == "hosted" and hh["DNSNames"][-1] == "hh1"
        assert hh["IPAddress"] in env.docker("exec", "cli", "nslookup", "hh1").stdout
        env.docker("rm", "-f", "hosted")
        assert env.docker("exec", "cli", "ping", "-c", "1", "-W", "2", "srv").returncode == 0
        members = json.loads(env.docker("network", "inspect", "dnsb").stdout)[0]["Containers"]
        assert sorted(m["Name"] for m in members.values()) == ["cli", "srv"]
        r = env.docker("network", "connect", "dnsb", "srv", check=False)
        assert r.returncode != 0 and "already" in r.stderr
        env.docker("network", "disconnect", "dnsb", "srv")
        r = env.docker("exec", "srv", "ip", "addr", "show", "eth1", check=False)
        assert r.returncode != 0
        r = env.docker("network", "disconnect", "dnsb", "srv", check=False)
        assert r.returncode != 0 and "not connected" in r.stderr
    finally:
        env.docker("rm", "-f", "srv", "cli", check=False)
        env.docker("network", "rm", "dnsa", "dnsb", check=False)


def test_api_144_run_mac_address_and_health_start_interval(env: DockerEnv) -> None:
    """docker 28 sends both at API 1.44+ only: the MAC per endpoint, StartInterval."""
    mac = "02:42:ac:11:00:42"
    r = env.docker("run", "--rm", "--mac-address", mac, "busybox", "cat", "/sys/class/net/eth0/address")
    assert r.stdout.strip() == mac
    name, subnet = f"mac{time.time_ns() % 10**6}", unique_network()[1]
    env.docker("network", "create", "--subnet", subnet, name)
    try:
        mac2 = "02:42:0a:c8:00:07"
        r = env.docker(
            *("run", "--rm", "--network", name, "--mac-address", mac2, "busybox"),
            *("cat", "/sys/class/net/eth0/address"),
        )
        assert r.stdout.strip() == mac2
    finally:
        env.docker("network", "rm", name)
    # --health-interval 1h: only the start interval can make it healthy within seconds
    env.docker(
        *("run", "-d", "--name", "hsi", "--health-cmd", "true", "--health-interval", "1h"),
        *("--health-start-period", "5m", "--health-start-interval", "200ms", "busybox", "sleep", "300"),
    )
    try:
        wait_for(
            lambda: (
                env.docker("inspect", "-f", "{{.State.Health.Status}}", "hsi").stdout.strip() == "healthy"
            ),
            20,
            what="healthy within the start interval",
        )
        hc = json.loads(env.docker("inspect", "-f", "{{json .Config.Healthcheck}}", "hsi").stdout)
        assert hc["StartInterval"] == 200_000_000 and hc["Interval"] == 3600 * 10**9
        # a 1.43 client cannot ask for it: the CLI itself says so
        r = env.docker(
            "run", "--rm", "--health-start-interval", "1s", "busybox", "true", api_version="1.43", check=False
        )
        assert r.returncode != 0 and "1.44" in r.stderr
    finally:
        env.docker("rm", "-f", "hsi", check=False)


def test_endpoint_sysctls_and_interface_sysctls_by_version(env: DockerEnv) -> None:
    """1.46's per-endpoint sysctls (IFNAME: the network's interface); from 1.48 a
    top-level interface sysctl is refused as dockerd refuses it, before it is kept."""
    opt = "driver-opt=com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.log_martians=1"
    cat = ("busybox", "cat", "/proc/sys/net/ipv4/conf/eth0/log_martians")
    assert env.docker("run", "--rm", "--network", f"name=bridge,{opt}", *cat).stdout.strip() == "1"
    top = ("run", "--rm", "--sysctl", "net.ipv4.conf.eth0.log_martians=1", *cat)
    r = env.docker(*top, check=False)
    assert r.returncode != 0 and "must be supplied using driver option" in r.stderr
    assert env.docker(*top, api_version="1.47").stdout.strip() == "1"
    # not on connect (yet): refused by name rather than dropped
    env.docker("create", "--name", "sysc", "busybox", "true")
    try:
        r = env.docker(
            *(
                "network",
                "connect",
                "--driver-opt",
                "com.docker.network.endpoint.sysctls=net.ipv4.conf.IFNAME.x=1",
            ),
            *("bridge", "sysc"),
            check=False,
        )
        assert r.returncode != 0 and "not supported by podkit yet on connect" in r.stderr, r.stderr
    finally:
        env.docker("rm", "-f", "sysc")


def test_gw_priority_picks_the_default_route(env: DockerEnv) -> None:
    """--network name=B,gw-priority=1 (API 1.48): B's gateway is the default route."""
    (na, sa), (nb, sb) = (
        (f"gwa{time.time_ns() % 10**5}", unique_network()[1]),
        (
            f"gwb{time.time_ns() % 10**5}",
            unique_network()[1],
        ),
    )
    env.docker("network", "create", "--subnet", sa, na)
    env.docker("network", "create", "--subnet", sb, nb)
    try:
        gw_b = json.loads(env.docker("network", "inspect", nb).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
        gw_a = json.loads(env.docker("network", "inspect", na).stdout)[0]["IPAM"]["Config"][0]["Gateway"]
        route = ("busybox", "ip", "route", "show", "default")
        r = env.docker("run", "--rm", "--network", na, "--network", f"name={nb},gw-priority=1", *route)
        assert r.stdout.split()[:3] == ["default", "via", gw_b], r.stdout
        r = env.docker("run", "--rm", "--network", na, "--network", nb, *route)
        assert r.stdout.split()[:3] == ["default", "via", gw_a], r.stdout  # a tie: the first's
        cid = env.docker(
            *("run", "-d", "--network", na, "--network", f"name={nb},gw-priority=3", "busybox", "sleep", "60")
        ).stdout.strip()
        try:
            eps = json.loads(env.docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", cid).stdout)
            assert (eps[na]["GwPriority"], eps[nb]["GwPriority"]) == (0, 3)
        finally:
            env.docker("rm", "-f", cid)
    finally:
        env.docker("network", "rm", na, nb)


def test_old_api_versions_get_the_old_shapes(env: DockerEnv) -> None:
    """A client pinned to 1.41 (docker-py's own pin, scripts) gets 1.41's fields back."""
    new = json.loads(env.docker("image", "inspect", "busybox").stdout)[0]
    old = json.loads(env.docker("image", "inspect", "busybox", api_version="1.41").stdout)[0]
    assert "VirtualSize" not in new and "Container" not in new and "Hostname" not in new["Config"]
    assert old["VirtualSize"] == old["Size"] and "ContainerConfig" in old and old["Config"]["Hostname"] == ""
    raw = env.docker("image", "ls", "--format", "{{json .}}", "busybox", api_version="1.41").stdout
    assert json.loads(raw.splitlines()[0])["Repository"] == "busybox"
    name, subnet = f"old{time.time_ns() % 10**6}", unique_network()[1]
    env.docker("network", "create", "--subnet", subnet, name)
    try:
        cid = env.docker("run", "-d", "--network", name, "--network-alias", "db", "busybox", "sleep", "60")
        cid_s = cid.stdout.strip()
        fmt = "{{json .NetworkSettings.Networks}}"
        eps_new = json.loads(env.docker("inspect", "-f", fmt, cid_s).stdout)[name]
        eps_old = json.loads(env.docker("inspect", "-f", fmt, cid_s, api_version="1.44").stdout)[name]
        assert eps_new["Aliases"] == ["db"] and cid_s[:12] in eps_new["DNSNames"]
        assert eps_old["Aliases"] == ["db", cid_s[:12]]  # before 1.45 the short id is an alias too

        # the images listing counts the containers using an image from 1.51 on
        def listing(prefix: str) -> dict[str, Any]:
            status, data = rawhttp.call(str(env.socket), "GET", f"{prefix}/images/json")
            assert status == 200
            return next(i for i in json.loads(data) if "busybox:latest" in i["RepoTags"])

        assert listing("")["Containers"] >= 1 and listing("/v1.51")["Containers"] >= 1
        assert listing("/v1.50")["Containers"] == -1 and "VirtualSize" not in listing("/v1.50")
        assert listing("/v1.43")["VirtualSize"] == listing("/v1.43")["Size"]
        d = listing("/v1.48")["Descriptor"]
        assert d["digest"].startswith("sha256:") and d["size"] > 0 and "Descriptor" not in listing("/v1.47")
        status, data = rawhttp.call(str(env.socket), "GET", "/v1.41/info")
        info = json.loads(data)
        assert info["BridgeNfIptables"] is False and "FirewallBackend" not in info
        assert json.loads(rawhttp.call(str(env.socket), "GET", "/info")[1])["FirewallBackend"]
        # 1.43 refused two endpoints at create; a 1.43 client's MAC goes in Config.MacAddress
        r = env.docker(
            *("run", "--rm", "--network", name, "--network", "bridge", "busybox", "true"),
            api_version="1.43",
            check=False,
        )
        assert r.returncode != 0
    finally:
        env.docker("rm", "-f", cid_s, check=False)
        env.docker("network", "rm", name)


def test_volume_subpath_from_api_145(env: DockerEnv) -> None:
    """--mount volume-subpath: the part of the volume found at start, confined to it
    (a symlink in the volume cannot point the mount outside), nothing left mounted."""
    env.docker("volume", "create", "spv")
    try:
        env.docker(
            *("run", "--rm", "-v", "spv:/v", "busybox", "sh", "-c"),
            "mkdir -p /v/a/b && echo hi > /v/a/b/f && ln -s / /v/esc && ln -s ../../.. /v/a/up",
        )
        m = "type=volume,src=spv,dst=/m,volume-subpath="
        assert env.docker("run", "--rm", "--mount", m + "a", "busybox", "cat", "/m/b/f").stdout == "hi\n"
        for escape in ("esc", "a/up"):  # both resolve to the volume's own root
            out = env.docker("run", "--rm", "--mount", m + escape, "busybox", "ls", "/m").stdout.split()
            assert out == ["a", "esc"], out
        r = env.docker("run", "--rm", "--mount", m + "a,readonly", "busybox", "touch", "/m/x", check=False)
        assert r.returncode != 0 and "Read-only file system" in r.stderr
        r = env.docker("run", "--rm", "--mount", m + "nosuch", "busybox", "true", check=False)
        assert r.returncode != 0 and "subpath 'nosuch'" in r.stderr, r.stderr
        r = env.docker("run", "--rm", "--mount", m + "a", "busybox", "true", api_version="1.44", check=False)
        assert r.returncode != 0
        staging = env.daemon.state / "subpaths"
        assert staging.is_dir() and not any(staging.iterdir())  # released once runc had them
    finally:
        env.docker("volume", "rm", "-f", "spv")


def test_image_mount_from_api_148(env: DockerEnv) -> None:
    """--mount type=image (API 1.48): the image's files, read-only; the image is in use."""
    env.docker("run", "--name", "imsrc", "busybox", "sh", "-c", "echo marked > /mark")
    try:
        env.docker("commit", "imsrc", "imsrc:1")
    finally:
        env.docker("rm", "-f", "imsrc")
    m = "type=image,source=imsrc:1,target=/img"
    assert env.docker("run", "--rm", "--mount", m, "busybox", "cat", "/img/mark").stdout == "marked\n"
    r = env.docker("run", "--rm", "--mount", m, "busybox", "touch", "/img/x", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    cid = env.docker("run", "-d", "--mount", m, "busybox", "sleep", "60").stdout.strip()
    try:
        mounts = json.loads(env.docker("inspect", "-f", "{{json .Mounts}}", cid).stdout)
        assert [(x["Type"], x["Destination"], x["RW"]) for x in mounts] == [("image", "/img", False)]
        r = env.docker("rmi", "imsrc:1", check=False)
        assert r.returncode != 0  # in use by the container's mount
    finally:
        env.docker("rm", "-f", cid)
    env.docker("rmi", "imsrc:1")
    import sqlite3

    db = sqlite3.connect(f"file:{env.daemon.root / 'metadata.db'}?mode=ro", uri=True)
    try:  # the views went with their containers
        assert db.execute("SELECT key FROM snapshots WHERE key LIKE 'imagemount-%'").fetchall() == []
    finally:
        db.close()
    r = env.docker(
        "run", "--rm", "--mount", "type=image,source=nosuch:1,target=/i", "busybox", "true", check=False
    )
    assert r.returncode != 0 and "No such image" in r.stderr
    r = env.docker("run", "--rm", "--mount", m, "busybox", "true", api_version="1.47", check=False)
    assert r.returncode != 0


def test_read_only_binds_are_recursive_from_api_144(env: DockerEnv, tmp_path: Path) -> None:
    import subprocess

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(src / "sub")], check=True)
    try:
        touch = ("busybox", "touch", "/m/sub/f")
        r = env.docker("run", "--rm", "-v", f"{src}:/m:ro", *touch, check=False)
        assert r.returncode != 0 and "Read-only file system" in r.stderr
        # bind-recursive=writable (ReadOnlyNonRecursive) and a 1.43 client: the submount stays writable
        m = f"type=bind,src={src},dst=/m,readonly,bind-recursive=writable"
        env.docker("run", "--rm", "--mount", m, *touch)
        assert (src / "sub" / "f").exists()
        env.docker("run", "--rm", "-v", f"{src}:/m:ro", "busybox", "touch", "/m/sub/g", api_version="1.43")
        assert (src / "sub" / "g").exists()
        r = env.docker("run", "--rm", "-v", f"{src}:/m:ro", "busybox", "touch", "/m/h", check=False)
        assert r.returncode != 0 and not (src / "h").exists()
    finally:
        subprocess.run(["umount", str(src / "sub")], check=True)


def test_healthcheck_in_state_health_and_ps(env: DockerEnv) -> None:
    env.docker(
        "run", "-d", "--name", "hc1", "--health-cmd", "test -e /tmp/ok", "--health-interval", "200ms",
        "--health-retries", "1", "busybox", "sleep", "300",
    )  # fmt: skip
    try:

        def status() -> str:
            return env.docker("inspect", "-f", "{{.State.Health.Status}}", "hc1").stdout.strip()

        wait_for(lambda: status() == "unhealthy", 20, what="unhealthy")
        env.docker("exec", "hc1", "touch", "/tmp/ok")
        wait_for(lambda: status() == "healthy", 20, what="healthy")
        assert "(healthy)" in env.docker("ps", "--filter", "name=hc1", "--format", "{{.Status}}").stdout
        r = env.docker(
            "run", "--rm", "--health-cmd", "true", "--health-interval", "-1s", "busybox", "true", check=False
        )
        assert r.returncode != 0
    finally:
        env.docker("rm", "-f", "hc1", check=False)
    r = env.docker(
        "run",
        "--rm",
        "--dns-search",
        "corp.test",
        "--dns-option",
        "ndots:3",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    )
    assert "search corp.test" in r.stdout and "options ndots:3" in r.stdout
    env.docker("run", "-d", "--name", "hc2", "--no-healthcheck", "busybox", "sleep", "300")
    try:
        assert env.docker("inspect", "-f", "{{.State.Health}}", "hc2").stdout.strip() in ("<nil>", "")
    finally:
        env.docker("rm", "-f", "hc2", check=False)
