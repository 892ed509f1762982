"""A Go text/template subset, for docker's ``--format`` templates.

Docker users script against ``docker ps --format '{{.Names}}'`` and
``docker inspect -f '{{range .Mounts}}{{.Source}} {{end}}'``; this module gives the
podkit CLI the same language without Go: a lexer, a parser into a small tree, and an
evaluator over JSON-like Python values (dicts, lists, str, int, float, bool, None; a
callable in a dict is a method, e.g. ``{{.Label "k"}}``).

Supported: text and actions with ``{{-``/``-}}`` trimming and ``{{/* comments */}}``;
fields (``.A.B``), ``.``, ``$`` and variables (``$x := ...``, ``$x = ...``), literals
(strings, raw strings, numbers, chars, true/false/nil), parenthesised pipelines,
``|`` pipelines; ``if``/``else if``/``else``, ``range`` (lists, dicts in key order,
ints; ``$i, $e :=``; ``else``; ``break``/``continue``), ``with``/``else with``; named
templates (``define``, ``template``, ``block``: one set per parse, redefinition as
Go's ``Parse`` allows it -- an empty body never replaces a defined one, two non-empty
ones are an error; a called template sees only ``.`` and ``$``, the value it is
given); Go's functions ``and or not len index slice print printf println eq ne lt le
gt ge html js urlquery call`` and docker's ``json split join title lower upper pad
truncate``. Variables are checked when parsing, as Go does (``undefined variable``).
Not as Go: template calls nest at most ``MAX_DEPTH`` deep (Go: 100000; Python's
stack is shallower).

Values print as Go's fmt prints them (``[a b]``, ``map[k:v]``, ``<nil>``, floats as
``%v``). A missing field is an error naming it (docker's raw inspect fallback runs with
``missingkey=error``); field names match exactly first, then case-insensitively, so
podkit's lower-case JSON keys work too. Every error is a ``TemplateError`` (an
``InvalidArgument``: the CLI prints it and exits 1).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from podkit.cli.gofuncs import (
    FUNCS,
    FuncError,
    go_quote,
    go_str,
    sorted_keys,
    truth,
    type_name,
)
from podkit.cli.gojson import NO_VALUE
from podkit.errors import InvalidArgument


class TemplateError(InvalidArgument):
    """A template that cannot be parsed or executed, with Go's ``template: :L:C:`` prefix."""


# ---------------------------------------------------------------------------- lexer

_SPACE = " \t\r\n"


@dataclass(frozen=True)
class _Tok:
    kind: str  # text, space, field, dot, var, ident, str, num, char, pipe, lparen,
    # rparen, comma, decl, assign, end (of action), eof
    val: str
    pos: int


_NUM = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|"
    r"(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?)"
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FIELD_WORD = re.compile(r"[A-Za-z0-9_]*")


def _lex(src: str) -> list[_Tok]:
    """Text and action tokens; trim markers are applied to the text here."""
    toks: list[_Tok] = []
    i, n = 0, len(src)
    trim_next = False
    while i < n:
        j = src.find("{{", i)
        text = src[i:] if j < 0 else src[i:j]
        if trim_next:
            text = text.lstrip(_SPACE)
        start = j if j >= 0 else n
        if j >= 0 and src.startswith("{{-", j) and j + 3 < n and src[j + 3] in _SPACE:
            text = text.rstrip(_SPACE)
            k = j + 4
        else:
            k = j + 2
        if text:
            toks.append(_Tok("text", text, i))
        if j < 0:
            break
        i, trim_next = _lex_action(src, k, start, toks)
    toks.append(_Tok("eof", "", n))
    return toks


def _right_trim_at(src: str, i: int) -> bool:
    return src[i] in _SPACE and src.startswith("-}}", i + 1)


