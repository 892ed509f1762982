"""The ``--filter`` of every prune (containers, images, volumes, networks, system), as docker
reads it: ``until=TIME`` (created before: unix time, RFC 3339, a date, or a duration ago
such as ``24h``), ``label=KEY`` / ``label=KEY=VALUE`` (must have), ``label!=KEY`` /
``label!=KEY=VALUE`` (must not have), and for images ``dangling=true|false``, for volumes
``all=true|false``. Each prune names the keys it takes; any other is refused naming it.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from podkit.errors import InvalidArgument

# The keys each prune accepts (docker's).
CONTAINER_KEYS = frozenset({"until", "label", "label!"})
IMAGE_KEYS = frozenset({"until", "label", "label!", "dangling"})
NETWORK_KEYS = frozenset({"until", "label", "label!"})
VOLUME_KEYS = frozenset({"label", "label!", "all"})
SYSTEM_KEYS = frozenset({"until", "label", "label!"})

_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_until(value: str, now: float | None = None) -> float:
    """docker's ``until``: unix seconds, a Go duration ago, RFC 3339, or a date."""
    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    if _DURATION.fullmatch(v):
        ago = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", v))
        return (time.time() if now is None else now) - ago
    text = v.replace("Z", "+00:00")
    # Python's fromisoformat takes up to microseconds: drop the rest of a nanosecond time
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"invalid filter 'until={value}': want unix seconds, RFC 3339, a date or a duration (24h)"
        ) from None
    if t.tzinfo is None:
        t = t.astimezone()  # a time without a zone is local, as docker reads it
    return t.timestamp()


def _bool(key: str, values: list[str]) -> bool:
    if len(set(values)) > 1:
        raise InvalidArgument(f"invalid filter '{key}': give one value")
    v = values[0].lower()
    if v in ("true", "1"):
        return True
    if v in ("false", "0"):
        return False
    raise InvalidArgument(f"invalid filter '{key}={values[0]}': want true or false")


@dataclass(frozen=True)
class PruneFilters:
    until: float | None = None
    labels: tuple[str, ...] = ()  # KEY or KEY=VALUE: each must match
    not_labels: tuple[str, ...] = ()  # KEY or KEY=VALUE: none may match
    dangling: bool | None = None
    all: bool | None = None

    @classmethod
    def parse(
        cls,
        filters: Mapping[str, Iterable[str]] | None,
        allowed: frozenset[str],
        what: str = "prune",
        now: float | None = None,
    ) -> PruneFilters:
        """Docker's ``filters`` map (``{"until": ["24h"], "label": ["a=b"]}``)."""
        if not filters:
            return cls()
        if not isinstance(filters, Mapping):
            raise InvalidArgument("filters must be an object of lists of strings")
        got: dict[str, list[str]] = {}
        for key, values in filters.items():
            if key not in allowed:
                raise InvalidArgument(f"invalid filter {key!r} for {what}: use {', '.join(sorted(allowed))}")
            vals = [values] if isinstance(values, str) else values
            if not isinstance(vals, list | tuple) or not all(isinstance(v, str) for v in vals):
                raise InvalidArgument(f"invalid filter {key!r}: values must be strings")
            vals = list(vals)
            if vals:
                got[key] = vals
        until = None
        if "until" in got:
            if len(got["until"]) > 1:
                raise InvalidArgument("invalid filter 'until': give one time")
            until = parse_until(got["until"][0], now)
        return cls(
            until=until,
            labels=tuple(got.get("label", ())),
            not_labels=tuple(got.get("label!", ())),
            dangling=_bool("dangling", got["dangling"]) if "dangling" in got else None,
            all=_bool("all", got["all"]) if "all" in got else None,
        )

    @classmethod
    def from_cli(cls, items: Iterable[str], allowed: frozenset[str], what: str = "prune") -> PruneFilters:
        """``--filter KEY=VALUE`` flags (``label!=k`` is the key ``label!``)."""
        return cls.parse(cli_filters(items), allowed, what)

    def keeps(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels passes the label filters."""
        labels = labels or {}

        def has(spec: str) -> bool:
            k, eq, v = spec.partition("=")
            return k in labels and (not eq or labels[k] == v)

        return all(has(s) for s in self.labels) and not any(has(s) for s in self.not_labels)

    def old_enough(self, created: float | None) -> bool:
        """Whether an object created at ``created`` passes ``until`` (created before it)."""
        return self.until is None or (created or 0.0) < self.until

    def selects(self, labels: Mapping[str, str] | None, created: float | None) -> bool:
        return self.keeps(labels) and self.old_enough(created)


def cli_filters(items: Iterable[str]) -> dict[str, list[str]]:
    """``KEY=VALUE`` flags as a filters map; ``label!=k`` -> ``{"label!": ["k"]}``."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"bad filter {item!r}: want KEY=VALUE")
        out.setdefault(key, []).append(value)
    return out
