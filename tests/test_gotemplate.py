"""The Go template subset of --format (podkit/cli/gotemplate.py); no daemon, no root.

The expected strings are what docker 28.2 prints for the same templates (checked with
`docker version --format TEMPLATE`, whose data does not matter for these literals)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podkit.cli.gotemplate import Template, TemplateError, render
from podkit.cli.output import format_items, tabwrite

# (template, what docker prints)
DOCKER_PRINTS = [
    ('{{printf "%v %v %v %v" 1234567.0 123456.0 0.0001 0.00001}}', "1.234567e+06 123456 0.0001 1e-05"),
    (
        '{{printf "%d|%5d|%-5d|%05d|%s|%10s|%-10s|%t|%c|%o|%b|%X|%e|%g|%8.3f|%+d" '
        '42 42 42 42 "s" "s" "s" true 65 8 5 255 1234.5678 1234.5678 3.14159 5}}',
        "42|   42|42   |00042|s|         s|s         |true|A|10|101|FF|1.234568e+03|1234.5678|   3.142|+5",
    ),
    ('{{printf "%v %s %d" "x" 3 "y"}}', "x %!s(int=3) %!d(string=y)"),
    ('{{printf "%q %v" 3 nil}}', "'\\x03' <nil>"),
    ('{{printf "%6.2f%%|%x|%X|% d|%#x|%#o" 99.5 "hi" -255 5 255 8}}', " 99.50%|6869|-FF| 5|0xff|010"),
    (
        '{{printf "%v" (split "a b" " ")}} {{print nil}} {{printf "%s" nil}} '
        '{{printf "%d %s"}} {{printf "%d" 1 2}}',
        "[a b] <nil> %!s(<nil>) %!d(MISSING) %!s(MISSING) 1%!(EXTRA int=2)",
    ),
    ('{{print 1 2 "a" "b" 3}} {{println "x" 1}}', "1 2ab3 x 1\n"),
    ('{{len "héllo"}} {{index "abc" 1}} {{slice "abcdef" 1 3}}', "6 98 bc"),
    (
        '{{title "hello wOrld foo-bar a_b"}}|{{upper "x"}}|{{join (split "a,b" ",") "+"}}|'
        '{{pad "x" 2 3}}|{{truncate "abcdef" 3}}|',
        "Hello WOrld Foo-Bar A_b|X|a+b|  x   |abc|",
    ),
    (
        '{{range $i, $e := split "a,b" ","}}{{$i}}={{$e}};{{end}}'
        '{{range split "" ","}}[{{.}}]{{else}}none{{end}}',
        "0=a;1=b;[]",
    ),
    (
        '{{if and 1 0}}y{{else if or 0 ""}}z{{else}}n{{end}} {{and 1 2}} {{or 0 "" 3}} {{not 0}} '
        '{{eq 1 2 1}} {{ne "a" "b"}} {{lt 1 2}}',
        "n 2 3 true true true true",
    ),
    ("{{range 3}}{{.}}{{end}} {{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "012 2"),
    ('{{json "a<b"}} {{json 1.5}} {{split "a,b" ","}}', '"a<b" 1.5 [a b]'),
    ('a {{- " b " -}} c {{/* x */}}d', "a b c d"),
    ('{{with $x := "q"}}{{$x}}{{.}}{{end}}{{with ""}}w{{else}}e{{end}}', "qqe"),
    ("{{index 1}}", "1"),
    (
        '{{printf "%v" 1e21}} {{printf "%v" 100000000000000000000.0}} {{printf "%v" 3.0}} {{3.0}} '
        "{{1e3}} {{0x10}} {{-5}} {{1_000}} {{'a'}}",
        "1e+21 1e+20 3 3 1000 16 -5 1000 97",
    ),
]


@pytest.mark.parametrize("template,want", DOCKER_PRINTS)
def test_as_docker_prints(template: str, want: str) -> None:
    assert render(template, {}) == want


INSPECT = {
    "Id": "abc",
    "State": {"Status": "running", "Running": True, "Pid": 42},
    "Config": {"Image": "busybox", "Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "1"}, "Cmd": None},
    "Mounts": [{"Source": "/x", "Destination": "/a"}, {"Source": "/y", "Destination": "/b"}],
}


@pytest.mark.parametrize(
    "template,want",
    [
        ("{{.Config.Image}}", "busybox"),
        ("{{.State.Status}} {{.State.Pid}} {{.State.Running}}", "running 42 true"),
        ('{{index .Config.Labels "a"}}|{{index .Config.Labels "zz"}}', "1|"),
        ("{{.Config.Labels}}", "map[a:1 b:2]"),  # Go prints maps in key order
        ("{{json .Config.Labels}}", '{"b":"2","a":"1"}'),
        ('{{join .Config.Env ","}}', "A=1,B=2"),
        ("{{.Config.Env}} {{.Config.Cmd}}", "[A=1 B=2] <nil>"),
        ("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", "/x:/a /y:/b "),
        ("{{range $i, $m := .Mounts}}{{if $i}},{{end}}{{$m.Source}}{{end}}", "/x,/y"),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;"),
        ("{{with .State}}{{.Status}} of {{$.Id}}{{end}}", "running of abc"),
        ("{{(index .Mounts 1).Source}}", "/y"),
        ('{{range .Mounts}}{{if eq .Source "/x"}}{{continue}}{{end}}{{.Source}}{{end}}', "/y"),
        ("{{range .Mounts}}{{.Source}}{{break}}{{end}}", "/x"),
        ('{{.Id | printf "%s!"}} {{"x" | upper | printf "<%s>"}}', "abc! <X>"),
        ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
        ("{{lower .State.Status | title}}", "Running"),
        ("{{len .Mounts}} {{len .Config.Labels}}", "2 2"),
        ("{{.state.status}}", "running"),  # podkit's own lower-case JSON keys too
    ],
)
def test_fields_and_control(template: str, want: str) -> None:
    assert render(template, INSPECT) == want


def test_method_fields_and_json_leaves_them_out() -> None:
    row = {"Names": "web", "Label": lambda k: {"app": "x"}.get(k, "")}
    assert render('{{.Label "app"}}|{{.Label "no"}}', row) == "x|"
    assert render("{{json .}}", row) == '{"Names":"web"}'


@pytest.mark.parametrize(
    "template,message",
    [
        ("{{.Nope}}", "template: :1:2: executing \"\" at <.Nope>: no field 'Nope'"),
        ("{{.State.Nope}}", "no field 'Nope'"),
        ("{{.Id.X}}", "can't evaluate field X in type string"),
        ("{{.Config.Cmd.X}}", "nil pointer evaluating interface {}.X"),
        ("{{upper 1}}", "error calling upper: wrong type for value; expected string; got int"),
        ('{{lt 1 "a"}}', "error calling lt: incompatible types for comparison"),
        ('{{"a" 1}}', 'can\'t give argument to non-function "a"'),
        ("{{index .Mounts 9}}", "error calling index: index out of range: 9"),
        ("{{range .Id}}{{end}}", "range can't iterate over abc"),
        ("{{.Id 1}}", "Id is not a method but has arguments"),
        ("{{$x}}", 'undefined variable "$x"'),
        # parse errors: Go's messages
        ('{{"a}}', "template: :1: unterminated quoted string"),
        ("{{(1}}", "template: :1: unclosed left paren"),
        ("{{if 1}}", "template: :1: unexpected EOF"),
        ("{{else}}", "template: :1: unexpected {{else}}"),
        ("{{1 | 2}}", "template: :1: non executable command in pipeline stage 2"),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("{{if}}", "template: :1: missing value for if"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{.A", "template: :1: unclosed action"),
        ("a\n{{nope 1}}", 'template: :2: function "nope" not defined'),
        ('{{template "x"}}', "not supported"),
    ],
)
def test_errors_name_the_problem(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as e:
        render(template, INSPECT)
    assert message in e.value.message


def test_table_prefix_headers_and_tabwriter() -> None:
    rows = [
        {"ID": "abc123", "Names": "web", "Status": "Up 2 minutes"},
        {"ID": "def4567890ab", "Names": "a-much-longer-name", "Status": "Exited (0)"},
    ]
    headers = {"ID": "CONTAINER ID", "Names": "NAMES", "Status": "STATUS"}
    # `\t` typed in the flag is a tab (docker's preFormat); columns as docker aligns them
    assert format_items(r"table {{.ID}}\t{{.Names}}\t{{.Status}}", rows, headers) == (
        "CONTAINER ID   NAMES                STATUS\n"
        "abc123         web                  Up 2 minutes\n"
        "def4567890ab   a-much-longer-name   Exited (0)\n"
    )
    # header functions hand the header back: `upper` does not change NAMES
    assert (
        format_items("table {{upper .Names}}\t{{.ID}}", rows[:1], headers)
        == "NAMES     CONTAINER ID\nWEB       abc123\n"
    )
    assert (
        format_items(r"{{.ID}}\t{{.Names}}", rows, headers)
        == "abc123\tweb\ndef4567890ab\ta-much-longer-name\n"
    )
    assert tabwrite("a\tb\nlonger-than-ten\tc\nno tabs") == f"{'a':18}b\n{'longer-than-ten':18}c\nno tabs"


def test_json_of_a_listing_row_sorts_keys_as_go_maps_do() -> None:
    row = {"Names": "web", "ID": "abc", "Label": lambda k: ""}
    assert format_items("{{json .}}", [row], {"ID": "CONTAINER ID"}) == '{"ID":"abc","Names":"web"}\n'
    # an inspect document is a struct: its order stays
    assert format_items("{{json .}}", [{"b": 1, "a": 2}], {}) == '{"b":1,"a":2}\n'


def test_template_is_parsed_once() -> None:
    t = Template("{{.A}}-")
    assert [t.execute({"A": i}) for i in range(3)] == ["0-", "1-", "2-"]


def test_cli_bad_template_is_exit_1_not_a_traceback(tmp_path: Path) -> None:
    env = {"PODKIT_HOST": f"unix://{tmp_path}/none.sock", "PATH": "/usr/bin:/bin"}
    for argv in (
        ["version", "--format", "{{.Server.Version"],
        ["stats", "--no-stream", "--format", "{{nope}}", "x"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "podkit.cli.main", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert r.returncode == 1, r.stderr
        assert r.stderr.startswith("Error: template: :1:") and "Traceback" not in r.stderr, r.stderr
