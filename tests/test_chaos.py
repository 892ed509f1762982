"""The fault campaign's 60-second round (scripts/chaos.py; `make chaos` runs it longer).

SIGKILLs of podkitd during CLI, Docker API and CRI calls (pulls from a registry on
127.0.0.1, sandboxes and containers, streamed execs), of a container's conmon, and
into a full tmpfs root: after each restart the sentinels still run and answer exec,
every blob matches its digest, no temp file is left, nothing is half-made, a killed
pull pulls again; at the end nothing leaks. The budget includes the campaign's setup;
which kinds of rounds a 60-second run reaches depends on its seed (a time), so runs
over time cover them all. The campaign's own report is the failure message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "chaos.py"


def test_chaos_round_of_60_seconds() -> None:
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "60"], capture_output=True, text=True, timeout=400
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    report = json.loads(r.stdout)
    assert report["kill points"] > 0 and report["survived"] >= report["kill points"], report
    assert not report["failures"], report
    kills = sum(k["kills"] for k in report["per kill point"].values())
    assert kills == report["kill points"], report
