#!/usr/bin/env bash
# bench/intake.sh: how fast intake stores complaints, and how close that is to PostgreSQL's own
# ceiling for the same rows. See bench/README.md for what every figure means.
#
# One run, on a private PostgreSQL (fsync on, synchronous_commit on) in a temporary directory:
#   (a) warm-up: a few thousand events, not measured;
#   (b) throughput: many events as fast as several pipelined gateway connections can push them
#       -> sustained ACKed events/s, ACK latency p50/p99;
#   (c) latency: a fixed offered rate (2,000 events/s by default) -> ACK latency p50/p99;
#   (d) the ceiling: the rows run (b) created are exported with COPY ... TO, the tables truncated,
#       and the same rows loaded back with COPY ... FROM into the same tables (same indexes,
#       constraints and sync settings) in one transaction -> complaints/s, and the ratio
#       intake ACKed/s / COPY complaints/s.
# It prints figures and, beside each target, PASS or SHORT; it never fails on timing (machines
# are noisy). It exits non-zero only when something did not work.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
Usage: bench/intake.sh [options]

Benchmarks intake against a private PostgreSQL (see bench/README.md). Builds nothing: point
REDRESS_BUILD_DIR at a build (cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build).

Options (each also settable by the environment variable in brackets):
  --connections C      gateway connections for the throughput run       [BENCH_CONNECTIONS=8]
  --window W           requests in flight per connection, throughput run [BENCH_WINDOW=256]
  --events N           events in the throughput run                     [BENCH_EVENTS=200000]
  --warmup N           warm-up events (not measured)                     [BENCH_WARMUP=5000]
  --lat-rate R         offered events/s in the latency run               [BENCH_LAT_RATE=2000]
  --lat-events N       events in the latency run (N/R seconds)           [BENCH_LAT_EVENTS=30000]
  --lat-connections C  gateway connections for the latency run           [BENCH_LAT_CONNECTIONS=4]
  --lat-window W       requests in flight per connection, latency run    [BENCH_LAT_WINDOW=256]
  --csv PATH           CFPB complaints CSV   [BENCH_CSV=<repo>/../shared/datasets/cfpb/complaints_sample.csv]
  --copy-format F      binary or text, for the COPY ceiling              [BENCH_COPY_FORMAT=binary]
  --skip-latency       skip run (c)
  --skip-copy          skip run (d)
  --keep               keep the temporary directory (PostgreSQL log, intake log, COPY files)
  -h, --help           this text

Environment:
  REDRESS_BUILD_DIR           the build to benchmark (default ./build, relative to the repository)
  REDRESS_INTAKE_WRITERS, REDRESS_INTAKE_MAX_BATCH, REDRESS_INTAKE_MAX_WAIT_US,
  REDRESS_INTAKE_MAX_PENDING  intake configuration (any REDRESS_<KEY> is passed through)
  TMPDIR                      where the temporary directory goes (default /tmp); PostgreSQL runs
                              as the postgres user when we are root, so it must be able to enter it

Output: the configuration, then one section per run, then the targets with PASS/SHORT, then one
line 'RESULT key=value ...' for scripts (acked_per_s p50_ms p99_ms lat_p50_ms lat_p99_ms
copy_per_s ratio ...).
EOF
}

die() {
  printf 'bench/intake.sh: error: %s\n' "$*" >&2
  exit 1
}

CONNECTIONS=${BENCH_CONNECTIONS:-8}
WINDOW=${BENCH_WINDOW:-256}
EVENTS=${BENCH_EVENTS:-200000}
WARMUP=${BENCH_WARMUP:-5000}
LAT_RATE=${BENCH_LAT_RATE:-2000}
LAT_EVENTS=${BENCH_LAT_EVENTS:-30000}
LAT_CONNECTIONS=${BENCH_LAT_CONNECTIONS:-4}
LAT_WINDOW=${BENCH_LAT_WINDOW:-256}
CSV=${BENCH_CSV:-$ROOT/../shared/datasets/cfpb/complaints_sample.csv}
COPY_FORMAT=${BENCH_COPY_FORMAT:-binary}
SKIP_LATENCY=0
SKIP_COPY=0
KEEP=0

