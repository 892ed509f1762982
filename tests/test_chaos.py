"""The fault campaign's 60-second round (scripts/chaos.py; `make chaos` runs it longer).

SIGKILLs of podkitd during CLI, Docker API and CRI calls, and of a container's conmon:
after each restart the sentinel container still runs and answers exec, every blob
matches its digest, no temp file is left and recovery leaves nothing half-made; at
the end nothing leaks. The campaign's own report is the failure message.
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
