#!/usr/bin/env bash
# with-stack.sh: run one command against its own throw-away PostgreSQL (and Redis).
#
# Every run gets a private directory, servers on free loopback ports and a migrated database, so
# tests can run in parallel (ctest -j) without seeing each other. The servers are stopped and the
# directory removed however the command ends: normally, by a signal, or, because a killed test
# (ctest's timeout sends SIGKILL) cannot clean up after itself, by a detached watchdog that waits
# for this script to disappear.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: tests/lib/with-stack.sh [--no-redis] [--] COMMAND [ARGS...]

Starts a private PostgreSQL (and Redis unless --no-redis) on 127.0.0.1, applies deploy/sql
migrations, runs COMMAND with these variables exported, and returns COMMAND's exit status:

  REDRESS_PG_DSN     host=127.0.0.1 port=P dbname=redress user=redress
  REDRESS_REDIS_URL  redis://127.0.0.1:P (unset with --no-redis)
  REDRESS_TEST_DIR   an empty scratch directory, removed afterwards

The servers are always stopped and the directory removed; when COMMAND fails, the last 30
lines of the PostgreSQL log are printed. Our own messages go to stderr. COMMAND runs as a
process group of its own (setsid): whatever it leaves running when it exits gets SIGTERM, then
SIGKILL; on Ctrl-C or SIGTERM it gets SIGTERM.

Options:
  --no-redis  do not start Redis
  -h, --help  show this help

Environment:
  TMPDIR                 where the private directory goes (default /tmp); PostgreSQL runs as
                         the postgres user when we are root, so it must be able to enter it
  REDRESS_PG_FSYNC       on|off (default on); off is faster and fine for throw-away data
  REDRESS_KEEP_TEST_DIR  1: keep the directory (servers still stopped), for post-mortems

Examples:
  tests/lib/with-stack.sh -- bash -c 'psql "$REDRESS_PG_DSN" -c "\dt"'
  add_test(NAME x COMMAND ${CMAKE_SOURCE_DIR}/tests/lib/with-stack.sh -- $<TARGET_FILE:test_x>)
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lib/servers.sh
source "$here/servers.sh"

stack_dir_ok() { [[ -d $1 && ${1##*/} == redress-stack.* ]]; }

teardown() {
  rm -f "$1/.running"
  rd_redis_stop "$1" || true
  rd_pg_stop "$1" || true
  if [[ ${REDRESS_KEEP_TEST_DIR:-0} == 1 ]]; then
    printf 'with-stack: kept %s\n' "$1" >&2
  else
    rm -rf "$1"
  fi
}

proc_start_time() { # field 22 of /proc/PID/stat: tells a PID from a later process reusing it
  local s f
  { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 0
  s=${s##*) }
  read -r -a f <<<"$s"
  printf '%s\n' "${f[19]:-}"
}

group_pids() { # the live (not zombie) members of process group $1
  local p s f
  for p in /proc/[0-9]*; do
    { read -r s <"$p/stat"; } 2>/dev/null || continue
    s=${s##*) }
    read -r -a f <<<"$s"
    [[ ${f[2]:-} == "$1" && ${f[0]:-} != Z ]] && printf '%s\n' "${p#/proc/}"
  done
  return 0
}

# The command runs as its own process group, so that whatever it started and left behind (a
# service under test, after an assertion failed) goes down with it. Left running, such a process
# would hold ctest's output pipe open and turn a failure into a 300 s timeout.
stop_group() {
  local pgid=$1 left i
  left=$(group_pids "$pgid")
  [[ -n $left ]] || return 0
  printf 'with-stack: stopping what the command left running: %s\n' "$(echo "$left" | tr '\n' ' ')" >&2
  kill -TERM -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    [[ -z $(group_pids "$pgid") ]] && return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

# Internal: the watchdog. Detached from our session, it outlives a SIGKILL of the script and of
# the script's process group, and tears the stack down if the script could not.
if [[ ${1:-} == --watchdog ]]; then
  pid=$2 started=$3 dir=$4
  while rd_pid_alive "$pid" && [[ $(proc_start_time "$pid") == "$started" ]]; do sleep 1; done
  stack_dir_ok "$dir" && [[ -e $dir/.running ]] || exit 0
  # The command may have outlived the script too; it must not go on against a vanished stack.
  read -r cpgid <"$dir/.running" || true
  [[ -n ${cpgid:-} ]] && stop_group "$cpgid" 2>/dev/null
  teardown "$dir"
  exit 0
fi

redis=1
while (($#)); do
  case $1 in
    --no-redis) redis=0; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) usage >&2; printf 'with-stack: error: unknown option %s\n' "$1" >&2; exit 2 ;;
    *) break ;;
  esac
done
if (($# == 0)); then
  usage >&2
  printf 'with-stack: error: no command given\n' >&2
  exit 2
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/redress-stack.XXXXXXXX")
chmod 755 "$dir" # PostgreSQL runs as the postgres user when we are root: it must get in
touch "$dir/.running"
(setsid bash "$here/with-stack.sh" --watchdog "$$" "$(proc_start_time "$$")" "$dir" \
  </dev/null >/dev/null 2>&1 &)

child=
# shellcheck disable=SC2317  # trap handlers: shellcheck cannot see them called
finish() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if ((rc != 0)) && [[ -f $dir/pg/log/postgresql.log ]]; then
    printf 'with-stack: exit status %d; last 30 lines of the PostgreSQL log:\n' "$rc" >&2
    tail -n 30 "$dir/pg/log/postgresql.log" >&2 || true
  fi
  teardown "$dir"
  exit "$rc"
}
# shellcheck disable=SC2317
on_signal() {
  # The command runs in the background (so that we can act on signals at once) and therefore
  # ignores SIGINT; pass every signal on as SIGTERM.
  if [[ -n $child ]]; then
    kill -TERM -- "-$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
    stop_group "$child"
  fi
  exit "$1"
}
trap finish EXIT
trap 'on_signal 129' HUP
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

rd_pg_start "$dir"
if ((redis)); then
  rd_redis_start "$dir"
else
  unset REDRESS_REDIS_URL
fi
mkdir "$dir/scratch"
export REDRESS_TEST_DIR=$dir/scratch

# A background command's stdin would be /dev/null; hand it ours, if we have one. setsid makes
# it a process group (and session) of its own; it does so in place, keeping the pid, because a
# background job of a shell without job control is never a group leader.
if { true <&0; } 2>/dev/null; then
  setsid "$@" <&0 &
else
  setsid "$@" </dev/null &
fi
child=$!
printf '%s\n' "$child" >"$dir/.running"
rc=0
wait "$child" || rc=$?
stop_group "$child"
child=
exit "$rc"
