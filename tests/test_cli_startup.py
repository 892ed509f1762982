"""CLI start-up: the one-command parser and the stdlib HTTP transport (no daemon needed)."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from podkit import errors
from podkit.cli import main as cli_main
from podkit.client._transport import DaemonNotRunning, Transport
from tests.helpers import Daemon


def _choices(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def test_command_table_matches_the_full_parser() -> None:
    full = _choices(cli_main.build_parser())
    assert set(full) == set(cli_main.COMMANDS)
    for cmd, sp in full.items():
        one = _choices(cli_main.build_parser(cmd))
        assert list(one) == [cmd]
        assert one[cmd].format_help() == sp.format_help(), cmd


def _options(p: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    return sorted(tuple(a.option_strings) or (a.dest,) for a in p._actions)


@pytest.mark.parametrize(
    "group,commands",
    [
        (
            "container",
            ["run", "create", "start", "stop", "rm", "exec", "logs", "cp", "stats", "commit"],
        ),
        ("image", ["pull", "push", "tag", "save", "load", "import", "build"]),
        ("system", ["info", "events"]),
    ],
)
def test_management_commands_are_the_same_parsers(group: str, commands: list[str]) -> None:
    """`podkit container run` is `podkit run` (docker's management commands), built alone."""
    for cmd in commands:
        sub = _choices(_choices(cli_main.build_parser(group, cmd))[group])
        assert cmd in sub and len({id(x) for x in sub.values()}) == 1, (group, cmd, list(sub))
        assert _options(sub[cmd]) == _options(_choices(cli_main.build_parser(cmd))[cmd]), (group, cmd)
    # the group's own names for the top-level ones
    assert set(_choices(_choices(cli_main.build_parser(group))[group])) >= set(commands)
    # an unknown subcommand builds them all, so that argparse can list the choices
    assert len(_choices(_choices(cli_main.build_parser(group, "nosuch"))[group])) > len(commands)


@pytest.mark.parametrize(
    "argv",
    [["network", "ls"], ["volume", "rm", "x"], ["pod", "ps"], ["play", "kube", "f"], ["manifest", "inspect"]],
)
def test_every_group_builds_one_subcommand(argv: list[str]) -> None:
    group, sub = cli_main._invoked(argv)
    assert group is not None and sub is not None
    built = _choices(_choices(cli_main.build_parser(group, sub))[group])
    assert sub in built and len(set(map(id, built.values()))) == 1, (argv, list(built))


def test_group_aliases() -> None:
    full = _choices(_choices(cli_main.build_parser("container"))["container"])
    assert _options(full["ls"]) == _options(_choices(cli_main.build_parser("ps"))["ps"])
    assert full["ps"] is full["ls"]
    images = _choices(_choices(cli_main.build_parser("image"))["image"])
    assert _options(images["ls"]) == _options(_choices(cli_main.build_parser("images"))["images"])
    assert _options(images["rm"]) == _options(_choices(cli_main.build_parser("rmi"))["rmi"])
    assert list(_choices(_choices(cli_main.build_parser("container", "ps"))["container"])) == [
        "ls",
        "list",
        "ps",
    ]


@pytest.mark.parametrize(
    "argv,cmd",
    [
        (["run", "--rm", "busybox", "true"], "run"),
        (["-H", "unix:///x", "-n", "ns", "ps"], "ps"),
        (["--host=unix:///x", "--namespace=ns", "pod", "ls"], "pod"),
        (["-nns", "rm", "x"], "rm"),
        (["--help"], None),
        (["-v"], None),
        (["nosuchcommand"], None),
        ([], None),
    ],
)
def test_invoked_command(argv: list[str], cmd: str | None) -> None:
    assert cli_main._invoked_command(argv) == cmd


def test_invoked_subcommand() -> None:
    assert cli_main._invoked(["-n", "x", "container", "run", "--rm", "busybox"]) == ("container", "run")
    assert cli_main._invoked(["container", "--help"]) == ("container", None)
    assert cli_main._invoked(["ps", "-a"]) == ("ps", None)


# What no command's start-up needs: typing (with re, enum, contextlib before it, ~10 ms),
# http.client (email, ssl), the socket module's wrapper (enums, selectors), urllib.parse
# (ipaddress), and what only some commands use (datetime, tempfile with shutil, random).
NOT_AT_START = (
    "typing",
    "http.client",
    "email",
    "ssl",
    "socket",
    "selectors",
    "urllib.parse",
    "ipaddress",
    "datetime",
    "tempfile",
    "shutil",
    "asyncio",
    "dataclasses",
    "inspect",
)


def test_run_imports_no_http_client(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom podkit.cli.main import main\n"
        "try:\n    main(['run', '--rm', 'busybox', 'true'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {NOT_AT_START + ('podkit.cli.images', 'podkit.cli.pods')!r} "
        "if m in sys.modules))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PODKIT_HOST": f"unix://{tmp_path}/none.sock", "PATH": "/usr/bin:/bin"},
    )
    assert r.stdout.strip() == "[]", r.stdout + r.stderr
    assert "is the daemon running?" in r.stderr


