"""Go's fmt printing of values (``%v``, Printf) and the functions of docker's
templates, for podkit/cli/gotemplate.py.

The builtins of text/template (``and or not len index slice print printf println eq
ne lt le gt ge html js urlquery``; ``call``, whose error names its operand, is the
evaluator's) and docker's (``json split join title lower upper pad truncate``, from
github.com/docker/cli/templates). A function raises ``FuncError``; the evaluator
reports it as Go does (``error calling NAME: ...``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from podkit.cli.gojson import NO_VALUE, go_json


def go_quote(s: str) -> str:
    """strconv.Quote: Go's %q of a string (unprintable runes escaped, ``\\x01``,
    ``\\u00a0``, ``\\U0001f600``; printable ones, é included, as they are)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in _QUOTE_ESC:
            out.append(_QUOTE_ESC[ch])
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_QUOTE_ESC = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_str(v: object) -> str:
    """``v`` as Go's fmt ``%v`` prints it."""
    if v is None:
        return "<nil>"
    if v is NO_VALUE:
        return "<no value>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v[k])}" for k in sorted_keys(v)) + "]"
    return str(v)


def go_float(f: float) -> str:
    """Go's shortest ``%v`` of a float64: exponent form below 1e-4 and from 1e6 up
    when that is shorter than the digits (``1e+06``, ``1.234567e+06``, ``123456``)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits))
    e10 = len(ds) + exp - 1  # exponent of the first digit
    neg = "-" if sign else ""
    if e10 < -4 or e10 >= 6:  # strconv's 'g' with the shortest precision: eprec 6
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'+' if e10 >= 0 else '-'}{abs(e10):02d}"
    if e10 < 0:
        return f"{neg}0.{'0' * (-e10 - 1)}{ds}"
    if len(ds) <= e10 + 1:
        return neg + ds + "0" * (e10 + 1 - len(ds))
    return f"{neg}{ds[: e10 + 1]}.{ds[e10 + 1 :]}"


def sorted_keys(m: Mapping[Any, Any]) -> list[Any]:
    try:
        return sorted(m)
    except TypeError:
        return list(m)


def truth(v: object) -> bool:
    """Go's truth: false, 0, nil and empty strings, lists and maps are false."""
    if v is None or v is False or v is NO_VALUE:
        return False
    if isinstance(v, int | float | str | list | tuple | dict):
        return bool(v)
    return True


def type_name(v: object) -> str:
    if v is None:
        return "nil"
    if v is NO_VALUE:
        return "<nil>"  # fmt's %T of an invalid value
    return {
        bool: "bool",
        int: "int",
        float: "float64",
        str: "string",
        list: "[]interface {}",
        tuple: "[]interface {}",
        dict: "map[string]interface {}",
    }.get(type(v), type(v).__name__)


class FuncError(Exception):
    """A function refused its arguments."""


def _want_str(v: object) -> str:
    if not isinstance(v, str):
        raise FuncError(f"wrong type for value; expected string; got {type_name(v)}")
    return v


