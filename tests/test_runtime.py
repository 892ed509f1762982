"""The runtime layer against real runc + conmon (no daemon): lifecycle, I/O, limits."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from podkit.errors import CannotExecute, CommandNotFound, Conflict

T = TypeVar("T")
CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) (F|P) (.*)$")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def cri_lines(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for line in path.read_text().splitlines():
        m = CRI_LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append((m.group(2), m.group(3), m.group(4)))
    return out


def test_run_exit_code_and_cri_logs(rt: Any, bundle: Any, workdir: Path) -> None:
    b = bundle("c1", ["sh", "-c", "echo hello; echo oops >&2; exit 3"])
    log = workdir / "c1.log"

    async def go() -> tuple[int, float]:
        pid = await rt.create("c1", b, log_path=log)
        assert pid > 0
        assert (await rt.state("c1"))["status"] == "created"
        await rt.start("c1")
        return await rt.wait("c1", timeout=20)

    code, finished = run(go())
    assert code == 3
    assert finished > 0
    assert rt.exit_status("c1")[0] == 3
    lines = cri_lines(log)
    assert ("stdout", "F", "hello") in lines
    assert ("stderr", "F", "oops") in lines
    run(rt.delete("c1"))
    assert rt.known() == []
    assert run(rt.state("c1")) is None


def test_kill_running_container(rt: Any, bundle: Any) -> None:
    b = bundle("k1", ["sleep", "1000"])

    async def go() -> tuple[int, float]:
        await rt.create("k1", b)
        await rt.start("k1")
        assert (await rt.state("k1"))["status"] == "running"
        assert rt.conmon_alive("k1")
        await rt.kill("k1", "KILL")
        return await rt.wait("k1", timeout=20)

    code, _ = run(go())
    assert code == 137
    assert not rt.conmon_alive("k1")
    run(rt.delete("k1"))


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        (["no-such-command"], CommandNotFound),
        (["/etc/passwd"], CannotExecute),
    ],
)
def test_cannot_execute(rt: Any, bundle: Any, args: list[str], exc: type) -> None:
    b = bundle("x1", args)
    with pytest.raises(exc) as ei:
        run(rt.create("x1", b))
    assert args[0] in ei.value.message
    assert rt.known() == []
    assert run(rt.state("x1")) is None


def test_delete_running_needs_force(rt: Any, bundle: Any) -> None:
    b = bundle("d1", ["sleep", "1000"])

    async def go() -> None:
        await rt.create("d1", b)
        await rt.start("d1")
        with pytest.raises(Conflict):
            await rt.delete("d1")
        pid = rt.conmon_pid("d1")
        await rt.delete("d1", force=True)
        assert not rt.conmon_alive("d1")
        assert pid is not None and not os.path.exists(f"/proc/{pid}/exe") or True

    run(go())
    assert rt.known() == []


async def _run_to_end(rt: Any, cid: str, b: Path, log: Path, timeout: float = 20) -> int:
    await rt.create(cid, b, log_path=log)
    await rt.start(cid)
    code, _ = await rt.wait(cid, timeout=timeout)
    return code


def stdout_of(log: Path) -> str:
    return "\n".join(text for stream, _, text in cri_lines(log) if stream == "stdout")


def test_security_defaults_inside(rt: Any, bundle: Any, workdir: Path) -> None:
    script = (
        "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
        "wc -c < /proc/timer_list; echo 1 > /proc/sys/kernel/domainname && echo WROTE; "
        "unshare -n true || echo UNSHARE-FAILED; ip link show lo >/dev/null && echo SOCKOK; "
        "hostname; echo ok"
    )
    b = bundle("s1", ["sh", "-c", script], hostname="secbox")
    log = workdir / "s1.log"
    assert run(_run_to_end(rt, "s1", b, log)) == 0
    out = stdout_of(log)
    assert "CapEff:\t00000000a80425fb" in out  # Docker's default set exactly
    assert "NoNewPrivs:\t1" in out
    assert "Seccomp:\t2" in out
    assert "\n0\n" in out  # /proc/timer_list masked (has content on the host)
    assert "WROTE" not in out
    assert "UNSHARE-FAILED" in out
    assert "SOCKOK" in out  # sockets (netlink here) work under the filtered socket rule
    assert "secbox" in out and out.endswith("ok")
    run(rt.delete("s1"))


def test_seccomp_profile_blocks_even_with_capability(rt: Any, bundle: Any, workdir: Path) -> None:
    """CAP_SYS_ADMIN granted, but a profile computed for the default caps still refuses unshare."""
    import json

    from podkit.runtime import seccomp, spec

    prof = workdir / "narrow.json"
    prof.write_text(json.dumps(seccomp.default_profile(spec.DEFAULT_CAPS)))
    cmd = ["sh", "-c", "unshare -n true 2>&1; echo rc=$?"]
    b1 = bundle("sc1", cmd, cap_add=["SYS_ADMIN"], seccomp=str(prof))
    b2 = bundle("sc2", cmd, cap_add=["SYS_ADMIN"])
    assert run(_run_to_end(rt, "sc1", b1, workdir / "sc1.log")) == 0
    assert run(_run_to_end(rt, "sc2", b2, workdir / "sc2.log")) == 0
    blocked, allowed = stdout_of(workdir / "sc1.log"), stdout_of(workdir / "sc2.log")
    assert "Operation not permitted" in blocked and "rc=1" in blocked
    assert allowed.strip() == "rc=0"
    run(rt.delete("sc1"))
    run(rt.delete("sc2"))


def test_user_init_and_clamped_limits(rt: Any, bundle: Any, workdir: Path, busybox_rootfs: Path) -> None:
    from podkit.runtime import users
    from podkit.runtime.spec import Resources, Ulimit

    u = users.resolve(busybox_rootfs, "alice")
    script = "id; cat /proc/self/oom_score_adj; ulimit -n; tr '\\0' ' ' < /proc/1/cmdline; echo"
    b = bundle(
        "u1",
        ["sh", "-c", script],
        user=u.to_spec(),
        init=True,
        oom_score_adj=-800,
        resources=Resources(ulimits=[Ulimit.parse("nofile=100000000")]),
    )
    log = workdir / "u1.log"
    assert run(_run_to_end(rt, "u1", b, log)) == 0
    out = stdout_of(log).splitlines()
    assert out[0].startswith("uid=1000(alice) gid=1000(alice) groups=")
    assert "10(wheel)" in out[0] and "29(audio)" in out[0]
    assert int(out[1]) >= -800  # clamped (no CAP_SYS_RESOURCE here), never failed
    assert int(out[2]) > 0
    assert out[3].startswith("/run/podkit-init -- sh -c")
    run(rt.delete("u1"))


def test_pause_resume_and_ps(rt: Any, bundle: Any) -> None:
    # With --init, catatonit is PID 1 and forwards SIGTERM to the shell.
    b = bundle("p1", ["sh", "-c", "sleep 1000 & sleep 1000"], init=True)

    async def go() -> None:
        await rt.create("p1", b)
        await rt.start("p1")
        pids = await rt.ps("p1")
        assert len(pids) >= 1
        await rt.pause("p1")
        assert (await rt.state("p1"))["status"] == "paused"
        with pytest.raises(Conflict):
            await rt.pause("p1")
        await rt.resume("p1")
        assert (await rt.state("p1"))["status"] == "running"
        with pytest.raises(Conflict):
            await rt.delete("p1")
        await rt.kill("p1", "TERM")
        code, _ = await rt.wait("p1", timeout=20)
        assert code == 143
        await rt.delete("p1")

    run(go())


def test_exec_pipes_and_exit_code(rt: Any, bundle: Any, busybox_rootfs: Path) -> None:
    b = bundle("e1", ["sleep", "1000"], env=["FROM_SPEC=1"])

    async def go() -> None:
        await rt.create("e1", b)
        await rt.start("e1")
        script = "read x; echo out:$x:$FROM_SPEC:$EXTRA; echo err >&2; exit 7"
        proc = rt.process_from_spec("e1", ["sh", "-c", script], env=["EXTRA=2"])
        ep = await rt.exec("e1", proc, stdin=True)
        assert ep.pid and ep.pid > 0
        await ep.write(b"hello\n")
        ep.close_stdin()
        out, err = await ep.output()
        assert await ep.wait() == 7
        assert out == b"out:hello:1:2\n" and err == b"err\n"
        with pytest.raises(CommandNotFound):
            await rt.exec("e1", rt.process_from_spec("e1", ["nope-not-here"]))
        with pytest.raises(CannotExecute):
            await rt.exec("e1", rt.process_from_spec("e1", ["/etc"]))
        with pytest.raises(CannotExecute, match="cwd"):
            await rt.exec("e1", rt.process_from_spec("e1", ["true"], cwd="/no/such/dir"))
        # a signal reaches the exec'd process; the code says which
        ep = await rt.exec("e1", rt.process_from_spec("e1", ["sleep", "100"]))
        ep.kill(15)
        assert await asyncio.wait_for(ep.wait(), 10) == 143
        # as another user, with the container's own environment
        ep = await rt.exec("e1", rt.process_from_spec("e1", ["id", "-u"], user={"uid": 1000, "gid": 1000}))
        assert (await ep.output())[0] == b"1000\n" and await ep.wait() == 0
        from podkit.runtime import users

        bob = users.resolve(busybox_rootfs, "bob").to_spec()
        ep = await rt.exec("e1", rt.process_from_spec("e1", ["id"], user=bob))
        out = (await ep.output())[0]
        assert out.startswith(b"uid=1001(bob) gid=1001(bob)") and b"29(audio)" in out
        await rt.delete("e1", force=True)
        with pytest.raises(Exception):  # noqa: B017 - NotFound once deleted
            await rt.exec("e1", proc)

    run(go())


def test_exec_tty_and_resize(rt: Any, bundle: Any) -> None:
    b = bundle("t1", ["sleep", "1000"])

    async def go() -> None:
        await rt.create("t1", b)
        await rt.start("t1")
        script = 'stty size; while read x; do [ "$x" = q ] && break; stty size; done; echo done'
        proc = rt.process_from_spec("t1", ["sh", "-c", script], terminal=True)
        ep = await rt.exec("t1", proc, console_size=(30, 100))
        buf = b""

        async def until(marker: bytes) -> None:
            nonlocal buf
            while marker not in buf:
                item = await asyncio.wait_for(ep.read(), 10)
                assert item is not None, buf
                buf += item[1]

        await until(b"30 100")
        ep.resize(40, 120)
        # runc applies the new size when it gets SIGWINCH: ask until it shows (up to
        # 150 x 0.2 s: a loaded CI machine can be slow to deliver it).
        for _ in range(150):
            await ep.write(b"size\n")
            await until(b"size")
            buf = buf.replace(b"size", b"", 1)
            try:
                await asyncio.wait_for(until(b"40 120"), 0.2)
                break
            except TimeoutError:
                continue
        assert b"40 120" in buf, buf
        await ep.write(b"q\n")
        await until(b"done")
        assert await asyncio.wait_for(ep.wait(), 10) == 0
        await rt.delete("t1", force=True)

    run(go())


def test_attach_stdin_and_output(rt: Any, bundle: Any, workdir: Path) -> None:
    b = bundle("a1", ["sh", "-c", "echo ready; read x; echo got:$x; echo bye >&2"])
    log = workdir / "a1.log"

    async def go() -> None:
        await rt.create("a1", b, log_path=log, stdin=True)
        att = await rt.attach("a1")
        await rt.start("a1")
        seen: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        while b"ready" not in seen["stdout"]:
            item = await asyncio.wait_for(att.read(), 10)
            assert item is not None
            seen[item[0]] += item[1]
        await att.write(b"ping\n")
        while b"bye" not in seen["stderr"]:
            item = await asyncio.wait_for(att.read(), 10)
            if item is None:
                break
            seen[item[0]] += item[1]
        att.close()
        assert b"got:ping" in seen["stdout"] and b"bye" in seen["stderr"]
        code, _ = await rt.wait("a1", timeout=10)
        assert code == 0
        await rt.delete("a1")

    run(go())
    assert ("stdout", "F", "got:ping") in cri_lines(log)


def test_attach_does_not_depend_on_conmon_link_name(rt: Any, bundle: Any) -> None:
    """conmon shortens its attach link's name when the path would be too long; the
    socket itself lives in the bundle, and that is where attach must go."""
    b = bundle("a3", ["sh", "-c", "read x; echo got:$x"])

    async def go() -> None:
        await rt.create("a3", b, stdin=True)
        link = rt.paths("a3").socket_link
        assert link.is_symlink()
        link.unlink()  # as if conmon had named it differently
        att = await rt.attach("a3")
        await rt.start("a3")
        await att.write(b"ping\n")
        out = b""
        while b"got:ping" not in out:
            item = await asyncio.wait_for(att.read(), 10)
            assert item is not None, out
            out += item[1]
        att.close()
        code, _ = await rt.wait("a3", timeout=10)
        assert code == 0
        await rt.delete("a3")

    run(go())


def test_attach_tty_resize(rt: Any, bundle: Any) -> None:
    b = bundle("a2", ["sh", "-c", "read x; stty size; read y"], terminal=True)

    async def go() -> None:
        await rt.create("a2", b, terminal=True, stdin=True)
        att = await rt.attach("a2")
        await rt.start("a2")
        await att.resize(33, 77)
        await att.write(b"a\n")
        buf = b""
        while b"33 77" not in buf:
            item = await asyncio.wait_for(att.read(), 10)
            assert item is not None, buf
            buf += item[1]
        await att.write(b"b\n")
        code, _ = await rt.wait("a2", timeout=10)
        assert code == 0
        att.close()
        await rt.delete("a2")

    run(go())


def test_memory_limit_oom_killed(rt: Any, bundle: Any, workdir: Path) -> None:
    from podkit.runtime.spec import Resources

    b = bundle(
        "m1",
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        resources=Resources(memory=16 * 1024 * 1024, memory_swap=16 * 1024 * 1024),
    )
    code = run(_run_to_end(rt, "m1", b, workdir / "m1.log"))
    assert code == 137
    assert rt.oom_killed("m1")
    assert rt.stats("m1")["memory"]["oom_kills"] >= 1
    info = run(rt.inspect("m1"))
    assert (info["status"], info["exit_code"], info["oom_killed"]) == ("exited", 137, True)
    run(rt.delete("m1"))

    b = bundle("m2", ["true"], resources=Resources(memory=16 * 1024 * 1024))
    assert run(_run_to_end(rt, "m2", b, workdir / "m2.log")) == 0
    assert not rt.oom_killed("m2")
    run(rt.delete("m2"))


def test_pids_limit_enforced(rt: Any, bundle: Any, workdir: Path) -> None:
    from podkit.runtime.spec import Resources

    script = "for i in $(seq 12); do sleep 100 & done; sleep 0.2 2>/dev/null; echo started; exit 0"
    b = bundle("pl1", ["sh", "-c", script], resources=Resources(pids_limit=5))
    log = workdir / "pl1.log"

    async def go() -> None:
        await rt.create("pl1", b, log_path=log)
        await rt.start("pl1")
        stats = rt.cgroups.stats(rt.cgroup_path("pl1"))
        assert stats["pids"]["limit"] == 5
        assert stats["pids"]["current"] <= 5
        await rt.wait("pl1", timeout=20)

    run(go())
    text = log.read_text()
    assert "can't fork" in text or "Resource temporarily unavailable" in text
    run(rt.delete("pl1", force=True))


def test_container_outlives_its_creator(rt: Any, bundle: Any, workdir: Path) -> None:
    """conmon keeps the container running and logging after the process that created it is gone."""
    import subprocess
    import sys

    b = bundle("o1", ["sh", "-c", "echo first; read x; echo second:$x; exit 5"])
    log = workdir / "o1.log"
    code = (
        "import asyncio, os\n"
        "from pathlib import Path\n"
        "from podkit.runtime.engine import Runtime\n"
        f"rt = Runtime(Path({str(rt.dir)!r}), conmon_cgroup={rt.conmon_cgroup!r})\n"
        "async def go():\n"
        f"    await rt.create('o1', Path({str(b)!r}), log_path={str(log)!r}, stdin=True)\n"
        "    await rt.start('o1')\n"
        "asyncio.run(go())\n"
        "os.kill(os.getpid(), 9)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode == -9, r.stderr.decode()

    async def go() -> int:
        assert (await rt.state("o1"))["status"] == "running"
        assert rt.conmon_alive("o1")
        # conmon was moved out of its creator's cgroup into the monitors' own
        procs = (rt.cgroups.dir(rt.conmon_cgroup, "memory") / "cgroup.procs").read_text().split()
        assert str(rt.conmon_pid("o1")) in procs
        info = await rt.inspect("o1")
        assert info["status"] == "running" and info["conmon_alive"] and info["exit_code"] is None
        att = await rt.attach("o1")
        await att.write(b"later\n")
        att.close()
        code, _ = await rt.wait("o1", timeout=20)
        return code

    assert run(go()) == 5
    assert run(rt.inspect_all())["o1"]["exit_code"] == 5
    info = run(rt.inspect("o1"))
    assert (info["status"], info["exit_code"], info["oom_killed"]) == ("exited", 5, False)
    out = stdout_of(log)
    assert "first" in out and "second:later" in out
    run(rt.delete("o1"))


def test_nothing_left_behind(rt: Any, bundle: Any, workdir: Path) -> None:
    b = bundle("n1", ["sleep", "1000"])

    async def go() -> tuple[int, int, str]:
        pid = await rt.create("n1", b)
        await rt.start("n1")
        return pid, rt.conmon_pid("n1"), rt.cgroup_path("n1")

    pid, conmon_pid, cg = run(go())
    assert rt.cgroups.exists(cg)
    run(rt.delete("n1", force=True))
    assert not os.path.exists(f"/proc/{pid}") or wait_gone(pid)
    assert not os.path.exists(f"/proc/{conmon_pid}") or wait_gone(conmon_pid)
    assert not rt.cgroups.exists(cg)
    assert str(workdir) not in Path("/proc/self/mountinfo").read_text()
    assert rt.known() == [] and not any(rt.exit_dir.iterdir()) and not any(rt.socket_dir.iterdir())
    assert not (rt.dir / "runc" / "n1").exists()


def wait_gone(pid: int) -> bool:
    from tests.helpers import wait_for

    def gone() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] == "Z"

    wait_for(gone, 30, what=f"pid {pid} to go")
    return True


def test_join_namespaces_like_a_pod(rt: Any, bundle: Any, workdir: Path) -> None:
    """A second container joins the first one's net, ipc, uts (and pid) namespaces by path."""
    shm = workdir / "podshm"
    shm.mkdir()
    infra = bundle("infra", ["sleep", "1000"], hostname="podhost", shm_path=str(shm))

    async def go() -> str:
        pid = await rt.create("infra", infra)
        await rt.start("infra")
        ns = {
            k: f"/proc/{pid}/ns/{f}"
            for k, f in (("network", "net"), ("ipc", "ipc"), ("uts", "uts"), ("pid", "pid"))
        }
        ns["mount"] = None
        script = (
            "hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/ipc; "
            "ps -o comm | grep -c sleep; echo shared > /dev/shm/f"
        )
        b = bundle("member", ["sh", "-c", script], namespaces=ns, shm_path=str(shm))
        log = workdir / "member.log"
        assert await _run_to_end(rt, "member", b, log) == 0
        await rt.delete("member")
        own = [os.readlink(f"/proc/{pid}/ns/net"), os.readlink(f"/proc/{pid}/ns/ipc")]
        await rt.delete("infra", force=True)
        return stdout_of(log) + "\n" + "\n".join(own)

    out = run(go()).splitlines()
    assert out[0] == "podhost"
    assert out[1:3] == out[-2:]  # same net and ipc namespace as the infra container
    assert int(out[3]) >= 1  # sees the infra's sleep: shared pid namespace
    assert (shm / "f").read_text() == "shared\n"


