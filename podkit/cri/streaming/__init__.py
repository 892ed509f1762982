"""The CRI streaming server (Exec/Attach/PortForward URLs); see server.py once it lands."""
