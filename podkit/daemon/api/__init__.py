"""HTTP/JSON API of podkitd, versioned under /v1.

Each module holds the routes of one area and a ``router``; ``routers()`` lists them
all for the app and the OpenAPI document. ``_routing`` declares routes (``Router``,
``Ctx``), ``_stdio`` pumps attach and exec sessions through a WebSocket.
"""

from __future__ import annotations

from podkit.daemon.api._routing import Router


def routers() -> list[Router]:
    from podkit.daemon.api import system

    mods = [system]
    # Areas register here as they land (images, distribution, containers, ...).
    for name in (
        "images",
        "distribution",
        "containers",
        "exec",
        "volumes",
        "networks",
        "pods",
        "build",
    ):
        try:
            mod = __import__(f"podkit.daemon.api.{name}", fromlist=["router"])
        except ModuleNotFoundError as e:
            if e.name != f"podkit.daemon.api.{name}":
                raise
            continue
        mods.append(mod)
    return [m.router for m in mods]
