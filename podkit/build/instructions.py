"""One handler per instruction: RUN and COPY/ADD in their modules, the rest here — ARG,
and the config-only ones (ENV, LABEL, CMD, ENTRYPOINT, USER, EXPOSE, VOLUME,
STOPSIGNAL, SHELL, ONBUILD, HEALTHCHECK, MAINTAINER), which make a step image with the
same layers and a new config; WORKDIR adds a layer only when the directory is missing."""

from __future__ import annotations

import os
import re
from typing import Any

from podkit.build import cache, copy_step, run_step
from podkit.build.dockerfile import Instruction, expand, key_values
from podkit.build.stages import arg_defs
from podkit.build.state import BuildContext, Stage, set_field


async def step(bc: BuildContext, stage: Stage, ins: Instruction) -> None:
    """Run one instruction of a stage (FROM excepted: stages.from_); ``stage`` moves on."""
    c = ins.cmd
    env = bc.env(stage)
    if c == "RUN":
        await run_step.run(bc, stage, ins)
    elif c in ("COPY", "ADD"):
        await copy_step.copy_add(bc, stage, ins, env)
    elif c == "ARG":
        for k, v in arg_defs(ins, env):
            bc.used_args.add(k)
            stage.args[k] = bc.opts.build_args.get(k, v)
    elif c == "ENV":
        pairs = key_values(ins, expand(ins.args, env) if "=" not in ins.args else ins.args)
        pairs = [(k, expand(v, env)) for k, v in pairs]

        def setenv(cfg: dict[str, Any]) -> dict[str, Any]:
            cur = list(cfg.get("Env") or [])
            for k, v in pairs:
                cur = [e for e in cur if e.partition("=")[0] != k] + [f"{k}={v}"]
            cfg["Env"] = cur
            return cfg

        await cache.config_step(bc, stage, ins.original.strip(), setenv)
    elif c == "LABEL":
        pairs = [(expand(k, env), expand(v, env)) for k, v in key_values(ins, ins.args)]
        await cache.config_step(
            bc,
            stage,
            ins.original.strip(),
            lambda cfg: set_field(cfg, "Labels", {**(cfg.get("Labels") or {}), **dict(pairs)}),
        )
    elif c == "MAINTAINER":
        stage.config["author"] = ins.args
        await cache.config_step(bc, stage, ins.original.strip(), lambda cfg: cfg)
    elif c in ("CMD", "ENTRYPOINT"):
        words = ins.json_args()
        argv = words if words is not None else [*stage.shell, ins.args]
        key = "Cmd" if c == "CMD" else "Entrypoint"

        def setcmd(cfg: dict[str, Any]) -> dict[str, Any]:
            cfg[key] = argv
            if c == "ENTRYPOINT" and "Cmd" in cfg and not bool(stage.config.get("_cmd_set")):
                cfg["Cmd"] = None
            return cfg

        await cache.config_step(bc, stage, ins.original.strip(), setcmd)
    elif c == "WORKDIR":
        wd = expand(ins.args.strip(), env)
        if not wd:
            raise ins.fail("needs a path")
        cur = stage.config["config"].get("WorkingDir") or "/"
        wd = os.path.normpath(os.path.join(cur, wd))
        await copy_step.workdir(bc, stage, ins, wd)
    elif c == "USER":
        u = expand(ins.args.strip(), env)
        if not u:
            raise ins.fail("needs a user")
        await cache.config_step(bc, stage, ins.original.strip(), lambda cfg: set_field(cfg, "User", u))
    elif c == "EXPOSE":
        ports: dict[str, Any] = {}
        for p in expand(ins.args, env).split():
            num, _, proto = p.partition("/")
            if not num.replace("-", "").isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                raise ins.fail(f"invalid port {p!r}")
            ports[f"{num}/{proto or 'tcp'}"] = {}
        await cache.config_step(
            bc,
            stage,
            ins.original.strip(),
            lambda cfg: set_field(cfg, "ExposedPorts", {**(cfg.get("ExposedPorts") or {}), **ports}),
        )
    elif c == "VOLUME":
        words = ins.json_args()
        vols = words if words is not None else expand(ins.args, env).split()
        if not vols:
            raise ins.fail("needs a path")
        await cache.config_step(
            bc,
            stage,
            ins.original.strip(),
            lambda cfg: set_field(cfg, "Volumes", {**(cfg.get("Volumes") or {}), **{v: {} for v in vols}}),
        )
    elif c == "STOPSIGNAL":
        sig = expand(ins.args.strip(), env)
        await cache.config_step(
            bc, stage, ins.original.strip(), lambda cfg: set_field(cfg, "StopSignal", sig)
        )
    elif c == "SHELL":
        words = ins.json_args()
        if not words:
            raise ins.fail('needs a JSON array, e.g. SHELL ["/bin/bash", "-c"]')
        stage.shell = words
        await cache.config_step(bc, stage, ins.original.strip(), lambda cfg: set_field(cfg, "Shell", words))
    elif c == "ONBUILD":
        inner = ins.args.strip()
        if inner.split(" ", 1)[0].upper() in ("ONBUILD", "FROM", "MAINTAINER"):
            raise ins.fail(f"{inner.split(' ', 1)[0]} is not allowed in ONBUILD")
        await cache.config_step(
            bc,
            stage,
            ins.original.strip(),
            lambda cfg: set_field(cfg, "OnBuild", [*(cfg.get("OnBuild") or []), inner]),
        )
    elif c == "HEALTHCHECK":
        hc = _healthcheck(ins, stage.shell)
        await cache.config_step(
            bc, stage, ins.original.strip(), lambda cfg: set_field(cfg, "Healthcheck", hc)
        )
    elif c == "FROM":
        raise ins.fail("unexpected FROM")


def _healthcheck(ins: Instruction, shell: list[str]) -> dict[str, Any]:
    rest = ins.args.strip()
    if rest.upper() == "NONE":
        return {"Test": ["NONE"]}
    word, _, cmd = rest.partition(" ")
    if word.upper() != "CMD" or not cmd.strip():
        raise ins.fail("expects HEALTHCHECK [OPTIONS] CMD command, or NONE")
    sub = Instruction("CMD", cmd.strip(), ins.line, cmd)
    words = sub.json_args()
    hc: dict[str, Any] = {"Test": ["CMD", *words] if words is not None else ["CMD-SHELL", cmd.strip()]}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        if flag in ins.flags:
            hc[key] = _duration_ns(ins, ins.flags[flag])
    if "retries" in ins.flags:
        if not ins.flags["retries"].isdigit():
            raise ins.fail(f"--retries must be a number, not {ins.flags['retries']!r}")
        hc["Retries"] = int(ins.flags["retries"])
    return hc


def _duration_ns(ins: Instruction, text: str) -> int:
    total = 0.0
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ins.fail(f"invalid duration {text!r}")
    for num, unit in parts:
        total += float(num) * units[unit]
    return int(total * 1e9)