# What `run` (parsed by podkit/cli/_fastargs.py, JSON by podkit/client/_json.py) does not
# import either: argparse with re, gettext and locale; json's encoder and decoder (re);
# signal (enums); what those bring (enum, functools, collections): ~11 ms of each run.
NOT_ON_RUN = ("re", "argparse", "json", "enum", "functools", "collections", "gettext", "locale", "signal")


def _imported(stderr: str) -> set[str]:
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_run_fails_to_connect_without_argparse_json_or_re(tmp_path: Path) -> None:
    from tests.helpers import BIN

    r = subprocess.run(
        [
            str(BIN / "python"),
            "-X",
            "importtime",
            str(BIN / "podkit"),
            "run",
            "--rm",
            "--network",
            "none",
            "b",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PODKIT_HOST": f"unix://{tmp_path}/none.sock", "PATH": "/usr/bin:/bin"},
    )
    assert "is the daemon running?" in r.stderr and r.returncode == 125, r.stderr[-2000:]
    imported = _imported(r.stderr)
    assert "podkit.cli._fastargs" in imported and "podkit.cli.containers" in imported
    assert sorted(imported & {*NOT_ON_RUN, *NOT_AT_START}) == []


def test_a_whole_run_imports_no_argparse_json_re_or_signal(
    daemon: Daemon, busybox_image: str, tmp_path: Path
) -> None:
    """`podkit run --rm` with a real daemon: the create, the attach (podkit.cli.stdio,
    the WebSocket) and the exit code, with none of NOT_ON_RUN; nor a container's inspect
    (json's indent=2 output, from _json.dumps_indented)."""
    from tests.helpers import BIN

    env = {"PODKIT_HOST": daemon.host, "PATH": "/usr/bin:/bin", "PYTHONPYCACHEPREFIX": str(tmp_path / "pyc")}
    r = subprocess.run(
        [str(BIN / "python"), "-X", "importtime", str(BIN / "podkit"), "run", "--rm", "--network", "none"]
        + [busybox_image, "sh", "-c", "echo hi; exit 3"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert (r.returncode, r.stdout) == (3, "hi\n"), r.stderr[-2000:]
    imported = _imported(r.stderr)
    assert {"podkit.cli.stdio", "podkit.client._ws"} <= imported
    assert sorted(imported & {*NOT_ON_RUN, *NOT_AT_START}) == []

    made = subprocess.run(
        [str(BIN / "podkit"), "create", busybox_image], capture_output=True, text=True, timeout=60, env=env
    )
    cid = made.stdout.strip()
    assert made.returncode == 0 and cid, made.stderr
    try:
        r = subprocess.run(
            [str(BIN / "python"), "-X", "importtime", str(BIN / "podkit"), "inspect", cid],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert r.returncode == 0 and json.loads(r.stdout)[0]["Id"] == cid, r.stderr[-2000:]
        assert sorted(_imported(r.stderr) & set(NOT_ON_RUN)) == []  # (datetime it needs)
    finally:
        subprocess.run([str(BIN / "podkit"), "rm", cid], capture_output=True, timeout=60, env=env, check=True)


def test_version_starts_with_only_the_modules_it_needs(tmp_path: Path) -> None:
    """What a real `podkit version` imports, the interpreter's own start included: no
    import-hook finder of an editable install (setuptools' costs ~15-20 ms: pathlib,
    importlib.util) nor setuptools' distutils-precedence.pth, no shutil (argparse's
    width query; bz2, lzma), nothing of the daemon or of an HTTP/TLS stack."""
    from tests.helpers import BIN

    r = subprocess.run(
        [str(BIN / "python"), "-X", "importtime", str(BIN / "podkit"), "version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PODKIT_HOST": f"unix://{tmp_path}/none.sock", "PATH": "/usr/bin:/bin"},
    )
    assert "is the daemon running?" in r.stderr, r.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")
    }
    assert "podkit.cli.system" in imported and "podkit.client._transport" in imported
    hooks = sorted(m for m in imported if m.startswith(("__editable__", "_distutils_hack")))
    assert not hooks, (
        f"an import-hook editable install or setuptools' .pth ({hooks}): "
        "run `make setup` again (scripts/setup.sh)"
    )
    heavy = {"pathlib", "importlib.util", "bz2", "lzma", *NOT_AT_START}
    assert sorted(imported & heavy) == []
    assert (
        sorted(m for m in imported if m.startswith(("podkit.daemon", "aiohttp", "podkit.containers"))) == []
    )


def test_no_command_imports_typing_to_build_its_parser() -> None:
    """`podkit --help` builds every command's parser, importing every area module: none
    of them may pull in what NOT_AT_START names (annotations only, under TYPE_CHECKING)."""
    code = (
        "import sys\nfrom podkit.cli.main import build_parser\nbuild_parser()\n"
        f"print(sorted(m for m in {NOT_AT_START!r} if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def _entry(tmp_path: Path, argv: list[str], before: str = "") -> subprocess.CompletedProcess[str]:
    """`podkit ARGV` through the program's entry point, ``before`` run first in __main__;
    an object there says (on stderr) whether the interpreter was finalized."""
    code = (
        "import sys\n"
        "class Finalized:\n"
        "    def __del__(self):\n"
        "        sys.stderr.write('finalized\\n')\n"
        "mark = Finalized()\n"
        f"{before}\n"
        "from podkit.cli.main import entry\n"
        f"sys.argv = ['podkit', *{argv!r}]\n"
        "entry()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PODKIT_HOST": f"unix://{tmp_path}/none.sock", "PATH": "/usr/bin:/bin"},
    )


def test_entry_exits_without_teardown_keeping_output_and_code(tmp_path: Path) -> None:
    from podkit._version import __version__

    r = _entry(tmp_path, ["--version"])
    assert (r.returncode, r.stdout) == (0, f"podkit version {__version__}\n"), r.stderr
    assert "finalized" not in r.stderr  # os._exit: no teardown
    # a long output through a pipe arrives whole (flushed before the exit), as main() gives it
    r = _entry(tmp_path, ["run", "--help"])
    normal = subprocess.run(
        [sys.executable, "-c", "from podkit.cli.main import main\nmain(['run', '--help'])"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == normal.returncode == 0 and "--sig-proxy" in r.stdout
    assert r.stdout == normal.stdout
    # exit codes: a usage error, an engine error (no daemon), a command's own
    assert _entry(tmp_path, ["run", "--bogus", "x"]).returncode == 125
    r = _entry(tmp_path, ["version"])
    assert r.returncode == 1 and "is the daemon running?" in r.stderr and "finalized" not in r.stderr


def test_entry_exits_normally_when_something_waits_for_the_exit(tmp_path: Path) -> None:
    """An atexit hook or a running thread: the interpreter's own exit runs them."""
    r = _entry(tmp_path, ["--version"], "import atexit\natexit.register(lambda: print('hook ran'))")
    assert r.returncode == 0 and r.stdout.endswith("hook ran\n") and "finalized" in r.stderr, r
    r = _entry(
        tmp_path,
        ["--version"],
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.2), print('thread done'))).start()",
    )
    assert r.returncode == 0 and r.stdout.endswith("thread done\n") and "finalized" in r.stderr, r


@pytest.mark.parametrize(
    "text",
    ["plain", "a b", "ä/é?&=+#%", "label=com.example/x=1", "", "~._-", "日本", "a\nb\x00"],
)
def test_query_encoding_matches_urllib(text: str) -> None:
    import urllib.parse

    from podkit.client._transport import query_string, quote

    assert quote(text) == urllib.parse.quote(text, safe="")
    assert quote(text, plus=True) == urllib.parse.quote_plus(text, safe="")
    params: dict[str, str | list[str]] = {"k": text, text or "e": [text, "x y"], "f": "true"}
    assert query_string(params) == urllib.parse.urlencode(params, doseq=True)


# ------------------------------------------------------------------ transport
class _Server:
    """A unix socket server answering each connection with one canned response."""

    def __init__(self, path: Path, response: bytes) -> None:
        self.path = path
        self.response = response
        self.requests: list[bytes] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += c.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                if b"chunked" in head.lower():
                    while not body.endswith(b"0\r\n\r\n"):
                        body += c.recv(65536)
                elif b"content-length:" in head.lower():
                    n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while len(body) < n:
                        body += c.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                c.sendall(self.response)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    servers: list[_Server] = []

    def start(response: bytes) -> tuple[Transport, _Server]:
        s = _Server(tmp_path / f"s{len(servers)}.sock", response)
        servers.append(s)
        return Transport(f"unix://{s.path}", "ns1", timeout=10), s

    yield start
    for s in servers:
        s.close()


def test_content_length_json(serve) -> None:  # type: ignore[no-untyped-def]
    t, s = serve(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"a": 1}\n')
    assert t.post("/things", json_body={"x": 1}, params={"f": True, "l": ["a", "b"]}) == {"a": 1}
    req = s.requests[0]
    assert req.startswith(b"POST /v1/things?f=true&l=a&l=b HTTP/1.1\r\n")
    assert b"X-Podkit-Namespace: ns1\r\n" in req and b"Content-Length: 8\r\n" in req
    assert req.endswith(b'\r\n\r\n{"x": 1}')


def test_chunked_stream_and_chunked_upload(serve) -> None:  # type: ignore[no-untyped-def]
    body = b'{"a": 1}\n{"b"' + b": 2}\n"
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:5], body[5:12], body[12:])) + b"0\r\n\r\n"
    t, s = serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    assert list(t.stream("POST", "/up", body=iter([b"abc", b"", b"defg"]))) == [{"a": 1}, {"b": 2}]
    assert s.requests[0].endswith(b"\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
    conn, resp = t.open("GET", "/raw")
    try:
        got = b""
        while piece := resp.read(3):
            got += piece
        assert got == body
    finally:
        conn.close()


def test_close_delimited_and_headers(serve) -> None:  # type: ignore[no-untyped-def]
    t, _ = serve(b'HTTP/1.1 200 OK\r\nX-Podkit-Path-Stat: {"size": 3}\r\nConnection: close\r\n\r\nxyz')
    conn, resp = t.open("GET", "/c")
    try:
        assert json.loads(resp.getheader("X-Podkit-Path-Stat") or "{}") == {"size": 3}
        assert resp.read() == b"xyz" and resp.read() == b""
    finally:
        conn.close()


def test_errors(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    err = b'{"error": {"code": "not_found", "message": "x"}}'
    t, _ = serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(err), err))
    with pytest.raises(errors.NotFound, match="x"):
        t.get("/missing")
    t2, _ = serve(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert t2.delete("/gone") is None
    with pytest.raises(DaemonNotRunning, match="is the daemon running"):
        Transport(f"unix://{tmp_path}/nothing.sock").get("/x")


def test_usage_errors_exit_125_like_docker() -> None:
    import subprocess

    from tests.helpers import BIN

    for argv in (["run", "--bogus", "busybox"], ["images", "--nope"], ["nosuchcmd"]):
        r = subprocess.run([str(BIN / "podkit"), *argv], capture_output=True, text=True, timeout=30)
        assert r.returncode == 125, (argv, r.returncode, r.stderr)
        assert "error:" in r.stderr and "--help" in r.stderr


def test_a_listing_in_json_needs_no_template_engine_json_or_re() -> None:
    """`ps --format json` is docker's `{{json .}}` of each row, written without parsing
    a template: no gotemplate, and neither json nor re, are imported for it."""
    code = (
        "import sys\n"
        "from podkit.cli.volumes import VOLUME_HEADERS, volume_fields\n"
        "from podkit.cli.output import listing\n"
        "from types import SimpleNamespace\n"  # (argparse imports re)
        "args = SimpleNamespace(format='json', quiet=False)\n"
        "listing(args, [{'name': 'v<1>', 'labels': {'a': 'é'}}], [], lambda v: [], lambda v: '',"
        " volume_fields, VOLUME_HEADERS)\n"
        "print(sorted(m for m in ('json', 're', 'podkit.cli.gotemplate') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    line, loaded = r.stdout.splitlines()
    assert loaded == "[]", loaded
    assert json.loads(line) == {
        "Availability": "N/A",
        "Driver": "local",
        "Group": "N/A",
        "Labels": "a=é",
        "Links": "N/A",
        "Mountpoint": "",
        "Name": "v<1>",
        "Scope": "local",
        "Size": "N/A",
        "Status": "N/A",
    }
    assert '"Name":"v\\u003c1\\u003e"' in line and '"Labels":"a=é"' in line
