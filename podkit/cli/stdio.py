"""The terminal side of attach, ``run`` and ``exec``: raw mode, resize, detach keys.

Runs on the stdlib WebSocket of podkit.client._ws; ``select`` multiplexes the
terminal and the socket. Detach keys (``ctrl-p,ctrl-q`` by default) are caught
here: the socket is closed and the container keeps running.
"""

from __future__ import annotations

import os
import select
import sys

from podkit import errors
from podkit.client._json import loads as json_loads

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Callable

    from podkit.client._ws import WebSocket

# signal's C half: the signal module wraps it in enums (enum, with functools and
# collections, ~4 ms of `run`'s start-up); the handlers here are plain functions and ints
if TYPE_CHECKING:
    import signal as _signal
else:
    import _signal

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def parse_detach_keys(spec: str | None) -> bytes:
    """``ctrl-p,ctrl-q`` / ``ctrl-a,x`` → the byte sequence; empty string disables."""
    if spec is None:
        spec = DEFAULT_DETACH_KEYS
    if spec == "":
        return b""
    out = bytearray()
    for part in spec.split(","):
        p = part.strip()
        if p.lower().startswith("ctrl-") and len(p) == 6:
            c = p[5].upper()
            if c == "@":
                out.append(0)
            elif "A" <= c <= "Z" or c in "[\\]^_":
                out.append(ord(c) - 64)
            else:
                raise errors.InvalidArgument(f"invalid detach key {part!r}")
        elif len(p) == 1:
            out.append(ord(p))
        else:
            raise errors.InvalidArgument(f"invalid detach keys {spec!r}: use e.g. ctrl-p,ctrl-q")
    return bytes(out)


def term_size() -> tuple[int, int] | None:
    try:
        sz = os.get_terminal_size(sys.stdout.fileno())
        return sz.lines, sz.columns
    except OSError:
        return None


def interact(
    ws: WebSocket,
    *,
    tty: bool,
    stdin: bool,
    detach_keys: str | None = None,
    on_interrupt: Callable[[], None] | None = None,
    streams: frozenset[str] = frozenset(("stdout", "stderr")),
) -> int:
    """Pump stdio through ``ws`` until the process exits (its code) or the user detaches (0).

    Long on purpose: one select loop over the terminal and the socket, with the raw
    mode and SIGWINCH handling it restores on the way out."""
    keys = parse_detach_keys(detach_keys) if stdin else b""
    in_fd = sys.stdin.fileno() if stdin else -1
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    old_attrs = None
    old_winch = None
    if tty and stdin and os.isatty(in_fd):
        import termios
        import tty as tty_mod

        old_attrs = termios.tcgetattr(in_fd)
        tty_mod.setraw(in_fd)
    # (try/except rather than contextlib.suppress: contextlib is not otherwise imported
    # by `run`, and every module counts in the CLI's start-up)
    if tty:

        def resize() -> None:
            s = term_size()
            if s:
                try:
                    ws.send_json({"resize": list(s)})
                except OSError:
                    pass  # the connection is gone: the loop below sees it

        resize()
        try:
            old_winch = _signal.signal(_signal.SIGWINCH, lambda *_: resize())
        except ValueError:
            pass  # not the main thread: no resize tracking
    old_int = None
    if on_interrupt is not None:
        # docker's sig-proxy: Ctrl-C goes to the container, wherever the loop happens to be.
        try:
            old_int = _signal.signal(_signal.SIGINT, lambda *_: on_interrupt())
        except ValueError:
            pass  # not the main thread
    from podkit.client._transport import connection_lost

    matched = b""
    stdin_open = stdin
    try:
        while True:
            fds = [ws.fileno()] + ([in_fd] if stdin_open else [])
            try:
                ready = [ws.fileno()] if ws.pending() else select.select(fds, [], [])[0]
            except InterruptedError:
                continue
            if ws.fileno() in ready:
                msg = ws.recv()
                if msg is None:
                    raise connection_lost("before the process ended")
                op, data = msg
                if op == 2 and data:
                    # run -a: a stream not asked for is not shown
                    if ("stderr" if data[0] == 2 else "stdout") in streams:
                        (err if data[0] == 2 else out).write(data[1:])
                        (err if data[0] == 2 else out).flush()
                elif op == 1:
                    ctl = json_loads(data)
                    if "error" in ctl:
                        raise errors.from_dict(ctl)
                    if "exit" in ctl:
                        return int(ctl["exit"])
            if stdin_open and in_fd in ready:
                data = os.read(in_fd, 65536)
                if not data:
                    ws.send_json({"close_stdin": True})
                    stdin_open = False
                    continue
                if keys:
                    buf = matched + data
                    send = bytearray()
                    i = 0
                    m = b""
                    while i < len(buf):
                        if keys.startswith(m + buf[i : i + 1]):
                            m += buf[i : i + 1]
                            if m == keys:
                                if send:
                                    ws.send_stdin(bytes(send))
                                sys.stderr.write("\r\n" if tty else "\n")
                                return -1  # detached
                        else:
                            send += m + buf[i : i + 1]
                            m = b""
                        i += 1
                    matched = m
                    if send:
                        ws.send_stdin(bytes(send))
                else:
                    ws.send_stdin(data)
    except (ConnectionResetError, BrokenPipeError):
        raise connection_lost("before the process ended") from None
    finally:
        if old_attrs is not None:
            import termios

            termios.tcsetattr(in_fd, termios.TCSADRAIN, old_attrs)
        if old_winch is not None:
            _signal.signal(_signal.SIGWINCH, old_winch)
        if old_int is not None:
            _signal.signal(_signal.SIGINT, old_int)
        ws.close()
