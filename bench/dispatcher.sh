#!/usr/bin/env bash
# bench/dispatcher.sh: how fast the dispatcher gives tickets an owner, and how close that is to
# what Redis itself can do with the same Lua script. See bench/README.md ("Dispatcher").
#
# One run, on a private PostgreSQL and Redis in a temporary directory (tests/lib/servers.sh):
#   1. an organisation made by SQL: T teams x A agents (default 20 x 50 = 1,000), all online
#      (agent_presence rows that expire in a day; the dispatchers' reconciliation copies them into
#      Redis), capacities large enough that nobody fills up, one routing rule per team (region
#      prefix), acceptance limits of a day so no assignment expires during the run;
#   2. N tickets (default 200,000) inserted by SQL straight into state 'classified';
#   3. P redress-dispatcher processes (default 2) started; they find the tickets by re-drive
#      (redrive_min_age_ms=0) and assign them. Measured: wall time until all N are assigned
#      (committed), assignment decisions/s and the decision latency histogram from /metrics;
#   4. the ceiling: redis-benchmark running EVALSHA of the very same assign script (printed by
#      redress-dp-script-dump) against the same Redis, with one team's agents, unpipelined and
#      pipelined -- what Redis alone can decide per second.
# Steps 2-3 run --repeat times (tables truncated in between); the ceiling is measured once.
# It prints figures and, beside each target, PASS or SHORT; it never fails on timing (machines
# are noisy). It exits non-zero only when something did not work.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
Usage: bench/dispatcher.sh [options]

Benchmarks redress-dispatcher against a private PostgreSQL and Redis (see bench/README.md).
Builds nothing: point REDRESS_BUILD_DIR at a build
(cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build).

Options (each also settable by the environment variable in brackets):
  --tickets N          tickets to assign per repeat                       [BENCH_TICKETS=200000]
  --teams T            teams (one routing rule each)                      [BENCH_TEAMS=20]
  --agents A           agents per team (all online)                       [BENCH_AGENTS=50]
  --capacity C         every agent's capacity, load units (max 100000)    [BENCH_CAPACITY=100000]
  --processes P        redress-dispatcher processes                       [BENCH_PROCESSES=2]
  --repeat R           assign N fresh tickets R times; prints min/median/max [BENCH_REPEAT=1]
  --requests N         redis-benchmark requests per ceiling run            [BENCH_REQUESTS=200000]
  --clients C          redis-benchmark connections                         [BENCH_CLIENTS=50]
  --timeout S          give up when the tickets are not all assigned in S seconds [BENCH_TIMEOUT=600]
  --path P             how the tickets reach the dispatchers              [BENCH_PATH=fast]
                       redrive: they find them in PostgreSQL (their fallback path);
                       fast: their ids arrive over the classifier's PUSH, as in the running
                       system (bench/redress-dp-feed plays the classifier; re-drive is off)
  --keep               keep the temporary directory (logs, /metrics scrapes)
  -h, --help           this text

Environment:
  REDRESS_BUILD_DIR     the build to benchmark (default ./build, relative to the repository)
  REDRESS_PG_FSYNC      on|off for the private PostgreSQL (default on: commits are durable)
  REDRESS_DISPATCHER_*  any dispatcher setting, e.g. REDRESS_DISPATCHER_BATCH=32 (default 64);
                        the script itself sets the ports, REDRIVE_MIN_AGE_MS=0 and
                        REDRIVE_INTERVAL_MS=50 unless given

Needs the postgresql server package, redis-server, redis-cli and redis-benchmark (Debian:
redis-server / redis-tools) and curl. Output: the figures, the targets with PASS/SHORT, then one
line 'RESULT key=value ...'.
EOF
}

die() {
  printf 'bench/dispatcher.sh: error: %s\n' "$*" >&2
  exit 1
}

TICKETS=${BENCH_TICKETS:-200000}
TEAMS=${BENCH_TEAMS:-20}
AGENTS=${BENCH_AGENTS:-50}
CAPACITY=${BENCH_CAPACITY:-100000}
PROCESSES=${BENCH_PROCESSES:-2}
REPEAT=${BENCH_REPEAT:-1}
REQUESTS=${BENCH_REQUESTS:-200000}
CLIENTS=${BENCH_CLIENTS:-50}
TIMEOUT=${BENCH_TIMEOUT:-600}
FEEDPATH=${BENCH_PATH:-fast}
KEEP=0
need() { (($# >= 2)) || die "$1 needs a value (try --help)"; }
while (($#)); do
  case $1 in
    --tickets) need "$@"; TICKETS=$2; shift 2 ;;
    --teams) need "$@"; TEAMS=$2; shift 2 ;;
    --agents) need "$@"; AGENTS=$2; shift 2 ;;
    --capacity) need "$@"; CAPACITY=$2; shift 2 ;;
    --processes) need "$@"; PROCESSES=$2; shift 2 ;;
    --repeat) need "$@"; REPEAT=$2; shift 2 ;;
    --requests) need "$@"; REQUESTS=$2; shift 2 ;;
    --clients) need "$@"; CLIENTS=$2; shift 2 ;;
    --timeout) need "$@"; TIMEOUT=$2; shift 2 ;;
    --path) need "$@"; FEEDPATH=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
