"""Healthchecks: the image's Healthcheck or ``--health-*``, run as execs while a container runs.

The state (docker's State.Health: Status starting|healthy|unhealthy, FailingStreak,
the last five probes in Log) is a file in the container's bundle, so it survives a
podkitd restart, and recovery starts the checks again for every container still
running. A status change publishes docker's ``health_status: <status>`` event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from podkit.errors import InvalidArgument, PodkitError

if TYPE_CHECKING:
    from podkit.containers.context import ContainerContext
    from podkit.containers.exec import Execs
    from podkit.containers.store import Record

log = logging.getLogger(__name__)

DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0}
LOG_KEEP = 5
OUTPUT_MAX = 4096
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object, what: str) -> float:
    """Seconds from a number or docker's duration text (``1m30s``, ``500ms``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise InvalidArgument(f"invalid {what} {value!r}: must not be negative")
        return float(value)
    text = str(value).strip()
    total, num = 0.0, ""
    i = 0
    try:
        while i < len(text):
            if text[i].isdigit() or text[i] == ".":
                num += text[i]
                i += 1
                continue
            unit = next(u for u in ("ns", "us", "ms", "s", "m", "h") if text.startswith(u, i))
            total += float(num) * _UNITS[unit]
            num, i = "", i + len(unit)
        if num:  # a bare number: seconds
            total += float(num)
    except (StopIteration, ValueError):
        raise InvalidArgument(f"invalid {what} {value!r}: want a duration such as 30s, 1m or 500ms") from None
    return total


def parse(body: object, disabled: bool = False) -> dict[str, Any] | None:
    """A healthcheck option ({test, interval, timeout, retries, start_period}) checked."""
    if disabled:
        return {"test": ["NONE"]}
    if body is None:
        return None
    if not isinstance(body, dict):
        raise InvalidArgument("healthcheck must be an object")
    test = body.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not isinstance(test, list) or not test or not all(isinstance(t, str) for t in test):
        raise InvalidArgument("healthcheck test must be a command (a string, or [CMD|CMD-SHELL|NONE, ...])")
    if test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        test = ["CMD", *test]
    if test[0] != "NONE" and len(test) < 2:
        raise InvalidArgument(f"healthcheck test {test!r} has no command")
    out: dict[str, Any] = {"test": test}
    for key in ("interval", "timeout", "start_period"):
        v = body.get(key)
        out[key] = parse_duration(v, f"health {key}") if v not in (None, "", 0) else DEFAULTS[key]
    if body.get("start_interval") not in (None, "", 0):
        # docker 25's: the checks' period while the start period lasts
        out["start_interval"] = parse_duration(body["start_interval"], "health start_interval")
        if out["start_interval"] < 0.01:
            raise InvalidArgument("health start interval must be at least 10ms")
    retries = body.get("retries")
    if retries not in (None, 0) and (
        not isinstance(retries, int) or isinstance(retries, bool) or retries < 1
    ):
        raise InvalidArgument(f"invalid health retries {retries!r}: want a positive integer")
    out["retries"] = int(retries or DEFAULTS["retries"])
    if test[0] != "NONE" and (out["interval"] < 0.01 or out["timeout"] < 0.01):
        raise InvalidArgument("health interval and timeout must be at least 10ms")
    return out


def from_image(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The image config's Healthcheck (durations in nanoseconds) as a healthcheck option."""
    hc = cfg.get("Healthcheck")
    if not isinstance(hc, dict) or not hc.get("Test"):
        return None
    return parse(
        {
            "test": hc["Test"],
            "interval": (hc.get("Interval") or 0) / 1e9,
            "timeout": (hc.get("Timeout") or 0) / 1e9,
            "start_period": (hc.get("StartPeriod") or 0) / 1e9,
            "start_interval": (hc.get("StartInterval") or 0) / 1e9,
            "retries": hc.get("Retries") or None,
        }
    )


def active(hc: dict[str, Any] | None) -> bool:
    return bool(hc and hc.get("test") and hc["test"][0] != "NONE")


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1e9):09d}Z"