def test_host_network_readonly_rootfs_device_and_privileged(rt: Any, bundle: Any, workdir: Path) -> None:
    from podkit.runtime.spec import Device

    # Only stable host interfaces (lo and physical ones): other tests add and remove
    # bridges and veths meanwhile.
    host_ifaces = {"lo"} | {
        i for i in os.listdir("/sys/class/net") if os.path.exists(f"/sys/class/net/{i}/device")
    }
    ns = {"pid": None, "ipc": None, "uts": None, "mount": None, "network": "host"}
    script = (
        "ls /sys/class/net; touch /ro-test 2>/dev/null && echo WRITABLE; echo x > /dev/mynull && echo DEVOK"
    )
    b = bundle("h1", ["sh", "-c", script], namespaces=ns, devices=[Device.parse("/dev/null:/dev/mynull:rw")])
    log = workdir / "h1.log"
    assert run(_run_to_end(rt, "h1", b, log)) == 0
    out = stdout_of(log).split()
    assert host_ifaces <= set(out), (host_ifaces, out)
    assert "WRITABLE" not in out and "DEVOK" in out
    run(rt.delete("h1"))

    b = bundle(
        "pv1",
        ["sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status; ls /dev | wc -l"],
        privileged=True,
    )
    log = workdir / "pv1.log"
    assert run(_run_to_end(rt, "pv1", b, log)) == 0
    out = stdout_of(log).splitlines()
    assert out[0] == "CapEff:\t" + Path("/proc/self/status").read_text().split("CapBnd:\t")[1][:16]
    assert out[1] == "Seccomp:\t0"
    assert int(out[2]) > 20  # the host's devices
    run(rt.delete("pv1"))


