"""Container operations of the SDK that need no data classes (the CLI's fast path).

``ContainersAPI`` (podkit.client.containers) extends this with typed results; the CLI
uses ``ContainerOps`` directly for lifecycle commands so that a ``podkit stop`` does not
pay for importing ``dataclasses``.
"""

from __future__ import annotations

from podkit.client._json import JSONObject
from podkit.client._json import dumps as json_dumps
from podkit.client._json import loads as json_loads
from podkit.client._transport import Transport

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from typing import BinaryIO

    from podkit.client._ws import WebSocket


class ContainerOps:
    def __init__(self, t: Transport) -> None:
        self._t = t

    def start(self, ref: str) -> None:
        self._t.post(f"/containers/{ref}/start")

    def stop(self, ref: str, timeout: int | None = None, signal: str | int | None = None) -> None:
        """``signal`` replaces the container's stop signal for this stop (``stop -s``)."""
        self._t.post(f"/containers/{ref}/stop", params={"timeout": timeout, "signal": signal}, timeout=None)

    def kill(self, ref: str, signal: str | int = "KILL") -> None:
        self._t.post(f"/containers/{ref}/kill", params={"signal": signal})

    def restart(self, ref: str, timeout: int | None = None, signal: str | int | None = None) -> None:
        self._t.post(
            f"/containers/{ref}/restart", params={"timeout": timeout, "signal": signal}, timeout=None
        )

    def pause(self, ref: str) -> None:
        self._t.post(f"/containers/{ref}/pause")

    def unpause(self, ref: str) -> None:
        self._t.post(f"/containers/{ref}/unpause")

    def rename(self, ref: str, new_name: str) -> None:
        self._t.post(f"/containers/{ref}/rename", params={"name": new_name})

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        self._t.delete(f"/containers/{ref}", params={"force": force, "volumes": volumes}, timeout=None)

    def wait(self, ref: str, condition: str = "not-running", timeout: float | None = None) -> int:
        """Block until the container stops (or, ``condition="removed"``, is removed); its exit code."""
        out: JSONObject = self._t.post(
            f"/containers/{ref}/wait", params={"condition": condition}, timeout=timeout
        )
        return int(out["exit_code"])

    def update(self, ref: str, **resources: str | int | float | None) -> None:
        """Change resource limits: ``memory="64m"``, ``cpus=0.5``, ``pids_limit=100``, ..."""
        self._t.post(f"/containers/{ref}/update", json_body=resources)

    def prune(self, filters: dict[str, list[str]] | None = None) -> list[str]:
        """Remove stopped containers; ``filters``: until, label, label! (docker's)."""
        out: JSONObject = self._t.post("/containers/prune", params={"filters": filters or None})
        removed: list[str] = out["removed"]
        return removed

    def inspect(self, ref: str) -> JSONObject:
        out: JSONObject = self._t.get(f"/containers/{ref}")
        return out

    def top(self, ref: str, ps_args: str | None = None) -> JSONObject:
        """{"titles": [...], "processes": [[...], ...]}, as ps shows them."""
        out: JSONObject = self._t.get(f"/containers/{ref}/top", params={"ps_args": ps_args})
        return out

    def port(self, ref: str) -> list[JSONObject]:
        out: list[JSONObject] = self._t.get(f"/containers/{ref}/port")
        return out

    def exec_create(
        self,
        ref: str,
        cmd: list[str] | str,
        *,
        env: list[str] | None = None,
        user: str | None = None,
        workdir: str | None = None,
        tty: bool = False,
        stdin: bool = False,
        privileged: bool = False,
        console_size: tuple[int, int] | None = None,
    ) -> str:
        if isinstance(cmd, str):
            import shlex

            cmd = shlex.split(cmd)
        body: JSONObject = {
            "cmd": cmd,
            "env": env or [],
            "user": user,
            "workdir": workdir,
            "tty": tty,
            "stdin": stdin,
            "privileged": privileged,
        }
        if console_size:
            body["console_size"] = list(console_size)
        out: JSONObject = self._t.post(f"/containers/{ref}/exec", json_body=body)
        eid: str = out["id"]
        return eid

    def exec_inspect(self, exec_id: str) -> JSONObject:
        out: JSONObject = self._t.get(f"/exec/{exec_id}")
        return out

    def exec_socket(self, exec_id: str, detach_keys: str | None = None) -> WebSocket:
        from podkit.client._ws import WebSocket

        return WebSocket.connect(
            self._t.socket_path,
            f"/v1/exec/{exec_id}/ws",
            params={"detach_keys": detach_keys},
            headers={"X-Podkit-Namespace": self._t.namespace},
        )

    def attach_socket(
        self,
        ref: str,
        *,
        stdin: bool = False,
        logs: bool = False,
        start: bool = False,
        detach_keys: str | None = None,
        removed: bool = True,
    ) -> WebSocket:
        """A WebSocket on the container's stdio (see podkit.client._ws for the framing).

        ``start=True`` starts the container once attached, so no output is missed.
        ``removed=False``: an auto_remove container's socket ends with its exit code as
        soon as its removal is under way, not once it is done."""
        from podkit.client._ws import WebSocket

        params: dict[str, object] = {"stdin": stdin, "logs": logs, "start": start, "detach_keys": detach_keys}
        if not removed:
            params["removed"] = False
        return WebSocket.connect(
            self._t.socket_path,
            f"/v1/containers/{ref}/attach",
            params=params,
            headers={"X-Podkit-Namespace": self._t.namespace},
        )

    def stream_archive(self, ref: str, path: str, out: BinaryIO, follow_link: bool = False) -> JSONObject:
        conn, resp = self._t.open(
            "GET",
            f"/containers/{ref}/archive",
            params={"path": path, "follow_link": follow_link or None},
            timeout=None,
        )
        try:
            stat: JSONObject = json_loads(resp.getheader("X-Podkit-Path-Stat") or "{}")
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
            return stat
        finally:
            conn.close()

    def put_archive(self, ref: str, path: str, data: bytes | BinaryIO, copy_uid_gid: bool = True) -> None:
        """Extract a tar into the container at ``path`` (a directory): owned as the tar
        says, or by the container's root with ``copy_uid_gid=False`` (``cp`` without -a)."""
        self._t.request(
            "PUT",
            f"/containers/{ref}/archive",
            params={"path": path, "copy_uid_gid": copy_uid_gid},
            body=data,
            headers={"Content-Type": "application/x-tar"},
            timeout=None,
        )

    def get_archive(self, ref: str, path: str, follow_link: bool = False) -> tuple[bytes, JSONObject]:
        """A tar of ``path`` in the container and the path's stat (name, size, mode, ...); a
        symlink there comes as the link, or as what it points to with ``follow_link``."""
        conn, resp = self._t.open(
            "GET",
            f"/containers/{ref}/archive",
            params={"path": path, "follow_link": follow_link or None},
            timeout=None,
        )
        try:
            stat: JSONObject = json_loads(resp.getheader("X-Podkit-Path-Stat") or "{}")
            return resp.read(), stat
        finally:
            conn.close()

    def commit(
        self,
        ref: str,
        name: str | None = None,
        *,
        message: str = "",
        author: str = "",
        changes: list[str] | None = None,
        pause: bool = True,
    ) -> JSONObject:
        """An image from the container's changes: {"id": config digest, "name": ...}."""
        out: JSONObject = self._t.post(
            f"/containers/{ref}/commit",
            params={
                "name": name,
                "message": message or None,
                "author": author or None,
                "changes": json_dumps(changes) if changes else None,
                "pause": pause,
            },
            timeout=None,
        )
        return out

    def diff(self, ref: str) -> list[JSONObject]:
        """The container's changes: [{"Path": ..., "Kind": 0 changed | 1 added | 2 deleted}]."""
        out: list[JSONObject] = self._t.get(f"/containers/{ref}/changes", timeout=None)
        return out

    def export(self, ref: str, out: BinaryIO) -> None:
        """Write the container's whole file system to ``out`` as a tar."""
        conn, resp = self._t.open("GET", f"/containers/{ref}/export", timeout=None)
        try:
            while True:
                chunk = resp.read(1 << 16)
                if not chunk:
                    break
                out.write(chunk)
        finally:
            conn.close()
