"""Push, login/logout and credentials, multi-platform images and mirrors, against
real docker-registry instances (anonymous and htpasswd), checked with skopeo."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from podkit import errors
from tests.fixtures.registry import (
    PASSWORD,
    USER,
    RegistryServer,
    build_layout,
    find_in_snapshots,
    free_port,
    skopeo_inspect,
    skopeo_pull_dir,
    skopeo_push,
)
from tests.helpers import Daemon

# Whoever runs the tests: their docker logins stay out of it.
pytestmark = pytest.mark.usefixtures("no_docker_config")


def _two_layer(workdir: Path) -> Path:
    return build_layout(
        workdir / "oci",
        [
            {"etc": None, "etc/a.txt": b"a\n", "big.bin": os.urandom(200_000)},
            {"etc/b.txt": b"b\n"},
        ],
    )


def test_push_round_trip_checked_by_skopeo(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    skopeo_push(_two_layer(workdir), registry, "src/app:1")
    images = daemon.client().images
    images.pull(f"{registry.host}/src/app:1")
    images.tag(f"{registry.host}/src/app:1", f"{registry.host}/dst/app:2")
    seen: list[dict[str, Any]] = []
    result = images.push(f"{registry.host}/dst/app:2", progress=seen.append)
    src = skopeo_inspect(registry, "src/app:1")
    dst = skopeo_inspect(registry, "dst/app:2")
    assert result["digest"] == dst["Digest"] == src["Digest"]
    assert dst["Layers"] == src["Layers"]
    # Same registry, other repository: blobs are mounted, not uploaded again.
    assert {m["status"] for m in seen if "current" in m} == {"Preparing", "Mounted from src/app"}
    out = skopeo_pull_dir(registry, "dst/app:2", workdir / "dir")
    for layer in src["Layers"]:
        assert (out / layer.split(":")[1]).is_file()
    # Pushing again: everything is there already.
    seen.clear()
    images.push(f"{registry.host}/dst/app:2", progress=seen.append)
    assert "Layer already exists" in {m["status"] for m in seen}


def test_push_unknown_image_is_not_found(daemon: Daemon, registry: RegistryServer) -> None:
    r = daemon.cli("push", f"{registry.host}/nothing/here:1")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ")


def test_login_push_pull_logout_with_htpasswd(
    daemon: Daemon, registry: RegistryServer, auth_registry: RegistryServer, workdir: Path
) -> None:
    cfg_dir = workdir / "docker"
    env = {"DOCKER_CONFIG": str(cfg_dir)}
    host = auth_registry.host
    skopeo_push(_two_layer(workdir), registry, "pub:1")
    daemon.cli("pull", f"{registry.host}/pub:1", check=True)
    daemon.client().images.tag(f"{registry.host}/pub:1", f"{host}/priv:1")

    r = daemon.cli("push", f"{host}/priv:1", env=env)
    assert r.returncode == 1 and "podkit login" in r.stderr

    r = daemon.cli("login", "-u", USER, "--password-stdin", host, input=b"wrong\n", env=env)
    assert r.returncode == 1 and r.stderr.startswith("Error: ")
    assert not (cfg_dir / "config.json").exists()

    r = daemon.cli(
        "login", "-u", USER, "--password-stdin", host, input=PASSWORD.encode() + b"\n", env=env, check=True
    )
    assert "Login Succeeded" in r.stdout
    assert f"stored unencrypted in {cfg_dir / 'config.json'}" in r.stderr
    cfg = cfg_dir / "config.json"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert host in json.loads(cfg.read_text())["auths"]

    daemon.cli("push", f"{host}/priv:1", env=env, check=True)
    assert skopeo_inspect(auth_registry, "priv:1")["Digest"] == skopeo_inspect(registry, "pub:1")["Digest"]

    daemon.cli("rmi", f"{host}/priv:1", env=env)
    r = daemon.cli("pull", f"{host}/priv:1", env=env, check=True)
    assert r.stdout.splitlines()[-1] == f"{host}/priv:1"

    r = daemon.cli("logout", host, env=env, check=True)
    assert "Removing login credentials" in r.stdout
    assert host not in json.loads(cfg.read_text()).get("auths", {})
    r = daemon.cli("pull", f"{host}/priv:1", env=env)
    assert r.returncode == 1 and "denied" in r.stderr
    r = daemon.cli("logout", host, env=env, check=True)
    assert "Not logged in" in r.stdout


def test_sdk_auth_argument(
    daemon: Daemon, auth_registry: RegistryServer, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(workdir / "empty"))
    skopeo_push(build_layout(workdir / "oci"), auth_registry, "sdk:1")
    images = daemon.client().images
    with pytest.raises(errors.Unauthorized):
        images.pull(f"{auth_registry.host}/sdk:1")
    img = images.pull(f"{auth_registry.host}/sdk:1", auth={"username": USER, "password": PASSWORD})
    assert img.name == f"{auth_registry.host}/sdk:1"


def test_multi_platform_index(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    layout = build_layout(
        workdir / "oci",
        platforms=[
            ("amd64", [{"arch.txt": b"amd64\n"}]),
            ("arm64/v8", [{"arch.txt": b"arm64\n", "only-arm.txt": b"x"}]),
        ],
    )
    skopeo_push(layout, registry, "multi:1", all_platforms=True)
    index_digest = skopeo_inspect(registry, "multi:1", raw=False)["Digest"]
    images = daemon.client().images
    with pytest.raises(errors.InvalidArgument) as ei:
        images.pull(f"{registry.host}/multi:1", platform="linux/s390x")
    assert "linux/s390x" in ei.value.message and "available" in ei.value.message

    host_img = images.pull(f"{registry.host}/multi:1")
    assert host_img.digest == index_digest  # the name points at the whole index
    assert not find_in_snapshots(daemon.root, "only-arm.txt")

    r = daemon.cli("pull", "--platform", "linux/arm64", f"{registry.host}/multi:1", check=True)
    assert "Pull complete" in r.stdout
    assert find_in_snapshots(daemon.root, "only-arm.txt")

    # The same as a Docker manifest list.
    skopeo_push(layout, registry, "multi:list", all_platforms=True, docker_format=True)
    raw = skopeo_inspect(registry, "multi:list", raw=True)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    img = images.pull(f"{registry.host}/multi:list")
    assert img.media_type == raw["mediaType"]

    # Push the index-pulled image elsewhere: all platforms are now in the store.
    images.pull(f"{registry.host}/multi:1")
    images.tag(f"{registry.host}/multi:1", f"{registry.host}/copy:1")
    images.push(f"{registry.host}/copy:1")
    raw = skopeo_inspect(registry, "copy:1", raw=True)
    assert raw["mediaType"].endswith("index.v1+json") and len(raw["manifests"]) == 2


def test_mirror_is_used_first(registry: RegistryServer, workdir: Path) -> None:
    layout = build_layout(workdir / "oci")
    skopeo_push(layout, registry, "mirrored/app:1")
    skopeo_push(layout, registry, "library/busybox:latest")
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    (workdir / "m").mkdir()
    d = Daemon(
        workdir / "m",
        extra_config=(
            f'[registries]\nmax_concurrent_downloads = 2\n\n[registries."{dead}"]\n'
            f'mirrors = ["{registry.host}"]\n\n'
            f'[registries."docker.io"]\nmirrors = ["{registry.host}"]\n'
        ),
    ).start()
    try:
        img = d.client().images.pull(f"{dead}/mirrored/app:1")
        assert img.name == f"{dead}/mirrored/app:1"
        # Docker Hub names through a mirror, as a pull-through cache is used.
        assert d.client().images.pull("busybox").name == "docker.io/library/busybox:latest"
        r = d.cli("push", f"{dead}/mirrored/app:1")  # pushes never go to mirrors
        assert r.returncode == 1 and "Error:" in r.stderr
    finally:
        d.stop()


@pytest.mark.root
def test_bad_registry_config_is_refused(workdir: Path) -> None:
    d = Daemon(workdir, extra_config='[registries."h:1"]\nmirors = ["x"]\n')
    with pytest.raises(AssertionError) as ei:
        d.start(timeout=10)
    assert "unknown keys" in str(ei.value)


def test_push_mounts_from_where_blobs_came_from(
    daemon: Daemon, registry: RegistryServer, workdir: Path
) -> None:
    """The pull's source repository is remembered per blob: after the original name is
    gone, a push to another repository of that registry still mounts instead of uploading."""
    skopeo_push(_two_layer(workdir), registry, "origin/app:1")
    images = daemon.client().images
    images.pull(f"{registry.host}/origin/app:1")
    images.tag(f"{registry.host}/origin/app:1", f"{registry.host}/elsewhere/app:1")
    images.remove(f"{registry.host}/origin/app:1")
    seen: list[dict[str, Any]] = []
    images.push(f"{registry.host}/elsewhere/app:1", progress=seen.append)
    done = {m["status"] for m in seen if m.get("status", "").startswith(("Mounted", "Pushed"))}
    assert done == {"Mounted from origin/app"}
    assert registry.requests("PATCH", "/v2/elsewhere/app/blobs/uploads/") == 0
    assert registry.requests("PUT", "/v2/elsewhere/app/blobs/uploads/") == 0


def test_token_registry_through_the_daemon(
    daemon: Daemon, token_registry: RegistryServer, workdir: Path
) -> None:
    """Anonymous pull and authenticated push via Bearer tokens, CLI to registry."""
    env = {"DOCKER_CONFIG": str(workdir / "docker")}
    host = token_registry.host
    skopeo_push(build_layout(workdir / "oci"), token_registry, "hub/app:1")
    daemon.cli("pull", f"{host}/hub/app:1", env=env, check=True)
    daemon.client().images.tag(f"{host}/hub/app:1", f"{host}/hub/copy:1")
    r = daemon.cli("push", f"{host}/hub/copy:1", env=env)
    assert r.returncode == 1 and "denied" in r.stderr
    daemon.cli("login", "-u", USER, "-p", PASSWORD, host, env=env, check=True)
    r = daemon.cli("push", f"{host}/hub/copy:1", env=env, check=True)
    assert "Mounted from hub/app" in r.stdout
    assert token_registry.token is not None
    assert {
        "user": USER,
        "scopes": ["repository:hub/copy:pull,push", "repository:hub/app:pull"],
        "service": ["podkit-test-registry"],
    } in token_registry.token.requests
    assert (
        skopeo_inspect(token_registry, "hub/copy:1")["Digest"]
        == skopeo_inspect(token_registry, "hub/app:1")["Digest"]
    )


_HELPER = """#!/usr/bin/env python3
# A docker credential helper for tests: keeps secrets as files in $PODKIT_TEST_CREDS.
import json, os, sys, urllib.parse
d = os.environ["PODKIT_TEST_CREDS"]
action, data = sys.argv[1], sys.stdin.read().strip()
if action == "store":
    c = json.loads(data)
    open(os.path.join(d, urllib.parse.quote(c["ServerURL"], safe="")), "w").write(json.dumps(c))
