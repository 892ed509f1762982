"""A minimal WebSocket client (RFC 6455) over the daemon's unix socket, stdlib only.

Interactive streams (attach, ``run -it``, ``exec -it``) use it. podkit's framing on
top: binary frames carry stream data, the first byte naming the stream (0 stdin,
1 stdout, 2 stderr); text frames carry JSON control messages (``{"resize": [h, w]}``
from the client, ``{"exit": code}`` or ``{"error": {...}}`` from the daemon).
"""

from __future__ import annotations

import _socket
import binascii
import os
import struct

from podkit import errors
from podkit.client._json import dumps as json_dumps
from podkit.client._json import loads as json_loads

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
STDIN, STDOUT, STDERR = 0, 1, 2


class WebSocket:
    def __init__(self, sock: _socket.socket, leftover: bytes = b"") -> None:
        self.sock = sock
        self._buf = bytearray(leftover)
        self.closed = False

    @classmethod
    def connect(
        cls,
        socket_path: str,
        path: str,
        params: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> WebSocket:
        from podkit.client._transport import (
            PEER_GONE,
            DaemonNotRunning,
            connection_lost,
            query_string,
            unix_socket,
        )

        try:
            s = unix_socket(socket_path, timeout)
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning(
                f"cannot connect to podkitd at unix://{socket_path}: is the daemon running?"
            ) from None
        if params:
            clean = {
                k: ("true" if v is True else "false" if v is False else str(v))
                for k, v in params.items()
                if v is not None
            }
            if clean:
                path += "?" + query_string(clean)
        key = binascii.b2a_base64(os.urandom(16), newline=False).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            "Host: podkitd",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        buf = b""
        try:
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    s.close()
                    raise connection_lost("during the WebSocket handshake")
                buf += chunk
        except PEER_GONE:
            s.close()
            raise connection_lost("during the WebSocket handshake") from None
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line, *hdr_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        if status != 101:
            hdrs = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in hdr_lines)}
            body = rest
            length = int(hdrs.get("content-length", "0") or 0)
            while len(body) < length:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
            s.close()
            try:
                payload = json_loads(body)
            except ValueError:
                payload = {"error": {"code": "http_error", "message": body.decode(errors="replace")}}
            raise errors.from_dict(payload, status)
        s.settimeout(None)
        return cls(s, rest)

    # -- sending (client frames are masked, as the RFC requires)
    def _send(self, opcode: int, data: bytes) -> None:
        head = bytearray([0x80 | opcode])
        n = len(data)
        if n < 126:
            head.append(0x80 | n)
        elif n < 1 << 16:
            head.append(0x80 | 126)
            head += struct.pack("!H", n)
        else:
            head.append(0x80 | 127)
            head += struct.pack("!Q", n)
        mask = os.urandom(4)
        head += mask
        if n:
            # XOR with the 4-byte mask through one big integer: fast without numpy.
            m = (mask * (n // 4 + 1))[:n]
            data = (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")
        self.sock.sendall(bytes(head) + data)

    def send_stdin(self, data: bytes) -> None:
        self._send(OP_BIN, bytes([STDIN]) + data)

    def send_json(self, obj: object) -> None:
        self._send(OP_TEXT, json_dumps(obj).encode())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._send(OP_CLOSE, struct.pack("!H", 1000))
            except OSError:
                pass
        try:
            self.sock.close()
        except OSError:
            pass

    # -- receiving
    def _need(self, n: int) -> bool:
        while len(self._buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return False
            if not chunk:
                return False
            self._buf += chunk
        return True

    def recv(self) -> tuple[int, bytes] | None:
        """The next whole message as (opcode, payload); None when the connection ends."""
        parts: list[bytes] = []
        first_op = None
        while True:
            if not self._need(2):
                return None
            b0, b1 = self._buf[0], self._buf[1]
            fin, op, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            off = 2
            if n == 126:
                if not self._need(4):
                    return None
                n = struct.unpack_from("!H", self._buf, 2)[0]
                off = 4
            elif n == 127:
                if not self._need(10):
                    return None
                n = struct.unpack_from("!Q", self._buf, 2)[0]
                off = 10
            if not self._need(off + n):
                return None
            payload = bytes(self._buf[off : off + n])
            del self._buf[: off + n]
            if op == OP_PING:
                self._send(OP_PONG, payload)
                continue
            if op == OP_PONG:
                continue
            if op == OP_CLOSE:
                self.closed = True
                return None
            if first_op is None:
                first_op = op
            parts.append(payload)
            if fin:
                return first_op, b"".join(parts)

    def fileno(self) -> int:
        return self.sock.fileno()

    def pending(self) -> bool:
        return len(self._buf) > 0