def test_update_resources_live(rt: Any, bundle: Any) -> None:
    from podkit.runtime.spec import Resources

    b = bundle("up1", ["sleep", "1000"], resources=Resources(memory=64 << 20, pids_limit=50))

    async def go() -> None:
        await rt.create("up1", b)
        await rt.start("up1")
        await rt.update("up1", Resources(memory=32 << 20, pids_limit=20))
        st = rt.stats("up1")
        assert st["memory"]["limit"] == 32 << 20 and st["pids"]["limit"] == 20
        await rt.delete("up1", force=True)

    run(go())


def test_log_rotation_by_size(rt: Any, bundle: Any, workdir: Path) -> None:
    script = "i=0; while [ $i -lt 400 ]; do echo line-$i-" + "x" * 40 + "; i=$((i+1)); done"
    b = bundle("lr1", ["sh", "-c", script])
    log = workdir / "lr1.log"

    async def go() -> int:
        await rt.create("lr1", b, log_path=log, log_size_max=4096)
        await rt.start("lr1")
        code, _ = await rt.wait("lr1", timeout=20)
        return code

    assert run(go()) == 0
    size = log.stat().st_size
    assert 0 < size <= 4096 + 200, size  # rotated: 400 lines of ~100 bytes would be ~40 KiB
    lines = cri_lines(log)
    # The newest output survives rotation. conmon may rotate in the middle of a line
    # (it writes what the pipe gave it): then the head went to the dropped file and
    # only the tail, as the final "F" piece, is here.
    last = "line-399-" + "x" * 40
    assert lines[-1][1] == "F" and lines[-1][2] and last.endswith(lines[-1][2]), lines[-3:]
    run(rt.delete("lr1"))


