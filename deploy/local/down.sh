#!/usr/bin/env bash
# down.sh: stop the local stack that deploy/local/up.sh started (services, Redis, PostgreSQL).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/local/down.sh [--purge]

Stops, in this order: the services in var/run/*.pid, every instance of each (SIGTERM, up to
10 s, then SIGKILL),
Redis (var/redis), PostgreSQL (var/pg, fast shutdown). Stopped parts are skipped.

Options:
  --purge     also delete var/ (databases, logs, var/redress.conf): the next up.sh starts afresh
  -h, --help  show this help
EOF
}

say() { printf 'down: %s\n' "$*" >&2; }
die() {
  printf 'down: error: %s\n' "$*" >&2
  exit 1
}

purge=0
while (($#)); do
  case $1 in
    --purge) purge=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=tests/lib/servers.sh
source "$root/tests/lib/servers.sh"
var=$root/var

if [[ ! -d $var ]]; then
  say "nothing to stop (no var/)"
  exit 0
fi

# Services first, the door (intake) before the stages behind it; then any other pid file.
failed=0
pidfiles=()
for name in intake classifier dispatcher escalation reporting; do
  for f in "$var/run/$name.pid" "$var/run/$name"-[0-9].pid; do # up.sh --instances: NAME-K
    [[ -f $f ]] && pidfiles+=("$f")
  done
done
for f in "$var"/run/*.pid; do
  [[ -f $f ]] || continue
  [[ " ${pidfiles[*]} " == *" $f "* ]] || pidfiles+=("$f")
done
for f in "${pidfiles[@]}"; do
  name=$(basename "$f" .pid)
  pid=$(cat "$f" 2>/dev/null || true)
  # Only signal the pid if it still is our service: after a reboot it may be anything.
  if rd_pid_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "redress-${name%-[0-9]}"; then
    say "stopping redress-$name (pid $pid)"
    rd_stop_pid "$pid" 10 || failed=1
  fi
  rm -f "$f"
done

if rd_pid_alive "$(cat "$var/redis/redis.pid" 2>/dev/null || true)"; then
  say "stopping Redis"
  rd_redis_stop "$var" || failed=1
fi
if [[ -f $var/pg/postmaster.pid ]]; then
  say "stopping PostgreSQL"
  rd_pg_stop "$var" || failed=1
fi

if ((failed)); then
  ((purge)) && say "not purging var/: something is still running"
  die "some parts did not stop (see above)"
fi
if ((purge)); then
  rm -rf "$var"
  say "deleted var/"
fi
say "stopped"
