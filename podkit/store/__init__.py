"""The lowest layer: blobs by digest (content), names/state in SQLite (metadata), and
leases that keep in-flight content from garbage collection."""

from podkit.store.content import ContentStore, Digest, Writer
from podkit.store.leases import Leases
from podkit.store.metadata import Database

__all__ = ["ContentStore", "Database", "Digest", "Leases", "Writer"]