def _lex_action(src: str, i: int, start: int, toks: list[_Tok]) -> tuple[int, bool]:
    """Tokens of one action from ``i`` (after ``{{``); returns where text resumes and
    whether it is to be left-trimmed."""
    n = len(src)
    if src.startswith("/*", i):
        close = src.find("*/", i + 2)
        if close < 0:
            raise _parse_error(src, start, "unclosed comment")
        k = close + 2
        if src.startswith("}}", k):
            return k + 2, False
        if k < n and _right_trim_at(src, k):
            return k + 4, True
        raise _parse_error(src, start, "comment ends before closing delimiter")
    depth = 0
    while True:
        if i >= n:
            raise _parse_error(src, start, "unclosed action")
        c = src[i]
        if src.startswith("}}", i):
            if depth:
                raise _parse_error(src, start, "unclosed left paren")
            toks.append(_Tok("end", "", i))
            return i + 2, False
        if _right_trim_at(src, i):
            if depth:
                raise _parse_error(src, start, "unclosed left paren")
            toks.append(_Tok("end", "", i))
            return i + 4, True
        if c in _SPACE:
            k = i
            while k < n and src[k] in _SPACE and not _right_trim_at(src, k):
                k += 1
            toks.append(_Tok("space", src[i:k], i))
            i = k if k > i else i + 1
            continue
        if c == '"':
            k = i + 1
            while k < n and src[k] != '"':
                if src[k] == "\\":
                    k += 1
                if k < n and src[k] == "\n":
                    break
                k += 1
            if k >= n or src[k] != '"':
                raise _parse_error(src, start, "unterminated quoted string")
            toks.append(_Tok("str", _unquote(src[i : k + 1], src, start), i))
            i = k + 1
            continue
        if c == "`":
            k = src.find("`", i + 1)
            if k < 0:
                raise _parse_error(src, start, "unterminated raw quoted string")
            toks.append(_Tok("str", src[i + 1 : k], i))
            i = k + 1
            continue
        if c == "'":
            m = re.match(r"'(\\.[^']*|[^\\'])'", src[i:])
            if not m:
                raise _parse_error(src, start, "unterminated character constant")
            toks.append(_Tok("char", str(ord(_unquote('"' + m.group(1) + '"', src, start))), i))
            i += m.end()
            continue
        if c.isdigit() or (c in "+-." and i + 1 < n and src[i + 1].isdigit()):
            m = _NUM.match(src, i)
            assert m is not None  # a digit always matches
            if m.end() < n and (src[m.end()].isalnum() or src[m.end()] == "_"):
                raise _parse_error(src, start, f"bad number syntax: {src[i : m.end() + 1]!r}")
            toks.append(_Tok("num", m.group(0), i))
            i = m.end()
            continue
        if c == ".":
            m = _FIELD_WORD.match(src, i + 1)
            assert m is not None
            word = m.group(0)
            if word:
                if word[0].isdigit():
                    raise _parse_error(src, start, f"bad field name {word!r}")
                toks.append(_Tok("field", word, i))
            else:
                toks.append(_Tok("dot", ".", i))
            i = m.end()
            continue
        if c == "$":
            m = _FIELD_WORD.match(src, i + 1)
            assert m is not None
            toks.append(_Tok("var", "$" + m.group(0), i))
            i = m.end()
            continue
        m = _WORD.match(src, i)
        if m:
            toks.append(_Tok("ident", m.group(0), i))
            i = m.end()
            continue
        if src.startswith(":=", i):
            toks.append(_Tok("decl", ":=", i))
            i += 2
            continue
        single = {"|": "pipe", "(": "lparen", ")": "rparen", ",": "comma", "=": "assign"}
        if c in single:
            depth += {"(": 1, ")": -1}.get(c, 0)
            if depth < 0:
                raise _parse_error(src, start, "unexpected right paren")
            toks.append(_Tok(single[c], c, i))
            i += 1
            continue
        raise _parse_error(src, start, f"unexpected {go_quote(c)} in command")


