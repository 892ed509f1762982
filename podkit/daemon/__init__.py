"""podkitd: the daemon. Wires the layers together and serves the API."""
