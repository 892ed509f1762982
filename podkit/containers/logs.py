"""Reading container logs in the CRI format that conmon writes (``k8s-file``).

Each line is ``<RFC3339Nano time> <stdout|stderr> <F|P> <text>``: ``P`` marks a
partial line (the program wrote more than conmon's buffer, or no newline yet),
continued by following entries up to an ``F``. A log is more than one file once
rotated (logrotate.py: ``ctr.log.2``, ``ctr.log.1``, ``ctr.log``); conmon's own size
limit (``--log-size-max``) and the kubelet replace the file instead. Followers
track the file they read by inode and go on to the one written after it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

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
    """Reads one container's log with docker's filters: the rotated files first, oldest
    first (``ctr.log.2``, ``ctr.log.1``: logrotate.py), then ``ctr.log``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def files(self) -> list[str]:
        """The log's files as they are now, oldest first."""
        head, name = os.path.split(self.path)
        try:
            names = os.listdir(head or ".")
        except FileNotFoundError:
            return []
        suffixes = [n[len(name) + 1 :] for n in names if n.startswith(name + ".")]
        older = sorted((int(x) for x in suffixes if x.isdigit()), reverse=True)
        out = [f"{self.path}.{k}" for k in older]
        return [*out, self.path] if name in names else out

    def _open_all(self) -> list[BinaryIO]:
        """Every file of the log, opened (a rotation after this moves names, not these)."""
        out: list[BinaryIO] = []
        for p in self.files():
            try:
                out.append(open(p, "rb"))  # noqa: SIM115
            except FileNotFoundError:
                continue  # rotated away between the listing and the open
        return out

    def _next_after(self, f: BinaryIO) -> BinaryIO | None:
        """The file written after ``f``'s, once there is one (conmon has then closed ``f``:
        it makes the next file only after closing the one before). By inode, since
        rotations rename; a file no longer there was dropped as the oldest (or replaced
        by conmon's own limit), so every file that is left came after it."""
        st = os.fstat(f.fileno())
        now = []
        for p in self.files():
            try:
                pst = os.stat(p)
            except FileNotFoundError:
                continue
            now.append((p, (pst.st_dev, pst.st_ino)))
        ids = [i for _, i in now]
        mine = (st.st_dev, st.st_ino)
        at = ids.index(mine) + 1 if mine in ids else 0
        if at >= len(now):
            return None  # f is the newest: conmon may still write it
        p, want = now[at]
        try:
            g = open(p, "rb")  # noqa: SIM115
        except FileNotFoundError:
            return None  # renamed meanwhile: look again at the next poll
        gst = os.fstat(g.fileno())
        if (gst.st_dev, gst.st_ino) != want:
            g.close()
            return None
        return g

    @staticmethod
    def _lines(files: list[BinaryIO]) -> Iterator[bytes]:
        for f in files:
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
        files = self._open_all()
        try:
            return self._filter(self._lines(files), since, until, tail, streams)
        finally:
            for f in files:
                f.close()

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

        ``running`` is asked after each empty read; once false, the files are drained
        one last time and the stream ends (as ``docker logs -f`` does). A rotation
        (logrotate.py, conmon's size limit, the kubelet's) is followed: the file being
        read is finished, then the one written after it is read from its start.

        (Long, as one loop: the open file, the partial line and the assembler's state of
        an unfinished P-run all carry from one read to the next.)
        """
        import time

        asm = _Assembler()
        f: BinaryIO | None = None
        pending = b""

        def feed(data: bytes) -> tuple[list[Entry], bool]:
            """Entries of the complete lines in ``data``; True once past ``until``."""
            nonlocal pending
            data = pending + data
            cut = data.rfind(b"\n") + 1
            pending = data[cut:]
            out: list[Entry] = []
            for raw in data[:cut].splitlines(keepends=True):
                fed = asm.feed(raw)
                if fed is None or fed.stream not in streams:
                    continue
                if since is not None and fed.time < since:
                    continue
                if until is not None and fed.time > until:
                    return out, True
                out.append(fed)
            return out, False

        try:
            while f is None:
                opened = await asyncio.to_thread(self._open_all)
                if not opened:
                    if not running():
                        return
                    await asyncio.sleep(poll)
                    continue
                *done, f = opened
                parts = [await asyncio.to_thread(g.read) for g in done]  # the backlog may be large
                for g in done:
                    g.close()
                data = b"".join(parts) + await asyncio.to_thread(f.read)
                cut = data.rfind(b"\n") + 1
                pending = data[cut:]
                backlog = await asyncio.to_thread(
                    self._filter, iter(data[:cut].splitlines(keepends=True)), since, until, tail, streams
                )
                for e in backlog:
                    yield e
            while True:
                got = False
                chunk = f.read()
                if chunk:
                    got = True
                    entries, past = feed(chunk)
                    for e in entries:
                        yield e
                    if past:
                        return
                else:
                    nxt = self._next_after(f)
                    if nxt is not None:
                        # f is complete now: what came since the empty read, then the next
                        entries, past = feed(f.read())
                        for e in entries:
                            yield e
                        if past:
                            nxt.close()
                            return
                        f.close()
                        f, pending, got = nxt, b"", True
                if until is not None and time.time() > until:
                    return
                if not got:
                    if not running():
                        while True:  # drain this file and any written after it
                            entries, _ = feed(f.read())
                            for e in entries:
                                yield e
                            nxt = self._next_after(f)
                            if nxt is None:
                                break
                            f.close()
                            f, pending = nxt, b""
                        if pending:
                            entries, _ = feed(b"\n")
                            for e in entries:
                                yield e
                        for e in asm.flush():
                            if e.stream in streams:
                                yield e
                        return
                    await asyncio.sleep(poll)
        finally:
            if f is not None:
                f.close()
