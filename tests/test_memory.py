"""podkitd's heap trimming (podkit/daemon/memory.py): once quiet, never while busy."""

from __future__ import annotations

import asyncio
import gc

from podkit.daemon import memory
from podkit.daemon.events import EventBus


def test_trims_once_quiet_and_not_while_activity_goes_on(monkeypatch) -> None:
    trimmed: list[float] = []
    monkeypatch.setattr(memory, "trim", lambda: trimmed.append(asyncio.get_running_loop().time()))

    async def scenario() -> None:
        keeper = memory.MemoryKeeper(quiet=0.05)
        bus = EventBus(on_publish=keeper.touch)
        loop = asyncio.get_running_loop()
        start = loop.time()
        # Activity for 0.3 s (an event every 10 ms): no trim in the middle of it.
        while loop.time() - start < 0.3:
            bus.publish("default", "container", "start", "x")
            await asyncio.sleep(0.01)
        busy_until = loop.time()
        assert trimmed == []
        deadline = loop.time() + 5
        while not trimmed and loop.time() < deadline:
            await asyncio.sleep(0.01)
        assert len(trimmed) == 1 and trimmed[0] >= busy_until
        assert keeper.trims == 1
        # Quiet with no new activity: no more trims.
        await asyncio.sleep(0.2)
        assert len(trimmed) == 1
        # A touch from outside the loop's thread is only counted, and arms nothing.
        await asyncio.to_thread(keeper.touch)
        await asyncio.sleep(0.2)
        assert len(trimmed) == 1
        keeper.touch()
        keeper.close()  # at shutdown the armed timer goes
        await asyncio.sleep(0.2)
        assert len(trimmed) == 1

    asyncio.run(scenario())


def test_the_libc_calls_run_here() -> None:
    memory.limit_arenas(memory.ARENAS)
    memory.trim()
    keeper = memory.MemoryKeeper()
    keeper.settle_start_up()
    try:
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # the rest of this test process collects as before


# What podkitd imports is most of its idle RSS (bench/run.py, bench/pull.py measure it):
# the front ends and features a host may never use wait for their first use.
_NOT_AT_START = (
    "podkit.dockerapi.containers",  # the Docker API's handlers: at its first connection
    "podkit.dockerapi.images",
    "podkit.pods.play",  # play kube: its parsers, and decimal
    "podkit.pods.kube",
    "decimal",
    "podkit.containers.commit",  # commit, diff, export, cp: tar and the diff walker
    "podkit.containers.cp",
    "tarfile",
    "podkit.build.run_step",
    "grpc",  # the CRI: podkit/cri/lazy.py
)

_COMPOSE = """
import json, sys
from pathlib import Path
from podkit.daemon import config, memory
memory.lean_imports()
from podkit.daemon.server import make_app
from podkit.daemon.services import build
base = Path(sys.argv[1])
cfg = config.load(None, {"root": str(base / "root"), "state": str(base / "state"), "socket": str(base / "s")})
make_app(build(cfg))
from podkit.cri.lazy import LazyCRI
from podkit.daemon.sockets import LazyApp
print(json.dumps(sorted(sys.modules)))
"""


def test_composing_the_daemon_leaves_unused_front_ends_unimported(tmp_path) -> None:
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _COMPOSE, str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert "podkit.containers.service" in loaded and "podkit.pods.service" in loaded  # it did compose
    assert sorted(loaded.intersection(_NOT_AT_START)) == []
    # frozenlist without its C++ extension (libstdc++ mapped in: ~1 MB of RSS).
    assert "frozenlist._frozenlist" not in loaded


_CA_STORES = """
import ssl
from podkit.daemon import memory
memory.lean_imports()
import aiohttp.connector as c
def cas(ctx):
    return ctx.cert_store_stats()["x509"]
print(cas(c._SSL_CONTEXT_UNVERIFIED), cas(c._SSL_CONTEXT_VERIFIED), cas(ssl.create_default_context()),
      "set_default_verify_paths" in ssl.SSLContext.__dict__)
"""


def test_aiohttps_unverified_context_loads_no_ca_store_and_its_verifying_one_does() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _CA_STORES], capture_output=True, text=True, check=True
    ).stdout
    unverified, verifying, system, patched = out.split()
    assert unverified == "0"  # ~0.8 MB of X509 objects for a context that checks nothing
    assert verifying == system  # the system's CAs, as before
    assert patched == "False"  # ssl.SSLContext as it was once aiohttp is imported


def test_idle_daemon_maps_no_unused_libraries_and_serves_docker_at_first_connection(daemon) -> None:
    import socket
    import stat
    from pathlib import Path

    maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
    for lib in ("libstdc++", "_frozenlist", "_decimal", "cygrpc"):
        assert lib not in maps, f"podkitd idle maps {lib}"
    path = daemon.state / "docker.sock"
    st = path.stat()
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660 and st.st_uid == 0
    # The first client waits in the backlog while the Docker API is imported, then is
    # served by it on the same socket; so is the next one.
    for _ in range(2):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(path))
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"OK"), reply[-200:]
    assert "docker.sock: serving (started at its first connection)" in daemon.log.read_text()


def test_the_program_reexecutes_under_OO_only_where_its_bytecode_was_compiled(monkeypatch, tmp_path) -> None:
    import sys

    from podkit.daemon import program

    monkeypatch.delenv("PYTHONOPTIMIZE", raising=False)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert program.reexec_argv() is None  # no cache: every start would compile from source
    cache = tmp_path / program.CACHE
    cache.mkdir()
    argv = program.reexec_argv()
    assert argv is not None
    assert argv[:4] == [sys.executable, "-OO", "-X", f"pycache_prefix={cache}"]
    assert argv[4:] == sys.orig_argv[1:]
    monkeypatch.setenv("PYTHONOPTIMIZE", "0")  # the opt-out, as Python spells it
    assert program.reexec_argv() is None


def test_podkitd_runs_under_OO_from_the_bytecode_setup_compiled(daemon, monkeypatch) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    pid = daemon.proc.pid
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    cache = Path(sys.prefix) / "podkitd-pycache"
    assert cache.is_dir(), f"{cache} missing: scripts/setup.sh (make setup) compiles it"
    assert argv[1:4] == [b"-OO", b"-X", f"pycache_prefix={cache}".encode()], argv
    assert Path(f"/proc/{pid}/comm").read_text() == "podkitd\n"  # as the script's process was
    # scripts/setup.sh compiled what it imports: podkit's modules, the venv's, the stdlib's.
    import asyncio.base_events

    import aiohttp.web_app

    import podkit.daemon.server

    monkeypatch.setattr(sys, "pycache_prefix", str(cache))
    for mod in (podkit.daemon.server, aiohttp.web_app, asyncio.base_events):
        assert mod.__file__ is not None
        assert Path(importlib.util.cache_from_source(mod.__file__, optimization=2)).is_file(), mod
