"""Printing helpers shared by all commands: tables, JSON, ids, sizes, ages."""

from __future__ import annotations

import sys
import time

from podkit.client._json import dumps_indented
from podkit.errors import NotFound, PodkitError

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any


JSON_FORMAT = "{{json .}}"
"""What docker's listings run for ``--format json`` (formatter.JSONFormat): one compact
object a line, with the fields a template sees -- not the indented array of inspect."""


def listing_format(fmt: str | None) -> str | None:
    """A listing's --format: ``json`` is docker's one-object-a-line template."""
    return JSON_FORMAT if fmt == "json" else fmt


def print_json(data: object) -> None:
    sys.stdout.write(dumps_indented(data, 2, str))  # json.dump(data, indent=2, default=str)
    sys.stdout.write("\n")


def table(rows: Iterable[Sequence[object]], headers: Sequence[str]) -> None:
    """Docker-style table: upper-case headers, columns padded by 3 spaces."""
    text = [[str(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in text:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    out = sys.stdout
    for r in [list(headers), *text]:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        out.write("   ".join(cells).rstrip() + "\n")


def listing(
    args: argparse.Namespace,
    items: list[dict[str, Any]],
    headers: Sequence[str],
    row: Callable[[dict[str, Any]], Sequence[object]],
    id_of: Callable[[dict[str, Any]], str],
    fields: Callable[[dict[str, Any]], Mapping[str, object]] | None = None,
    field_headers: Mapping[str, str] | None = None,
    json_array: bool = False,
) -> None:
    """Print a listing honouring --format json|TEMPLATE and -q, as every `ls` does;
    a template sees ``fields(item)`` (docker's field names) and heads a table's
    columns with ``field_headers``. ``json`` is docker's: each item's fields as a line
    of JSON (``json_array``: podman's indented array of the items, for pods)."""
    fmt = getattr(args, "format", None)
    if getattr(args, "quiet", False):
        for it in items:
            print(id_of(it))
    elif fmt == "json" and json_array:
        print_json(items)
    elif fmt == "json" or is_template(fmt):
        fmt = listing_format(fmt)
        assert fmt is not None
        print_items(fmt, (fields(it) if fields else it for it in items), field_headers or {})
    else:
        table((row(it) for it in items), headers)


def labels_text(labels: Mapping[str, str] | None) -> str:
    """docker's Labels column: k=v pairs joined by commas."""
    return ",".join(f"{k}={v}" for k, v in (labels or {}).items())


def human_size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000.0
    return f"{n}"


def ago(ts: float | None) -> str:
    if not ts:
        return "-"
    d = max(0.0, time.time() - ts)
    for unit, secs in (
        ("year", 31536000),
        ("month", 2592000),
        ("week", 604800),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
    ):
        if d >= secs:
            n = int(d // secs)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "Less than a minute ago" if d >= 1 else "Just now"


def short_id(full: str) -> str:
    return full.split(":", 1)[-1][:12]


def err(msg: str) -> None:
    sys.stderr.write(msg.rstrip("\n") + "\n")


def render_template(template: str, data: object) -> str:
    """One object through a Go template (docker's ``-f``), errors as TemplateError."""
    from podkit.cli.gotemplate import Template

    return Template(_unescape(template)).execute(data)


def _unescape(fmt: str) -> str:
    # docker's preFormat: a literal backslash-t or backslash-n in the flag is a tab or newline
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def is_template(fmt: str | None) -> bool:
    """A --format value that is a template (not table, json or empty)."""
    return fmt not in (None, "", "table", "json")


def check_template(fmt: str) -> None:
    """Parse a --format template (table prefix allowed): a TemplateError if it is bad."""
    from podkit.cli.gotemplate import Template

    Template(_unescape(fmt.removeprefix("table").strip(" ") if fmt.startswith("table") else fmt))


def label_header(name: str) -> str:
    """The header of a ``{{.Label "com.example.app-name"}}`` column, as docker makes it: APP NAME."""
    return name.rsplit(".", 1)[-1].replace("-", " ").replace("_", " ").upper()


def format_items(fmt: str, items: Iterable[object], headers: Mapping[str, object]) -> str:
    """docker's formatter: each item through the template, a line each; with a
    ``table`` prefix, a header line (the template run on ``headers``) and columns
    aligned as Go's tabwriter does (min width 10, padding 3). The template is parsed
    before anything is printed, so a bad one prints nothing but the error."""
    from podkit.cli.gojson import GoMap, go_json

    if headers:  # a listing: docker marshals each row through a map, keys sorted
        items = (GoMap(it) if isinstance(it, dict) else it for it in items)
        if fmt == JSON_FORMAT:  # --format json: no template engine (nor json, re) needed
            return "".join(go_json(it) + "\n" for it in items)
    from podkit.cli.gofuncs import HEADER_FUNCS
    from podkit.cli.gotemplate import Template

    is_table = fmt.startswith("table")
    body = _unescape((fmt[len("table") :] if is_table else fmt).strip(" "))
    tmpl = Template(body)
    out = [tmpl.execute(it) + "\n" for it in items]
    if not is_table:
        return "".join(out)
    head = tmpl.execute({"Label": label_header, **headers}, missing_ok=True, funcs=HEADER_FUNCS)
    return tabwrite(head + "\n" + "".join(out))


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's text/tabwriter with docker's settings: tab-terminated cells are padded to
    the widest cell of their column block (consecutive lines having that column)."""
    lines = [line.split("\t") for line in text.split("\n")]
    widths: list[list[int]] = [[0] * (len(c) - 1) for c in lines]
    col = 0
    while True:
        any_col = False
        i = 0
        while i < len(lines):
            if len(lines[i]) - 1 <= col:
                i += 1
                continue
            any_col = True
            j = i
            while j < len(lines) and len(lines[j]) - 1 > col:
                j += 1
            w = max(minwidth, max(len(lines[k][col]) + padding for k in range(i, j)))
            for k in range(i, j):
                widths[k][col] = w
            i = j
        if not any_col:
            break
        col += 1
    return "\n".join(
        "".join(c.ljust(widths[n][k]) for k, c in enumerate(cells[:-1])) + cells[-1]
        for n, cells in enumerate(lines)
    )


def print_items(fmt: str, items: Iterable[object], headers: Mapping[str, object]) -> None:
    sys.stdout.write(format_items(fmt, items, headers))


def for_each(
    refs: Iterable[str], fn: Callable[[str], object], *, echo: bool = True, engine_exit: int = 1
) -> int:
    """Apply fn to every ref, as `stop a b c` does: go on past failures, print each ref
    done (echo), say what failed; exit 1 if an object was missing, else engine_exit."""
    rc = 0
    for ref in refs:
        try:
            fn(ref)
            if echo:
                print(ref)
        except PodkitError as e:
            if e.code == "connection_lost":
                raise  # the daemon is gone: the others would only fail to connect
            err(f"Error: {e.message}")
            rc = 1 if isinstance(e, NotFound) else engine_exit
    return rc


def inspect_each(refs: Iterable[str], fetch: Callable[[str], object], fmt: str | None) -> int:
    """inspect of several objects: print those found, say which are not; 1 if any missing."""
    out, rc = [], 0
    for ref in refs:
        try:
            out.append(fetch(ref))
        except NotFound as e:
            err(f"Error: {e.message}")
            rc = 1
    print_inspected(out, fmt)
    return rc


def print_inspected(items: Sequence[object], fmt: str | None) -> None:
    """What every inspect prints: a JSON array, or each item through a -f template."""
    if not is_template(fmt):
        print_json(items)
    else:
        assert fmt is not None
        print_items(fmt, items, {})


def prints_help(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace, object], int]:
    """The handler of a command group run without a subcommand: its help, exit 1."""

    def run(args: argparse.Namespace, client: object) -> int:
        p.print_help()
        return 1

    return run
