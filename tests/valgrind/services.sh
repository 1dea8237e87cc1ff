#!/usr/bin/env bash
# tests/valgrind/services.sh BUILD_DIR: intake, classifier, dispatcher, escalation and reporting under valgrind
# (memcheck, full leak check) through a short life: 30 tickets in English and Chinese,
# classification, assignment, SLA clocks armed, actions (accept, resolve, transfer, return), a
# ticket received two days ago whose clocks warn, breach and escalate at once, a Redis FLUSHALL
# and the rebuilds after it, the reporting rollups, sweeps, monthly check, /metrics, /health and the
# dashboard, then SIGTERM. Fails on any memcheck error or definitely/indirectly lost block.
# Run by ctest under tests/lib/with-stack.sh (REDRESS_PG_DSN, REDRESS_REDIS_URL, REDRESS_TEST_DIR).
set -euo pipefail
B=${1:?usage: services.sh BUILD_DIR}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T=$REDRESS_TEST_DIR
CTL=(timeout 60 "$B/tools/redressctl" --dsn "$REDRESS_PG_DSN")
source "$ROOT/tests/lib/servers.sh"
free_port() { rd_free_port; } # below the ephemeral range: no outgoing connection can hold it
P_IN=$(free_port) P_PUSH=$(free_port) P_PUB=$(free_port) P_CPUSH=$(free_port) P_CPUB=$(free_port)
P_DPUSH=$(free_port) P_DPUB=$(free_port) P_EPUB=$(free_port) P_RHTTP=$(free_port)
export REDRESS_INTAKE_BIND=tcp://127.0.0.1:$P_IN REDRESS_INTAKE_PUSH_BIND=tcp://127.0.0.1:$P_PUSH
export REDRESS_INTAKE_PUB_BIND=tcp://127.0.0.1:$P_PUB REDRESS_INTAKE_HTTP_PORT=0
export REDRESS_CLASSIFIER_INTAKE_ENDPOINT=tcp://127.0.0.1:$P_PUSH REDRESS_CLASSIFIER_PUSH_BIND=tcp://127.0.0.1:$P_CPUSH
export REDRESS_CLASSIFIER_PUB_BIND=tcp://127.0.0.1:$P_CPUB REDRESS_CLASSIFIER_HTTP_PORT=0
export REDRESS_CLASSIFIER_RULES_FILE=$ROOT/deploy/config/rules.default.json
export REDRESS_DISPATCHER_CLASSIFIER_ENDPOINT=tcp://127.0.0.1:$P_CPUSH REDRESS_DISPATCHER_EVENTS_ENDPOINT=tcp://127.0.0.1:$P_PUB
export REDRESS_DISPATCHER_PUSH_BIND=tcp://127.0.0.1:$P_DPUSH REDRESS_DISPATCHER_PUB_BIND=tcp://127.0.0.1:$P_DPUB
export REDRESS_DISPATCHER_HTTP_PORT=0 REDRESS_DISPATCHER_RECONCILE_INTERVAL_MS=500 REDRESS_DISPATCHER_REDRIVE_MIN_AGE_MS=0
export REDRESS_ESCALATION_EVENTS_ENDPOINT=tcp://127.0.0.1:$P_PUB,tcp://127.0.0.1:$P_DPUB
export REDRESS_ESCALATION_PUB_BIND=tcp://127.0.0.1:$P_EPUB REDRESS_ESCALATION_HTTP_PORT=0 REDRESS_ESCALATION_CALENDAR=cn-mainland
export REDRESS_REPORTING_CALENDAR=cn-mainland REDRESS_REPORTING_HTTP_BIND=127.0.0.1 REDRESS_REPORTING_HTTP_PORT=$P_RHTTP
export REDRESS_REPORTING_SWEEP_INTERVAL_MS=500 REDRESS_REPORTING_MONTHLY_CHECK_MS=1000 REDRESS_REPORTING_BATCH=16

"${CTL[@]}" calendar load "$ROOT/deploy/config/calendars.example.json" >/dev/null
"${CTL[@]}" org load "$ROOT/deploy/config/org.demo.json" >/dev/null
for a in $(psql -Atq "$REDRESS_PG_DSN" -c "SELECT id FROM agents WHERE active"); do
  "${CTL[@]}" agent online "$a" --ttl 600 --redis "$REDRESS_REDIS_URL" >/dev/null
done

pids=()
start_vg() {
  valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
    --error-exitcode=99 --log-file="$T/vg-$1.log" "$B/services/$1/redress-$1" 2>"$T/$1.log" &
  pids+=($!)
}
for svc in intake classifier dispatcher escalation; do
  start_vg "$svc"
done
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT

CTLI=("${CTL[@]}" --endpoint "tcp://127.0.0.1:$P_IN" --timeout 30)
for i in $(seq 1 15); do
  "${CTLI[@]}" submit --channel web --customer "VG-$i" --subject "Card charged twice $i" \
    --body "I was charged twice for the same purchase ($i); the bank will not refund." >/dev/null
  "${CTLI[@]}" submit --channel hotline --customer "VG-ZH-$i" --region CN-44-03 --language zh-CN \
    --subject "停电报修 $i" --body "小区从昨晚开始停电，有安全隐患，记者已经来过。" >/dev/null