for v in TICKETS TEAMS AGENTS CAPACITY PROCESSES REPEAT REQUESTS CLIENTS TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "${v,,} must be a positive integer, not '${!v}'"
done
((TEAMS <= 99)) || die "--teams: at most 99"
((AGENTS <= 999)) || die "--agents: at most 999"
((CAPACITY <= 100000)) || die "--capacity: at most 100000 (the agents table's CHECK)"

# ---- what we run ---------------------------------------------------------------------------------

BUILD=${REDRESS_BUILD_DIR:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
DISPATCHER=$BUILD/services/dispatcher/redress-dispatcher
DUMP=$BUILD/bench/redress-dp-script-dump
FEEDER=$BUILD/bench/redress-dp-feed
[[ $FEEDPATH == redrive || $FEEDPATH == fast ]] || die "--path: redrive or fast, not '$FEEDPATH'"
for b in "$DISPATCHER" "$DUMP" "$FEEDER"; do
  [[ -x $b ]] || die "$b is missing: build first (cmake -S $ROOT -B $BUILD -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build $BUILD -j\$(nproc)) or set REDRESS_BUILD_DIR"
done
for t in redis-server redis-cli redis-benchmark curl; do
  command -v "$t" >/dev/null 2>&1 || die "$t is needed (Debian: apt-get install redis-server redis-tools curl)"
done

# shellcheck source=../tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"
PGBIN=$(rd_pg_bindir)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redress-dispatcher-bench.XXXXXX")
chmod 755 "$WORK"
DPIDS=()

stop_dispatchers() {
  local p
  for p in "${DPIDS[@]}"; do rd_stop_pid "$p" 20 || true; done
  DPIDS=()
  if [[ -n ${FEEDPID:-} ]]; then
    rd_stop_pid "$FEEDPID" 5 || true
    FEEDPID=''
  fi
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_dispatchers
  rd_redis_stop "$WORK" || true
  rd_pg_stop "$WORK" || true
  if ((KEEP)); then
    printf 'kept %s (pg/log/postgresql.log, redis/redis.log, dispatcher-*.log, metrics-*.txt)\n' "$WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { printf '%s\n' "$*"; }
hr() { printf -- '---- %s %s\n' "$*" "$(printf '%*s' $((70 - ${#1})) '' | tr ' ' -)"; }

rd_pg_start "$WORK" 2>"$WORK/pg-start.log" || {
  cat "$WORK/pg-start.log" >&2
  die "could not start PostgreSQL"
}
rd_redis_start "$WORK" 2>"$WORK/redis-start.log" || {
  cat "$WORK/redis-start.log" >&2
  die "could not start Redis"
}
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$REDRESS_PG_DSN")
sql() { "${PSQL[@]}" -tA -c "$1"; }
FSYNC=$(sql "SHOW fsync")
REDIS_PORT=${REDRESS_REDIS_URL##*:}
RCLI=(redis-cli -h 127.0.0.1 -p "$REDIS_PORT")
rcli() { "${RCLI[@]}" "$@"; }
REDIS_PID=$(cat "$WORK/redis/redis.pid")
PG_PID=$(head -n 1 "$WORK/pg/postmaster.pid")

# ---- the organisation ----------------------------------------------------------------------------

# Departments D1..D4 (D1 is the dispatch centre), teams T01..T<TEAMS> spread over them, agents
# a-T01-001..; one routing rule per team: region prefix 'R01-' -> T01. Every agent speaks 'zh'
# (tickets are zh-CN), other skills empty (= any).
sql "BEGIN;
INSERT INTO departments (id, name, dispatch_centre) SELECT 'D' || d, 'Department ' || d, d = 1 FROM generate_series(1, 4) d;
INSERT INTO teams (id, department_id, name, major_weight)
  SELECT 'T' || lpad(t::text, 2, '0'), 'D' || (1 + (t - 1) % 4), 'Team ' || t, 2 FROM generate_series(1, $TEAMS) t;
UPDATE departments d SET default_team = (SELECT min(id) FROM teams WHERE department_id = d.id);
INSERT INTO agents (id, team_id, name, capacity, languages)
  SELECT 'a-T' || lpad(t::text, 2, '0') || '-' || lpad(a::text, 3, '0'), 'T' || lpad(t::text, 2, '0'),
         '坐席 ' || t || '-' || a, $CAPACITY, '{zh}'
    FROM generate_series(1, $TEAMS) t, generate_series(1, $AGENTS) a;
INSERT INTO agent_presence (agent_id, status, expires_at) SELECT id, 'online', now() + interval '1 day' FROM agents;
INSERT INTO routing_rules (name, ord, region_prefix, team_id)
  SELECT 'region-' || lpad(t::text, 2, '0'), t, 'R' || lpad(t::text, 2, '0') || '-', 'T' || lpad(t::text, 2, '0')
    FROM generate_series(1, $TEAMS) t;
UPDATE accept_limits SET seconds = 86400, transferred_s = 86400;
INSERT INTO customers (id, customer_ref, name)
  SELECT md5('bench-customer-' || c)::uuid, 'bench-customer-' || c, '客户 ' || c FROM generate_series(0, 999) c;
COMMIT;" >/dev/null
NAGENTS=$(sql "SELECT count(*) FROM agents")

# Fresh tickets for one repeat: every team gets N/T (region prefix), 5% major, priorities 1-4,
# updated_at in the past and all distinct (re-drive takes the oldest first).
insert_tickets() {
  sql "INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, region, language, subject, body,
                            state, business_type, category, severity, priority, occurred_at, created_at, updated_at)
       SELECT gen_random_uuid(), 'bench', 'bench-$1-' || g, 'hotline', md5('bench-customer-' || (g % 1000))::uuid,
              'R' || lpad((1 + g % $TEAMS)::text, 2, '0') || '-' || (g % 7), 'zh-CN', '停电三天无人处理 ' || g,
              '我家从周一开始停电，打了三次95598都没有人来修。', 'classified', 'complaint', '供电质量/停电',
              CASE WHEN g % 20 = 0 THEN 'major' ELSE 'general' END, 1 + g % 4,
              now() - interval '1 hour', now() - interval '1 hour',
              now() - interval '1 hour' + g * interval '1 microsecond'
         FROM generate_series(1, $TICKETS) g" >/dev/null
}

# ---- measuring -----------------------------------------------------------------------------------

TICKS=$(getconf CLK_TCK)
proc_ticks() { (($#)) || { echo 0; return; }; { cat "$@" 2>/dev/null || true; } | awk '{ sub(/.*\) /, ""); t += $12 + $13 } END { print t + 0 }'; }
# cpu_snap VAR: sets VAR to "machine dispatchers postgres redis ours steal" in clock ticks:
# machine = busy ticks of all CPUs from /proc/stat; steal = time the hypervisor gave our CPUs to
# others; postgres = the postmaster and its children; ours = this shell's reaped children
# (redis-benchmark for the ceiling; next to nothing while dispatching). Runs in this shell, not
# in $(...), so that `times` sees our children.
cpu_snap() {
  local machine steal disp pg rd ours pids=() p
  read -r machine steal < <(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat)
  for p in "${DPIDS[@]}"; do pids+=("/proc/$p/stat"); done
  disp=$(proc_ticks "${pids[@]}")
  mapfile -t pids < <(pgrep -P "$PG_PID" | sed 's|.*|/proc/&/stat|')
  pg=$(proc_ticks "/proc/$PG_PID/stat" "${pids[@]}")
  rd=$(proc_ticks "/proc/$REDIS_PID/stat")
  times >"$WORK/times"
  ours=$(awk -v k="$TICKS" 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } } END { printf "%.0f", t * k }' "$WORK/times")
  printf -v "$1" '%s %s %s %s %s %s' "$machine" "$disp" "$pg" "$rd" "$ours" "$steal"
}
cpu_report() { # A B SECS WHAT OURS
  awk -v a="$1" -v b="$2" -v secs="$3" -v k="$TICKS" -v n="$(nproc)" -v what="$4" -v us="$5" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    m = y[1] - x[1]; d = y[2] - x[2]; p = y[3] - x[3]; r = y[4] - x[4]; l = y[5] - x[5]; st = y[6] - x[6]
    if (p < 0) p = 0 # a PostgreSQL backend that exited in between takes its ticks with it
    o = m - d - p - r - l
    if (o < 0) o = 0
    f = 100 / (secs * k)
    printf "  CPU (%% of one CPU, %d CPUs): %sPostgreSQL %.0f%%, Redis %.0f%%, %s %.0f%%, anything else %.0f%%; machine busy %.0f%%, steal %.0f%%\n",
      n, (what == "" ? "" : sprintf("%s %.0f%%, ", what, d * f)), p * f, r * f, us, l * f, o * f, m * f / n, st * f / n }'
}

# The progress of the dispatchers, polled without starting a single process: on a 2-CPU machine a
# curl, awk and cat every 0.2 s cost about a third of a CPU, taken from PostgreSQL and Redis.
# poll_progress: sets A (assigned) and D (decisions), summed over every dispatcher's /metrics,
# read with bash's /dev/tcp (HTTP/1.0: the server closes the connection after the answer).
HTTP_PORTS=()
poll_progress() {
  local port fd k v _
  A=0 D=0
  for port in "${HTTP_PORTS[@]}"; do
    { exec {fd}<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || continue # not listening yet
    { printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' 1>&"$fd"; } 2>/dev/null || true
    while read -r -t 2 k v _ <&"$fd"; do
      case $k in
        redress_dispatcher_assigned_total) A=$((A + v)) ;;
        redress_dispatcher_decision_seconds_count) D=$((D + v)) ;;
      esac
    done
    exec {fd}>&-
  done
}
# snooze SECS: sleep without starting a process (a read that times out on a pipe nobody writes).
exec {SNOOZE_FD}<> <(:)
snooze() { read -r -t "$1" -u "$SNOOZE_FD" _ || true; }
# alive PID: like rd_pid_alive (zombies count as dead), with builtins only.
alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 0
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}

# p50 p99 (ms) of a histogram summed over the files given; linear interpolation inside the bucket
# (from the bucket's lower bound, 0 for the first). ">LAST" when the quantile is in +Inf.
quantiles() { # METRIC FILE...
  local m=$1
  shift
  cat "$@" | awk -v m="${m}_bucket" '
    index($1, m "{le=\"") == 1 { le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le); c[le] += $2; if (!(le in seen)) { seen[le] = 1; order[++n] = le } }
    function q(p,   i, target, prev, prevc, le, v) {
      target = p * c["+Inf"]; prev = 0; prevc = 0
      for (i = 1; i <= n; i++) {
        le = order[i]
        if (c[le] >= target) {
          if (le == "+Inf") return ">" prev * 1000
          v = prev + (le - prev) * (c[le] > prevc ? (target - prevc) / (c[le] - prevc) : 0)
          return sprintf("%.3f", v * 1000)
        }
        prev = le; prevc = c[le]
      }
    }
    END { if (c["+Inf"] == 0) { print "NA NA"; exit } printf "%s %s\n", q(0.50), q(0.99) }'
}
bucket_bounds() { # METRIC FILE: the bucket bounds in ms, for the reader
  awk -v m="${1}_bucket" 'index($1, m "{le=\"") == 1 { le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
    printf "%s%s", (n++ ? " " : ""), (le == "+Inf" ? le : le * 1000) } END { print "" }' "$2"
}

