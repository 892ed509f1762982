"""Named volumes in the SDK: ``client.volumes``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    def from_api(cls, d: dict[str, Any]) -> Volume:
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

    def inspect(self, name: str) -> dict[str, Any]:
        return self._t.get(f"/volumes/{name}")

    def list(self, filters: dict[str, list[str] | str] | None = None) -> list[Volume]:
        f = {k: [v] if isinstance(v, str) else list(v) for k, v in (filters or {}).items()}
        return [Volume.from_api(v) for v in self._t.get("/volumes", params={"filters": f or None})]

    def remove(self, name: str, force: bool = False) -> None:
        self._t.delete(f"/volumes/{name}", params={"force": force})

    def prune(self, all: bool = False) -> list[str]:
        return self._t.post("/volumes/prune", params={"all": all})["removed"]
