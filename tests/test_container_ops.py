"""The verbs on existing containers that docker users type (issue 12, A.4): stop/restart with
a signal, live update of every limit, ps -n/-s, stats -a/--no-trunc, log rotation that
keeps max-file files, cp -a/-L; each from the podkit CLI and, where the docker CLI is
installed, through the Docker API. One podkitd for the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker_env import DOCKER, DockerEnv, docker_env
from tests.helpers import Daemon, wait_for

pytestmark = pytest.mark.root

# PID 1 (sh) traps: each signal leaves its own exit code and line behind.
TRAPS = (
    "trap 'echo got-USR1; exit 3' USR1; trap 'echo got-TERM; exit 4' TERM; "
    "trap 'echo got-HUP; exit 5' HUP; while true; do sleep 0.1; done"
)


@pytest.fixture(scope="module")
def env(busybox_tarball: Path) -> Iterator[DockerEnv]:
    with docker_env(tarball=busybox_tarball) as e:
        yield e


@pytest.fixture
def d(env: DockerEnv) -> Iterator[Daemon]:
    yield env.daemon
    c = env.daemon.client()
    for ctr in c.containers.list(all=True):
        c.containers.remove(ctr.id, force=True, volumes=True)


def _exit(d: Daemon, name: str) -> int:
    code: int = d.client().containers.get(name).exit_code
    return code


def cgroup_file(pid: int, controller: str, name: str) -> str:
    """A cgroup file of process ``pid``, read on the host (v2 or v1)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, ctrls, path = line.split(":", 2)
        if Path("/sys/fs/cgroup/cgroup.controllers").exists() and ctrls == "":
            return (Path("/sys/fs/cgroup") / path.lstrip("/") / name).read_text().strip()
        if controller in ctrls.split(","):
            return (Path("/sys/fs/cgroup") / controller / path.lstrip("/") / name).read_text().strip()
    raise AssertionError(f"no {controller} cgroup for {pid}")


def test_stop_and_restart_with_a_signal(env: DockerEnv, d: Daemon) -> None:
    d.cli("run", "-d", "--name", "sig", "busybox", "sh", "-c", TRAPS, check=True)
    wait_for(lambda: d.client().containers.get("sig").state == "running", what="sig running")
    r = d.cli("stop", "-s", "NOPE", "sig")
    assert r.returncode == 1 and "invalid signal 'NOPE'" in r.stderr
    assert d.client().containers.get("sig").state == "running"  # a bad signal changed nothing
    d.cli("restart", "--signal", "HUP", "--timeout", "10", "sig", check=True)
    assert d.client().containers.get("sig").state == "running"
    d.cli("stop", "-s", "USR1", "-t", "10", "sig", check=True)
    assert _exit(d, "sig") == 3
    assert d.cli("logs", "sig", check=True).stdout == "got-HUP\ngot-USR1\n"
    # without -s: --stop-signal given at create, else SIGTERM
    d.cli("run", "-d", "--name", "sig2", "--stop-signal", "HUP", "busybox", "sh", "-c", TRAPS, check=True)
    d.cli("stop", "sig2", check=True)
    assert _exit(d, "sig2") == 5
    # ... else the image's StopSignal; -s still wins over it
    d.cli("commit", "-c", "STOPSIGNAL USR1", "sig2", "sigimg:1", check=True)
    d.cli("run", "-d", "--name", "sig3", "sigimg:1", "sh", "-c", TRAPS, check=True)
    d.cli("restart", "sig3", check=True)
    d.cli("stop", "-s", "TERM", "sig3", check=True)
    assert _exit(d, "sig3") == 4 and d.cli("logs", "sig3", check=True).stdout == "got-USR1\ngot-TERM\n"
    d.cli("rm", "sig3", check=True)
    d.cli("rmi", "sigimg:1", check=True)
    if DOCKER is None:
        return
    env.docker("start", "sig")
    env.docker("restart", "-s", "USR1", "sig")  # the trap says 3; the restart runs it again
    env.docker("stop", "--signal", "SIGUSR1", "-t", "10", "sig")
    assert _exit(d, "sig") == 3
    assert d.cli("logs", "sig", check=True).stdout.count("got-USR1") == 3
    r = env.docker("stop", "-s", "NOPE", "sig2", check=False)
    assert r.returncode != 0 and "invalid signal" in r.stderr