def _want_int(v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise FuncError(f"wrong type for value; expected int; got {type_name(v)}")
    return v


def _basic(v: object) -> str:
    """Go's basicKind: ints and floats are different kinds (``eq 1 1.0`` is an error)."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(a: object, *bs: object) -> bool:
    if not bs:
        raise FuncError("missing argument for comparison")
    for b in bs:
        ka, kb = _basic(a), _basic(b)
        if "other" in (ka, kb) and ka != "nil" and kb != "nil":
            raise FuncError("non-comparable types")
        if ka != kb and "nil" not in (ka, kb):
            raise FuncError("incompatible types for comparison")
        if a == b:
            return True
    return False


def _less(a: object, b: object) -> bool:
    ka, kb = _basic(a), _basic(b)
    if ka not in ("int", "float", "string") or kb not in ("int", "float", "string"):
        raise FuncError("invalid type for comparison")
    if ka != kb:
        raise FuncError("incompatible types for comparison")
    return bool(a < b)  # type: ignore[operator]


def _len(v: object) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, list | tuple | dict):
        return len(v)
    raise FuncError(f"len of type {type_name(v)}")


def _index(v: object, *keys: object) -> object:
    for k in keys:
        if isinstance(v, Mapping):
            # a missing key is the zero value: docker's maps of labels are map[string]string
            zero = "" if all(isinstance(x, str) for x in v.values()) else None
            v = v.get(k, zero)
        elif isinstance(v, list | tuple | str):
            i = _want_int(k)
            if not 0 <= i < len(v):
                raise FuncError(f"index out of range: {i}")
            v = v[i] if not isinstance(v, str) else v.encode()[i]
        elif v is None:
            raise FuncError("index of untyped nil")
        else:
            raise FuncError(f"can't index item of type {type_name(v)}")
    return v


def _slice(v: object, *idx: object) -> object:
    if v is None:
        raise FuncError("slice of untyped nil")
    if not isinstance(v, str | list | tuple):
        raise FuncError(f"can't slice item of type {type_name(v)}")
    ints = [_want_int(i) for i in idx]
    if len(ints) > 3:
        raise FuncError(f"too many slice indexes: {len(ints)}")
    if len(ints) == 3 and isinstance(v, str):
        raise FuncError("cannot 3-index slice a string")
    cap = len(v)  # a list's capacity is its length here
    for i in ints:
        if not 0 <= i <= cap:
            raise FuncError(f"index out of range: {i}")
    lo = ints[0] if ints else 0
    hi = ints[1] if len(ints) > 1 else len(v)
    if len(ints) == 3 and ints[1] > ints[2]:
        raise FuncError(f"invalid slice index: {ints[1]} > {ints[2]}")
    if lo > hi:
        raise FuncError(f"invalid slice index: {lo} > {hi}")
    out = v.encode()[lo:hi].decode(errors="replace") if isinstance(v, str) else v[lo:hi]
    return out


def _sprint(*args: object) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a))
    return "".join(out)


def _html(*args: object) -> str:
    """text/template's html: HTMLEscapeString of the operands as print joins them."""
    s = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(*args)
    for a, b in (
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ('"', "&#34;"),
        ("'", "&#39;"),
        ("\0", "\ufffd"),
    ):
        s = s.replace(a, b)
    return s


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def _js(*args: object) -> str:
    """text/template's js: JSEscapeString (control and unprintable characters as \\uXXXX)."""
    s = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(*args)
    out = []
    for ch in s:
        if ch in _JS:
            out.append(_JS[ch])
        elif ch < " " or (ch >= "\x80" and not ch.isprintable()):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: object) -> str:
    """text/template's urlquery: url.QueryEscape (space as +)."""
    from urllib.parse import quote_plus

    s = args[0] if len(args) == 1 and isinstance(args[0], str) else _sprint(*args)
    return quote_plus(s, safe="")


def _sprintln(*args: object) -> str:
    return " ".join(go_str(a) for a in args) + "\n"


_VERB = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d+)?)?([a-zA-Z%])")


