"""The containers layer's hook chain (what the pods layer plugs into); no daemon needed.
The pods layer's use of it is tested end to end in test_pods.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podkit.containers.hooks import HookChain
from podkit.containers.options import CreateOptions
from podkit.errors import Conflict


class Recorder:
    def __init__(self, tag: str, calls: list[tuple[str, str]]) -> None:
        self.tag, self.calls = tag, calls

    async def before_create(self, ns: str, opts: CreateOptions) -> CreateOptions:
        self.calls.append((self.tag, "before_create"))
        opts.labels = {**opts.labels, self.tag: "1"}
        return opts

    async def after_create(self, ns: str, record: Any) -> None:
        self.calls.append((self.tag, "after_create"))

    async def before_start(self, ns: str, record: Any) -> None:
        self.calls.append((self.tag, "before_start"))

    async def before_remove(self, ns: str, record: Any) -> None:
        if record == "infra":
            raise Conflict("refused")
        self.calls.append((self.tag, "before_remove"))

    async def after_remove(self, ns: str, record: Any) -> None:
        self.calls.append((self.tag, "after_remove"))


def test_hooks_run_in_order_and_may_change_or_refuse() -> None:
    calls: list[tuple[str, str]] = []
    chain = HookChain()
    chain.add(Recorder("a", calls))
    chain.add(Recorder("b", calls))

    async def go() -> CreateOptions:
        opts = await chain.before_create("default", CreateOptions.parse({"image": "x", "pod": "p"}))
        await chain.before_start("default", "rec")
        with pytest.raises(Conflict):
            await chain.before_remove("default", "infra")
        await chain.after_remove("default", "rec")
        return opts

    opts = asyncio.run(go())
    assert opts.labels == {"a": "1", "b": "1"} and opts.pod == "p"
    assert calls == [
        ("a", "before_create"),
        ("b", "before_create"),
        ("a", "before_start"),
        ("b", "before_start"),
        ("a", "after_remove"),
        ("b", "after_remove"),
    ]


def test_a_partial_implementation_is_refused_at_registration() -> None:
    class OnlyCreate:
        async def before_create(self, ns: str, opts: CreateOptions) -> CreateOptions:
            return opts

    with pytest.raises(TypeError, match="OnlyCreate"):
        HookChain().add(OnlyCreate())  # type: ignore[arg-type]
