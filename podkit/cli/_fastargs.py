"""The CLI's argv parser for the common path, without argparse.

argparse (with the re, enum, functools, collections, gettext and locale it imports)
is ~7 ms of each call's ~23 ms start-up. The area modules' register() functions are
fed a ``Recorder`` instead of argparse's parsers: it keeps what they declare, and
``parse`` parses argv with it the way Python 3.11's argparse does (the same option
classification, the same nargs patterns matched in the same greedy order, the same
actions, defaults and namespace merging of subparsers). Whatever it does not mirror
exactly -- help, errors of any kind (unknown, ambiguous or abbreviated options,
missing arguments, bad choices, a failed type conversion), mutually exclusive groups,
actions it does not know -- makes it decline (``parse`` returns None): main() then
parses with argparse, whose messages and exit codes are the user's.
tests/test_cli_fastargs.py checks it against argparse.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from typing import Any

# argparse's own values (the register() functions use these names: argparse stays unimported)
REMAINDER = "..."
SUPPRESS = "==SUPPRESS=="
PARSER = "A..."
OPTIONAL = "?"
ZERO_OR_MORE = "*"
ONE_OR_MORE = "+"
# an action name podkit's argparse parser registers for argparse.BooleanOptionalAction
BOOLEAN_OPTIONAL = "boolean_optional"

_ZERO_ARGS = frozenset(
    {"store_const", "store_true", "store_false", "append_const", "count", "help", "version", BOOLEAN_OPTIONAL}
)
_KNOWN = _ZERO_ARGS | {"store", "append", "parsers"}
_DIGITS = frozenset("0123456789")
# parser and subparsers keywords that change only how help looks
_LOOKS = frozenset({"prog", "description", "epilog", "usage", "help", "formatter_class", "metavar", "title"})


class Namespace:
    """What argparse.Namespace is to the handlers: attributes."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and vars(self) == vars(other)

    def __repr__(self) -> str:
        return "Namespace(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"


class Decline(Exception):
    """argparse would do something this parser does not mirror (help, an error...)."""


class Action:
    """One add_argument (or add_subparsers) as argparse would hold it."""

    __slots__ = ("option_strings", "dest", "kind", "nargs", "const", "default", "type", "choices", "required")

    def __init__(self, option_strings: list[str], dest: str, kind: str, kw: dict[str, Any]) -> None:
        self.option_strings = option_strings
        self.dest = dest
        self.kind = kind
        self.nargs: Any = kw.get("nargs")
        self.const: Any = kw.get("const")
        self.default: Any = kw.get("default")
        self.type: Any = kw.get("type")
        self.choices: Any = kw.get("choices")
        self.required: bool = bool(kw.get("required", False))


_ABBREVIATION = Action([], SUPPRESS, "abbreviation", {})


