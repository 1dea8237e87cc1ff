#!/usr/bin/env bash
# up.sh: the whole Redress stack on this one machine, from a fresh clone.
#
# Installs what is missing, builds, then starts PostgreSQL and Redis (private instances under
# ./var on their own ports, never the system services) and every service that has been built.
# Idempotent: whatever is already running is left running, so re-run it after a rebuild to start
# services that were not up. deploy/local/down.sh stops everything.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/local/up.sh [--no-build]

Starts the local Redress stack (run from anywhere; everything lives in the repo):
  1. installs missing Debian packages and builds into ./build   (deploy/local/bootstrap.sh)
  2. PostgreSQL on 127.0.0.1:$REDRESS_PG_PORT (default 55432), data in var/pg
  3. Redis on 127.0.0.1:$REDRESS_REDIS_PORT (default 56379), data in var/redis
  4. applies the migrations in deploy/sql
  5. writes var/redress.conf from deploy/config/redress.conf.example (kept if it exists)
  6. starts each built service build/services/<name>/redress-<name> with that config;
     logs in var/log/<name>.log, pid files in var/run/<name>.pid
Already running parts are left alone. Stop everything with deploy/local/down.sh.

Options:
  --no-build  do not build, start what build/ has (same as REDRESS_SKIP_BUILD=1);
              missing packages are still installed
  -h, --help  show this help

Environment:
  REDRESS_PG_PORT, REDRESS_REDIS_PORT  ports of the local servers (55432, 56379)
  REDRESS_CMAKE_ARGS                   extra cmake arguments for the build
  REDRESS_SKIP_BUILD=1                 start from the existing ./build as it is
  REDRESS_SKIP_INSTALL=1               do not check or install Debian packages
EOF
}

say() { printf 'up: %s\n' "$*" >&2; }
die() {
  printf 'up: error: %s\n' "$*" >&2
  exit 1
}

