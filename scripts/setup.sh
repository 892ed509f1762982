#!/usr/bin/env bash
# Installs what podkit needs on a Debian 12 host, idempotently: Debian packages,
# then a virtualenv with podkit in it. Works offline from PyPI/apt mirrors only.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(python3 python3-venv runc conmon containernetworking-plugins catatonit iptables aardvark-dns
      iproute2 busybox-static skopeo umoci docker-registry apache2-utils zstd procps openssl
      docker-compose buildah strace)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian starts docker-registry's service on install; podkit's tests run their own
# registries, so keep that one from starting. Never kill by name: a registry the user
# runs is theirs. While we install, a policy-rc.d (see invoke-rc.d(8)) denies that one
# service's start; one the admin already has is left alone and decides instead.
POLICY=/usr/sbin/policy-rc.d
our_policy=""
drop_policy() {
  if [ -n "$our_policy" ]; then rm -f "$POLICY"; our_policy=""; fi
}
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  registry_new=""
  [[ " ${missing[*]} " == *" docker-registry "* ]] && registry_new=1
  if [ -n "$registry_new" ] && [ ! -e "$POLICY" ]; then
    trap drop_policy EXIT
    printf '#!/bin/sh\n# podkit setup.sh, during apt-get only\n[ "$1" = docker-registry ] && exit 101\nexit 0\n' >"$POLICY"
    chmod 755 "$POLICY"
    our_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  drop_policy
  if [ -n "$registry_new" ]; then
    # Only the service this install made: stopped if it started anyway (the admin's
    # policy allowed it), and not started at boot either.
    if [ -d /run/systemd/system ]; then
      systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
    else
      invoke-rc.d docker-registry stop >/dev/null 2>&1 || true
      update-rc.d docker-registry disable >/dev/null 2>&1 || true
    fi
  fi
fi

VENV=${VENV:-.venv}
PY=/usr/bin/python3
stamp="$VENV/.podkit-installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  # An editable install of the checkout: pyproject's package-dir makes it a plain path
  # in a .pth file, not setuptools' import-hook finder (~20 ms of every `podkit` start).
  "$VENV/bin/pip" install -q -e '.[dev]'
  touch "$stamp"
fi
# The venv's own setuptools (ensurepip's) is run by nothing: pip builds podkit with the
# one pyproject's build-system names, in an isolated env. Its distutils-precedence.pth
# imports _distutils_hack at every interpreter start (~0.3 ms of each `podkit` call).
if compgen -G "$VENV/lib/python3*/site-packages/distutils-precedence.pth" >/dev/null; then
  "$VENV/bin/pip" uninstall -y -q setuptools
fi
# podkitd runs under -OO (podkit/daemon/program.py) from bytecode compiled here into a
# cache of the venv's own, which it reads through -X pycache_prefix: the system's stdlib
# has no .opt-2.pyc (nor should podkit write any into /usr/lib), and this environment may
# forbid writing bytecode (PYTHONDONTWRITEBYTECODE), so without it every start would
# compile ~450 modules from source (+0.6 s). Every source podkitd may import: podkit, the
# venv's packages, the stdlib. A re-run compiles only what changed (~1 s).
venv_abs=$(cd "$VENV" && pwd)
stdlib=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
"$VENV/bin/python" -X pycache_prefix="$venv_abs/podkitd-pycache" -m compileall -q -j0 -o 2 \
  -x '/(test|tests|idlelib|tkinter|lib2to3|turtledemo|ensurepip|pydoc_data)/' \
  "$PWD/podkit" "$venv_abs"/lib/python3*/site-packages "$stdlib" >/dev/null
