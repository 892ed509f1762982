"""One-time, expiring tokens: what an Exec/Attach/PortForward URL carries.

The CRI call stores its request here and gets a token back; the streaming client
redeems it once, within ``ttl`` seconds (kubelet's cache does the same). Expired
tokens are dropped whenever one is stored or redeemed, so nothing piles up.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from podkit.errors import Unavailable

MAX_TOKENS = 1000  # in flight at once; kubelet's cache has the same bound


@dataclass
class StreamRequest:
    """What one URL was minted for."""

    kind: str  # "exec" | "attach" | "portforward"
    namespace: str
    target: str  # container id (exec, attach) or pod id (portforward)
    cmd: list[str] = field(default_factory=list)
    tty: bool = False
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    ports: list[int] = field(default_factory=list)


class TokenCache:
    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl <= 0:
            raise ValueError("token ttl must be positive")
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, tuple[float, StreamRequest]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, req: StreamRequest) -> str:
        self.gc()
        if len(self._entries) >= MAX_TOKENS:
            raise Unavailable(f"too many streaming requests in flight ({MAX_TOKENS}); try again shortly")
        token = secrets.token_urlsafe(24)  # URL-safe: it is a path segment
        self._entries[token] = (self._clock() + self.ttl, req)
        return token

    def take(self, token: str) -> StreamRequest | None:
        """The request for ``token``, once; None if unknown, used or expired."""
        self.gc()
        entry = self._entries.pop(token, None)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def gc(self) -> None:
        now = self._clock()
        for token in [t for t, (exp, _) in self._entries.items() if exp <= now]:
            del self._entries[token]
