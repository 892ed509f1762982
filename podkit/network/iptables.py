"""Removing iptables rules the CNI plugins left for one owner.

The plugins tag every per-container rule with a comment naming the container id
(bridge: ``name: "net" id: "<id>"``, portmap: ``dnat name: ... id: ...``) and put
them in per-container chains. Normally DEL removes them; but the bridge plugin
skips its masquerade rules when the netns is already gone, so after a crash
podkit finds and removes what carries the owner's id itself.

The network layer's iptables-restore runs (here and in portfwd.py) go through
``restore`` (or ``restore_sync`` in a thread of its own).
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import subprocess

log = logging.getLogger(__name__)

BUILTIN = {"INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING"}


async def _run(*args: str) -> tuple[int, str]:
    try:
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
    except FileNotFoundError:
        return 127, f"{args[0]} not found"
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


def parse_save(text: str) -> dict[str, list[list[str]]]:
    """iptables-save output as {table: [rule args after -A]}."""
    tables: dict[str, list[list[str]]] = {}
    cur = ""
    for line in text.splitlines():
        if line.startswith("*"):
            cur = line[1:].strip()
            tables.setdefault(cur, [])
        elif line.startswith("-A ") and cur:
            tables[cur].append(shlex.split(line)[1:])
    return tables


def jump_target(rule: list[str]) -> str:
    """The chain (or target) a rule jumps or goes to, '' if none."""
    for i, a in enumerate(rule):
        if a in ("-j", "--jump", "-g", "--goto") and i + 1 < len(rule):
            return rule[i + 1]
    return ""


def matching_rules(text: str, needle: str) -> dict[str, list[list[str]]]:
    """Rules of an iptables-save text with `needle` in one of their arguments, by table."""
    out: dict[str, list[list[str]]] = {}
    for table, rules in parse_save(text).items():
        hits = [r for r in rules if any(needle in a for a in r)]
        if hits:
            out[table] = hits
    return out


def _own_chain(chain: str) -> bool:
    """Per-owner or per-network chains (not the built-ins, not shared scaffolding)."""
    return (
        chain.startswith(("CNI-", "PODKIT-"))
        and chain not in BUILTIN
        and not chain.startswith("CNI-HOSTPORT-")
        and not chain.startswith("PODKIT-HOSTPORT-")
        and chain not in ("CNI-FORWARD", "CNI-ADMIN")
    )


async def scrub_matching(needle: str) -> int:
    """Delete every rule mentioning `needle` and the per-owner chains they are in or
    jump to; return how many rules and chains went."""
    rc, text = await _run("iptables-save")
    if rc != 0:
        log.warning("iptables-save failed: %s", text.strip())
        return 0
    removed = 0
    all_rules = parse_save(text)
    for table, hits in matching_rules(text, needle).items():
        chains = {c for c in {jump_target(r) for r in hits} | {r[0] for r in hits} if _own_chain(c)}
        for rule in hits:
            if rule[0] in chains:
                continue  # goes with its chain
            rc, out = await _run("iptables", "-w", "-t", table, "-D", *rule)
            if rc == 0:
                removed += 1
            else:
                log.debug("iptables -D %s: %s", " ".join(rule), out.strip())
        # Jumps into those chains from rules without the needle would block -X.
        for rule in all_rules.get(table, []):
            if rule[0] not in chains and jump_target(rule) in chains and rule not in hits:
                await _run("iptables", "-w", "-t", table, "-D", *rule)
        for chain in chains:
            await _run("iptables", "-w", "-t", table, "-F", chain)
        for chain in chains:
            rc, _ = await _run("iptables", "-w", "-t", table, "-X", chain)
            if rc == 0:
                removed += 1
    return removed


async def scrub_owner(owner_id: str) -> int:
    """Delete every rule tagged with the owner's id (the plugins' comments) and the
    per-owner chains; return the count."""
    removed = await scrub_matching(f'id: "{owner_id}"')
    if removed:
        log.info("removed %d leftover iptables rules/chains of %s", removed, owner_id[:12])
    return removed


async def has_dnat(network: str, owner_id: str) -> bool:
    """Whether portmap's DNAT jump for this owner on this network is in place."""
    rc, text = await _run("iptables", "-w", "-t", "nat", "-S", "CNI-HOSTPORT-DNAT")
    return rc == 0 and f'dnat name: \\"{network}\\" id: \\"{owner_id}\\"' in text


