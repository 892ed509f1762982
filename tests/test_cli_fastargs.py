"""podkit/cli/_fastargs.py against argparse: the same namespace, or it declines."""

from __future__ import annotations

import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podkit.cli import main as cli_main
from podkit.cli._fastargs import Recorder, Subparsers, parse


def _norm(v: object) -> object:
    """A handler by what it runs: handler() makes a new closure for each parser built."""
    if callable(v):
        cells = tuple(c.cell_contents for c in getattr(v, "__closure__", None) or ())
        return (
            getattr(v, "__module__", None),
            getattr(v, "__qualname__", None),
            *[c for c in cells if isinstance(c, str)],
        )
    return v


def _argparse(argv: list[str]) -> dict[str, object] | None:
    """argparse's namespace (normalized), or None where it exits (help, an error)."""
    command, sub = cli_main._invoked(argv)
    p = cli_main.build_parser(command, sub)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            ns = p.parse_args(argv)
    except SystemExit:
        return None
    return {k: _norm(v) for k, v in vars(ns).items()}


def _fast(argv: list[str]) -> dict[str, object] | None:
    command, sub = cli_main._invoked(argv)
    assert command is not None, argv
    ns = parse(cli_main.build(command, sub, Recorder), argv)
    return None if ns is None else {k: _norm(v) for k, v in vars(ns).items()}


def _check(argv: list[str]) -> dict[str, object] | None:
    fast = _fast(argv)
    if fast is not None:
        assert fast == _argparse(argv), argv
    return fast


# Each is parsed by the fast parser (not declined) and equals argparse's namespace.
ACCEPTED = [
    ["run", "--rm", "--network", "none", "busybox", "true"],
    ["run", "--rm", "busybox"],
    ["run", "-it", "busybox", "sh"],
    ["run", "-dit", "--name", "web", "-p", "8080:80", "-p", "9090:90/udp", "nginx"],
    ["run", "-d", "-i", "-t", "busybox", "sleep", "100"],
    ["run", "--name=x", "--env=A=1", "-eB=2", "-e", "C", "-e=D", "busybox", "env"],
    ["run", "-v/a:/b", "-v", "/c:/d:ro", "--volume=/e:/f", "--tmpfs", "/run", "busybox"],
    ["run", "--cpu-shares", "512", "--pids-limit=100", "--stop-timeout", "5", "busybox"],
    ["run", "--memory-swap", "-1", "-m", "64m", "busybox"],
    ["run", "--sig-proxy", "false", "busybox", "true"],
    ["run", "--sig-proxy", "busybox", "true"],
    ["run", "--sig-proxy=false", "--disable-content-trust", "--rm", "busybox"],
    ["run", "--net", "none", "--network", "bridge", "--net-alias", "a", "busybox"],
    ["run", "-h", "myhost", "-w", "/tmp", "-u", "1000:1000", "busybox", "id"],
    ["run", "-l", "a=b", "--label", "c=d", "-la=b", "busybox"],
    ["run", "--rm", "busybox", "sh", "-c", "echo hi; exit 3"],
    ["run", "--rm", "busybox", "ls", "-la", "--color", "/"],
    ["run", "--rm", "busybox", "echo", "--rm", "-it", "--", "x", "--help", "-h"],
    ["run", "--entrypoint", "", "busybox", "a b"],
    ["run", "-a", "stdout", "-a", "STDERR", "busybox"],
    ["run", "--health-cmd", "true", "--health-retries", "3", "--no-healthcheck", "busybox"],
    ["run", "-P", "--expose", "80", "--init", "--privileged", "--read-only", "busybox"],
    ["run", "--pull", "never", "--platform", "linux/amd64", "-q", "busybox"],
    ["run", "", "x"],
    ["run", "busybox", "-1"],
    ["-H", "unix:///x", "-n", "ns", "run", "--rm", "busybox", "true"],
    ["--host=unix:///x", "--namespace=ns", "run", "busybox"],
    ["-Hunix:///x", "-nns", "ps", "-a"],
    ["create", "--name", "c1", "busybox", "sleep", "9"],
    ["create", "-t", "busybox"],
    ["start", "c1"],
    ["start", "-a", "-i", "c1"],
    ["start", "-ai", "c1"],
    ["stop", "c1", "c2"],
    ["stop", "-t", "3", "c1"],
    ["stop", "--timeout=3", "-s", "TERM", "c1"],
    ["stop", "--time", "0", "c1"],
    ["rm", "-f", "c1"],
    ["rm", "-fv", "c1", "c2"],
    ["rm", "--force", "--volumes", "c1"],
    ["kill", "-s", "HUP", "c1"],
    ["wait", "--condition", "removed", "c1"],
    ["exec", "c1", "ls"],
    ["exec", "-it", "c1", "sh"],
    ["exec", "-e", "A=1", "-u", "root", "-w", "/", "c1", "sh", "-c", "x"],
    ["exec", "-d", "--privileged", "c1", "sleep", "1"],
    ["exec", "c1", "ls", "-l", "--", "-x"],
    ["logs", "c1"],
    ["logs", "-f", "-n", "10", "-t", "c1"],
    ["logs", "--tail=5", "--since", "10m", "c1"],
    ["ps"],
    ["ps", "-a", "-q"],
    ["ps", "-aq"],
    ["ps", "--format", "{{.ID}}", "-f", "status=exited", "--filter=name=x", "-n", "3"],
    ["ps", "--no-trunc", "-l", "-s"],
    ["images"],
    ["images", "-q"],
    ["images", "busybox"],
    ["pull", "busybox"],
    ["pull", "-q", "busybox:latest"],
    ["inspect", "c1"],
    ["inspect", "--type", "image", "busybox"],
    ["inspect", "-f", "{{.State.Status}}", "c1", "c2"],
    ["container", "run", "--rm", "busybox", "true"],
    ["container", "ls", "-a"],
    ["container", "ps"],
    ["container", "inspect", "c1"],
    ["container", "remove", "-f", "c1"],
    ["container", "prune", "-f"],
    ["image", "ls"],
    ["image", "pull", "busybox"],
    ["top", "c1", "-ef"],
    ["port", "c1"],
    ["port", "c1", "80"],
    ["stats", "--no-stream"],
    ["stats", "--no-stream", "c1"],
    ["commit", "c1", "img"],
    ["commit", "--no-pause", "c1"],
    ["commit", "-p", "-c", "ENV A=1", "c1"],
    ["rename", "a", "b"],
    ["update", "--memory", "64m", "c1"],
    ["cp", "c1:/a", "/tmp/b"],
    ["version"],
    ["info"],
    ["network", "ls"],
    ["volume", "ls"],
    ["pod", "ps"],
]


