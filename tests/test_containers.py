"""Containers end to end: a real podkitd with runc under conmon and the busybox image.

SDK calls where the CLI is not what is tested (faster); the CLI where its exit codes
and output are the point.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from podkit import errors
from tests.helpers import Daemon, wait_for

CGROUP_MEMORY = Path("/sys/fs/cgroup/memory/podkit")


def remove_all_and_check(daemon: Daemon) -> None:
    """Remove every container, then check nothing of them is left on the host."""
    if daemon.proc is None:
        daemon.start()
    c = daemon.client()
    ids = [x.id for x in c.containers.list(all=True)]
    for cid in ids:
        c.containers.remove(cid, force=True, volumes=True)
    leases = [
        p.read_text(errors="replace") for p in (daemon.root / "networks" / "ipam").glob("*/*") if p.is_file()
    ]
    pins = [p.name for p in (daemon.state / "netns").glob("container-*")]
    for cid in ids:  # cgroup, runc state, conmon files, bundle, log, netns pin, IPAM lease
        assert not (CGROUP_MEMORY / cid).exists()
        assert not (daemon.state / "runtime" / "runc" / cid).exists()
        assert not (daemon.state / "runtime" / "containers" / cid).exists()
        assert not (daemon.state / "containers" / cid).exists()
        assert not (daemon.root / "containers" / cid).exists()
        assert f"container-{cid}" not in pins
        assert not any(cid in lease for lease in leases)
    for pid_dir in Path("/proc").iterdir():  # no conmon of this daemon survives its containers
        if pid_dir.name.isdigit():
            try:
                cmd = (pid_dir / "cmdline").read_bytes()
            except OSError:
                continue
            assert not (cmd.startswith(b"conmon") and str(daemon.state).encode() in cmd), cmd


@pytest.fixture
def d(daemon: Daemon, busybox_image: str) -> Iterator[Daemon]:
    """A daemon with busybox; every container is removed (and checked gone) at the end."""
    yield daemon
    remove_all_and_check(daemon)


def _events(c, since: float) -> list[tuple[str, str]]:  # noqa: ANN001
    return [
        (e["action"], e["id"]) for e in c.events(since=since, until=time.time()) if e["type"] == "container"
    ]


def test_run_exit_codes_streams_and_bad_input(d: Daemon) -> None:
    r = d.cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 5")
    assert (r.returncode, r.stdout, r.stderr) == (5, "out\n", "err\n")
    r = d.cli("run", "-i", "--rm", "busybox", "cat", input=b"piped in\n")
    assert (r.returncode, r.stdout) == (0, "piped in\n")
    r = d.cli("run", "--rm", "busybox", "nosuchcmd")
    assert r.returncode == 127 and "executable file not found" in r.stderr
    r = d.cli("run", "--rm", "busybox", "/etc/passwd")
    assert r.returncode == 126, r.stderr
    r = d.cli("run", "-p", "99999:80", "busybox", "true")
    assert r.returncode == 125 and "in port spec '99999:80'" in r.stderr
    r = d.cli("run", "-v", "rel/path:/x", "busybox", "true")
    assert r.returncode == 125 and "invalid volume spec" in r.stderr
    r = d.cli("run", "--memory", "lots", "busybox", "true")
    assert r.returncode == 125 and "memory" in r.stderr
    # (a loopback registry nobody listens on: the pull attempt stays on this host)
    r = d.cli("run", "127.0.0.1:9/no-such-image:1", "true")
    assert r.returncode == 125 and "not found" in r.stderr
    # a start failing after the network was wired (bridge, published port) undoes it all
    r = d.cli("run", "-p", "127.0.0.1::80", "busybox", "nosuchcmd")
    assert r.returncode == 127
    # nothing was left behind by any of those: records, leases, netns pins, mounts, cgroups
    assert d.cli("ps", "-a", "-q").stdout == ""
    assert not [p for p in (d.root / "networks" / "ipam").glob("*/*") if p.name[0].isdigit()]
    assert not list((d.state / "netns").glob("container-*"))
    assert str(d.base) not in Path("/proc/self/mountinfo").read_text()
    assert not [
        p
        for p in CGROUP_MEMORY.glob("*")
        if p.is_dir() and len(p.name) == 64 and (d.state / "containers" / p.name).exists()
    ]
    r = d.cli("create", "--name", "dup", "busybox", "true", check=True)
    r = d.cli("create", "--name", "dup", "busybox", "true")
    assert r.returncode == 125 and "already in use" in r.stderr
    r = d.cli("stop", "dup")
    assert r.returncode == 1 and "not running" in r.stderr


def test_lifecycle_exec_logs_and_events(d: Daemon) -> None:
    c = d.client()
    t0 = time.time()
    ctr = c.containers.run(
        "busybox",
        ["sh", "-c", "echo hello; echo oops >&2; exec sleep 300"],
        name="life",
        init=True,
        env=["GREETING=hi"],
        labels={"app": "t"},
        workdir="/tmp",
        hostname="box1",
    )
    assert ctr.state == "running" and ctr.pid > 0
    wait_for(lambda: "oops" in c.containers.logs("life"), what="log output")
    assert c.containers.logs("life", stderr=False) == "hello\n"
    assert c.containers.logs("life", stdout=False) == "oops\n"
    r = d.cli("logs", "-t", "--tail", "1", "life", check=True)
    assert r.stdout.endswith(" oops\n") or r.stderr.endswith(" oops\n")
    ex = c.containers.exec("life", ["sh", "-c", "echo $GREETING $(pwd) $(hostname) $(id -u); exit 9"])
    assert (ex.exit_code, ex.stdout) == (9, b"hi /tmp box1 0\n")
    ex = c.containers.exec(
        "life", ["sh", "-c", "echo $X; id -u; pwd"], env=["X=1"], user="nobody", workdir="/"
    )
    assert ex.stdout == b"1\n65534\n/\n"
    r = d.cli("exec", "-i", "life", "cat", input=b"via exec\n")
    assert (r.returncode, r.stdout) == (0, "via exec\n")
    r = d.cli("exec", "-d", "life", "sh", "-c", "sleep 0.2; echo bg > /tmp/detached")
    assert (r.returncode, r.stdout) == (0, "")
    wait_for(
        lambda: c.containers.exec("life", ["cat", "/tmp/detached"]).stdout == b"bg\n",
        what="the detached exec's work",
    )
    assert [x.name for x in c.containers.list(filters={"label": "app=t"})] == ["life"]
    top = c.containers.top("life")
    assert any("sleep" in " ".join(p) for p in top["processes"])
    st = c.containers.stats("life")
    assert st.pids >= 1 and st.memory_usage > 0
    c.containers.pause("life")
    assert c.containers.get("life").state == "paused"
    with pytest.raises(errors.Conflict):
        c.containers.exec("life", ["true"])
    c.containers.unpause("life")
    with pytest.raises(errors.Conflict):
        c.containers.remove("life")
    c.containers.rename("life", "life2")
    c.containers.stop("life2", timeout=5)
    info = c.containers.inspect("life2")
    assert info["state"] == "exited" and info["exit_code"] in (0, 143)
    with pytest.raises(errors.Conflict, match="not running"):
        c.containers.stop("life2")
    c.containers.start("life2")
    c.containers.kill("life2", "KILL")
    assert c.containers.wait("life2") == 137
    c.containers.remove("life2")
    with pytest.raises(errors.NotFound):
        c.containers.get("life2")
    acts = [a for a, i in _events(c, t0) if i == ctr.id]
    for a in ("create", "start", "exec_create", "exec_die", "pause", "unpause", "die", "kill", "destroy"):
        assert a in acts, (a, acts)


def test_volumes_binds_tmpfs_and_cp(d: Daemon, workdir: Path) -> None:
    c = d.client()
    host = workdir / "hostdir"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    # a named volume on /etc starts with the image's /etc (seeded once)
    r = c.containers.run(
        "busybox",
        [
            "sh",
            "-c",
            "cat /etc/passwd | head -1; cat /h/in.txt; echo new > /data/f; df -t tmpfs /t | tail -1",
        ],
        detach=False,
        volumes=["etcvol:/etc", f"{host}:/h:ro", "data:/data"],
        tmpfs=["/t:size=1m"],
    )
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith("root:") and lines[1] == "from host"
    vols = {v.name: v for v in c.volumes.list()}
    assert {"etcvol", "data"} <= set(vols)
    assert (Path(vols["data"].mountpoint) / "f").read_text() == "new\n"
    with pytest.raises(errors.Conflict, match="in use"):
        c.volumes.remove("data")
    r = c.containers.run("busybox", ["sh", "-c", "touch /h/x"], detach=False, volumes=[f"{host}:/h:ro"])
    assert r.exit_code != 0  # read-only bind
    # cp both ways, into a running and out of a stopped container
    ctr = c.containers.run("busybox", ["sleep", "300"], init=True, name="cpt")
    assert d.cli("cp", str(host / "in.txt"), "cpt:/tmp/", check=True).returncode == 0
    assert c.containers.exec("cpt", ["cat", "/tmp/in.txt"]).stdout == b"from host\n"
    c.containers.exec("cpt", ["sh", "-c", "mkdir -p /out/sub && echo deep > /out/sub/f"])
    c.containers.stop("cpt", timeout=2)
    d.cli("cp", "cpt:/out", str(workdir / "copied"), check=True)
    assert (workdir / "copied" / "sub" / "f").read_text() == "deep\n"
    r = d.cli("cp", "cpt:/nope", str(workdir / "x"))
    assert r.returncode != 0 and "no such file" in r.stderr.lower()
    c.containers.remove(ctr.id)
    d.cli("volume", "create", "v1", check=True)
    assert "v1" in d.cli("volume", "ls", "-q", check=True).stdout.split()
    d.cli("volume", "rm", "v1", check=True)
    for x in c.containers.list(all=True):
        c.containers.remove(x.id)
    c.volumes.remove("data")
    assert "data" not in {v.name for v in c.volumes.list()}


def test_oom_killed(d: Daemon) -> None:
    c = d.client()
    ctr = c.containers.run(
        "busybox", ["sh", "-c", "a=$(yes | head -c 200000000); echo survived"], memory="16m"
    )
    assert c.containers.wait(ctr.id) == 137
    info = c.containers.inspect(ctr.id)
    assert info["oom_killed"] is True and info["state"] == "exited"


def test_restart_policies(d: Daemon) -> None:
    c = d.client()
    ctr = c.containers.run("busybox", ["sh", "-c", "exit 3"], restart="on-failure:2")
    wait_for(
        lambda: c.containers.get(ctr.id).restart_count == 2 and c.containers.get(ctr.id).state == "exited",
        timeout=20,
        what="two restarts",
    )
    assert c.containers.get(ctr.id).exit_code == 3
    ok = c.containers.run("busybox", ["true"], restart="on-failure")
    assert c.containers.wait(ok.id) == 0
    assert c.containers.get(ok.id).restart_count == 0
    al = c.containers.run("busybox", ["sleep", "300"], restart="always", init=True)
    os.kill(c.containers.get(al.id).pid, signal.SIGKILL)  # dies behind podkit's back
    wait_for(
        lambda: c.containers.get(al.id).restart_count >= 1 and c.containers.get(al.id).state == "running",
        timeout=20,
        what="always restart",
    )
    c.containers.stop(al.id, timeout=2)  # a stop is final
    assert c.containers.get(al.id).state == "exited"


def test_daemon_sigkill_recovery(d: Daemon) -> None:
    c = d.client()
    live = c.containers.run(
        "busybox", ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"], name="live"
    )
    dies = c.containers.run(
        "busybox", ["sh", "-c", "trap 'exit 3' TERM; echo ready; while true; do sleep 0.1; done"], name="dies"
    )
    al = c.containers.run(
        "busybox",
        ["sh", "-c", "trap 'exit 1' TERM; echo ready; while true; do sleep 0.1; done"],
        name="al",
        restart="always",
    )
    wait_for(lambda: "tick 2" in c.containers.logs("live"), what="ticks")
    wait_for(lambda: c.containers.logs("dies") == c.containers.logs("al") == "ready\n", what="traps set")
    dies_pid, al_pid = c.containers.get("dies").pid, c.containers.get("al").pid
    d.kill()  # SIGKILL: no shutdown hooks
    os.kill(dies_pid, signal.SIGTERM)
    os.kill(al_pid, signal.SIGTERM)
    wait_for(
        lambda: not Path(f"/proc/{dies_pid}").exists() and not Path(f"/proc/{al_pid}").exists(),
        what="exits while the daemon is down",
    )
    n_before = c_logs_lines(d, live.id)
    d.start()
    c = d.client()
    assert c.containers.get("live").state == "running"
    assert c.containers.exec("live", ["echo", "still here"]).stdout == b"still here\n"
    # conmon kept logging while the daemon was away
    wait_for(lambda: c_logs_lines(d, live.id) > n_before + 2, what="logging continued")
    info = c.containers.inspect("dies")
    assert (info["state"], info["exit_code"]) == ("exited", 3)
    wait_for(
        lambda: c.containers.get("al").state == "running" and c.containers.get("al").restart_count >= 1,
        timeout=20,
        what="restart policy resumed after daemon restart",
    )
    c.containers.stop("live", timeout=1)
    assert c.containers.get("live").state == "exited"
    assert dies.id and al.id


def c_logs_lines(d: Daemon, cid: str) -> int:
    p = d.root / "containers" / cid / "ctr.log"
    return len(p.read_text().splitlines()) if p.exists() else 0


def test_stopped_stays_stopped_across_daemon_restart_and_more(d: Daemon) -> None:
    c = d.client()
    us = c.containers.run("busybox", ["sleep", "300"], restart="unless-stopped", init=True, name="us")
    c.containers.stop("us", timeout=2)
    d.restart()  # a clean restart this time
    c = d.client()
    assert c.containers.get("us").state == "exited"
    assert c.containers.get("us").restart_count == 0
    # start -a attaches before the start and exits with the container's code
    c.containers.create("busybox", ["sh", "-c", "echo attached-out; exit 6"], name="sa")
    r = d.cli("start", "-a", "sa")
    assert (r.returncode, r.stdout) == (6, "attached-out\n")
    # live resource changes, and the stats stream follows them
    c.containers.start("us")
    c.containers.update("us", memory="48m")
    r = d.cli("update", "--cpus", "lots", "us")
    assert r.returncode != 0 and "--cpus" in r.stderr
    d.cli("update", "--pids-limit", "40", "--restart", "no", "us", check=True)
    assert c.containers.inspect("us")["config"]["pids_limit"] == 40
    stats = c.containers.stream_stats("us")
    first, second = next(stats), next(stats)
    stats.close()
    assert first.memory_limit == second.memory_limit == 48 << 20
    assert second.read > first.read
    r = d.cli("stats", "--no-stream", "--format", "json", "us", check=True)
    [row] = [json.loads(line) for line in r.stdout.splitlines()]  # docker's statsContext fields
    assert row["Container"] == "us" and row["Name"] == "us" and row["PIDs"].isdigit()
    assert us.id


def test_recovery_from_crashes_inside_start_and_remove(d: Daemon) -> None:
    """A SIGKILL cannot be aimed at one line, so the record is put into the state such a
    crash leaves (by editing the database while the daemon is down), then recovered."""
    import sqlite3

    c = d.client()
    a = c.containers.run("busybox", ["sleep", "300"], init=True, name="mid-start")
    b = c.containers.run("busybox", ["sleep", "300"], init=True, name="mid-remove")
    pid_a = c.containers.get("mid-start").pid
    d.kill()
    db = sqlite3.connect(d.root / "metadata.db")
    with db:
        db.execute("UPDATE containers SET state = 'created', pid = 0 WHERE id = ?", (a.id,))
        db.execute("UPDATE containers SET state = 'removing' WHERE id = ?", (b.id,))
    db.close()
    d.start()
    c = d.client()
    got = c.containers.get("mid-start")
    assert (got.state, got.pid) == ("running", pid_a)
    assert c.containers.exec("mid-start", ["true"]).exit_code == 0
    with pytest.raises(errors.NotFound):
        c.containers.get("mid-remove")
    assert not (CGROUP_MEMORY / b.id).exists()
    assert not (d.state / "containers" / b.id).exists()


def test_rm_force_while_restarting_and_pull_on_run(d: Daemon, registry) -> None:  # noqa: ANN001
    c = d.client()
    flap = c.containers.run("busybox", ["sh", "-c", "exit 1"], restart="always")
    wait_for(lambda: c.containers.get(flap.id).restart_count >= 2, timeout=20, what="flapping")
    t = time.monotonic()
    c.containers.remove(flap.id, force=True)
    assert time.monotonic() - t < 10
    with pytest.raises(errors.NotFound):
        c.containers.get(flap.id)
    # `run` of an image that is not here pulls it first, as docker does
    ref = f"{registry.host}/t/busybox:1"
    d.cli("tag", "busybox", ref, check=True)
    d.cli("push", "-q", ref, check=True)
    d.cli("rmi", ref, check=True)
    r = d.cli("run", "--rm", ref, "echo", "pulled")
    assert (r.returncode, r.stdout) == (0, "pulled\n"), r.stderr


def test_attach_replays_logs_then_follows(d: Daemon) -> None:
    c = d.client()
    c.containers.run("busybox", ["sh", "-c", "echo early; read x; echo late-$x"], name="at", open_stdin=True)
    wait_for(lambda: c.containers.logs("at") == "early\n", what="first output")
    ws = c.containers.attach_socket("at", stdin=True, logs=True)
    try:
        assert ws.recv() == (2, b"\x01early\n")
        ws.send_stdin(b"7\n")
        assert ws.recv() == (2, b"\x01late-7\n")
        op, data = ws.recv()
        assert op == 1 and b'"exit": 0' in data
    finally:
        ws.close()


def test_parallel_runs(d: Daemon) -> None:
    """Six attached runs at once on bridge networking: each gets its own output and code."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> tuple[int, bytes]:
        r = d.client().containers.run(
            "busybox", ["sh", "-c", f"echo n{i}; exit {i}"], detach=False, auto_remove=True
        )
        return r.exit_code, r.stdout

    with ThreadPoolExecutor(6) as ex:
        results = list(ex.map(one, range(6)))
    assert results == [(i, f"n{i}\n".encode()) for i in range(6)]
    assert d.client().containers.list(all=True) == []


