"""podkitd entry point: flags, the single-instance lock, the socket, signals."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from podkit._version import __version__
from podkit.daemon import config as config_mod
from podkit.errors import PodkitError

if TYPE_CHECKING:
    from aiohttp import web  # imported when serving: `podkitd --help` stays fast

    from podkit.daemon.services import Services

log = logging.getLogger("podkitd")


class AlreadyRunning(PodkitError):
    code = "already_running"


def acquire_lock(root: Path) -> int:
    """Hold an exclusive flock on <root>/podkitd.lock for the daemon's life."""
    root.mkdir(parents=True, exist_ok=True, mode=0o711)
    path = root / "podkitd.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise AlreadyRunning(
            f"another podkitd (pid {pid}) is already running with root {root}; "
            "stop it first or use a different --root"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


# A connection idle this long is closed: one that never sends a (whole) request, or
# lingers after its response. Streams and running requests are not idle.
DEFAULT_IDLE_TIMEOUT = 60.0


def idle_timeout(cfg: config_mod.Config) -> float:
    value = cfg.section("api").get("idle_timeout", DEFAULT_IDLE_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise PodkitError("config: [api] idle_timeout must be a number of seconds > 0")
    return float(value)


async def serve(cfg: config_mod.Config) -> None:
    from podkit.daemon import sockets
    from podkit.daemon.server import make_app
    from podkit.daemon.services import build

    services = build(cfg)
    await services.start()
    idle = idle_timeout(cfg)
    runner = await sockets.serve(make_app(services), sockets.bind_unix(cfg.socket), idle)
    log.info("podkitd %s listening on unix://%s (root %s)", __version__, cfg.socket, cfg.root)
    cri = None
    if _cri_enabled(cfg):
        # grpc is imported at the first CRI connection (podkit/cri/lazy.py): ~18 MB of
        # RSS and 0.3 s of start-up that a daemon nobody drives through the CRI saves.
        from podkit.cri.lazy import LazyCRI

        cri = LazyCRI(services, cfg)
        await cri.start()
    docker = None
    if cfg.docker_socket is not None:
        # The Docker Engine API: its own socket, the same services, namespace default;
        # its handlers are imported at its first connection (podkit.daemon.sockets).
        docker = sockets.LazyApp(cfg.docker_socket, lambda: _docker_app(services), idle)
        docker.listen()
        log.info("Docker Engine API on unix://%s", cfg.docker_socket)
    if os.environ.get("NOTIFY_SOCKET"):
        _sd_notify("READY=1")
    services.memory.settle_start_up()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    if cri is not None:
        await cri.stop()
    if docker is not None:
        await docker.close()
    await runner.cleanup()
    await services.close()
    for path in (cfg.socket, cfg.docker_socket):
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _docker_app(services: Services) -> web.Application:
    from podkit.dockerapi import make_app

    return make_app(services)


def _cri_enabled(cfg: config_mod.Config) -> bool:
    enabled = cfg.section("cri").get("enabled", True)
    if not isinstance(enabled, bool):
        raise PodkitError("config: [cri] enabled must be true or false")
    return enabled


def _sd_notify(msg: str) -> None:
    import socket

    addr = os.environ["NOTIFY_SOCKET"]
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(msg.encode(), addr)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="podkitd", description="The podkit container and pod daemon.")
    p.add_argument("--config", help=f"TOML config file (default {config_mod.DEFAULT_CONFIG})")
    p.add_argument("--root", help=f"persistent state directory (default {config_mod.DEFAULT_ROOT})")
    p.add_argument("--state", help=f"runtime state directory (default {config_mod.DEFAULT_STATE})")
    p.add_argument("--socket", help=f"API unix socket (default {config_mod.DEFAULT_SOCKET})")
    p.add_argument("--cri-socket", help=f"CRI gRPC unix socket (default {config_mod.DEFAULT_CRI_SOCKET})")
    p.add_argument(
        "--docker-socket",
        help=f"Docker Engine API unix socket (default {config_mod.DEFAULT_DOCKER_SOCKET}, "
        "or <state>/docker.sock with --state)",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--version", action="version", version=f"podkitd {__version__}")
    args = p.parse_args(argv)

    try:
        cfg = config_mod.load(args.config, vars(args))
    except PodkitError as e:
        print(f"podkitd: {e.message}", file=sys.stderr)
        sys.exit(1)
    logging.basicConfig(
        level=cfg.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if os.geteuid() != 0:
        print("podkitd: must run as root", file=sys.stderr)
        sys.exit(1)
    # Before asyncio.run: the worker threads must find the limit in place.
    from podkit.daemon.memory import lean_imports, limit_arenas

    limit_arenas()
    lean_imports()
    try:
        lock_fd = acquire_lock(cfg.root)
    except PodkitError as e:
        print(f"podkitd: {e.message}", file=sys.stderr)
        sys.exit(1)
    try:
        asyncio.run(serve(cfg))
    except PodkitError as e:
        print(f"podkitd: {e.message}", file=sys.stderr)
        sys.exit(1)
    finally:
        os.close(lock_fd)


if __name__ == "__main__":
    main()
