"""crictl (cri-tools v1.26.1) against podkit: every command the issue lists, as an
operator would type them, with JSON pod/container configs. (The streaming protocols
themselves are tested in depth in test_cri_streaming*.py; here each command once.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cri import CRIClient
from tests.fixtures.registry import PASSWORD, USER, RegistryServer, build_layout, skopeo_push
from tests.helpers import shared_dir, wait_for

CRICTL = Path(os.environ.get("CRICTL", shared_dir() / "bin" / "crictl"))
pytestmark = pytest.mark.skipif(not CRICTL.exists(), reason=f"crictl not found at {CRICTL}")


def run(cri: CRIClient, *args: str, input: bytes | None = None, check: bool = True) -> str:
    ep = f"unix://{cri.socket}"
    r = subprocess.run(
        [str(CRICTL), "-r", ep, "-i", ep, "--timeout", "30s", *args],
        input=input,
        capture_output=True,
        timeout=90,
    )
    if check:
        assert r.returncode == 0, f"crictl {' '.join(args)}: {r.stderr.decode(errors='replace')}"
    return r.stdout.decode(errors="replace") + (r.stderr.decode(errors="replace") if not check else "")


def test_crictl_every_command(
    cri: CRIClient, workdir: Path, registry: RegistryServer, auth_registry: RegistryServer
) -> None:
    assert "RuntimeName:  podkit" in run(cri, "version")
    info = json.loads(run(cri, "info"))
    assert {c["type"]: c["status"] for c in info["status"]["conditions"]}["RuntimeReady"] is True

    pod = workdir / "pod.json"
    pod.write_text(
        json.dumps(
            {
                "metadata": {"name": "web", "namespace": "default", "uid": "u-web", "attempt": 0},
                "hostname": "web",
                "log_directory": str(workdir / "logs"),
                "labels": {"app": "web"},
                "linux": {"security_context": {"namespace_options": {"pid": 1}}},
            }
        )
    )
    sid = run(cri, "runp", str(pod)).strip()
    assert sid in run(cri, "pods", "-q")
    assert "web" in run(cri, "pods", "--label", "app=web")
    assert json.loads(run(cri, "inspectp", sid))["status"]["state"] == "SANDBOX_READY"

    ctr = workdir / "ctr.json"
    ctr.write_text(
        json.dumps(
            {
                "metadata": {"name": "srv"},
                "image": {"image": "busybox"},
                "command": ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; exec httpd -f -p 8080"],
                "log_path": "srv.log",
                "stdin": True,
            }
        )
    )
    cid = run(cri, "create", sid, str(ctr), str(pod)).strip()
    assert cid in run(cri, "ps", "-a", "-q")
    run(cri, "start", cid)
    assert cid in run(cri, "ps", "-q", "--state", "running")
    assert json.loads(run(cri, "inspect", cid))["status"]["state"] == "CONTAINER_RUNNING"
    wait_for(lambda: "line 5" in run(cri, "logs", cid), what="the container's output")
    assert run(cri, "logs", "--tail", "2", cid).splitlines() == ["line 4", "line 5"]

    # exec -s, exec -i (stdin), then attach and port-forward through the streaming server.
    assert run(cri, "exec", "-s", cid, "echo", "synced").strip() == "synced"
    assert run(cri, "exec", "-i", cid, "cat", input=b"piped\n").strip() == "piped"
    port = _free_port()
    pf = subprocess.Popen(
        [str(CRICTL), "-r", f"unix://{cri.socket}", "port-forward", sid, f"{port}:8080"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _http_get(port).startswith(b"HTTP/1."), 30, what="httpd through crictl port-forward")
    finally:
        pf.terminate()
        pf.wait(10)
    at = subprocess.Popen(
        [str(CRICTL), "-r", f"unix://{cri.socket}", "attach", "-i", cid],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: at.poll() is None, 5, what="crictl attach to run")
    finally:
        at.terminate()
        at.wait(10)

    stats = run(cri, "stats", "-o", "json", cid)
    assert json.loads(stats)["stats"][0]["attributes"]["id"] == cid
    assert sid in json.loads(run(cri, "statsp", "-o", "json"))["stats"][0]["attributes"]["id"]
    run(cri, "update", "--memory", str(96 << 20), cid)
    assert json.loads(run(cri, "inspect", cid))["status"]["resources"]["linux"]["memoryLimitInBytes"] == str(
        96 << 20
    )
    run(cri, "stop", "-t", "1", cid)
    assert json.loads(run(cri, "inspect", cid))["status"]["state"] == "CONTAINER_EXITED"
    # logs -f of an exited container ends by itself with all of it.
    assert "line 1" in run(cri, "logs", "-f", cid)
    run(cri, "rm", cid)
    assert run(cri, "ps", "-a", "-q").strip() == ""
    run(cri, "stopp", sid)
    assert json.loads(run(cri, "inspectp", sid))["status"]["state"] == "SANDBOX_NOTREADY"
    run(cri, "rmp", sid)
    assert run(cri, "pods", "-q").strip() == ""

    # Images: pull (also with --creds), images, inspecti, imagefsinfo, rmi, rmi --prune, rmi -a.
    skopeo_push(build_layout(workdir / "oci"), registry, "crictl/app:1")
    ref = f"{registry.host}/crictl/app:1"
    run(cri, "pull", ref)
    skopeo_push(build_layout(workdir / "oci2", [{"priv.txt": b"private"}]), auth_registry, "priv:1")
    pref = f"{auth_registry.host}/priv:1"
    assert run(cri, "pull", pref, check=False).count("Image is up to date") == 0
    run(cri, "pull", "--creds", f"{USER}:{PASSWORD}", pref)
    listed = run(cri, "images")
    assert f"{registry.host}/crictl/app" in listed and f"{auth_registry.host}/priv" in listed
    assert ref in json.loads(run(cri, "inspecti", ref))["status"]["repoTags"]
    assert int(json.loads(run(cri, "imagefsinfo"))["status"]["usedBytes"]["value"]) > 0
    run(cri, "rmi", ref)
    assert f"{registry.host}/crictl/app" not in run(cri, "images")
    run(cri, "rmi", "--prune")  # nothing uses the rest: all unused images go
    assert f"{auth_registry.host}/priv" not in run(cri, "images")
    run(cri, "pull", ref)
    run(cri, "rmi", "-a")
    assert run(cri, "images", "-q").strip() == ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_get(port: int) -> bytes:
    """The start of httpd's answer through the forwarded port (b"" until it answers)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(64)
    except OSError:
        return b""