class Recorder:
    """Stands in for argparse.ArgumentParser while register() builds a command's parser."""

    def __init__(self, add_help: bool = True, **kwargs: Any) -> None:
        self.actions: list[Action] = []
        self.options: dict[str, Action] = {}
        self.defaults: dict[str, Any] = {}
        # something recorded that parse() does not mirror (prefix_chars, allow_abbrev,
        # parents, argument_default, fromfile_prefix_chars... change how argparse parses)
        self.unsupported = bool(set(kwargs) - _LOOKS)
        self.has_subparsers = False
        if add_help:
            self.add_argument("-h", "--help", action="help", default=SUPPRESS)

    # ---------------------------------------------------------------- recording
    def add_argument(self, *args: str, **kwargs: Any) -> Action:
        kind = kwargs.get("action") or "store"
        if not isinstance(kind, str) or kind not in _KNOWN or kind == "parsers":
            self.unsupported = True
            kind = "unsupported"
        if not args or (len(args) == 1 and args[0][:1] != "-"):
            if "required" in kwargs or (args and "dest" in kwargs):
                self.unsupported = True  # argparse refuses these: never on a path that works
            dest = args[0] if args else kwargs.get("dest", "")
            nargs = kwargs.get("nargs")
            required = nargs not in (OPTIONAL, ZERO_OR_MORE) or (
                nargs == ZERO_OR_MORE and "default" not in kwargs
            )
            options: list[str] = []
        else:
            options = list(args)
            dest = kwargs.get("dest") or ""
            if not dest:
                longs = [o for o in options if len(o) > 1 and o[1] == "-"]
                dest = (longs or options)[0].lstrip("-").replace("-", "_")
            required = bool(kwargs.get("required", False))
            if kind == BOOLEAN_OPTIONAL:
                options = [x for o in options for x in ((o, "--no-" + o[2:]) if o.startswith("--") else (o,))]
        kw = dict(kwargs, required=required)
        if "default" not in kwargs:
            if dest in self.defaults:
                kw["default"] = self.defaults[dest]
            elif kind in ("store_true", "store_false"):
                kw["default"] = kind == "store_false"
            elif kind == "help":
                kw["default"] = SUPPRESS
        if kind == "store_true":
            kw["const"] = True
        elif kind == "store_false":
            kw["const"] = False
        if kind in _ZERO_ARGS:
            kw["nargs"] = 0
        nargs = kw.get("nargs")
        if not (
            nargs in (None, OPTIONAL, ZERO_OR_MORE, ONE_OR_MORE)
            or (nargs == REMAINDER and not options)
            or (isinstance(nargs, int) and (nargs > 0 or kind in _ZERO_ARGS))
        ):
            self.unsupported = True
        if kw.get("type") is not None and not callable(kw["type"]):
            self.unsupported = True
        action = Action(options, dest, kind, kw)
        for o in options:
            if o in self.options or _negative_number(o):
                self.unsupported = True  # a conflict argparse refuses; options argparse treats apart
            self.options[o] = action
        self.actions.append(action)
        return action

    def add_argument_group(self, *args: Any, **kwargs: Any) -> _Group:
        return _Group(self)

    def add_mutually_exclusive_group(self, **kwargs: Any) -> _Group:
        self.unsupported = True
        return _Group(self)

    def set_defaults(self, **kwargs: Any) -> None:
        self.defaults.update(kwargs)
        for a in self.actions:
            if a.dest in kwargs:
                a.default = kwargs[a.dest]

    def add_subparsers(self, **kwargs: Any) -> Subparsers:
        if self.has_subparsers or set(kwargs) - _LOOKS - {"dest", "required"}:
            self.unsupported = True  # a second one (argparse's error), a parser_class or action
        self.has_subparsers = True
        sub = Subparsers(kwargs.get("dest", SUPPRESS), bool(kwargs.get("required", False)))
        self.actions.append(sub.action)
        return sub


class _Group:
    """An argument group: its arguments are the parser's."""

    def __init__(self, parser: Recorder) -> None:
        self._parser = parser

    def add_argument(self, *args: str, **kwargs: Any) -> Action:
        return self._parser.add_argument(*args, **kwargs)

    def add_mutually_exclusive_group(self, **kwargs: Any) -> _Group:
        return self._parser.add_mutually_exclusive_group(**kwargs)

    def set_defaults(self, **kwargs: Any) -> None:
        self._parser.set_defaults(**kwargs)


class Subparsers:
    """add_subparsers()'s action: each add_parser a Recorder, by name and alias."""

    def __init__(self, dest: str, required: bool) -> None:
        self.parsers: dict[str, Recorder] = {}
        self.action = Action(
            [], dest, "parsers", {"nargs": PARSER, "choices": self.parsers, "required": required}
        )
        self.unsupported = False

    def add_parser(self, name: str, **kwargs: Any) -> Recorder:
        aliases = kwargs.pop("aliases", ())
        p = Recorder(**kwargs)
        for n in (name, *aliases):
            if n in self.parsers:
                p.unsupported = True  # argparse refuses a second parser of a name
            self.parsers[n] = p
        return p


# ------------------------------------------------------------------- parsing
def parse(root: Recorder, argv: list[str]) -> Namespace | None:
    """argparse's ``parse_args(argv)`` of the recorded parser, or None where it would do
    anything but return a namespace (or where this does not mirror it)."""
    try:
        ns = _parse(root, list(argv))
    except Decline:
        return None
    return Namespace(**ns)


def _negative_number(s: str) -> bool:
    """argparse's ``^-\\d+$|^-\\d*\\.\\d+$`` for ASCII (other strings: Decline first)."""
    if s[:1] != "-":
        return False
    head, dot, tail = s[1:].partition(".")
    if not dot:
        return bool(head) and set(head) <= _DIGITS
    return set(head) <= _DIGITS and bool(tail) and set(tail) <= _DIGITS


