#!/usr/bin/env bash
# tests/chaos/chaos.sh BUILD_DIR: the whole stack under faults, then everything it promised checked.
#
# The five services run against a private PostgreSQL and Redis (tests/lib/with-stack.sh), with the
# demo organisation loaded and its agents online. redress-intake-load replays the CFPB sample at a
# steady rate from 4 gateway connections while, every REDRESS_CHAOS_EVERY seconds, the next fault
# of this round happens:
#   SIGKILL intake, classifier, dispatcher, escalation, reporting (each restarted on its ports);
#   Redis restarted (it keeps nothing on disk, so it comes back empty); Redis FLUSHALL;
#   PostgreSQL restarted (fast shutdown: every connection cut).
# Two thirds of the way through, escalation's clock (escalation.clock_file) jumps 3 days ahead, so
# clocks breach and escalate in bulk while the faults go on.
#
# Afterwards, once the stack has settled, it checks and prints the counts it checked:
#   1. every event was ACKed (the load generator retries until it is), and every ACKed event is
#      exactly one ticket (inbound_events, tickets);
#   2. every ticket is classified, and assigned or queued with a reason;
#   3. every open ticket's clocks are armed exactly: sla_queue is empty, and the timers in Redis
#      ({esc}:due and {esc}:inflight) are exactly the clocks PostgreSQL says have a next stage;
#   4. no breach is recorded twice, no escalation level twice for a clock;
#   5. reporting: every fact equals reporting.fact_source() over the raw tables, and every cell of
#      the hour, day and month rollups equals the sum of the facts' contributions (so nothing was
#      counted twice or missed; the scenario test checks fact_source/contrib against plain SQL).
#
# The short version runs in CI (ctest integration_chaos: 90 s, a fault every 6 s, 11 faults);
# the full one by hand, e.g. REDRESS_CHAOS_SECS=1800 REDRESS_CHAOS_RATE=300 tests/chaos/chaos.sh build
#
# Environment: REDRESS_CHAOS_SECS (90), REDRESS_CHAOS_RATE (events/s offered, 120),
# REDRESS_CHAOS_EVERY (seconds between faults, 6), REDRESS_CHAOS_SETTLE_SECS (240).
set -euo pipefail
B=${1:?usage: chaos.sh BUILD_DIR}
B=$(cd "$B" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z ${REDRESS_PG_DSN:-} || -z ${REDRESS_REDIS_URL:-} || -z ${REDRESS_TEST_DIR:-} ]]; then
  exec "$ROOT/tests/lib/with-stack.sh" -- "$0" "$B"
fi
# shellcheck source=tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"

