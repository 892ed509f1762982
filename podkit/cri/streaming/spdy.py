"""SPDY/3.1 framing: frames to bytes and back, with the compressed header blocks.

The wire format (draft-mbelshe-httpbis-spdy-00 and the 3.1 amendments):

- a control frame: ``1`` bit set, 15-bit version (3), 16-bit type, 8-bit flags,
  24-bit length, then the type's fields;
- a data frame: ``0`` bit, 31-bit stream id, 8-bit flags, 24-bit length, payload.

Header blocks (in SYN_STREAM, SYN_REPLY and HEADERS) are a count and
length-prefixed name/value pairs (32-bit lengths, several values joined by NUL),
deflated with SPDY's dictionary through *one* zlib stream per direction: every
block a peer sends continues the previous one's compression state, so every block
received must be inflated, even those of frames we then ignore.

This module knows nothing of sockets: ``FrameEncoder.encode`` gives bytes,
``FrameDecoder.feed`` takes bytes as they arrive and gives the frames they complete.
``podkit.cri.streaming.session`` runs streams and flow control on top.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum

from podkit.cri.streaming._dictionary import HEADER_DICTIONARY

VERSION = 3

FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02  # SYN_STREAM only
FLAG_CLEAR_SETTINGS = 0x01  # SETTINGS only
SETTINGS_FLAG_PERSIST_VALUE = 0x01
SETTINGS_FLAG_PERSISTED = 0x02

MAX_LENGTH = (1 << 24) - 1  # a frame's 24-bit length field
MAX_STREAM_ID = (1 << 31) - 1
DEFAULT_WINDOW = 65536  # initial stream and (3.1) session window
# Inflated header blocks bigger than this are refused: a small deflated block can
# otherwise expand into any amount of memory.
MAX_HEADER_BLOCK = 256 * 1024


class FrameType(IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    INVALID_CREDENTIALS = 10
    FRAME_TOO_LARGE = 11


class GoAwayStatus(IntEnum):
    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class Setting(IntEnum):
    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3.1; the session cannot go on."""

    def __init__(self, message: str, status: GoAwayStatus = GoAwayStatus.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.status = status


# A header block: lower-case names, each with one or more values, in order.
Headers = dict[str, list[str]]


class _Fin:
    """The FIN flag of the frames that carry one (data, SYN_STREAM, SYN_REPLY, HEADERS)."""

    flags: int

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class DataFrame(_Fin):
    stream_id: int
    data: bytes = b""
    flags: int = 0


@dataclass
class SynStream(_Fin):
    stream_id: int
    headers: Headers = field(default_factory=dict)
    associated_to: int = 0
    priority: int = 0  # 0 (highest) .. 7
    slot: int = 0
    flags: int = 0


@dataclass
class _StreamHeaders(_Fin):
    """A stream's id and a header block: SYN_REPLY and HEADERS, one layout on the wire."""

    stream_id: int
    headers: Headers = field(default_factory=dict)
    flags: int = 0


class SynReply(_StreamHeaders):
    pass


@dataclass
class RstStream:
    stream_id: int
    status: int = RstStatus.CANCEL


@dataclass
class Settings:
    # (flags, id, value) per entry
    entries: list[tuple[int, int, int]] = field(default_factory=list)
    flags: int = 0

    def get(self, setting: Setting) -> int | None:
        for _, sid, value in self.entries:
            if sid == setting:
                return value
        return None


@dataclass
class Ping:
    id: int


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int = GoAwayStatus.OK


class HeadersFrame(_StreamHeaders):
    pass


@dataclass
class WindowUpdate:
    stream_id: int  # 0: the whole session (SPDY/3.1)
    delta: int


Frame = DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate


# ------------------------------------------------------------------ header blocks


def pack_headers(headers: Headers) -> bytes:
    """The uncompressed name/value block."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n = name.lower().encode()
        v = "\x00".join(values).encode()
        out.append(struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def unpack_headers(block: bytes) -> Headers:
    """Parse an uncompressed name/value block; malformed ones are a ProtocolError."""
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos = 4
        headers: Headers = {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4 : pos + 4 + n]
            pos += 4 + n
            (m,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4 : pos + 4 + m]
            pos += 4 + m
            if len(name) != n or len(value) != m:
                raise ProtocolError("header block is truncated")
            if not name:
                raise ProtocolError("header block has an empty name")
            key = name.decode("latin-1")
            if key != key.lower():
                raise ProtocolError(f"header name {key!r} is not lower case")
            if key in headers:
                raise ProtocolError(f"header {key!r} appears twice")
            headers[key] = value.decode("latin-1").split("\x00")
    except struct.error:
        raise ProtocolError("header block is truncated") from None
    if pos != len(block):
        raise ProtocolError("header block has trailing bytes")
    return headers


class HeaderCompressor:
    """One direction's deflate stream for header blocks (state carries across blocks)."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(
            zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY
        )

    def compress(self, headers: Headers) -> bytes:
        raw = pack_headers(headers)
        # A sync flush ends each block on a byte boundary without ending the stream.
        return self._z.compress(raw) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The peer's deflate stream for header blocks, inflated block after block."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(15, HEADER_DICTIONARY)

    def decompress(self, data: bytes) -> Headers:
        try:
            raw = self._z.decompress(data, MAX_HEADER_BLOCK + 1)
        except zlib.error as e:
            raise ProtocolError(f"cannot inflate header block: {e}") from None
        if len(raw) > MAX_HEADER_BLOCK or self._z.unconsumed_tail:
            raise ProtocolError(f"header block inflates past {MAX_HEADER_BLOCK} bytes")
        return unpack_headers(raw)


