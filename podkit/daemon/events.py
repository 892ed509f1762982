"""The daemon's event bus: lifecycle events fan out to every subscriber.

Like ``docker events``: each event names its type (image, container, pod,
network, volume), its action (pull, create, start, die, ...), the object's id and
attributes. Subscribers get a bounded queue; a slow one loses events rather than
holding the daemon back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Event:
    type: str
    action: str
    id: str
    namespace: str
    time: float = field(default_factory=time.time)
    attributes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventBus:
    def __init__(self, backlog: int = 256, on_publish: Callable[[], None] | None = None) -> None:
        self._on_publish = on_publish  # the daemon's MemoryKeeper: an event is activity
        self._subs: set[asyncio.Queue[Event]] = set()
        self._recent: list[Event] = []
        self._backlog = backlog

    def publish(self, namespace: str, type: str, action: str, id: str, /, **attributes: object) -> Event:
        """Implements podkit.publish.Publish."""
        ev = Event(type, action, id, namespace, attributes={k: str(v) for k, v in attributes.items()})
        self._recent.append(ev)
        if len(self._recent) > self._backlog:
            del self._recent[: len(self._recent) - self._backlog]
        for q in list(self._subs):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(ev)
        if self._on_publish is not None:
            self._on_publish()
        return ev

    def recent(self, since: float | None = None) -> list[Event]:
        return [e for e in self._recent if since is None or e.time >= since]

    async def subscribe(self) -> AsyncIterator[Event]:
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=1024)
        self._subs.add(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._subs.discard(q)