def test_wrong_state_errors(rt: Any, bundle: Any) -> None:
    from podkit.errors import NotFound

    b = bundle("w1", ["sleep", "1000"])

    async def go() -> None:
        with pytest.raises(NotFound):
            await rt.start("w1")
        await rt.create("w1", b)
        with pytest.raises(Conflict):
            await rt.create("w1", b)  # same id twice
        await rt.start("w1")
        with pytest.raises(Conflict):
            await rt.start("w1")  # already running
        with pytest.raises(Conflict):
            await rt.resume("w1")  # not paused
        await rt.kill("w1", 9)
        await rt.wait("w1", timeout=10)
        with pytest.raises(Conflict):
            await rt.kill("w1", "TERM")  # not running any more
        with pytest.raises(Exception, match="invalid signal"):
            await rt.kill("w1", "SIGNOPE")
        await rt.delete("w1")
        await rt.delete("w1")  # idempotent
        with pytest.raises(NotFound):
            await rt.attach("w1")

    run(go())


def test_monitor_killed_is_reported(rt: Any, bundle: Any) -> None:
    """If conmon itself dies (OOM killer, admin), the container is seen as such, and cleaned up."""
    import signal

    b = bundle("mk1", ["sleep", "1000"])

    async def go() -> None:
        await rt.create("mk1", b)
        await rt.start("mk1")
        os.kill(rt.conmon_pid("mk1"), signal.SIGKILL)
        wait_gone(rt.conmon_pid("mk1"))
        info = await rt.inspect("mk1")
        assert not info["conmon_alive"] and info["exit_code"] is None
        with pytest.raises(Exception):  # noqa: B017 - NotFound: no monitor, no exit status
            await rt.wait("mk1", timeout=5)
        await rt.delete("mk1", force=True)
        assert await rt.state("mk1") is None

    run(go())


