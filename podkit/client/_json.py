"""The one place the SDK's types meet JSON.

Typed results (``Container``, ``Image``, ``Pod``, ...) are what the areas return;
some calls hand back a JSON document as the daemon sent it (``inspect``, ``info``,
``version``, events, progress lines, each result's ``raw``). Those are
``JSONObject``: a dict of what ``json.loads`` gives, whose values callers look into
(``doc["state"]["pid"]``) -- so the values are typed as ``json.loads`` types them.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeAlias

JSONObject: TypeAlias = dict[str, "Any"]
"""A JSON object from (or for) the daemon's API."""


# json.dumps and json.loads on the C accelerator alone. The json package's encoder and
# decoder modules import re (with enum, functools, collections: ~6 ms of a CLI call's
# start-up); its C module _json is what they use for the work anyway. Same results as
# json.dumps(obj) and json.loads(s) (tests/test_json_fast.py); json is imported only to
# raise its errors.

_WS = " \t\n\r"


def _not_serializable(o: object) -> object:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def dumps(obj: object) -> str:
    """``json.dumps(obj)``: ASCII, ", " and ": " separators, NaN and Infinity allowed."""
    if isinstance(obj, str):
        return _json.encode_basestring_ascii(obj)
    encode = _json.make_encoder(
        {}, _not_serializable, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return "".join(encode(obj, 0))


def dumps_compact(obj: object, default: Callable[[Any], object]) -> str:
    """``json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=default)``:
    the C encoder with its non-ASCII string writer."""
    encode = _json.make_encoder({}, default, _json.encode_basestring, None, ":", ",", False, False, True)
    return "".join(encode(obj, 0))


def dumps_indented(obj: object, indent: int, default: Callable[[Any], object]) -> str:
    """``json.dumps(obj, indent=indent, default=default)``: what json's pure-Python
    encoder writes (the C one has no indent), in the same order of type checks."""
    out: list[str] = []
    markers: set[int] = set()
    esc = _json.encode_basestring_ascii

    def scalar(o: object) -> str | None:
        if isinstance(o, str):
            return esc(o)
        if o is None:
            return "null"
        if o is True:
            return "true"
        if o is False:
            return "false"
        if isinstance(o, int):
            return int.__repr__(o)
        if isinstance(o, float):
            return _float(o)
        return None

    def key(k: object) -> str:
        if isinstance(k, str):
            return k
        if isinstance(k, float):
            return _float(k)
        if k is True:
            return "true"
        if k is False:
            return "false"
        if k is None:
            return "null"
        if isinstance(k, int):
            return int.__repr__(k)
        raise TypeError(f"keys must be str, int, float, bool or None, not {k.__class__.__name__}")

    def enter(o: object) -> None:
        if id(o) in markers:
            raise ValueError("Circular reference detected")
        markers.add(id(o))

    def encode(o: object, level: int) -> None:
        text = scalar(o)
        if text is not None:
            out.append(text)
        elif isinstance(o, list | tuple):
            if not o:
                out.append("[]")
                return
            enter(o)
            inner = "\n" + " " * (indent * (level + 1))
            out.append("[")
            for i, v in enumerate(o):
                out.append(inner if i == 0 else "," + inner)
                encode(v, level + 1)
            out.append("\n" + " " * (indent * level) + "]")
            markers.discard(id(o))
        elif isinstance(o, dict):
            if not o:
                out.append("{}")
                return
            enter(o)
            inner = "\n" + " " * (indent * (level + 1))
            out.append("{")
            for i, (k, v) in enumerate(o.items()):
                out.append((inner if i == 0 else "," + inner) + esc(key(k)) + ": ")
                encode(v, level + 1)
            out.append("\n" + " " * (indent * level) + "}")
            markers.discard(id(o))
        else:
            enter(o)
            encode(default(o), level)
            markers.discard(id(o))

    encode(obj, 0)
    return "".join(out)


def _float(o: float) -> str:
    if o != o:
        return "NaN"
    if o == float("inf"):
        return "Infinity"
    if o == float("-inf"):
        return "-Infinity"
    return float.__repr__(o)


class _Context:
    """What json.scanner's C make_scanner reads off a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # (typeshed: a JSONDecoder)


def loads(s: str | bytes | bytearray) -> Any:
    """``json.loads(s)``; what is not one JSON document raises json's own error."""
    text = s.decode("utf-8", "surrogatepass") if isinstance(s, bytes | bytearray) and _utf8(s) else s
    if isinstance(text, str) and not text.startswith("\ufeff"):
        start = len(text) - len(text.lstrip(_WS))
        try:
            obj, end = _scan(text, start)
        except StopIteration:
            pass
        else:
            if len(text.rstrip(_WS)) == end:
                return obj
    import json

    return json.loads(s)  # its error (or its reading of other encodings)


def _utf8(b: bytes | bytearray) -> bool:
    """Whether json.detect_encoding would take ``b`` as UTF-8 without a BOM (a first
    or second NUL byte means UTF-16 or UTF-32)."""
    return not (b[:3] == b"\xef\xbb\xbf" or b[:2] in (b"\xff\xfe", b"\xfe\xff") or 0 in b[:2])
