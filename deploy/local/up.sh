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
Usage: deploy/local/up.sh [--no-build] [--instances N] [--curve]

Starts the local Redress stack (run from anywhere; everything lives in the repo):
  1. installs missing Debian packages and builds into ./build   (deploy/local/bootstrap.sh)
  2. PostgreSQL on 127.0.0.1:$REDRESS_PG_PORT (default 55432), data in var/pg
  3. Redis on 127.0.0.1:$REDRESS_REDIS_PORT (default 56379), data in var/redis
  4. applies the migrations in deploy/sql
  5. writes var/redress.conf from deploy/config/redress.conf.example (kept if it exists)
  6. starts each built service build/services/<name>/redress-<name> with that config;
     logs in var/log/<name>.log, pid files in var/run/<name>.pid; with --instances N, N of
     each: instance K > 1 is <name>-K, every port of instance 1 plus (K-1)*100 (intake-2 takes
     gateways on 7501, health on 9501), and each stage connects to every upstream instance
Already running parts are left alone. Stop everything with deploy/local/down.sh.

Options:
  --no-build  do not build, start what build/ has (same as REDRESS_SKIP_BUILD=1);
              missing packages are still installed
  --instances N  run N instances of every service (1-9, default 1; REDRESS_INSTANCES=N);
              instances already running keep the endpoints they started with
  --curve     gateways must authenticate (intake.auth = curve, docs/security.md) and the
              internal links are encrypted (internal.curve_key_file): makes the keys in
              var/keys (intake's, the cluster's, one registered for redressctl) and prints the
              two variables redressctl then needs (REDRESS_CURVE=1); services already running
              keep their old setting (down.sh first)
  -h, --help  show this help

Environment:
  REDRESS_PG_PORT, REDRESS_REDIS_PORT  ports of the local servers (55432, 56379)
  REDRESS_CMAKE_ARGS                   extra cmake arguments for the build
  REDRESS_SKIP_BUILD=1                 start from the existing ./build as it is
  REDRESS_SKIP_INSTALL=1               do not check or install Debian packages
  REDRESS_INSTANCES=N                  as --instances N
  REDRESS_CURVE=1                      as --curve
EOF
}

say() { printf 'up: %s\n' "$*" >&2; }
die() {
  printf 'up: error: %s\n' "$*" >&2
  exit 1
}

skip_build=${REDRESS_SKIP_BUILD:-0}
instances=${REDRESS_INSTANCES:-1}
curve=${REDRESS_CURVE:-0}
while (($#)); do
  case $1 in
    --no-build) skip_build=1; shift ;;
    --curve) curve=1; shift ;;
    --instances) instances=${2:-}; shift 2 || { usage >&2; die "--instances needs a number"; } ;;
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
[[ $instances =~ ^[1-9]$ ]] || die "--instances / REDRESS_INSTANCES must be 1 to 9, not '$instances'"

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
  grep -Ev '^REDRESS_(PG_PORT|REDIS_PORT|SKIP_BUILD|SKIP_INSTALL|CMAKE_ARGS|BUILD_DIR|SANITIZE|CTEST_JOBS|INSTANCES|CURVE)$' || true)
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
# Logins (docs/privacy.md): the services run as redress_svc (role redress_app: no changing the
# audit log or ticket history, no erasure); operators' privileged commands (customer erase,
# retention run) as redress_ops (role redress_admin). Migrations and the demo loads use the owner.
psql -X -q -v ON_ERROR_STOP=1 -d "$pg_dsn" -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'redress_svc') THEN CREATE ROLE redress_svc LOGIN IN ROLE redress_app; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'redress_ops') THEN CREATE ROLE redress_ops LOGIN IN ROLE redress_admin; END IF;
END \$\$" >/dev/null || die "could not create the login roles redress_svc and redress_ops"
svc_dsn=${pg_dsn/user=redress/user=redress_svc}
ops_dsn=${pg_dsn/user=redress/user=redress_ops}

