"""The API under malformed input: every route answers 4xx with a JSON error, never a 500.

A small fuzzer of our own over the routes of ``/openapi.json`` (schemathesis would
need an HTTP base URL and a hypothesis budget; this is bounded and deterministic):
for each operation, path parameters that name nothing or try to climb (``..``),
query strings that are not numbers or booleans, and request bodies that are not
JSON, not objects, or objects whose declared fields carry every wrong JSON type.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import stat
import time
from typing import Any

from tests.helpers import Daemon

# Streams that stay open by design (a subscriber waits for events).
_OPEN_STREAMS = {("GET", "/v1/events")}
_WRONG_VALUES: list[Any] = [1, -1, 1.5, "x", True, [], [1], {}, {"a": 1}]
_BAD_BODIES = [b"{", b"\xff\xfe", b"[]", b'"x"', b"null", b"123", b"{}", b'{"a":']


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


def _call(
    sock: str, method: str, url: str, body: bytes | None = None, timeout: float = 20.0
) -> tuple[int, bytes]:
    conn = _Unix(sock, timeout)
    try:
        headers = {"Host": "podkitd"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, url, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _wrong_typed(schema: dict[str, Any]) -> list[bytes]:
    out = []
    for name, prop in (schema.get("properties") or {}).items():
        want = prop.get("type") if isinstance(prop, dict) else None
        for v in _WRONG_VALUES:
            if want == "string" and isinstance(v, str):
                continue
            out.append(json.dumps({name: v}).encode())
    return out


def test_socket_is_root_only(daemon: Daemon) -> None:
    st = os.stat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_no_route_answers_500_to_malformed_input(daemon: Daemon) -> None:
    try:
        _fuzz(daemon)
    finally:
        # Some wrong-typed bodies are valid requests (e.g. a pod with {"start": true}):
        # remove what they made; pods and containers outlive their daemon by design.
        c = daemon.client()
        for pod in c.pods.list():
            c.pods.remove(pod.id, force=True)
        for ctr in c.containers.list(all=True):
            c.containers.remove(ctr.id, force=True)


def _fuzz(daemon: Daemon) -> None:
    sock = str(daemon.socket)
    status, raw = _call(sock, "GET", "/openapi.json")
    assert status == 200
    doc = json.loads(raw)
    failures: list[str] = []
    calls = 0
    started = time.monotonic()
    for path, ops in sorted(doc["paths"].items()):
        for method, op in sorted(ops.items()):
            method = method.upper()
            if (method, path) in _OPEN_STREAMS:
                continue
            path_params = [p["name"] for p in op["parameters"] if p["in"] == "path"]
            query = [p["name"] for p in op["parameters"] if p["in"] == "query"]
            schema = (
                op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            ) or {}
            bodies: list[bytes | None] = [None, *_BAD_BODIES]
            if schema:
                bodies += _wrong_typed(schema)
            for word in ("nonexistent0", "..") if path_params else ("",):
                url = path
                for p in path_params:
                    url = url.replace("{" + p + "}", word)
                urls = [url]
                if query:
                    urls.append(url + "?" + "&".join(f"{q}=%ZZ-1" for q in query))
                for u in urls:
                    for body in bodies:
                        calls += 1
                        what = f"{method} {u} body={body!r}"
                        try:
                            status, raw = _call(sock, method, u, body)
                        except (TimeoutError, http.client.HTTPException, OSError) as e:
                            failures.append(f"{what}: {type(e).__name__}: {e}")
                            continue
                        if status >= 500 and status != 503:
                            failures.append(f"{what}: HTTP {status} {raw[:200]!r}")
                        elif status >= 400:
                            try:
                                err = json.loads(raw)["error"]
                                assert err["code"] and err["message"]
                            except (ValueError, KeyError, TypeError, AssertionError):
                                failures.append(f"{what}: HTTP {status} without a JSON error: {raw[:200]!r}")
    assert calls > 500, calls  # the fuzzer really covered the API
    assert not failures, f"{len(failures)} of {calls} calls failed:\n" + "\n".join(failures[:40])
    # The daemon survived all of it and still answers.
    assert daemon.client().ping()
    assert time.monotonic() - started < 240


# With real objects behind the path, handlers get past the lookup and parse the rest.
# Left out: routes that stream or block for as long as the container lives.
_BLOCKING = ("/stats", "/wait", "/attach", "/logs")


def test_routes_on_real_objects_answer_malformed_input_with_4xx(daemon: Daemon, busybox_image: str) -> None:
    c = daemon.client()
    ctr = c.containers.run("busybox", ["sleep", "300"], name="fz", init=True)
    pod = c.pods.create("fzpod")
    c.volumes.create("fzvol")
    c.networks.create("fznet")
    ex = c._t.post(f"/containers/{ctr.id}/exec", json_body={"cmd": ["true"]})["id"]
    refs = {
        "containers": ctr.id,
        "pods": pod.id,
        "volumes": "fzvol",
        "networks": "fznet",
        "exec": ex,
        "images": "busybox",
    }
    sock = str(daemon.socket)
    doc = json.loads(_call(sock, "GET", "/openapi.json")[1])
    failures: list[str] = []
    try:
        for path, ops in sorted(doc["paths"].items()):
            for method, op in sorted(ops.items()):
                method = method.upper()
                params = [p["name"] for p in op["parameters"] if p["in"] == "path"]
                if method == "DELETE" or not params or path.endswith(_BLOCKING):
                    continue
                url = path
                for p in params:
                    url = url.replace("{" + p + "}", refs.get(path.split("/")[2], "x"))
                query = [p["name"] for p in op["parameters"] if p["in"] == "query"]
                schema = (
                    op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
                ) or {}
                bodies: list[bytes | None] = [None, *_BAD_BODIES, *(_wrong_typed(schema) if schema else [])]
                for u in [url] + ([url + "?" + "&".join(f"{q}=%ZZ-1" for q in query)] if query else []):
                    for body in bodies:
                        try:
                            status, raw = _call(sock, method, u, body)
                        except (TimeoutError, http.client.HTTPException, OSError) as e:
                            failures.append(f"{method} {u} {body!r}: {type(e).__name__}")
                            continue
                        if status >= 500 and status != 503:
                            failures.append(f"{method} {u} {body!r}: HTTP {status} {raw[:200]!r}")
    finally:
        c.pods.remove(pod.id, force=True)
        for x in c.containers.list(all=True):
            c.containers.remove(x.id, force=True)
        c.networks.remove("fznet")  # its rules would outlive the daemon
    assert not failures, "\n".join(failures[:40])
