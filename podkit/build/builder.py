"""The build: a Dockerfile's stages executed step by step into images.

Each step's result is an image recorded in the build namespace (``podkit-build``)
under a name derived from its cache key, so that the step's blobs are kept by the
same rules as any image's (GC keeps what a record points at) and a later build finds
it by name: the cache key is the parent image id, the instruction as expanded, and
the content digest of what a COPY/ADD reads. RUN steps run as containers of that
namespace through the container service and are committed (podkit.containers.commit);
COPY/ADD write their layer straight from the context. Config-only steps make an image
with the same layers and a new config.

The builder reports progress as lines (``Step N/M : ...``, `` ---> Using cache``, a
RUN's output, `` ---> <id>``) through a callback: the podkit API and the Docker API's
classic-builder stream both carry them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import io
import json
import logging
import os
import secrets
import stat
import tarfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from podkit.build.context import content_digest, glob_sources
from podkit.build.dockerfile import BuildError, Instruction, expand, key_values, parse, split_words
from podkit.errors import InvalidArgument, NotFound, PodkitError
from podkit.images.oci import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, Descriptor, Platform
from podkit.snapshots.diff import HashingWriter

if TYPE_CHECKING:
    from podkit.containers.service import ContainerService
    from podkit.containers.store import Record
    from podkit.images.service import Image, ImageService

log = logging.getLogger(__name__)

BUILD_NS = "podkit-build"
CACHE_REPO = "localhost/podkit-build-cache"
PREDEFINED_ARGS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
Emit = Callable[[str], Awaitable[None]]


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    network: str = ""
    pull: bool = False
    quiet: bool = False


@dataclass
class Stage:
    name: str
    index: int
    image: Image | None  # None: scratch, nothing yet
    config: dict[str, Any]
    args: dict[str, str]
    shell: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])


def _now() -> str:
    from podkit.images.archive import now_rfc3339

    return now_rfc3339()


class Builder:
    def __init__(
        self,
        images: ImageService,
        containers: ContainerService,
        ns: str,
        context: Path,
        opts: BuildOptions,
        emit: Emit,
        dockerfile_text: str | None = None,
    ) -> None:
        self.images = images
        self.containers = containers
        self.ns = ns
        self.context = context
        self.opts = opts
        self.emit = emit
        self.text = dockerfile_text
        self.stages: dict[str, Stage] = {}
        self.used_args: set[str] = set()

    # -------------------------------------------------------------- the build
    async def build(self) -> str:
        text = self.text
        if text is None:
            p = self.context / self.opts.dockerfile
            try:
                text = p.read_text()
            except FileNotFoundError:
                raise NotFound(f"cannot find {self.opts.dockerfile} in the build context") from None
        instructions = parse(text)
        meta_args: dict[str, str] = {}
        i = 0
        while i < len(instructions) and instructions[i].cmd == "ARG":
            for k, v in self._arg_defs(instructions[i], {}):
                meta_args[k] = self.opts.build_args.get(k, v)
            i += 1
        if i >= len(instructions) or instructions[i].cmd != "FROM":
            at = instructions[i] if i < len(instructions) else None
            raise BuildError(
                f"Dockerfile:{at.line if at else 1}: "
                "the first instruction must be FROM (ARGs may come before)"
            )
        # stages
        groups: list[list[Instruction]] = []
        for ins in instructions[i:]:
            if ins.cmd == "FROM":
                groups.append([])
            groups[-1].append(ins)
        names = [self._stage_name(g[0], n) for n, g in enumerate(groups)]
        last = len(groups) - 1
        if self.opts.target:
            if self.opts.target not in names:
                raise BuildError(f"target stage {self.opts.target!r} could not be found")
            last = names.index(self.opts.target)
        total = sum(len(g) for g in groups[: last + 1])
        step = 0
        result = ""
        for n, group in enumerate(groups[: last + 1]):
            stage: Stage | None = None
            for ins in group:
                step += 1
                await self.say(f"Step {step}/{total} : {ins.original.strip().splitlines()[0]}\n")
                if ins.cmd == "FROM":
                    stage = await self._from(ins, n, names[n], meta_args)
                else:
                    assert stage is not None
                    await self._step(stage, ins)
                assert stage is not None
                if stage.image is not None:
                    await self.say(f" ---> {stage.image.id[7:19]}\n")
            assert stage is not None
            self.stages[names[n]] = stage
            self.stages[str(n)] = stage
            if n == last:
                if self.opts.labels:
                    await self._config_step(
                        stage, "LABEL", lambda c: c.setdefault("Labels", {}).update(self.opts.labels) or c
                    )
                result = await self._finish(stage)
        unused = sorted(set(self.opts.build_args) - self.used_args - set(meta_args) - set(PREDEFINED_ARGS))
        if unused:
            await self.say(f"[Warning] One or more build-args {unused} were not consumed\n")
        return result

    async def say(self, text: str) -> None:
        if not self.opts.quiet:
            await self.emit(text)

    def _stage_name(self, ins: Instruction, n: int) -> str:
        words = ins.args.split()
        if len(words) == 3 and words[1].lower() == "as":
            return words[2].lower()
        if len(words) not in (1, 3):
            raise ins.fail("expects FROM IMAGE [AS NAME]")
        return str(n)

    def _arg_defs(self, ins: Instruction, env: dict[str, str]) -> list[tuple[str, str]]:
        out = []
        for w in split_words(ins.args):
            k, sep, v = w.partition("=")
            if not k:
                raise ins.fail(f"bad ARG {w!r}")
            out.append((k, expand(v, env) if sep else ""))
        if not out:
            raise ins.fail("ARG needs a name")
        return out

    async def _finish(self, stage: Stage) -> str:
        if stage.image is None:
            raise BuildError("the build produced no image (a scratch stage with no instructions)")
        img = stage.image
        for t in self.opts.tags:
            self.images.record(self.ns, t, img.target, action="build")
        if not self.opts.tags:
            self.images.record_dangling(self.ns, img.target, action="build")
        await self.say(f"Successfully built {img.id[7:19]}\n")
        for t in self.opts.tags:
            await self.say(f"Successfully tagged {t}\n")
        return img.id

    # ----------------------------------------------------------------- FROM
    async def _from(self, ins: Instruction, n: int, name: str, meta: dict[str, str]) -> Stage:
        ref = expand(ins.args.split()[0], meta)
        if ins.flags.get("platform"):
            plat = expand(ins.flags["platform"], meta)
            if not Platform.parse(plat).matches(Platform.host()):
                raise ins.fail(f"platform {plat} is not this host's ({Platform.host()})")
        if ref.lower() == "scratch":
            host = Platform.host()
            cfg: dict[str, Any] = {
                "architecture": host.architecture,
                "os": host.os,
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
                "history": [],
            }
            return Stage(name, n, None, cfg, dict(meta))
        if ref.lower() in self.stages:
            base = self.stages[ref.lower()]
            return Stage(name, n, base.image, copy.deepcopy(base.config), dict(meta), list(base.shell))
        from podkit.containers.create import find_image

        try:
            if self.opts.pull:
                raise NotFound("pull")
            img = self.images.get(self.ns, ref)
        except NotFound:
            try:
                await find_image(self.containers.ctx, self.ns, ref)
            except PodkitError as e:
                raise ins.fail(f"{ref}: {e.message}") from None
            img = self.images.get(self.ns, ref)
        cfg = copy.deepcopy(img.config)
        cfg.setdefault("config", {})
        cfg["config"] = cfg["config"] or {}
        stage = Stage(name, n, img, cfg, dict(meta))
        onbuild = list(cfg["config"].get("OnBuild") or [])
        if onbuild:
            cfg["config"]["OnBuild"] = None
            for text in onbuild:
                for sub in parse(text):
                    sub.line = ins.line
                    await self.say(f" # Executing ONBUILD {text}\n")
                    await self._step(stage, sub)
        return stage

    # ---------------------------------------------------------------- steps
    def _env(self, stage: Stage) -> dict[str, str]:
        env = dict(stage.args)
        for e in stage.config["config"].get("Env") or []:
            k, _, v = e.partition("=")
            env[k] = v
        return env

    async def _step(self, stage: Stage, ins: Instruction) -> None:
        c = ins.cmd
        env = self._env(stage)
        if c == "RUN":
            await self._run(stage, ins)
        elif c in ("COPY", "ADD"):
            await self._copy(stage, ins, env)
        elif c == "ARG":
            for k, v in self._arg_defs(ins, env):
                self.used_args.add(k)
                stage.args[k] = self.opts.build_args.get(k, v)
        elif c == "ENV":
            pairs = key_values(ins, expand(ins.args, env) if "=" not in ins.args else ins.args)
            pairs = [(k, expand(v, env)) for k, v in pairs]

            def setenv(cfg: dict[str, Any]) -> dict[str, Any]:
                cur = list(cfg.get("Env") or [])
                for k, v in pairs:
                    cur = [e for e in cur if e.partition("=")[0] != k] + [f"{k}={v}"]
                cfg["Env"] = cur
                return cfg

            await self._config_step(stage, ins.original.strip(), setenv)
        elif c == "LABEL":
            pairs = [(expand(k, env), expand(v, env)) for k, v in key_values(ins, ins.args)]
            await self._config_step(
                stage,
                ins.original.strip(),
                lambda cfg: _set(cfg, "Labels", {**(cfg.get("Labels") or {}), **dict(pairs)}),
            )
        elif c == "MAINTAINER":
            stage.config["author"] = ins.args
            await self._config_step(stage, ins.original.strip(), lambda cfg: cfg)
        elif c in ("CMD", "ENTRYPOINT"):
            words = ins.json_args()
            argv = words if words is not None else [*stage.shell, ins.args]
            key = "Cmd" if c == "CMD" else "Entrypoint"

            def setcmd(cfg: dict[str, Any]) -> dict[str, Any]:
                cfg[key] = argv
                if c == "ENTRYPOINT" and "Cmd" in cfg and not self._cmd_set_here(stage):
                    cfg["Cmd"] = None
                return cfg

            await self._config_step(stage, ins.original.strip(), setcmd)
        elif c == "WORKDIR":
            wd = expand(ins.args.strip(), env)
            if not wd:
                raise ins.fail("needs a path")
            cur = stage.config["config"].get("WorkingDir") or "/"
            wd = os.path.normpath(os.path.join(cur, wd))
            await self._workdir(stage, ins, wd)
        elif c == "USER":
            u = expand(ins.args.strip(), env)
            if not u:
                raise ins.fail("needs a user")
            await self._config_step(stage, ins.original.strip(), lambda cfg: _set(cfg, "User", u))
        elif c == "EXPOSE":
            ports: dict[str, Any] = {}
            for p in expand(ins.args, env).split():
                num, _, proto = p.partition("/")
                if not num.replace("-", "").isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                    raise ins.fail(f"invalid port {p!r}")
                ports[f"{num}/{proto or 'tcp'}"] = {}
            await self._config_step(
                stage,
                ins.original.strip(),
                lambda cfg: _set(cfg, "ExposedPorts", {**(cfg.get("ExposedPorts") or {}), **ports}),
            )
        elif c == "VOLUME":
            words = ins.json_args()
            vols = words if words is not None else expand(ins.args, env).split()
            if not vols:
                raise ins.fail("needs a path")
            await self._config_step(
                stage,
                ins.original.strip(),
                lambda cfg: _set(cfg, "Volumes", {**(cfg.get("Volumes") or {}), **{v: {} for v in vols}}),
            )
        elif c == "STOPSIGNAL":
            sig = expand(ins.args.strip(), env)
            await self._config_step(stage, ins.original.strip(), lambda cfg: _set(cfg, "StopSignal", sig))
        elif c == "SHELL":
            words = ins.json_args()
            if not words:
                raise ins.fail('needs a JSON array, e.g. SHELL ["/bin/bash", "-c"]')
            stage.shell = words
            await self._config_step(stage, ins.original.strip(), lambda cfg: _set(cfg, "Shell", words))
        elif c == "ONBUILD":
            inner = ins.args.strip()
            if inner.split(" ", 1)[0].upper() in ("ONBUILD", "FROM", "MAINTAINER"):
                raise ins.fail(f"{inner.split(' ', 1)[0]} is not allowed in ONBUILD")
            await self._config_step(
                stage,
                ins.original.strip(),
                lambda cfg: _set(cfg, "OnBuild", [*(cfg.get("OnBuild") or []), inner]),
            )
        elif c == "HEALTHCHECK":
            hc = _healthcheck(ins, stage.shell)
            await self._config_step(stage, ins.original.strip(), lambda cfg: _set(cfg, "Healthcheck", hc))
        elif c == "FROM":
            raise ins.fail("unexpected FROM")

    def _cmd_set_here(self, stage: Stage) -> bool:
        return bool(stage.config.get("_cmd_set"))

    # a config-only step ---------------------------------------------------
    async def _config_step(
        self, stage: Stage, text: str, change: Callable[[dict[str, Any]], dict[str, Any] | None]
    ) -> None:
        if text.split(" ", 1)[0].upper() == "CMD":
            stage.config["_cmd_set"] = True
        key = self._key(stage, text)
        hit = await self._cached(stage, key)
        if hit:
            return
        cfg = copy.deepcopy(stage.config)
        cfg["config"] = change(cfg["config"]) or cfg["config"]
        await self._make(stage, key, cfg, None, f"/bin/sh -c #(nop) {text}", empty=True)

    def _key(self, stage: Stage, text: str, extra: str = "") -> str:
        parent = stage.image.id if stage.image else "scratch"
        env = [f"{k}={v}" for k, v in sorted(stage.args.items())]
        raw = json.dumps([parent, text, extra, env, stage.config["config"].get("User"), self.opts.network])
        return hashlib.sha256(raw.encode()).hexdigest()

    async def _cached(self, stage: Stage, key: str) -> bool:
        if self.opts.no_cache:
            return False
        try:
            img = self.images.get(BUILD_NS, f"{CACHE_REPO}/{key}:latest")
        except NotFound:
            return False
        await self.say(" ---> Using cache\n")
        _adopt(stage, img)
        return True

    async def _make(
        self,
        stage: Stage,
        key: str,
        cfg: dict[str, Any],
        layer: tuple[str, str, int] | None,
        created_by: str,
        empty: bool = False,
    ) -> None:
        """Write config and manifest for the step's result and record it under its key."""
        cfg = copy.deepcopy(cfg)
        cfg.pop("_cmd_set", None)
        created = _now()
        cfg["created"] = created
        layers = [d.to_dict() for d in stage.image.layers] if stage.image else []
        diff_ids = list(stage.image.diff_ids) if stage.image else []
        if layer is not None:
            diff_id, digest, size = layer
            layers.append({"mediaType": OCI_LAYER_GZIP, "digest": digest, "size": size})
            diff_ids.append(diff_id)
        cfg["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
        hist = list(cfg.get("history") or [])
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        hist.append(entry)
        cfg["history"] = hist
        content = self.images.content
        cfg_bytes = json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode()
        cfg_digest = str(content.put(cfg_bytes))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cfg_digest, "size": len(cfg_bytes)},
            "layers": layers,
        }
        m_bytes = json.dumps(manifest, separators=(",", ":")).encode()
        m_digest = str(content.put(m_bytes))
        img = self.images.record(
            BUILD_NS,
            f"{CACHE_REPO}/{key}:latest",
            Descriptor(OCI_MANIFEST, m_digest, len(m_bytes)),
            action="build",
        )
        keep = stage.config.get("_cmd_set")
        _adopt(stage, img)
        if keep:
            stage.config["_cmd_set"] = True

    async def _base_ref(self, stage: Stage) -> str:
        """An image of the build namespace for the stage's state (a container's image)."""
        assert stage.image is not None
        name = f"{CACHE_REPO}/base-{stage.image.id[7:]}:latest"
        try:
            self.images.get(BUILD_NS, name)
        except NotFound:
            self.images.record(BUILD_NS, name, stage.image.target, action="build")
        return name

    # ------------------------------------------------------------------ RUN
    async def _run(self, stage: Stage, ins: Instruction) -> None:
        words = ins.json_args()
        env = self._env(stage)
        if ins.heredocs and words is None:
            script = ins.heredocs[0][1]
            argv = [*stage.shell, script]
        else:
            argv = words if words is not None else [*stage.shell, ins.args]
        key = self._key(stage, "RUN " + json.dumps(argv))
        if await self._cached(stage, key):
            return
        if stage.image is None:
            raise ins.fail("cannot RUN in an empty (scratch) stage: there is no shell")
        ref = await self._base_ref(stage)
        cfg = stage.config["config"]
        body: dict[str, Any] = {
            "image": ref,
            "name": f"podkit-build-{secrets.token_hex(6)}",
            "cmd": argv,
            "entrypoint": "",
            "env": [f"{k}={v}" for k, v in env.items()],
            "labels": {"podkit/build": "step"},
        }
        if cfg.get("WorkingDir"):
            body["workdir"] = cfg["WorkingDir"]
        if cfg.get("User"):
            body["user"] = cfg["User"]
        net = ins.flags.get("network") or self.opts.network
        if net and net != "default":
            body["network"] = net
        svc = self.containers
        rec = None
        # The lease is older than the step container's snapshot: GC keeps that, and the
        # layer's blob and snapshot, until the step's image is recorded.
        with self.images.leases.lease(BUILD_NS) as lease:
            try:
                # A create cut short by a cancellation (the client left) would leave a
                # half-made container: let it finish, then the finally removes it.
                making = asyncio.ensure_future(svc.create(BUILD_NS, body))
                try:
                    rec = await asyncio.shield(making)
                except asyncio.CancelledError:
                    with contextlib.suppress(PodkitError):
                        rec = await making
                    raise
                await svc.start(BUILD_NS, rec.id)
                entries = await svc.logs(BUILD_NS, rec.id, follow=True)
                async for e in entries:
                    await self.say(e.data.decode(errors="replace"))
                code = await svc.wait(BUILD_NS, rec.id)
                if code != 0:
                    raise ins.fail(f"The command '{' '.join(argv)}' returned a non-zero code: {code}")
                created_by = "/bin/sh -c " + ins.args if words is None else "RUN " + json.dumps(argv)
                await self._commit_run(stage, key, rec, lease, created_by)
            finally:
                if rec is not None:
                    await asyncio.shield(self._remove(rec.id))

    async def _commit_run(self, stage: Stage, key: str, rec: Record, lease: str, created_by: str) -> None:
        """The step container's changes as the step's layer; its snapshot, pruned to
        that layer, becomes the layer's committed snapshot (the next step prepares on
        it, no unpack). A snapshot committed for a step whose image is not recorded
        (a failure, a cancellation) is removed again."""
        from podkit.containers import commit as _commit
        from podkit.images.image import chain_id_of

        ctx = self.containers.ctx
        dropped: list[str] = []
        found = await asyncio.to_thread(_commit.changes_of, ctx, rec, dropped)

        def write() -> tuple[str, str, int]:
            with self.images.content.writer() as w:
                return _commit.write_gzip_layer(w, found)

        layer = await asyncio.to_thread(write)
        self.images.leases.add(BUILD_NS, lease, "content", layer[1])
        assert stage.image is not None
        self.images.leases.add(BUILD_NS, lease, "snapshot", chain_id_of(stage.image.chain_id, layer[0]))
        keeping = asyncio.ensure_future(_commit.keep_snapshot(ctx, rec, layer[0], layer[1], dropped))
        chain: str | None = None
        try:
            chain = await asyncio.shield(keeping)
            await self._make(stage, key, stage.config, layer, created_by)
        except BaseException:
            if chain is None and not keeping.cancelled():
                with contextlib.suppress(PodkitError):
                    chain = await keeping
            if chain is not None:
                self._drop_snapshot(chain)
            raise

    def _drop_snapshot(self, chain: str) -> None:
        try:
            self.images.snapshots.remove(chain)
        except PodkitError as e:
            log.warning("build: removing the snapshot %s of a step that failed: %s", chain, e.message)

    async def _remove(self, cid: str) -> None:
        try:
            await self.containers.remove(BUILD_NS, cid, force=True)
        except PodkitError as e:
            log.warning("build: removing step container %s failed: %s", cid[:12], e.message)

    # --------------------------------------------------------- COPY and ADD
    async def _copy(self, stage: Stage, ins: Instruction, env: dict[str, str]) -> None:
        words = ins.json_args()
        if words is None:
            words = [expand(w, env) for w in ins.args.split()]
        if ins.heredocs:
            words = words[:-1] + [words[-1]]
        if len(words) < 2 and not ins.heredocs:
            raise ins.fail("needs a source and a destination")
        *srcs, dest = words
        src_root = self.context
        release: Callable[[], None] | None = None
        if ins.flags.get("from"):
            src_root, release = await self._stage_root(ins, ins.flags["from"])
        try:
            wd = stage.config["config"].get("WorkingDir") or "/"
            dest_abs = os.path.normpath(os.path.join(wd, dest)) + ("/" if dest.endswith("/") else "")
            items: list[tuple[str, Path | bytes]] = []
            here = [s for s in srcs if not s.startswith("<<")]
            docs = dict(ins.heredocs)
            for s in srcs:
                if s.startswith("<<"):
                    name = s.lstrip("<-").strip("'\"")
                    items.append((name, docs.get(name, "").encode()))
            paths: list[Path] = []
            for s in here:
                if "://" in s:
                    raise ins.fail(f"{s}: remote URLs are not fetched (podkit builds offline)")
                try:
                    paths += glob_sources(src_root, s)
                except InvalidArgument as e:
                    raise ins.fail(e.message) from None
            for p in paths:
                items.append((p.name, p))
            digest = await asyncio.to_thread(content_digest, paths)
            docs_digest = hashlib.sha256(json.dumps(ins.heredocs).encode()).hexdigest()
            key = self._key(
                stage, f"{ins.cmd} {json.dumps(ins.flags, sort_keys=True)} {dest_abs}", digest + docs_digest
            )
            if await self._cached(stage, key):
                return
            chown = await self._owner(stage, ins, expand(ins.flags.get("chown", ""), env))
            chmod = None
            if ins.flags.get("chmod"):
                try:
                    chmod = int(ins.flags["chmod"], 8)
                except ValueError:
                    raise ins.fail(f"invalid --chmod {ins.flags['chmod']!r}: an octal mode") from None
            multi = (
                len(items) > 1
                or dest.endswith("/")
                or (len(paths) == 1 and paths[0].is_dir() and not dest.endswith("/") and False)
            )
            exists = await self._existing(stage)

            def write() -> tuple[str, str, int]:
                with self.images.content.writer() as w:
                    return _write_copy_layer(
                        w, items, dest_abs.rstrip("/") or "/", multi, chown, chmod, exists, ins.cmd == "ADD"
                    )

            with self.images.leases.lease(BUILD_NS) as lease:
                layer = await asyncio.to_thread(write)
                self.images.leases.add(BUILD_NS, lease, "content", layer[1])
                kind = "multi" if len(items) > 1 else "file"
                created_by = f"/bin/sh -c #(nop) {ins.cmd} {kind}:{digest[7:]} in {dest_abs}"
                await self._make(stage, key, stage.config, layer, created_by)
        finally:
            if release is not None:
                await asyncio.to_thread(release)

    async def _existing(self, stage: Stage) -> Callable[[str], Path | None]:
        """How to find a path in the stage's current tree (its unpacked snapshots)."""
        if stage.image is None:
            return lambda rel: None
        await self.images.unpack(BUILD_NS, stage.image)
        snaps = self.images.snapshots
        lowers = [snaps.tree(c) for c in reversed(stage.image.chain)]
        from podkit.snapshots.diff import _in_lowers

        def find(rel: str) -> Path | None:
            rel = rel.strip("/")
            if not rel:
                return lowers[0] if lowers else None
            if not _in_lowers(rel, lowers):
                return None
            for low in lowers:
                if os.path.lexists(low / rel):
                    return low / rel
            return None

        return find

    async def _owner(self, stage: Stage, ins: Instruction, spec: str) -> tuple[int, int] | None:
        if not spec:
            return None
        user, _, group = spec.partition(":")
        find = await self._existing(stage)

        def lookup(name: str, db: str, what: str) -> int:
            if name.isdigit():
                return int(name)
            p = find(db)
            if p is not None:
                for line in p.read_text(errors="replace").splitlines():
                    f = line.split(":")
                    if len(f) > 2 and f[0] == name:
                        return int(f[2])
            raise ins.fail(f"--chown: no {what} {name!r} in the image's /{db}")

        uid = lookup(user, "etc/passwd", "user")
        gid = lookup(group, "etc/group", "group") if group else uid
        return uid, gid

    async def _stage_root(self, ins: Instruction, ref: str) -> tuple[Path, Callable[[], None]]:
        """A mounted read-only view of a stage's (or an image's) tree."""
        st = self.stages.get(ref.lower())
        img: Image | None = st.image if st else None
        if st is None:
            from podkit.containers.create import find_image

            try:
                img = await find_image(self.containers.ctx, self.ns, ref)
            except PodkitError as e:
                raise ins.fail(f"--from={ref}: {e.message}") from None
        if img is None:
            raise ins.fail(f"--from={ref}: the stage is empty")
        await self.images.unpack(BUILD_NS if st else self.ns, img)
        from podkit.containers.rootfs import mount_all, unmount

        snaps = self.images.snapshots
        key = f"build-view-{secrets.token_hex(6)}"
        assert img.chain_id is not None
        mounts = snaps.view(key, img.chain_id)
        target = self.containers.ctx.state_dir / "build" / key
        target.mkdir(parents=True)
        try:
            await asyncio.to_thread(mount_all, mounts, target)
        except BaseException:
            target.rmdir()
            snaps.remove(key)
            raise

        def release() -> None:
            unmount(target)
            try:
                target.rmdir()
            except OSError as e:
                log.warning("build: removing the view mount point %s failed: %r", target, e)
            try:
                snaps.remove(key)
            except PodkitError as e:
                log.warning("build: removing view snapshot %s failed: %s", key, e.message)

        return target, release

    async def _workdir(self, stage: Stage, ins: Instruction, wd: str) -> None:
        find = await self._existing(stage)
        text = f"WORKDIR {wd}"
        if find(wd) is not None:
            await self._config_step(stage, text, lambda cfg: _set(cfg, "WorkingDir", wd))
            return
        key = self._key(stage, text)
        if await self._cached(stage, key):
            return
        owner = None
        user = stage.config["config"].get("User")
        if user:
            with contextlib.suppress(BuildError):
                owner = await self._owner(stage, ins, user)

        def write() -> tuple[str, str, int]:
            with self.images.content.writer() as w:
                return _write_copy_layer(w, [], wd, True, owner, None, find, False, mkdir_only=True)

        with self.images.leases.lease(BUILD_NS) as lease:
            layer = await asyncio.to_thread(write)
            self.images.leases.add(BUILD_NS, lease, "content", layer[1])
            cfg = copy.deepcopy(stage.config)
            cfg["config"]["WorkingDir"] = wd
            await self._make(stage, key, cfg, layer, f"/bin/sh -c #(nop) {text}")


