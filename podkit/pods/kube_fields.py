"""Checks of single Kubernetes YAML fields, each naming the field when it is wrong."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from podkit.errors import InvalidArgument

_SUFFIXES: dict[str, int | Decimal] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "m": Decimal("0.001"),
    "": 1,
}


def parse_quantity(v: object, what: str) -> Decimal:
    """A Kubernetes quantity ("64Mi", "1G", "500m", "0.5", 1e3) as a number."""
    s = str(v).strip()
    m = re.fullmatch(r"([+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?", s)
    if not m:
        raise InvalidArgument(f"{what}: {v!r} is not a quantity (like 64Mi, 1G, 500m)")
    try:
        return Decimal(m.group(1)) * Decimal(_SUFFIXES[m.group(2) or ""])
    except InvalidOperation:
        raise InvalidArgument(f"{what}: {v!r} is not a quantity") from None


def mapping(v: object, what: str) -> dict[str, Any]:
    """A mapping field (YAML values are whatever the file holds, hence Any)."""
    if not isinstance(v, dict):
        raise InvalidArgument(f"{what} must be a mapping")
    return v


def strings(v: object, what: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str | int | float) for x in v):
        raise InvalidArgument(f"{what} must be a list of strings")
    return [str(x) for x in v]


def boolean(v: object, what: str) -> bool:
    if not isinstance(v, bool):
        raise InvalidArgument(f"{what} must be true or false")
    return v


def items(v: object, what: str) -> list[dict[str, Any]]:
    """A list field (absent or null: empty) whose every entry is a mapping."""
    if not v:
        return []
    if not isinstance(v, list):
        raise InvalidArgument(f"{what}[] must be a mapping")
    return [mapping(x, f"{what}[]") for x in v]


def cap(name: str) -> str:
    n = name.upper()
    if n == "ALL":
        return n
    return n if n.startswith("CAP_") else f"CAP_{n}"
