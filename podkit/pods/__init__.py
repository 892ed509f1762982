"""Pods: containers sharing net, ipc and uts (optionally pid) around an infra process.

- ``model``: ``PodSpec`` (what is asked, CRI-shaped) and ``Pod`` (what was made).
- ``store``: the ``pods`` table.
- ``sandbox``: pinned ipc/uts/pid namespaces, the shared /dev/shm, pod sysctls.
- ``files``: the pod's /etc/hosts and /etc/resolv.conf.
- ``infra``: the catatonit image the infra container runs, built locally.
- ``service``: ``PodService``, the public face, delegating to one module per
  operation over a shared ``PodContext`` (``context``): ``create``, ``prepare``,
  ``members``, ``hooks``, ``start``, ``stop``, ``remove``, ``views``, ``logs``,
  ``stats``, ``play`` (kube plans), ``recover``.
- ``kube`` (+ ``kube_container``, ``kube_fields``): Kubernetes Pod / Deployment YAML → pod plans.
- ``usage``: which processes are the pod's (for ``pod top`` and stats).
"""