need() { (($# >= 2)) || die "$1 needs a value (try --help)"; }
while (($#)); do
  case $1 in
    --connections) need "$@"; CONNECTIONS=$2; shift 2 ;;
    --window) need "$@"; WINDOW=$2; shift 2 ;;
    --events) need "$@"; EVENTS=$2; shift 2 ;;
    --warmup) need "$@"; WARMUP=$2; shift 2 ;;
    --lat-rate) need "$@"; LAT_RATE=$2; shift 2 ;;
    --lat-events) need "$@"; LAT_EVENTS=$2; shift 2 ;;
    --lat-connections) need "$@"; LAT_CONNECTIONS=$2; shift 2 ;;
    --lat-window) need "$@"; LAT_WINDOW=$2; shift 2 ;;
    --csv) need "$@"; CSV=$2; shift 2 ;;
    --copy-format) need "$@"; COPY_FORMAT=$2; shift 2 ;;
    --skip-latency) SKIP_LATENCY=1; shift ;;
    --skip-copy) SKIP_COPY=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
for v in CONNECTIONS WINDOW EVENTS WARMUP LAT_RATE LAT_EVENTS LAT_CONNECTIONS LAT_WINDOW; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not '${!v}'"
done
((CONNECTIONS > 0 && WINDOW > 0 && EVENTS > 0 && LAT_CONNECTIONS > 0 && LAT_WINDOW > 0)) ||
  die "connections, windows and events must be positive"
[[ $COPY_FORMAT == binary || $COPY_FORMAT == text ]] || die "--copy-format is binary or text, not '$COPY_FORMAT'"

# ---- what we run ---------------------------------------------------------------------------------

BUILD=${REDRESS_BUILD_DIR:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
INTAKE=$BUILD/services/intake/redress-intake
LOAD=$BUILD/bench/redress-intake-load
for b in "$INTAKE" "$LOAD"; do
  [[ -x $b ]] || die "$b is missing: build first (cmake -S $ROOT -B $BUILD -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build $BUILD -j\$(nproc)) or set REDRESS_BUILD_DIR"
done
[[ -r $CSV ]] || die "cannot read the CFPB CSV $CSV (set BENCH_CSV or --csv)"
command -v curl >/dev/null 2>&1 || die "curl is needed to read intake's /metrics and /healthz"

# shellcheck source=../tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"
PGBIN=$(rd_pg_bindir)
export REDRESS_PG_FSYNC=on # the targets are for durable commits; never measure without fsync

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redress-bench.XXXXXX")
chmod 755 "$WORK"
INTAKE_PID=
WAITS_PID=

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $WAITS_PID ]]; then kill "$WAITS_PID" 2>/dev/null || true; fi
  if [[ -n $INTAKE_PID ]]; then rd_stop_pid "$INTAKE_PID" 20 || true; fi
  rd_pg_stop "$WORK" || true
  if ((KEEP)); then
    printf 'kept %s (pg/log/postgresql.log, intake.log, copy/)\n' "$WORK" >&2
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
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$REDRESS_PG_DSN")
sql() { "${PSQL[@]}" -tA -c "$1"; }

# ---- intake ----------------------------------------------------------------------------------------

PORT=$(rd_free_port)
PUSH_PORT=$(rd_free_port)
PUB_PORT=$(rd_free_port)
HTTP_PORT=$(rd_free_port)
ENDPOINT=tcp://127.0.0.1:$PORT
REDRESS_INTAKE_BIND=$ENDPOINT REDRESS_INTAKE_PUSH_BIND=tcp://127.0.0.1:$PUSH_PORT \
  REDRESS_INTAKE_PUB_BIND=tcp://127.0.0.1:$PUB_PORT REDRESS_INTAKE_HTTP_PORT=$HTTP_PORT \
  "$INTAKE" 2>"$WORK/intake.log" &
