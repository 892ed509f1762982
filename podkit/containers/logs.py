"""Reading container logs in the CRI format that conmon writes (``k8s-file``).

Each line is ``<RFC3339Nano time> <stdout|stderr> <F|P> <text>``: ``P`` marks a
partial line (the program wrote more than conmon's buffer, or no newline yet),
continued by following entries up to an ``F``. conmon's size limit
(``--log-size-max``) replaces the file with a fresh one when it is full, so a
follower watches the inode and reopens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from podkit.errors import InvalidArgument

_TS_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$")


@dataclass
class Entry:
    time: float  # unix seconds
    ts: str  # the timestamp as written, for --timestamps
    stream: str  # stdout | stderr
    data: bytes  # complete line, with its newline if it had one

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "ts": self.ts,
            "stream": self.stream,
            "data": self.data.decode("utf-8", "replace"),
        }


def parse_time(ts: str) -> float:
    """RFC 3339 with nanoseconds (Python's fromisoformat stops at micro)."""
    m = _TS_RE.fullmatch(ts)
    if not m:
        raise ValueError(ts)
    date, clock, frac, tz = m.groups()
    tz = "+00:00" if tz == "Z" else (tz if ":" in tz else tz[:3] + ":" + tz[3:])
    base = dt.datetime.fromisoformat(f"{date}T{clock}{tz}").timestamp()
    return base + (int(frac.ljust(9, "0")) / 1e9 if frac else 0.0)


def format_time(t: float) -> str:
    d = dt.datetime.fromtimestamp(int(t), dt.UTC)
    ns = int(round((t - int(t)) * 1e9))
    if ns >= 1_000_000_000:
        ns = 999_999_999
    return d.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns:09d}Z"