def _classify(p: Recorder, arg: str) -> tuple[Action | None, str, str | None] | None:
    """argparse's _parse_optional: None for an argument, else (action, option, explicit)."""
    if not arg or arg[0] != "-":
        return None
    if arg in p.options:
        return p.options[arg], arg, None
    if len(arg) == 1:
        return None
    if "=" in arg:
        opt, _, explicit = arg.partition("=")
        if opt in p.options:
            return p.options[opt], opt, explicit
    found: list[tuple[Action, str, str | None]] = []
    if arg[1] == "-":
        prefix, eq, explicit = arg.partition("=")
        for o, a in p.options.items():
            if o.startswith(prefix):
                found.append((a, o, explicit if eq else None))
    else:
        short, short_explicit = arg[:2], arg[2:]
        for o, a in p.options.items():
            if o == short:
                found.append((a, o, short_explicit))
            elif o.startswith(arg):
                found.append((a, o, None))
    if len(found) > 1:
        raise Decline  # ambiguous: argparse's error
    if found:
        if found[0][1] != arg[:2] or arg[1] == "-":
            # an abbreviation: argparse's guess, not mirrored -- unless what it classifies
            # is swallowed whole by a REMAINDER or a subcommand's arguments
            return _ABBREVIATION, found[0][1], None
        return found[0]
    if not arg.isascii() or "\n" in arg:
        raise Decline  # where re's \d and $ would need mirroring
    if _negative_number(arg):
        return None
    if " " in arg:
        return None
    return None, arg, None


# An nargs pattern as argparse's regular expression: (chars, quantifier) tokens, each
# action's a group. Quantifier "1", "?" or "*", all greedy.
_Token = tuple[str, str]


def _pattern(a: Action) -> list[_Token]:
    n = a.nargs
    if n is None:
        toks = [("-", "*"), ("A", "1"), ("-", "*")]
    elif n == OPTIONAL:
        toks = [("-", "*"), ("A", "?"), ("-", "*")]
    elif n == ZERO_OR_MORE:
        toks = [("-", "*"), ("A-", "*")]
    elif n == ONE_OR_MORE:
        toks = [("-", "*"), ("A", "1"), ("A-", "*")]
    elif n == REMAINDER:
        toks = [("-AO", "*")]
    elif n == PARSER:
        toks = [("-", "*"), ("A", "1"), ("-AO", "*")]
    else:  # an int (0 for the flags)
        toks = [("-", "*")]
        for _ in range(n):
            toks += [("A", "1"), ("-", "*")]
    if a.option_strings:  # argparse drops '-' from the patterns of options
        toks = [(c.replace("-", ""), q) for c, q in toks if c != "-"]
    return toks


def _match(groups: list[list[_Token]], s: str) -> list[int] | None:
    """re.match of the groups' concatenated patterns at the start of ``s``: each group's
    length, found in the order a backtracking regex engine tries (greedy first)."""
    flat = [(c, q) for toks in groups for c, q in toks]
    at = [0] * len(flat)  # where each token's match ends

    def go(t: int, i: int) -> bool:
        if t == len(flat):
            return True
        chars, q = flat[t]
        if q == "1":
            counts: range | tuple[int, ...] = (1,) if i < len(s) and s[i] in chars else ()
        elif q == "?":
            counts = (1, 0) if i < len(s) and s[i] in chars else (0,)
        else:
            j = i
            while j < len(s) and s[j] in chars:
                j += 1
            counts = range(j - i, -1, -1)
        for k in counts:
            at[t] = i + k
            if go(t + 1, i + k):
                return True
        return False

    if not go(0, 0):
        return None
    out = []
    t = pos = 0
    for toks in groups:
        t += len(toks)
        end = at[t - 1] if toks else pos
        out.append(end - pos)
        pos = end
    return out


def _value(a: Action, s: str) -> Any:
    if a.type is None:
        return s
    try:
        return a.type(s)
    except Exception:
        raise Decline from None  # argparse's "invalid value" error (or a crash): its own words


def _check(a: Action, v: object) -> None:
    if a.choices is not None and v not in a.choices:
        raise Decline


def _values(a: Action, strings: list[str]) -> Any:
    """argparse's _get_values."""
    if a.nargs not in (PARSER, REMAINDER) and "--" in strings:
        strings.remove("--")
    if not strings and a.nargs == OPTIONAL:
        v = a.const if a.option_strings else a.default
        if isinstance(v, str):
            v = _value(a, v)
            _check(a, v)
        return v
    if not strings and a.nargs == ZERO_OR_MORE and not a.option_strings:
        v = a.default if a.default is not None else strings
        _check(a, v)
        return v
    if len(strings) == 1 and a.nargs in (None, OPTIONAL):
        v = _value(a, strings[0])
        _check(a, v)
        return v
    if a.nargs == REMAINDER:
        return [_value(a, x) for x in strings]
    if a.nargs == PARSER:
        vs = [_value(a, x) for x in strings]
        _check(a, vs[0])
        return vs
    vs = [_value(a, x) for x in strings]
    for v in vs:
        _check(a, v)
    return vs


