"""Test helpers: a real podkitd per test (own root/state/socket), the CLI, waits."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The machine's ../shared (crictl, critest and its image builder): beside the
    checkout, or beside the folder holding it (a worktree), or $PODKIT_SHARED."""
    if os.environ.get("PODKIT_SHARED"):
        return Path(os.environ["PODKIT_SHARED"])
    for d in (REPO.parent / "shared", REPO.parent.parent / "shared", Path("/work/shared")):
        if (d / "bin").is_dir():
            return d
    return REPO.parent / "shared"


BIN = Path(sys.executable).parent


def wait_for(
    cond: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.02,
    what: str | Callable[[], str] = "condition",
) -> Any:
    """Poll until cond() is truthy; fail with `what` after timeout. Not a sleep: a wait.

    The default timeout is generous on purpose: CI runs the suite on 2 busy cores, and
    a wait only ever takes that long when the test is failing anyway. `what` may be a
    callable: it is then called on failure, to describe the state at that moment.
    """
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what() if callable(what) else what}"
            )
        time.sleep(interval)


def served(port: int, want: str) -> str:
    """GET /i from 127.0.0.1:port: the response when it holds `want`, else '' (nobody
    answering yet, or someone else), for wait_for on a published port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /i HTTP/1.0\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return ""
    text = data.decode(errors="replace")
    return text if want in text else ""


def unique_network() -> tuple[str, str]:
    """A bridge name (<= 15 chars) and a free /24 in 10.200.0.0/13.

    Free means no route on the host uses it: parallel runs or a crashed one may
    hold some of the range, and the daemon refuses a subnet that overlaps a route.
    """
    import ipaddress
    import secrets

    out = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    used = []
    for line in out.splitlines():
        with contextlib.suppress(ValueError, IndexError):
            used.append(ipaddress.ip_network(line.split()[0], strict=False))
    for _ in range(100):
        n = secrets.randbelow(8 * 256)
        net = ipaddress.ip_network(f"10.{200 + n // 256}.{n % 256}.0/24")
        if str(net) not in _RECENT and not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            break
    _RECENT.append(str(net))
    return f"pkt{secrets.token_hex(4)}", str(net)


# Subnets handed out lately in this process. Bridges (and so routes) appear only on
# first use, so two daemons of one test (or a daemon and an in-process network
# manager) could otherwise draw the same /24 and the second be refused.
_RECENT: collections.deque[str] = collections.deque(maxlen=256)


class Daemon:
    """One podkitd process with its own root, state dir and socket."""

    def __init__(self, base: Path, extra_config: str = "", pool_size: int = 0) -> None:
        self.base = base
        self.root = base / "root"
        self.state = base / "state"
        self.socket = self.state / "podkit.sock"
        self.config = base / "podkitd.toml"
        # Each daemon gets its own default bridge and subnet, so tests never share
        # (or clash with podman's 10.88/16 or another run's) network state.
        self.bridge, self.subnet = unique_network()
        # The CRI's gRPC server is off unless a test asks for it: importing grpc adds
        # a few hundred ms of CPU to each of the suite's hundreds of daemons.
        cri = "" if "[cri]" in extra_config else "[cri]\nenabled = false\n\n"
        if "[cri]" in extra_config and "cni_conf_dir" not in extra_config:
            # Not the host's /etc/cni/net.d (the CRI's default): podman's and buildah's
            # packages put podman's bridge there (cni-podman0, 10.88.0.0/16), which the
            # pods would join. An empty dir of its own: podkit's default network, on this
            # daemon's bridge and subnet.
            extra_config = extra_config.replace("[cri]\n", f'[cri]\ncni_conf_dir = "{base / "cni"}"\n', 1)
        self.config.write_text(
            f'[network]\ndefault_bridge = "{self.bridge}"\ndefault_subnet = "{self.subnet}"\n'
            # No pre-warmed sandboxes unless a test asks: most count the veths, leases and
            # netns a daemon holds, and hundreds of daemons each filling a pool cost CPU.
            f"pool_size = {pool_size}\n\n" + cri + extra_config
        )
        self.log = base / "podkitd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = f"unix://{self.socket}"

    def start(self, timeout: float = 60.0) -> Daemon:
        logf = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                str(BIN / "podkitd"),
                "--config",
                str(self.config),
                "--root",
                str(self.root),
                "--state",
                str(self.state),
                "--socket",
                str(self.socket),
                "--log-level",
                "debug",
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        logf.close()

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"podkitd exited early:\n{self.log.read_text()[-4000:]}")
            if not self.socket.exists():
                return False
            try:
                return self.client().ping()
            except Exception:
                return False

        wait_for(up, timeout, what="podkitd to answer")
        return self

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def drop_host_network(self) -> None:
        """Drop this daemon's default bridge and its rules: they outlive the daemon (as
        they must for running containers), so whoever started it removes them."""
        if os.path.exists(f"/sys/class/net/{self.bridge}"):
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        from tests.fixtures.network import scrub_subnet

        scrub_subnet(self.subnet)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> Daemon:
        self.stop()
        return self.start()

    def client(self, namespace: str | None = None) -> Any:
        from podkit import Client

        return Client(host=self.host, namespace=namespace, timeout=120)

    def cli(
        self,
        *args: str,
        input: bytes | None = None,
        timeout: float = 120,
        check: bool = False,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real `podkit` CLI against this daemon."""
        e = dict(os.environ, PODKIT_HOST=self.host)
        e.pop("PODKIT_NAMESPACE", None)
        if env:
            e.update(env)
        r = subprocess.run(
            [str(BIN / "podkit"), *args],
            input=input.decode() if input else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=e,
        )
        if check and r.returncode != 0:
            raise AssertionError(
                f"podkit {' '.join(args)} exited {r.returncode}\nstdout:{r.stdout}\nstderr:{r.stderr}"
            )
        return r

    def logs(self) -> str:
        with contextlib.suppress(FileNotFoundError):
            return self.log.read_text()
        return ""