INTAKE_PID=$!
for ((i = 0; ; i++)); do
  curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null 2>&1 && break
  rd_pid_alive "$INTAKE_PID" || { tail -n 30 "$WORK/intake.log" >&2; die "intake exited at start"; }
  ((i < 200)) || { tail -n 30 "$WORK/intake.log" >&2; die "intake not healthy after 20 s"; }
  sleep 0.1
done

# A counter or histogram sum from intake's /metrics (0 when absent).
metric() {
  curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }'
}

# ---- configuration ---------------------------------------------------------------------------------

cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
[[ -n $cpu_model ]] || cpu_model=$(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -n 1)
read -r load1 _ </proc/loadavg
hr "configuration"
say "machine      : $(nproc) CPUs ($cpu_model), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
say "load average : $load1 at start$(awk -v l="$load1" 'BEGIN { if (l > 0.5) print "  (something else is running: expect noise)" }')"
say "PostgreSQL   : $(sql 'SHOW server_version') in $WORK/pg"
sql "SELECT string_agg(name || '=' || setting || COALESCE(unit, ''), ', ' ORDER BY name) FROM pg_settings
     WHERE name IN ('synchronous_commit', 'fsync', 'full_page_writes', 'wal_level', 'shared_buffers', 'wal_buffers',
                    'max_wal_size', 'checkpoint_timeout', 'wal_sync_method', 'commit_delay', 'work_mem')" |
  fold -s -w 100 | sed '1s/^/PG settings  : /; 2,$s/^/               /'
say "intake       : $INTAKE (writers=${REDRESS_INTAKE_WRITERS:-2 (default)}, max_batch=${REDRESS_INTAKE_MAX_BATCH:-512 (default)}, max_wait_us=${REDRESS_INTAKE_MAX_WAIT_US:-2000 (default)}, max_pending=${REDRESS_INTAKE_MAX_PENDING:-20000 (default)})"
say "load         : $LOAD"
say "data         : $CSV"
say "runs         : warm-up $WARMUP events; throughput $EVENTS events, $CONNECTIONS connections x window $WINDOW;"
say "               latency $LAT_EVENTS events at $LAT_RATE/s, $LAT_CONNECTIONS connections x window $LAT_WINDOW; COPY format $COPY_FORMAT"

RUN=b$(date +%s)
# runload GATEWAY PREFIX ARGS...: runs the load generator, echoes its human line, keeps its SUMMARY.
runload() {
  local gw=$1 prefix=$2 out
  shift 2
  out=$("$LOAD" --endpoint "$ENDPOINT" --csv "$CSV" --gateway "$gw" --prefix "$prefix" "$@" 2>"$WORK/load-$gw.err") || {
    local rc=$?
    printf '%s\n' "$out"
    cat "$WORK/load-$gw.err" >&2
    ((rc == 1)) || die "the load generator failed (exit $rc)"
    say "WARNING: not every event was ACKed (see above)"
  }
  SUMMARY=$(grep '^SUMMARY ' <<<"$out" || true)
  [[ -n $SUMMARY ]] || die "no SUMMARY line from the load generator"
  grep -v '^SUMMARY ' <<<"$out" | sed 's/^/  /'
}
# val KEY: a value from the last SUMMARY.
val() { tr ' ' '\n' <<<"$SUMMARY" | sed -n "s/^$1=//p"; }

# Batching as intake saw it during a run: metric deltas.
snap() { printf '%s %s %s\n' "$(metric redress_intake_batch_size_sum)" "$(metric redress_intake_batch_size_count)" "$(metric redress_intake_commit_seconds_sum)"; }
batching() {
  awk -v a="$1" -v b="$2" -v t="$3" -v w="${REDRESS_INTAKE_WRITERS:-2}" 'BEGIN {
    split(a, x, " "); split(b, y, " "); e = y[1] - x[1]; n = y[2] - x[2]; s = y[3] - x[3]
    if (n > 0)
      printf "  intake: %d transactions, %.1f events each on average, %.2f ms each; writers busy %.0f%% of the time\n",
        n, e / n, s * 1000 / n, (t > 0 ? 100 * s / (t * w) : 0) }'
}

