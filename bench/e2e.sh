#!/usr/bin/env bash
# bench/e2e.sh: the whole stack end to end -- how many complaints per second go all the way from a
# gateway to counted (ACKed -> classified -> assigned -> SLA clocks armed -> in the reporting
# rollups), and how long submit -> assigned takes at a steady 2,000 complaints/s; beside the
# PostgreSQL COPY ceiling of the very rows the pipeline wrote. See bench/README.md.
#
# One run, on a private PostgreSQL (fsync on, synchronous_commit on) and Redis in a temporary
# directory, with one instance of each of the five services at its defaults:
#   (a) throughput: --events CFPB complaints as fast as the gateways' windows allow; every stage's
#       progress sampled from the services' /metrics and the queues every second; end-to-end rate =
#       complaints / (first send -> the last one counted by reporting);
#   (b) latency: --lat-rate complaints/s offered for --lat-secs seconds; per complaint, submit ->
#       assigned = the dispatcher's 'assign' history row minus the moment intake received the event
#       (tickets.created_at: the start of intake's transaction, after the frame arrived), p50/p99;
#       the gateway-side ACK latency of the same events is printed beside it;
#   (c) the ceiling: run (a)'s rows of every table the pipeline writes (customers they reference,
#       tickets, ticket_history, inbound_events, ticket_classifications, ticket_assignments,
#       sla_clocks, reporting.ticket_facts) exported with COPY TO, the tables truncated, and loaded
#       back with COPY FROM in one transaction: complaints/s, and the ratio end-to-end / COPY.
# It prints figures and PASS/SHORT beside the targets; it never fails on timing. It exits non-zero
# only when something did not work (a service died, complaints were lost, a stage never finished).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
Usage: bench/e2e.sh [options]

End-to-end benchmark of all five services (see bench/README.md). Builds nothing: point
REDRESS_BUILD_DIR at a build (cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build).

Options (each also settable by the environment variable in brackets):
  --events N          complaints in the throughput run              [BENCH_EVENTS=100000]
  --connections C     gateway connections, throughput run           [BENCH_CONNECTIONS=8]
  --window W          requests in flight per connection             [BENCH_WINDOW=256]
  --lat-rate R        offered complaints/s in the latency run       [BENCH_LAT_RATE=2000]
  --lat-secs S        seconds of the latency run                     [BENCH_LAT_SECS=15]
  --agents A          agents (one team, all online, capacity 100,000 each) [BENCH_AGENTS=50]
  --csv PATH          CFPB complaints CSV  [BENCH_CSV=<repo>/../shared/datasets/cfpb/complaints_sample.csv]
  --stage-timeout S   give up when a stage makes no progress for S seconds [BENCH_STAGE_TIMEOUT=300]
  --skip-latency      skip run (b)
  --skip-copy         skip run (c)
  --keep              keep the temporary directory (logs, COPY files)
  -h, --help          this text

Environment: REDRESS_BUILD_DIR (default ./build); any REDRESS_<SERVICE>_<KEY> reaches the services;
TMPDIR (default /tmp; PostgreSQL runs as the postgres user, so it must be able to enter it).

Output: the configuration, one section per run, the targets with PASS/SHORT, and one line
'RESULT key=value ...' for scripts.
EOF
}

die() {
  printf 'bench/e2e.sh: error: %s\n' "$*" >&2
  exit 1
}

