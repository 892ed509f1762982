"""Named volumes in the SDK: ``client.volumes``."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

from podkit.client._json import JSONObject
from podkit.client._transport import Transport


@dataclass
class Volume:
    name: str
    driver: str
    mountpoint: str
    created: float
    labels: dict[str, str] = field(default_factory=dict)
    anonymous: bool = False
    in_use_by: list[str] = field(default_factory=list)

    @classmethod
    def from_api(cls, d: JSONObject) -> Volume:
        return cls(
            d["name"],
            d["driver"],
            d["mountpoint"],
            d["created"],
            d.get("labels") or {},
            bool(d.get("anonymous")),
            list(d.get("in_use_by") or []),
        )


class VolumesAPI:
    def __init__(self, t: Transport) -> None:
        self._t = t

    def create(
        self, name: str | None = None, labels: dict[str, str] | None = None, driver: str = "local"
    ) -> Volume:
        return Volume.from_api(
            self._t.post("/volumes", json_body={"name": name, "labels": labels or {}, "driver": driver})
        )

    def get(self, name: str) -> Volume:
        return Volume.from_api(self._t.get(f"/volumes/{name}"))

    def inspect(self, name: str) -> JSONObject:
        out: JSONObject = self._t.get(f"/volumes/{name}")
        return out

    def list(self, filters: dict[str, builtins.list[str] | str] | None = None) -> builtins.list[Volume]:
        f = {k: [v] if isinstance(v, str) else list(v) for k, v in (filters or {}).items()}
        rows: builtins.list[JSONObject] = self._t.get("/volumes", params={"filters": f or None})
        return [Volume.from_api(v) for v in rows]

    def remove(self, name: str, force: bool = False) -> None:
        self._t.delete(f"/volumes/{name}", params={"force": force})

    def prune(
        self, all: bool = False, filters: dict[str, builtins.list[str]] | None = None
    ) -> builtins.list[str]:
        """Remove unused anonymous (``all``: any) volumes; ``filters``: label, label!, all."""
        out: JSONObject = self._t.post("/volumes/prune", params={"all": all, "filters": filters or None})
        removed: builtins.list[str] = out["removed"]
        return removed