@pytest.mark.parametrize("argv", ACCEPTED, ids=" ".join)
def test_accepted_equals_argparse(argv: list[str]) -> None:
    assert _check(argv) is not None, f"declined: {argv}"


# argparse prints help or an error for each: the fast parser declines.
DECLINED = [
    ["run", "--help"],
    ["run", "--hel"],
    ["run", "--rm", "--help", "busybox"],
    ["ps", "-h"],
    ["ps", "--help"],
    ["run", "--bogus", "busybox"],
    ["run", "--na", "x", "busybox"],  # abbreviation (of --name)
    ["run", "--nam", "x", "busybox"],  # unique abbreviation: argparse takes it; not mirrored
    ["run", "--n", "x", "busybox"],  # ambiguous
    ["run", "--rm"],  # no image
    ["run"],
    ["run", "--cpu-shares", "x", "busybox"],  # type conversion
    ["run", "--name"],  # no value
    ["run", "--name", "--rm", "busybox"],
    ["run", "--rm=yes", "busybox"],
    ["run", "-ix", "busybox"],  # -x is no option
    ["wait", "--condition", "nope", "c1"],  # bad choice
    ["inspect", "--type", "volume", "x"],
    ["stop"],
    ["rm", "-f"],
    ["rename", "a"],
    ["rename", "a", "b", "c"],  # extras
    ["ps", "extra"],
    ["container"],  # a group without its subcommand: its help
    ["container", "nosuch"],
    ["image"],
    ["-H"],
    ["--hos", "x", "ps"],
    ["logs", "--tail"],
]


@pytest.mark.parametrize("argv", DECLINED, ids=" ".join)
def test_declined(argv: list[str]) -> None:
    command, sub = cli_main._invoked(argv)
    if command is None:
        return  # main() does not try the fast parser
    assert _fast(argv) is None, argv