elif action == "get":
    p = os.path.join(d, urllib.parse.quote(data, safe=""))
    if not os.path.exists(p):
        print("credentials not found in native keychain")
        sys.exit(1)
    print(open(p).read())
elif action == "erase":
    os.unlink(os.path.join(d, urllib.parse.quote(data, safe="")))
"""


def test_credential_helper(daemon: Daemon, auth_registry: RegistryServer, workdir: Path) -> None:
    """credsStore in the docker config: secrets go through docker-credential-<name>."""
    bindir, creds, cfg_dir = workdir / "bin", workdir / "creds", workdir / "docker"
    for d in (bindir, creds, cfg_dir):
        d.mkdir()
    helper = bindir / "docker-credential-podkittest"
    helper.write_text(_HELPER)
    helper.chmod(0o755)
    (cfg_dir / "config.json").write_text(json.dumps({"credsStore": "podkittest"}))
    env = {
        "DOCKER_CONFIG": str(cfg_dir),
        "PODKIT_TEST_CREDS": str(creds),
        "PATH": f"{bindir}:{os.environ['PATH']}",
    }
    host = auth_registry.host
    skopeo_push(build_layout(workdir / "oci"), auth_registry, "helped:1")

    daemon.cli("login", "-u", USER, "--password-stdin", host, input=PASSWORD.encode(), env=env, check=True)
    cfg = json.loads((cfg_dir / "config.json").read_text())
    assert cfg["auths"][host] == {} and PASSWORD not in (cfg_dir / "config.json").read_text()
    assert len(list(creds.iterdir())) == 1
    daemon.cli("pull", f"{host}/helped:1", env=env, check=True)
    daemon.cli("logout", host, env=env, check=True)
    assert not list(creds.iterdir())
    r = daemon.cli("pull", f"{host}/helped:1", env=env)
    assert r.returncode == 1 and "denied" in r.stderr


def test_push_imported_image_then_pull_it_elsewhere(
    daemon: Daemon, registry: RegistryServer, workdir: Path
) -> None:
    """An image that never came from a registry (imported rootfs) goes up whole: skopeo
    reads it back and a second, empty daemon pulls and unpacks it."""
    from tests.fixtures.registry import layer_tar

    tarball = workdir / "rootfs.tar"
    tarball.write_bytes(layer_tar({"etc": None, "etc/imported.txt": b"from a tarball\n"}))
    ref = f"{registry.host}/imported/app:1"
    daemon.client().images.import_(str(tarball), name=ref, changes=['CMD ["/bin/true"]'])
    result = daemon.client().images.push(ref)
    assert skopeo_inspect(registry, "imported/app:1")["Digest"] == result["digest"]
    (workdir / "other").mkdir()
    other = Daemon(workdir / "other").start()
    try:
        img = other.client().images.pull(ref)
        assert img.config["config"]["Cmd"] == ["/bin/true"]
        assert find_in_snapshots(other.root, "etc/imported.txt")
    finally:
        other.stop()


def test_all_platforms_pull_then_push_the_whole_index(
    daemon: Daemon, registry: RegistryServer, workdir: Path
) -> None:
    layout = build_layout(
        workdir / "oci",
        platforms=[
            ("amd64", [{"arch.txt": b"amd64\n"}]),
            ("arm64/v8", [{"arch.txt": b"arm64\n", "only-arm.txt": b"x"}]),
            ("ppc64le", [{"arch.txt": b"ppc\n"}]),
        ],
    )
    skopeo_push(layout, registry, "all:1", all_platforms=True)
    r = daemon.cli("pull", "--all-platforms", f"{registry.host}/all:1", check=True)
    assert r.stdout.count("Pull complete") == 1  # only the host's platform is unpacked
    assert not find_in_snapshots(daemon.root, "only-arm.txt")
    images = daemon.client().images
    images.tag(f"{registry.host}/all:1", f"{registry.host}/all-copy:1")
    images.push(f"{registry.host}/all-copy:1")
    raw = skopeo_inspect(registry, "all-copy:1", raw=True)
    assert len(raw["manifests"]) == 3
    assert skopeo_inspect(registry, "all-copy:1")["Digest"] == skopeo_inspect(registry, "all:1")["Digest"]


def test_manifest_inspect_without_pulling(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    layout = build_layout(workdir / "oci", platforms=[("amd64", [{"a": b"a"}]), ("arm64/v8", [{"b": b"b"}])])
    skopeo_push(layout, registry, "look:multi", all_platforms=True)
    skopeo_push(build_layout(workdir / "one"), registry, "look:one")
    r = daemon.cli("manifest", "inspect", f"{registry.host}/look:multi", check=True)
    assert json.loads(r.stdout) == skopeo_inspect(registry, "look:multi", raw=True)
    info = daemon.client().images.remote_inspect(f"{registry.host}/look:one")
    assert info["platforms"] == ["linux/amd64"]
    assert info["descriptor"]["digest"] == skopeo_inspect(registry, "look:one")["Digest"]
    r = daemon.cli("manifest", "inspect", "-v", f"{registry.host}/look:multi", check=True)
    assert json.loads(r.stdout)["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert daemon.client().images.list() == []  # nothing was pulled
    r = daemon.cli("manifest", "inspect", f"{registry.host}/look:none")
    assert r.returncode == 1 and r.stderr.startswith("Error: ")


def test_missing_credential_helper_still_pulls_anonymously(
    daemon: Daemon, registry: RegistryServer, workdir: Path
) -> None:
    cfg_dir = workdir / "docker"
    cfg_dir.mkdir()
    (cfg_dir / "config.json").write_text(json.dumps({"credsStore": "not-installed-anywhere"}))
    skopeo_push(build_layout(workdir / "oci"), registry, "anon:1")
    r = daemon.cli("pull", f"{registry.host}/anon:1", env={"DOCKER_CONFIG": str(cfg_dir)}, check=True)
    assert r.stdout.splitlines()[-1] == f"{registry.host}/anon:1"
    r = daemon.cli("login", "-u", "u", "-p", "p", registry.host, env={"DOCKER_CONFIG": str(cfg_dir)})
    assert r.returncode == 1 and "docker-credential-not-installed-anywhere" in r.stderr


def test_tls_registry_through_daemon_config(tls_registry: RegistryServer, workdir: Path) -> None:
    """[registries."host"] ca_file (or insecure) as the daemon reads it from its config."""
    host = tls_registry.host
    skopeo_push(build_layout(workdir / "oci"), tls_registry, "secure:1")
    (workdir / "t").mkdir()
    d = Daemon(
        workdir / "t",
        extra_config=(f'[registries."{host}"]\nplain_http = false\nca_file = "{tls_registry.cert}"\n'),
    ).start()
    try:
        assert d.client().images.pull(f"{host}/secure:1").name == f"{host}/secure:1"
        d.client().images.tag(f"{host}/secure:1", f"{host}/secure:2")
        d.client().images.push(f"{host}/secure:2")
    finally:
        d.stop()
    digests = {skopeo_inspect(tls_registry, f"secure:{t}")["Digest"] for t in (1, 2)}
    assert len(digests) == 1
    # insecure: aiohttp's shared context of ssl=False, made without a CA store in podkitd
    # (podkit/daemon/memory.py), still talks TLS to a certificate nobody vouches for.
    (workdir / "i").mkdir()
    d = Daemon(
        workdir / "i", extra_config=f'[registries."{host}"]\nplain_http = false\ninsecure = true\n'
    ).start()
    try:
        assert d.client().images.pull(f"{host}/secure:2").name == f"{host}/secure:2"
    finally:
        d.stop()
        d.drop_host_network()


def test_login_to_an_open_registry(daemon: Daemon, registry: RegistryServer, workdir: Path) -> None:
    """A registry that asks for no credentials accepts any login, as with docker."""
    env = {"DOCKER_CONFIG": str(workdir / "docker")}
    r = daemon.cli(
        "login", "-u", "anyone", "--password-stdin", registry.host, input=b"x\n", env=env, check=True
    )
    assert "Login Succeeded" in r.stdout
    r = daemon.cli(
        "login", "-u", "anyone", "--password-stdin", f"127.0.0.1:{free_port()}", input=b"x\n", env=env
    )
    assert r.returncode == 1 and "cannot connect" in r.stderr
