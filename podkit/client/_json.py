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
