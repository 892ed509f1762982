"""A CNI 1.0 runtime: runs plugin lists (ADD/DEL/CHECK) against a network namespace.

Per the spec each plugin of a list is an executable found on ``CNI_PATH``, given
the operation in ``CNI_*`` variables and its network config on stdin. ADD runs
the list in order, handing each plugin the previous one's result as
``prevResult``; DEL runs it in reverse with the cached ADD result as
``prevResult``; CHECK runs in order with it. ``runtimeConfig`` carries the
dynamic parts (port mappings) to the plugins that declare the matching
capability. The ADD result and the config used are cached on disk so that DEL
works after a daemon restart, even if the network was changed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from podkit.errors import Internal, InvalidArgument, NotFound, Unavailable

log = logging.getLogger(__name__)

CNI_VERSION = "1.0.0"
DEFAULT_PLUGIN_DIRS = ["/usr/lib/cni", "/opt/cni/bin"]

# Well-known error codes of the spec, for messages.
_CODES = {
    1: "incompatible CNI version",
    2: "unsupported field in network configuration",
    3: "container unknown or does not exist",
    4: "invalid necessary environment variables",
    5: "I/O failure",
    6: "failed to decode content",
    7: "invalid network config",
    11: "try again later",
}
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.+-]")


class CNIError(Internal):
    """A plugin failed; carries the plugin's code, msg and details."""

    def __init__(
        self, message: str, *, plugin: str = "", cni_code: int = 0, msg: str = "", details: str = ""
    ) -> None:
        super().__init__(
            message, details={"plugin": plugin, "cni_code": cni_code, "msg": msg, "details": details}
        )
        self.plugin = plugin
        self.cni_code = cni_code
        self.msg = msg


