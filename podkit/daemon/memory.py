"""podkitd's resident memory between bursts of work (issue 8, item 5).

Measured on an idle podkitd after a few `run --rm` (bench/run.py): about 6 MB of its
RSS is heap glibc keeps after a burst — free chunks at the top of the main heap and in
the per-thread arenas the worker threads (``asyncio.to_thread``) got, one each, up
to 8 per core. Three things give it back:

- ``limit_arenas`` (at start, before any thread): at most two malloc arenas, the
  main one and one the worker threads share. Their allocations are short-lived
  buffers, so sharing one costs no measurable contention here (~2 MB saved).
- ``MemoryKeeper`` trims once the daemon has been quiet for a while after activity
  (requests, events): a ``gc.collect()`` for the cycles the burst left, then
  glibc's ``malloc_trim(0)``, which returns free pages of every arena to the
  kernel (~4 MB). Quiet means no request begun or ended and no event published
  for ``QUIET`` seconds; a busy daemon never pays for it (a long stream, such as
  ``events`` or an attach, is not activity by itself).
- after start-up, the objects that live as long as the daemon (modules, classes,
  routes) are moved out of the collector's sight (``gc.freeze``): every later
  collection, this one's included, walks only what came after.

Without glibc (no ``mallopt``/``malloc_trim``) the collector part still runs.

What podkitd imports is most of its idle RSS (Python code objects): front ends and
features a host may never use are imported at their first use (docs/architecture.md,
"Start-up"); ``lean_imports`` drops one C++ extension whose runtime costs ~1 MB, and a
CA store aiohttp loads into a context that never verifies (~0.8 MB).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)

# Seconds without a request or an event before the heap is trimmed.
QUIET = 2.0
_M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the process's own symbols: libc's, whichever it is
    except OSError as e:
        log.warning("memory: libc not loadable through ctypes: %s", e)
        return None


def limit_arenas(arenas: int = ARENAS) -> None:
    """At most ``arenas`` malloc arenas; call before threads start (later ones only
    stop new arenas from being made)."""
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return
    if mallopt(_M_ARENA_MAX, arenas) != 1:
        log.warning("memory: mallopt(M_ARENA_MAX, %d) was refused", arenas)


def lean_imports() -> None:
    """frozenlist without its C++ extension, then aiohttp without a CA store nothing
    reads (``_aiohttp_lean``). Call before aiohttp is imported, before any thread."""
    _frozenlist_lean()
    _aiohttp_lean()


def _frozenlist_lean() -> None:
    """frozenlist (aiohttp's signal and middleware lists) without its C++ extension,
    which maps libstdc++ into podkitd: ~1.1 MB of RSS for lists that are iterated a
    few times per request, as fast in pure Python for that. frozenlist reads the
    switch once, at its import."""
    if "frozenlist" in sys.modules:
        return
    name = "FROZENLIST_NO_EXTENSIONS"
    saved = os.environ.get(name)
    os.environ[name] = "1"
    try:
        import frozenlist  # noqa: F401
    finally:
        # podkitd's children (conmon, runc, CNI plugins) inherit its environment.
        if saved is None:
            del os.environ[name]
        else:
            os.environ[name] = saved


def _aiohttp_lean() -> None:
    """aiohttp.connector makes, at its import, the shared context of ``ssl=False``
    requests: it verifies nothing, yet loads the system's CA bundle (~0.8 MB of X509
    objects that none of its handshakes consults). During that import only, a context
    set to verify nothing skips loading them; any other (aiohttp's verifying one
    included) loads them as before."""
    if "aiohttp" in sys.modules:
        return
    import ssl

    name = "set_default_verify_paths"
    own = name in ssl.SSLContext.__dict__  # else _ssl._SSLContext's, inherited
    load = ssl.SSLContext.set_default_verify_paths

    def unless_unverified(ctx: ssl.SSLContext) -> None:
        if ctx.verify_mode != ssl.CERT_NONE:
            load(ctx)

    setattr(ssl.SSLContext, name, unless_unverified)
    try:
        import aiohttp  # noqa: F401
    finally:
        if own:
            setattr(ssl.SSLContext, name, load)
        else:
            delattr(ssl.SSLContext, name)


def trim() -> None:
    """Cycles collected, free heap pages handed back to the kernel."""
    gc.collect()
    libc = _libc()
    malloc_trim = getattr(libc, "malloc_trim", None)
    if malloc_trim is not None:
        malloc_trim(0)


class MemoryKeeper:
    """Trims the heap ``quiet`` seconds after the last activity.

    ``touch()`` is on every request's and every event's path, so it only notes the
    time; one timer at a time fires ``quiet`` seconds after the last activity."""

    def __init__(self, quiet: float = QUIET) -> None:
        self.quiet = quiet
        self.trims = 0
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def settle_start_up(self) -> None:
        """Once start-up is done: what lives as long as the daemon is frozen out of
        the collector's walks, and the heap start-up left is trimmed."""
        gc.collect()
        gc.freeze()
        trim()

    def touch(self) -> None:
        self._last = time.monotonic()  # the loop's clock (asyncio uses monotonic)
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # published from a worker thread: the next touch arms
                return
            self._timer = loop.call_later(self.quiet, self._check)

    def _check(self) -> None:
        self._timer = None
        left = self._last + self.quiet - time.monotonic()
        if left > 0.01:  # something happened since: look again once it is quiet as long
            self._timer = asyncio.get_running_loop().call_later(left, self._check)
            return
        trim()
        self.trims += 1
        log.debug("memory: heap trimmed after %.0f s of quiet (%d)", self.quiet, self.trims)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def watch_responses(app: web.Application, keeper: MemoryKeeper) -> None:
    """Each response an aiohttp app begins (a WebSocket's upgrade included) is activity."""

    async def touched(_request: web.Request, _response: web.StreamResponse) -> None:
        keeper.touch()

    app.on_response_prepare.append(touched)
