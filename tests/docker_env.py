"""Shared set-up of the Docker API tests: one podkitd (and one local registry) per
test module, with busybox imported, and the docker CLI pointed at the daemon's
Docker socket. Imported by tests/test_docker*.py (not a test module itself)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.fixtures.images import BUSYBOX_REF, import_busybox
from tests.fixtures.network import scrub_subnet
from tests.fixtures.registry import RegistryServer
from tests.helpers import Daemon, wait_for
from tests.leaks import children_of, processes_mentioning, unmount_all_under

DOCKER = shutil.which("docker")


@dataclass
class DockerEnv:
    base: Path
    daemon: Daemon
    registry: RegistryServer | None
    image: str = BUSYBOX_REF

    @property
    def socket(self) -> Path:
        return self.daemon.state / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        e = dict(os.environ)
        e["DOCKER_HOST"] = self.host
        e["DOCKER_CONFIG"] = str(self.base / "docker-config")
        e.pop("DOCKER_CONTEXT", None)
        e.pop("DOCKER_API_VERSION", None)
        return e

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 90,
        input: bytes | None = None,
        api_version: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI; ``api_version`` pins the API version it speaks (no negotiation)."""
        assert DOCKER is not None
        env = self.env()
        if api_version is not None:
            env["DOCKER_API_VERSION"] = api_version
        r = subprocess.run(
            [DOCKER, *args],
            env=env,
            capture_output=True,
            timeout=timeout,
            input=input.decode() if input is not None else None,
            text=True,
        )
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r


@contextlib.contextmanager
def docker_env(with_registry: bool = False, tarball: Path | None = None) -> Iterator[DockerEnv]:
    """A daemon (and optionally a registry) in a private directory, cleaned up after."""
    base = Path(tempfile.mkdtemp(prefix="podkit-docker-test-", dir="/var/tmp"))
    (base / "d").mkdir()
    (base / "docker-config").mkdir()
    daemon = Daemon(base / "d")
    reg: RegistryServer | None = None
    try:
        daemon.start()
        wait_for(lambda: (daemon.state / "docker.sock").exists(), 30, what="the Docker API socket")
        if tarball is not None:
            import_busybox(daemon, tarball)
        if with_registry:
            reg = RegistryServer(base / "registry").start()
        yield DockerEnv(base, daemon, reg)
    finally:
        if reg is not None:
            reg.stop()
        _cleanup(daemon)
        daemon.stop()
        if os.path.exists(f"/sys/class/net/{daemon.bridge}"):
            subprocess.run(["ip", "link", "del", daemon.bridge], capture_output=True)
        scrub_subnet(daemon.subnet)
        leaked = processes_mentioning(str(base))
        for pid, _ in leaked:
            for child in children_of(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        mounts = unmount_all_under(base)
        shutil.rmtree(base, ignore_errors=True)
        assert not leaked, f"docker tests left processes running: {leaked}"
        assert not mounts, f"docker tests left mounts behind: {mounts}"


def _cleanup(daemon: Daemon) -> None:
    """Remove every container, then the networks tests made, through podkit's own API."""
    try:
        c = daemon.client()
        for ctr in c.containers.list(all=True):
            with contextlib.suppress(Exception):
                c.containers.remove(ctr.id, force=True, volumes=True)
        for net in c.networks.list():
            if not net.default:
                with contextlib.suppress(Exception):
                    c.networks.remove(net.name)
    except Exception as e:  # the daemon may be gone: the leak checks below still run
        print(f"docker test clean-up: {e}")


class Term:
    """The docker CLI on a pty the test owns, as in a terminal (for -it)."""

    def __init__(self, env: DockerEnv, *args: str, rows: int = 24, cols: int = 80) -> None:
        import fcntl
        import pty
        import struct
        import termios

        assert DOCKER is not None
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.proc = subprocess.Popen(
            [DOCKER, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(env.env(), TERM="xterm"),
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        os.close(slave)
        self.seen = b""
        self.answered = 0

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def expect(self, pattern: bytes, timeout: float = 30) -> None:
        import select
        import time

        deadline = time.monotonic() + timeout
        while pattern not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; screen: {self.seen[-500:]!r}")
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(
                        f"the CLI closed the terminal before {pattern!r}: {self.seen[-500:]!r}"
                    )
                self.seen += chunk
                # busybox's line editor asks where the cursor is; answer as a terminal would
                while self.seen.count(b"\x1b[6n") > self.answered:
                    self.answered += 1
                    os.write(self.master, b"\x1b[1;1R")

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            os.close(self.master)