def parse_since(value: str | float | None, now: float | None = None) -> float | None:
    """docker's --since/--until: unix time, RFC 3339, or a duration (``10m``, ``1h30m``) ago."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return float(value)
    s = str(value).strip()
    try:
        return float(s)
    except ValueError:
        pass
    m = re.fullmatch(r"((?:\d+(?:\.\d+)?(?:ns|us|ms|s|m|h))+)", s)
    if m:
        total = 0.0
        for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", s):
            total += float(num) * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}[unit]
        import time

        return (now if now is not None else time.time()) - total
    try:
        return parse_time(s)
    except ValueError:
        pass
    try:
        d = dt.datetime.fromisoformat(s)
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.UTC)
        return d.timestamp()
    except ValueError:
        raise InvalidArgument(
            f"invalid time {value!r}: use unix seconds, RFC 3339, or a duration like 10m"
        ) from None


class _Assembler:
    """Joins P-entries into whole lines, per stream."""

    def __init__(self) -> None:
        self.partial: dict[str, tuple[float, str, bytearray]] = {}

    def feed(self, raw: bytes) -> Entry | None:
        parts = raw.rstrip(b"\n").split(b" ", 3)
        if len(parts) < 3:
            return None
        ts_b, stream_b, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) > 3 else b""
        stream = stream_b.decode(errors="replace")
        if stream not in ("stdout", "stderr"):
            return None
        ts = ts_b.decode(errors="replace")
        try:
            t = parse_time(ts)
        except ValueError:
            return None
        if tag.startswith(b"P"):
            cur = self.partial.get(stream)
            if cur is None:
                self.partial[stream] = (t, ts, bytearray(text))
            else:
                cur[2].extend(text)
            return None
        cur = self.partial.pop(stream, None)
        if cur is not None:
            t, ts = cur[0], cur[1]
            text = bytes(cur[2]) + text
        return Entry(t, ts, stream, text + b"\n")

    def flush(self) -> list[Entry]:
        """Partial lines never finished (the program ended without a newline), as they are."""
        out = [Entry(t, ts, stream, bytes(buf)) for stream, (t, ts, buf) in self.partial.items()]
        self.partial.clear()
        return sorted(out, key=lambda e: e.time)


class LogReader:
    """Reads one container's log file with docker's filters."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def _lines(self, f) -> Iterator[bytes]:  # type: ignore[no-untyped-def]
        for line in f:
            if line.endswith(b"\n"):
                yield line

    def read(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        tail: int | None = None,
        streams: tuple[str, ...] = ("stdout", "stderr"),
    ) -> list[Entry]:
        try:
            f = open(self.path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return []
        with f:
            return self._filter(self._lines(f), since, until, tail, streams)

    @staticmethod
    def _filter(
        lines: Iterator[bytes],
        since: float | None,
        until: float | None,
        tail: int | None,
        streams: tuple[str, ...],
    ) -> list[Entry]:
        asm = _Assembler()
        keep: deque[Entry] | list[Entry] = deque(maxlen=tail) if tail is not None and tail >= 0 else []

        def take(e: Entry) -> None:
            if e.stream not in streams:
                return
            if since is not None and e.time < since:
                return
            if until is not None and e.time > until:
                return
            keep.append(e)

        for raw in lines:
            e = asm.feed(raw)
            if e is not None:
                take(e)
        for e in asm.flush():
            take(e)
        return list(keep)

    async def follow(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        tail: int | None = None,
        streams: tuple[str, ...] = ("stdout", "stderr"),
        running: Callable[[], bool],
        poll: float = 0.05,
    ) -> AsyncIterator[Entry]:
        """Yield what is there, then new entries as they come, until the container stops.

        ``running`` is asked after each empty read; once false, the file is drained
        one last time and the stream ends (as ``docker logs -f`` does).

        (Long, as one loop: the open file, its inode, the partial line and the
        assembler's state of an unfinished P-run all carry from one read to the next.)
        """
        import time

        asm = _Assembler()
        f = None
        ino = None
        pending = b""
        first = True
        try:
            while True:
                if f is None:
                    try:
                        f = open(self.path, "rb")  # noqa: SIM115
                        ino = os.fstat(f.fileno()).st_ino
                    except FileNotFoundError:
                        f = None
                if f is not None and first:
                    first = False
                    data = await asyncio.to_thread(f.read)  # the backlog may be large
                    cut = data.rfind(b"\n") + 1
                    pending = data[cut:]
                    backlog = await asyncio.to_thread(
                        self._filter, iter(data[:cut].splitlines(keepends=True)), since, until, tail, streams
                    )
                    for e in backlog:
                        yield e
                    # The partial state of an unfinished P-run must carry over.
                    asm = _Assembler()
                    continue
                got = False
                if f is not None:
                    chunk = f.read()
                    if chunk:
                        got = True
                        data = pending + chunk
                        cut = data.rfind(b"\n") + 1
                        pending = data[cut:]
                        for raw in data[:cut].splitlines(keepends=True):
                            fed = asm.feed(raw)
                            if fed is None or fed.stream not in streams:
                                continue
                            if since is not None and fed.time < since:
                                continue
                            if until is not None and fed.time > until:
                                return
                            yield fed
                    else:
                        # conmon replaced the file (size limit): read the new one from its start.
                        try:
                            st = os.stat(self.path)
                            if st.st_ino != ino:
                                f.close()
                                f = open(self.path, "rb")  # noqa: SIM115
                                ino = os.fstat(f.fileno()).st_ino
                                pending = b""
                                got = True
                        except FileNotFoundError:
                            pass
                if until is not None and time.time() > until:
                    return
                if not got:
                    if not running():
                        if f is not None:
                            rest = f.read()
                            if rest:
                                data = pending + rest
                                for raw in data.splitlines(keepends=True):
                                    fed = asm.feed(raw)
                                    if fed is not None and fed.stream in streams:
                                        yield fed
                        for e in asm.flush():
                            if e.stream in streams:
                                yield e
                        return
                    await asyncio.sleep(poll)
        finally:
            if f is not None:
                f.close()
