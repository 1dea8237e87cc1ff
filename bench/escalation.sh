#!/usr/bin/env bash
# bench/escalation.sh: how fast redress-escalation arms SLA clocks, how late it fires them when
# they come due, and how much Redis memory an armed clock costs. See bench/README.md
# ("Escalation").
#
# One run, on a private PostgreSQL and Redis in a temporary directory (tests/lib/servers.sh):
#   1. the seeded SLA policies are switched off and one policy 'bench-resolve' takes their place:
#      clock 'resolution', business_type '*', unit 'minutes', no warnings (warn_pct '{}') and no
#      escalation levels unless --level, so every clock has exactly one stage: its breach;
#   2. N tickets (default 1,000,000) inserted by SQL in state 'classified', each with its
#      'classify' ticket_history row (the trigger queues the rows in sla_queue), with created_at
#      chosen so that the breach instants (created_at + target) are spread evenly over a window of
#      W seconds that opens A seconds after the escalation processes start; then VACUUM
#      (ANALYZE) and CHECKPOINT. None of this is measured;
#   3. P redress-escalation processes (default 2) started. Measured: the time until all N clocks
#      are armed -- in PostgreSQL (redress_escalation_armed_total of all processes; afterwards
#      sla_clocks is counted) and in Redis (ZCARD {esc}:due) -- and Redis' used_memory then,
#      against an empty Redis before the processes started, per armed clock;
#   4. the window: every clock breaches. Measured: lateness = sla_events.recorded_at - at of
#      every 'breached' event (p50/p90/p99/max, exact, by SQL), the firing throughput, and the
#      processes' own lateness histogram (/metrics);
#   5. the ceiling: redis-benchmark ZADDs of the same shape on a scratch key of the same Redis --
#      what Redis alone takes per second.
# It prints figures and, beside each target, PASS or SHORT; it never fails on timing (machines
# are noisy). It exits non-zero only when something did not work (a process died, a timeout).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
Usage: bench/escalation.sh [options]

Benchmarks redress-escalation against a private PostgreSQL and Redis (see bench/README.md).
Builds nothing: point REDRESS_BUILD_DIR at a build
(cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build).

Options (each also settable by the environment variable in brackets):
  --clocks N           tickets, one resolution clock each                 [BENCH_CLOCKS=1000000]
  --processes P        redress-escalation processes                       [BENCH_PROCESSES=2]
  --allowance A        seconds from starting the processes to the first clock coming due: the
                       time they get to arm every clock                     [BENCH_ALLOWANCE=60]
  --window W           the breach instants are spread evenly over W seconds [BENCH_WINDOW=120]
  --target-minutes M   the policy's target, at least (one minute more when the preparation
                       takes longer than the script guessed)           [BENCH_TARGET_MINUTES=60]
  --level              give the policy one escalation level at the target (team_lead, notify):
                       every breach then also writes an 'escalated' event and an
                       sla_escalations row                                  [BENCH_LEVEL=0]
  --chunk C            tickets per INSERT statement while preparing          [BENCH_CHUNK=100000]
  --requests R         ZADDs per redis-benchmark ceiling run (0 = none)      [BENCH_REQUESTS=1000000]
  --timeout S          give up when arming takes longer than S seconds, or the clocks have not
                       all breached S seconds after the window closed       [BENCH_TIMEOUT=600]
  --keep               keep the temporary directory (logs, /metrics scrapes, progress.tsv)
  -h, --help           this text

Environment:
  REDRESS_BUILD_DIR     the build to benchmark (default ./build, relative to the repository)
  REDRESS_PG_FSYNC      on|off for the private PostgreSQL (default on: commits are durable)
  REDRESS_ESCALATION_*  any escalation setting, e.g. REDRESS_ESCALATION_BATCH=2000; the script
                        sets the HTTP port, PUB bind and events endpoint (nobody publishes there)

Needs the postgresql server package, redis-server, redis-cli and redis-benchmark (Debian:
redis-server / redis-tools) and curl. Output: the figures, the targets with PASS/SHORT, then one
line 'RESULT key=value ...'.
EOF
}

STOP=0 IN_READ=0
die() {
  ((STOP == 0)) || exit "$STOP" # a read cut short by SIGINT/SIGTERM (on_signal)
  printf 'bench/escalation.sh: error: %s\n' "$*" >&2
  exit 1
}

CLOCKS=${BENCH_CLOCKS:-1000000}
PROCESSES=${BENCH_PROCESSES:-2}
ALLOWANCE=${BENCH_ALLOWANCE:-60}
WINDOW=${BENCH_WINDOW:-120}
TMIN=${BENCH_TARGET_MINUTES:-60}
LEVEL=${BENCH_LEVEL:-0}
CHUNK=${BENCH_CHUNK:-100000}
REQUESTS=${BENCH_REQUESTS:-1000000}
TIMEOUT=${BENCH_TIMEOUT:-600}
KEEP=0
need() { (($# >= 2)) || die "$1 needs a value (try --help)"; }
while (($#)); do
  case $1 in
    --clocks) need "$@"; CLOCKS=$2; shift 2 ;;
    --processes) need "$@"; PROCESSES=$2; shift 2 ;;
    --allowance) need "$@"; ALLOWANCE=$2; shift 2 ;;
    --window) need "$@"; WINDOW=$2; shift 2 ;;
    --target-minutes) need "$@"; TMIN=$2; shift 2 ;;
    --level) LEVEL=1; shift ;;
    --chunk) need "$@"; CHUNK=$2; shift 2 ;;
    --requests) need "$@"; REQUESTS=$2; shift 2 ;;
    --timeout) need "$@"; TIMEOUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
