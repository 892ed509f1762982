"""Registry operations of the SDK (pull, push, login, logout), mixed into ``ImagesAPI``."""

from __future__ import annotations

from podkit.client._transport import Transport


class DistributionMixin:
    _t: Transport
