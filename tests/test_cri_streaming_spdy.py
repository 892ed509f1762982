"""SPDY/3.1 framing and sessions (podkit.cri.streaming.spdy, .session): pure tests, no root.

Frames are checked against bytes worked out by hand from the spec's layouts, and
header blocks against an independent inflater (plain zlib primed with the
dictionary), so the codec cannot only agree with itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib

import pytest

from podkit.cri.streaming import spdy
from podkit.cri.streaming._dictionary import HEADER_DICTIONARY
from podkit.cri.streaming.session import Session, StreamReset
from podkit.cri.streaming.spdy import (
    FLAG_FIN,
    DataFrame,
    FrameDecoder,
    FrameEncoder,
    GoAway,
    HeadersFrame,
    Ping,
    ProtocolError,
    RstStream,
    Settings,
    SynReply,
    SynStream,
    WindowUpdate,
)


def test_dictionary_is_the_specs() -> None:
    # The SPDY/3 dictionary: 1423 bytes; its sha256 taken from the spec's C array.
    assert len(HEADER_DICTIONARY) == 1423
    assert (
        hashlib.sha256(HEADER_DICTIONARY).hexdigest()
        == "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"
    )
    assert HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert HEADER_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        # control bit + version 3, type 6, no flags, length 4, id 1
        (Ping(1), "80030006 00000004 00000001"),
        (RstStream(5, spdy.RstStatus.CANCEL), "80030003 00000008 00000005 00000005"),
        (GoAway(7, spdy.GoAwayStatus.OK), "80030007 00000008 00000007 00000000"),
        (WindowUpdate(3, 0x10000), "80030009 00000008 00000003 00010000"),
        (WindowUpdate(0, 1), "80030009 00000008 00000000 00000001"),
        # one entry: flags 0, id 7 (INITIAL_WINDOW_SIZE), value 0x20000
        (Settings([(0, 7, 0x20000)]), "80030004 0000000c 00000001 00000007 00020000"),
        (Settings([(1, 4, 100)], flags=1), "80030004 0100000c 00000001 01000004 00000064"),
        # data: stream 1, FIN, 3 bytes
        (DataFrame(1, b"abc", FLAG_FIN), "00000001 01000003 616263"),
        (DataFrame(0x7FFFFFFF, b""), "7fffffff 00000000"),
    ],
)
def test_frames_match_hand_built_bytes(frame: spdy.Frame, wire: str) -> None:
    raw = bytes.fromhex(wire.replace(" ", ""))
    assert FrameEncoder().encode(frame) == raw
    assert FrameDecoder().feed(raw) == [frame]


def _inflate(data: bytes) -> bytes:
    d = zlib.decompressobj(zdict=HEADER_DICTIONARY)
    return d.decompress(data)


def test_syn_stream_layout_and_header_block() -> None:
    headers = {"streamtype": ["error"], "port": ["80"]}
    raw = FrameEncoder().encode(SynStream(1, headers, priority=0, flags=0))
    word, flags_len, sid, assoc, pri, slot = struct.unpack(">IIIIBB", raw[:18])
    assert word == 0x80030001 and flags_len & 0xFFFFFF == len(raw) - 8 and flags_len >> 24 == 0
    assert (sid, assoc, pri, slot) == (1, 0, 0, 0)
    block = raw[18:]
    # zlib header with FDICT set and the dictionary's adler32 as its id.
    assert block[0] == 0x78 and block[1] & 0x20
    assert struct.unpack(">I", block[2:6])[0] == zlib.adler32(HEADER_DICTIONARY)
    # Sync-flushed: the block ends on an empty stored block.
    assert block.endswith(b"\x00\x00\xff\xff")
    expected = (
        struct.pack(">I", 2)
        + struct.pack(">I", 10)
        + b"streamtype"
        + struct.pack(">I", 5)
        + b"error"
        + struct.pack(">I", 4)
        + b"port"
        + struct.pack(">I", 2)
        + b"80"
    )
    assert _inflate(block) == expected


def test_header_context_spans_frames_and_multi_values() -> None:
    enc, dec = FrameEncoder(), FrameDecoder()
    frames: list[spdy.Frame] = [
        SynStream(1, {"streamtype": ["stdout"]}),
        SynStream(3, {"streamtype": ["stderr"]}, priority=7, flags=FLAG_FIN),
        SynReply(1, {"x": ["a", "b"]}),
        HeadersFrame(3, {"y": [""]}, flags=FLAG_FIN),
    ]
    wire = b"".join(enc.encode(f) for f in frames)
    # The second block alone cannot be inflated: it continues the first's stream.
    second = wire[len(enc.__class__().encode(frames[0])) :]
    with pytest.raises(ProtocolError):
        FrameDecoder().feed(second)
    # Byte by byte gives the same frames as all at once.
    out: list[spdy.Frame] = []
    for i in range(len(wire)):
        out += dec.feed(wire[i : i + 1])
    assert out == frames
    assert dec.pending == 0


def test_decoder_accepts_go_style_best_compression() -> None:
    # Go's spdystream deflates at BestCompression; the stream must still inflate.
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)
    block = z.compress(spdy.pack_headers({"streamtype": ["data"], "requestid": ["0"]})) + z.flush(
        zlib.Z_SYNC_FLUSH
    )
    body = struct.pack(">IIBB", 1, 0, 0, 0) + block
    raw = struct.pack(">HHI", 0x8003, 1, len(body)) + body
    assert FrameDecoder().feed(raw) == [SynStream(1, {"streamtype": ["data"], "requestid": ["0"]})]


# What crictl 1.26 (client-go over Go's spdystream) sent for `crictl exec -i CID ...`
# with "shout\n" on stdin, captured off the wire: four SYN_STREAMs whose header
# blocks share one deflate stream (Go's, at BestCompression), stdin's data, its FIN.
CAPTURED_CRICTL_EXEC_I = bytes.fromhex(
    "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a"
    "0a0a6800000000ffff800300010000001700000003000000000000c22e555c92929907000000ffff"
    "800300010000001900000005000000000000c22ac5565c92925f5a02000000ffff80030001000000"
    "1500000007000000000000c229975a5404000000ffff000000030000000673686f75740a00000003"
    "01000000"
)


def test_captured_crictl_frames_decode() -> None:
    frames = FrameDecoder().feed(CAPTURED_CRICTL_EXEC_I)
    assert frames == [
        SynStream(1, {"streamtype": ["error"]}),
        SynStream(3, {"streamtype": ["stdin"]}),
        SynStream(5, {"streamtype": ["stdout"]}),
        SynStream(7, {"streamtype": ["stderr"]}),
        DataFrame(3, b"shout\n"),
        DataFrame(3, b"", FLAG_FIN),
    ]
    # Split anywhere, the same frames come out.
    for cut in (1, 9, 50, 100, len(CAPTURED_CRICTL_EXEC_I) - 3):
        dec = FrameDecoder()
        assert dec.feed(CAPTURED_CRICTL_EXEC_I[:cut]) + dec.feed(CAPTURED_CRICTL_EXEC_I[cut:]) == frames


def test_unknown_control_frames_are_skipped() -> None:
    noop = bytes.fromhex("80030005 00000000".replace(" ", ""))  # SPDY/2's NOOP
    odd = bytes.fromhex("800300ff 00000002 abcd".replace(" ", ""))
    ping = FrameEncoder().encode(Ping(3))
    assert FrameDecoder().feed(noop + odd + ping) == [Ping(3)]


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        ("80020006 00000004 00000001", "version 2"),
        ("00000000 00000001 00", "stream 0"),
        ("80030006 00000005 0000000100", "malformed"),
        ("80030004 00000008 00000002 00000000", "entries"),
        ("80030009 00000008 00000001 00000000", "delta of 0"),
        ("80030001 0000000a 00000000 00000000 0000", "stream 0"),
        ("80030002 00000006 00000001 ffff", "inflate"),
    ],
)
def test_malformed_frames_are_protocol_errors(wire: str, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        FrameDecoder().feed(bytes.fromhex(wire.replace(" ", "")))


def test_header_blocks_are_checked() -> None:
    with pytest.raises(ProtocolError, match="lower case"):
        spdy.unpack_headers(spdy.pack_headers({"a": ["1"]}).replace(b"a", b"A", 1))
    dup = struct.pack(">I", 2) + (struct.pack(">I", 1) + b"a" + struct.pack(">I", 1) + b"1") * 2
    with pytest.raises(ProtocolError, match="twice"):
        spdy.unpack_headers(dup)
    with pytest.raises(ProtocolError, match="truncated"):
        spdy.unpack_headers(struct.pack(">I", 1) + struct.pack(">I", 9) + b"abc")


def test_header_bombs_are_refused() -> None:
    z = zlib.compressobj(9, zlib.DEFLATED, 15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)
    huge = spdy.pack_headers({"x": ["a" * (spdy.MAX_HEADER_BLOCK + 10)]})
    block = z.compress(huge) + z.flush(zlib.Z_SYNC_FLUSH)
    assert len(block) < 4096
    body = struct.pack(">I", 1) + block
    raw = struct.pack(">HHI", 0x8003, 2, len(body)) + body
    with pytest.raises(ProtocolError, match="inflates past"):
        FrameDecoder().feed(raw)


def test_frame_size_limit() -> None:
    dec = FrameDecoder(max_frame=1024)
    with pytest.raises(ProtocolError, match="exceeds"):
        dec.feed(struct.pack(">II", 1, 2048))
    with pytest.raises(ValueError):
        FrameEncoder().encode(DataFrame(0, b"x"))


# ---------------------------------------------------------------- sessions


class Pipe:
    """Two in-memory byte streams joined end to end."""

    def __init__(self) -> None:
        self.a_to_b: asyncio.Queue[bytes] = asyncio.Queue()
        self.b_to_a: asyncio.Queue[bytes] = asyncio.Queue()
        self.wire_a: list[bytes] = []

    def sessions(self) -> tuple[Session, Session]:
        async def wa(d: bytes) -> None:
            self.wire_a.append(d)
            self.a_to_b.put_nowait(d)

        async def wb(d: bytes) -> None:
            self.b_to_a.put_nowait(d)

        client = Session(self.b_to_a.get, wa, server=False)
        server = Session(self.a_to_b.get, wb, server=True)
        return client, server

    def hang_up(self) -> None:
        self.a_to_b.put_nowait(b"")
        self.b_to_a.put_nowait(b"")


def run(coro: object) -> object:
    return asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_session_streams_reply_data_fin_and_ping() -> None:
    async def main() -> None:
        pipe = Pipe()
        client, server = pipe.sessions()
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(server.run())]
        st = await client.open_stream({"streamtype": ["stdin"]})
        assert st.id == 1
        peer = await server.accept()
        assert peer is not None and peer.header("streamType") == "stdin"
        await peer.reply({"ok": ["1"]})
        assert await st.wait_reply(5) == {"ok": ["1"]}
        await st.write(b"hello ")
        await st.write(b"world")
        await st.close()
        assert await peer.read_all() == b"hello world"
        await peer.write(b"back")
        await peer.close()
        assert await st.read_all() == b"back"
        assert st.id not in client.streams and peer.id not in server.streams  # both forgot it
        assert await client.ping() >= 0
        assert await server.ping() >= 0
        second = await client.open_stream({"streamtype": ["stdout"]})
        assert second.id == 3
        pipe.hang_up()
        await asyncio.gather(*tasks)
        assert await server.accept() is not None  # the one already queued
        assert await server.accept() is None
        with pytest.raises(StreamReset):
            await second.write(b"x")

    run(main())


def test_session_reset_and_unknown_stream() -> None:
    async def main() -> None:
        pipe = Pipe()
        client, server = pipe.sessions()
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(server.run())]
        st = await client.open_stream({"a": ["b"]})
        peer = await server.accept()
        assert peer is not None
        await peer.reset(spdy.RstStatus.REFUSED_STREAM)
        with pytest.raises(StreamReset, match="REFUSED_STREAM"):
            await st.wait_reply(5)
        assert await st.read() == b""
        # Data for a stream the server forgot: answered with RST_STREAM, session lives on.
        await client.send(DataFrame(st.id, b"late"))
        assert await client.ping() >= 0
        pipe.hang_up()
        await asyncio.gather(*tasks)

    run(main())


def test_flow_control_windows() -> None:
    async def main() -> None:
        pipe = Pipe()
        client, server = pipe.sessions()
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(server.run())]
        st = await client.open_stream({})
        peer = await server.accept()
        assert peer is not None
        await peer.reply()
        await st.wait_reply(5)
        # The server reads: it hands windows back (WINDOW_UPDATE) as it goes.
        payload = bytes(range(256)) * 1024  # 256 KiB, four initial windows
        writer = asyncio.create_task(st.write(payload))
        got = bytearray()
        while len(got) < len(payload):
            got += await peer.read()
        await writer
        assert bytes(got) == payload
        # The client saw the server's updates (sent before its PING echo): it now
        # keeps the windows itself.
        await client.ping()
        assert client.enforce_send_windows
        # A reader that does not read: the writer stops at the window.
        st2 = await client.open_stream({})
        peer2 = await server.accept()
        assert peer2 is not None
        await peer2.reply()
        await st2.wait_reply(5)
        stalled = asyncio.create_task(st2.write(b"x" * (3 * spdy.DEFAULT_WINDOW)))
        for _ in range(500):  # a wait on a condition, with a bound
            if peer2.buffered >= spdy.DEFAULT_WINDOW:
                break
            await asyncio.sleep(0.01)
        assert peer2.buffered == spdy.DEFAULT_WINDOW
        assert not stalled.done()
        while not stalled.done() or peer2.buffered:
            data = await peer2.read()
            assert data
        await stalled
        pipe.hang_up()
        await asyncio.gather(*tasks)

    run(main())


def test_settings_change_stream_windows() -> None:
    async def main() -> None:
        pipe = Pipe()
        client, server = pipe.sessions()
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(server.run())]
        st = await client.open_stream({})
        await server.send(Settings([(0, spdy.Setting.INITIAL_WINDOW_SIZE, 1000)]))
        assert await client.ping() >= 0  # the SETTINGS is in before the PING's echo
        assert client.initial_send_window == 1000
        assert st.send_window == 1000
        pipe.hang_up()
        await asyncio.gather(*tasks)

    run(main())


def test_idle_sessions_end_with_goaway() -> None:
    async def main() -> None:
        pipe = Pipe()
        client, server = pipe.sessions()
        server.idle_timeout = 0.2
        c = asyncio.create_task(client.run())
        await server.run()  # returns by itself: nothing arrived for 0.2 s
        assert server.closed
        for _ in range(500):  # a wait on a condition, with a bound
            if client.goaway_received:
                break
            await asyncio.sleep(0.01)
        assert client.goaway_received
        pipe.hang_up()
        await c

    run(main())


def test_streams_past_the_limit_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from podkit.cri.streaming import session as session_mod

    monkeypatch.setattr(session_mod, "MAX_STREAMS", 2)

    async def main() -> None:
        pipe = Pipe()
        client, server = pipe.sessions()
        tasks = [asyncio.create_task(client.run()), asyncio.create_task(server.run())]
        streams = [await client.open_stream({"n": [str(i)]}) for i in range(3)]
        for _ in range(2):
            peer = await server.accept()
            assert peer is not None
            await peer.reply()
        await streams[0].wait_reply(5)
        await streams[1].wait_reply(5)
        with pytest.raises(StreamReset, match="REFUSED_STREAM"):
            await streams[2].wait_reply(5)
        pipe.hang_up()
        await asyncio.gather(*tasks)

    run(main())