# CPU accounting, so a reader can tell whether something else was competing for the CPUs:
# cpu_snap VAR sets VAR to "machine intake postgres ours" in clock ticks (machine = busy ticks of
# all CPUs from /proc/stat; postgres = the postmaster and its children; ours = this shell's reaped
# children: the load generator, plus the psql calls of this script, which are small).
PG_PID=$(head -n 1 "$WORK/pg/postmaster.pid")
TICKS=$(getconf CLK_TCK)
proc_ticks() { { cat "$@" 2>/dev/null || true; } | awk '{ sub(/.*\) /, ""); t += $12 + $13 } END { print t + 0 }'; }
cpu_snap() { # VAR: sets VAR; runs in this shell (not in $(...)) so that `times` sees our children
  local machine intake pg ours pids
  machine=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat)
  intake=0
  if [[ -n $INTAKE_PID ]]; then intake=$(proc_ticks "/proc/$INTAKE_PID/stat"); fi
  pids=$(pgrep -P "$PG_PID" | sed 's|.*|/proc/&/stat|' | tr '\n' ' ')
  # shellcheck disable=SC2086
  pg=$(proc_ticks "/proc/$PG_PID/stat" $pids)
  times >"$WORK/times"
  ours=$(awk -v k="$TICKS" 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } } END { printf "%.0f", t * k }' "$WORK/times")
  printf -v "$1" '%s %s %s %s' "$machine" "$intake" "$pg" "$ours"
}
cpu_report() {
  awk -v a="$1" -v b="$2" -v secs="$3" -v k="$TICKS" -v n="$(nproc)" 'BEGIN {
    split(a, x, " "); split(b, y, " ")
    m = y[1] - x[1]; i = y[2] - x[2]; p = y[3] - x[3]; l = y[4] - x[4]; o = m - i - p - l
    if (o < 0) o = 0
    f = 100 / (secs * k)
    printf "  CPU (%% of one CPU, %d CPUs): intake %.0f%%, PostgreSQL %.0f%%, load generator %.0f%%, anything else %.0f%%; machine busy %.0f%%\n",
      n, i * f, p * f, l * f, o * f, m * f / n }'
}

# Samples what intake's PostgreSQL sessions wait on, 10 times a second, until stopped.
waits_start() {
  printf '%s \\watch 0.1\n' "SELECT CASE WHEN backend_type = 'autovacuum worker' THEN 'autovacuum:' ELSE '' END
      || COALESCE(wait_event_type || ':' || wait_event, 'CPU') || '/' || replace(COALESCE(state, 'active'), ' ', '_')
    FROM pg_stat_activity WHERE application_name = 'redress-intake' OR backend_type = 'autovacuum worker'" |
    "${PSQL[@]}" -tA >"$WORK/waits.raw" 2>/dev/null &
  WAITS_PID=$!
}
waits_stop() {
  kill "$WAITS_PID" 2>/dev/null || true
  wait "$WAITS_PID" 2>/dev/null || true
  WAITS_PID=
  grep -v '^$' "$WORK/waits.raw" >"$WORK/waits.txt" || true
  say "  PostgreSQL sessions of intake (and autovacuum), sampled every 0.1 s: CPU = running, idle = waiting for intake"
  sort "$WORK/waits.txt" | uniq -c | sort -rn | head -n 8 |
    awk -v t="$(wc -l <"$WORK/waits.txt")" '{ printf "    %5.1f%%  %s\n", 100 * $1 / t, $2 }'
}

# ---- (a) warm-up -----------------------------------------------------------------------------------

hr "(a) warm-up"
runload bench-warm "$RUN-w" --events "$WARMUP" --connections "$CONNECTIONS" --window "$WINDOW"

# ---- (b) throughput --------------------------------------------------------------------------------