class HealthMonitor:
    """One task per running container with a healthcheck."""

    def __init__(self, ctx: ContainerContext, execs: Execs) -> None:
        self.ctx = ctx
        self.execs = execs
        self.tasks: dict[str, asyncio.Task[Any]] = {}

    def path(self, cid: str) -> str:
        return str(self.ctx.bundle(cid) / "health.json")

    def state(self, cid: str) -> dict[str, Any] | None:
        try:
            with open(self.path(cid)) as f:
                out: dict[str, Any] = json.load(f)
                return out
        except (OSError, ValueError):
            return None

    def _save(self, cid: str, st: dict[str, Any]) -> None:
        tmp = self.path(cid) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.replace(tmp, self.path(cid))

    def watch(self, ns: str, cid: str, fresh: bool, rec: Record | None = None) -> None:
        """Start checking (``fresh``: a new start, the status goes back to starting;
        ``rec``: the container's record, if the caller has it at hand)."""
        rec = rec or self.ctx.store.get(cid)
        hc = (rec.config.get("healthcheck") if rec else None) or None
        if not active(hc) or cid in self.tasks:
            return
        if fresh or self.state(cid) is None:
            try:
                self._save(cid, {"Status": "starting", "FailingStreak": 0, "Log": []})
            except OSError as e:
                log.warning("health of %s: cannot write its state: %s", cid[:12], e)
                return
        task = self.ctx.spawn(self._loop(ns, cid, hc or {}, time.time() if fresh else 0.0))
        self.tasks[cid] = task
        task.add_done_callback(lambda _t: self.tasks.pop(cid, None))

    async def _loop(self, ns: str, cid: str, hc: dict[str, Any], started: float) -> None:
        while True:
            period = hc["interval"]
            if hc.get("start_interval") and time.time() - started < hc.get("start_period", 0.0):
                st = self.state(cid) or {}
                if st.get("Status", "starting") == "starting":
                    period = hc["start_interval"]
            await asyncio.sleep(period)  # the check's period, not a synchronisation
            rec = self.ctx.store.get(cid)
            if rec is None or rec.state not in ("running", "paused"):
                return
            if rec.state == "paused":
                continue
            await self.probe(ns, cid, hc, started)

    async def probe(self, ns: str, cid: str, hc: dict[str, Any], started: float) -> None:
        begin = time.time()
        test = hc["test"]
        cmd = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
        code, out = await self._run(ns, cid, cmd, hc["timeout"])
        st = self.state(cid) or {"Status": "starting", "FailingStreak": 0, "Log": []}
        entry = {"Start": _rfc3339(begin), "End": _rfc3339(time.time()), "ExitCode": code, "Output": out}
        st["Log"] = [*st.get("Log", []), entry][-LOG_KEEP:]
        old = st.get("Status")
        if code == 0:
            st["Status"], st["FailingStreak"] = "healthy", 0
        elif begin - started < hc.get("start_period", 0.0) and old == "starting":
            pass  # failures in the start period do not count
        else:
            st["FailingStreak"] = int(st.get("FailingStreak", 0)) + 1
            if st["FailingStreak"] >= hc["retries"]:
                st["Status"] = "unhealthy"
        try:
            self._save(cid, st)
        except OSError as e:  # the container is being removed
            log.debug("health of %s: state not saved: %s", cid[:12], e)
            return
        if st["Status"] != old:
            self.ctx.publish(ns, "container", f"health_status: {st['Status']}", cid)

    async def _run(self, ns: str, cid: str, cmd: list[str], timeout: float) -> tuple[int, str]:
        try:
            ex = await self.execs.create(ns, cid, {"cmd": cmd})
            sess = await self.execs.attach(ns, ex.id)
        except PodkitError as e:
            return 1, e.message
        except Exception as e:  # noqa: BLE001 - a probe that cannot start is a failed probe
            return 1, repr(e)
        buf = bytearray()

        async def collect() -> int:
            while (chunk := await sess.read()) is not None:
                if len(buf) < OUTPUT_MAX:
                    buf.extend(chunk[1][: OUTPUT_MAX - len(buf)])
            return await self.execs.wait(ns, ex.id)

        try:
            code = await asyncio.wait_for(collect(), timeout)
        except TimeoutError:
            try:
                sess.kill()
            except (OSError, PodkitError) as e:
                log.warning("health of %s: killing the timed-out probe failed: %r", cid[:12], e)
            return -1, f"Health check exceeded timeout ({timeout:g}s)"
        return code, buf.decode(errors="replace")
