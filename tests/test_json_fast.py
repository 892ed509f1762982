"""podkit.client._json's dumps/loads (the C _json module alone) against the json package."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podkit.client import _json

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
)
values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8), inner, max_size=5)
        | st.dictionaries(st.integers() | st.booleans() | st.none() | st.floats(), inner, max_size=3)
    ),
    max_leaves=30,
)


def _same(a: object, b: object) -> bool:
    """Equal, NaN included (json.loads gives NaN for NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=400, deadline=None)
@given(values)
def test_dumps_is_json_dumps(v: object) -> None:
    assert _json.dumps(v) == json.dumps(v)


@settings(max_examples=400, deadline=None)
@given(values, st.sampled_from(["", " ", "\n", " \t\r\n "]), st.sampled_from(["", " ", "\n\n"]))
def test_loads_is_json_loads(v: object, before: str, after: str) -> None:
    doc = before + json.dumps(v) + after
    assert _same(_json.loads(doc), json.loads(doc))
    assert _same(_json.loads(doc.encode()), json.loads(doc.encode()))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20) | st.binary(max_size=20))
def test_loads_of_anything_is_json_loads_or_its_error(s: str | bytes) -> None:
    try:
        want: object = json.loads(s)
    except (ValueError, UnicodeDecodeError) as e:
        with pytest.raises(type(e)) as got:
            _json.loads(s)
        assert str(got.value) == str(e)
    else:
        assert _same(_json.loads(s), want)


@pytest.mark.parametrize(
    "v",
    [
        "ä日本\U0001f600",
        "\ud800",
        "\x00\x1f\x7f",
        1e400,
        -1e400,
        float("nan"),
        1e-320,
        0.1,
        -0.0,
        10**100,
        -(10**100),
        True,
        {"a": [1, {"b": None}], "c": "d"},
        {1: "x", 2.5: "y", False: "z", None: "n"},
        [[[[[]]]]],
        {},
        [],
        "",
    ],
)
def test_edge_cases(v: object) -> None:
    assert _json.dumps(v) == json.dumps(v)
    assert _same(_json.loads(_json.dumps(v)), json.loads(json.dumps(v)))


@pytest.mark.parametrize(
    "doc",
    [
        "",
        " ",
        "{",
        '{"a": 1} x',
        "[1,]",
        "\ufeff{}",
        '"\\ud800"',
        "NaN",
        "-Infinity",
        "1 2",
        '{"a": 1}{"b": 2}',
        b'\xef\xbb\xbf{"a": 1}',
        '{"a": 1}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-16-le"),
        '{"a": 1}'.encode("utf-32"),
        b'"\xed\xa0\x80"',
        b"\xff",
        bytearray(b"[1, 2]"),
    ],
)
def test_loads_errors_and_encodings(doc: str | bytes) -> None:
    try:
        want: object = json.loads(doc)
    except ValueError as e:
        with pytest.raises(type(e), match=None) as got:
            _json.loads(doc)
        assert str(got.value) == str(e)
    else:
        assert _same(_json.loads(doc), want)


def test_dumps_errors_as_json() -> None:
    for bad in ({"a": object()}, {(1, 2): 3}, {1j: 2}):
        with pytest.raises(TypeError) as want:
            json.dumps(bad)
        with pytest.raises(TypeError) as got:
            _json.dumps(bad)
        assert str(got.value) == str(want.value)
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        _json.dumps(loop)


def test_no_re_imported() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom podkit.client import _json\n"
        "_json.loads(_json.dumps({'a': [1.5, 'x']}))\n"
        "print(sorted(m for m in ('re', 'json', 'json.decoder', 'enum') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


class _Thing:
    def __str__(self) -> str:
        return "thing ä"


_with_objects = st.recursive(
    _scalars | st.builds(_Thing) | st.binary(max_size=4) | st.frozensets(st.integers(), max_size=2),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner)
        | st.dictionaries(
            st.text(max_size=6) | st.integers() | st.floats() | st.booleans() | st.none(), inner, max_size=4
        )
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(_with_objects, st.integers(0, 4))
def test_dumps_indented_is_json_dumps_with_indent(v: object, indent: int) -> None:
    assert _json.dumps_indented(v, indent, str) == json.dumps(v, indent=indent, default=str)


def test_dumps_indented_errors_as_json() -> None:
    loop: list[object] = []
    loop.append(loop)
    for bad in ({(1, 2): 3}, loop):
        with pytest.raises((TypeError, ValueError)) as want:
            json.dumps(bad, indent=2, default=str)
        with pytest.raises(type(want.value)) as got:
            _json.dumps_indented(bad, 2, str)
        assert str(got.value) == str(want.value)

    def again(o: object) -> object:
        return o  # default giving the object back: a circular reference to json

    with pytest.raises(ValueError, match="Circular reference"):
        _json.dumps_indented(object(), 2, again)