# ------------------------------------------------------------------ frames


def _control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_LENGTH:
        raise ValueError(f"control frame of {len(payload)} bytes is too long")
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def _check_id(stream_id: int, *, zero_ok: bool = False) -> None:
    if not (0 if zero_ok else 1) <= stream_id <= MAX_STREAM_ID:
        raise ValueError(f"stream id {stream_id} is out of range")


class FrameEncoder:
    """Frames to bytes, for one direction of one session (it owns the header compressor)."""

    def __init__(self) -> None:
        self._headers = HeaderCompressor()

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            _check_id(frame.stream_id)
            if len(frame.data) > MAX_LENGTH:
                raise ValueError(f"data frame of {len(frame.data)} bytes is too long")
            return struct.pack(">II", frame.stream_id, (frame.flags << 24) | len(frame.data)) + frame.data
        if isinstance(frame, SynStream):
            _check_id(frame.stream_id)
            _check_id(frame.associated_to, zero_ok=True)
            if not 0 <= frame.priority <= 7:
                raise ValueError(f"priority {frame.priority} is not 0..7")
            head = struct.pack(">IIBB", frame.stream_id, frame.associated_to, frame.priority << 5, frame.slot)
            return _control(FrameType.SYN_STREAM, frame.flags, head + self._headers.compress(frame.headers))
        if isinstance(frame, _StreamHeaders):
            _check_id(frame.stream_id)
            ftype = FrameType.SYN_REPLY if isinstance(frame, SynReply) else FrameType.HEADERS
            body = struct.pack(">I", frame.stream_id) + self._headers.compress(frame.headers)
            return _control(ftype, frame.flags, body)
        if isinstance(frame, RstStream):
            _check_id(frame.stream_id)
            return _control(FrameType.RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
        if isinstance(frame, Settings):
            body = struct.pack(">I", len(frame.entries)) + b"".join(
                struct.pack(">II", (f << 24) | sid, value) for f, sid, value in frame.entries
            )
            return _control(FrameType.SETTINGS, frame.flags, body)
        if isinstance(frame, Ping):
            return _control(FrameType.PING, 0, struct.pack(">I", frame.id))
        if isinstance(frame, GoAway):
            _check_id(frame.last_good_stream_id, zero_ok=True)
            return _control(FrameType.GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status))
        if isinstance(frame, WindowUpdate):
            _check_id(frame.stream_id, zero_ok=True)
            if not 1 <= frame.delta <= MAX_STREAM_ID:
                raise ValueError(f"window delta {frame.delta} is out of range")
            return _control(FrameType.WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))
        raise TypeError(f"not a SPDY frame: {frame!r}")


