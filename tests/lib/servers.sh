# shellcheck shell=bash
# tests/lib/servers.sh: start and stop private PostgreSQL and Redis servers on loopback.
#
# Sourced (never run) by tests/lib/with-stack.sh, which gives each test a throw-away stack, and by
# deploy/local/up.sh and down.sh, which keep one long-lived stack under ./var. Both kinds live
# entirely inside one directory DIR, so any number of them can run side by side:
#
#   DIR/pg                          PostgreSQL data directory; also holds its Unix socket
#   DIR/pg/redress.conf             our settings (port, fsync...), rewritten at every start
#   DIR/pg/log/postgresql.log       the server log
#   DIR/redis/{redis.pid,redis.log,port}
#
# Functions (each returns non-zero with a message on stderr when it fails):
#
#   rd_free_port               print a TCP port that is free on 127.0.0.1
#   rd_pg_start DIR [PORT]     initdb if needed, start if not running, create database "redress",
#                              apply deploy/sql migrations; exports REDRESS_PG_DSN. Without PORT
#                              a free port is chosen, and another one if it is taken before the
#                              server binds it (parallel test runs race for ports).
#   rd_pg_stop DIR             fast shutdown; no-op when not running
#   rd_redis_start DIR [PORT]  exports REDRESS_REDIS_URL; same port rules as rd_pg_start
#   rd_redis_stop DIR          no-op when not running
#   rd_pid_alive PID           true while PID runs (zombies count as dead)
#   rd_stop_pid PID [SECS]     SIGTERM, wait up to SECS (default 10), then SIGKILL
#
# PostgreSQL refuses to run as root, so when we are root it runs as the "postgres" user (made by
# the Debian package) through runuser, and DIR with all its parents must be enterable by that user.
#
# Environment: REDRESS_PG_FSYNC=on|off (default on; off makes throw-away clusters faster),
# REDRESS_PG_BINDIR (server binaries; default: pg_config --bindir, else the newest
# /usr/lib/postgresql/*/bin).
#
# The caller is expected to run under `set -euo pipefail`; functions check their own steps too.

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
  exit 0
fi

RD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RD_PG_DB=redress
RD_PG_USER=redress

rd__say() { printf 'servers: %s\n' "$*" >&2; }
rd__err() {
  printf 'servers: error: %s\n' "$*" >&2
  return 1
}

# ---- processes ----------------------------------------------------------------------------------

rd_pid_alive() {
  local pid=${1:-} stat
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # A daemon whose parent exited is re-parented to PID 1; where PID 1 does not reap (some
  # containers), a dead daemon stays a zombie that kill -0 still reports as present.
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

rd_stop_pid() {
  local pid=$1 secs=${2:-10} i
  rd_pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    rd_pid_alive "$pid" || return 0
    sleep 0.1
  done
  rd__say "pid $pid did not stop within ${secs}s of SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    rd_pid_alive "$pid" || return 0
    sleep 0.1
  done
  rd__err "pid $pid survived SIGKILL"
}

# ---- ports --------------------------------------------------------------------------------------

# Ports are picked below the kernel's ephemeral range, so that outgoing connections (which take
# their local port from that range) can never be sitting on the port we are about to listen on.
rd_free_port() {
  local lo=32768 port i
  if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range || true
  fi
  if [[ -x /usr/bin/python3 ]]; then
    /usr/bin/python3 - "$lo" <<'PY' && return 0
import random, socket, sys
eph_lo = int(sys.argv[1])
lo, hi = (20000, eph_lo - 1) if eph_lo > 21024 else (1024, 65535)
for _ in range(200):
    port = random.randint(lo, hi) if hi > lo else 0
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))   # no SO_REUSEADDR: fails if anything holds the port
        print(s.getsockname()[1])
        sys.exit(0)
    except OSError:
        pass
    finally:
        s.close()
