#!/usr/bin/env bash
# The podkit demo: containers vs pods, shown with real containers.
#
# Starts podkitd (root /var/lib/podkit, socket /run/podkit/podkit.sock) in the
# background if it is not running and leaves it running, as a service would; stop it
# with `kill $(cat /run/podkit/podkitd.pid)` (or `pkill -x podkitd` if you started it).
# Imports a busybox image built offline from the host's busybox-static, then runs two
# containers inside one pod and the same two outside, and shows what they share.
# Removes what it created (the daemon and the image stay). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
SOCK=/run/podkit/podkit.sock
export PODKIT_HOST="unix://$SOCK"
unset PODKIT_NAMESPACE
LOG=/var/log/podkitd-demo.log
PORT=8080
# The server: busybox httpd on the container's (or pod's) loopback only.
WEB="mkdir -p /www && echo hello from the web container > /www/index.html && exec httpd -f -p 127.0.0.1:$PORT -h /www"

bold=$'\033[1m'; dim=$'\033[2m'; green=$'\033[32m'; red=$'\033[31m'; off=$'\033[0m'
[ -t 1 ] || { bold=; dim=; green=; red=; off=; }

heading() { printf '\n%s== %s ==%s\n' "$bold" "$*" "$off"; }
say() { printf '%s\n' "$*"; }
# A command as one would type it: arguments with spaces or quotes in single quotes.
show() {
  local out="" a
  for a in "$@"; do
    if [[ "$a" =~ [[:space:]\'\"\$\&\;\>\<\|\*\(\)] ]]; then
      a="'${a//\'/\'\\\'\'}'"
    fi
    out+="$a "
  done
  printf '%s$ %s%s\n' "$dim" "${out% }" "$off"
}
# Show a command, run it, indent its output.
run() {
  show "$@"
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/    /'
  if [ "$rc" -ne 0 ]; then
    printf '    %s(exit %s)%s\n' "$red" "$rc" "$off"
  fi
  return "$rc"
}
# Like run, but a failure is the expected outcome.
run_fails() {
  show "$@"
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/    /'
  if [ "$rc" -eq 0 ]; then
    printf '    %s(unexpectedly succeeded)%s\n' "$red" "$off"
  else
    printf '    %s(fails, as it should: exit %s)%s\n' "$green" "$rc" "$off"
  fi
}

cleanup() {
  podkit pod rm -f demo-pod >/dev/null 2>&1 || true
  podkit rm -f demo-solo-web demo-solo-client >/dev/null 2>&1 || true
}

# -- the daemon ------------------------------------------------------------------------
heading "podkitd"
if podkit version >/dev/null 2>&1; then
  say "podkitd is already running on $SOCK"
else
  mkdir -p /run/podkit
  say "starting podkitd in the background (log: $LOG)"
  nohup podkitd >>"$LOG" 2>&1 </dev/null &
  echo $! >/run/podkit/podkitd.pid
  for _ in $(seq 1 100); do
    podkit version >/dev/null 2>&1 && break
    sleep 0.1
  done
  podkit version >/dev/null 2>&1 || { say "podkitd did not come up; see $LOG"; tail -20 "$LOG"; exit 1; }
  say "podkitd is up (pid $(cat /run/podkit/podkitd.pid)); stop it with: kill \$(cat /run/podkit/podkitd.pid)"
fi
cleanup

# -- an image, offline ------------------------------------------------------------------
heading "An image built offline from the host's busybox-static"
if podkit image inspect busybox >/dev/null 2>&1; then
  say "busybox is already in the store"
else
  tmp=$(mktemp -d /var/tmp/podkit-demo.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  python -c "
import sys
from pathlib import Path
sys.path.insert(0, '.')
from tests.fixtures.images import build_busybox_rootfs, tar_directory
root = build_busybox_rootfs(Path('$tmp/rootfs'))
tar_directory(root, Path('$tmp/busybox.tar'))
"
  run podkit image import --change 'CMD ["sh"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$tmp/busybox.tar" docker.io/library/busybox:latest
fi
run podkit images

# -- in a pod ---------------------------------------------------------------------------
heading "Two containers in one pod"
say "A pod holds its network, IPC and UTS namespaces in a tiny infra process (catatonit);"
say "each container joins them but keeps its own root file system and process tree."
run podkit pod create --name demo-pod --hostname demo-pod
run podkit run -d --pod demo-pod --name demo-web busybox \
  sh -c "$WEB"
run podkit run -d --pod demo-pod --name demo-client busybox sleep 3600
run podkit pod ps

heading "Pod: shared localhost (the client fetches the server on 127.0.0.1)"
for _ in $(seq 1 50); do
  podkit exec demo-client wget -qO- "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
  sleep 0.1
done
run podkit exec demo-client wget -qO- "http://127.0.0.1:$PORT/"

heading "Pod: shared IPC (a file in /dev/shm written by one, read by the other)"
run podkit exec demo-web sh -c 'echo "shared memory, written by demo-web" > /dev/shm/note'
run podkit exec demo-client cat /dev/shm/note

heading "Pod: shared hostname"
run podkit exec demo-web hostname
run podkit exec demo-client hostname

heading "Pod: but NOT each other's processes (each has its own PID 1; no httpd in the client)"
run podkit exec demo-web ps
run podkit exec demo-client ps
say "The pod as a whole, seen from the host (the infra holds the shared namespaces):"
run podkit pod top demo-pod
heading "Pod: and NOT each other's files (each has its own root file system)"
run podkit exec demo-web sh -c 'echo mine > /only-in-web && ls -l /only-in-web'
run_fails podkit exec demo-client ls /only-in-web

# -- outside a pod ----------------------------------------------------------------------
heading "The same two containers, outside any pod"
run podkit run -d --name demo-solo-web busybox \
  sh -c "$WEB"
run podkit run -d --name demo-solo-client busybox sleep 3600
heading "No pod: localhost is the client's own (nothing listens there)"
run_fails podkit exec demo-solo-client wget -qO- "http://127.0.0.1:$PORT/"
heading "No pod: /dev/shm is not shared"
run podkit exec demo-solo-web sh -c 'echo "shared memory, written by demo-solo-web" > /dev/shm/note'
run_fails podkit exec demo-solo-client cat /dev/shm/note
heading "No pod: different hostnames"
run podkit exec demo-solo-web hostname
run podkit exec demo-solo-client hostname

# -- clean up ---------------------------------------------------------------------------
heading "Cleaning up (the daemon and the image stay)"
run podkit pod rm -f demo-pod
run podkit rm -f demo-solo-web demo-solo-client
say ""
say "${green}Done.${off} A pod = containers sharing net, ipc and uts around an infra process; each keeps"
say "its own root file system and (unless --share pid) its own processes."
