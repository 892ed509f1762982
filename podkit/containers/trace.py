"""Phase marks of a container's life cycle, for bench/run.py's breakdown.

Each mark is one debug line of the ``podkit.trace`` logger: ``<id> <phase> <epoch>``,
wall-clock time so that a benchmark can line the daemon's phases up with its own
clock (the CLI's start, its exit). Off unless the daemon logs at debug: a disabled
logger costs one level check per mark.
"""

from __future__ import annotations

import logging
import time

_log = logging.getLogger("podkit.trace")


def mark(cid: str, phase: str, at: float | None = None) -> None:
    if _log.isEnabledFor(logging.DEBUG):
        _log.debug("%s %s %.6f", cid, phase, time.time() if at is None else at)
