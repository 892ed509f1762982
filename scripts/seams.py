#!/usr/bin/env python3
"""Figures for the state of podkit's seams: `Any` in signatures, largest files and
functions, and mypy's error counts. Used for issue 7's before/after note.

    .venv/bin/python scripts/seams.py [--mypy] [--top N] [PATH]

`--mypy` also runs mypy twice on PATH with no config file (default and --strict
options), so the counts compare with a tree that has none; it takes some seconds.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Figures:
    files: list[tuple[int, str]]
    functions: list[tuple[int, str]]
    any_in_signatures: int
    any_by_file: dict[str, int]


def _mentions_any(node: ast.expr | None) -> bool:
    if node is None:
        return False
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and n.id == "Any":
            return True
        if isinstance(n, ast.Attribute) and n.attr == "Any":
            return True
        # string annotations (`"dict[str, Any]"`) and `from __future__ import annotations`
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and re.search(r"\bAny\b", n.value):
            return True
    return False


def measure(root: Path) -> Figures:
    files: list[tuple[int, str]] = []
    functions: list[tuple[int, str]] = []
    any_by_file: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        rel = str(path)
        files.append((text.count("\n"), rel))
        tree = ast.parse(text, filename=rel)
        count = 0
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                functions.append((node.end_lineno - node.lineno + 1, f"{rel}:{node.lineno} {node.name}"))
                a = node.args
                params = [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
                count += sum(_mentions_any(p.annotation) for p in params if p is not None)
                count += _mentions_any(node.returns)
        if count:
            any_by_file[rel] = count
    files.sort(reverse=True)
    functions.sort(reverse=True)
    return Figures(files, functions, sum(any_by_file.values()), any_by_file)


def mypy_errors(root: Path, *flags: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "/dev/null", "--no-incremental", *flags, str(root)],
        capture_output=True,
        text=True,
    )
    lines = (r.stdout or r.stderr).strip().splitlines()
    return lines[-1] if lines else "(no output)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", nargs="?", default="podkit")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--mypy", action="store_true")
    args = ap.parse_args()
    root = Path(args.path)
    f = measure(root)
    print(f"`Any` in function signatures (parameters + returns): {f.any_in_signatures}")
    for rel, n in sorted(f.any_by_file.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"  {n:4d}  {rel}")
    print(f"largest files (lines), {len(f.files)} files:")
    for n, rel in f.files[: args.top]:
        print(f"  {n:5d}  {rel}")
    print(f"files over 500 lines: {sum(1 for n, _ in f.files if n > 500)}")
    print("largest functions (lines):")
    for n, where in f.functions[: args.top]:
        print(f"  {n:5d}  {where}")
    print(f"functions over 80 lines: {sum(1 for n, _ in f.functions if n > 80)}")
    if args.mypy:
        print(f"mypy (no config): {mypy_errors(root)}")
        print(f"mypy --strict (no config): {mypy_errors(root, '--strict')}")


if __name__ == "__main__":
    main()
