"""The lowest layer: blobs by digest (content) and names/state in SQLite (metadata)."""

from podkit.store.content import ContentStore, Digest, Writer
from podkit.store.leases import Leases
from podkit.store.metadata import Database

__all__ = ["ContentStore", "Database", "Digest", "Leases", "Writer"]