EVENTS=${BENCH_EVENTS:-100000}
CONNECTIONS=${BENCH_CONNECTIONS:-8}
WINDOW=${BENCH_WINDOW:-256}
LAT_RATE=${BENCH_LAT_RATE:-2000}
LAT_SECS=${BENCH_LAT_SECS:-15}
AGENTS=${BENCH_AGENTS:-50}
CSV=${BENCH_CSV:-$ROOT/../shared/datasets/cfpb/complaints_sample.csv}
STAGE_TIMEOUT=${BENCH_STAGE_TIMEOUT:-300}
SKIP_LATENCY=0 SKIP_COPY=0 KEEP=0
need() { (($# >= 2)) || die "$1 needs a value (try --help)"; }
while (($#)); do
  case $1 in
    --events) need "$@"; EVENTS=$2; shift 2 ;;
    --connections) need "$@"; CONNECTIONS=$2; shift 2 ;;
    --window) need "$@"; WINDOW=$2; shift 2 ;;
    --lat-rate) need "$@"; LAT_RATE=$2; shift 2 ;;
    --lat-secs) need "$@"; LAT_SECS=$2; shift 2 ;;
    --agents) need "$@"; AGENTS=$2; shift 2 ;;
    --csv) need "$@"; CSV=$2; shift 2 ;;
    --stage-timeout) need "$@"; STAGE_TIMEOUT=$2; shift 2 ;;
    --skip-latency) SKIP_LATENCY=1; shift ;;
    --skip-copy) SKIP_COPY=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
  esac
done
for v in EVENTS CONNECTIONS WINDOW LAT_RATE LAT_SECS AGENTS STAGE_TIMEOUT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "${v,,} must be a positive whole number, not '${!v}'"
done
((AGENTS <= 999)) || die "--agents: at most 999"