SECS=${REDRESS_CHAOS_SECS:-90}
RATE=${REDRESS_CHAOS_RATE:-120}
EVERY=${REDRESS_CHAOS_EVERY:-6}
SETTLE=${REDRESS_CHAOS_SETTLE_SECS:-240}
EVENTS=$((RATE * SECS))
LOAD=$B/bench/redress-intake-load
CTL=$B/tools/redressctl
STACK=$(dirname "$REDRESS_TEST_DIR")
PG_PORT=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$REDRESS_PG_DSN")
REDIS_PORT=${REDRESS_REDIS_URL##*:}
SERVICES=(intake classifier dispatcher escalation reporting)
FAULTS=(kill:intake kill:classifier kill:dispatcher kill:escalation kill:reporting redis:restart
  kill:intake pg:restart kill:escalation redis:flushall kill:dispatcher)

say() { printf 'chaos: %s\n' "$*" >&2; }
die() {
  printf 'chaos: FAIL: %s\n' "$*" >&2
  exit 1
}
for f in "$LOAD" "$CTL"; do [[ -x $f ]] || die "$f not built"; done
[[ -f $STACK/pg/PG_VERSION && -n $PG_PORT && -n $REDIS_PORT ]] || die "run under tests/lib/with-stack.sh"

mkdir -p "$REDRESS_TEST_DIR"
T=$(mktemp -d "$REDRESS_TEST_DIR/chaos.XXXXXXXX")
PROBLEMS=$T/problems.txt
: >"$PROBLEMS"
# shellcheck source=tests/lib/services.sh
source "$ROOT/tests/lib/services.sh"
CLOCK=$T/escalation-clock
SVC_EXTRA_ENV=(REDRESS_ESCALATION_CLOCK_FILE="$CLOCK" REDRESS_ESCALATION_REBUILD_INTERVAL_MS=5000
  REDRESS_DISPATCHER_RECONCILE_INTERVAL_MS=2000)
LOAD_PID=
CLOCK_OFFSET_MS=0

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  ((rc == 0)) || post_mortem "$T/load.err"
  rd_stop_pid "$LOAD_PID" 5 || true
  stop_all_svc
  rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

psqlq() { psql "$REDRESS_PG_DSN" -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
tick_clock() { # escalation's "now": the real clock plus the jump, written atomically
  printf '%s\n' $(($(now_ms) + CLOCK_OFFSET_MS)) >"$CLOCK.tmp" && mv -f "$CLOCK.tmp" "$CLOCK"
}
agents_online() {
  local a
  for a in $(psqlq "SELECT id FROM agents ORDER BY id"); do
    "$CTL" --dsn "$REDRESS_PG_DSN" agent online "$a" >/dev/null 2>>"$T/agents.err" || true
  done
}

# ---- the stack --------------------------------------------------------------------------------
"$CTL" --dsn "$REDRESS_PG_DSN" org load "$ROOT/deploy/config/org.demo.json" >"$T/org.txt" 2>&1 ||
  die "redressctl org load failed: $(tail -n 3 "$T/org.txt")"
tick_clock
for svc in "${SERVICES[@]}"; do
  start_svc "$svc" || die "$svc did not start"
done
export REDRESS_REDIS_URL
agents_online
say "offering $RATE events/s for ${SECS}s ($EVENTS events); a fault every ${EVERY}s: ${FAULTS[*]}"

# ---- load and faults -----------------------------------------------------------------------------
PREFIX=chaos$$
"$LOAD" --endpoint "${ZMQ[intake_router]}" --connections 4 --window 64 --rate "$RATE" --events "$EVENTS" \
  --prefix "$PREFIX" --gateway chaos-gw --attempt-ms 3000 --deadline-ms 900000 --progress 10 \
  >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!

fault() {
  local what=$1 svc
  case $what in
    kill:*)
      svc=${what#kill:}
      kill_svc "$svc"
      restart_svc "$svc" || die "$svc did not come back after SIGKILL"
      ;;
    redis:restart)
      rd_redis_stop "$STACK" || die "could not stop Redis"
      rd_redis_start "$STACK" "$REDIS_PORT" >/dev/null || die "Redis did not start again on $REDIS_PORT"
      agents_online # presence lives in Redis: agents' desktops would send heartbeats again
      ;;
    redis:flushall)
      rcli FLUSHALL >/dev/null || die "FLUSHALL failed"
      agents_online
      ;;
    pg:restart)
      rd_pg_stop "$STACK" || die "could not stop PostgreSQL"
      rd_pg_start "$STACK" "$PG_PORT" 2>"$T/pg-start.err" || die "PostgreSQL did not start again: $(tail -n 5 "$T/pg-start.err")"
      ;;
  esac
}

