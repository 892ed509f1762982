"""The public face of ContainerService stays what the front ends are written against
(the CRI and Docker API servers call these by name and keyword): no daemon needed."""

from __future__ import annotations

import inspect

from podkit.containers.service import ContainerService

# Every public method with its parameters (and defaults' presence), as before the split
# of the service by operation; adding is fine, renaming or removing is not.
PUBLIC = {
    "add_hooks": ["hooks"],
    "archive_get": ["ns", "ref", "path"],
    "archive_put": ["ns", "ref", "path", "stream"],
    "archive_stat": ["ns", "ref", "path"],
    "attach": ["ns", "ref", "stdin", "logs"],
    "bundle": ["cid"],
    "create": ["ns", "body"],
    "exec_attach": ["ns", "eid"],
    "exec_create": ["ns", "ref", "body"],
    "exec_get": ["ns", "eid"],
    "exec_resize": ["ns", "eid", "h", "w"],
    "exec_start_detached": ["ns", "eid"],
    "exec_wait": ["ns", "eid"],
    "info": ["ns"],
    "inspect": ["ns", "ref"],
    "kill": ["ns", "ref", "sig"],
    "list": ["ns", "all", "filters"],
    "log_file": ["rec"],
    "log_path": ["cid"],
    "logs": ["ns", "ref", "follow", "since", "until", "tail", "streams", "wanted"],
    "pause": ["ns", "ref"],
    "port": ["ns", "ref"],
    "prune": ["ns"],
    "remove": ["ns", "ref", "force", "volumes"],
    "rename": ["ns", "ref", "new"],
    "reopen_log": ["ns", "ref"],
    "resize": ["ns", "ref", "h", "w"],
    "resolve": ["ns", "ref"],
    "set_network": ["ns", "ref", "network"],
    "restart": ["ns", "ref", "timeout"],
    "shutdown": [],
    "start": ["ns", "ref"],
    "stats": ["ns", "ref", "prev"],
    "stop": ["ns", "ref", "timeout"],
    "top": ["ns", "ref", "ps_args"],
    "unpause": ["ns", "ref"],
    "update": ["ns", "ref", "body"],
    "view": ["r", "full"],
    "wait": ["ns", "ref", "condition"],
}
ATTRIBUTES = (
    "images",
    "snapshots",
    "networks",
    "registry",
    "db",
    "store",
    "root",
    "state_dir",
    "volumes",
    "publish",
    "cfg",
    "rt",
    "logs_dir",
    "bundles",
    "default_log_size",
    "restarts",
    "hooks",
)


def test_every_public_method_keeps_its_name_and_parameters() -> None:
    for name, params in PUBLIC.items():
        fn = getattr(ContainerService, name, None)
        assert callable(fn), f"ContainerService.{name} is gone"
        sig = inspect.signature(fn).parameters
        got = list(sig)[1:]
        # Parameters may be added at the end with a default (callers keep working), never
        # renamed, reordered or removed.
        assert got[: len(params)] == params, f"ContainerService.{name}{tuple(got)}: was {tuple(params)}"
        added = [p for p in got[len(params) :] if sig[p].default is inspect.Parameter.empty]
        assert not added, f"ContainerService.{name}: new parameters {added} need a default"


def test_the_shared_state_is_still_reachable_from_the_service() -> None:
    for name in ATTRIBUTES:
        assert isinstance(inspect.getattr_static(ContainerService, name, None), property), name