def test_a_failed_start_of_an_auto_remove_run_leaves_no_container(d: Daemon) -> None:
    """As dockerd removes an AutoRemove container whose start failed (and the CLI's
    run --rm does): the SDK's run, attached and detached, raises the start's error
    and leaves nothing; without auto_remove the created container stays."""
    c = d.client()
    for detach in (False, True):
        with pytest.raises(errors.PodkitError, match="nonexistent"):
            c.containers.run("busybox", ["/nonexistent"], detach=detach, auto_remove=True, network="none")
        assert c.containers.list(all=True) == [], detach
    with pytest.raises(errors.PodkitError, match="nonexistent"):
        c.containers.run("busybox", ["/nonexistent"], network="none")
    (kept,) = c.containers.list(all=True)
    assert kept.state == "created"
    c.containers.remove(kept.id)


def test_large_streams_through_attach_and_exec(d: Daemon) -> None:
    c = d.client()
    data = os.urandom(3 << 20)
    r = c.containers.run(
        "busybox", ["sh", "-c", "cat; echo done >&2"], detach=False, stdin=data, auto_remove=True
    )
    assert r.exit_code == 0 and r.stdout == data and r.stderr == b"done\n"
    c.containers.run("busybox", ["sleep", "300"], name="big", init=True)
    ex = c.containers.exec("big", ["sh", "-c", "head -c 2000000 /dev/zero"])
    assert ex.exit_code == 0 and ex.stdout == bytes(2000000)