def _set(cfg: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    cfg[key] = value
    return cfg


def _adopt(stage: Stage, img: Image) -> None:
    stage.image = img
    keep_cmd = stage.config.get("_cmd_set")
    stage.config = copy.deepcopy(img.config)
    stage.config["config"] = stage.config.get("config") or {}
    if keep_cmd:
        stage.config["_cmd_set"] = True


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
    import re

    total = 0.0
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ins.fail(f"invalid duration {text!r}")
    for num, unit in parts:
        total += float(num) * units[unit]
    return int(total * 1e9)


# -- the COPY layer --------------------------------------------------------------


class _ToWriter:
    def __init__(self, w: Any) -> None:
        self.w = w

    def write(self, data: bytes) -> int:
        self.w.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


def _write_copy_layer(
    w: Any,
    items: list[tuple[str, Path | bytes]],
    dest: str,
    into_dir: bool,
    chown: tuple[int, int] | None,
    chmod: int | None,
    exists: Callable[[str], Path | None],
    extract_tars: bool,
    mkdir_only: bool = False,
) -> tuple[str, str, int]:
    from isal import igzip

    gz = igzip.IGzipFile(fileobj=_ToWriter(w), mode="wb", compresslevel=1, mtime=0)  # type: ignore[no-untyped-call]  # isal: no types
    raw = HashingWriter(gz)
    entries: dict[str, tarfile.TarInfo] = {}
    data: dict[str, Path | bytes] = {}
    links: dict[tuple[int, int], str] = {}

    def add_dir(rel: str, src: Path | None, forced: bool = False) -> None:
        if rel in entries:
            return
        ti = tarfile.TarInfo(rel)
        ti.type = tarfile.DIRTYPE
        if src is not None:
            st = os.lstat(src)
            ti.mode, ti.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
            ti.uid, ti.gid = (st.st_uid, st.st_gid) if chown is None else chown
        else:
            ti.mode = 0o755
            ti.uid, ti.gid = chown if (chown and forced) else (0, 0)
        if chmod is not None and src is not None:
            ti.mode = chmod
        entries[rel] = ti

    def parents(rel: str) -> None:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p not in entries and exists(p) is None:
                add_dir(p, None)

    def add_path(rel: str, src: Path) -> None:
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            add_dir(rel, src)
            for name in sorted(os.listdir(src)):
                add_path(f"{rel}/{name}", src / name)
            return
        ti = tarfile.TarInfo(rel)
        ti.mode, ti.mtime = stat.S_IMODE(st.st_mode), int(st.st_mtime)
        ti.uid, ti.gid = chown if chown is not None else (0, 0)
        if chmod is not None:
            ti.mode = chmod
        if stat.S_ISLNK(st.st_mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(src)
        elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
            # hard links within what is copied stay links (as buildah and docker keep them)
            ti.type, ti.linkname = tarfile.LNKTYPE, links[(st.st_dev, st.st_ino)]
        elif stat.S_ISREG(st.st_mode):
            if st.st_nlink > 1:
                links[(st.st_dev, st.st_ino)] = rel
            ti.size = st.st_size
            data[rel] = src
        else:
            return
        entries[rel] = ti

    d = dest.strip("/")
    if mkdir_only:
        parents(d + "/x")
        if d and d not in entries:
            add_dir(d, None, forced=True)
    for name, src in items:
        if isinstance(src, bytes):
            rel = f"{d}/{name}".strip("/") if into_dir else d
            parents(rel)
            ti = tarfile.TarInfo(rel)
            ti.size, ti.mode, ti.mtime = len(src), chmod if chmod is not None else 0o644, 0
            ti.uid, ti.gid = chown or (0, 0)
            entries[rel], data[rel] = ti, src
            continue
        if extract_tars and src.is_file() and _is_tar(src):
            parents(d + "/x")
            _add_tar_entries(src, d, entries, data)
            continue
        if src.is_dir() and not src.is_symlink():
            parents(d + "/x")
            if d and d not in entries and exists(d) is None:
                add_dir(d, None, forced=True)
            for n in sorted(os.listdir(src)):
                add_path(f"{d}/{n}".strip("/"), src / n)
            continue
        target_is_dir = into_dir or (exists(d) is not None and exists(d).is_dir())  # type: ignore[union-attr]
        rel = f"{d}/{name}".strip("/") if target_is_dir else d
        parents(rel)
        add_path(rel, src)
    with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[call-overload]
        for rel in entries:  # walk order: parents first, a link after its target
            ti = entries[rel]
            ti.uname = ti.gname = ""
            payload = data.get(rel)
            if isinstance(payload, bytes):
                tf.addfile(ti, io.BytesIO(payload))
            elif isinstance(payload, Path):
                with open(payload, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
    gz.close()
    digest = w.commit()
    return raw.digest(), str(digest), w.offset


def _is_tar(p: Path) -> bool:
    try:
        return tarfile.is_tarfile(p)
    except OSError:
        return False


def _add_tar_entries(
    src: Path, d: str, entries: dict[str, tarfile.TarInfo], data: dict[str, Path | bytes]
) -> None:
    """ADD of a local tar: its members land below ``d`` (read into memory: contexts are
    local files the user chose; names are normalised and may not climb out)."""
    with tarfile.open(src, "r:*") as tf:
        for m in tf:
            name = os.path.normpath(m.name.lstrip("/"))
            if name.startswith("..") or name == ".":
                continue
            rel = f"{d}/{name}".strip("/")
            m2 = copy.copy(m)
            m2.name = rel
            if m.isfile():
                f = tf.extractfile(m)
                data[rel] = f.read() if f else b""
            elif m.islnk():
                m2.linkname = f"{d}/{os.path.normpath(m.linkname.lstrip('/'))}".strip("/")
            elif not (m.isdir() or m.issym() or m.isfifo()):
                continue
            entries[rel] = m2


async def build_from_tar(
    images: ImageService,
    containers: ContainerService,
    ns: str,
    tar: BinaryIO,
    opts: BuildOptions,
    emit: Emit,
    workdir: Path,
) -> str:
    """Unpack the context tar into ``workdir`` (removed after) and build."""
    import shutil

    from podkit.build.context import apply_dockerignore, unpack_context

    ctx_dir = workdir / "context"
    try:
        await asyncio.to_thread(unpack_context, tar, ctx_dir)
        await asyncio.to_thread(apply_dockerignore, ctx_dir, {opts.dockerfile, ".dockerignore"})
        return await Builder(images, containers, ns, ctx_dir, opts, emit).build()
    finally:
        await asyncio.to_thread(shutil.rmtree, workdir, True)
