"""podkit/prune.py: docker's prune --filter keys, parsed once for the CLI, the HTTP API and
the Docker API (no daemon, no root)."""

from __future__ import annotations

import datetime as dt

import pytest

from podkit.errors import InvalidArgument
from podkit.prune import (
    CONTAINER_KEYS,
    IMAGE_KEYS,
    SYSTEM_KEYS,
    VOLUME_KEYS,
    PruneFilters,
    cli_filters,
    parse_until,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    "text,want",
    [
        ("1699999000", 1699999000.0),
        ("1699999000.5", 1699999000.5),
        ("24h", NOW - 86400),
        ("1h30m", NOW - 5400),
        ("90s", NOW - 90),
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T22:13:20.123456789Z", NOW + 0.123456),
        ("2023-11-14T23:13:20+01:00", NOW),
    ],
)
def test_until_forms(text: str, want: float) -> None:
    assert parse_until(text, now=NOW) == pytest.approx(want, abs=1e-3)


def test_until_date_without_zone_is_local() -> None:
    want = dt.datetime(2023, 11, 14).astimezone().timestamp()
    assert parse_until("2023-11-14") == want


def test_labels_and_until_select() -> None:
    f = PruneFilters.parse(
        {"label": ["app", "tier=db"], "label!": ["keep=yes"], "until": ["10m"]}, CONTAINER_KEYS, now=NOW
    )
    assert f.until == NOW - 600
    assert f.selects({"app": "x", "tier": "db"}, NOW - 3600)
    assert not f.selects({"app": "x", "tier": "db"}, NOW - 60)  # too new
    assert not f.selects({"app": "x", "tier": "web"}, NOW - 3600)  # wrong value
    assert not f.selects({"tier": "db"}, NOW - 3600)  # key missing
    assert not f.selects({"app": "x", "tier": "db", "keep": "yes"}, NOW - 3600)  # label!=
    assert f.selects({"app": "x", "tier": "db", "keep": "no"}, NOW - 3600)
    assert PruneFilters().selects(None, None)


def test_cli_form_and_bools() -> None:
    assert cli_filters(["label!=a=b", "label=c", "until=1h"]) == {
        "label!": ["a=b"],
        "label": ["c"],
        "until": ["1h"],
    }
    assert PruneFilters.from_cli(["dangling=false"], IMAGE_KEYS).dangling is False
    assert PruneFilters.from_cli(["all=true"], VOLUME_KEYS).all is True
    assert PruneFilters.parse({"label": "a"}, SYSTEM_KEYS).labels == (
        "a",
    )  # a bare string, as some clients send


@pytest.mark.parametrize(
    "filters,keys,message",
    [
        ({"nope": ["1"]}, CONTAINER_KEYS, "invalid filter 'nope' for prune: use label, label!, until"),
        ({"dangling": ["x"]}, IMAGE_KEYS, "invalid filter 'dangling=x': want true or false"),
        ({"until": ["yesterday"]}, CONTAINER_KEYS, "invalid filter 'until=yesterday'"),
        ({"until": ["1h", "2h"]}, CONTAINER_KEYS, "give one time"),
        ({"until": ["1h"]}, VOLUME_KEYS, "invalid filter 'until'"),
        ({"label": [1]}, CONTAINER_KEYS, "values must be strings"),
        ({"label": 1}, CONTAINER_KEYS, "values must be strings"),
    ],
)
def test_bad_filters_name_the_problem(filters: dict, keys: frozenset[str], message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidArgument) as e:
        PruneFilters.parse(filters, keys)
    assert message in e.value.message


def test_cli_flag_without_value() -> None:
    with pytest.raises(InvalidArgument, match="want KEY=VALUE"):
        cli_filters(["label"])
