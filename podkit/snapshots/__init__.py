"""snapshots layer."""
