#!/usr/bin/env bash
# tests/integration/pg_outage.sh BUILD_DIR: PostgreSQL is stopped for 30 s under load.
#
# The five services run against the private PostgreSQL and Redis of tests/lib/with-stack.sh, with
# the demo organisation loaded. redress-intake-load offers CFPB complaints at a steady rate from 4
# gateway connections; 10 s in, PostgreSQL is shut down (fast shutdown: connections are cut), and
# started again on the same port REDRESS_OUTAGE_SECS (default 30) seconds later. Throughout, every
# service's resident memory is sampled twice a second. Afterwards it checks, and prints:
#   - every client got an answer: no request went unanswered for 10 s (the load generator's
#     resends = 0), none was given up, and UNAVAILABLE answers did arrive during the outage;
#   - nothing ACKed is lost: every event is ACKed once the database is back, and each one is
#     exactly one ticket in PostgreSQL (inbound_events and tickets);
#   - memory stayed below the bound stated below, for every service (peak VmRSS);
#   - the stack recovers by itself: every service reports healthy again, the ACK rate after the
#     outage is printed beside the rate before it, and every ticket goes on to be classified, then
#     assigned or queued with a reason, gets its SLA clocks, and is counted by reporting.
# No timing is asserted: "promptly" is the 10 s attempt window, a functional bound.
#
# Then PostgreSQL is frozen (SIGSTOP of every process of the cluster: connections open, nothing
# answers) for REDRESS_FREEZE_SECS (12) under the same load: every request must still be answered
# within 10 s (intake answers UNAVAILABLE after intake.answer_deadline_ms), and every event
# stored exactly once after the thaw.
#
# Environment: REDRESS_OUTAGE_SECS (30), REDRESS_OUTAGE_RATE (offered events/s, 150),
# REDRESS_OUTAGE_RSS_MB (the bound per service, 128; four times that under AddressSanitizer,
# whose shadow memory and quarantine inflate every process).
set -euo pipefail
B=${1:?usage: pg_outage.sh BUILD_DIR}
B=$(cd "$B" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z ${REDRESS_PG_DSN:-} || -z ${REDRESS_REDIS_URL:-} || -z ${REDRESS_TEST_DIR:-} ]]; then
  exec "$ROOT/tests/lib/with-stack.sh" -- "$0" "$B"
fi
# shellcheck source=tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"

OUTAGE=${REDRESS_OUTAGE_SECS:-30}
FREEZE=${REDRESS_FREEZE_SECS:-12}
FROZEN=
RATE=${REDRESS_OUTAGE_RATE:-150}
RSS_MB=${REDRESS_OUTAGE_RSS_MB:-128}
if [[ -n ${ASAN_OPTIONS:-} ]] || nm -C "$B/services/intake/redress-intake" 2>/dev/null | grep -q __asan_init; then
  RSS_MB=$((RSS_MB * 4))
fi
BEFORE=10 AFTER=25
EVENTS=$((RATE * (BEFORE + OUTAGE + AFTER)))
LOAD=$B/bench/redress-intake-load
CTL=$B/tools/redressctl
STACK=$(dirname "$REDRESS_TEST_DIR") # with-stack.sh's private directory: DIR/pg is the cluster
PG_PORT=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' <<<"$REDRESS_PG_DSN")
SERVICES=(intake classifier dispatcher escalation reporting)

say() { printf 'pg_outage: %s\n' "$*" >&2; }
die() {
  printf 'pg_outage: FAIL: %s\n' "$*" >&2
  exit 1
}
for f in "$LOAD" "$CTL"; do [[ -x $f ]] || die "$f not built"; done
[[ -f $STACK/pg/PG_VERSION && -n $PG_PORT ]] || die "no PostgreSQL cluster in $STACK/pg (run under with-stack.sh)"

mkdir -p "$REDRESS_TEST_DIR"
T=$(mktemp -d "$REDRESS_TEST_DIR/pg-outage.XXXXXXXX")
PROBLEMS=$T/problems.txt
: >"$PROBLEMS"
# shellcheck source=tests/lib/services.sh
source "$ROOT/tests/lib/services.sh"
# Test settings: the dispatcher's and escalation's periodic work comes round quickly.
SVC_EXTRA_ENV=(REDRESS_LOG_LEVEL=info)
LOAD_PID=

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  # shellcheck disable=SC2086  # a list of pids; a frozen PostgreSQL would hang with-stack.sh's stop
  [[ -z $FROZEN ]] || kill -CONT $FROZEN 2>/dev/null || true
  ((rc == 0)) || post_mortem "$T/load.err" "$T/load2.err"
  rd_stop_pid "$LOAD_PID" 5 || true
  stop_all_svc
  rd_pg_start "$STACK" "$PG_PORT" >/dev/null 2>&1 || true # with-stack.sh stops what it started
  rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

