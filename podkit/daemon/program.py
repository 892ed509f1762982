"""The podkitd program ([project.scripts]): main() in an interpreter run with -OO.

Docstrings and asserts are ~1.5 MB of a fresh podkitd's RSS (code objects of podkit,
aiohttp, asyncio and the rest it imports; issue 8, item 5). Nothing podkitd runs reads
a docstring or relies on an assert (the asserts state invariants for mypy), so the
program re-executes its interpreter with ``-OO`` before importing any of it — only
where the installation compiled the bytecode for it (scripts/setup.sh fills
``<venv>/podkitd-pycache``, read through ``-X pycache_prefix``): without those caches
every start would compile ~450 modules from source (with PYTHONDONTWRITEBYTECODE, as
here) or write ``.opt-2.pyc`` files beside the system's own.

Left as it is: an interpreter already optimized, or told how by ``PYTHONOPTIMIZE``
(``PYTHONOPTIMIZE=0 podkitd`` keeps docstrings and asserts, e.g. to debug); an embedder
calling ``main()``; ``python -m podkit.daemon.main``. The flags are on the command line,
not in the environment, so podkitd's children (conmon, runc, CNI plugins) see nothing.
"""

import os
import sys

CACHE = "podkitd-pycache"


def reexec_argv() -> list[str] | None:
    """The command line to run this program under -OO, or None to run it as it is."""
    if sys.flags.optimize or "PYTHONOPTIMIZE" in os.environ:
        return None
    cache = os.path.join(sys.prefix, CACHE)
    if not os.path.isdir(cache):
        return None
    return [sys.executable, "-OO", "-X", f"pycache_prefix={cache}", *sys.orig_argv[1:]]


def entry() -> None:
    argv = reexec_argv()
    if argv is not None:
        os.execv(sys.executable, argv)
    if sys.flags.optimize:
        _name_process()
    from podkit.daemon.main import main

    main()


def _name_process() -> None:
    """The re-executed interpreter is named after its binary (python3); `pgrep -x
    podkitd` and ps should still find podkitd, as they do the script's process."""
    import ctypes

    pr_set_name = 15  # linux/prctl.h
    libc = ctypes.CDLL(None)
    if libc.prctl(pr_set_name, b"podkitd", 0, 0, 0) != 0:
        print("podkitd: prctl(PR_SET_NAME) failed; the process is named python3", file=sys.stderr)
