"""The one callable every layer is handed to report what happened: ``publish``.

The daemon's event bus (podkit.daemon.events.EventBus.publish) is the implementation;
the layers type their ``publish`` parameter with this protocol, so they need not know
the daemon (which sits above them).
"""

from __future__ import annotations

from typing import Protocol


class Publish(Protocol):
    """``publish(namespace, type, action, id, **attributes)``: type is the object's kind
    (image, container, pod, network, volume), action what happened (pull, create, start,
    die, ...), attributes extra values, sent as strings (name, image, exit code...)."""

    def __call__(
        self, namespace: str, type: str, action: str, id: str, /, **attributes: object
    ) -> object: ...