for v in CLOCKS PROCESSES ALLOWANCE WINDOW TMIN CHUNK TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "${v,,} must be a positive integer, not '${!v}'"
done
[[ $REQUESTS =~ ^[0-9]+$ ]] || die "requests must be a number, not '$REQUESTS'"
[[ $LEVEL == 0 || $LEVEL == 1 ]] || die "BENCH_LEVEL must be 0 or 1, not '$LEVEL'"
((CLOCKS <= 100000000)) || die "--clocks: at most 100000000"
((PROCESSES <= 16)) || die "--processes: at most 16"
((TMIN <= 10000)) || die "--target-minutes: at most 10000"

# ---- what we run ---------------------------------------------------------------------------------

BUILD=${REDRESS_BUILD_DIR:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
ESC=$BUILD/services/escalation/redress-escalation
[[ -x $ESC ]] || die "$ESC is missing: build first (cmake -S $ROOT -B $BUILD -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build $BUILD -j\$(nproc) --target redress-escalation) or set REDRESS_BUILD_DIR"
for t in redis-server redis-cli redis-benchmark curl; do
  command -v "$t" >/dev/null 2>&1 || die "$t is needed (Debian: apt-get install redis-server redis-tools curl)"
done

# shellcheck source=../tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"
PGBIN=$(rd_pg_bindir)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redress-escalation-bench.XXXXXX")
chmod 755 "$WORK"
EPIDS=()

stop_escalation() {
  local p
  for p in "${EPIDS[@]}"; do rd_stop_pid "$p" 20 || true; done
  EPIDS=()
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_escalation
  rd_redis_stop "$WORK" || true
  rd_pg_stop "$WORK" || true
  if ((KEEP)); then
    printf 'kept %s (pg/log/postgresql.log, redis/redis.log, escalation-*.log, metrics-*.txt)\n' "$WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
# Bash 5.2 can crash when a trap calls exit while the read builtin waits with -t (the polls
# below): there the signal only sets STOP, and after_read exits once the read is over.
on_signal() {
  STOP=$1
  ((IN_READ)) || exit "$1"
}
after_read() {
  IN_READ=0
  ((STOP == 0)) || exit "$STOP"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

say() { printf '%s\n' "$*"; }
hr() { printf -- '---- %s %s\n' "$*" "$(printf '%*s' $((70 - ${#1})) '' | tr ' ' -)"; }
now_ms() { local t=${EPOCHREALTIME/./}; printf '%s\n' "${t:0:-3}"; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b > 0 ? a / b : 0) }'; }
# seconds (3 decimals) between two epoch-ms instants
msecs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (a - b) / 1000 }'; }

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
[[ $(sql "SELECT to_regclass('sla_clocks') IS NOT NULL") == t ]] || die "the database has no sla_clocks: deploy/sql/0005_escalation.sql was not applied"
REDIS_PORT=${REDRESS_REDIS_URL##*:}
RCLI=(redis-cli -h 127.0.0.1 -p "$REDIS_PORT")
rcli() { "${RCLI[@]}" "$@"; }
REDIS_PID=$(cat "$WORK/redis/redis.pid")
PG_PID=$(head -n 1 "$WORK/pg/postmaster.pid")
# INFO field of Redis, e.g. rinfo memory used_memory
rinfo() { rcli INFO "$1" | tr -d '\r' | sed -n "s/^$2://p"; }

# ---- measuring -----------------------------------------------------------------------------------

TICKS=$(getconf CLK_TCK)
proc_ticks() { (($#)) || { echo 0; return; }; { cat "$@" 2>/dev/null || true; } | awk '{ sub(/.*\) /, ""); t += $12 + $13 } END { print t + 0 }'; }
# cpu_snap VAR: sets VAR to "machine escalation postgres redis steal" in clock ticks: machine =
# busy ticks of all CPUs from /proc/stat; steal = time the hypervisor gave our CPUs to others;
# postgres = the postmaster and its children.
cpu_snap() {
  local machine steal es pg rd pids=() p
  read -r machine steal < <(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat)
  for p in "${EPIDS[@]}"; do pids+=("/proc/$p/stat"); done
  es=$(proc_ticks "${pids[@]}")
  mapfile -t pids < <(pgrep -P "$PG_PID" | sed 's|.*|/proc/&/stat|')
  pg=$(proc_ticks "/proc/$PG_PID/stat" "${pids[@]}")
  rd=$(proc_ticks "/proc/$REDIS_PID/stat")
  printf -v "$1" '%s %s %s %s %s' "$machine" "$es" "$pg" "$rd" "$steal"
}
cpu_report() { # A B SECS
  awk -v a="$1" -v b="$2" -v secs="$3" -v k="$TICKS" -v n="$(nproc)" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    m = y[1] - x[1]; e = y[2] - x[2]; p = y[3] - x[3]; r = y[4] - x[4]; st = y[5] - x[5]
    if (p < 0) p = 0 # a PostgreSQL backend that exited in between takes its ticks with it
    o = m - e - p - r
    if (o < 0) o = 0
    f = (secs > 0 ? 100 / (secs * k) : 0)
    printf "  CPU (%% of one CPU, %d CPUs): escalation %.0f%%, PostgreSQL %.0f%%, Redis %.0f%%, anything else %.0f%%; machine busy %.0f%%, steal %.0f%%\n",
      n, e * f, p * f, r * f, o * f, m * f / n, st * f / n }'
}

# Progress, polled without starting a single process (on a 2-CPU machine a curl and a redis-cli
# every 0.25 s would take CPU from PostgreSQL and Redis).
# poll_metrics: sets ARMED, BREACHED and FIRED, summed over every process' /metrics, read with
# bash's /dev/tcp (HTTP/1.0: the server closes the connection after the answer); METRICS_SEEN
# counts the processes that answered.
HTTP_PORTS=()
poll_metrics() {
  local port fd k v _
  IN_READ=1
  ARMED=0 BREACHED=0 FIRED=0 METRICS_SEEN=0
  for port in "${HTTP_PORTS[@]}"; do
    { exec {fd}<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || continue # not listening yet
    { printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' 1>&"$fd"; } 2>/dev/null || true
    METRICS_SEEN=$((METRICS_SEEN + 1))
    while read -r -t 2 k v _ <&"$fd"; do
      v=${v%$'\r'}
      v=${v%%.*}
      [[ $v =~ ^[0-9]+$ ]] || continue
      case ${k%%\{*} in
        redress_escalation_armed_total) ARMED=$((ARMED + v)) ;;
        redress_escalation_breaches_total) BREACHED=$((BREACHED + v)) ;;
        redress_escalation_fired_total) FIRED=$((FIRED + v)) ;;
      esac
    done
    exec {fd}>&-
  done
  after_read
}
# poll_redis: sets DUE and INFLIGHT (ZCARD of the timer sets) and USED (INFO memory used_memory)
# over one connection kept open.
exec {RFD}<>"/dev/tcp/127.0.0.1/$REDIS_PORT" || die "cannot connect to Redis on port $REDIS_PORT"
poll_redis() {
  local a b line len got=0 # (INFO is ASCII: ${#line} counts bytes)
  IN_READ=1
  # shellcheck disable=SC2016 # RESP: the $ are bulk-string lengths
  printf '*2\r\n$5\r\nZCARD\r\n$9\r\n{esc}:due\r\n*2\r\n$5\r\nZCARD\r\n$14\r\n{esc}:inflight\r\n*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n' >&"$RFD"
  read -r -t 5 a <&"$RFD" || die "no answer from Redis to ZCARD"
  read -r -t 5 b <&"$RFD" || die "no answer from Redis to ZCARD"
  a=${a%$'\r'} b=${b%$'\r'}
  [[ $a =~ ^:[0-9]+$ && $b =~ ^:[0-9]+$ ]] || die "unexpected answer from Redis to ZCARD: '$a' '$b'"
  DUE=${a#:} INFLIGHT=${b#:} USED=0
  read -r -t 5 line <&"$RFD" || die "no answer from Redis to INFO"
  len=${line%$'\r'}
  len=${len#\$}
  [[ $len =~ ^[0-9]+$ ]] || die "unexpected answer from Redis to INFO: '$line'"
  while ((got < len + 2)); do # the bulk string and its CRLF, line by line
    read -r -t 5 line <&"$RFD" || die "short answer from Redis to INFO"
    got=$((got + ${#line} + 1))
    [[ $line == used_memory:* ]] && USED=${line#used_memory:} USED=${USED%$'\r'}
  done
  after_read
}
# snooze SECS: sleep without starting a process (a read that times out on a pipe nobody writes).
exec {SNOOZE_FD}<> <(:)
snooze() {
  IN_READ=1
  read -r -t "$1" -u "$SNOOZE_FD" _ || true
  after_read
}
# alive PID: like rd_pid_alive (zombies count as dead), with builtins only.
alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  { read -r st <"/proc/$1/stat"; } 2>/dev/null || return 0
  st=${st##*) }
  [[ ${st%% *} != Z ]]
}
check_alive() { # WHAT
  local p i=0
  for p in "${EPIDS[@]}"; do
    i=$((i + 1))
    alive "$p" || {
      tail -n 30 "$WORK/escalation-$i.log" >&2 || true
      die "redress-escalation $i (pid $p) exited $1 (its log above; --keep keeps it)"
    }
  done
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
          return sprintf("%.1f", v * 1000)
        }
        prev = le; prevc = c[le]
      }
    }
    END { if (c["+Inf"] == 0) { print "NA NA 0"; exit } printf "%s %s %d\n", q(0.50), q(0.99), c["+Inf"] }'
}
bucket_bounds() { # METRIC FILE: the bucket bounds in ms, for the reader
  awk -v m="${1}_bucket" 'index($1, m "{le=\"") == 1 { le = $1; sub(/.*le="/, "", le); sub(/".*/, "", le)
    printf "%s%s", (n++ ? " " : ""), (le == "+Inf" ? le : le * 1000) } END { print "" }' "$2"
}

# ---- configuration -------------------------------------------------------------------------------

cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
read -r load1 _ </proc/loadavg
hr "configuration"
say "date         : $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "machine      : $(nproc) CPUs ($cpu_model), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
say "load average : $load1 at start$(awk -v l="$load1" 'BEGIN { if (l > 0.5) print "  (something else is running: expect noise)" }')"
say "PostgreSQL   : $(sql 'SHOW server_version') in $WORK/pg; $(sql "SELECT string_agg(name || '=' || setting || COALESCE(unit, ''), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers')")"
say "Redis        : $(redis-server --version | awk '{ print $3 }' | sed 's/^v=//') on port $REDIS_PORT (no persistence), $(rinfo memory mem_allocator)"
say "escalation   : $ESC x $PROCESSES processes; batch ${REDRESS_ESCALATION_BATCH:-2000 (default)}, poll_ms ${REDRESS_ESCALATION_POLL_MS:-50 (default)}, rebuild_interval_ms ${REDRESS_ESCALATION_REBUILD_INTERVAL_MS:-60000 (default)}, lease_ms ${REDRESS_ESCALATION_LEASE_MS:-10000 (default)}"
say "clocks       : $CLOCKS tickets (state 'classified', business_type 'complaint', severity 'general'), one resolution clock each"
say "policy       : 'bench-resolve', resolution, '*', unit minutes, warn_pct '{}', $( ((LEVEL)) && echo "one escalation level at the target (team_lead, notify): 3 records per clock (breached, escalated, sla_escalations row)" || echo "no escalation levels: one stage (the breach) per clock")"
say "timing       : allowance ${ALLOWANCE} s for arming, then the breaches spread evenly over ${WINDOW} s ($(fdiv "$CLOCKS" "$WINDOW") clocks/s come due)"

# ---- preparation (not measured) ------------------------------------------------------------------

hr "preparation (not measured)"
# Every breach instant is created_at + target. The tickets are written with
#   created_at(g) = X0 - TMIN minutes + (g - 1) * W / N seconds          (g = 1..N)
# and X0 = when we guess the preparation will end (15,000 tickets/s + 5 s) + A. After the
# preparation the policy's target is set to TMIN + K minutes with the smallest K >= 0 that puts
# the window's start, WS = X0 + K minutes, at least A seconds ahead, and the processes are started
# at WS - A exactly (waiting for that moment: the guess minus the preparation's real time, or up
# to a minute when the guess was short). Targets are whole minutes, hence the guess.
t_prep=$EPOCHREALTIME
X0MS=$(($(now_ms) + CLOCKS / 15 + 5000 + ALLOWANCE * 1000))
sql "BEGIN;
UPDATE sla_policies SET active = false;
INSERT INTO customers (id, customer_ref, name)
  SELECT md5('bench-customer-' || c)::uuid, 'bench-customer-' || c, '客户 ' || c FROM generate_series(0, 999) c;
COMMIT;" >/dev/null
for ((lo = 1; lo <= CLOCKS; lo += CHUNK)); do
  hi=$((lo + CHUNK - 1))
  ((hi <= CLOCKS)) || hi=$CLOCKS
  # One statement per chunk: the tickets, then their 'classify' history rows (the trigger queues
  # their seqs in sla_queue in the same transaction), in the order their clocks come due.
  sql "WITH t AS (
         INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, region, language, subject, body,
                              state, business_type, category, severity, priority, occurred_at, created_at, updated_at)
         SELECT gen_random_uuid(), 'bench', 'esc-' || g, 'hotline', md5('bench-customer-' || (g % 1000))::uuid,
                'R01-' || (g % 7), 'zh-CN', '停电三天无人处理 ' || g, '我家从周一开始停电，打了三次95598都没有人来修。',
                'classified', 'complaint', '供电质量/停电', 'general', 3, c, c, c
           FROM generate_series($lo, $hi) g,
                LATERAL (SELECT to_timestamp(($X0MS - $TMIN * 60000 + (g - 1)::numeric * $WINDOW * 1000 / $CLOCKS) / 1000) AS c) x
         ORDER BY g
         RETURNING id, created_at)
       INSERT INTO ticket_history (ticket_id, at, kind, from_state, to_state, actor)
       SELECT id, created_at, 'classify', 'new', 'classified', 'bench' FROM t ORDER BY created_at" >/dev/null
  [[ -t 1 ]] && printf '\r  inserted %d of %d tickets and history rows (%.0f s)' "$hi" "$CLOCKS" "$(fsub "$EPOCHREALTIME" "$t_prep")"
done
[[ -t 1 ]] && printf '\n'
sql "VACUUM (ANALYZE)" >/dev/null
sql "CHECKPOINT" >/dev/null
queued=$(sql "SELECT count(*) FROM sla_queue")
((queued == CLOCKS)) || die "sla_queue holds $queued rows, expected $CLOCKS (is the ticket_history trigger there?)"
say "  $CLOCKS tickets, $CLOCKS 'classify' history rows, $queued queued; VACUUM (ANALYZE), CHECKPOINT; $(fsub "$EPOCHREALTIME" "$t_prep") s"

# The policy, with the target that opens the window at least A seconds from now.
NOWMS=$(now_ms)
K=0
while ((X0MS + K * 60000 < NOWMS + ALLOWANCE * 1000)); do K=$((K + 1)); done
TARGET=$((TMIN + K))
WSMS=$((X0MS + K * 60000))              # the first breach instant (ms)
WEMS=$((WSMS + WINDOW * 1000))          # the last one, about
levels=''
((LEVEL)) && levels="INSERT INTO sla_escalation_levels (policy_id, level, after, role, action) VALUES ('bench-resolve', 1, $TARGET, 'team_lead', 'notify');"
sql "BEGIN;
INSERT INTO sla_policies (id, description, clock, business_type, target, unit, warn_pct)
  VALUES ('bench-resolve', 'bench/escalation.sh', 'resolution', '*', $TARGET, 'minutes', '{}');
$levels
COMMIT;" >/dev/null
((TARGET > 0)) || die "policy target $TARGET minutes: raise --target-minutes"
say "  policy 'bench-resolve': target $TARGET minutes; the first clock comes due $(msecs "$WSMS" "$NOWMS") s from now, the last $(msecs "$WEMS" "$NOWMS") s from now"

# Redis before: nothing but our connection.
mem0=$(rinfo memory used_memory)
ds0=$(rinfo memory used_memory_dataset)
keys0=$(rcli DBSIZE)

# ---- arming --------------------------------------------------------------------------------------

hr "arming: $PROCESSES processes apply $CLOCKS classify rows"
c0='' c1='' c2='' c3=''
t=$(now_ms)
START=$((WSMS - ALLOWANCE * 1000))
if ((START - t > 100)); then
  say "  starting the processes in $(msecs "$START" "$t") s, exactly $ALLOWANCE s before the first clock comes due"
  ((START - t <= 2000)) || snooze "$(msecs "$((START - 2000))" "$t")"
fi
# Ports for every process, chosen just before they start (other test runs pick ports too).
PORTS=()
for ((i = 0; i < 3 * PROCESSES; i++)); do PORTS+=("$(rd_free_port)"); done
while (($(now_ms) < START)); do snooze 0.005; done
T0MS=$(now_ms)
for ((i = 1; i <= PROCESSES; i++)); do
  k=$((3 * (i - 1)))
  HTTP_PORTS+=("${PORTS[k + 2]}")
  REDRESS_PG_DSN=$REDRESS_PG_DSN REDRESS_REDIS_URL=$REDRESS_REDIS_URL \
    REDRESS_ESCALATION_EVENTS_ENDPOINT=tcp://127.0.0.1:${PORTS[k]} \
    REDRESS_ESCALATION_PUB_BIND=tcp://127.0.0.1:${PORTS[k + 1]} \
    REDRESS_ESCALATION_HTTP_BIND=127.0.0.1 \
    REDRESS_ESCALATION_HTTP_PORT=${PORTS[k + 2]} \
    "$ESC" 2>"$WORK/escalation-$i.log" &
  EPIDS+=("$!")
done
cpu_snap c0 # again: the processes are in it now (with 0 ticks), so c1 - c0 counts them
t_first='' t_pg='' t_redis='' a_first=0 overran=0 peak_n=0 peak_used=0
deadline=$((T0MS + TIMEOUT * 1000))
printf 't_ms\tarmed\tdue\tinflight\tbreached\tused_memory\n' >"$WORK/progress.tsv"
while :; do
  poll_metrics
  poll_redis
  t=$(now_ms)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$((t - T0MS))" "$ARMED" "$DUE" "$INFLIGHT" "$BREACHED" "$USED" >>"$WORK/progress.tsv"
  if ((DUE + INFLIGHT > peak_n)); then peak_n=$((DUE + INFLIGHT)) peak_used=$USED; fi
  if [[ -z $t_first ]] && ((ARMED > 0)); then t_first=$t a_first=$ARMED; fi
  if [[ -z $t_pg ]] && ((ARMED >= CLOCKS)); then t_pg=$t; fi
  if [[ -z $t_redis ]] && ((DUE + INFLIGHT >= CLOCKS)); then t_redis=$t; fi
  [[ -n $t_pg && -n $t_redis ]] && break
  # Once clocks fire, they leave the timer sets before their breach is counted: the Redis side
  # cannot be told apart then, so arming ends with the PostgreSQL side.
  [[ -n $t_pg ]] && ((overran)) && break
  check_alive "while arming"
  if ((t > deadline)); then
    die "after $TIMEOUT s: $ARMED of $CLOCKS clocks armed in PostgreSQL (metrics of $METRICS_SEEN processes), $DUE timers in Redis (see --timeout; --keep for the logs)"
  fi
  if ((!overran && t >= WSMS)); then
    overran=1
    say "  !! the window opened before arming was done ($ARMED armed, $DUE timers): arming overran the allowance"
  fi
  snooze 0.25
done
cpu_snap c1
if [[ -n $t_redis ]]; then
  T_ARMED=$((t_pg > t_redis ? t_pg : t_redis))
  redis_done="the last timer after $(msecs "$t_redis" "$T0MS") s (ZCARD {esc}:due)"
else
  T_ARMED=$t_pg
  redis_done="n/a (clocks were firing before the last was armed)"
fi
# Redis after: read at once, before anything fires.
mem1=$(rinfo memory used_memory)
ds1=$(rinfo memory used_memory_dataset)
poll_redis
zcard=$((DUE + INFLIGHT))
keys1=$(rcli DBSIZE)
zmem=$(rcli MEMORY USAGE '{esc}:due' SAMPLES 1000)
zenc=$(rcli OBJECT ENCODING '{esc}:due')
clocks_pg=$(sql "SELECT count(*) FROM sla_clocks")
queue_left=$(sql "SELECT count(*) FROM sla_queue")
((clocks_pg == CLOCKS)) || die "sla_clocks holds $clocks_pg clocks, expected $CLOCKS"

arm_s=$(msecs "$T_ARMED" "$T0MS")
ARM_RATE=$(fdiv "$CLOCKS" "$arm_s")
say "  all $CLOCKS armed ${arm_s} s after the processes started -> $ARM_RATE clocks/s end-to-end (PostgreSQL rows and Redis timers)"
say "    PostgreSQL: the last clock committed after $(msecs "$t_pg" "$T0MS") s ($(fdiv "$CLOCKS" "$(msecs "$t_pg" "$T0MS")")/s; armed_total of all processes); Redis: $redis_done"
say "    first clock seen after $(msecs "$t_first" "$T0MS") s (start-up); from then on $((CLOCKS - a_first)) in $(msecs "$T_ARMED" "$t_first") s -> $(fdiv "$((CLOCKS - a_first))" "$(msecs "$T_ARMED" "$t_first")") clocks/s"
say "    PostgreSQL: $clocks_pg sla_clocks rows, $queue_left rows left in sla_queue"
cpu_report "$c0" "$c1" "$arm_s"
if ((zcard < CLOCKS && peak_n > zcard)); then
  # some had fired already: the sample with the most timers, taken while arming
  mem1=$peak_used zcard=$peak_n
  say "  !! not all timers were in Redis at once: the figure below is from the moment with the most ($peak_n)"
fi
BPC=$(awk -v a="$mem1" -v b="$mem0" -v n="$zcard" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "NA" }')
say "  Redis memory: used_memory $mem0 -> $mem1 bytes with $zcard timers in {esc}:due ($zenc) -> $BPC bytes per armed clock"
say "    (against the used_memory once every clock had fired, processes still connected: see below)"
say "    used_memory_dataset $ds0 -> $ds1 ($(awk -v a="$ds1" -v b="$ds0" -v n="$zcard" 'BEGIN { printf "%.1f", (n > 0 ? (a - b) / n : 0) }') per clock); MEMORY USAGE {esc}:due (sampled) $zmem ($(awk -v a="$zmem" -v n="$zcard" 'BEGIN { printf "%.1f", (n > 0 ? a / n : 0) }') per clock); keys $keys0 -> $keys1"
if ((T_ARMED >= WSMS)); then
  say "  !! arming ended $(msecs "$T_ARMED" "$WSMS") s after the first clock came due: raise --allowance. The clocks due"
  say "     before then are reported apart below; the lateness verdict counts only those due after it."
fi

# ---- firing --------------------------------------------------------------------------------------

t=$(now_ms)
if ((t < WSMS)); then
  say "  the window opens $(msecs "$WSMS" "$T0MS") s after the processes started: waiting $(msecs "$WSMS" "$t") s"
  while (($(now_ms) < WSMS - 300)); do
    check_alive "while waiting for the window"
    snooze 1
  done
fi
hr "firing: $CLOCKS breaches over $WINDOW s"
cpu_snap c2
TFS=$(now_ms)
deadline=$((WEMS + TIMEOUT * 1000))
last_report=$TFS
while :; do
  poll_metrics
  t=$(now_ms)
  printf '%s\t%s\t\t\t%s\t\n' "$((t - T0MS))" "$ARMED" "$BREACHED" >>"$WORK/progress.tsv"
  ((BREACHED >= CLOCKS)) && break
  check_alive "while firing"
  if ((t > deadline)); then
    die "$BREACHED of $CLOCKS clocks breached $TIMEOUT s after the window closed (see --timeout; --keep for the logs)"
  fi
  if ((t - last_report >= 30000)); then
    poll_redis
    behind=$(awk -v t="$t" -v s="$WSMS" -v w="$WINDOW" -v n="$CLOCKS" -v b="$BREACHED" 'BEGIN { d = (t - s) / (w * 1000) * n; if (d > n) d = n; printf "%.0f", d - b }')
    say "  $(msecs "$t" "$WSMS") s into the window: $BREACHED breached, about $behind due but not fired yet; timers: $DUE due, $INFLIGHT in flight"
    last_report=$t
  fi
  snooze 0.25
done
T_FIRED=$t
cpu_snap c3
i=0
for port in "${HTTP_PORTS[@]}"; do
  i=$((i + 1))
  curl -sf --max-time 5 "http://127.0.0.1:$port/metrics" >"$WORK/metrics-$i.txt" || die "cannot read /metrics of process $i"
done
poll_redis
due_after=$DUE inflight_after=$INFLIGHT
mem2=$(rinfo memory used_memory)
stop_escalation

fire_s=$(msecs "$T_FIRED" "$TFS")
say "  all $CLOCKS breached $(msecs "$T_FIRED" "$WEMS") s after the last one came due (breaches_total of all processes)"
awk -v s="$fire_s" 'BEGIN { exit !(s >= 1) }' && cpu_report "$c2" "$c3" "$fire_s"
# What PostgreSQL says: one breach per clock, and how late each was written.
read -r nbreach nclk_breached nopen < <(sql "SELECT (SELECT count(*) FROM sla_events WHERE kind = 'breached'),
  (SELECT count(*) FROM sla_clocks WHERE breached_at IS NOT NULL),
  (SELECT count(*) FROM sla_clocks WHERE next_fire_at IS NOT NULL)" | tr '|' ' ')
((nbreach == CLOCKS)) || die "sla_events holds $nbreach 'breached' events, expected $CLOCKS"
((nclk_breached == CLOCKS)) || die "$nclk_breached sla_clocks have breached_at, expected $CLOCKS"
extra=''
if ((LEVEL)); then
  read -r nesc nescrows < <(sql "SELECT (SELECT count(*) FROM sla_events WHERE kind = 'escalated'), (SELECT count(*) FROM sla_escalations)" | tr '|' ' ')
  extra=", $nesc 'escalated' events, $nescrows sla_escalations rows"
fi
say "  PostgreSQL: $nbreach 'breached' events$extra; clocks with something left to fire: $nopen; Redis: $due_after due, $inflight_after in flight"
say "  Redis used_memory with every timer gone, processes connected: $mem2 -> $(awk -v a="$mem1" -v b="$mem2" -v n="$zcard" 'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "NA" }') bytes per armed clock against that"
# lateness_stats WHERE: n p50 p90 p99 max (ms), first and last write (epoch s)
lateness_stats() {
  sql "SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1),
              round(max(ms)::numeric, 1), round(min(ms)::numeric, 1),
              extract(epoch FROM min(recorded_at)), extract(epoch FROM max(recorded_at))
         FROM (SELECT extract(epoch FROM recorded_at - at) * 1000 AS ms, recorded_at
                 FROM sla_events WHERE kind = 'breached' AND $1) x" | tr '|' ' '
}
read -r n_all p50_all p90_all p99_all max_all min_all first_w last_w < <(lateness_stats true)
say "  lateness (recorded_at - at, every breach, exact): p50 $p50_all ms, p90 $p90_all ms, p99 $p99_all ms, max $max_all ms (min $min_all ms)"
span=$(fsub "$last_w" "$first_w")
say "  firing: $n_all breaches written over $span s -> $(fdiv "$n_all" "$span")/s (offered: $(fdiv "$CLOCKS" "$WINDOW")/s over the $WINDOW s window)"
# p99 over each tenth of the window (by breach instant): where the tail comes from
slice=$(awk -v w="$WINDOW" 'BEGIN { printf "%.3f", w / 10 }')
prof=$(sql "SELECT string_agg(p::text, ' ' ORDER BY s) FROM (
              SELECT least(9, floor(extract(epoch FROM at - to_timestamp($WSMS / 1000.0)) / $slice))::int AS s,
                     round(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM recorded_at - at) * 1000)::numeric, 0) AS p
                FROM sla_events WHERE kind = 'breached' GROUP BY 1) x")
say "    p99 (ms) of each tenth of the window ($slice s each, by breach instant): $prof"
P50=$p50_all P99=$p99_all NLAT=$n_all LATE_SCOPE=all
if ((T_ARMED >= WSMS)); then
  cut=$(awk -v t="$T_ARMED" 'BEGIN { printf "%.3f", t / 1000 }')
  read -r n_pre p50_pre _ p99_pre max_pre _ _ _ < <(lateness_stats "at < to_timestamp($cut)")
  read -r n_post p50_post p90_post p99_post max_post _ _ _ < <(lateness_stats "at >= to_timestamp($cut)")
  say "    due before arming ended ($n_pre): p50 $p50_pre ms, p99 $p99_pre ms, max $max_pre ms -- arming backlog, not firing"
  if ((n_post > 0)); then
    say "    due after arming ended  ($n_post): p50 $p50_post ms, p90 $p90_post ms, p99 $p99_post ms, max $max_post ms"
    P50=$p50_post P99=$p99_post NLAT=$n_post LATE_SCOPE=after_arming
  else
    say "    none came due after arming ended: the verdict below counts them all (raise --allowance)"
  fi
fi
files=("$WORK"/metrics-*.txt)
read -r mp50 mp99 mcount < <(quantiles redress_escalation_lateness_seconds "${files[@]}")
if [[ $mcount != 0 ]]; then
  say "  the processes' own histogram (redress_escalation_lateness_seconds, $mcount stages, real now - stage instant at firing): p50 $mp50 ms, p99 $mp99 ms"
  say "    bounds (ms): $(bucket_bounds redress_escalation_lateness_seconds "${files[0]}")"
else
  say "  (no redress_escalation_lateness_seconds histogram in /metrics)"
fi
i=0
for f in "${files[@]}"; do
  i=$((i + 1))
  say "  process $i: $(awk '$1 ~ /^redress_escalation_(applied|armed|fired|breaches|escalations|rebuilds|errors)_total/ { sub(/^redress_escalation_/, "", $1); sub(/_total$/, "", $1); printf "%s%s=%s", (n++ ? " " : ""), $1, $2 }' "$f")"
  # the periodic rebuilds (every clock from PostgreSQL into Redis) stall that process' firing
  say "    $(awk '/msg="timers rebuilt/ { t = ""; m = ""; for (i = 1; i <= NF; i++) { if ($i ~ /^timers=/) t = substr($i, 8); if ($i ~ /^ms=/) m = substr($i, 4) }
           n++; s = s sprintf("%s%s timers in %s ms", (n > 1 ? ", " : ""), t, m) } END { printf "rebuilds: %s", (n ? s : "none") }' "$WORK/escalation-$i.log")"
done
errs=$(cat "$WORK"/escalation-*.log | grep -cE 'level=(warn|error)' || true)
if ((errs > 0)); then
  say "  !! $errs warning/error lines in the processes' logs (--keep keeps them); the first:"
  grep -hE 'level=(warn|error)' "$WORK"/escalation-*.log | head -n 5 | sed 's/^/     /'
fi

# ---- the ceiling: ZADD with redis-benchmark ------------------------------------------------------
# Few connections: on a 2-CPU machine redis-benchmark with many connections takes the CPU from Redis.

CEIL1=NA CEILB=NA
if ((REQUESTS > 0)); then
  hr "ceiling: redis-benchmark ZADD into a scratch zset of the same Redis"
  # The timers are ZADD {esc}:due <ms> <clock id>. -r draws each __rand_int__ at random (12
  # digits), so the members are a little longer than clock ids and a few repeat.
  ckey='{esc}:bench-ceiling'
  rcli DEL "$ckey" >/dev/null
  cm0=$(rinfo memory used_memory)
  out=$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n "$REQUESTS" -c 4 -P 64 -r 100000000 --csv \
    ZADD "$ckey" __rand_int__ __rand_int__ 2>"$WORK/rb-1.err") || die "redis-benchmark failed: $(tail -n 5 "$WORK/rb-1.err")"
  CEIL1=$(awk -F'","' 'NR == 2 { gsub(/"/, "", $2); printf "%.0f", $2 }' <<<"$out")
  cm1=$(rinfo memory used_memory)
  cn=$(rcli ZCARD "$ckey")
  say "  ZADD key <score> <member> (as the service sends them: one timer per ZADD, pipelined), -P 64, 4 connections: $CEIL1 ZADDs/s; $cn members, $(awk -v a="$cm1" -v b="$cm0" -v n="$cn" 'BEGIN { printf "%.1f", (n > 0 ? (a - b) / n : 0) }') bytes of used_memory each"
  rcli DEL "$ckey" >/dev/null
  # One command per 100 timers, as a service that adds a batch's timers in one ZADD would.
  args=()
  for ((i = 0; i < 100; i++)); do args+=(__rand_int__ __rand_int__); done
  breq=$(((REQUESTS + 99) / 100))
  out=$(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n "$breq" -c 4 -P 1 -r 100000000 --csv \
    ZADD "$ckey" "${args[@]}" 2>"$WORK/rb-100.err") || die "redis-benchmark failed: $(tail -n 5 "$WORK/rb-100.err")"
  CEILB=$(awk -F'","' 'NR == 2 { gsub(/"/, "", $2); printf "%.0f", $2 * 100 }' <<<"$out")
  say "  ZADD key with 100 <score> <member> pairs per command, 4 connections: $CEILB members/s (if the service sent a batch's timers in one ZADD)"
  rcli DEL "$ckey" >/dev/null
  say "  arming end-to-end $ARM_RATE clocks/s = $(awk -v a="$ARM_RATE" -v b="$CEIL1" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }') of the single-ZADD ceiling"
fi

# ---- targets --------------------------------------------------------------------------------------

verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "NA" || v == "") print "n/a"; else if ((op == ">=" && v + 0 >= t) || (op == "<=" && v + 0 <= t)) print "PASS"; else print "SHORT" }'; }
scope=''
[[ $LATE_SCOPE == all ]] || scope=" (the $NLAT due after arming)"
hr "targets ($(nproc) CPUs, $CLOCKS clocks, $PROCESSES processes, fsync=$FSYNC)"
printf '  %-62s %10s  %s\n' "arming, clocks/s end-to-end, target >= 50000" "$ARM_RATE" "$(verdict "$ARM_RATE" '>=' 50000)"
printf '  %-62s %10s  %s\n' "firing lateness p99 (ms)$scope, target <= 500" "$P99" "$(verdict "$P99" '<=' 500)"
printf '  %-62s %10s  %s\n' "Redis bytes per armed clock, target <= 120" "$BPC" "$(verdict "$BPC" '<=' 120)"
printf '  %-62s %10s\n' "Redis ceiling: ZADD/s (-P 64) / members/s (100 per ZADD)" "$CEIL1 / $CEILB"
say "RESULT clocks=$CLOCKS processes=$PROCESSES arming_per_s=$ARM_RATE arming_s=$arm_s arming_pg_s=$(msecs "$t_pg" "$T0MS") arming_redis_s=$([[ -n $t_redis ]] && msecs "$t_redis" "$T0MS" || echo NA) lateness_p50_ms=$P50 lateness_p99_ms=$P99 lateness_scope=$LATE_SCOPE lateness_all_p50_ms=$p50_all lateness_all_p90_ms=$p90_all lateness_all_p99_ms=$p99_all lateness_all_max_ms=$max_all firing_per_s=$(fdiv "$n_all" "$span") offered_per_s=$(fdiv "$CLOCKS" "$WINDOW") redis_bytes_per_clock=$BPC redis_zadd_per_s=$CEIL1 redis_zadd100_members_per_s=$CEILB window_s=$WINDOW allowance_s=$ALLOWANCE target_min=$TARGET level=$LEVEL fsync=$FSYNC"