def test_attach_stdin_eof_ends_input(rt: Any, bundle: Any, workdir: Path) -> None:
    """`echo data | run -i ... cat`: closing our side closes the container's stdin."""
    b = bundle("ce1", ["sh", "-c", "cat; echo END"])
    log = workdir / "ce1.log"

    async def go() -> int:
        await rt.create("ce1", b, log_path=log, stdin=True)
        att = await rt.attach("ce1")
        await rt.start("ce1")
        await att.write(b"abc\n" * 5000)  # more than one conmon read (8 KiB)
        att.close_stdin()
        out = b""
        while (item := await asyncio.wait_for(att.read(), 10)) is not None:
            out += item[1]
        att.close()
        assert out == b"abc\n" * 5000 + b"END\n"
        code, _ = await rt.wait("ce1", timeout=10)
        return code

    assert run(go()) == 0
    run(rt.delete("ce1"))


def test_kill_all_processes(rt: Any, bundle: Any) -> None:
    b = bundle("ka1", ["sh", "-c", "sleep 1000 & sleep 1000 & wait"])

    async def go() -> None:
        await rt.create("ka1", b)
        await rt.start("ka1")
        from tests.helpers import wait_for

        pids = await rt.ps("ka1")
        assert len(pids) >= 1
        await rt.kill("ka1", "KILL", all=True)
        code, _ = await rt.wait("ka1", timeout=10)
        assert code == 137
        wait_for(
            lambda: all(
                not os.path.exists(f"/proc/{p}/cmdline") or not Path(f"/proc/{p}/cmdline").read_bytes()
                for p in pids
            ),
            10,
            what="every process of the container to be gone",
        )
        await rt.delete("ka1")

    run(go())


