"""Printing helpers shared by all commands: tables, JSON, ids, sizes, ages."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from podkit.errors import InvalidArgument, NotFound, PodkitError


def print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
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
) -> None:
    """Print a listing honouring --format json and -q, as every `ls` does."""
    if getattr(args, "quiet", False):
        for it in items:
            print(id_of(it))
    elif getattr(args, "format", None) == "json":
        print_json(items)
    else:
        table((row(it) for it in items), headers)


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
    """A small subset of Go templates: {{.A.B}} and {{json .A}}."""

    def lookup(path: str) -> Any:
        v = data
        for part in [p for p in path.split(".") if p]:
            if isinstance(v, dict) and part in v:
                v = v[part]
            elif isinstance(v, dict):
                lower = {k.lower(): k for k in v}
                if part.lower() not in lower:
                    raise InvalidArgument(f"template: no field {part!r} in {path!r}")
                v = v[lower[part.lower()]]
            else:
                raise InvalidArgument(f"template: cannot index {path!r}")
        return v

    def sub(m: re.Match[str]) -> str:
        expr = m.group(1).strip()
        if expr.startswith("json "):
            return json.dumps(lookup(expr[5:].strip()))
        v = lookup(expr)
        if isinstance(v, list):
            return "[" + " ".join(str(x) for x in v) + "]"
        if isinstance(v, dict):
            return "map[" + " ".join(f"{k}:{x}" for k, x in v.items()) + "]"
        return "<no value>" if v is None else str(v)

    return re.sub(r"\{\{(.*?)\}\}", sub, template)


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
    if fmt in (None, "json", "table"):
        print_json(items)
    else:
        for d in items:
            print(render_template(fmt, d))


def prints_help(p: argparse.ArgumentParser) -> Callable[[argparse.Namespace, object], int]:
    """The handler of a command group run without a subcommand: its help, exit 1."""

    def run(args: argparse.Namespace, client: object) -> int:
        p.print_help()
        return 1

    return run
