"""scripts/setup.sh on a host that lacks docker-registry (issue 10, item 13).

Debian starts the registry's service on install. setup.sh once ran `pkill -x
docker-registry` afterwards, which killed every registry of that name on the machine,
a user's own included. Now it keeps the new service from starting (a policy-rc.d that
denies only docker-registry, while apt-get runs) and stops/disables only that unit.

The package manager and the init system cannot be exercised for real in a test (no
package may be installed, no service started): apt-get, dpkg-query, invoke-rc.d,
update-rc.d, systemctl and pkill/killall are stubs on PATH that log their calls. The
script runs in a private mount namespace with a tmpfs over /usr/sbin (and /run), so
the policy-rc.d it writes is real but only this test sees it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.root

_STUB = """#!/bin/sh
echo "$(basename "$0") $*" >> {log}
"""
_APT = """#!/bin/sh
echo "apt-get $*" >> {log}
if [ "$1" = install ]; then
  if [ -x /usr/sbin/policy-rc.d ]; then
    /usr/sbin/policy-rc.d docker-registry start; echo "policy docker-registry $?" >> {log}
    /usr/sbin/policy-rc.d cron start; echo "policy cron $?" >> {log}
  else
    echo "policy none" >> {log}
  fi
fi
"""
# Every package is installed but docker-registry.
_DPKG = """#!/bin/sh
for a; do p=$a; done
[ "$p" = docker-registry ] && exit 1
printf 'install ok installed'
"""


def _run(tmp_path: Path, before: str = "", after: str = "") -> list[str]:
    stubs, log = tmp_path / "bin", tmp_path / "calls.log"
    stubs.mkdir()
    log.touch()
    for name in ("pkill", "killall", "systemctl", "invoke-rc.d", "update-rc.d"):
        (stubs / name).write_text(_STUB.format(log=log))
    (stubs / "apt-get").write_text(_APT.format(log=log))
    (stubs / "dpkg-query").write_text(_DPKG)
    for p in stubs.iterdir():
        p.chmod(0o755)
    venv = tmp_path / "venv"  # already set up: the script skips venv and pip
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\n")
    (venv / "bin" / "python").chmod(0o755)
    (venv / ".podkit-installed").touch()
    os.utime(venv / ".podkit-installed", (2**31, 2**31))  # newer than pyproject.toml
    script = f"""set -e
mount -t tmpfs tmpfs /usr/sbin
mount -t tmpfs tmpfs /run
{before}
PATH={stubs}:$PATH VENV={venv} {REPO}/scripts/setup.sh
{after}
"""
    r = subprocess.run(["unshare", "-m", "bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [*log.read_text().splitlines(), *r.stdout.splitlines()]


def test_setup_never_kills_by_name_and_denies_only_the_new_service(tmp_path: Path) -> None:
    calls = _run(tmp_path, after='[ -e /usr/sbin/policy-rc.d ] && echo "policy left" || echo "policy gone"')
    assert not [c for c in calls if c.startswith(("pkill", "killall"))], calls
    assert "policy docker-registry 101" in calls and "policy cron 0" in calls, calls
    assert "policy gone" in calls  # ours lived only while apt-get ran
    assert "invoke-rc.d docker-registry stop" in calls
    assert "update-rc.d docker-registry disable" in calls
    assert not [c for c in calls if c.startswith("systemctl")], calls


def test_setup_keeps_the_admins_policy_and_uses_systemd_when_it_runs(tmp_path: Path) -> None:
    admin = "#!/bin/sh\\nexit 0\\n"
    calls = _run(
        tmp_path,
        before=f"printf '{admin}' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; "
        "mkdir -p /run/systemd/system",
        after=f'[ "$(cat /usr/sbin/policy-rc.d)" = "$(printf \'{admin}\')" ] && echo "policy kept"',
    )
    assert not [c for c in calls if c.startswith(("pkill", "killall"))], calls
    assert "policy docker-registry 0" in calls and "policy kept" in calls, calls
    assert "systemctl disable --now docker-registry.service" in calls
    assert not [c for c in calls if c.startswith(("invoke-rc.d", "update-rc.d"))], calls
