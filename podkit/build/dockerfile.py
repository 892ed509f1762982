"""Dockerfile parsing: instructions with their line numbers, flags, and JSON or shell
form arguments; variable expansion as the classic builder does it.

Parsing knows nothing of images or containers: it turns text into ``Instruction``
values, and ``BuildError`` names the line of what it refuses.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from podkit.errors import InvalidArgument

KNOWN = {
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
}


class BuildError(InvalidArgument):
    """A Dockerfile or build step that cannot be done; the message names the line."""


@dataclass
class Instruction:
    cmd: str  # upper case: RUN, COPY, ...
    args: str  # the raw argument text (continuations joined)
    line: int  # 1-based line of the instruction's first line
    original: str  # as written (for messages and history)
    flags: dict[str, str] = field(default_factory=dict)
    heredocs: list[tuple[str, str]] = field(default_factory=list)  # (name, body)

    def json_args(self) -> list[str] | None:
        """The exec (JSON array) form's words, or None for the shell form."""
        a = self.args.strip()
        if not a.startswith("["):
            return None
        try:
            v = json.loads(a)
        except ValueError:
            return None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
        return None

    def fail(self, message: str) -> BuildError:
        return BuildError(f"Dockerfile:{self.line}: {self.cmd}: {message}")


_FLAG = re.compile(r"--([a-z][a-z-]*)(?:=(\S*))?")
_HEREDOC = re.compile(r"<<(-?)(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


def parse(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile; BuildError naming the line on bad syntax."""
    escape = "\\"
    lines = text.splitlines()
    out: list[Instruction] = []
    i = 0
    directives_done = False
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not directives_done:
            m = re.match(r"#\s*([a-zA-Z]+)\s*=\s*(\S+)\s*$", stripped)
            if m and m.group(1).lower() == "escape":
                if m.group(2) not in ("\\", "`"):
                    raise BuildError(f"Dockerfile:{i + 1}: invalid escape character {m.group(2)!r}")
                escape = m.group(2)
                i += 1
                continue
            if m and m.group(1).lower() in ("syntax", "check"):
                i += 1
                continue
            directives_done = True
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        original: list[str] = []
        while True:
            line = lines[i]
            original.append(line)
            body = line.rstrip()
            if body.endswith(escape):
                parts.append(body[: -len(escape)])
                i += 1
                # comment and empty lines inside a continuation are dropped
                while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                    i += 1
                if i >= len(lines):
                    break
                continue
            parts.append(body)
            i += 1
            break
        joined = "".join(parts).strip()
        word, _, rest = joined.partition(" ")
        if "\t" in word:
            word, _, rest2 = word.partition("\t")
            rest = rest2 + " " + rest
        cmd = word.upper()
        if cmd not in KNOWN:
            raise BuildError(f"Dockerfile:{start + 1}: unknown instruction: {word}")
        ins = Instruction(cmd, rest.strip(), start + 1, "\n".join(original))
        _take_flags(ins)
        if cmd in ("RUN", "COPY", "ADD"):
            for m in _HEREDOC.finditer(ins.args):
                strip_tabs = m.group(1) == "-"
                name = m.group(3)
                body_lines: list[str] = []
                while i < len(lines) and lines[i].rstrip("\r") != name:
                    body_lines.append(lines[i].lstrip("\t") if strip_tabs else lines[i])
                    i += 1
                if i >= len(lines):
                    raise BuildError(f"Dockerfile:{start + 1}: heredoc {name} is not terminated")
                i += 1
                ins.heredocs.append((name, "\n".join(body_lines) + "\n"))
        out.append(ins)
    return out


def _take_flags(ins: Instruction) -> None:
    rest = ins.args
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        m = _FLAG.fullmatch(word)
        if not m:
            raise ins.fail(f"bad flag {word!r}")
        ins.flags[m.group(1)] = m.group(2) if m.group(2) is not None else "true"
        rest = after.lstrip()
    ins.args = rest
    allowed = {
        "FROM": {"platform"},
        "COPY": {"from", "chown", "chmod", "link"},
        "ADD": {"chown", "chmod", "link", "checksum"},
        "RUN": {"network"},
        "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
    }.get(ins.cmd, set())
    bad = sorted(set(ins.flags) - allowed)
    if bad:
        raise ins.fail(f"unknown flag: --{bad[0]}")


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand(text: str, env: dict[str, str]) -> str:
    """``$VAR``, ``${VAR}``, ``${VAR:-default}`` and ``${VAR:+alt}``; ``\\$`` stays a dollar."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] == "$":
            out.append("$")
            i += 2
            continue
        if text[i] == "$":
            m = _VAR.match(text, i)
            if m:
                name = m.group(1) or m.group(4)
                op, word = m.group(2), m.group(3)
                val = env.get(name)
                if op == "-":
                    out.append(val if val else expand(word or "", env))
                elif op == "+":
                    out.append(expand(word or "", env) if val else "")
                else:
                    out.append(val or "")
                i = m.end()
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


def split_words(text: str) -> list[str]:
    """Words separated by blanks, quotes grouping and removed (ENV/LABEL/ARG key=value)."""
    words: list[str] = []
    cur: list[str] = []
    quote = ""
    have = False
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"' and i + 1 < len(text):
                i += 1
                cur.append(text[i])
            else:
                cur.append(c)
        elif c in "\"'":
            quote = c
            have = True
        elif c == "\\" and i + 1 < len(text):
            i += 1
            cur.append(text[i])
        elif c.isspace():
            if cur or have:
                words.append("".join(cur))
                cur, have = [], False
        else:
            cur.append(c)
        i += 1
    if quote:
        raise InvalidArgument(f"unterminated quote in {text!r}")
    if cur or have:
        words.append("".join(cur))
    return words


def key_values(ins: Instruction, text: str) -> list[tuple[str, str]]:
    """ENV/LABEL arguments: ``k=v k2="v 2"`` or the legacy ``k v with spaces``."""
    try:
        words = split_words(text)
    except InvalidArgument as e:
        raise ins.fail(e.message) from None
    if not words:
        raise ins.fail("needs at least one argument")
    if "=" not in words[0]:
        key, _, value = text.strip().partition(" ")
        if not value.strip() and ins.cmd != "LABEL":
            raise ins.fail(f"{key} needs a value (KEY=VALUE or KEY VALUE)")
        return [(key, " ".join(split_words(value)))]
    out = []
    for w in words:
        k, sep, v = w.partition("=")
        if not sep or not k:
            raise ins.fail(f"{w!r} is not KEY=VALUE")
        out.append((k, v))
    return out