sys.exit(1)
PY
  fi
  # No python: probe with bash's /dev/tcp; a refused connection means nobody listens there.
  for ((i = 0; i < 200; i++)); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 10000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  rd__err "could not find a free TCP port on 127.0.0.1"
}

rd__port_holder() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | head -n 3 >&2 || true
}

# ---- PostgreSQL ---------------------------------------------------------------------------------

rd_pg_bindir() {
  local d cands=()
  if [[ -n ${REDRESS_PG_BINDIR:-} ]]; then
    cands=("$REDRESS_PG_BINDIR")
  else
    # pg_config (from libpq-dev) may belong to a newer client than the installed server, so
    # its answer is only the first guess; then the newest server under /usr/lib/postgresql.
    if command -v pg_config >/dev/null 2>&1; then
      d=$(pg_config --bindir 2>/dev/null) && cands+=("$d")
    fi
    mapfile -t -O "${#cands[@]}" cands < <(
      for d in /usr/lib/postgresql/*/bin; do [[ -d $d ]] && printf '%s\n' "$d"; done | sort -rV
    )
  fi
  for d in "${cands[@]}"; do
    if [[ -x $d/initdb && -x $d/pg_ctl && -x $d/postgres && -x $d/psql ]]; then
      printf '%s\n' "$d"
      return 0
    fi
  done
  rd__err "no PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) in: ${cands[*]:-/usr/lib/postgresql/*/bin}." \
    "Install the 'postgresql' package (deploy/local/bootstrap.sh does) or set REDRESS_PG_BINDIR."
}

# Run a command as the user PostgreSQL runs as: postgres when we are root, else ourselves.
# From / so that a working directory postgres cannot enter does not upset it.
rd__as_pg() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    (cd / && "$@")
  fi
}

rd__check_pg_can_enter() {
  local dir=$1 d
  ((EUID == 0)) || return 0
  id postgres >/dev/null 2>&1 ||
    rd__err "there is no 'postgres' user to run PostgreSQL as (we are root, and PostgreSQL refuses root); install the 'postgresql' package" ||
    return 1
  rd__as_pg test -x "$dir" && return 0
  d=$dir
  while [[ $d != / ]] && ! rd__as_pg test -x "$(dirname "$d")"; do d=$(dirname "$d"); done
  rd__err "the postgres user cannot enter $d (PostgreSQL runs as postgres, not root)." \
    "Make it enterable (chmod o+x '$d') or keep the data somewhere it can reach, e.g. under /tmp."
}

rd__pg_running() { rd__as_pg "$1/pg_ctl" -D "$2" status >/dev/null 2>&1; }

rd__pg_fsync() {
  case ${REDRESS_PG_FSYNC:-on} in
    on | true | yes | 1) echo on ;;
    off | false | no | 0) echo off ;;
    *) rd__err "REDRESS_PG_FSYNC must be on or off, not '${REDRESS_PG_FSYNC}'" ;;
  esac
}

rd__pg_init() {
  local bindir=$1 data=$2 fsync=$3 locale nosync=()
  [[ $fsync == off ]] && nosync=(--no-sync)
  mkdir -p "$data" || return 1
  if [[ -n $(ls -A "$data") ]]; then
    rd__err "$data exists, is not empty and is not a PostgreSQL data directory; move it away"
    return 1
  fi
  chmod 700 "$data"
  ((EUID == 0)) && chown postgres: "$data"
  for locale in C.UTF-8 C; do
    if rd__as_pg "$bindir/initdb" -D "$data" -U "$RD_PG_USER" --auth=trust -E UTF8 \
      --locale="$locale" "${nosync[@]}" >"$data.initdb.log" 2>&1; then
      rm -f "$data.initdb.log"
      break
    fi
    if [[ $locale == C ]]; then
      rd__err "initdb failed; its output:"
      cat "$data.initdb.log" >&2
      return 1
    fi
    rd__say "initdb with locale C.UTF-8 failed; trying locale C"
    find "$data" -mindepth 1 -delete
  done
  rd__as_pg mkdir -p "$data/log" || return 1
  printf '\n# Local settings for Redress (written by tests/lib/servers.sh).\ninclude = '\''redress.conf'\''\n' \
    >>"$data/postgresql.conf"
}