def test_cp_tar_streams_and_escapes_refused(d: Daemon, workdir: Path) -> None:
    import io
    import tarfile

    c = d.client()
    c.containers.run("busybox", ["sleep", "300"], name="cpx", init=True)

    def tar_of(*members: tuple[str, str, bytes | str]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for name, kind, payload in members:
                ti = tarfile.TarInfo(name)
                if kind == "sym":
                    ti.type, ti.linkname = tarfile.SYMTYPE, str(payload)
                    tf.addfile(ti)
                else:
                    ti.size = len(payload)
                    tf.addfile(ti, io.BytesIO(payload))  # type: ignore[arg-type]
        return buf.getvalue()

    # `cp - ctr:/dir` takes a tar on stdin; `cp ctr:/path -` writes one
    r = d.cli("cp", "-", "cpx:/tmp", input=tar_of(("from-stdin.txt", "file", b"tarred\n")))
    assert r.returncode == 0, r.stderr
    assert c.containers.exec("cpx", ["cat", "/tmp/from-stdin.txt"]).stdout == b"tarred\n"
    data, stat = c.containers.get_archive("cpx", "/tmp/from-stdin.txt")
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.extractfile("from-stdin.txt").read() == b"tarred\n"  # type: ignore[union-attr]
    assert stat["name"] == "from-stdin.txt" and stat["size"] == 7
    # escapes: a '..' entry is refused; a symlink to / resolves inside the destination (never
    # the host's root, nor anywhere else in the container)
    outside = workdir / "must-not-exist"
    with pytest.raises(errors.UnsafeContent):
        c.containers.put_archive("cpx", "/tmp", tar_of((f"../../../..{outside}", "file", b"x")))
    c.containers.put_archive("cpx", "/tmp", tar_of(("up", "sym", "/"), (f"up{outside}", "file", b"x")))
    assert not outside.exists()
    assert c.containers.exec("cpx", ["cat", f"/tmp{outside}"]).stdout == b"x"


def test_attached_run_when_the_daemon_dies(d: Daemon) -> None:
    import subprocess

    from tests.helpers import BIN

    env = dict(os.environ, PODKIT_HOST=d.host)
    cli = subprocess.Popen(
        [str(BIN / "podkit"), "run", "--name", "att", "--init", "busybox", "sleep", "300"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        c = d.client()
        wait_for(lambda: [x.name for x in c.containers.list()] == ["att"], what="the attached run")
        d.kill()
        _, err = cli.communicate(timeout=20)
        assert cli.returncode == 125 and b"lost the connection" in err
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    d.start()
    assert d.client().containers.get("att").state == "running"  # the container did not notice


def test_ctrl_c_on_an_attached_run_reaches_the_container(d: Daemon) -> None:
    import subprocess

    from tests.helpers import BIN

    env = dict(os.environ, PODKIT_HOST=d.host)
    cli = subprocess.Popen(
        [
            str(BIN / "podkit"),
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-int; exit 9' INT; echo ready; while true; do sleep 0.1; done",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert cli.stdout is not None
        assert cli.stdout.readline() == b"ready\n"
        cli.send_signal(signal.SIGINT)
        out, _ = cli.communicate(timeout=20)
        assert cli.returncode == 9 and out == b"got-int\n"
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
