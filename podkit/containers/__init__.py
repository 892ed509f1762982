"""containers layer."""
