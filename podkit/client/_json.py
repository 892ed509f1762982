"""The one place the SDK's types meet JSON.

Typed results (``Container``, ``Image``, ``Pod``, ...) are what the areas return;
some calls hand back a JSON document as the daemon sent it (``inspect``, ``info``,
``version``, events, progress lines, each result's ``raw``). Those are
``JSONObject``: a dict of what ``json.loads`` gives, whose values callers look into
(``doc["state"]["pid"]``) -- so the values are typed as ``json.loads`` types them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: it stays out of the CLI's start-up (podkit/cli/main.py)
if TYPE_CHECKING:
    from typing import Any, TypeAlias

JSONObject: TypeAlias = dict[str, "Any"]
"""A JSON object from (or for) the daemon's API."""