class FrameDecoder:
    """Bytes to frames, for the other direction (it owns the header decompressor).

    ``feed`` buffers a partial frame until the rest arrives. Control frames of
    unknown types are skipped, as the spec asks; anything malformed raises
    ``ProtocolError`` and leaves the decoder unusable (the session must end).
    """

    def __init__(self, max_frame: int = MAX_LENGTH) -> None:
        self._buf = bytearray()
        self._headers = HeaderDecompressor()
        self._max = max_frame

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            word, flags_len = struct.unpack_from(">II", self._buf, 0)
            length = flags_len & 0xFFFFFF
            if length > self._max:
                raise ProtocolError(f"frame of {length} bytes exceeds the {self._max}-byte limit")
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            flags = flags_len >> 24
            if word & 0x80000000:
                version, ftype = (word >> 16) & 0x7FFF, word & 0xFFFF
                if version != VERSION:
                    raise ProtocolError(f"SPDY version {version} is not supported (only {VERSION})")
                frame = self._control(ftype, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                if word == 0:
                    raise ProtocolError("data frame on stream 0")
                frames.append(DataFrame(word, payload, flags))
        return frames

    @property
    def pending(self) -> int:
        """Bytes of a frame not complete yet."""
        return len(self._buf)

    def _control(self, ftype: int, flags: int, p: bytes) -> Frame | None:
        def need(n: int, exact: bool = True) -> None:
            if len(p) < n or (exact and len(p) != n):
                raise ProtocolError(f"{FrameType(ftype).name} frame of {len(p)} bytes is malformed")

        if ftype == FrameType.SYN_STREAM:
            need(10, exact=False)
            sid, assoc, pri, slot = struct.unpack_from(">IIBB", p, 0)
            sid &= MAX_STREAM_ID
            if sid == 0:
                raise ProtocolError("SYN_STREAM for stream 0")
            return SynStream(
                sid, self._headers.decompress(p[10:]), assoc & MAX_STREAM_ID, pri >> 5, slot, flags
            )
        if ftype in (FrameType.SYN_REPLY, FrameType.HEADERS):
            need(4, exact=False)
            sid = struct.unpack_from(">I", p, 0)[0] & MAX_STREAM_ID
            headers = self._headers.decompress(p[4:])
            if sid == 0:
                raise ProtocolError(f"{FrameType(ftype).name} for stream 0")
            if ftype == FrameType.SYN_REPLY:
                return SynReply(sid, headers, flags)
            return HeadersFrame(sid, headers, flags)
        if ftype == FrameType.RST_STREAM:
            need(8)
            sid, status = struct.unpack(">II", p)
            return RstStream(sid & MAX_STREAM_ID, status)
        if ftype == FrameType.SETTINGS:
            need(4, exact=False)
            (count,) = struct.unpack_from(">I", p, 0)
            if len(p) != 4 + 8 * count:
                raise ProtocolError(f"SETTINGS frame says {count} entries but has {len(p) - 4} bytes")
            entries = []
            for i in range(count):
                fid, value = struct.unpack_from(">II", p, 4 + 8 * i)
                entries.append((fid >> 24, fid & 0xFFFFFF, value))
            return Settings(entries, flags)
        if ftype == FrameType.PING:
            need(4)
            return Ping(struct.unpack(">I", p)[0])
        if ftype == FrameType.GOAWAY:
            need(8)
            last, status = struct.unpack(">II", p)
            return GoAway(last & MAX_STREAM_ID, status)
        if ftype == FrameType.WINDOW_UPDATE:
            need(8)
            sid, delta = struct.unpack(">II", p)
            delta &= MAX_STREAM_ID
            if delta == 0:
                raise ProtocolError("WINDOW_UPDATE with a delta of 0")
            return WindowUpdate(sid & MAX_STREAM_ID, delta)
        return None  # NOOP (SPDY/2) and unknown types: ignored, as the spec asks