class CNI:
    """Runs CNI plugin lists. Stateless apart from the result cache directory."""

    def __init__(
        self,
        plugin_dirs: list[str] | None = None,
        cache_dir: str | Path = "/run/podkit/cni",
        timeout: float = 60.0,
    ) -> None:
        self.plugin_dirs = [str(d) for d in (plugin_dirs or DEFAULT_PLUGIN_DIRS)]
        self.cache_dir = Path(cache_dir) / "results"
        self.timeout = timeout

    # -- plugins -----------------------------------------------------------------

    def find_plugin(self, type_: str) -> str:
        if not type_ or "/" in type_:
            raise InvalidArgument(f"invalid CNI plugin type {type_!r}")
        for d in self.plugin_dirs:
            p = os.path.join(d, type_)
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
        raise Unavailable(
            f"CNI plugin {type_!r} not found in {':'.join(self.plugin_dirs)} "
            "(install containernetworking-plugins or set [network] cni_plugin_dirs)"
        )

    async def version(self, type_: str) -> dict[str, Any]:
        out = await self._exec(type_, "VERSION", {}, "", "", "", "", {"cniVersion": CNI_VERSION})
        return out or {}

    async def _exec(
        self,
        type_: str,
        command: str,
        conf: dict[str, Any],
        container_id: str,
        netns: str,
        ifname: str,
        args: str,
        stdin_conf: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        path = self.find_plugin(type_)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": ":".join(self.plugin_dirs),
        }
        if args:
            env["CNI_ARGS"] = args
        payload = json.dumps(stdin_conf if stdin_conf is not None else conf).encode()
        proc = await asyncio.create_subprocess_exec(
            path,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            # What plugins write (host-local's leases: container ids and addresses) is
            # for root alone.
            umask=0o077,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(payload), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise Internal(f"CNI plugin {type_} {command} timed out after {self.timeout:.0f}s") from None
        log.debug("CNI %s %s %s", type_, command, container_id)
        if proc.returncode != 0:
            raise self._error(type_, command, conf.get("name", ""), out, err, proc.returncode)
        if not out.strip():
            return None
        try:
            result: dict[str, Any] = json.loads(out)
        except ValueError:
            raise Internal(
                f"CNI plugin {type_} {command} printed a result that is not JSON: {out[:200]!r}"
            ) from None
        return result

    @staticmethod
    def _error(type_: str, command: str, network: str, out: bytes, err: bytes, rc: int | None) -> CNIError:
        code, msg, details = 0, "", ""
        try:
            obj = json.loads(out)
            code = int(obj.get("code", 0))
            msg = str(obj.get("msg", ""))
            details = str(obj.get("details", ""))
        except (ValueError, AttributeError, TypeError):
            msg = (err or out).decode(errors="replace").strip() or f"exit status {rc}"
        what = msg or _CODES.get(code, f"error code {code}")
        text = f"CNI plugin {type_} failed ({command}) on network {network!r}: {what}"
        if details:
            text += f" ({details})"
        return CNIError(text, plugin=type_, cni_code=code, msg=msg, details=details)

    # -- plugin lists ------------------------------------------------------------

    @staticmethod
    def _plugin_conf(
        conflist: dict[str, Any],
        plugin: dict[str, Any],
        runtime_config: dict[str, Any],
        prev: dict[str, Any] | None,
    ) -> dict[str, Any]:
        conf = dict(plugin)
        conf["cniVersion"] = conflist.get("cniVersion", CNI_VERSION)
        conf["name"] = conflist["name"]
        caps = plugin.get("capabilities") or {}
        rc = {k: v for k, v in runtime_config.items() if caps.get(k)}
        if rc:
            conf["runtimeConfig"] = rc
        else:
            conf.pop("runtimeConfig", None)
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def _cache_path(self, network: str, container_id: str, ifname: str) -> Path:
        # '+' is in no network name, so "a-b"+"c" and "a"+"b-c" cannot meet.
        key = _SAFE_ID.sub("_", f"{network}+{container_id}+{ifname}")
        return self.cache_dir / f"{key}.json"

    def cached(self, network: str, container_id: str, ifname: str) -> dict[str, Any] | None:
        try:
            entry: dict[str, Any] = json.loads(self._cache_path(network, container_id, ifname).read_text())
        except (OSError, ValueError):
            return None
        return entry

    def _write_cache(self, network: str, container_id: str, ifname: str, entry: dict[str, Any]) -> None:
        p = self._cache_path(network, container_id, ifname)
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = p.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(entry))  # json.dump encodes in Python, dumps in C
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)

    def sweep_temp(self) -> int:
        """Remove the temp files of cache writes a crash cut short; at start, before any."""
        n = 0
        if self.cache_dir.is_dir():
            for p in self.cache_dir.glob("*.tmp"):
                try:
                    p.unlink()
                    n += 1
                except FileNotFoundError:
                    pass
                except OSError as e:
                    log.warning("cannot remove CNI cache temp file %s: %s", p, e)
        return n

    def forget(self, network: str, container_id: str, ifname: str) -> None:
        """Drop a cached attachment without DEL (its owner is gone and DEL failed)."""
        self._drop_cache(network, container_id, ifname)

    def _drop_cache(self, network: str, container_id: str, ifname: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._cache_path(network, container_id, ifname).unlink()

    @staticmethod
    def _validate(conflist: dict[str, Any]) -> list[dict[str, Any]]:
        plugins = conflist.get("plugins")
        if not conflist.get("name") or not isinstance(plugins, list) or not plugins:
            raise InvalidArgument("CNI network config list needs a name and a non-empty plugins list")
        for p in plugins:
            if not isinstance(p, dict) or not p.get("type"):
                raise InvalidArgument(f"CNI plugin entry without a type in network {conflist['name']!r}")
        return plugins

    async def add(
        self,
        conflist: dict[str, Any],
        container_id: str,
        netns: str,
        ifname: str,
        runtime_config: dict[str, Any] | None = None,
        args: str = "",
        cache: bool = True,
    ) -> dict[str, Any]:
        """ADD the list; on a failure DEL what was added, then raise.

        ``cache=False`` for lists with nothing to undo (loopback).
        """
        plugins = self._validate(conflist)
        for plugin in plugins:  # all present, or nothing is done (and nothing cached)
            self.find_plugin(plugin["type"])
        rc = runtime_config or {}
        name = conflist["name"]
        # Cache first (without result): a crash mid-ADD can still be undone by DEL.
        entry = {
            "kind": "cniCacheV1",
            "containerId": container_id,
            "ifName": ifname,
            "networkName": name,
            "netns": netns,
            "cniArgs": args,
            "config": conflist,
            "runtimeConfig": rc,
            "result": None,
        }
        if cache:
            self._write_cache(name, container_id, ifname, entry)
        prev: dict[str, Any] | None = None
        try:
            for plugin in plugins:
                conf = self._plugin_conf(conflist, plugin, rc, prev)
                res = await self._exec(plugin["type"], "ADD", conf, container_id, netns, ifname, args)
                if res is not None:
                    prev = res
        except BaseException as e:
            try:
                await self.delete(conflist, container_id, netns, ifname, rc, args)
            except Exception as undo:  # each plugin's DEL failure is logged by delete
                log.warning(
                    "undo (DEL) of the failed ADD of %s on network %r after %r failed: %s",
                    container_id[:12],
                    name,
                    e,
                    undo,
                )
            raise
        result = prev or {"cniVersion": conflist.get("cniVersion", CNI_VERSION)}
        entry["result"] = result
        if cache:
            self._write_cache(name, container_id, ifname, entry)
        return result

    async def add_on(
        self,
        conflist: dict[str, Any],
        type_: str,
        container_id: str,
        netns: str,
        ifname: str,
        runtime_config: dict[str, Any],
    ) -> dict[str, Any]:
        """ADD one more plugin of ``conflist`` to a finished attachment, with its cached
        result as ``prevResult`` (portmap on a warm sandbox, network/pool.py).

        The cache names the whole ``conflist`` and ``runtime_config`` *before* the ADD, so
        that DEL — now, or after a crash cut the ADD short — runs this plugin too (a DEL
        of portmap with nothing set up is harmless). On a failure the plugin's DEL runs
        and the error is raised; the cache keeps naming it until the owner's DEL."""
        plugin = next((p for p in self._validate(conflist) if p["type"] == type_), None)
        if plugin is None:
            raise InvalidArgument(f"network {conflist['name']!r} has no {type_} plugin")
        self.find_plugin(type_)
        name = conflist["name"]
        entry = self.cached(name, container_id, ifname)
        if not entry or not entry.get("result"):
            raise NotFound(f"no cached CNI result for {container_id[:12]} on network {name!r}")
        entry = {**entry, "config": conflist, "runtimeConfig": runtime_config}
        self._write_cache(name, container_id, ifname, entry)
        conf = self._plugin_conf(conflist, plugin, runtime_config, entry["result"])
        args = str(entry.get("cniArgs") or "")
        try:
            res = await self._exec(type_, "ADD", conf, container_id, netns, ifname, args)
        except BaseException as e:
            try:
                await self._exec(type_, "DEL", conf, container_id, netns, ifname, args)
            except Exception as undo:
                log.warning("undo (DEL) of %s for %s after %r failed: %s", type_, container_id[:12], e, undo)
            raise
        result: dict[str, Any] = res or entry["result"]
        return result

    async def delete(
        self,
        conflist: dict[str, Any] | None,
        container_id: str,
        netns: str,
        ifname: str,
        runtime_config: dict[str, Any] | None = None,
        args: str = "",
        network: str | None = None,
    ) -> None:
        """DEL in reverse order. Every plugin is tried; the first failure is raised after.

        Uses the cached config and result when there is one, so that what ADD set
        up is what DEL tears down.
        """
        net_name = network or (conflist or {}).get("name", "")
        cached = self.cached(net_name, container_id, ifname)
        if cached:
            conflist = cached.get("config") or conflist
            runtime_config = cached.get("runtimeConfig") or runtime_config
            args = cached.get("cniArgs", args)
        if conflist is None:
            raise NotFound(f"no CNI config for network {net_name!r} of {container_id}")
        plugins = self._validate(conflist)
        prev = (cached or {}).get("result")
        first: BaseException | None = None
        for plugin in reversed(plugins):
            conf = self._plugin_conf(conflist, plugin, runtime_config or {}, prev)
            try:
                await self._exec(plugin["type"], "DEL", conf, container_id, netns, ifname, args)
            except Exception as e:  # keep tearing down the rest
                log.warning("%s", e)
                first = first or e
        if first is not None:
            raise first
        self._drop_cache(conflist["name"], container_id, ifname)

    async def check(
        self,
        conflist: dict[str, Any],
        container_id: str,
        netns: str,
        ifname: str,
        runtime_config: dict[str, Any] | None = None,
        args: str = "",
        skip: frozenset[str] = frozenset(),
    ) -> None:
        """CHECK the list against the cached ADD result; raise the first plugin's error.

        ``skip`` names plugin types not to ask (one whose CHECK is known broken).
        """
        plugins = self._validate(conflist)
        cached = self.cached(conflist["name"], container_id, ifname)
        if not cached or not cached.get("result"):
            raise NotFound(f"no cached CNI result for {container_id} on network {conflist['name']!r}")
        conflist = cached.get("config") or conflist
        plugins = self._validate(conflist)
        rc = cached.get("runtimeConfig") or runtime_config or {}
        prev = cached["result"]
        for plugin in plugins:
            if plugin["type"] in skip:
                continue
            conf = self._plugin_conf(conflist, plugin, rc, prev)
            await self._exec(plugin["type"], "CHECK", conf, container_id, netns, ifname, args)

    def list_cached(self) -> list[dict[str, Any]]:
        out = []
        if self.cache_dir.is_dir():
            for p in sorted(self.cache_dir.glob("*.json")):
                with contextlib.suppress(OSError, ValueError):
                    out.append(json.loads(p.read_text()))
        return out