def test_update_every_limit_live(env: DockerEnv, d: Daemon) -> None:
    d.cli("run", "-d", "--name", "up", "--cpus", "0.5", "busybox", "sleep", "300", check=True)
    c = d.client()
    pid = c.containers.get("up").pid
    d.cli(
        "update",
        *("--cpu-quota", "30000", "--cpu-period", "60000", "--cpu-shares", "512"),
        *("--cpuset-cpus", "0", "--cpuset-mems", "0", "--pids-limit", "33"),
        *("--memory", "64m", "--memory-swap", "128m", "up"),
        check=True,
    )
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    if v2:
        assert cgroup_file(pid, "cpu", "cpu.max") == "30000 60000"
        assert cgroup_file(pid, "memory", "memory.max") == str(64 << 20)
    else:
        assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "30000"
        assert cgroup_file(pid, "cpu", "cpu.cfs_period_us") == "60000"
        assert cgroup_file(pid, "cpu", "cpu.shares") == "512"
        assert cgroup_file(pid, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert cgroup_file(pid, "cpuset", "cpuset.cpus") == "0"
    assert cgroup_file(pid, "pids", "pids.max") == "33"
    cfg = c.containers.inspect("up")["config"]
    # --cpu-quota replaced --cpus (the next start must not find both)
    assert cfg["cpu_quota"] == 30000 and cfg.get("cpus") is None and cfg["cpuset_cpus"] == "0"
    r = d.cli("update", "--memory-swap", "32m", "up")  # below the memory limit in force
    assert r.returncode == 1 and "memory-swap" in r.stderr
    r = d.cli("update", "--cpuset-cpus", "zero", "up")
    assert r.returncode == 1 and "cpuset_cpus" in r.stderr
    d.cli("restart", "-t", "0", "up", check=True)  # what was stored starts again
    pid = c.containers.get("up").pid
    assert cgroup_file(pid, "pids", "pids.max") == "33"
    if DOCKER is None:
        return
    env.docker("update", "--cpu-quota", "20000", "--cpu-period", "100000", "--pids-limit", "44", "up")
    assert cgroup_file(pid, "pids", "pids.max") == "44"
    if not v2:
        assert cgroup_file(pid, "cpu", "cpu.cfs_quota_us") == "20000"
    env.docker("update", "--cpus", "0.25", "up")
    cfg = c.containers.inspect("up")["config"]
    assert cfg["cpus"] == 0.25 and cfg.get("cpu_quota") is None
    r = env.docker("update", "--blkio-weight", "300", "up", check=False)
    assert r.returncode != 0 and "BlkioWeight" in r.stderr


def test_ps_last_size_and_stats_all(env: DockerEnv, d: Daemon) -> None:
    d.cli("run", "--name", "p1", "busybox", "sh", "-c", "head -c 300000 /dev/zero > /big", check=True)
    d.cli("run", "-d", "--name", "p2", "busybox", "sleep", "300", check=True)
    d.cli("create", "--name", "p3", "busybox", "true", check=True)
    names = d.cli("ps", "-n", "2", "--format", "{{.Names}}", check=True).stdout.split()
    assert names == ["p3", "p2"]  # newest first, any state
    assert d.cli("ps", "-l", "-q", check=True).stdout.strip() == d.client().containers.get("p3").id[:12]
    out = d.cli("ps", "-a", "-s", check=True).stdout.splitlines()
    assert out[0].split()[-1] == "SIZE"
    p1 = next(ln for ln in out if ln.endswith(")") and " p1 " in ln + " ")
    assert "(virtual " in p1
    sz = d.client().containers.get("p1", size=True)
    assert sz.size_rw is not None and sz.size_rw >= 300000
    assert sz.size_root_fs is not None and sz.size_root_fs > sz.size_rw  # busybox's layer too
    # stats: running ones by default, -a adds the stopped ones (zeros), --no-trunc full ids
    rows = d.cli("stats", "--no-stream", check=True).stdout.splitlines()[1:]
    assert [r.split()[1] for r in rows] == ["p2"]
    rows = d.cli("stats", "-a", "--no-stream", "--no-trunc", check=True).stdout.splitlines()[1:]
    assert sorted(r.split()[1] for r in rows) == ["p1", "p2", "p3"]
    assert all(len(r.split()[0]) == 64 for r in rows)
    if DOCKER is None:
        return
    j = json.loads(env.docker("ps", "-a", "-s", "--format", "{{json .}}", "-f", "name=p1").stdout)
    assert j["Names"] == "p1" and j["Size"].startswith("3") and "virtual" in j["Size"]
    assert env.docker("ps", "-n", "1", "--format", "{{.Names}}").stdout.split() == ["p3"]
    names = env.docker("stats", "-a", "--no-stream", "--format", "{{.Name}}").stdout.split()
    assert sorted(names) == ["p1", "p2", "p3"]


def test_log_rotation_keeps_max_file_files(env: DockerEnv, d: Daemon) -> None:
    import threading

    d.cli(
        *("run", "-d", "--name", "rot", "--log-opt", "max-size=2k", "--log-opt", "max-file=3"),
        *("busybox", "sleep", "300"),
        check=True,
    )
    c = d.client()
    cid = c.containers.get("rot").id
    log = d.root / "containers" / cid / "ctr.log"
    rounds, lines = 6, 60

    def caught_up(n: int) -> bool:
        """Round n is all in the log, and the file is back under max-size (rotated)."""
        try:
            text = b"".join(p.read_bytes() for p in log.parent.glob("ctr.log*"))
            small = log.stat().st_size < 2048
        except FileNotFoundError:
            return False  # rotated between the listing and the read: look again
        return f" r{n}-{lines - 1}\n".encode() in text and small

    got: list[str] = []
    follower = threading.Thread(
        target=lambda: got.extend(e.data for e in d.client().containers.stream_logs(cid, follow=True))
    )
    for n in range(rounds):
        if n == 2:
            # podkitd killed mid-way: conmon logs on, the next podkitd watches the file again
            d.kill()
            d.start()
            c = d.client()
            follower.start()  # logs -f from here: the backlog, then across the rotations
        # written to PID 1's stdout, so into the container's log (~3 kB a round)
        script = f"i=0; while [ $i -lt {lines} ]; do echo r{n}-$i > /proc/1/fd/1; i=$((i+1)); done"
        c.containers.exec(cid, ["sh", "-c", script])
        wait_for(lambda n=n: caught_up(n), what=f"round {n} written and rotated")
    files = sorted(p.name for p in log.parent.iterdir() if p.name.startswith("ctr.log"))
    assert files == ["ctr.log", "ctr.log.1", "ctr.log.2"]
    assert all(p.stat().st_size < 4096 for p in log.parent.glob("ctr.log*"))
    full = [f"r{n}-{i}" for n in range(rounds) for i in range(lines)]
    kept = d.cli("logs", "rot", check=True).stdout.split()
    # the retained tail, in order: two rotated files' worth (each over 2 kB) and what came after
    assert 2 * 2048 // 50 < len(kept) < len(full) and kept == full[-len(kept) :]
    assert d.cli("logs", "--tail", "3", "rot", check=True).stdout.split() == full[-3:]
    d.cli("stop", "-t", "0", "rot", check=True)
    follower.join(30)
    assert not follower.is_alive()
    # logs -f read on across every rotation, missing and repeating nothing
    seen = [x.strip() for x in got]
    assert seen == full[-len(seen) :] and seen[0].startswith(("r0-", "r1-"))
    if DOCKER is None:
        return
    lc = json.loads(env.docker("inspect", "-f", "{{json .HostConfig.LogConfig}}", "rot").stdout)
    assert lc == {"Type": "json-file", "Config": {"max-file": "3", "max-size": "2048"}}
    assert env.docker("logs", "--tail", "2", "rot").stdout.split() == full[-2:]
    r = env.docker("run", "--log-driver", "syslog", "busybox", "true", check=False)
    assert r.returncode != 0 and "LogConfig.Type 'syslog' is not supported" in r.stderr
    r = env.docker("run", "--log-opt", "mode=non-blocking", "busybox", "true", check=False)
    assert r.returncode != 0 and "unknown log opt 'mode'" in r.stderr
    env.docker(
        "run",
        "-d",
        "--name",
        "rot2",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sleep",
        "60",
    )
    assert c.containers.inspect("rot2")["config"]["log_max_file"] == 2


def test_cp_archive_and_follow_link(env: DockerEnv, d: Daemon, tmp_path: Path) -> None:
    import os

    d.cli("run", "-d", "--name", "cpa", "busybox", "sleep", "300", check=True)
    c = d.client()
    c.containers.exec(
        "cpa",
        [
            "sh",
            "-c",
            "echo data > /owned && chown 1234:99 /owned && ln -s /owned /lnk && ln -s nowhere /dang",
        ],
    )
    # out: without -a the files are the invoking user's (root here), -a keeps the container's
    d.cli("cp", "cpa:/owned", str(tmp_path / "plain"), check=True)
    d.cli("cp", "-a", "cpa:/owned", str(tmp_path / "kept"), check=True)
    assert (os.stat(tmp_path / "plain").st_uid, os.stat(tmp_path / "kept").st_uid) == (os.getuid(), 1234)
    assert os.stat(tmp_path / "kept").st_gid == 99
    # out: a symlink source is copied as the link, -L copies what it points to
    d.cli("cp", "cpa:/lnk", str(tmp_path / "asis"), check=True)
    assert os.readlink(tmp_path / "asis") == "/owned"
    d.cli("cp", "-L", "cpa:/lnk", str(tmp_path / "deref"), check=True)
    assert (tmp_path / "deref").read_text() == "data\n" and not (tmp_path / "deref").is_symlink()
    r = d.cli("cp", "-L", "cpa:/dang", str(tmp_path / "x"))
    assert r.returncode == 1 and "no such file or directory in the container: /dang" in r.stderr
    # in: without -a owned by the container's root, -a keeps the host's owners; -L dereferences
    src = tmp_path / "src"
    src.write_text("host\n")
    os.chown(src, 4321, 77)
    (tmp_path / "srclink").symlink_to(src)
    d.cli("cp", str(src), "cpa:/in-plain", check=True)
    d.cli("cp", "-a", str(src), "cpa:/in-kept", check=True)
    d.cli("cp", str(tmp_path / "srclink"), "cpa:/in-link", check=True)
    d.cli("cp", "-L", str(tmp_path / "srclink"), "cpa:/in-deref", check=True)
    out = c.containers.exec(
        "cpa", ["sh", "-c", "stat -c '%n %u:%g' /in-plain /in-kept; readlink /in-link; cat /in-deref"]
    )
    assert out.stdout.decode().split("\n")[:4] == ["/in-plain 0:0", "/in-kept 4321:77", str(src), "host"]
    if DOCKER is None:
        return
    env.docker("cp", "-L", "cpa:/lnk", str(tmp_path / "d-deref"))
    assert (tmp_path / "d-deref").read_text() == "data\n"
    env.docker("cp", "cpa:/lnk", str(tmp_path / "d-asis"))
    assert os.readlink(tmp_path / "d-asis") == "/owned"
    env.docker("cp", str(src), "cpa:/d-plain")
    env.docker("cp", "-a", str(src), "cpa:/d-kept")
    out = c.containers.exec("cpa", ["stat", "-c", "%u:%g", "/d-plain", "/d-kept"])
    assert out.stdout.split() == [b"0:0", b"4321:77"]