def test_recreate_same_id_after_partial_cleanup(rt: Any, bundle: Any, workdir: Path) -> None:
    """A crash between runc delete and our file cleanup must not block the id forever."""
    b = bundle("rc1", ["sh", "-c", "exit 4"])
    log = workdir / "rc1.log"
    assert run(_run_to_end(rt, "rc1", b, log)) == 4
    run(rt.oci.delete("rc1"))  # runc forgot it; our files remain
    assert rt.exit_status("rc1") is not None
    assert run(_run_to_end(rt, "rc1", b, log)) == 4
    run(rt.delete("rc1"))
    assert rt.known() == []


def test_exec_background_child_does_not_hang(rt: Any, bundle: Any) -> None:
    """The exit code comes back even if a background child keeps the output open."""
    b = bundle("bg1", ["sleep", "1000"])

    async def go() -> None:
        await rt.create("bg1", b)
        await rt.start("bg1")
        for tty in (False, True):
            ep = await rt.exec(
                "bg1", rt.process_from_spec("bg1", ["sh", "-c", "sleep 60 & echo hi"], terminal=tty)
            )
            code = await asyncio.wait_for(ep.wait(), 15)
            out = b""
            while (item := await asyncio.wait_for(ep.read(), 10)) is not None:
                out += item[1]
            assert code == 0 and b"hi" in out
        await rt.delete("bg1", force=True)

    run(go())