# Redis' slow log: every command that kept Redis busy for more than SLOW_US. While one runs, every
# other client (the other dispatcher's decisions) waits. EVALSHA is named by script (the SHA-1 of
# each script's text, from redress-dp-script-dump).
SLOW_US=2000
declare -A SCRIPT_OF
for s in assign sync cancel presence rebuild now; do
  SCRIPT_OF[$("$DUMP" "$s" | sha1sum | cut -c1-40)]=$s
done
slowlog_reset() {
  rcli CONFIG SET slowlog-log-slower-than "$SLOW_US" >/dev/null
  rcli CONFIG SET slowlog-max-len 100000 >/dev/null
  rcli SLOWLOG RESET >/dev/null
}
slowlog_report() { # SECS UNTIL: the run's length, and its end (epoch s); later entries are left out
  local map="" k
  for k in "${!SCRIPT_OF[@]}"; do map+="$k=${SCRIPT_OF[$k]} "; done
  rcli --json SLOWLOG GET 100000 >"$WORK/slowlog.json" || return 0
  /usr/bin/python3 - "$WORK/slowlog.json" "$1" "$SLOW_US" "$map" "$2" <<'PY' || say "  (cannot summarise Redis' slow log)"
import json, sys
entries = json.load(open(sys.argv[1]))
secs, slow_us, until = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[5])
names = dict(kv.split("=") for kv in sys.argv[4].split())
groups = {}
for e in entries:
    if e[1] > until:  # logged (1 s resolution) after the last assignment: not part of the run
        continue
    us, args = e[2], e[3]
    cmd = args[0].upper() if args else "?"
    if cmd == "EVALSHA" and len(args) > 1:
        cmd = "EVALSHA " + names.get(args[1], args[1][:8])
    g = groups.setdefault(cmd, [0, 0, 0])
    g[0] += 1; g[1] += us; g[2] = max(g[2], us)
