"""Runs last (file order): after the suite, nothing the tests made is left on the host.

Only what tests make is counted: their directories are ``/var/tmp/podkit-test-*``,
their bridges ``pkt<hex>``, their subnets inside 10.200.0.0/13. A test's directory is
deleted by its ``workdir`` fixture when it ends, so anything still naming a directory
that is gone (a conmon, a mount, a podkitd) outlived its test: a leak. Bridges,
iptables rules and cgroups do not name their test; they are judged only when no test
daemon of anyone's is running (other people may be running tests on this host at the
same moment), and only if they appeared during this run (the host's state is read
when pytest collects this module, before any test runs).

Run on its own (``pytest tests/test_zz_leaks.py``) it checks processes and mounts of
finished tests only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import subprocess
from pathlib import Path

import pytest

# Reads iptables, netns and cgroups of the host: root (as a user it would see nothing).
pytestmark = pytest.mark.root

TEST_DIR = re.compile(r"/var/tmp/podkit-test-[A-Za-z0-9_]+")
TEST_NET = ipaddress.ip_network("10.200.0.0/13")
RUNTIME_BINARIES = ("conmon", "runc", "catatonit", "podkitd")


def _cmdline(pid: str) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return ""


def _processes() -> list[tuple[int, str]]:
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit() and int(e) != os.getpid():
            cmd = _cmdline(e)
            if cmd:
                out.append((int(e), cmd))
    return out


def _dead_dirs(text: str) -> list[str]:
    """Test directories named in text that no longer exist."""
    return sorted({m for m in TEST_DIR.findall(text) if not os.path.isdir(m)})


def live_test_daemons() -> list[int]:
    return [
        pid for pid, cmd in _processes() if "podkitd" in cmd and TEST_DIR.search(cmd) and not _dead_dirs(cmd)
    ]


def leaked_processes() -> list[str]:
    found = []
    for pid, cmd in _processes():
        exe = os.path.basename(cmd.split(" ", 1)[0])
        if any(b in exe or b in cmd.split(" ")[:2][-1] for b in RUNTIME_BINARIES) and _dead_dirs(cmd):
            found.append(f"pid {pid}: {cmd[:300]}")
    # a container's own processes (catatonit, sleep...) name no directory: find them by
    # their conmon parent above, or by a cgroup under a dead test's daemon (not knowable);
    # conmon is what holds them, so a leaked conmon is reported for its container.
    return found


def leaked_mounts() -> list[str]:
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            target = fields[4].replace("\\040", " ")
            if TEST_DIR.search(target) and (_dead_dirs(target) or "//deleted" in target):
                found.append(target)
    return found


def leaked_bridges_and_veths() -> list[str]:
    r = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
    found = []
    for line in r.stdout.splitlines():
        parts = line.split()
        name, addr = parts[1], parts[3]
        if name.startswith("pkt") and ipaddress.ip_interface(addr).network.subnet_of(TEST_NET):
            found.append(f"{name} {addr}")
    r = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if re.fullmatch(r"pkt[0-9a-f]{8}", name) and not any(f.startswith(name + " ") for f in found):
            found.append(f"{name} (no address)")
    return found


def leaked_iptables_rules() -> list[str]:
    found = []
    for cmd in ("iptables-save", "ip6tables-save"):
        r = subprocess.run([cmd], capture_output=True, text=True)
        for line in r.stdout.splitlines():
            if not line.startswith("-A"):
                continue
            for word in re.findall(r"10\.20[0-7]\.\d+\.\d+(?:/\d+)?", line):
                if ipaddress.ip_network(word, strict=False).subnet_of(TEST_NET):
                    found.append(line)
                    break
    return found


def leaked_cgroups() -> list[str]:
    """Container and pod cgroups under a podkit parent, in every v1 hierarchy and the
    unified one (or, on a cgroup v2 host, the root)."""
    found = []
    tops = [*Path("/sys/fs/cgroup").glob("*/podkit"), Path("/sys/fs/cgroup/podkit")]
    # pods have theirs under podkit/pods/<pod id>, their containers' below that
    pods = [p for top in tops for p in (top / "pods").glob("*") if p.is_dir()]
    for parent in [*tops, *(t / "pods" for t in tops), *pods]:
        with contextlib.suppress(OSError):
            for child in parent.iterdir():
                if child.is_dir() and re.fullmatch(r"[0-9a-f]{64}|pod-[0-9a-f]+.*", child.name):
                    found.append(str(child))
    return found


def leaked_netns() -> list[str]:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line for line in r.stdout.splitlines() if "podkit" in line or line.startswith("pkt")]


def _host_state() -> dict[str, set[str]]:
    return {
        "bridges": set(leaked_bridges_and_veths()),
        "iptables": set(leaked_iptables_rules()),
        "cgroups": set(leaked_cgroups()),
        "netns": set(leaked_netns()),
    }


# Taken when pytest collects this module, before any test of the session runs: what
# was on the host already (an earlier run's, another person's) is not this run's leak.
_BEFORE = _host_state()


@pytest.mark.timeout(60)
def test_nothing_of_finished_tests_is_left_on_the_host() -> None:
    problems = {"processes": leaked_processes(), "mounts": leaked_mounts()}
    if not live_test_daemons():
        # No test daemon runs anywhere now, so what names no directory can be judged:
        # whatever appeared since collection and is still there was left by a test.
        now = _host_state()
        problems |= {k: sorted(now[k] - _BEFORE[k]) for k in now}
    problems = {k: v for k, v in problems.items() if v}
    assert not problems, "left on the host by tests:\n" + "\n".join(
        f"{k}: {len(v)}\n  " + "\n  ".join(v[:15]) for k, v in problems.items()
    )