async def forward_policy() -> str:
    """The filter table's FORWARD policy (ACCEPT, DROP), '' if iptables cannot tell."""
    rc, text = await _run("iptables", "-w", "-S", "FORWARD")
    for line in text.splitlines() if rc == 0 else []:
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return ""


async def ensure_masquerade(chain: str, subnet: str, comment: str) -> None:
    """Masquerade traffic leaving `subnet` for elsewhere, through one chain.

    POSTROUTING -s subnet -> chain: RETURN for the subnet itself and multicast,
    MASQUERADE the rest. Idempotent; one iptables-restore call when missing.
    """
    rc, text = await _run("iptables", "-w", "-t", "nat", "-S", "POSTROUTING")
    jump = f"-j {chain}"
    if rc == 0 and any(line.endswith(jump) for line in text.splitlines()):
        return
    c = comment.replace('"', "")
    script = (
        "*nat\n"
        f":{chain} - [0:0]\n"
        f'-A {chain} -d {subnet} -m comment --comment "{c}" -j RETURN\n'
        f'-A {chain} -d 224.0.0.0/4 -m comment --comment "{c}" -j RETURN\n'
        f'-A {chain} -m comment --comment "{c}" -j MASQUERADE\n'
        f'-A POSTROUTING -s {subnet} -m comment --comment "{c}" -j {chain}\n'
        "COMMIT\n"
    )
    await _restore_checked(script)


async def remove_masquerade(chain: str, subnet: str) -> None:
    """Undo ensure_masquerade (nothing to do when it is not there)."""
    rc, text = await _run("iptables-save", "-t", "nat")
    if rc != 0 or f":{chain} " not in text:
        return
    lines = ["*nat"]
    for rule in parse_save(text).get("nat", []):
        if rule[0] != chain and jump_target(rule) == chain:
            lines.append("-D " + " ".join(_quote(a) for a in rule))
    lines += [f"-F {chain}", f"-X {chain}", "COMMIT", ""]
    await _restore_checked("\n".join(lines))


def _quote(arg: str) -> str:
    """Quote as iptables-save does (double quotes, inner ones escaped)."""
    if arg and not any(c in arg for c in (" ", '"', "\\")):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


_RESTORE = ("iptables-restore", "-w", "--noflush")


async def restore(script: str) -> tuple[int, str]:
    """Apply an iptables-restore script on top of what is there: (exit status, output)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *_RESTORE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except FileNotFoundError:
        return 127, "iptables-restore not found"
    out, _ = await proc.communicate(script.encode())
    rc = proc.returncode or 0
    return rc, out.decode(errors="replace").strip() or _silent(rc)


def restore_sync(script: str) -> tuple[int, str]:
    """restore() for a thread of its own (blocking)."""
    try:
        r = subprocess.run(_RESTORE, input=script.encode(), capture_output=True, check=False)
    except FileNotFoundError:
        return 127, "iptables-restore not found"
    return r.returncode, (r.stderr or r.stdout).decode(errors="replace").strip() or _silent(r.returncode)


def _silent(rc: int) -> str:
    """What to say of a restore that failed without a word (killed, say)."""
    if rc < 0:
        return f"iptables-restore was killed by signal {-rc}"
    return f"iptables-restore exited with status {rc}" if rc else ""


async def _restore_checked(script: str) -> None:
    rc, out = await restore(script)
    if rc != 0:
        from podkit.errors import Internal

        raise Internal(f"iptables-restore failed: {out}")


async def nat_chains() -> set[str]:
    """Names of the nat table's chains (one iptables-save call)."""
    rc, text = await _run("iptables-save", "-t", "nat")
    return {line[1:].split()[0] for line in text.splitlines() if line.startswith(":")} if rc == 0 else set()
