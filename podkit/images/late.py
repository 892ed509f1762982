"""A layer another one needs but that the composition root may build after it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from podkit.errors import Unavailable

T = TypeVar("T")


class Late(Generic[T]):
    """Looked up at each use: ``get`` is None while (or if) the layer is not built."""

    def __init__(self, lookup: Callable[[], T | None], what: str) -> None:
        self._lookup = lookup
        self.what = what

    def get(self) -> T | None:
        return self._lookup()

    def need(self) -> T:
        """The layer; Unavailable when this daemon has none."""
        obj = self._lookup()
        if obj is None:
            raise Unavailable(f"the {self.what} is not available in this daemon")
        return obj
