"""How much one request may make the daemon buffer or store.

Bodies are read whole only for JSON (streamed uploads, archives and images, go to
disk as they come and are bounded by it); labels and annotations are stored with
their object and returned by every list, so their size is bounded too.
"""

from __future__ import annotations

from collections.abc import Mapping

from podkit.errors import InvalidArgument

JSON_BODY_MAX = 1 << 20
# Container create carries what the client read from env files and a seccomp profile
# (each up to 1 MiB, podkit.userfiles); play kube carries a whole YAML file.
LARGE_JSON_BODY_MAX = 8 << 20
# A JSON body must arrive within this (a client that trickles one holds a handler).
BODY_READ_TIMEOUT = 60.0
LABEL_KEY_MAX = 1024
LABELS_TOTAL_MAX = 256 << 10  # keys and values together, as Kubernetes bounds annotations


def check_labels(labels: Mapping[str, str], what: str = "labels") -> Mapping[str, str]:
    """Refuse a key over LABEL_KEY_MAX bytes or a map over LABELS_TOTAL_MAX in all."""
    total = 0
    for k, v in labels.items():
        kb = len(k.encode("utf-8", "surrogatepass"))
        if kb > LABEL_KEY_MAX:
            raise InvalidArgument(f"{what}: key {k[:40]!r}... is {kb} bytes, at most {LABEL_KEY_MAX}")
        total += kb + len(v.encode("utf-8", "surrogatepass"))
    if total > LABELS_TOTAL_MAX:
        raise InvalidArgument(f"{what} are {total} bytes in all, at most {LABELS_TOTAL_MAX}")
    return labels
