"""The `podkit` command line, built on the SDK. Only the standard library on its path."""
