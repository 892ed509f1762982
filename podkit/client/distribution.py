"""Registry operations of the SDK (pull, push, login, logout), mixed into ``ImagesAPI``.

Credentials live where docker keeps them, ``~/.docker/config.json`` (or
``$DOCKER_CONFIG/config.json``): ``login`` writes an ``auths`` entry there (mode
0600) — or, when the config names a credential helper (``credHelpers`` for the
registry, else ``credsStore``), hands the secret to ``docker-credential-<name>`` —
and ``pull``/``push`` send the credentials for the image's registry to the daemon
in the ``X-Registry-Auth`` header, as the docker CLI does.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from podkit import errors
from podkit.client._json import JSONObject
from podkit.client._transport import Transport

if TYPE_CHECKING:
    from podkit.client.images import Image

# Called with each progress line of a pull or push ({"status", "id", "current", ...}).
Progress = Callable[[JSONObject], None]

HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = (
    HUB_KEY,
    "index.docker.io",
    "docker.io",
    "registry-1.docker.io",
    "https://index.docker.io/v1",
    "https://registry-1.docker.io",
)


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(base) / "config.json"


def registry_host(text: str) -> str:
    """'https://index.docker.io/v1/' -> 'docker.io'; 'http://h:5000/x' -> 'h:5000'."""
    host = text.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0]
    if not host:
        raise errors.InvalidArgument(f"invalid registry address {text!r}")
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host


def _keys(host: str) -> tuple[str, ...]:
    if host == "docker.io":
        return _HUB_ALIASES
    return (
        host,
        f"https://{host}",
        f"http://{host}",
        f"https://{host}/",
        f"http://{host}/",
        f"https://{host}/v2/",
        f"http://{host}/v2/",
    )


def _read_config(path: Path) -> JSONObject:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise errors.InvalidArgument(f"{path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise errors.InvalidArgument(f"{path} does not hold a JSON object")
    return data


def _write_config(path: Path, data: JSONObject) -> None:
    """Atomically, readable by the owner only (it holds passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".config.json.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent="\t")
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _helper_for(data: JSONObject, host: str) -> str | None:
    """The credential helper docker would use for a registry (credHelpers, else credsStore)."""
    helpers = data.get("credHelpers") or {}
    for key in _keys(host):
        helper = helpers.get(key)
        if isinstance(helper, str) and helper:
            return helper
    store = data.get("credsStore")
    return store if isinstance(store, str) and store else None


def credential_store(host: str, path: Path | None = None) -> str:
    """Where a login to ``host`` keeps the secret: 'docker-credential-<name>' or the file."""
    p = path or docker_config_path()
    helper = _helper_for(_read_config(p), host)
    return f"docker-credential-{helper}" if helper else str(p)


def _run_helper(name: str, action: str, payload: str) -> str:
    """Speak docker's credential-helper protocol with ``docker-credential-<name>``."""
    import shutil
    import subprocess

    exe = shutil.which(f"docker-credential-{name}")
    if exe is None:
        raise errors.Unavailable(
            f"docker config names the credential helper {name!r}, but docker-credential-{name} "
            "is not installed"
        )
    r = subprocess.run([exe, action], input=payload, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        msg = (r.stdout or r.stderr).strip()
        if action == "get" and "credentials not found" in msg.lower():
            return ""
        raise errors.Unavailable(f"docker-credential-{name} {action} failed: {msg or r.returncode}")
    return r.stdout


def stored_auth(host: str, path: Path | None = None) -> dict[str, str] | None:
    """The stored credentials for a registry as {"username","password"} or {"identitytoken"}:
    from its credential helper when the docker config names one, else from ``auths``."""
    data = _read_config(path or docker_config_path())
    helper = _helper_for(data, host)
    if helper is not None:
        out = _run_helper(helper, "get", HUB_KEY if host == "docker.io" else host)
        if not out.strip():
            return None
        try:
            got = json.loads(out)
        except ValueError:
            raise errors.Unavailable(f"docker-credential-{helper} answered something not JSON") from None
        if got.get("Username") == "<token>":  # docker's convention for identity tokens
            return {"identitytoken": got.get("Secret", "")}
        return {"username": got.get("Username", ""), "password": got.get("Secret", "")}
    auths = data.get("auths") or {}
    for key in _keys(host):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return {"identitytoken": entry["identitytoken"]}
        user, pw = entry.get("username", ""), entry.get("password", "")
        if entry.get("auth") and not user:
            try:
                user, _, pw = base64.b64decode(entry["auth"]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise errors.InvalidArgument(
                    f"{path or docker_config_path()}: the entry for {key} is not base64 of user:password"
                ) from None
        if user:
            return {"username": user, "password": pw}
    return None


def encode_auth(auth: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(auth).encode()).decode()


class DistributionMixin:
    _t: Transport

    def _auth_headers(self, ref: str, auth: dict[str, str] | None) -> dict[str, str]:
        from podkit.images.reference import parse  # stdlib-only module; parsed lazily

        host = parse(ref).registry
        if auth is not None:
            creds: dict[str, str] | None = auth
        else:
            try:
                creds = stored_auth(host)
            except errors.Unavailable:
                # A credential helper named in the config is missing or failing: go
                # anonymously; a registry that wants credentials says so, with a hint.
                creds = None
        return {"X-Registry-Auth": encode_auth(creds)} if creds else {}

    def pull(
        self,
        ref: str,
        platform: str | None = None,
        progress: Progress | None = None,
        auth: dict[str, str] | None = None,
        all_platforms: bool = False,
    ) -> Image:
        """Pull an image; ``progress`` gets each progress dict. Returns the ``Image``.

        ``auth`` ({"username","password"}) overrides the stored credentials;
        ``all_platforms`` fetches every platform of a multi-platform image (the
        host's, or ``platform``, is the one unpacked).
        """
        body: JSONObject = {"reference": ref}
        if platform:
            body["platform"] = platform
        if all_platforms:
            body["all_platforms"] = True
        final: JSONObject | None = None
        for line in self._t.stream(
            "POST", "/images/pull", json_body=body, headers=self._auth_headers(ref, auth)
        ):
            if line.get("status") == "done" and "image" in line:
                final = line["image"]
            elif progress is not None:
                progress(line)
        if final is None:
            raise errors.Unavailable(f"pull of {ref}: the daemon ended the stream without a result")
        from podkit.client.images import Image

        return Image.from_dict(final)

    def push(
        self, ref: str, progress: Progress | None = None, auth: dict[str, str] | None = None
    ) -> JSONObject:
        """Push an image; returns {"name", "digest", "size", "media_type"}."""
        final: JSONObject | None = None
        for line in self._t.stream(
            "POST", "/images/push", json_body={"reference": ref}, headers=self._auth_headers(ref, auth)
        ):
            if line.get("status") == "done":
                final = {k: v for k, v in line.items() if k != "status"}
            elif progress is not None:
                progress(line)
        if final is None:
            raise errors.Unavailable(f"push of {ref}: the daemon ended the stream without a result")
        return final

    def remote_inspect(self, ref: str, auth: dict[str, str] | None = None) -> JSONObject:
        """What the registry holds under ``ref``, without pulling it:
        {"name", "descriptor", "platforms", "manifest"} (``manifest``: the manifest or
        index as the registry serves it)."""
        out: JSONObject = self._t.get(
            "/distribution/inspect", params={"ref": ref}, headers=self._auth_headers(ref, auth)
        )
        return out

    def login(
        self,
        registry: str,
        username: str,
        password: str,
        *,
        config_path: str | os.PathLike[str] | None = None,
    ) -> None:
        """Check the credentials with the registry (through the daemon), then store them."""
        host = registry_host(registry)
        if not username or not password:
            raise errors.InvalidArgument("login needs a username and a password")
        self._t.post(
            "/auth/login", json_body={"serveraddress": host, "username": username, "password": password}
        )
        path = Path(config_path) if config_path else docker_config_path()
        data = _read_config(path)
        auths = data.setdefault("auths", {})
        for key in _keys(host):
            auths.pop(key, None)
        key = HUB_KEY if host == "docker.io" else host
        helper = _helper_for(data, host)
        if helper is not None:
            # As docker does: the secret goes to the helper, config.json only notes the registry.
            _run_helper(
                helper, "store", json.dumps({"ServerURL": key, "Username": username, "Secret": password})
            )
            auths[key] = {}
        else:
            auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
        _write_config(path, data)

    def logout(self, registry: str, *, config_path: str | os.PathLike[str] | None = None) -> bool:
        """Forget stored credentials; False when there were none."""
        host = registry_host(registry)
        path = Path(config_path) if config_path else docker_config_path()
        data = _read_config(path)
        auths = data.get("auths") or {}
        removed = [k for k in _keys(host) if auths.pop(k, None) is not None]
        helper = _helper_for(data, host)
        if helper is not None and removed:
            _run_helper(helper, "erase", HUB_KEY if host == "docker.io" else host)
        if removed:
            _write_config(path, data)
        return bool(removed)