# Each measured run starts from a vacuumed, checkpointed database, so that neither autovacuum
# catching up on the previous run's inserts nor a checkpoint it started lands in the window.
settle() { sql "VACUUM (ANALYZE)" >/dev/null && sql "CHECKPOINT" >/dev/null; }
settle
hr "(b) throughput"
s0=$(snap)
c0='' c1=''
cpu_snap c0
waits_start
runload bench-tput "$RUN-t" --events "$EVENTS" --connections "$CONNECTIONS" --window "$WINDOW"
waits_stop
cpu_snap c1
s1=$(snap)
T_ACKED=$(val acked)
T_RATE=$(val acked_per_s)
T_P50=$(val p50_ms)
T_P99=$(val p99_ms)
batching "$s0" "$s1" "$(val elapsed_s)"
cpu_report "$c0" "$c1" "$(val elapsed_s)"

# ---- (c) latency at a fixed offered rate ----------------------------------------------------------

L_P50=NA L_P99=NA L_RATE=NA
if ((!SKIP_LATENCY)); then
  settle
  hr "(c) latency at $LAT_RATE events/s offered"
  s0=$(snap)
  cpu_snap c0
  waits_start
  runload bench-lat "$RUN-l" --events "$LAT_EVENTS" --rate "$LAT_RATE" --connections "$LAT_CONNECTIONS" \
    --window "$LAT_WINDOW"
  waits_stop
  cpu_snap c1
  s1=$(snap)
  L_P50=$(val p50_ms)
  L_P99=$(val p99_ms)
  L_RATE=$(val acked_per_s)
  batching "$s0" "$s1" "$(val elapsed_s)"
  cpu_report "$c0" "$c1" "$(val elapsed_s)"
fi

# ---- (d) the ceiling: COPY of the same rows --------------------------------------------------------