B=${REDRESS_BUILD_DIR:-build}
[[ $B == /* ]] || B=$ROOT/$B
LOAD=$B/bench/redress-intake-load
for s in intake classifier dispatcher escalation reporting; do
  [[ -x $B/services/$s/redress-$s ]] || die "$B/services/$s/redress-$s is missing: build first or set REDRESS_BUILD_DIR"
done
[[ -x $LOAD ]] || die "$LOAD is missing: build first"
[[ -r $CSV ]] || die "cannot read the CFPB CSV $CSV (--csv)"
command -v curl >/dev/null 2>&1 || die "curl is needed to read the services' /metrics"

# shellcheck source=../tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"
PGBIN=$(rd_pg_bindir)
export REDRESS_PG_FSYNC=on # durable commits only

WORK=$(mktemp -d "${TMPDIR:-/tmp}/redress-e2e.XXXXXX")
chmod 755 "$WORK"
T=$WORK
PROBLEMS=$WORK/problems.txt
: >"$PROBLEMS"
say() { printf '%s\n' "$*"; }
hr() { printf -- '---- %s %s\n' "$*" "$(printf '%*s' $((70 - ${#1})) '' | tr ' ' -)"; }
# shellcheck source=../tests/lib/services.sh
source "$ROOT/tests/lib/services.sh"
SERVICES=(intake classifier dispatcher escalation reporting)
LOAD_PID=

cleanup() {
  local rc=$? s
  trap - EXIT INT TERM
  ((rc == 0)) || { cat "$PROBLEMS" >&2; for s in "${SERVICES[@]}"; do
    printf -- '-- %s log (last 5 lines)\n' "$s" >&2; tail -n 5 "$WORK/$s.log" >&2 2>/dev/null || true; done; }
  rd_stop_pid "$LOAD_PID" 5 || true
  for s in "${SERVICES[@]}"; do stop_svc "$s"; done
  rd_redis_stop "$WORK" || true
  rd_pg_stop "$WORK" || true
  if ((KEEP)); then printf 'kept %s\n' "$WORK" >&2; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rd_pg_start "$WORK" 2>"$WORK/pg-start.log" || { cat "$WORK/pg-start.log" >&2; die "could not start PostgreSQL"; }
rd_redis_start "$WORK" 2>"$WORK/redis-start.log" || { cat "$WORK/redis-start.log" >&2; die "could not start Redis"; }
export REDRESS_PG_DSN REDRESS_REDIS_URL
sql() { PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$REDRESS_PG_DSN" -tA -c "$1"; }

# ---- the organisation: one department, one team, AGENTS agents online with room for everything ----
sql "BEGIN;
INSERT INTO departments (id, name, dispatch_centre) VALUES ('D1', 'Service centre', true);
INSERT INTO teams (id, department_id, name, major_weight) VALUES ('T01', 'D1', 'Complaints desk', 2);
UPDATE departments SET default_team = 'T01';
INSERT INTO agents (id, team_id, name, capacity, languages)
  SELECT 'a-' || lpad(a::text, 3, '0'), 'T01', 'Agent ' || a, 100000, '{en,zh}' FROM generate_series(1, $AGENTS) a;
INSERT INTO agent_presence (agent_id, status, expires_at) SELECT id, 'online', now() + interval '1 day' FROM agents;
UPDATE accept_limits SET seconds = 86400, transferred_s = 86400;
COMMIT;" >/dev/null

for s in "${SERVICES[@]}"; do start_svc "$s" || die "$s did not start"; done

metric() { # SVC NAME: a counter without labels, 0 when absent
  curl -fsS --max-time 2 "http://127.0.0.1:${HTTP_PORT[$1]}/metrics" 2>/dev/null |
    awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }'
}
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
# pg_cpu: "application_name ticks" for every backend of the database (utime + stime so far); the
# services name their connections (redress-intake-writer, redress-classifier, ...).
pg_cpu() {
  local pid app
  while IFS='|' read -r pid app; do
    [[ -r /proc/$pid/stat ]] || continue
    printf '%s %s\n' "${app:-other}" "$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat")"
  done < <(sql "SELECT pid, application_name FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
}
TICKS=$(getconf CLK_TCK)

hr "configuration"
say "  $(nproc) CPUs, load average $(cut -d ' ' -f 1-3 /proc/loadavg); PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }') fsync=on synchronous_commit=on; $(redis-server --version | awk '{ print $1, $3 }')"
say "  one instance of each service, defaults; $AGENTS agents online in one team (capacity 100,000 each, least-loaded)"
say "  throughput: $EVENTS complaints, $CONNECTIONS connections x window $WINDOW; latency: $LAT_RATE/s for ${LAT_SECS}s"

# ---- (a) throughput ----------------------------------------------------------------------------
hr "(a) throughput: ACKed -> classified -> assigned -> clocks armed -> counted"
base_cls=$(metric classifier redress_classifier_tickets_total)
base_asg=$(metric dispatcher redress_dispatcher_assigned_total)
pg_cpu >"$WORK/pgcpu0"
c0=$(cpu_ticks)
t0=$(date +%s.%N)
"$LOAD" --endpoint "${ZMQ[intake_router]}" --csv "$CSV" --connections "$CONNECTIONS" --window "$WINDOW" \
  --events "$EVENTS" --prefix "e2e$$" --gateway e2e-tput --deadline-ms 1800000 >"$WORK/load-a.out" 2>"$WORK/load-a.err" &
LOAD_PID=$!
declare -A DONE_AT=()
last_progress=$SECONDS last_sum=-1
printf '  %6s %9s %10s %9s %9s %9s\n' "t(s)" ACKed classified assigned sla_queue rep_queue
while :; do
  now=$(date +%s.%N)
  el=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
  ack=$(metric intake redress_intake_events_acked_total)
  cls=$(($(metric classifier redress_classifier_tickets_total | cut -d. -f1) - ${base_cls%.*}))
  asg=$(($(metric dispatcher redress_dispatcher_assigned_total | cut -d. -f1) - ${base_asg%.*}))
  read -r slaq repq <<<"$(sql "SELECT (SELECT count(*) FROM sla_queue), (SELECT count(*) FROM reporting.queue)" | tr '|' ' ')"
  ack=${ack%.*}
  [[ -z ${DONE_AT[acked]:-} ]] && ((ack >= EVENTS)) && DONE_AT[acked]=$el
  [[ -z ${DONE_AT[classified]:-} ]] && ((cls >= EVENTS)) && DONE_AT[classified]=$el
  [[ -z ${DONE_AT[assigned]:-} ]] && ((asg >= EVENTS)) && DONE_AT[assigned]=$el
  [[ -z ${DONE_AT[armed]:-} && -n ${DONE_AT[classified]:-} ]] && ((slaq == 0)) && DONE_AT[armed]=$el
  [[ -z ${DONE_AT[counted]:-} && -n ${DONE_AT[armed]:-} && -n ${DONE_AT[assigned]:-} ]] && ((repq == 0)) && DONE_AT[counted]=$el
  printf '  %6s %9s %10s %9s %9s %9s\n' "$el" "$ack" "$cls" "$asg" "$slaq" "$repq"
  [[ -n ${DONE_AT[counted]:-} ]] && break
  for s in "${SERVICES[@]}"; do rd_pid_alive "${PID[$s]}" || die "$s died during run (a)"; done
  sum=$((ack + cls + asg - slaq - repq))
  if ((sum != last_sum)); then last_sum=$sum last_progress=$SECONDS; fi
  ((SECONDS - last_progress < STAGE_TIMEOUT)) || die "no progress for ${STAGE_TIMEOUT}s"
  sleep 1
done
c1=$(cpu_ticks)
pg_cpu >"$WORK/pgcpu1"
wait "$LOAD_PID" || die "the load generator failed: $(tail -n 3 "$WORK/load-a.err")"
LOAD_PID=
SUM_A=$(grep '^SUMMARY ' "$WORK/load-a.out")
kv() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }
ACK_RATE=$(kv "$SUM_A" acked_per_s)
END=${DONE_AT[counted]}
E2E=$(awk -v n="$EVENTS" -v s="$END" 'BEGIN { printf "%.0f", n / s }')
# verify with SQL that every complaint went all the way
read -r n_t n_c n_a n_k n_f <<<"$(sql "WITH o AS (SELECT ticket_id FROM inbound_events WHERE gateway_id = 'e2e-tput')
  SELECT (SELECT count(*) FROM o), (SELECT count(*) FROM o JOIN ticket_classifications USING (ticket_id)),
         (SELECT count(*) FROM o JOIN tickets t ON t.id = o.ticket_id WHERE t.owner_agent IS NOT NULL),
         (SELECT count(DISTINCT k.ticket_id) FROM o JOIN sla_clocks k USING (ticket_id)),
         (SELECT count(*) FROM o JOIN reporting.ticket_facts USING (ticket_id))" | tr '|' ' ')"
((n_t == EVENTS && n_c == EVENTS && n_a == EVENTS && n_f == EVENTS)) ||
  die "of $EVENTS complaints: $n_t stored, $n_c classified, $n_a assigned, $n_f counted"
say "  every complaint checked in PostgreSQL: $n_t stored, $n_c classified, $n_a assigned, $n_k with SLA clocks, $n_f counted"
for st in acked classified assigned armed counted; do
  say "  $(printf '%-11s all %d by %6.1f s  = %6.0f/s' "$st" "$EVENTS" "${DONE_AT[$st]}" "$(awk -v n="$EVENTS" -v s="${DONE_AT[$st]}" 'BEGIN { print n / s }')")"
done
say "  load generator: $SUM_A"
say "  machine busy $(awk -v a="$c0" -v b="$c1" -v s="$END" -v k="$TICKS" -v n="$(nproc)" 'BEGIN { printf "%.0f%%", 100 * (b - a) / (s * k * n) }') of $(nproc) CPUs"
say "  PostgreSQL CPU by the service it worked for (backends alive at both ends of the run; % of one CPU):"
awk -v s="$END" -v k="$TICKS" 'FNR == NR { a[$1] += $2; next } { b[$1] += $2 }
  END { for (x in b) printf "    %-28s %5.0f%%\n", x, 100 * (b[x] - a[x]) / (s * k) }' "$WORK/pgcpu0" "$WORK/pgcpu1" | sort -k2 -rn
say "  = end to end: $E2E complaints/s (ACKed alone: $ACK_RATE/s)"

# ---- (b) latency at a steady rate ----------------------------------------------------------------
L_P50=NA L_P99=NA L_N=0 L_ACK_P99=NA L_RATE=NA
if ((!SKIP_LATENCY)); then
  hr "(b) latency: submit -> assigned at $LAT_RATE/s offered"
  sql "VACUUM (ANALYZE)" >/dev/null
  n=$((LAT_RATE * LAT_SECS))
  "$LOAD" --endpoint "${ZMQ[intake_router]}" --csv "$CSV" --connections 4 --window 256 --rate "$LAT_RATE" \
    --events "$n" --prefix "e2el$$" --gateway e2e-lat >"$WORK/load-b.out" 2>"$WORK/load-b.err" ||
    die "the latency run's load generator failed: $(tail -n 3 "$WORK/load-b.err")"
  SUM_B=$(grep '^SUMMARY ' "$WORK/load-b.out")
  L_RATE=$(kv "$SUM_B" acked_per_s) L_ACK_P99=$(kv "$SUM_B" p99_ms)
  deadline=$((SECONDS + STAGE_TIMEOUT))
  until [[ $(sql "SELECT count(*) FROM inbound_events i JOIN tickets t ON t.id = i.ticket_id
                  WHERE i.gateway_id = 'e2e-lat' AND t.owner_agent IS NULL") == 0 ]]; do
    ((SECONDS < deadline)) || die "the latency run's complaints were not all assigned after ${STAGE_TIMEOUT}s"
    sleep 0.5
  done
  read -r L_N L_P50 L_P90 L_P99 L_MAX <<<"$(sql "SELECT count(*),
      round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1),
      round((percentile_cont(0.9) WITHIN GROUP (ORDER BY ms))::numeric, 1),
      round((percentile_cont(0.99) WITHIN GROUP (ORDER BY ms))::numeric, 1), round(max(ms)::numeric, 1)
    FROM (SELECT extract(epoch FROM (SELECT min(h.at) FROM ticket_history h WHERE h.ticket_id = t.id AND h.kind = 'assign')
                                    - t.created_at) * 1000 AS ms
            FROM inbound_events i JOIN tickets t ON t.id = i.ticket_id WHERE i.gateway_id = 'e2e-lat') x" | tr '|' ' ')"
  say "  $L_N complaints, ACKed at $L_RATE/s; gateway ACK latency p99 $L_ACK_P99 ms"
  say "  submit -> assigned (intake's receipt to the dispatcher's assign row): p50 $L_P50 ms, p90 $L_P90 ms, p99 $L_P99 ms, max $L_MAX ms"
fi

# ---- (c) the COPY ceiling ------------------------------------------------------------------------
C_RATE=NA RATIO=NA
if ((!SKIP_COPY)); then
  hr "(c) ceiling: COPY of run (a)'s rows"
  for s in "${SERVICES[@]}"; do stop_svc "$s"; done # nothing else writes meanwhile
  COPYDIR=$WORK/copy
  mkdir -p "$COPYDIR"
  ((EUID == 0)) && chown postgres: "$COPYDIR"
  ours="SELECT ticket_id FROM inbound_events WHERE gateway_id = 'e2e-tput'"
  declare -A SEL=(
    [customers]="SELECT * FROM customers WHERE id IN (SELECT customer_id FROM tickets WHERE id IN ($ours))"
    [tickets]="SELECT * FROM tickets WHERE id IN ($ours)"
    [ticket_history]="SELECT * FROM ticket_history WHERE ticket_id IN ($ours)"
    [inbound_events]="SELECT * FROM inbound_events WHERE gateway_id = 'e2e-tput'"
    [ticket_classifications]="SELECT * FROM ticket_classifications WHERE ticket_id IN ($ours)"
    [ticket_assignments]="SELECT * FROM ticket_assignments WHERE ticket_id IN ($ours)"
    [sla_clocks]="SELECT * FROM sla_clocks WHERE ticket_id IN ($ours)"
    [reporting.ticket_facts]="SELECT * FROM reporting.ticket_facts WHERE ticket_id IN ($ours)"
  )
  ORDER=(customers tickets ticket_history inbound_events ticket_classifications ticket_assignments sla_clocks reporting.ticket_facts)
  declare -A ROWS=()
  for t in "${ORDER[@]}"; do
    sql "COPY (${SEL[$t]}) TO '$COPYDIR/$t.bin' (FORMAT binary)" >/dev/null
    ROWS[$t]=$(sql "SELECT count(*) FROM (${SEL[$t]}) x")
  done
  say "  exported: $(for t in "${ORDER[@]}"; do printf '%s %s; ' "$t" "${ROWS[$t]}"; done)"
  # Emptied without firing triggers (the append-only guards refuse TRUNCATE of history and audit);
  # the load below runs with every trigger, constraint and foreign key in force.
  sql "SET session_replication_role = replica;
       TRUNCATE customers, tickets, ticket_history, inbound_events, ticket_classifications, ticket_assignments,
                sla_clocks, sla_events, sla_escalations, sla_queue, dispatch_queue, reporting.ticket_facts,
                reporting.queue CASCADE" >/dev/null
  sql "CHECKPOINT" >/dev/null
  {
    printf '%s\n' '\timing on'
    echo 'BEGIN;'
    for t in "${ORDER[@]}"; do echo "COPY $t FROM '$COPYDIR/$t.bin' (FORMAT binary);"; done
    echo 'COMMIT;'
  } >"$WORK/copy.sql"
  "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -d "$REDRESS_PG_DSN" -f "$WORK/copy.sql" >"$WORK/copy.out" 2>&1 ||
    { cat "$WORK/copy.out" >&2; die "COPY FROM failed"; }
  MS=$(awk '/^Time: / { s += $2 } END { printf "%.1f", s }' "$WORK/copy.out")
  got=$(sql "SELECT count(*) FROM tickets")
  ((got == ROWS[tickets])) || die "COPY loaded $got tickets, expected ${ROWS[tickets]}"
  C_RATE=$(awk -v n="${ROWS[tickets]}" -v ms="$MS" 'BEGIN { printf "%.0f", (ms > 0 ? n * 1000 / ms : 0) }')
  RATIO=$(awk -v a="$E2E" -v b="$C_RATE" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
  say "  COPY FROM, one transaction, all eight tables: ${ROWS[tickets]} complaints in $(awk -v ms="$MS" 'BEGIN { printf "%.2f", ms / 1000 }') s"
  say "  = $C_RATE complaints/s; end to end reached $E2E/s = ratio $RATIO of the COPY ceiling"
fi

# ---- targets ---------------------------------------------------------------------------------------
verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "NA") print "n/a"; else if ((op == ">=" && v + 0 >= t) || (op == "<=" && v + 0 <= t)) print "PASS"; else print "SHORT" }'; }
hr "targets ($(nproc) CPUs, fsync=on, synchronous_commit=on)"
printf '  %-58s %10s  %s\n' "end-to-end complaints/s (ACKed..counted), target >= 10000" "$E2E" "$(verdict "$E2E" '>=' 10000)"
printf '  %-58s %10s  %s\n' "p99 submit->assigned at $LAT_RATE/s offered (ms), target <= 250" "$L_P99" "$(verdict "$L_P99" '<=' 250)"
if [[ $L_RATE != NA ]] && awk -v r="$L_RATE" -v o="$LAT_RATE" 'BEGIN { exit !(r < 0.97 * o) }'; then
  say "  note: run (b) ACKed only $L_RATE/s of $LAT_RATE/s offered"
fi
say "RESULT e2e_per_s=$E2E acked_per_s=$ACK_RATE classified_s=${DONE_AT[classified]} assigned_s=${DONE_AT[assigned]} armed_s=${DONE_AT[armed]} counted_s=$END lat_rate=$LAT_RATE lat_acked_per_s=$L_RATE lat_p50_ms=$L_P50 lat_p99_ms=$L_P99 lat_ack_p99_ms=$L_ACK_P99 copy_per_s=$C_RATE ratio=$RATIO events=$EVENTS agents=$AGENTS connections=$CONNECTIONS window=$WINDOW"