psqlq() { psql "$REDRESS_PG_DSN" -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }
rss_kb() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null || echo 0; }
healthy() { curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:${HTTP_PORT[$1]}/healthz" 2>/dev/null; }

# ---- the stack --------------------------------------------------------------------------------
"$CTL" --dsn "$REDRESS_PG_DSN" org load "$ROOT/deploy/config/org.demo.json" >"$T/org.txt" 2>&1 ||
  die "redressctl org load failed: $(tail -n 3 "$T/org.txt")"
for svc in "${SERVICES[@]}"; do
  start_svc "$svc" || die "$svc did not start"
done
say "services up; offering $RATE events/s, $EVENTS events; PostgreSQL down from ${BEFORE}s for ${OUTAGE}s; RSS bound ${RSS_MB} MiB"

# ---- load, outage, samples -----------------------------------------------------------------------
PREFIX=outage$$
"$LOAD" --endpoint "${ZMQ[intake_router]}" --connections 4 --window 64 --rate "$RATE" --events "$EVENTS" \
  --prefix "$PREFIX" --gateway outage-gw --attempt-ms 10000 --deadline-ms 600000 --progress 5 \
  >"$T/load.out" 2>"$T/load.err" &
LOAD_PID=$!

declare -A PEAK=()
for svc in "${SERVICES[@]}"; do PEAK[$svc]=0; done
sample() { # one sample: peak RSS per service, intake's ACK counter into acks.tsv
  local svc kb
  for svc in "${SERVICES[@]}"; do
    rd_pid_alive "${PID[$svc]}" || die "$svc (pid ${PID[$svc]}) died"
    kb=$(rss_kb "${PID[$svc]}")
    ((kb > PEAK[$svc])) && PEAK[$svc]=$kb
  done
  printf '%s\t%s\n' "$SECONDS" "$(svc_metric intake redress_intake_events_acked_total)" >>"$T/acks.tsv"
}
start=$SECONDS
down_at= up_at=
while rd_pid_alive "$LOAD_PID"; do
  sample
  t=$((SECONDS - start))
  if [[ -z $down_at ]] && ((t >= BEFORE)); then
    rd_pg_stop "$STACK" || die "could not stop PostgreSQL"
    down_at=$SECONDS
    say "t=$((SECONDS - start))s: PostgreSQL stopped"
  elif [[ -n $down_at && -z $up_at ]] && ((SECONDS - down_at >= OUTAGE)); then
    unavail_during=$(svc_metric intake 'redress_intake_nacks_total{code="UNAVAILABLE"}')
    restart_at=$SECONDS
    rd_pg_start "$STACK" "$PG_PORT" 2>"$T/pg-start.err" || die "PostgreSQL did not start again: $(tail -n 5 "$T/pg-start.err")"
    up_at=$SECONDS
    say "t=$((SECONDS - start))s: PostgreSQL started again (UNAVAILABLE answers so far: ${unavail_during:-?})"
  fi
  ((SECONDS - start < 900)) || die "the load did not finish in 900 s"
  sleep 0.5
done
wait "$LOAD_PID" && load_rc=0 || load_rc=$?
LOAD_PID=
[[ -n $up_at ]] || die "the load finished before the outage was over: offer more events (REDRESS_OUTAGE_RATE)"

# ---- 1. every client got an answer; 2. nothing ACKed is lost -----------------------------------
summary=$(grep '^SUMMARY ' "$T/load.out" || true)
[[ -n $summary ]] || die "no SUMMARY from the load generator (exit $load_rc): $(tail -n 5 "$T/load.err")"
say "load: $summary"
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $summary"; }
events=$(kv events) acked=$(kv acked) gave_up=$(kv gave_up) resends=$(kv resends) busy=$(kv busy_retries)
((load_rc == 0)) || die "the load generator exited $load_rc (not every event ACKed)"
((acked == EVENTS && events == EVENTS)) || die "ACKed $acked of $EVENTS events"
((gave_up == 0)) || die "$gave_up events given up"
((resends == 0)) || die "$resends requests went unanswered for 10 s (resent): intake did not answer promptly"
((busy > 0)) || die "no UNAVAILABLE/OVERLOADED answer during a ${OUTAGE}s outage: was PostgreSQL really down?"
stored=$(psqlq "SELECT count(*) FROM inbound_events WHERE gateway_id = 'outage-gw' AND event_id LIKE '$PREFIX-%'")
tickets=$(psqlq "SELECT count(DISTINCT ticket_id) FROM inbound_events WHERE gateway_id = 'outage-gw' AND event_id LIKE '$PREFIX-%'")
rows=$(psqlq "SELECT count(*) FROM tickets t JOIN inbound_events i ON i.ticket_id = t.id
              WHERE i.gateway_id = 'outage-gw' AND i.event_id LIKE '$PREFIX-%'")
((stored == EVENTS && tickets == EVENTS && rows == EVENTS)) ||
  die "PostgreSQL holds $stored events, $tickets distinct tickets, $rows ticket rows; want $EVENTS each"
say "ok: all $EVENTS events answered and ACKed ($busy UNAVAILABLE/OVERLOADED answers retried, 0 unanswered for 10 s); each is exactly one ticket"

# ---- 2b. PostgreSQL hung: every process of the cluster stopped (SIGSTOP), connections open ------
# Nothing answers and nothing fails. Intake must answer the events it holds UNAVAILABLE once they
# have waited intake.answer_deadline_ms (3 s) instead of leaving gateways to time out, and store
# each exactly once when PostgreSQL moves again.
pg_pids() {
  local pm
  pm=$(head -n 1 "$STACK/pg/postmaster.pid")
  printf '%s %s\n' "$pm" "$(pgrep -P "$pm" | tr '\n' ' ')"
}
EVENTS2=$((RATE * (5 + FREEZE + 15)))
PREFIX2=hung$$
unavail0=$(svc_metric intake 'redress_intake_nacks_total{code="UNAVAILABLE"}')
"$LOAD" --endpoint "${ZMQ[intake_router]}" --connections 4 --window 64 --rate "$RATE" --events "$EVENTS2" \
  --prefix "$PREFIX2" --gateway outage-gw --attempt-ms 10000 --deadline-ms 600000 \
  >"$T/load2.out" 2>"$T/load2.err" &
LOAD_PID=$!
start2=$SECONDS
while rd_pid_alive "$LOAD_PID"; do
  sample
  if [[ -z $FROZEN ]] && ((SECONDS - start2 >= 5)) && [[ -z ${thawed:-} ]]; then
    FROZEN=$(pg_pids)
    # shellcheck disable=SC2086  # a list of pids
    kill -STOP $FROZEN
    frozen_at=$SECONDS
    say "PostgreSQL frozen (SIGSTOP: $FROZEN) for ${FREEZE}s"
  elif [[ -n $FROZEN ]] && ((SECONDS - frozen_at >= FREEZE)); then
    # shellcheck disable=SC2086
    kill -CONT $FROZEN
    FROZEN= thawed=1
    say "PostgreSQL thawed (UNAVAILABLE answers while frozen: $(($(svc_metric intake 'redress_intake_nacks_total{code="UNAVAILABLE"}' | cut -d. -f1) - ${unavail0%.*})))"
  fi
  ((SECONDS - start2 < 600)) || die "the second load did not finish in 600 s"
  sleep 0.5
done
wait "$LOAD_PID" && load_rc=0 || load_rc=$?
LOAD_PID=
[[ -n ${thawed:-} ]] || die "the second load finished before PostgreSQL was thawed"
summary=$(grep '^SUMMARY ' "$T/load2.out" || true)
[[ -n $summary ]] || die "no SUMMARY from the second load (exit $load_rc): $(tail -n 5 "$T/load2.err")"
say "load: $summary"
acked=$(kv acked) gave_up=$(kv gave_up) resends=$(kv resends) busy=$(kv busy_retries)
((load_rc == 0 && acked == EVENTS2 && gave_up == 0)) || die "hung PostgreSQL: ACKed $acked of $EVENTS2, $gave_up given up"
((resends == 0)) || die "hung PostgreSQL: $resends requests went unanswered for 10 s (intake.answer_deadline_ms is 3 s)"
((busy > 0)) || die "hung PostgreSQL: no UNAVAILABLE answer in a ${FREEZE}s freeze"
read -r stored tickets <<<"$(psqlq "SELECT count(*), count(DISTINCT ticket_id) FROM inbound_events
  WHERE gateway_id = 'outage-gw' AND event_id LIKE '$PREFIX2-%'" | tr '|' ' ')"
((stored == EVENTS2 && tickets == EVENTS2)) || die "hung PostgreSQL: $stored events, $tickets tickets stored; want $EVENTS2"
say "ok: PostgreSQL frozen ${FREEZE}s: all $EVENTS2 events answered within 10 s ($busy UNAVAILABLE answers retried), ACKed, stored once"

# ---- 3. memory ---------------------------------------------------------------------------------
for svc in "${SERVICES[@]}"; do
  mb=$(((PEAK[$svc] + 1023) / 1024))
  say "peak RSS $svc: $mb MiB (bound $RSS_MB MiB)"
  ((mb < RSS_MB)) || die "$svc peaked at $mb MiB, above the bound of $RSS_MB MiB"
done

# ---- 4. recovery -------------------------------------------------------------------------------
deadline=$((SECONDS + 120))
for svc in "${SERVICES[@]}"; do
  until healthy "$svc"; do
    ((SECONDS < deadline)) || die "$svc did not report healthy again: $(curl -s --max-time 2 "http://127.0.0.1:${HTTP_PORT[$svc]}/healthz")"
    sleep 0.5
  done
done
rate_between() { # FROM TO (seconds since start): ACKs/s from acks.tsv
  awk -v a="$1" -v b="$2" -v s="$start" '$2 != "" { t = $1 - s; if (t >= a && t <= b) { if (n++ == 0) { t0 = t; v0 = $2 } t1 = t; v1 = $2 } }
    END { if (n > 1 && t1 > t0) printf "%.0f", (v1 - v0) / (t1 - t0); else print "?" }' "$T/acks.tsv"
}
up_rel=$((up_at - start))
say "ACKs/s: before the outage $(rate_between 2 "$BEFORE"); while PostgreSQL was down $(rate_between $((down_at - start)) $((restart_at - start))); in the 10 s after it was back $(rate_between "$up_rel" $((up_rel + 10))) (the backlog); offered $RATE"

# Downstream: every ticket classified, then assigned or queued with a reason, its clocks armed,
# and counted by reporting (polled until true; 180 s at most).
ours="SELECT ticket_id FROM inbound_events WHERE gateway_id = 'outage-gw' AND event_id LIKE '$PREFIX-%'"
check_downstream() {
  psqlq "SELECT
    (SELECT count(*) FROM ($ours) o WHERE NOT EXISTS (SELECT 1 FROM ticket_classifications c WHERE c.ticket_id = o.ticket_id)),
    (SELECT count(*) FROM ($ours) o JOIN tickets t ON t.id = o.ticket_id
      WHERE t.owner_agent IS NULL AND NOT EXISTS (SELECT 1 FROM dispatch_queue q WHERE q.ticket_id = o.ticket_id AND q.reason <> '')),
    (SELECT count(*) FROM ($ours) o WHERE NOT EXISTS (SELECT 1 FROM sla_clocks k WHERE k.ticket_id = o.ticket_id)),
    (SELECT count(*) FROM sla_queue),
    (SELECT count(*) FROM ($ours) o WHERE NOT EXISTS (SELECT 1 FROM reporting.ticket_facts f WHERE f.ticket_id = o.ticket_id)),
    (SELECT count(*) FROM reporting.queue)" | tr '|' ' '
}
deadline=$((SECONDS + 180))
while :; do
  read -r unclassified unrouted unclocked slaq unreported repq <<<"$(check_downstream)"
  if ((unclassified + unrouted + unclocked + slaq + unreported + repq == 0)); then
    break
  fi
  if ((SECONDS >= deadline)); then
    die "after 180 s: $unclassified unclassified, $unrouted neither assigned nor queued with a reason, $unclocked without SLA clocks, $slaq in sla_queue, $unreported without a reporting fact, $repq in reporting.queue"
  fi
  sleep 1
done
assigned=$(psqlq "SELECT count(*) FROM ($ours) o JOIN tickets t ON t.id = o.ticket_id WHERE t.owner_agent IS NOT NULL")
queued=$(psqlq "SELECT count(*) FROM ($ours) o JOIN dispatch_queue q USING (ticket_id)")
clocks=$(psqlq "SELECT count(*) FROM ($ours) o JOIN sla_clocks k USING (ticket_id)")
say "ok: $EVENTS tickets classified; $assigned assigned, $queued queued with a reason; $clocks SLA clocks; all counted by reporting"
say "ok: PostgreSQL down ${OUTAGE}s under $RATE events/s: nothing lost, every request answered, memory bounded, recovered"
