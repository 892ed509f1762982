"""Names with a trailing newline (issue 10, item 6).

Python's ``$`` also matches just before a final newline, so ``re.match(r"^[a-z]+$")``
took ``"web\\n"``: such a name reached file paths, iptables comments and CNI configs.
Every validator now matches the whole string.
"""

from __future__ import annotations

import pytest

from podkit.errors import InvalidArgument
from tests.helpers import Daemon
from tests.rawhttp import call, error_message

_CASES = [
    ("volume", "POST", "/v1/volumes", {"name": "vol\n"}),
    ("network", "POST", "/v1/networks", {"name": "net\n"}),
    ("bridge", "POST", "/v1/networks", {"name": "net-ok", "bridge": "br0\n"}),
    ("container", "POST", "/v1/containers", {"image": "busybox", "name": "ctr\n"}),
    ("hostname", "POST", "/v1/containers", {"image": "busybox", "hostname": "h\n"}),
    ("user", "POST", "/v1/containers", {"image": "busybox", "user": "root\n"}),
    ("image", "POST", "/v1/containers", {"image": "busybox\n"}),
    ("pod", "POST", "/v1/pods", {"name": "pod\n"}),
    ("namespace", "GET", "/v1/containers?namespace=ns%0A", None),
]


def test_a_trailing_newline_is_refused(daemon: Daemon) -> None:
    wrong = []
    for what, method, url, body in _CASES:  # one daemon for all: each case is one request
        status, payload = call(str(daemon.socket), method, url, body)
        if status != 400 or "invalid" not in error_message(payload).lower():
            wrong.append((what, status, error_message(payload)))
    assert not wrong, wrong
    c = daemon.client()
    assert not [v.name for v in c.volumes.list() if v.name.startswith("vol")]
    assert not [n.name for n in c.networks.list() if n.name.startswith("net")]


def test_validators_match_whole_strings() -> None:
    from podkit.containers.parsers import validate_name
    from podkit.images import reference
    from podkit.network.config import check_bridge, check_name
    from podkit.pods.model import NAME_RE as POD_NAME_RE

    for bad in ("x\n", "x\n\n"):
        with pytest.raises(InvalidArgument):
            validate_name(bad)
        with pytest.raises(InvalidArgument):
            check_name(bad)
        with pytest.raises(InvalidArgument):
            check_bridge(bad)
        with pytest.raises(InvalidArgument):
            reference.parse("busybox:" + bad)
        assert POD_NAME_RE.fullmatch(bad) is None
