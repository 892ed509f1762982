"""The Kubernetes Container Runtime Interface (CRI v1) front end."""
