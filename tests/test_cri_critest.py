"""critest, the Kubernetes CRI validation suite, against a real podkitd (focused subset).

`make critest` runs every spec; here a subset that covers each area and finishes in
about a minute (sandboxes, containers, logs, exec, streaming, networking, runtime
info, image status). Skipped when the critest binary or its image builder is absent.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import critest as runner  # noqa: E402

FOCUS = (
    r"PodSandbox runtime should support basic|Container runtime should support basic operations"
    r"|Container runtime should support log|Runtime info|Streaming|Networking"
    r"|Image Manager image status|NamespaceOption"
)


@pytest.mark.root  # critest drives a podkitd of its own
@pytest.mark.skipif(runner.find_critest() is None, reason=f"critest not found at {runner.CRITEST}")
def test_critest_subset() -> None:
    args = ["--focus", FOCUS]
    try:
        from podkit.cri.streaming import StreamingServer  # noqa: F401
    except ImportError:  # cri-stream's server not landed yet: its specs cannot pass
        args += ["--skip", "Streaming"]
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "critest.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "0 failed" in out, out[-6000:]