start=$SECONDS next_fault=$((SECONDS + EVERY)) nfaults=0 jumped=0
declare -A DONE=()
while rd_pid_alive "$LOAD_PID"; do
  tick_clock
  for svc in "${SERVICES[@]}"; do
    rd_pid_alive "${PID[$svc]}" || die "$svc (pid ${PID[$svc]}) died by itself"
  done
  if ((jumped == 0 && SECONDS - start >= SECS * 2 / 3)); then
    CLOCK_OFFSET_MS=$((3 * 86400 * 1000))
    tick_clock
    jumped=1
    say "t=$((SECONDS - start))s: escalation's clock jumps 3 days ahead"
  fi
  if ((SECONDS >= next_fault)); then
    f=${FAULTS[nfaults % ${#FAULTS[@]}]}
    say "t=$((SECONDS - start))s: fault $((nfaults + 1)): $f"
    fault "$f"
    DONE[$f]=$((${DONE[$f]:-0} + 1))
    nfaults=$((nfaults + 1))
    next_fault=$((SECONDS + EVERY))
  fi
  ((SECONDS - start < SECS * 4 + 300)) || die "the load did not finish"
  sleep 0.5
done
wait "$LOAD_PID" && load_rc=0 || load_rc=$?
LOAD_PID=
((jumped == 1)) || die "the load ended before the clock jump: raise REDRESS_CHAOS_SECS"
say "faults done: $nfaults ($(for k in "${!DONE[@]}"; do printf '%s×%s ' "$k" "${DONE[$k]}"; done))"

# ---- 1. ACKed = stored, exactly once ---------------------------------------------------------
summary=$(grep '^SUMMARY ' "$T/load.out" || true)
[[ -n $summary ]] || die "no SUMMARY from the load generator (exit $load_rc): $(tail -n 5 "$T/load.err")"
say "load: $summary"
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $summary"; }
acked=$(kv acked) gave_up=$(kv gave_up)
((load_rc == 0 && acked == EVENTS && gave_up == 0)) || die "ACKed $acked of $EVENTS events, $gave_up given up (exit $load_rc)"
ours="SELECT ticket_id FROM inbound_events WHERE gateway_id = 'chaos-gw' AND event_id LIKE '$PREFIX-%'"
read -r stored distinct rows <<<"$(psqlq "SELECT count(*), count(DISTINCT ticket_id),
  (SELECT count(*) FROM tickets t WHERE t.id IN ($ours)) FROM ($ours) o" | tr '|' ' ')"
((stored == EVENTS && distinct == EVENTS && rows == EVENTS)) ||
  die "PostgreSQL holds $stored events, $distinct distinct tickets, $rows ticket rows; want $EVENTS each"
created=$(psqlq "SELECT count(*) FROM ticket_history h WHERE h.kind = 'created' AND h.ticket_id IN ($ours)")
((created == EVENTS)) || die "$created 'created' history rows for $EVENTS tickets"
say "ok 1: $EVENTS events ACKed; $stored in inbound_events, $distinct distinct tickets, $rows ticket rows, $created created rows"

# ---- settle: every service healthy, queues drained, timers equal to PostgreSQL ---------------------
timers_diff() { # clocks with a next stage but no timer in Redis, and timers without such a clock
  local pgids redisids
  pgids=$(psqlq "SELECT id FROM sla_clocks WHERE next_fire_at IS NOT NULL ORDER BY 1" | sort)
  redisids=$({
    rcli ZRANGE '{esc}:due' 0 -1
    rcli ZRANGE '{esc}:inflight' 0 -1
  } | sort -u)
  printf '%s %s %s\n' "$(comm -23 <(printf '%s\n' "$pgids" | sed '/^$/d') <(printf '%s\n' "$redisids" | sed '/^$/d') | wc -l)" \
    "$(comm -13 <(printf '%s\n' "$pgids" | sed '/^$/d') <(printf '%s\n' "$redisids" | sed '/^$/d') | wc -l)" \
    "$(printf '%s\n' "$pgids" | sed '/^$/d' | wc -l)"
}
overdue() { # timers due by escalation's clock that have not fired yet
  rcli ZCOUNT '{esc}:due' -inf "$(($(now_ms) + CLOCK_OFFSET_MS))"
}
state() {
  psqlq "SELECT
    (SELECT count(*) FROM ($ours) o WHERE NOT EXISTS (SELECT 1 FROM ticket_classifications c WHERE c.ticket_id = o.ticket_id)),
    (SELECT count(*) FROM ($ours) o JOIN tickets t ON t.id = o.ticket_id
      WHERE t.owner_agent IS NULL AND NOT EXISTS (SELECT 1 FROM dispatch_queue q WHERE q.ticket_id = o.ticket_id AND q.reason <> '')),
    (SELECT count(*) FROM sla_queue), (SELECT count(*) FROM reporting.queue),
    (SELECT count(*) FROM tickets t WHERE NOT EXISTS (SELECT 1 FROM reporting.ticket_facts f WHERE f.ticket_id = t.id)),
    (SELECT count(*) FROM reporting.ticket_facts f JOIN tickets t ON t.id = f.ticket_id
      WHERE f.last_seq <> (SELECT max(h.seq) FROM ticket_history h WHERE h.ticket_id = t.id))" | tr '|' ' '
}
deadline=$((SECONDS + SETTLE))
while :; do
  tick_clock
  read -r unclassified unrouted slaq repq nofact stale <<<"$(state)"
  read -r missing extra live <<<"$(timers_diff)"
  due=$(overdue)
  if ((unclassified + unrouted + slaq + repq + nofact + stale + missing + extra + due == 0)); then
    break
  fi
  if ((SECONDS >= deadline)); then
    die "not settled after ${SETTLE}s: $unclassified unclassified, $unrouted neither assigned nor queued with a reason, $slaq in sla_queue, $repq in reporting.queue, $nofact tickets without a fact, $stale stale facts, $missing clocks without a timer, $extra timers without a live clock (of $live), $due timers overdue"
  fi
  sleep 1
done
for svc in "${SERVICES[@]}"; do
  curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${HTTP_PORT[$svc]}/healthz" || die "$svc is not healthy"
done

# ---- 2. classified, assigned or queued ----------------------------------------------------------
read -r assigned queued <<<"$(psqlq "SELECT (SELECT count(*) FROM ($ours) o JOIN tickets t ON t.id = o.ticket_id WHERE t.owner_agent IS NOT NULL),
  (SELECT count(*) FROM ($ours) o JOIN dispatch_queue q USING (ticket_id))" | tr '|' ' ')"
say "ok 2: $EVENTS tickets classified; $assigned assigned, $queued queued with a reason"

# ---- 3. clocks armed exactly ----------------------------------------------------------------------
read -r clocks running <<<"$(psqlq "SELECT count(*), count(*) FILTER (WHERE next_fire_at IS NOT NULL) FROM sla_clocks" | tr '|' ' ')"
dupclocks=$(psqlq "SELECT count(*) FROM (SELECT ticket_id, clock, cycle FROM sla_clocks GROUP BY 1, 2, 3 HAVING count(*) > 1) d")
noclock=$(psqlq "SELECT count(*) FROM ($ours) o JOIN tickets t ON t.id = o.ticket_id
  WHERE t.state NOT IN ('resolved', 'closed') AND NOT EXISTS (SELECT 1 FROM sla_clocks k WHERE k.ticket_id = t.id)")
((dupclocks == 0 && noclock == 0)) || die "$dupclocks clocks twice, $noclock open tickets without any clock"
say "ok 3: $clocks SLA clocks, $running with a next stage, each with exactly one timer in Redis (0 missing, 0 extra); sla_queue empty"

# ---- 4. no breach twice ---------------------------------------------------------------------------
read -r breaches twice esc esctwice <<<"$(psqlq "SELECT
  (SELECT count(*) FROM sla_events WHERE kind = 'breached'),
  (SELECT count(*) FROM (SELECT clock_id FROM sla_events WHERE kind = 'breached' GROUP BY 1 HAVING count(*) > 1) d),
  (SELECT count(*) FROM sla_escalations),
  (SELECT count(*) FROM (SELECT clock_id, level FROM sla_escalations GROUP BY 1, 2 HAVING count(*) > 1) d)" | tr '|' ' ')"
((twice == 0 && esctwice == 0)) || die "$twice clocks breached more than once, $esctwice escalation levels twice"
((breaches > 0)) || die "no breach at all after a 3-day clock jump: the check above proved nothing"
say "ok 4: $breaches breaches, none twice; $esc escalations, no level twice for a clock"

# ---- 5. reporting equals recomputation ------------------------------------------------------------
factdiff=$(psqlq "SELECT count(*) FROM reporting.ticket_facts f
  FULL JOIN reporting.fact_source(ARRAY(SELECT id FROM tickets)) s ON s.ticket_id = f.ticket_id
  WHERE (to_jsonb(f) - 'refreshed_at') IS DISTINCT FROM (to_jsonb(s) - 'refreshed_at')")
facts=$(psqlq "SELECT count(*) FROM reporting.ticket_facts")
((factdiff == 0)) || die "$factdiff ticket facts differ from reporting.fact_source() over the raw tables"
cells=0
for g in hour day month; do
  case $g in
    hour) b="date_trunc('hour', c.t AT TIME ZONE s.time_zone)" ;;
    day) b="(c.t AT TIME ZONE s.time_zone)::date" ;;
    month) b="date_trunc('month', c.t AT TIME ZONE s.time_zone)::date" ;;
  esac
  res=$(psqlq "WITH want AS (
      SELECT $b AS bucket, f.business_type, f.channel, f.category, f.department, f.team, f.agent, f.region,
             c.col, sum(c.v)::numeric AS v
        FROM reporting.ticket_facts f CROSS JOIN reporting.settings s, LATERAL reporting.contrib(f) c
       GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9 HAVING sum(c.v) <> 0),
    have AS (
      SELECT r.bucket, r.business_type, r.channel, r.category, r.department, r.team, r.agent, r.region,
             x.key AS col, x.value::numeric AS v
        FROM reporting.rollup_$g r,
             LATERAL jsonb_each_text(to_jsonb(r) - ARRAY['bucket', 'business_type', 'channel', 'category',
                                                         'department', 'team', 'agent', 'region']) x
       WHERE x.value::numeric <> 0)
    SELECT count(*) FILTER (WHERE want.v IS DISTINCT FROM have.v), count(*)
      FROM want FULL JOIN have USING (bucket, business_type, channel, category, department, team, agent, region, col)") ||
    die "rollup_$g: the check query failed"
  read -r diff n <<<"${res//|/ }"
  [[ $diff =~ ^[0-9]+$ && $n =~ ^[0-9]+$ ]] || die "rollup_$g: the check query answered '$res'"
  ((n > 0)) || die "rollup_$g: no non-zero cells at all"
  ((diff == 0)) || die "rollup_$g: $diff of $n non-zero cells differ from the sum of the facts' contributions"
  say "ok 5: rollup_$g: $n non-zero cells, each equal to the sum of the facts' contributions"
  cells=$((cells + n))
done
say "ok 5: $facts ticket facts equal to fact_source() over the raw tables; $cells rollup cells checked"
say "ok: $nfaults faults under $RATE events/s for ${SECS}s; nothing lost, nothing twice, everything recomputes"
