"""docker's ``json`` template function, without the json and re modules: the listing
formatter's ``--format json`` uses it directly (podkit/cli/output.py), and templates
through gofuncs."""

from __future__ import annotations

from podkit.client._json import dumps_compact

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from typing import Any


class NoValue:
    """Go's invalid reflect.Value: the dot of ``{{template "x"}}`` called without a
    value. It prints as ``<no value>``, is false, and its fields are no values too."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = NoValue()


class GoMap(dict[str, "Any"]):
    """A dict that Go holds as a map, not a struct: ``json`` writes its keys sorted, as
    encoding/json does (docker's listing contexts marshal through a map, with HTML
    escaping: see go_json)."""


def go_json(v: object) -> str:
    """docker's ``json`` func: compact, HTML characters left alone -- except in a
    listing's row (a ``GoMap``), whose MarshalJSON is a plain json.Marshal that writes
    ``<>&`` as ``\\u003c`` ``\\u003e`` ``\\u0026`` (docker's encoder, told not to escape
    HTML, copies that output as it is). Methods (callables in a formatter's fields) are
    not data and are left out. U+2028 and U+2029 are escaped, as encoding/json does."""
    text = dumps_compact(_data(v), str)
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if isinstance(v, GoMap):
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


def _data(v: object) -> object:
    if v is NO_VALUE:
        return None
    if isinstance(v, GoMap):
        return {k: _data(v[k]) for k in sorted(v) if not callable(v[k])}
    if isinstance(v, dict):
        return {k: _data(x) for k, x in v.items() if not callable(x)}
    if isinstance(v, list | tuple):
        return [_data(x) for x in v]
    return v
