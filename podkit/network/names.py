"""Name resolution on user networks, served by Debian's aardvark-dns.

Containers and pods on the same user-defined network resolve each other by
container name, ``--network-alias``, pod name and short id; other names are
forwarded to the host's resolvers. The default network resolves no names (docker's
rule for its default bridge).

Why aardvark-dns and not a resolver of podkit's own: it is the part podman uses
for exactly this, packaged in Debian, small (one Rust process for every network),
and it runs outside podkitd — it daemonizes itself — so containers keep resolving
while podkitd is stopped, restarting or SIGKILLed. podkit only writes its
configuration: one file per network under ``<state>/network/aardvark``, whose
first line is the address aardvark listens on (the network's gateway, port 53)
and whose other lines are ``<owner id> <ipv4> <ipv6> <name,name...>``; a SIGHUP
makes aardvark re-read them. A network's file goes with its last member and
aardvark exits by itself when no file is left, so nothing outlives the last
container.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path

from podkit.network.config import Network
from podkit.network.context import NetworkContext
from podkit.runtime import proc_identity

log = logging.getLogger(__name__)

SEARCH_PATH = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns")
PORT = 53
PID_FILE = "aardvark.pid"


def find_binary() -> str | None:
    for p in SEARCH_PATH:
        if os.access(p, os.X_OK):
            return p
    return shutil.which("aardvark-dns")


def config_dir(ctx: NetworkContext) -> Path:
    return ctx.state / "network" / "aardvark"


def serves(ctx: NetworkContext, n: Network) -> bool:
    """Whether members of this network get names (not on the default one; only with aardvark)."""
    return not n.default and n.name != ctx.default_name and find_binary() is not None


def dns_names(names: list[str]) -> list[str]:
    """The names as aardvark takes them: no empties, no commas or spaces, no repeats."""
    out = [n for n in names if n and "," not in n and not any(c.isspace() for c in n)]
    return list(dict.fromkeys(out))


def _read(path: Path) -> tuple[str, list[str]]:
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return "", []
    return (lines[0] if lines else ""), [ln for ln in lines[1:] if ln.strip()]


def _write(path: Path, head: str, entries: list[str]) -> None:
    if not entries:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join([head, *entries]) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def add(
    ctx: NetworkContext, n: Network, owner_id: str, ip: str, names: list[str], short_id: str | None = None
) -> bool:
    """Record an owner's names on a network and have aardvark serve them; False if not served.

    ``short_id``: the 12-character name it answers to, when the owner (a pre-warmed
    sandbox's id) is not the container that uses it."""
    if not ip or not serves(ctx, n):
        return False
    path = config_dir(ctx) / n.name
    _, entries = _read(path)
    entries = [e for e in entries if e.split(" ", 1)[0] != owner_id]
    short = short_id if short_id is not None else owner_id[:12]
    entries.append(f"{owner_id} {ip}  {','.join(dns_names([*names, short]))}")
    _write(path, n.gateway, entries)
    reload(ctx)
    return True


def rename(ctx: NetworkContext, owner_id: str, names: list[str], short_id: str | None = None) -> None:
    """Give an owner new names on every network it is in (a pod whose members changed);
    ``short_id`` as in ``add``."""
    short = short_id if short_id is not None else owner_id[:12]
    changed = False
    for path in _files(ctx):
        head, entries = _read(path)
        out = []
        for e in entries:
            parts = e.split(" ")
            if parts[0] == owner_id and len(parts) >= 4:
                e = " ".join([*parts[:3], ",".join(dns_names([*names, short]))])
                changed = True
            out.append(e)
        _write(path, head, out)
    if changed:
        reload(ctx)


def remove(ctx: NetworkContext, network: str, owner_id: str) -> None:
    path = config_dir(ctx) / network
    head, entries = _read(path)
    kept = [e for e in entries if e.split(" ", 1)[0] != owner_id]
    if len(kept) == len(entries):
        return
    _write(path, head, kept)
    reload(ctx)


def drop_network(ctx: NetworkContext, network: str) -> None:
    path = config_dir(ctx) / network
    if path.exists():
        _write(path, "", [])
        reload(ctx)


def _files(ctx: NetworkContext) -> list[Path]:
    d = config_dir(ctx)
    if not d.is_dir():
        return []
    return [p for p in d.iterdir() if p.is_file() and p.name != PID_FILE and not p.name.startswith(".")]


def _running(ctx: NetworkContext) -> int | None:
    """The pid of this state's aardvark, if it runs (checked against its command line)."""
    try:
        pid = int((config_dir(ctx) / PID_FILE).read_text().strip())
        return pid if _is_ours(ctx)(pid) is None else None
    except (OSError, ValueError):
        return None


def _is_ours(ctx: NetworkContext) -> proc_identity.Check:
    """This state's aardvark: its command line names our config dir."""
    d = str(config_dir(ctx)).encode()

    def check(pid: int) -> str | None:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if not cmd or not cmd[0].endswith(b"aardvark-dns") or d not in cmd:
            return f"pid {pid} is not the aardvark-dns of {d.decode()}"
        return None

    return check


def reload(ctx: NetworkContext) -> None:
    """Make aardvark serve the files as they are now: SIGHUP it, or start it if it is not running."""
    pid = _running(ctx)
    # through a checked pidfd: the pid file's number may be another process's by now
    if pid is not None and proc_identity.send(pid, signal.SIGHUP, _is_ours(ctx), "aardvark-dns"):
        return
    if not _files(ctx):
        return
    exe = find_binary()
    if exe is None:
        return
    d = config_dir(ctx)
    # aardvark forks into the background and exits once it is listening; in its own
    # session so that signals to podkitd's process group do not reach it.
    try:
        r = subprocess.run(
            [exe, "--config", str(d), "-p", str(PORT), "run"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            start_new_session=True,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("could not start aardvark-dns for %s: %s", d, e)
        return
    if r.returncode != 0:
        log.warning(
            "aardvark-dns for %s exited with %d: %s",
            d,
            r.returncode,
            r.stderr.decode(errors="replace")[-500:],
        )


def startup(ctx: NetworkContext) -> None:
    """After a daemon (re)start: the files left are served again if aardvark died meanwhile."""
    if _files(ctx) and _running(ctx) is None:
        reload(ctx)