def _take(a: Action, ns: dict[str, Any], values: Any, option: str | None) -> None:
    """The action's __call__."""
    kind = a.kind
    if kind == "store":
        ns[a.dest] = values
    elif kind in ("store_const", "store_true", "store_false"):
        ns[a.dest] = a.const
    elif kind in ("append", "append_const"):
        items = ns.get(a.dest)
        if items is not None and type(items) is not list:
            raise Decline  # argparse copies it with copy.copy
        ns[a.dest] = [*(items or ()), values if kind == "append" else a.const]
    elif kind == "count":
        count = ns.get(a.dest)
        ns[a.dest] = (0 if count is None else count) + 1
    elif kind == BOOLEAN_OPTIONAL:
        if option in a.option_strings:
            ns[a.dest] = not (option or "").startswith("--no-")
    elif kind == "parsers":
        name = values[0]
        if a.dest != SUPPRESS:
            ns[a.dest] = name
        sub = a.choices[name]
        ns.update(_parse(sub, values[1:]))
    else:  # help, version, what is not mirrored
        raise Decline


def _parse(p: Recorder, args: list[str]) -> dict[str, Any]:
    """argparse's parse_known_args into a new namespace, declining on any extras."""
    if p.unsupported:
        raise Decline
    ns: dict[str, Any] = {}
    for a in p.actions:
        if a.dest != SUPPRESS and a.dest not in ns and a.default is not SUPPRESS:
            ns[a.dest] = a.default
    for k, v in p.defaults.items():
        ns.setdefault(k, v)

    opts: dict[int, tuple[Action | None, str, str | None]] = {}
    kinds = []
    for i, arg in enumerate(args):
        if arg == "--":
            kinds.append("-" + "A" * (len(args) - i - 1))
            break
        t = _classify(p, arg)
        if t is None:
            kinds.append("A")
        else:
            opts[i] = t
            kinds.append("O")
    pattern = "".join(kinds)
    seen: set[int] = set()

    def take(a: Action, strings: list[str], option: str | None = None) -> None:
        seen.add(id(a))
        v = _values(a, strings)
        if v is not SUPPRESS:
            _take(a, ns, v, option)

    def optional(start: int) -> int:
        a, option, explicit = opts[start]
        todo: list[tuple[Action, list[str], str]] = []
        while True:
            if a is None or a is _ABBREVIATION:
                raise Decline  # an unknown option (argparse's "unrecognized arguments"), an abbreviation
            if explicit is not None:
                n = _count(a, "A")
                if n == 0 and option[1] != "-" and explicit != "":
                    todo.append((a, [], option))
                    option = "-" + explicit[0]
                    explicit = explicit[1:] or None
                    if option not in p.options:
                        raise Decline
                    a = p.options[option]
                elif n == 1:
                    stop = start + 1
                    todo.append((a, [explicit], option))
                    break
                else:
                    raise Decline
            else:
                n = _count(a, pattern[start + 1 :])
                stop = start + 1 + n
                todo.append((a, args[start + 1 : stop], option))
                break
        for a, strings, option in todo:
            take(a, strings, option)
        return stop

    positionals = [a for a in p.actions if not a.option_strings]

    def consume_positionals(start: int) -> int:
        counts = []
        for i in range(len(positionals), 0, -1):
            m = _match([_pattern(a) for a in positionals[:i]], pattern[start:])
            if m is not None:
                counts = m
                break
        for a, n in zip(positionals, counts, strict=False):
            take(a, args[start : start + n])
            start += n
        del positionals[: len(counts)]
        return start

    start = 0
    last = max(opts) if opts else -1
    while start <= last:
        nxt = min(i for i in opts if i >= start)
        if start != nxt:
            end = consume_positionals(start)
            if end > start:
                start = end
                continue
            start = end
        if start not in opts:
            raise Decline  # extras: argparse's "unrecognized arguments"
        start = optional(start)
    if consume_positionals(start) != len(args):
        raise Decline
    for a in p.actions:
        if id(a) not in seen:
            if a.required or a.kind == "parsers":
                raise Decline  # a missing argument; a command group without its subcommand
            d = a.default
            if d is not None and isinstance(d, str) and a.dest in ns and d is ns[a.dest]:
                ns[a.dest] = _value(a, d)
    return ns


def _count(a: Action, s: str) -> int:
    """argparse's _match_argument: how many of the strings ahead the option takes."""
    m = _match([_pattern(a)], s)
    if m is None:
        raise Decline  # "expected one argument" and the like
    return m[0]
