"""podkitd: the daemon. Wires the layers together and serves the API.

``main`` (flags, single-instance lock, socket, signals), ``config`` (podkitd.toml),
``services`` (the composition root: every layer built bottom-up), ``server`` (the
aiohttp app, JSON errors, OpenAPI), ``events`` (the event bus), ``api`` (routes).
"""
