"""cgroups: mode detection, parents (pod cgroups) with limits, stats, OOM, removal.

v1 is exercised live (this host runs v1 + a hybrid cgroup2 mount); v2 on a fake
cgroup2 tree of plain files in a temp dir (no v2 host here) - the reader only
reads and writes files, so the fake tree exercises the same code.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from podkit.errors import Conflict, InvalidArgument
from podkit.runtime.cgroups import (
    CgroupManager,
    ParentLimits,
    detect,
    shares_to_weight,
    v1_mounts_from_mountinfo,
)
from podkit.runtime.spec import Resources

# ------------------------------------------------------------------ v2 fixture


def make_v2_tree(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("1\n")
    return root


def fill_v2_leaf(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "cgroup.procs").write_text("101\n102\n")
    (d / "cpu.stat").write_text(
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"
        "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
    )
    (d / "memory.current").write_text("10485760\n")
    (d / "memory.max").write_text("67108864\n")
    (d / "memory.peak").write_text("20971520\n")
    (d / "memory.stat").write_text("anon 6291456\nfile 4194304\ninactive_file 2097152\nactive_file 2097152\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n")
    (d / "pids.current").write_text("2\n")
    (d / "pids.max").write_text("max\n")
    (d / "io.stat").write_text(
        "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
        "8:16 rbytes=1000 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n"
    )


def test_detect_modes(tmp_path: Path) -> None:
    v2 = make_v2_tree(tmp_path / "v2")
    assert detect(v2) == "v2"
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "cgroup.clone_children").write_text("0")
    assert detect(v1) == "v1"
    make_v2_tree(v1 / "unified")
    assert detect(v1) == "hybrid"
    assert detect() in ("v1", "hybrid", "v2")  # the live host


def test_v2_stats_from_fixture(tmp_path: Path) -> None:
    root = make_v2_tree(tmp_path / "cg")
    fill_v2_leaf(root / "podkit" / "default" / "c1")
    m = CgroupManager(root=root)
    assert m.mode == "v2" and m.unified
    st = m.stats("/podkit/default/c1")
    assert st["cpu"] == {"usage_ns": 2_500_000_000, "user_ns": 2_000_000_000, "system_ns": 500_000_000}
    assert st["memory"]["usage"] == 10485760
    assert st["memory"]["working_set"] == 10485760 - 2097152
    assert st["memory"]["limit"] == 67108864
    assert st["memory"]["rss"] == 6291456 and st["memory"]["cache"] == 4194304
    assert st["memory"]["max_usage"] == 20971520
    assert st["pids"] == {"current": 2, "limit": None}
    assert st["blkio"] == {"read_bytes": 5096, "write_bytes": 8192}
    assert m.oom_killed("/podkit/default/c1") and m.oom_kills("/podkit/default/c1") == 1
    assert m.pids("/podkit/default/c1") == [101, 102]
    # An empty cgroup (controllers not enabled) reads as unknowns, not errors.
    (root / "podkit" / "empty").mkdir()
    st = m.stats("/podkit/empty")
    assert st["memory"]["usage"] is None and st["cpu"]["usage_ns"] is None
    assert not m.oom_killed("/podkit/empty")


def test_v2_create_parent_writes_limits(tmp_path: Path) -> None:
    root = make_v2_tree(tmp_path / "cg")
    m = CgroupManager(root=root)
    limits = ParentLimits(memory=128 << 20, cpus=0.5, cpu_shares=1024, pids_limit=50)
    m.create_parent("/podkit/pods/p1", limits)
    d = root / "podkit" / "pods" / "p1"
    assert (d / "memory.max").read_text() == str(128 << 20)
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "cpu.weight").read_text() == str(shares_to_weight(1024))
    assert (d / "pids.max").read_text() == "50"
    # controllers were enabled for the children on the way down
    assert "+memory" in (root / "cgroup.subtree_control").read_text()
    assert "+pids" in (root / "podkit" / "pods" / "cgroup.subtree_control").read_text()
    assert "hugetlb" not in (root / "cgroup.subtree_control").read_text()
    assert m.ancestor_cpu_limit("/podkit/pods/p1/c1") is None  # v2 allows a child above its parent
    m.add_process("/podkit/conmon", 4242)  # a fake tree: the pid is just written
    assert (root / "podkit" / "conmon" / "cgroup.procs").read_text() == "4242"
    assert shares_to_weight(2) == 1 and shares_to_weight(262144) == 10000 and shares_to_weight(1024) == 39


def test_v1_mountinfo_parsing() -> None:
    text = (
        "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
        "31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "32 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        "33 25 0:29 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
    )
    m = v1_mounts_from_mountinfo(text)
    assert m["cpu"] == m["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")
    assert m["memory"] == Path("/sys/fs/cgroup/memory")
    assert m["name=systemd"] == Path("/sys/fs/cgroup/systemd")
    assert "unified" not in str(m.values())


def test_bad_paths() -> None:
    m = CgroupManager()
    for bad in ("", "/", "..", "/a/../.."):
        with pytest.raises(InvalidArgument):
            m.dir(bad)
    # ".." never climbs out of the cgroup root
    assert m.dir("/../../x", "memory") == m.dir("/x", "memory")
    assert m.dir("/../../x", "memory").parent in m.hierarchies()


@pytest.mark.skipif(detect() == "v2", reason="live v1 test; this host runs cgroup v2")
def test_v1_live_parent_container_stats_and_cleanup(rt: Any, bundle: Any, workdir: Path) -> None:
    m = rt.cgroups
    parent = f"{rt.test_cgroup_parent}/pod1"
    m.create_parent(parent, ParentLimits(memory=256 << 20, cpus=1.0, pids_limit=64))
    assert (m.dir(parent, "memory") / "memory.limit_in_bytes").read_text().strip() == str(256 << 20)
    assert (m.dir(parent, "pids") / "pids.max").read_text().strip() == "64"
    assert (m.dir(parent, "cpu") / "cpu.cfs_quota_us").read_text().strip() == "100000"
    b = bundle(
        "cg1",
        ["sh", "-c", "dd if=/dev/zero of=/tmp/f bs=1M count=4 2>/dev/null; sleep 1000"],
        cgroups_path=f"{parent}/cg1",
        resources=Resources(memory=64 << 20, pids_limit=10, cpus=2.0),
    )

    async def go() -> None:
        await rt.create("cg1", b)
        await rt.start("cg1")

    asyncio.run(go())
    cg = rt.cgroup_path("cg1")
    assert cg == f"{parent}/cg1"

    def settled() -> dict[str, Any] | None:
        st = m.stats(cg)
        return st if (st["memory"]["usage"] or 0) >= 4 << 20 else None

    from tests.helpers import wait_for

    st = wait_for(settled, 30, what="container memory usage")
    # v1 refuses a child quota above the pod's: the spec fitted 2 CPUs to the parent's 1.
    assert (m.dir(cg, "cpu") / "cpu.cfs_quota_us").read_text().strip() == "100000"
    assert st["memory"]["limit"] == 64 << 20
    assert st["cpu"]["usage_ns"] > 0
    assert 1 <= st["pids"]["current"] <= 10 and st["pids"]["limit"] == 10
    assert not m.oom_killed(cg)
    assert set(m.pids(cg)) >= set(asyncio.run(rt.ps("cg1")))
    # The parent sees its child's usage (hierarchical accounting).
    assert m.stats(parent)["memory"]["usage"] >= 4 << 20  # the child's 4 MiB tmpfs file
    with pytest.raises(Conflict):
        m.remove(parent)  # a live container is inside
    asyncio.run(rt.delete("cg1", force=True))
    assert not m.exists(cg)
    m.remove(parent)
    assert not m.exists(parent)

    # Empty ancestors are cleaned up to a stop point, and no further.
    deep = f"{rt.test_cgroup_parent}/a/b/c"
    m.create_parent(deep)
    m.remove(deep)
    m.remove_empty_parents(deep, stop_at=f"{rt.test_cgroup_parent}/a")
    assert not m.exists(f"{rt.test_cgroup_parent}/a/b") and m.exists(f"{rt.test_cgroup_parent}/a")
    m.remove(f"{rt.test_cgroup_parent}/a")


@pytest.mark.skipif(detect() != "hybrid", reason="needs the hybrid cgroup2 mount of a v1 host")
def test_v2_reader_on_the_live_hybrid_tree(rt: Any, bundle: Any) -> None:
    """runc also places containers in the hybrid cgroup2 tree: read it with the v2 code."""
    from podkit.runtime.cgroups import CGROUP_ROOT

    b = bundle("hy1", ["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000"])

    async def go() -> list[int]:
        await rt.create("hy1", b)
        await rt.start("hy1")
        return await rt.ps("hy1")

    pids = asyncio.run(go())
    v2 = CgroupManager(root=CGROUP_ROOT / "unified", mode="v2")
    cg = rt.cgroup_path("hy1")
    assert set(v2.pids(cg)) == set(pids)
    from tests.helpers import wait_for

    st = wait_for(lambda: (s := v2.stats(cg))["cpu"]["usage_ns"] and s, 30, what="cpu usage in cgroup2")
    assert st["cpu"]["usage_ns"] > 0 and st["memory"]["usage"] is None  # no memory controller there
    asyncio.run(rt.delete("hy1", force=True))
    assert not (CGROUP_ROOT / "unified" / cg.lstrip("/")).exists()


@pytest.mark.skipif(detect() == "v2", reason="live v1 test; this host runs cgroup v2")
def test_teardown_removal_kills_what_is_left_and_waits_for_it(rt: Any) -> None:
    """A teardown's remove (settle, kill) takes a cgroup whose last process is still
    there; a plain remove refuses it and leaves the process alone."""
    import subprocess

    m = rt.cgroups
    parent = f"{rt.test_cgroup_parent}/leftover"
    m.create_parent(f"{parent}/ctr")
    proc = subprocess.Popen(["sleep", "300"])
    try:
        joined = 0
        for h in ("pids", "memory", "cpu", "freezer"):
            procs = m.dir(f"{parent}/ctr", h) / "cgroup.procs"
            if procs.exists():
                procs.write_text(str(proc.pid))
                joined += 1
        assert joined
        with pytest.raises(Conflict, match="still has processes"):
            m.remove(parent, settle=0.2)
        assert proc.poll() is None and m.exists(f"{parent}/ctr")
        m.remove(parent, settle=5.0, kill=True)
        assert not m.exists(parent)
        assert proc.wait(timeout=10) == -9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        m.remove(parent, settle=5.0)