done
# reporting starts once the tickets are in (its start-up, which writes the calendar's working
# intervals, does not compete with the others'), so it catches up from its queue
start_vg reporting
wait_for() { # SQL expected
  for _ in $(seq 1 300); do
    [[ $(psql -Atq "$REDRESS_PG_DSN" -c "$1") == "$2" ]] && return 0
    sleep 0.2
  done
  echo "timed out waiting for: $1 = $2 (got $(psql -Atq "$REDRESS_PG_DSN" -c "$1"))" >&2
  return 1
}
wait_for "SELECT count(*) FROM tickets WHERE state <> 'new'" 30
wait_for "SELECT count(*) FROM tickets WHERE state = 'assigned' OR id IN (SELECT ticket_id FROM dispatch_queue)" 30
mapfile -t ids < <(psql -Atq "$REDRESS_PG_DSN" -c "SELECT id FROM tickets WHERE state = 'assigned' ORDER BY id LIMIT 4")
"${CTLI[@]}" act "${ids[0]}" accept --actor vg >/dev/null
"${CTLI[@]}" act "${ids[0]}" resolve --actor vg >/dev/null
"${CTLI[@]}" act "${ids[1]}" transfer --actor vg --reason "wrong team" --target-unit hq >/dev/null
"${CTLI[@]}" act "${ids[2]}" return --actor vg --reason "not ours / 非本单位" --target-unit hq >/dev/null
redis-cli -u "$REDRESS_REDIS_URL" FLUSHALL >/dev/null
sleep 3
for a in $(psql -Atq "$REDRESS_PG_DSN" -c "SELECT id FROM agents WHERE active"); do
  "${CTL[@]}" agent online "$a" --ttl 600 --redis "$REDRESS_REDIS_URL" >/dev/null
done
wait_for "SELECT count(*) FROM tickets WHERE (state IN ('classified', 'returned') OR (state = 'assigned' AND owner_agent IS NULL)) AND id NOT IN (SELECT ticket_id FROM dispatch_queue)" 0
# a complaint received two days ago and classified now: its resolution clock fires everything at once
psql -Atq "$REDRESS_PG_DSN" -v ON_ERROR_STOP=1 <<'SQL'
INSERT INTO customers (id, customer_ref) VALUES ('00000000-0000-0000-0000-00000000a11e', 'VG-LATE');
INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, occurred_at, created_at, state, business_type, severity)
VALUES ('00000000-0000-0000-0000-0000000a11e1', 'vg', 'late', 'web', '00000000-0000-0000-0000-00000000a11e',
        now() - interval '2 days', now() - interval '2 days', 'classified', 'complaint', 'general');
INSERT INTO ticket_history (ticket_id, kind, from_state, to_state) VALUES ('00000000-0000-0000-0000-0000000a11e1', 'classify', 'new', 'classified');
SQL
wait_for "SELECT count(*) FROM sla_queue" 0
wait_for "SELECT count(*) FROM sla_escalations WHERE ticket_id = '00000000-0000-0000-0000-0000000a11e1'" 2
wait_for "SELECT count(*) > 0 FROM sla_clocks WHERE clock = 'resolution' AND state = 'running'" t
# reporting: every ticket's facts as fresh as its history, the side door (dashboard included) once
wait_for "SELECT count(*) FROM reporting.queue" 0
wait_for "SELECT count(*) FROM tickets t LEFT JOIN reporting.ticket_facts f ON f.ticket_id = t.id WHERE f.ticket_id IS NULL OR f.last_seq < (SELECT max(seq) FROM ticket_history h WHERE h.ticket_id = t.id)" 0
for path in /metrics /health /healthz / "/department?id=hq" "/dashboard.svg?chart=volume"; do
  curl -s -o /dev/null --max-time 30 "http://127.0.0.1:$P_RHTTP$path" || echo "reporting: GET $path failed" >&2
done

trap - EXIT
rc=0
for i in 0 1 2 3 4; do
  kill -TERM "${pids[$i]}"
  wait "${pids[$i]}" || rc=$?
done
for svc in intake classifier dispatcher escalation reporting; do
  echo "== $svc: $(grep -E 'ERROR SUMMARY' "$T/vg-$svc.log")"
  grep -E 'definitely lost|indirectly lost' "$T/vg-$svc.log" || true
done
if ((rc != 0)); then
  echo "a service exited $rc under valgrind (99 = memcheck errors or leaks); logs:" >&2
  for svc in intake classifier dispatcher escalation reporting; do grep -B2 -A25 -E 'Invalid|uninitialised|definitely lost in' "$T/vg-$svc.log" | head -80 >&2 || true; done
  exit 1
fi
echo "valgrind: intake, classifier, dispatcher, escalation and reporting clean"
