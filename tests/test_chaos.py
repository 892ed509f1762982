"""The fault campaign's 60-second round (scripts/chaos.py; `make chaos` runs it longer).

SIGKILLs of podkitd during CLI, Docker API and CRI calls (pulls from a registry on
127.0.0.1, sandboxes and containers, published ports, pods, streamed execs, and the
pool's refills and the background teardowns after an answer), of a container's
conmon, of a runc, CNI plugin or iptables-restore of podkitd's mid-operation, and into
a full tmpfs root: after each restart the sentinels still run and answer exec, every
blob matches its digest, no temp file is left, nothing is half-made or unaccounted
for, a killed pull pulls again; at the end nothing leaks. The budget includes the
campaign's setup; which kinds of rounds a 60-second run reaches depends on its seed
(the time, or PODKIT_CHAOS_SEED), so runs over time cover them all. The seed and the
campaign's own report are the failure message (replay: scripts/chaos.py --seed S).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "chaos.py"


def test_chaos_round_of_60_seconds() -> None:
    seed = int(os.environ.get("PODKIT_CHAOS_SEED") or time.time())
    args = [sys.executable, str(SCRIPT), "--seconds", "60", "--seed", str(seed)]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=400)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"seed {seed}: the campaign hung\n{e.stdout!r}"[-4000:]) from None
    assert r.returncode == 0, f"seed {seed}\n" + r.stdout[-4000:] + r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["seed"] == seed
    assert report["rounds"] > 0 and report["survived"] == report["rounds"], f"seed {seed}: {report}"
    assert not report["failures"], f"seed {seed}: {report}"
    kills = sum(k["kills"] for k in report["per kill point"].values())
    assert kills == report["kill points"] + report["child kills"], f"seed {seed}: {report}"
