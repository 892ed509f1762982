#!/usr/bin/env bash
# Installs what podkit needs on a Debian 12 host, idempotently: Debian packages,
# then a virtualenv with podkit in it. Works offline from PyPI/apt mirrors only.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(python3 python3-venv runc conmon containernetworking-plugins catatonit iptables
      iproute2 busybox-static skopeo umoci docker-registry apache2-utils zstd procps openssl)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the registry service on install; podkit's tests run their own.
  pkill -x docker-registry 2>/dev/null || true
fi

VENV=${VENV:-.venv}
PY=/usr/bin/python3
stamp="$VENV/.podkit-installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  "$VENV/bin/pip" install -q -e '.[dev]'
  touch "$stamp"
fi
