"""The runtime layer: OCI runtime specs, runc under conmon, cgroups.

- ``spec``: ``SpecOptions`` / ``Resources`` / ``Device`` / ``Ulimit`` and
  ``build_spec(opts) -> dict`` (config.json with Docker's security defaults).
- ``seccomp``: the default seccomp profile; loading OCI or Docker-format profiles.
- ``users``: ``resolve(rootfs, "--user value", group_add) -> ResolvedUser``.
- ``engine``: ``Runtime`` (create/start/kill/stop/wait/delete/pause/resume/update/
  ps/exec/attach/inspect/stats) and ``write_bundle``; built by the daemon from
  its ``[runtime]`` config section as ``services.runtime``.
- ``conmon`` / ``runc`` / ``exec``: the monitor's launch protocol and attach
  socket, the OCI runtime CLI, exec sessions.
- ``cgroups``: ``CgroupManager`` (v1, hybrid, v2): parents with limits, stats, OOM.

Imports nothing above ``podkit.errors``.
"""