rd__pg_write_conf() {
  local data=$1 port=$2 fsync=$3 sockdir=$1
  # A Unix socket path must fit in sockaddr_un (107 bytes); deep temp dirs may not. We connect
  # over TCP anyway, so then go without the socket rather than fail.
  if ((${#sockdir} + 14 > 107)); then sockdir=''; fi
  cat >"$data/redress.conf" <<EOF
# Written by tests/lib/servers.sh at every start: change it there.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '${sockdir//\'/\'\'}'
fsync = $fsync
synchronous_commit = on
max_connections = 200
shared_buffers = 256MB
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
  ((EUID == 0)) && chown postgres: "$data/redress.conf"
  return 0
}

rd__pg_port() { sed -n 's/^port = \([0-9]*\)$/\1/p' "$1/redress.conf" 2>/dev/null; }

rd_pg_start() {
  local dir=${1:?usage: rd_pg_start DIR [PORT]} want=${2:-} bindir data log fsync port try out psql
  bindir=$(rd_pg_bindir) || return 1
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || return 1
  data=$dir/pg
  log=$data/log/postgresql.log
  fsync=$(rd__pg_fsync) || return 1
  rd__check_pg_can_enter "$dir" || return 1
  if [[ ! -f $data/PG_VERSION ]]; then
    rd__pg_init "$bindir" "$data" "$fsync" || return 1
  fi

  if rd__pg_running "$bindir" "$data"; then
    port=$(rd__pg_port "$data")
    if [[ -n $want && $want != "$port" ]]; then
      rd__say "warning: PostgreSQL in $data is already running on port $port, not $want; leaving it"
    fi
  else
    for try in 1 2 3 4 5 6 7 8; do
      port=${want:-$(rd_free_port)} || return 1
      rd__pg_write_conf "$data" "$port" "$fsync"
      if out=$(rd__as_pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 -s start 2>&1); then
        break
      fi
      if [[ -z $want && $try -lt 8 ]] && tail -n 20 "$log" 2>/dev/null | grep -q 'could not bind\|could not create any TCP/IP sockets'; then
        continue # somebody took the port between our probe and the bind; pick another
      fi
      if [[ -n $want ]] && tail -n 20 "$log" 2>/dev/null | grep -q 'could not bind'; then
        rd__err "PostgreSQL could not listen on 127.0.0.1:$want; it is in use:"
        rd__port_holder "$want"
      else
        rd__err "PostgreSQL in $data did not start${out:+ ($out)}; last lines of $log:"
      fi
      tail -n 30 "$log" >&2 2>/dev/null || true
      return 1
    done
  fi

  export REDRESS_PG_DSN="host=127.0.0.1 port=$port dbname=$RD_PG_DB user=$RD_PG_USER"
  psql=(env PGCONNECT_TIMEOUT=10 "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U "$RD_PG_USER")
  if [[ $("${psql[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$RD_PG_DB'") != 1 ]]; then
    "${psql[@]}" -d postgres -c "CREATE DATABASE $RD_PG_DB" ||
      rd__err "could not create database $RD_PG_DB on port $port" || return 1
  fi
  "$RD_ROOT/deploy/sql/migrate.sh" --dsn "$REDRESS_PG_DSN" >&2 || return 1
}

rd_pg_stop() {
  local dir=${1:?usage: rd_pg_stop DIR} bindir data
  data=$dir/pg
  [[ -f $data/PG_VERSION ]] || return 0
  bindir=$(rd_pg_bindir) || return 1
  rd__pg_running "$bindir" "$data" || return 0
  rd__as_pg "$bindir/pg_ctl" -D "$data" -m fast -w -t 30 -s stop >/dev/null && return 0
  rd__say "fast shutdown of PostgreSQL in $data failed; trying immediate"
  rd__as_pg "$bindir/pg_ctl" -D "$data" -m immediate -w -t 30 -s stop >/dev/null ||
    rd__err "could not stop PostgreSQL in $data"
}

# ---- Redis --------------------------------------------------------------------------------------

rd__redis_pid() { cat "$1/redis.pid" 2>/dev/null || true; }

# rd__redis_ours PORT RDIR: the Redis answering on PORT is the one whose pid is in RDIR/redis.pid
# (and not, say, a leftover from another run that happens to hold the port).
rd__redis_ours() {
  local pid
  pid=$(rd__redis_pid "$2")
  [[ -n $pid ]] || return 1
  [[ $(redis-cli -h 127.0.0.1 -p "$1" info server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p') == "$pid" ]]
}

rd_redis_start() {
  local dir=${1:?usage: rd_redis_start DIR [PORT]} want=${2:-} rdir port pid try i
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 ||
    rd__err "redis-server/redis-cli not found; install the 'redis-server' package" || return 1
  mkdir -p "$dir/redis" && rdir=$(cd "$dir/redis" && pwd) || return 1

  pid=$(rd__redis_pid "$rdir")
  if rd_pid_alive "$pid"; then
    port=$(cat "$rdir/port" 2>/dev/null || true)
    if [[ -n $port ]] && rd__redis_ours "$port" "$rdir"; then
      [[ -z $want || $want == "$port" ]] ||
        rd__say "warning: Redis in $rdir is already running on port $port, not $want; leaving it"
      export REDRESS_REDIS_URL="redis://127.0.0.1:$port"
      return 0
    fi
    rd__err "the Redis in $rdir/redis.pid (pid $pid) does not answer on port ${port:-?}; stop it first"
    return 1
  fi

  for try in 1 2 3 4 5 6 7 8; do
    port=${want:-$(rd_free_port)} || return 1
    printf '%s\n' "$port" >"$rdir/port"
    rm -f "$rdir/redis.pid"
    : >"$rdir/redis.log"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$rdir" --daemonize yes \
      --pidfile "$rdir/redis.pid" --logfile "$rdir/redis.log" --save '' --appendonly no \
      </dev/null >/dev/null 2>&1 || true
    for ((i = 0; i < 100; i++)); do
      if rd__redis_ours "$port" "$rdir"; then
        export REDRESS_REDIS_URL="redis://127.0.0.1:$port"
        return 0
      fi
      grep -q 'Could not create server TCP\|Address already in use\|Fatal' "$rdir/redis.log" 2>/dev/null && break
      sleep 0.1
    done
    rd_stop_pid "$(rd__redis_pid "$rdir")" 2 2>/dev/null || true
    if [[ -z $want && $try -lt 8 ]] && grep -q 'Address already in use' "$rdir/redis.log" 2>/dev/null; then
      continue
    fi
    if [[ -n $want ]] && grep -q 'Address already in use' "$rdir/redis.log" 2>/dev/null; then
      rd__err "Redis could not listen on 127.0.0.1:$want; it is in use:"
      rd__port_holder "$want"
    else
      rd__err "Redis in $rdir did not start; last lines of $rdir/redis.log:"
    fi
    tail -n 30 "$rdir/redis.log" >&2 2>/dev/null || true
    return 1
  done
}

rd_redis_stop() {
  local dir=${1:?usage: rd_redis_stop DIR} rdir=$1/redis pid port i
  pid=$(rd__redis_pid "$rdir")
  if rd_pid_alive "$pid"; then
    port=$(cat "$rdir/port" 2>/dev/null || true)
    if [[ -n $port ]]; then
      timeout 5 redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
      for ((i = 0; i < 50; i++)); do
        rd_pid_alive "$pid" || break
        sleep 0.1
      done
    fi
    rd_stop_pid "$pid" 5 || return 1
  fi
  rm -f "$rdir/redis.pid"
}