# ---- 5. configuration --------------------------------------------------------------------------
# The example's [pg] dsn (and [redis] url, once there is one) pointed at our servers.
if [[ -e $conf ]]; then
  say "keeping existing var/redress.conf (delete it to regenerate)"
  grep -q "port=$pg_port " "$conf" ||
    say "warning: var/redress.conf does not mention port=$pg_port; is its [pg] dsn still right?"
  grep -q "user=redress_svc" "$conf" ||
    say "note: var/redress.conf's [pg] dsn does not log in as redress_svc (the application role); regenerate it to use it"
else
  awk -v dsn="$svc_dsn" -v url="$redis_url" '
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

# ---- gateway authentication (--curve): intake's key, and redressctl registered as a gateway ------
curve_hint=
if ((curve)); then
  [[ -x $ctl ]] || die "--curve needs build/tools/redressctl (build first)"
  mkdir -p "$var/keys" && chmod 700 "$var/keys"
  [[ -e $var/keys/intake.key ]] || "$ctl" keys generate --out "$var/keys/intake.key" >/dev/null ||
    die "could not generate var/keys/intake.key"
  [[ -e $var/keys/redressctl.key ]] || "$ctl" keys generate --out "$var/keys/redressctl.key" >/dev/null ||
    die "could not generate var/keys/redressctl.key"
  [[ -e $var/keys/cluster.key ]] || "$ctl" keys generate --out "$var/keys/cluster.key" >/dev/null ||
    die "could not generate var/keys/cluster.key"
  "$ctl" --dsn "$pg_dsn" keys register redressctl "$("$ctl" keys public "$var/keys/redressctl.key")" \
    --events '*' --channels '*' --any-ticket --description "local demo CLI" >/dev/null ||
    die "could not register redressctl's key"
  curve_hint="export REDRESS_CURVE_SERVER_KEY='$("$ctl" keys public "$var/keys/intake.key")' REDRESS_CURVE_CLIENT_KEY_FILE=$var/keys/redressctl.key"
  say "gateways must authenticate with CURVE and the internal links are encrypted (keys in var/keys; services already running keep their old setting: down.sh first)"
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

service_pid() { # the pid from var/run/NAME.pid if that process still is redress-NAME (NAME-K too)
  local name=$1 pid
  pid=$(cat "$var/run/$name.pid" 2>/dev/null || true)
  rd_pid_alive "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "redress-${name%-[0-9]}" || return 1
  printf '%s\n' "$pid"
}