def _unquote(quoted: str, src: str, pos: int) -> str:
    try:
        out = json.loads(quoted)
    except ValueError:
        # Go escapes JSON lacks: \a \v \' \x41 \101
        try:
            out = quoted[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            raise _parse_error(src, pos, f"bad string {quoted}") from None
    assert isinstance(out, str)
    return out


def _show_tok(t: _Tok) -> str:
    """A token as Go's parser names it in ``unexpected X in Y`` (lexer item.String)."""
    if t.kind == "eof":
        return "EOF"
    if t.kind == "end":
        return '"}}"'
    if t.kind == "ident" and t.val in (*_KEYWORDS, "nil"):
        return f"<{t.val}>"
    text = go_quote(t.val) if t.kind == "str" else t.val  # (Go shows a string as written)
    return go_quote(text[:10]) + "..." if len(text) > 10 else go_quote(text)


def _line_col(src: str, pos: int) -> tuple[int, int]:
    line = src.count("\n", 0, pos) + 1
    col = pos - (src.rfind("\n", 0, pos) + 1)
    return line, col


def _parse_error(src: str, pos: int, msg: str) -> TemplateError:
    line, _ = _line_col(src, pos)
    return TemplateError(f"template: :{line}: {msg}")


# --------------------------------------------------------------------------- the tree


@dataclass
class _Node:
    pos: int


@dataclass
class _Text(_Node):
    text: str


@dataclass
class _Field(_Node):
    """``.A.B`` (on dot), or ``names`` looked up on ``base`` (a variable, a parenthesised
    pipeline, a literal)."""

    names: tuple[str, ...]
    base: _Node | None = None


@dataclass
class _Dot(_Node):
    pass


@dataclass
class _Var(_Node):
    name: str


@dataclass
class _Ident(_Node):
    name: str


@dataclass
class _Lit(_Node):
    value: object
    text: str | None = None  # a number as written, as Go's errors show it


@dataclass
class _Cmd(_Node):
    args: list[_Node]


@dataclass
class _Pipe(_Node):
    cmds: list[_Cmd]
    decl: list[str] = field(default_factory=list)
    assign: bool = False  # `=` rather than `:=`


@dataclass
class _Action(_Node):
    pipe: _Pipe


@dataclass
class _Branch(_Node):
    kind: str  # if, range, with
    pipe: _Pipe
    body: list[_Node]
    orelse: list[_Node]


@dataclass
class _Loop(_Node):
    kind: str  # break, continue


@dataclass
class _Call(_Node):
    """``{{template "name" pipeline}}`` (and the call half of ``{{block}}``)."""

    name: str
    pipe: _Pipe | None


_KEYWORDS = ("if", "range", "with", "end", "else", "break", "continue", "define", "template", "block")


def _is_empty(nodes: list[_Node]) -> bool:
    """Go's parse.IsEmptyTree: nothing but white space."""
    return all(isinstance(n, _Text) and not n.text.strip() for n in nodes)


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _lex(src)
        self.i = 0
        self.loops = 0
        self.funcs = set(FUNCS)
        self.vars = ["$"]  # declared so far, as Go's parser checks them
        self.trees: dict[str, list[_Node]] = {}  # the named templates of this parse

    def err(self, pos: int, msg: str) -> TemplateError:
        return _parse_error(self.src, pos, msg)

    def peek(self, skip_space: bool = True) -> _Tok:
        j = self.i
        while skip_space and self.toks[j].kind == "space":
            j += 1
        return self.toks[j]

    def next(self, skip_space: bool = True) -> _Tok:
        while skip_space and self.toks[self.i].kind == "space":
            self.i += 1
        t = self.toks[self.i]
        self.i += 1
        return t

    def parse(self) -> dict[str, list[_Node]]:
        """The named templates, the top level's under "" (unless a ``{{define ""}}``
        took the name and the top level is empty, as in Go)."""
        body, stop = self.list_until((), top=True)
        assert stop is None
        self.add("", body, 0)
        return self.trees

    def add(self, name: str, body: list[_Node], pos: int) -> None:
        """Go's Tree.add: a name is taken by its first non-empty body."""
        old = self.trees.get(name)
        if old is None or _is_empty(old):
            self.trees[name] = body
        elif not _is_empty(body):
            raise self.err(pos, f"template: multiple definition of template {go_quote(name)}")

    def list_until(self, stops: tuple[str, ...], top: bool = False) -> tuple[list[_Node], _Tok | None]:
        """Nodes up to an ``{{end}}``/``{{else}}`` (one of ``stops``), which is consumed:
        its keyword token is returned (the rest of an ``else`` action is not). ``top``:
        the template's top level, where ``{{define}}`` may stand."""
        out: list[_Node] = []
        while True:
            t = self.next()
            if t.kind == "eof":
                if stops:
                    raise self.err(t.pos, "unexpected EOF")
                return out, None
            if t.kind == "text":
                out.append(_Text(t.pos, t.val))
                continue
            # an action: the token after `{{` was consumed by the lexer; t is its first
            kw = t.val if t.kind == "ident" and t.val in _KEYWORDS else None
            if kw in ("end", "else"):
                if kw not in stops:
                    raise self.err(t.pos, f"unexpected {{{{{kw}}}}}")
                return out, t
            if kw == "define" and top:
                self.definition()
                continue
            out.append(self.action(t, kw))

    def sub_tree(self, context: str) -> list[_Node]:
        """The body of a ``define`` or ``block``, up to its ``{{end}}``: a tree of its
        own, so no variables but ``$`` and no enclosing range."""
        outer_vars, outer_loops = self.vars, self.loops
        self.vars, self.loops = ["$"], 0
        try:
            body, stop = self.list_until(("end", "else"))
        finally:
            self.vars, self.loops = outer_vars, outer_loops
        assert stop is not None
        if stop.val == "else":
            raise self.err(stop.pos, f"unexpected {{{{else}}}} in {context}")
        self.expect_end("end")
        return body

    def template_name(self, context: str) -> _Tok:
        t = self.next()
        if t.kind != "str":
            raise self.err(t.pos, f"unexpected {_show_tok(t)} in {context}")
        return t

    def definition(self) -> None:
        name = self.template_name("define clause")
        end = self.next()
        if end.kind != "end":
            raise self.err(end.pos, f"unexpected {_show_tok(end)} in define clause")
        self.add(name.val, self.sub_tree("define clause"), name.pos)

    def action(self, t: _Tok, kw: str | None) -> _Node:
        if kw is None:
            self.i -= 1
            return _Action(t.pos, self.pipeline("command", t.pos))
        if kw in ("break", "continue"):
            if not self.loops:
                raise self.err(t.pos, f"{{{{{kw}}}}} outside {{{{range}}}}")
            self.expect_end(kw)
            return _Loop(t.pos, kw)
        if kw == "define":  # not at the top level
            raise self.err(t.pos, "unexpected <define> in command")
        if kw == "template":
            name = self.template_name("template clause")
            if self.peek().kind == "end":
                self.next()
                return _Call(name.pos, name.val, None)
            return _Call(name.pos, name.val, self.pipeline("template clause", name.pos))
        if kw == "block":  # {{define "x"}}body{{end}}{{template "x" pipeline}}
            name = self.template_name("block clause")
            pipe = self.pipeline("block clause", name.pos)
            self.add(name.val, self.sub_tree("block clause"), name.pos)
            return _Call(name.pos, name.val, pipe)
        return self.branch(kw, t.pos)

    def expect_end(self, what: str) -> None:
        t = self.next()
        if t.kind != "end":
            raise self.err(t.pos, f"unexpected {t.val!r} in {what}")

    def branch(self, kw: str, pos: int) -> _Node:
        # Variables declared in the pipeline or the bodies live until the {{end}} (Go's
        # parseControl pops them there), the else branch included.
        mark = len(self.vars)
        try:
            return self._branch(kw, pos)
        finally:
            del self.vars[mark:]

    def _branch(self, kw: str, pos: int) -> _Node:
        pipe = self.pipeline(kw, pos)
        if kw == "range":
            self.loops += 1
        body, stop = self.list_until(("end", "else"))
        if kw == "range":
            self.loops -= 1
        orelse: list[_Node] = []
        assert stop is not None
        if stop.val == "else":
            nxt = self.peek()
            if nxt.kind == "ident" and nxt.val == kw and kw in ("if", "with"):
                # `{{else if ...}}` is `{{else}}{{if ...}}...{{end}}{{end}}` sharing one end
                self.next()
                orelse = [self.branch(nxt.val, nxt.pos)]
                return _Branch(pos, kw, pipe, body, orelse)
            if nxt.kind != "end":  # Go leaves the word to the else list, which refuses it
                raise self.err(nxt.pos, f"unexpected {_show_tok(nxt)} in input")
            self.expect_end("else")
            orelse, stop = self.list_until(("end", "else"))
            assert stop is not None
            if stop.val == "else":
                raise self.err(stop.pos, "expected end; found {{else}}")
        # stop is now `end`: its closing delimiter follows
        self.expect_end("end")
        return _Branch(pos, kw, pipe, body, orelse)

    def pipeline(self, context: str, pos: int) -> _Pipe:
        pipe = _Pipe(pos, [])
        # declarations: $x :=, $i, $e :=, $x =
        save = self.i
        names: list[str] = []
        while self.peek().kind == "var":
            names.append(self.next().val)
            t = self.peek()
            if t.kind in ("decl", "assign"):
                self.next()
                if t.kind == "assign" and len(names) > 1:
                    raise self.err(t.pos, "only one variable may be assigned with =")
                pipe.decl, pipe.assign = names, t.kind == "assign"
                break
            if t.kind == "comma" and context == "range" and len(names) == 1:
                self.next()
                continue
            break
        if not pipe.decl:
            self.i = save
        self.vars.extend(pipe.decl)
        while True:
            t = self.peek()
            if t.kind in ("end", "rparen", "eof"):
                break
            if t.kind == "pipe":
                if not pipe.cmds or self.prev_kind() == "pipe":
                    raise self.err(t.pos, "missing command before |")
                self.next()
                continue
            pipe.cmds.append(self.command())
        end = self.peek()
        if end.kind == "eof":
            raise self.err(end.pos, "unclosed action")
        if not pipe.cmds:
            raise self.err(pos, f"missing value for {context}")
        if self.prev_kind() == "pipe":
            raise self.err(end.pos, "missing command after |")
        if context == "paren":
            if end.kind != "rparen":
                raise self.err(end.pos, "unclosed left paren")
        elif end.kind != "end":
            raise self.err(end.pos, "unexpected right paren")
        self.next()  # the action's end, or the closing paren
        for k, c in enumerate(pipe.cmds[1:], 2):
            if isinstance(c.args[0], _Lit):
                raise self.err(c.pos, f"non executable command in pipeline stage {k}")
        return pipe

    def prev_kind(self) -> str:
        j = self.i - 1
        while j >= 0 and self.toks[j].kind == "space":
            j -= 1
        return self.toks[j].kind if j >= 0 else ""

    def command(self) -> _Cmd:
        first = self.peek()
        cmd = _Cmd(first.pos, [])
        while True:
            t = self.peek()
            if t.kind in ("end", "rparen", "eof", "pipe"):
                break
            if cmd.args and self.toks[self.i].kind != "space":
                raise self.err(t.pos, f"unexpected {t.val!r} in operand")
            cmd.args.append(self.operand())
        if not cmd.args:
            raise self.err(first.pos, "empty command")
        return cmd

    def operand(self) -> _Node:
        node = self.term()
        names: list[str] = []
        chain_pos = self.toks[self.i].pos  # Go places a chain where its second part starts
        while self.toks[self.i].kind == "field":  # a chain: no space before the field
            names.append(self.toks[self.i].val)
            self.i += 1
        if not names:
            return node
        if isinstance(node, _Field) and node.base is None:
            return _Field(chain_pos, node.names + tuple(names))
        if isinstance(node, _Lit) and node.value is None:
            raise self.err(node.pos, "nil is not a command")
        return _Field(chain_pos, tuple(names), node)

    def term(self) -> _Node:
        t = self.next()
        if t.kind == "field":
            return _Field(t.pos, (t.val,))
        if t.kind == "dot":
            return _Dot(t.pos)
        if t.kind == "var":
            if t.val not in self.vars:
                raise self.err(t.pos, f"undefined variable {go_quote(t.val)}")
            return _Var(t.pos, t.val)
        if t.kind == "str":
            return _Lit(t.pos, t.val)
        if t.kind == "char":
            return _Lit(t.pos, int(t.val))
        if t.kind == "num":
            return _Lit(t.pos, self.number(t), t.val)
        if t.kind == "ident":
            if t.val in ("true", "false"):
                return _Lit(t.pos, t.val == "true")
            if t.val == "nil":
                return _Lit(t.pos, None)
            if t.val in _KEYWORDS:
                raise self.err(t.pos, f"unexpected <{t.val}> in operand")
            if t.val not in self.funcs:
                raise self.err(t.pos, f'function "{t.val}" not defined')
            return _Ident(t.pos, t.val)
        if t.kind == "lparen":
            return _PipeArg(t.pos, self.pipeline("paren", t.pos))
        raise self.err(t.pos, f"unexpected {t.val or t.kind!r} in operand")

    def number(self, t: _Tok) -> int | float:
        text = t.val.replace("_", "")
        try:
            if re.fullmatch(r"[+-]?0[xXoObB].*", text):
                return int(text, 0)
            if any(c in text for c in ".eE"):
                return float(text)
            return int(text, 10)
        except ValueError:
            raise self.err(t.pos, f"bad number syntax: {t.val!r}") from None


@dataclass
class _PipeArg(_Node):
    """A parenthesised pipeline used as an operand."""

    pipe: _Pipe


# ---------------------------------------------------------------------- evaluation


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Missing:
    """The final value of a pipeline's first command: none."""


_MISSING = _Missing()


MAX_DEPTH = 1000
"""How deep ``{{template}}`` calls may nest (Go allows 100000; Python's stack does not)."""
_STACK = 40 * MAX_DEPTH  # Python frames that many levels of if/range/with may take


class Template:
    """A parsed template; ``execute(data)`` renders it."""

    def __init__(self, src: str, funcs: Mapping[str, Callable[..., object]] | None = None) -> None:
        self.src = src
        self.funcs: dict[str, Callable[..., object]] = dict(FUNCS)
        if funcs:
            self.funcs.update(funcs)
        p = _Parser(src)
        p.funcs = set(self.funcs)
        self.trees = p.parse()
        self.tree = self.trees[""]

    def execute(
        self,
        data: object,
        *,
        missing_ok: bool = False,
        funcs: Mapping[str, Callable[..., object]] | None = None,
    ) -> str:
        """Render with ``data`` as dot and ``$``; ``missing_ok`` makes a missing field
        empty instead of an error, ``funcs`` replaces some functions (a table's header
        line: see HEADER_FUNCS)."""
        run = _Run(self, data, missing_ok, {**self.funcs, **(funcs or {})})
        out: list[str] = []
        limit = sys.getrecursionlimit()
        # pure-Python frames (3.11+ keeps them off the C stack), so a template calling
        # itself MAX_DEPTH deep fits
        sys.setrecursionlimit(max(limit, _STACK))
        try:
            run.walk(self.tree, data, out)
        except (_Break, _Continue):  # pragma: no cover - the parser refuses them outside range
            pass
        except RecursionError:  # templates calling templates, deeper than Python's stack
            raise TemplateError(f"template: : exceeded maximum template depth ({MAX_DEPTH})") from None
        finally:
            sys.setrecursionlimit(limit)
        return "".join(out)


@dataclass
class _Run:
    tmpl: Template
    root: object
    missing_ok: bool
    funcs: dict[str, Callable[..., object]]
    vars: list[list[object]] = field(default_factory=list)  # [name, value] cells, innermost last
    name: str = ""  # of the template being executed, for errors
    depth: int = 0

    def __post_init__(self) -> None:
        self.vars.append(["$", self.root])

    def err(self, node: _Node, msg: str) -> TemplateError:
        line, col = _line_col(self.tmpl.src, node.pos)
        return TemplateError(
            f"template: :{line}:{col}: executing {go_quote(self.name)} at <{self.show(node)}>: {msg}"
        )

    def show(self, node: _Node) -> str:
        if isinstance(node, _Field):
            base = self.show(node.base) if node.base is not None else ""
            return base + "".join("." + n for n in node.names)
        if isinstance(node, _Var):
            return node.name
        if isinstance(node, _Ident):
            return node.name
        if isinstance(node, _Dot):
            return "."
        if isinstance(node, _Lit):
            if node.text is not None:
                return node.text
            if node.value is None:
                return "nil"
            return go_quote(node.value) if isinstance(node.value, str) else go_str(node.value)
        if isinstance(node, _Cmd):
            return " ".join(self.show(a) for a in node.args)
        if isinstance(node, _PipeArg):
            return "(" + " | ".join(self.show(c) for c in node.pipe.cmds) + ")"
        if isinstance(node, _Branch):
            return node.kind
        if isinstance(node, _Call):
            pipe = " " + self.show(node.pipe) if node.pipe else ""
            return f"{{{{template {go_quote(node.name)}{pipe}}}}}"
        if isinstance(node, _Pipe):
            decl = ", ".join(node.decl) + (" = " if node.assign else " := ") if node.decl else ""
            return decl + " | ".join(self.show(c) for c in node.cmds)
        return "?"

    def walk(self, nodes: list[_Node], dot: object, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                v = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    out.append(go_str(v))
            elif isinstance(node, _Branch):
                self.branch(node, dot, out)
            elif isinstance(node, _Loop):
                raise _Break() if node.kind == "break" else _Continue()
            elif isinstance(node, _Call):
                self.call_template(node, dot, out)

    def call_template(self, node: _Call, dot: object, out: list[str]) -> None:
        body = self.tmpl.trees.get(node.name)
        if body is None:
            raise self.err(node, f"template {go_quote(node.name)} not defined")
        if self.depth >= MAX_DEPTH:
            raise self.err(node, f"exceeded maximum template depth ({MAX_DEPTH})")
        # its variables persist, as Go's do; without a pipeline, dot is no value
        dot = self.pipe(node.pipe, dot) if node.pipe is not None else NO_VALUE
        # no dynamic scoping: the called template sees only `$`, the value it was given
        outer = self.vars, self.name
        self.vars, self.name = [["$", dot]], node.name
        self.depth += 1
        try:
            self.walk(body, dot, out)
        finally:
            self.vars, self.name = outer
            self.depth -= 1

    def scoped(self, nodes: list[_Node], dot: object, out: list[str]) -> None:
        mark = len(self.vars)
        try:
            self.walk(nodes, dot, out)
        finally:
            del self.vars[mark:]

    def branch(self, node: _Branch, dot: object, out: list[str]) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(node, dot, out)
                return
            v = self.pipe(node.pipe, dot)
            if truth(v):
                self.scoped(node.body, v if node.kind == "with" else dot, out)
            else:
                self.scoped(node.orelse, dot, out)
        finally:
            del self.vars[mark:]

    def range(self, node: _Branch, dot: object, out: list[str]) -> None:
        decl = node.pipe.decl
        node.pipe.decl = []  # the pipeline's value is the collection, not the variables'
        try:
            coll = self.pipe(node.pipe, dot)
        finally:
            node.pipe.decl = decl
        items: list[tuple[object, object]]
        if isinstance(coll, list | tuple):
            items = list(enumerate(coll))
        elif isinstance(coll, Mapping):
            items = [(k, coll[k]) for k in sorted_keys(coll)]
        elif isinstance(coll, int) and not isinstance(coll, bool):
            items = [(k, k) for k in range(coll)]
        elif coll is None:
            items = []
        else:
            raise self.err(_last_arg(node.pipe), f"range can't iterate over {go_str(coll)}")
        if isinstance(coll, int) and len(decl) > 1:
            raise self.err(_last_arg(node.pipe), f"can't use {coll} to iterate over more than one variable")
        if not items:
            self.scoped(node.orelse, dot, out)
            return
        for k, v in items:
            mark = len(self.vars)
            if len(decl) == 1:
                self.vars.append([decl[0], v])
            elif len(decl) == 2:
                self.vars.append([decl[0], k])
                self.vars.append([decl[1], v])
            try:
                self.walk(node.body, v, out)
            except _Break:
                break
            except _Continue:
                continue
            finally:
                del self.vars[mark:]

    def pipe(self, pipe: _Pipe, dot: object) -> object:
        v: object = _MISSING
        for cmd in pipe.cmds:
            v = self.cmd(cmd, dot, v)
        if pipe.decl:
            if pipe.assign:
                cell = self.lookup_var(_last_arg(pipe), pipe.decl[0])
                cell[1] = v
            else:
                for name in pipe.decl:
                    self.vars.append([name, v])
        return v

    def lookup_var(self, node: _Node, name: str) -> list[object]:
        for cell in reversed(self.vars):
            if cell[0] == name:
                return cell
        raise self.err(node, f"undefined variable: {name}")

    def cmd(self, cmd: _Cmd, dot: object, final: object) -> object:
        first, rest = cmd.args[0], cmd.args[1:]
        if isinstance(first, _Ident):
            return self.call(cmd, first, rest, dot, final)
        if isinstance(first, _Field):
            return self.field(first, dot, rest, final)
        if rest or final is not _MISSING:
            raise self.err(first, f"can't give argument to non-function {self.show(first)}")
        if isinstance(first, _Lit) and first.value is None:
            raise self.err(first, "nil is not a command")
        return self.arg(first, dot)

    def arg(self, node: _Node, dot: object) -> object:
        if isinstance(node, _Dot):
            return dot
        if isinstance(node, _Lit):
            return node.value
        if isinstance(node, _Var):
            return self.lookup_var(node, node.name)[1]
        if isinstance(node, _Field):
            return self.field(node, dot, [], _MISSING)
        if isinstance(node, _PipeArg):
            return self.pipe(node.pipe, dot)
        if isinstance(node, _Ident):
            return self.call(_Cmd(node.pos, [node]), node, [], dot, _MISSING)
        raise self.err(node, "cannot evaluate")  # pragma: no cover

    def field(self, node: _Field, dot: object, args: list[_Node], final: object) -> object:
        v = dot if node.base is None else self.arg(node.base, dot)
        last = len(node.names) - 1
        for i, name in enumerate(node.names):
            v = self.get(node, v, name)
            if callable(v):
                call_args = [self.arg(a, dot) for a in args] if i == last else []
                if i == last and final is not _MISSING:
                    call_args.append(final)
                try:
                    v = v(*call_args)
                except TypeError as e:
                    raise self.err(node, f"wrong number of args for {name}: {e}") from None
            elif i == last and (args or final is not _MISSING) and not self.missing_ok:
                raise self.err(node, f"{name} is not a method but has arguments")
        return v

    def get(self, node: _Field, v: object, name: str) -> object:
        if v is NO_VALUE:
            return NO_VALUE
        if isinstance(v, Mapping):
            if name in v:
                return v[name]
            for k in v:
                if isinstance(k, str) and k.lower() == name.lower():
                    return v[k]
            if self.missing_ok:
                return ""
            known = ", ".join(str(k) for k in v)
            raise self.err(node, f"no field '{name}' (fields: {known})")
        if self.missing_ok:
            return ""
        if v is None:
            raise self.err(node, f"nil pointer evaluating interface {{}}.{name}")
        raise self.err(node, f"can't evaluate field {name} in type {type_name(v)}")

    def call(self, cmd: _Cmd, ident: _Ident, rest: list[_Node], dot: object, final: object) -> object:
        name = ident.name
        if name in ("and", "or"):  # short-circuit, as Go 1.18+
            nodes: list[object] = list(rest)
            if final is not _MISSING:
                nodes.append(final)
            if not nodes:
                raise self.err(ident, f"wrong number of args for {name}: want at least 1 got 0")
            v: object = None
            for a in nodes:
                v = self.arg(a, dot) if isinstance(a, _Node) else a
                if truth(v) != (name == "and"):
                    return v
            return v
        args = [self.arg(a, dot) for a in rest]
        if final is not _MISSING:
            args.append(final)
        fn = self.funcs[name]
        want, variadic = _arity(fn)
        if len(args) < want or (len(args) > want and not variadic):
            least = "at least " if variadic else ""
            raise self.err(ident, f"wrong number of args for {name}: want {least}{want} got {len(args)}")
        if name == "call" and fn is FUNCS["call"]:
            if args[0] is None:
                raise self.err(cmd, "error calling call: call of nil")
            if not callable(args[0]):
                callee = self.show(rest[0]) if rest else "pipeline"
                raise self.err(cmd, f"error calling call: non-function {callee} of type {type_name(args[0])}")
        try:
            return fn(*args)
        except FuncError as e:
            if str(e).startswith("wrong type for value"):  # Go checks these before the call
                raise self.err(ident, str(e)) from None
            raise self.err(cmd, f"error calling {name}: {e}") from None


def _last_arg(pipe: _Pipe) -> _Node:
    """The node Go's executor last stood at after evaluating ``pipe``: where its errors
    about the pipeline's value point."""
    return pipe.cmds[-1].args[-1]


def _arity(fn: Callable[..., object]) -> tuple[int, bool]:
    """(positional parameters, whether more may follow), for Go's ``want N got M``."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return 0, True
    return code.co_argcount, bool(code.co_flags & 0x04)  # CO_VARARGS


def parse(src: str) -> Template:
    return Template(src)


def render(src: str, data: object) -> str:
    """Parse and execute once."""
    return Template(src).execute(data)