skip_build=${REDRESS_SKIP_BUILD:-0}
while (($#)); do
  case $1 in
    --no-build) skip_build=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
# shellcheck source=tests/lib/servers.sh
source "$root/tests/lib/servers.sh"

pg_port=${REDRESS_PG_PORT:-55432}
redis_port=${REDRESS_REDIS_PORT:-56379}
var=$root/var
conf=$var/redress.conf
services=(intake classifier dispatcher escalation reporting)

# ---- 1. install and build ----------------------------------------------------------------------
if [[ $skip_build == 1 ]]; then
  say "not building (REDRESS_SKIP_BUILD=1 / --no-build): starting what build/ has"
  REDRESS_SKIP_BUILD=1 "$root/deploy/local/bootstrap.sh" --no-build
else
  "$root/deploy/local/bootstrap.sh" build
fi

# Variables override the config file (REDRESS_PG_DSN beats [pg] dsn): note the caller's, and
# keep our own (rd_pg_start exports REDRESS_PG_DSN) from reaching the services.
overrides=$(env | grep -o '^REDRESS_[A-Z0-9_]*' |
  grep -Ev '^REDRESS_(PG_PORT|REDIS_PORT|SKIP_BUILD|SKIP_INSTALL|CMAKE_ARGS|BUILD_DIR|SANITIZE|CTEST_JOBS)$' || true)
saved_env=$(declare -p REDRESS_PG_DSN REDRESS_REDIS_URL 2>/dev/null || true)

# ---- 2-4. servers and schema -------------------------------------------------------------------
mkdir -p "$var/log" "$var/run" "$var/redis"
chmod 755 "$var" # PostgreSQL runs as the postgres user when we are root: it must get into var/
say "PostgreSQL on 127.0.0.1:$pg_port (var/pg)"
rd_pg_start "$var" "$pg_port" || die "PostgreSQL did not come up (see above)"
ln -sfn ../pg/log/postgresql.log "$var/log/postgresql.log"
say "Redis on 127.0.0.1:$redis_port (var/redis)"
rd_redis_start "$var" "$redis_port" || die "Redis did not come up (see above)"
ln -sfn ../redis/redis.log "$var/log/redis.log"
pg_dsn=$REDRESS_PG_DSN
redis_url=$REDRESS_REDIS_URL
unset REDRESS_PG_DSN REDRESS_REDIS_URL
eval "$saved_env"

# ---- 5. configuration --------------------------------------------------------------------------
# The example's [pg] dsn (and [redis] url, once there is one) pointed at our servers.
if [[ -e $conf ]]; then
  say "keeping existing var/redress.conf (delete it to regenerate)"
  grep -q "port=$pg_port " "$conf" ||
    say "warning: var/redress.conf does not mention port=$pg_port; is its [pg] dsn still right?"
else
  awk -v dsn="$pg_dsn" -v url="$redis_url" '
    /^[[:space:]]*\[/ { section = $0; gsub(/[][[:space:]]/, "", section) }
    section == "pg" && /^[[:space:]]*dsn[[:space:]]*=/ { print "dsn = " dsn; next }
    section == "redis" && /^[[:space:]]*url[[:space:]]*=/ { print "url = " url; next }
    { print }
  ' "$root/deploy/config/redress.conf.example" >"$conf.tmp"
  mv "$conf.tmp" "$conf"
  say "wrote var/redress.conf"
fi

if [[ -n $overrides ]]; then
  say "note: these variables in your environment override var/redress.conf for the services: $(echo "$overrides" | tr '\n' ' ')"
fi

# ---- demo configuration: the default classification rules, unless a ruleset is active ----------
ctl=$root/build/tools/redressctl
if [[ -x $ctl ]]; then
  if "$ctl" --dsn "$pg_dsn" rules show >/dev/null 2>&1; then
    say "a classification ruleset is already active (redressctl rules show)"
  else
    "$ctl" --dsn "$pg_dsn" rules load "$root/deploy/config/rules.default.json" >&2 ||
      die "could not load deploy/config/rules.default.json"
    say "loaded the default classification rules (deploy/config/rules.default.json)"
  fi
fi

# ---- demo organisation: calendars, departments, teams, agents and routing, unless loaded -------
if [[ -x $ctl ]]; then
  if [[ $(psql -Atq "$pg_dsn" -c "SELECT count(*) FROM business_calendars" 2>/dev/null || echo 0) == 0 ]]; then
    "$ctl" --dsn "$pg_dsn" calendar load "$root/deploy/config/calendars.example.json" >&2 ||
      die "could not load deploy/config/calendars.example.json"
    say "loaded the example business calendars (redressctl calendar show)"
  fi
  if [[ $(psql -Atq "$pg_dsn" -c "SELECT count(*) FROM teams" 2>/dev/null || echo 0) != 0 ]]; then
    say "an organisation is already loaded (redressctl org show)"
  else
    "$ctl" --dsn "$pg_dsn" org load "$root/deploy/config/org.demo.json" >&2 ||
      die "could not load deploy/config/org.demo.json"
    say "loaded the demo organisation (deploy/config/org.demo.json)"
  fi
  # The demo agents are at their desks for the next 8 hours (a real desk sends this heartbeat
  # every minute with a short --ttl).
  n=0
  for agent in $(psql -Atq "$pg_dsn" -c "SELECT id FROM agents WHERE active ORDER BY id"); do
    "$ctl" --dsn "$pg_dsn" agent online "$agent" --ttl 28800 --redis "$redis_url" >/dev/null && n=$((n + 1))
  done
  say "$n demo agents online for 8 hours (redressctl agent list)"
fi

# ---- 6. services -------------------------------------------------------------------------------
# ini_get SECTION KEY: a value from var/redress.conf, without its trailing comment.
ini_get() {
  awk -v want="$1" -v key="$2" '
    /^[[:space:]]*\[/ { section = $0; gsub(/[][[:space:]]/, "", section); next }
    section == want {
      line = $0; sub(/[[:space:]]+#.*/, "", line)
      if (match(line, "^[[:space:]]*" key "[[:space:]]*=[[:space:]]*")) {
        print substr(line, RLENGTH + 1); exit
      }
    }' "$conf"
}

service_pid() { # the pid from var/run/NAME.pid if that process still is redress-NAME
  local name=$1 pid
  pid=$(cat "$var/run/$name.pid" 2>/dev/null || true)
  rd_pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "redress-$name" || return 1
  printf '%s\n' "$pid"
}

fail_service() {
  local name=$1 pid=$2 why=$3
  printf 'up: error: redress-%s %s; last lines of var/log/%s.log:\n' "$name" "$why" "$name" >&2
  tail -n 30 "$var/log/$name.log" >&2 || true
  rd_stop_pid "$pid" 5 || true
  rm -f "$var/run/$name.pid"
  exit 1
}

started=()
running=()
for name in "${services[@]}"; do
  bin=$root/build/services/$name/redress-$name
  [[ -x $bin ]] || continue
  if pid=$(service_pid "$name"); then
    say "redress-$name already running (pid $pid)"
    running+=("$name")
    continue
  fi
  log=$var/log/$name.log
  printf '\n=== %s up.sh: starting %s --config %s\n' "$(date -Is)" "$bin" "$conf" >>"$log"
  # setsid: its own session, so a Ctrl-C in this terminal later does not reach it.
  setsid "$bin" --config "$conf" </dev/null >>"$log" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$var/run/$name.pid"

  port=$(ini_get "$name" http_port)
  if [[ -z $port ]]; then
    case $name in intake) port=9401 ;; classifier) port=9402 ;; dispatcher) port=9403 ;; escalation) port=9404 ;; reporting) port=9405 ;; esac
  fi
  host=$(ini_get "$name" http_bind)
  host=${host:-127.0.0.1}
  [[ $host == 0.0.0.0 ]] && host=127.0.0.1
  healthy=0
  for ((i = 0; i < 40; i++)); do
    rd_pid_alive "$pid" || fail_service "$name" "$pid" "exited at start-up"
    if [[ -z $port || $port == 0 ]]; then
      # No health endpoint configured: alive after a second counts as started.
      ((i >= 4)) && { healthy=1; break; }
    elif curl -fsS --max-time 1 "http://$host:$port/healthz" >/dev/null 2>&1; then
      healthy=1
      break
    fi
    sleep 0.25
  done
  ((healthy)) || fail_service "$name" "$pid" "is not healthy after 10 s (http://$host:$port/healthz)"
  say "redress-$name started (pid $pid)"
  started+=("$name")