def test_double_dash_cases_equal_argparse_or_decline() -> None:
    for argv in (
        ["run", "busybox", "--", "ls"],
        ["run", "--", "busybox", "ls"],
        ["run", "--rm", "busybox", "ls", "--", "-x"],
        ["exec", "c1", "--", "ls"],
        ["stop", "--", "c1"],
        ["stop", "c1", "--", "c2"],
        ["rm", "-f", "--", "-c1"],
        ["ps", "--"],
        ["run", "--name", "--", "x", "busybox"],
        ["logs", "--", "c1"],
        ["port", "c1", "--", "80"],
    ):
        _check(argv)


def _leaves() -> list[tuple[list[str], Recorder]]:
    """Every command's recorded parser, with the words that invoke it."""
    out = []
    for command in sorted(cli_main.COMMANDS):
        root = cli_main.build(command, None, Recorder)
        top = next(a for a in root.actions if a.kind == "parsers").choices[command]
        subs = [a for a in top.actions if a.kind == "parsers"]
        if subs:
            for name, p in subs[0].choices.items():
                out.append(([command, name], p))
        else:
            out.append(([command], top))
    return out


LEAVES = _leaves()


def test_every_command_records() -> None:
    assert len(LEAVES) > 100
    assert all(not p.unsupported for _, p in LEAVES if _ != ["completion"]), [
        w for w, p in LEAVES if p.unsupported
    ]
    assert isinstance(Subparsers, type)


_WORDS = ["x", "busybox", "", "a b", "-1", "5", "-", "--", "-x", "--nope", "true", "stdout", "image"]


@st.composite
def _argvs(draw: st.DrawFn) -> list[str]:
    words, p = draw(st.sampled_from(LEAVES))
    options = sorted(p.options)
    argv = list(draw(st.sampled_from([[], ["-n", "ns"], ["-Hunix:///x"], ["--namespace=n"]]))) + words
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.integers(0, 5))
        if kind <= 1 and options:
            argv.append(draw(st.sampled_from(options)))
            if draw(st.booleans()):
                argv.append(draw(st.sampled_from(_WORDS)))
        elif kind == 2 and options:
            argv.append(draw(st.sampled_from(options)) + "=" + draw(st.sampled_from(_WORDS)))
        elif kind == 3:
            shorts = [o[1] for o in options if len(o) == 2]
            if shorts:
                argv.append("-" + "".join(draw(st.lists(st.sampled_from(shorts), min_size=1, max_size=3))))
        elif kind == 4 and options:
            o = draw(st.sampled_from(options))
            argv.append(o[: draw(st.integers(1, len(o)))])  # abbreviations and prefixes
        else:
            argv.append(draw(st.sampled_from(_WORDS)))
    return argv


@st.composite
def _wellformed(draw: st.DrawFn) -> list[str]:
    """Mostly valid argvs: each option with what it takes, then the positionals."""
    words, p = draw(st.sampled_from(LEAVES))
    argv = list(words)
    flags = [o for o, a in p.options.items() if a.nargs == 0 and a.kind != "help"]
    valued = [o for o, a in p.options.items() if a.nargs in (None, "?") and not a.choices]
    value = st.sampled_from(["x", "1", "a=b", "-1", "a b", "", "80:80", "--x"])
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.integers(0, 3))
        if kind == 0 and flags:
            argv.append(draw(st.sampled_from(flags)))
        elif kind == 1 and valued:
            argv += [draw(st.sampled_from(valued)), draw(value)]
        elif kind == 2 and valued:
            argv.append(draw(st.sampled_from(valued)) + "=" + draw(value))
        elif kind == 3:
            shorts = [o for o in flags if len(o) == 2]
            if shorts:
                argv.append("-" + "".join(o[1] for o in draw(st.lists(st.sampled_from(shorts), max_size=3))))
    argv += draw(st.lists(st.sampled_from(["x", "busybox", "true", "-c", "--rm", "--", "y z"]), max_size=4))
    return argv


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_argvs() | _wellformed())
def test_generated_argvs_equal_argparse_or_decline(argv: list[str]) -> None:
    _check(argv)


def test_most_generated_argvs_are_not_declined() -> None:
    """The fast path is the common path: the common forms of `run` go through it."""
    accepted = sum(_check(a) is not None for a in ACCEPTED)
    assert accepted == len(ACCEPTED)