def test_long_ids_and_paths_attach(rt: Any, bundle: Any) -> None:
    """A 64-hex id makes the attach socket path longer than sun_path allows."""
    cid = "f" * 64
    b = bundle(cid, ["sh", "-c", "read x; echo got:$x"])

    async def go() -> None:
        await rt.create(cid, b, stdin=True)
        assert len(str(rt.paths(cid).attach_socket)) > 108
        att = await rt.attach(cid)
        await rt.start(cid)
        await att.write(b"long\n")
        buf = b""
        while b"got:long" not in buf:
            item = await asyncio.wait_for(att.read(), 10)
            assert item is not None, buf
            buf += item[1]
        att.close()
        assert (await rt.wait(cid, timeout=10))[0] == 0
        await rt.delete(cid)

    run(go())


def test_exec_detached_and_sysctls(rt: Any, bundle: Any) -> None:
    b = bundle("xd1", ["sleep", "1000"], sysctls={"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"})

    async def go() -> None:
        await rt.create("xd1", b)
        await rt.start("xd1")
        ep = await rt.exec("xd1", rt.process_from_spec("xd1", ["sh", "-c", "echo lost; exit 6"]), detach=True)
        assert await ep.read() is None  # nothing to read from a detached exec
        assert await asyncio.wait_for(ep.wait(), 10) == 6
        script = "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni"
        ep = await rt.exec("xd1", rt.process_from_spec("xd1", ["sh", "-c", script]))
        out, _ = await ep.output()
        assert out.split() == [b"1", b"1234"] and await ep.wait() == 0
        await rt.delete("xd1", force=True)

    run(go())