def sprintf(fmt: str, *args: object) -> str:
    """fmt.Sprintf for the verbs templates use: v s q d x X o b c e E f F g G t T %."""
    out: list[str] = []
    pos = 0
    argi = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[argi]
        argi += 1
        out.append(_pad(_verb(verb, flags, prec, a), flags, width))
    out.append(fmt[pos:])
    if argi < len(args):
        extra = ", ".join(f"{type_name(a)}={go_str(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _pad(s: str, flags: str, width: str | None) -> str:
    if not width or width == "*":
        return s
    w = int(width)
    if "-" in flags:
        return s.ljust(w)
    if "0" in flags and s[:1] in "+-" and s[1:2].isdigit():
        return s[0] + s[1:].rjust(w - 1, "0")
    if "0" in flags and (s[:1].isdigit()):
        return s.rjust(w, "0")
    return s.rjust(w)


def _bad(verb: str, a: object) -> str:
    return f"%!{verb}({type_name(a)}={go_str(a)})" if a is not None else f"%!{verb}(<nil>)"


def _verb(verb: str, flags: str, prec: str | None, a: object) -> str:
    plus = "+" if "+" in flags else (" " if " " in flags else "")
    p = int(prec) if prec and prec != "*" else (0 if prec == "" else None)
    if verb == "v":
        return go_str(a)
    if verb == "T":
        return type_name(a)
    if verb == "t":
        return go_str(a) if isinstance(a, bool) else _bad(verb, a)
    if verb in "sq":
        if isinstance(a, str) or (verb == "s" and isinstance(a, list | dict)):
            s = a if isinstance(a, str) else go_str(a)
            s = s[:p] if p is not None else s
            return go_quote(s) if verb == "q" else s
        if verb == "q" and isinstance(a, int) and not isinstance(a, bool):
            return "'" + json.dumps(chr(a))[1:-1].replace("\\u00", "\\x") + "'"
        return _bad(verb, a)
    if isinstance(a, bool) or a is None:
        return _bad(verb, a)
    if verb in "dxXobc" and isinstance(a, int):
        if verb == "c":
            return chr(a)
        base = {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb]
        s = format(abs(a), base)
        if "#" in flags and verb in "xXo":
            s = {"x": "0x", "X": "0X", "o": "0"}[verb] + s
        return ("-" if a < 0 else plus) + s
    if verb in "xX" and isinstance(a, str):
        s = a.encode().hex()
        return s.upper() if verb == "X" else s
    if verb in "eEfFgG" and isinstance(a, int | float):
        f = float(a)
        if verb in "gG" and p is None:
            s = go_float(f).replace("e", "E" if verb == "G" else "e")
        else:
            s = format(f, f"{'+' if plus == '+' else ''}.{6 if p is None else p}{verb}")
            if verb in "eE":
                s = re.sub(r"([eE][+-])(\d)$", r"\g<1>0\2", s)
        return s if plus != " " or s.startswith("-") else " " + s
    return _bad(verb, a)


def _title(s: object) -> str:
    """strings.Title: upper-case the first letter of each word."""
    text = _want_str(s)
    out, prev = [], " "
    for ch in text:
        out.append(ch.upper() if not (prev.isalnum() or prev == "_") else ch)
        prev = ch
    return "".join(out)


def _join(items: object, sep: object) -> str:
    if not isinstance(items, list | tuple):
        raise FuncError(f"wrong type for value; expected []string; got {type_name(items)}")
    return _want_str(sep).join(go_str(x) for x in items)


def _split(s: object, sep: object) -> list[str]:
    text, by = _want_str(s), _want_str(sep)
    return list(text) if by == "" else text.split(by)


def _pad_func(s: object, prefix: object, suffix: object) -> str:
    """docker's padWithSpace: an empty string stays empty."""
    text = _want_str(s)
    return " " * _want_int(prefix) + text + " " * _want_int(suffix) if text else ""


def _truncate(s: object, n: object) -> str:
    return _want_str(s)[: _want_int(n)]


FUNCS: dict[str, Callable[..., object]] = {
    "and": lambda *a: a[-1],  # evaluated lazily by _Run.call
    "or": lambda *a: a[-1],
    "not": lambda v: not truth(v),
    "len": _len,
    "index": _index,
    "slice": _slice,
    "print": _sprint,
    "println": _sprintln,
    "printf": lambda f, *a: sprintf(_want_str(f), *a),
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _less,
    "le": lambda a, b: _less(a, b) or _eq(a, b),
    "gt": lambda a, b: not (_less(a, b) or _eq(a, b)),
    "ge": lambda a, b: not _less(a, b),
    "html": _html,
    "js": _js,
    "urlquery": _urlquery,
    "call": lambda f, *a: f(*a),  # evaluated by _Run.call, which names a non-function
    # docker's (github.com/docker/cli/templates)
    "json": go_json,
    "split": _split,
    "join": _join,
    "title": _title,
    "lower": lambda s: _want_str(s).lower(),
    "upper": lambda s: _want_str(s).upper(),
    "pad": _pad_func,
    "truncate": _truncate,
}

# What docker runs a table's header line with: each function hands its first argument
# back, so `{{upper .Names}}` heads its column NAMES, not an upper-cased header. Not
# pad: docker pads the header too, to keep it over its column.
HEADER_FUNCS: dict[str, Callable[..., object]] = {
    name: (lambda v, *_: v) for name in ("json", "split", "join", "title", "lower", "upper", "truncate")
}
