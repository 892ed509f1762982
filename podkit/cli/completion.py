"""Bash completion generated from the argument parser, so it never drifts."""

from __future__ import annotations

import argparse


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def _flags(p: argparse.ArgumentParser) -> list[str]:
    return sorted(s for a in p._actions for s in a.option_strings)


def bash_script() -> str:
    from podkit.cli.main import build_parser

    root = build_parser()
    cases = []
    top = _subparsers(root)
    for name, sp in sorted(top.items()):
        subs = _subparsers(sp)
        words = " ".join(sorted(subs) + _flags(sp))
        cases.append(f'    "{name}") words="{words}" ;;')
        for sname, ssp in sorted(subs.items()):
            cases.append(f'    "{name} {sname}") words="{" ".join(_flags(ssp))}" ;;')
    body = "\n".join(cases)
    return f"""# bash completion for podkit; install: podkit completion bash > /etc/bash_completion.d/podkit
_podkit() {{
  local cur words path i
  cur="${{COMP_WORDS[COMP_CWORD]}}"
  path=""
  for ((i=1; i<COMP_CWORD; i++)); do
    case "${{COMP_WORDS[i]}}" in -*) ;; *) path="${{path:+$path }}${{COMP_WORDS[i]}}" ;; esac
  done
  case "$path" in
    "") words="{" ".join(sorted(top) + _flags(root))}" ;;
{body}
    *) words="" ;;
  esac
  COMPREPLY=( $(compgen -W "$words" -- "$cur") )
}}
complete -o default -F _podkit podkit
"""