C_RATE=NA RATIO=NA
if ((!SKIP_COPY)); then
  hr "(d) ceiling: COPY of run (b)'s rows"
  rd_stop_pid "$INTAKE_PID" 20 || true # nothing else may write meanwhile
  INTAKE_PID=
  COPYDIR=$WORK/copy
  mkdir -p "$COPYDIR"
  ((EUID == 0)) && chown postgres: "$COPYDIR"
  fmt="(FORMAT $COPY_FORMAT)"
  ext=$COPY_FORMAT
  # Which rows run (b) wrote: everything of its gateway, and the customers its tickets point to.
  # ticket_history.seq is left out: it is an identity column, and PostgreSQL numbers the rows on
  # the way in, as it did for intake.
  HIST_COLS="ticket_id, at, kind, from_state, to_state, actor, gateway_id, event_id, reason, target_unit, note, satisfaction"
  declare -A SEL=(
    [customers]="SELECT * FROM customers WHERE id IN (SELECT customer_id FROM tickets WHERE gateway_id = 'bench-tput')"
    [tickets]="SELECT * FROM tickets WHERE gateway_id = 'bench-tput'"
    [ticket_attachments]="SELECT a.* FROM ticket_attachments a JOIN tickets t ON t.id = a.ticket_id WHERE t.gateway_id = 'bench-tput'"
    [ticket_history]="SELECT $HIST_COLS FROM ticket_history WHERE gateway_id = 'bench-tput'"
    [inbound_events]="SELECT * FROM inbound_events WHERE gateway_id = 'bench-tput'"
  )
  declare -A COLS=([ticket_history]="($HIST_COLS)")
  ORDER=(customers tickets ticket_attachments ticket_history inbound_events) # foreign keys first
  declare -A ROWS
  for t in "${ORDER[@]}"; do
    ROWS[$t]=$(sql "COPY (${SEL[$t]}) TO '$COPYDIR/$t.$ext' $fmt" >/dev/null && sql "SELECT count(*) FROM (${SEL[$t]}) x")
  done
  bytes=$(du -cb "$COPYDIR"/*."$ext" | tail -n 1 | cut -f 1)
  say "  exported with COPY (SELECT ...) TO, $COPY_FORMAT format, $((bytes / 1048576)) MiB:"
  for t in "${ORDER[@]}"; do say "    $(printf '%-19s %8d rows' "$t" "${ROWS[$t]}")"; done
  sql "TRUNCATE customers, tickets, ticket_attachments, ticket_history, inbound_events CASCADE" >/dev/null
  sql "CHECKPOINT" >/dev/null
  {
    printf '%s\n' '\timing on'
    echo 'BEGIN;'
    for t in "${ORDER[@]}"; do echo "COPY $t ${COLS[$t]:-} FROM '$COPYDIR/$t.$ext' $fmt;"; done
    echo 'COMMIT;'
  } >"$WORK/copy.sql"
  cpu_snap c0
  t0=$(date +%s.%N)
  "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -d "$REDRESS_PG_DSN" -f "$WORK/copy.sql" >"$WORK/copy.out" 2>&1 || {
    cat "$WORK/copy.out" >&2
    die "COPY FROM failed"
  }
  t1=$(date +%s.%N)
  cpu_snap c1
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  # psql's \timing: one "Time: X ms" per statement, BEGIN .. COMMIT
  STMT_MS=$(awk '/^Time: / { s += $2 } END { printf "%.1f", s }' "$WORK/copy.out")
  paste -d ' ' <(grep -E '^(BEGIN|COPY|COMMIT)' "$WORK/copy.out") <(grep '^Time:' "$WORK/copy.out") |
    sed 's/^/    /'
  got=$(sql "SELECT count(*) FROM tickets")
  ((got == ROWS[tickets])) || die "COPY loaded $got tickets, expected ${ROWS[tickets]}"
  C_SECS=$(awk -v ms="$STMT_MS" 'BEGIN { printf "%.3f", ms / 1000 }')
  C_RATE=$(awk -v n="${ROWS[tickets]}" -v ms="$STMT_MS" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }')
  RATIO=$(awk -v a="$T_RATE" -v b="$C_RATE" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
  say "  COPY FROM, one transaction: ${ROWS[tickets]} complaints in ${C_SECS}s (statements; ${WALL}s wall with psql start)"
  awk -v a="$c0" -v b="$c1" -v secs="$WALL" -v k="$TICKS" -v n="$(nproc)" 'BEGIN { split(a, x, " "); split(b, y, " ")
    printf "  machine busy %.0f%% of %d CPUs during the COPY (one backend: about %.0f%% when nothing else runs)\n",
      100 * (y[1] - x[1]) / (secs * k * n), n, 100 / n + 5 }'
  say "  = $C_RATE complaints/s; intake reached $T_RATE ACKed/s = ratio $RATIO of the COPY ceiling"
fi

# ---- targets --------------------------------------------------------------------------------------

verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "NA") print "n/a"; else if ((op == ">=" && v + 0 >= t) || (op == "<=" && v + 0 <= t)) print "PASS"; else print "SHORT" }'; }
hr "targets (2 CPUs, synchronous_commit=on, fsync=on)"
printf '  %-52s %12s  %s\n' "ACKed complaints/s (run b), target >= 15000" "$T_RATE" "$(verdict "$T_RATE" '>=' 15000)"
printf '  %-52s %12s  %s\n' "fraction of the COPY ceiling, target >= 0.50" "$RATIO" "$(verdict "$RATIO" '>=' 0.5)"
printf '  %-52s %12s  %s\n' "p99 ACK latency at $LAT_RATE/s offered (ms), target <= 20" "$L_P99" "$(verdict "$L_P99" '<=' 20)"
if [[ $L_RATE != NA ]] && awk -v r="$L_RATE" -v o="$LAT_RATE" 'BEGIN { exit !(r < 0.97 * o) }'; then
  say "  note: run (c) ACKed only $L_RATE/s of $LAT_RATE/s offered: intake could not keep up with that rate"
fi
say "RESULT acked_per_s=$T_RATE p50_ms=$T_P50 p99_ms=$T_P99 acked=$T_ACKED lat_rate=$LAT_RATE lat_acked_per_s=$L_RATE lat_p50_ms=$L_P50 lat_p99_ms=$L_P99 copy_per_s=$C_RATE ratio=$RATIO connections=$CONNECTIONS window=$WINDOW writers=${REDRESS_INTAKE_WRITERS:-2} max_batch=${REDRESS_INTAKE_MAX_BATCH:-512} max_wait_us=${REDRESS_INTAKE_MAX_WAIT_US:-2000}"