# Several instances (--instances N): instance K > 1 of a service binds every port of instance 1
# plus (K-1)*100, and every stage connects to all N instances of the stage before it. Those
# settings go to the instances as REDRESS_* variables (they beat var/redress.conf).
shift_ep() { printf '%s' "${1%:*}:$((${1##*:} + $2))"; } # shift_ep tcp://HOST:PORT OFFSET
conf_ep() { # conf_ep SECTION KEY DEFAULT: the endpoint in var/redress.conf, as a peer connects to it
  local v
  v=$(ini_get "$1" "$2")
  v=${v:-$3}
  printf '%s' "${v/\*/127.0.0.1}"
}
all_eps() { # all_eps ENDPOINT: that endpoint of each of the N instances, comma-separated
  local k out=''
  for ((k = 1; k <= instances; k++)); do out+=${out:+,}$(shift_ep "$1" $(((k - 1) * 100))); done
  printf '%s' "$out"
}
http_port_of() { # http_port_of SERVICE [K]
  local port
  port=$(ini_get "$1" http_port)
  if [[ -z $port ]]; then
    case $1 in intake) port=9401 ;; classifier) port=9402 ;; dispatcher) port=9403 ;; escalation) port=9404 ;; reporting) port=9405 ;; esac
  fi
  [[ $port == 0 ]] || port=$((port + (${2:-1} - 1) * 100))
  printf '%s' "$port"
}
instance_env() { # instance_env SERVICE K: the REDRESS_*=value settings of instance K, one a line
  local svc=$1 k=$2 off=$((($2 - 1) * 100)) up=${1^^} key def
  if ((k > 1)); then
    for key in bind push_bind pub_bind; do
      case $svc/$key in
        intake/bind) def=tcp://127.0.0.1:7401 ;;
        intake/push_bind) def=tcp://127.0.0.1:7402 ;; intake/pub_bind) def=tcp://127.0.0.1:7403 ;;
        classifier/push_bind) def=tcp://127.0.0.1:7412 ;; classifier/pub_bind) def=tcp://127.0.0.1:7413 ;;
        dispatcher/push_bind) def=tcp://127.0.0.1:7422 ;; dispatcher/pub_bind) def=tcp://127.0.0.1:7423 ;;
        escalation/pub_bind) def=tcp://127.0.0.1:7433 ;;
        *) continue ;;
      esac
      echo "REDRESS_${up}_${key^^}=$(shift_ep "$(conf_ep "$svc" "$key" "$def")" "$off")"
    done
    echo "REDRESS_${up}_HTTP_PORT=$(http_port_of "$svc" "$k")"
  fi
  if ((curve)); then
    echo "REDRESS_INTERNAL_CURVE_KEY_FILE=$var/keys/cluster.key"
    if [[ $svc == intake ]]; then
      echo "REDRESS_INTAKE_AUTH=curve"
      echo "REDRESS_INTAKE_CURVE_SECRET_KEY_FILE=$var/keys/intake.key"
    fi
  fi
  ((instances > 1)) || return 0
  case $svc in
    classifier) echo "REDRESS_CLASSIFIER_INTAKE_ENDPOINT=$(all_eps "$(conf_ep intake push_bind tcp://127.0.0.1:7402)")" ;;
    dispatcher)
      echo "REDRESS_DISPATCHER_CLASSIFIER_ENDPOINT=$(all_eps "$(conf_ep classifier push_bind tcp://127.0.0.1:7412)")"
      echo "REDRESS_DISPATCHER_EVENTS_ENDPOINT=$(all_eps "$(conf_ep intake pub_bind tcp://127.0.0.1:7403)")"
      ;;
    escalation)
      echo "REDRESS_ESCALATION_EVENTS_ENDPOINT=$(all_eps "$(conf_ep intake pub_bind tcp://127.0.0.1:7403)"),$(all_eps "$(conf_ep dispatcher pub_bind tcp://127.0.0.1:7423)")"
      ;;
  esac
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
for ((k = 1; k <= instances; k++)); do
for svc in "${services[@]}"; do
  name=$svc
  ((k == 1)) || name=$svc-$k
  bin=$root/build/services/$svc/redress-$svc
  [[ -x $bin ]] || continue
  if pid=$(service_pid "$name"); then
    say "redress-$name already running (pid $pid)"
    running+=("$name")
    continue
  fi
  log=$var/log/$name.log
  mapfile -t ienv < <(instance_env "$svc" "$k")
  printf '\n=== %s up.sh: starting %s%s --config %s\n' "$(date -Is)" "${ienv[*]/%/ }" "$bin" "$conf" >>"$log"
  # setsid: its own session, so a Ctrl-C in this terminal later does not reach it.
  env "${ienv[@]}" setsid "$bin" --config "$conf" </dev/null >>"$log" 2>&1 &
  pid=$!
  printf '%s\n' "$pid" >"$var/run/$name.pid"

  port=$(http_port_of "$svc" "$k")
  host=$(ini_get "$svc" http_bind)
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

${curve_hint:+Gateways authenticate with CURVE (docs/security.md); first, in this shell:
  $curve_hint
}Submit a complaint:
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
Personal data and the audit log (docs/privacy.md): what is held about a customer, erasure (as
redress_ops, the operators' login in role redress_admin), and who did what:
  build/tools/redressctl customer show C-1001
  build/tools/redressctl --dsn "$ops_dsn" customer erase C-1001 --yes
  build/tools/redressctl audit --since '1 hour'

Logs:     var/log/<service>.log, var/log/postgresql.log, var/log/redis.log
Health:   curl http://127.0.0.1:$intake_http/healthz    Metrics: curl http://127.0.0.1:$intake_http/metrics
Dashboard: $dashboard
Stop everything: deploy/local/down.sh   (add --purge to delete var/ too)
EOF
if ((instances > 1)); then
  printf '\n%s instances of each service (NAME-K: every port + (K-1)*100). Gateways and redressctl\n' "$instances"
  printf 'spread over all intakes with:\n  --endpoint %s   (or REDRESS_INTAKE_ENDPOINT)\n' \
    "$(all_eps "$(conf_ep intake bind tcp://127.0.0.1:7401)")"
fi