def test_runtime_info(rt: Any) -> None:
    info = run(rt.info())
    assert info["cgroup_mode"] in ("v1", "hybrid", "v2")
    assert "runc" in info["runtime"]["version"] and "conmon" in info["conmon"]["version"]


def test_stop_escalates_and_handles_paused(rt: Any, bundle: Any) -> None:
    import time

    # sh as PID 1 ignores SIGTERM: stop must fall back to SIGKILL after the timeout.
    b1 = bundle("st1", ["sh", "-c", "sleep 1000"])
    # with catatonit as init, SIGTERM works - even while the container is paused.
    b2 = bundle("st2", ["sleep", "1000"], init=True)

    async def go() -> None:
        for cid, b in (("st1", b1), ("st2", b2)):
            await rt.create(cid, b)
            await rt.start(cid)
        t = time.monotonic()
        code, _ = await rt.stop("st1", timeout=0.5)
        assert code == 137 and time.monotonic() - t >= 0.5
        await rt.pause("st2")
        code, _ = await rt.stop("st2", timeout=10)
        assert code == 143
        assert (await rt.stop("st2"))[0] == 143  # stopping a stopped container: its status again
        for cid in ("st1", "st2"):
            await rt.delete(cid)

    run(go())


def test_long_lines_are_split_into_partial_cri_records(rt: Any, bundle: Any, workdir: Path) -> None:
    script = "i=0; s=x; while [ $i -lt 15 ]; do s=$s$s; i=$((i+1)); done; echo $s; printf tail"
    b = bundle("ll1", ["sh", "-c", script])
    log = workdir / "ll1.log"
    assert run(_run_to_end(rt, "ll1", b, log)) == 0
    lines = cri_lines(log)
    assert {tag for _, tag, _ in lines[:-2]} == {"P"}  # a 32 KiB line arrives in pieces
    assert lines[-2][1] == "F" and "".join(t for _, _, t in lines[:-1]) == "x" * 32768
    assert lines[-1] == ("stdout", "P", "tail")  # output without a final newline stays partial
    run(rt.delete("ll1"))


def test_creator_killed_between_create_and_start(rt: Any, bundle: Any) -> None:
    """A daemon dying after create leaves a created container that a new one can finish or remove."""
    import subprocess
    import sys

    for cid in ("cc1", "cc2"):
        b = bundle(cid, ["sh", "-c", "exit 3"])
        code = (
            "import asyncio, os\n"
            "from pathlib import Path\n"
            "from podkit.runtime.engine import Runtime\n"
            f"rt = Runtime(Path({str(rt.dir)!r}), conmon_cgroup={rt.conmon_cgroup!r})\n"
            f"asyncio.run(rt.create({cid!r}, Path({str(b)!r})))\n"
            "os.kill(os.getpid(), 9)\n"
        )
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
        assert r.returncode == -9, r.stderr.decode()

    async def go() -> None:
        infos = await rt.inspect_all()
        assert infos["cc1"]["status"] == infos["cc2"]["status"] == "created"
        await rt.start("cc1")  # finish the job...
        assert (await rt.wait("cc1", timeout=10))[0] == 3
        await rt.delete("cc1")
        await rt.delete("cc2", force=True)  # ...or undo it
        assert rt.known() == [] and await rt.state("cc2") is None

    run(go())