done

# ---- what next ---------------------------------------------------------------------------------
up_services=("${running[@]}" "${started[@]}")
intake_http=$(ini_get intake http_port)
intake_http=${intake_http:-9401}
if [[ -x $root/build/services/reporting/redress-reporting ]]; then
  reporting_http=$(ini_get reporting http_port)
  reporting_http=${reporting_http:-9405}
  reporting_host=$(ini_get reporting http_bind)
  reporting_host=${reporting_host:-127.0.0.1}
  [[ $reporting_host == 0.0.0.0 ]] && reporting_host=127.0.0.1
  if [[ $reporting_http == 0 ]]; then
    dashboard="off (reporting http_port = 0 in var/redress.conf)"
  else
    dashboard="http://$reporting_host:$reporting_http/   (redress-reporting; KPIs, SLA, backlog)"
  fi
else
  dashboard="comes with the reporting service (not built yet)"
fi
cat <<EOF

Redress is up.
  PostgreSQL  127.0.0.1:$pg_port   psql "host=127.0.0.1 port=$pg_port dbname=redress user=redress"
  Redis       127.0.0.1:$redis_port   redis-cli -p $redis_port
  services    ${up_services[*]:-none built yet (build/services/*/redress-*)}
  config      var/redress.conf

Submit a complaint:
  build/tools/redressctl submit --channel web --customer C-1001 --subject "Bill charged twice" --body "My March bill was charged twice to my card."
  build/tools/redressctl submit --channel web --customer C-1002 --subject "宽带断网" --body "家里宽带从昨天晚上开始一直断网，报修两次还没人上门。"
Load real complaints (CFPB sample):
  build/tools/redressctl submit --csv ../shared/datasets/cfpb/complaints_sample.csv --limit 200
Look at a ticket (within a second it is classified -- type, severity, priority -- assigned to an
agent, or queued with the reason, and its SLA clocks run: accept, first response, resolution):
  build/tools/redressctl ticket show <id>
The organisation and who is at their desk:
  build/tools/redressctl org show
  build/tools/redressctl agent list
Classification rules (edit, then load; running classifiers pick them up at once):
  build/tools/redressctl rules show
  build/tools/redressctl rules load deploy/config/rules.default.json

Logs:     var/log/<service>.log, var/log/postgresql.log, var/log/redis.log
Health:   curl http://127.0.0.1:$intake_http/healthz    Metrics: curl http://127.0.0.1:$intake_http/metrics
Dashboard: $dashboard
Stop everything: deploy/local/down.sh   (add --purge to delete var/ too)
EOF