total = sum(g[1] for g in groups.values())
print("  Redis blocked by commands slower than %g ms: %d of them, %.0f ms in all (%.1f%% of the run)"
      % (slow_us / 1000, sum(g[0] for g in groups.values()), total / 1000, total / 1e4 / secs if secs > 0 else 0))
for cmd, g in sorted(groups.items(), key=lambda x: -x[1][1])[:6]:
    print("    %-22s %6d x, %8.0f ms in all, longest %6.1f ms" % (cmd, g[0], g[1] / 1000, g[2] / 1000))
PY
}

fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b > 0 ? a / b : 0) }'; }

# ---- configuration -------------------------------------------------------------------------------

cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
read -r load1 _ </proc/loadavg
BATCH=${REDRESS_DISPATCHER_BATCH:-64}
hr "configuration"
say "date         : $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "machine      : $(nproc) CPUs ($cpu_model), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
say "load average : $load1 at start$(awk -v l="$load1" 'BEGIN { if (l > 0.5) print "  (something else is running: expect noise)" }')"
say "PostgreSQL   : $(sql 'SHOW server_version') in $WORK/pg; $(sql "SELECT string_agg(name || '=' || setting || COALESCE(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers')")"
say "Redis        : $(redis-server --version | awk '{ print $3 }' | sed 's/^v=//') on port $REDIS_PORT (no persistence)"
if [[ $FEEDPATH == fast ]]; then
  say "path         : fast -- ticket ids over the classifier's PUSH (bench/redress-dp-feed), re-drive after ${REDRESS_DISPATCHER_REDRIVE_MIN_AGE_MS:-3600000} ms"
else
  say "path         : redrive -- the dispatchers find the tickets in PostgreSQL"
fi
say "dispatcher   : $DISPATCHER x $PROCESSES processes, batch $BATCH, redrive_interval_ms ${REDRESS_DISPATCHER_REDRIVE_INTERVAL_MS:-50}, redrive_min_age_ms ${REDRESS_DISPATCHER_REDRIVE_MIN_AGE_MS:-$([[ $FEEDPATH == fast ]] && echo 3600000 || echo 0)}, reconcile_interval_ms ${REDRESS_DISPATCHER_RECONCILE_INTERVAL_MS:-5000 (default)}"
say "organisation : $TEAMS teams x $AGENTS agents = $NAGENTS agents, all online, capacity $CAPACITY each, least-loaded, one routing rule per team (region prefix)"
say "tickets      : $TICKETS per repeat, state 'classified', spread evenly over the teams, 5% major (weight 2); $REPEAT repeat(s)"

# ---- the dispatcher runs -------------------------------------------------------------------------

# Ports for every process, chosen before the clock starts (rd_free_port runs python3).
PORTS=()
pick_ports() {
  local i
  PORTS=()
  for ((i = 0; i < 5 * PROCESSES; i++)); do PORTS+=("$(rd_free_port)"); done
}
start_dispatchers() { # REPEAT
  local i k
  HTTP_PORTS=()
  for ((i = 1; i <= PROCESSES; i++)); do
    k=$((5 * (i - 1)))
    HTTP_PORTS+=("${PORTS[k + 4]}")
    # redrive: the classifier and events endpoints point at ports nobody listens on, re-drive does
    # it all; fast: every dispatcher connects to the feeder, and re-drive waits an hour.
    local classifier=tcp://127.0.0.1:${PORTS[k]} min_age=${REDRESS_DISPATCHER_REDRIVE_MIN_AGE_MS:-0}
    if [[ $FEEDPATH == fast ]]; then
      classifier=tcp://127.0.0.1:$FEED_PORT
      min_age=${REDRESS_DISPATCHER_REDRIVE_MIN_AGE_MS:-3600000}
    fi
    REDRESS_DISPATCHER_CLASSIFIER_ENDPOINT=$classifier \
      REDRESS_DISPATCHER_EVENTS_ENDPOINT=tcp://127.0.0.1:${PORTS[k + 1]} \
      REDRESS_DISPATCHER_PUSH_BIND=tcp://127.0.0.1:${PORTS[k + 2]} \
      REDRESS_DISPATCHER_PUB_BIND=tcp://127.0.0.1:${PORTS[k + 3]} \
      REDRESS_DISPATCHER_HTTP_PORT=${PORTS[k + 4]} \
      REDRESS_DISPATCHER_REDRIVE_MIN_AGE_MS=$min_age \
      REDRESS_DISPATCHER_REDRIVE_INTERVAL_MS=${REDRESS_DISPATCHER_REDRIVE_INTERVAL_MS:-50} \
      "$DISPATCHER" 2>"$WORK/dispatcher-$1-$i.log" &
    DPIDS+=("$!")
  done
}

declare -a R_ASSIGN R_STEADY R_DEC R_P50 R_P99
for ((rep = 1; rep <= REPEAT; rep++)); do
  hr "run $rep of $REPEAT: $TICKETS tickets, $PROCESSES dispatchers"
  if ((rep > 1)); then
    sql "SET client_min_messages = warning; TRUNCATE tickets CASCADE" >/dev/null
    rcli DEL '{rd}:open' '{rd}:load' >/dev/null
    mapfile -t rr < <(rcli --scan --pattern '{rd}:rr:*')
    ((${#rr[@]} == 0)) || rcli DEL "${rr[@]}" >/dev/null
  fi
  insert_tickets "$rep"
  # Start from a vacuumed, checkpointed database: neither autovacuum catching up on the insert
  # nor a checkpoint it started should land in the measured window.
  sql "VACUUM (ANALYZE)" >/dev/null
  sql "CHECKPOINT" >/dev/null
  waiting=$(sql "SELECT count(*) FROM tickets WHERE state = 'classified'")
  ((waiting == TICKETS)) || die "$waiting classified tickets instead of $TICKETS"

  pick_ports
  slowlog_reset
  c0='' c1=''
  cpu_snap c0
  t_launch=$EPOCHREALTIME
  if [[ $FEEDPATH == fast ]]; then
    FEED_PORT=$(rd_free_port)
    sql "COPY (SELECT id FROM tickets WHERE state = 'classified' ORDER BY updated_at) TO STDOUT" >"$WORK/ids-$rep.txt"
  fi
  start_dispatchers "$rep"
  if [[ $FEEDPATH == fast ]]; then
    # the dispatchers retry their connection every 100 ms: give them a second to find the feeder
    "$FEEDER" --bind "tcp://127.0.0.1:$FEED_PORT" --wait-ms 1000 <"$WORK/ids-$rep.txt" 2>"$WORK/feed-$rep.log" &
    FEEDPID=$!
  fi
  t_first='' a_first=0 d_first=0 t_done=''
  deadline=$((${t_launch%.*} + TIMEOUT))
  while :; do
    poll_progress
    a=$A d=$D
    t=$EPOCHREALTIME
    if [[ -z $t_first ]] && ((a > 0)); then t_first=$t a_first=$a d_first=$d; fi
    if ((a >= TICKETS)); then
      t_done=$t
      break
    fi
    for p in "${DPIDS[@]}"; do
      alive "$p" || {
        tail -n 20 "$WORK"/dispatcher-"$rep"-*.log >&2
        die "a dispatcher exited during run $rep"
      }
    done
    ((${t%.*} <= deadline)) || die "only $a of $TICKETS tickets assigned after $TIMEOUT s (see --timeout; --keep for the logs)"
    snooze 0.2
  done
  cpu_snap c1
  i=0
  for port in "${HTTP_PORTS[@]}"; do
    i=$((i + 1))
    curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" >"$WORK/metrics-$rep-$i.txt" || die "cannot read /metrics of dispatcher $i"
  done
  stop_dispatchers

  # What PostgreSQL says: every ticket assigned exactly once, nothing queued.
  assigned=$(sql "SELECT count(*) FROM tickets WHERE state = 'assigned' AND owner_agent IS NOT NULL")
  rows=$(sql "SELECT count(*) || ' ' || count(DISTINCT ticket_id) FROM ticket_assignments")
  queued=$(sql "SELECT count(*) FROM dispatch_queue")
  ((assigned == TICKETS)) || die "PostgreSQL shows $assigned assigned tickets, expected $TICKETS"
  [[ $rows == "$TICKETS $TICKETS" ]] || die "ticket_assignments: $rows rows/distinct tickets, expected $TICKETS each"
  spread=$(sql "SELECT min(n) || ' / ' || max(n) FROM (SELECT count(*) n FROM ticket_assignments GROUP BY agent_id) x")
  teams_used=$(sql "SELECT count(DISTINCT team_id) FROM ticket_assignments")

  files=("$WORK"/metrics-"$rep"-*.txt)
  msum() { cat "${files[@]}" | awk -v k="$1" '$1 == k { s += $2 } END { printf "%.6f\n", s + 0 }'; }
  decisions=$(msum redress_dispatcher_decision_seconds_count)
  decisions=${decisions%.*}
  batches=$(msum redress_dispatcher_batches_total)
  batches=${batches%.*}
  bsum=$(msum redress_dispatcher_batch_seconds_sum)
  nqueued=$(msum redress_dispatcher_queued_total)
  nqueued=${nqueued%.*}
  errors=$(msum redress_dispatcher_errors_total)
  errors=${errors%.*}
  read -r p50 p99 < <(quantiles redress_dispatcher_decision_seconds "${files[@]}")
  wall=$(fsub "$t_done" "$t_launch")
  steady=$(fsub "$t_done" "$t_first")
  rate=$(fdiv "$TICKETS" "$wall")
  srate=$(fdiv "$((TICKETS - a_first))" "$steady")
  drate=$(fdiv "$((decisions - d_first))" "$steady")
  startup=$(fsub "$t_first" "$t_launch")

  say "  all $TICKETS assigned (PostgreSQL: $assigned tickets assigned, one assignment each; $queued queued; $teams_used teams; per agent min/max $spread)"
  say "  wall from launching the dispatchers to the last commit: ${wall} s  -> $rate assignments/s end-to-end"
  say "  first assignment seen after ${startup} s (start-up: connect, load the organisation, reconcile Redis);"
  say "  from then on: $((TICKETS - a_first)) in ${steady} s -> $srate assignments/s committed, $drate decisions/s (Redis answers)"
  say "  decisions (histogram count): $decisions; queued: $nqueued; batch errors: $errors"
  awk -v n="$batches" -v s="$bsum" -v t="$TICKETS" -v w="$wall" -v p="$PROCESSES" 'BEGIN { if (n > 0)
    printf "  transactions: %d, %.0f tickets each, %.2f ms each (claim+decide+write+commit); dispatchers in a batch %.0f%% of the time\n",
      n, t / n, 1000 * s / n, 100 * s / (w * p) }'
  say "  decision latency (batch start to each answer, both processes): p50 $p50 ms, p99 $p99 ms"
  say "    histogram bounds (ms): $(bucket_bounds redress_dispatcher_decision_seconds "${files[0]}")"
  cpu_report "$c0" "$c1" "$wall" "dispatchers" "this script"
  slowlog_report "$wall" "${t_done%.*}"
  R_ASSIGN+=("$rate") R_STEADY+=("$srate") R_DEC+=("$drate") R_P50+=("$p50") R_P99+=("$p99")
done

# min / median / max of a list of numbers
mmm() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%s / %s / %s", v[1], (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[NR] }'; }
median() { # FORMAT NUMBER...
  local f=$1
  shift
  printf '%s\n' "$@" | sort -g | awk -v f="$f" '{ v[NR] = $1 } END { printf f "\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
if ((REPEAT > 1)); then
  hr "noise over $REPEAT runs (min / median / max)"
  say "  assignments/s end-to-end    : $(mmm "${R_ASSIGN[@]}")"
  say "  assignments/s after start-up: $(mmm "${R_STEADY[@]}")"
  say "  decisions/s                 : $(mmm "${R_DEC[@]}")"
  say "  decision p50 ms             : $(mmm "${R_P50[@]}")"
  say "  decision p99 ms             : $(mmm "${R_P99[@]}")"
fi
ASSIGN=$(median %.0f "${R_ASSIGN[@]}")
STEADY=$(median %.0f "${R_STEADY[@]}")
DEC=$(median %.0f "${R_DEC[@]}")
P50=$(median %.3f "${R_P50[@]}")
P99=$(median %.3f "${R_P99[@]}")

# ---- the ceiling: the same script with redis-benchmark -------------------------------------------

hr "ceiling: redis-benchmark, EVALSHA of the dispatcher's assign script"
"$DUMP" assign >"$WORK/assign.lua" || die "redress-dp-script-dump failed"
SHA=$(rcli SCRIPT LOAD "$(cat "$WORK/assign.lua")")
[[ $SHA =~ ^[0-9a-f]{40}$ ]] || die "SCRIPT LOAD answered '$SHA'"
# The dispatchers loaded their own copy: the same text has the same SHA, so it must be known.
[[ $(rcli SCRIPT EXISTS "$SHA" | head -n 1) == 1 ]] || die "SCRIPT EXISTS $SHA: not loaded"
mapfile -t TEAM_AGENTS < <(sql "SELECT id FROM agents WHERE team_id = 'T01' ORDER BY id")
# The assign script's KEYS, in the order services/dispatcher/dispatcher.h documents; as many as
# the script uses (a later version may take more).
ALL_KEYS=('{rd}:load' '{rd}:cap' '{rd}:pres' '{rd}:open' '{rd}:rr:bench' '{rd}:ready' '{rd}:gone')
NKEYS=$(grep -o 'KEYS\[[0-9]*\]' "$WORK/assign.lua" | tr -dc '0-9\n' | sort -n | tail -n 1)
if ! [[ $NKEYS =~ ^[0-9]+$ ]] || ((NKEYS < 6 || NKEYS > ${#ALL_KEYS[@]})); then
  die "the assign script uses ${NKEYS:-no} KEYS; bench/dispatcher.sh knows ${#ALL_KEYS[@]} (see dispatcher.h and update ALL_KEYS)"
fi
# ARGV: strategy, the number of candidates, the candidates, then (ticket, weight) pairs: one call
# decides every ticket of a batch that has the same candidates (see dispatcher.h).
cmd_for() { # TICKETS_PER_CALL
  CMD=(EVALSHA "$SHA" "$NKEYS" "${ALL_KEYS[@]:0:NKEYS}" ll "${#TEAM_AGENTS[@]}" "${TEAM_AGENTS[@]}")
  local i
  for ((i = 0; i < $1; i++)); do CMD+=(__rand_int__ 1); done
}
cmd_for 1
# The state every call needs to really pick an agent: Redis reconciled, the team online with room.
[[ $(rcli EXISTS '{rd}:ready') == 1 ]] || die "{rd}:ready is missing after the dispatcher runs"
probe=$(rcli "${CMD[@]/__rand_int__/probe-ticket}")
[[ $probe == a-T01-* ]] || die "the assign script did not pick an agent of T01 (answered '$probe')"
rcli EVAL "redis.call('HDEL', KEYS[2], 'probe-ticket') return redis.call('HINCRBY', KEYS[1], ARGV[1], -1)" 2 '{rd}:load' '{rd}:open' "$probe" >/dev/null
say "  script: $(wc -c <"$WORK/assign.lua") bytes, sha $SHA (already loaded by the dispatchers: same text)"
say "  command: EVALSHA <sha> $NKEYS ${ALL_KEYS[*]:0:NKEYS} ll ${#TEAM_AGENTS[@]} <the agents of T01> then TPC x (__rand_int__ 1)"
say "  (TPC = tickets decided per call; the dispatcher sends one call per batch and candidate set)"
say "  $REQUESTS requests, $CLIENTS connections, -r 100000000 (a new ticket id per call)"

declare -A CEIL
for mode in 1:1 16:1 1:16; do
  P=${mode%%:*} TPC=${mode##*:}
  cmd_for "$TPC"
  calls0=$(rcli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*failed_calls=\([0-9]*\).*/\1 \2/p')
  open0=$(rcli HLEN '{rd}:open')
  cpu_snap c0
  t0=$EPOCHREALTIME
  out=$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n "$REQUESTS" -c "$CLIENTS" -P "$P" -r 100000000 --csv "${CMD[@]}" 2>"$WORK/rb-$P.err") ||
    die "redis-benchmark failed: $(tail -n 5 "$WORK/rb-$P.err")"
  t1=$EPOCHREALTIME
  cpu_snap c1
  calls1=$(rcli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*failed_calls=\([0-9]*\).*/\1 \2/p')
  open1=$(rcli HLEN '{rd}:open')
  read -r ca fa <<<"${calls0:-0 0}"
  read -r cb fb <<<"${calls1:-0 0}"
  ((cb - ca >= REQUESTS)) || die "redis-benchmark -P $P: Redis counted $((cb - ca)) EVALSHA calls, expected $REQUESTS"
  ((fb - fa == 0)) || die "redis-benchmark -P $P: $((fb - fa)) EVALSHA calls failed"
  added=$((open1 - open0))
  # Each call assigns a fresh ticket id; -r draws ids at random, so a few repeat (and are re-assigned).
  ((added * 100 >= REQUESTS * TPC * 95)) || die "redis-benchmark -P $P: only $added of $((REQUESTS * TPC)) tickets were assigned"
  rps=$(awk -F'","' 'NR == 2 { gsub(/"/, "", $2); printf "%.0f", $2 }' <<<"$out")
  lat=$(awk -F'","' 'NR == 2 { printf "avg %s ms, p50 %s ms, p99 %s ms", $3, $5, $7 }' <<<"$out")
  [[ $rps =~ ^[0-9]+$ ]] || die "cannot read redis-benchmark's output: $out"
  CEIL[$mode]=$((rps * TPC))
  say "  -P $(printf '%-2s' "$P") TPC $(printf '%-2s' "$TPC"): $rps EVALSHA/s = $((rps * TPC)) decisions/s ($lat per request); $added new tickets assigned in Redis"
  cpu_report "$c0" "$c1" "$(fsub "$t1" "$t0")" "" "redis-benchmark"
done
RATIO1=$(awk -v a="$DEC" -v b="${CEIL[1:1]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
RATIO16=$(awk -v a="$DEC" -v b="${CEIL[16:1]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
RATIOT=$(awk -v a="$DEC" -v b="${CEIL[1:16]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
say "  dispatcher decisions/s $DEC = ratio $RATIO1 of -P 1, $RATIO16 of -P 16, $RATIOT of 16 tickets per call"

# ---- targets --------------------------------------------------------------------------------------

verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "NA" || v ~ /^>/) print (op == "<=" ? "SHORT" : "n/a"); else if ((op == ">=" && v + 0 >= t) || (op == "<=" && v + 0 <= t)) print "PASS"; else print "SHORT" }'; }
of=''
((REPEAT == 1)) || of=", median of $REPEAT runs"
hr "targets ($(nproc) CPUs, $NAGENTS agents, $PROCESSES dispatchers, fsync=$FSYNC$of)"
printf '  %-58s %10s  %s\n' "assignments/s committed after start-up, target >= 20000" "$STEADY" "$(verdict "$STEADY" '>=' 20000)"
printf '  %-58s %10s  %s\n' "assignments/s end-to-end incl. start-up, target >= 20000" "$ASSIGN" "$(verdict "$ASSIGN" '>=' 20000)"
printf '  %-58s %10s  %s\n' "p99 decision latency (ms), target <= 5" "$P99" "$(verdict "$P99" '<=' 5)"
printf '  %-58s %10s\n' "Redis ceiling decisions/s -P 1 / -P 16 / 16 per call" "${CEIL[1:1]} / ${CEIL[16:1]} / ${CEIL[1:16]}"
say "RESULT assign_per_s=$ASSIGN steady_per_s=$STEADY decisions_per_s=$DEC p50_ms=$P50 p99_ms=$P99 redis_p1_per_s=${CEIL[1:1]} redis_p16_per_s=${CEIL[16:1]} redis_tpc16_per_s=${CEIL[1:16]} ratio_p1=$RATIO1 ratio_p16=$RATIO16 ratio_tpc16=$RATIOT tickets=$TICKETS agents=$NAGENTS teams=$TEAMS processes=$PROCESSES batch=$BATCH repeat=$REPEAT fsync=$FSYNC path=$FEEDPATH"
