"""podkit's argparse parser: what parses argv when podkit/cli/_fastargs.py declines
(help, usage errors, what it does not mirror), and what --help and completion build.
Imported only then: argparse is ~7 ms of a call's start-up."""

from __future__ import annotations

import argparse
import os
import sys

from podkit.cli._fastargs import BOOLEAN_OPTIONAL

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Parser(argparse.ArgumentParser):
    """Usage errors exit 125, as docker's CLI does (argparse's own default is 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the register() functions name it without importing argparse
        self.register("action", BOOLEAN_OPTIONAL, argparse.BooleanOptionalAction)

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(125, f"{self.prog}: error: {message}\nSee '{self.prog} --help'.\n")

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter for every add_argument, and its own asks shutil for
        # the terminal's width: shutil (with bz2, lzma) is ~5 ms of every command's start.
        # The width is asked once per process: the tty query failing (stdout a pipe)
        # for each of `run`'s ~110 flags was half the time of building its parser.
        make: Callable[..., argparse.HelpFormatter] = self.formatter_class  # (HelpFormatter takes width)
        if not _WIDTH:
            _WIDTH.append(_columns() - 2)
        return make(prog=self.prog, width=_WIDTH[0])


_WIDTH: list[int] = []


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size gives it: $COLUMNS, the tty, 80."""
    try:
        if int(os.environ["COLUMNS"]) > 0:
            return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    out = sys.__stdout__
    try:
        return (os.get_terminal_size(out.fileno()).columns or 80) if out is not None else 80
    except (ValueError, OSError):
        return 80
