#!/usr/bin/env bash
# multihost.sh: Redress spread over three "hosts" on one machine, and one host killed under load.
#
# Usage: tests/integration/multihost.sh BUILD_DIR
#
# Three network namespaces, each a host with one veth into a bridge that lives in a fourth
# namespace (nothing in the root namespace is touched; 10.77.0.0/24 exists only in there):
#
#   host A  10.77.0.1   PostgreSQL (5432) and Redis (6379), listening on that address
#   host B  10.77.0.2   intake, classifier, dispatcher, escalation, reporting
#   host C  10.77.0.3   the same five: two copies of every service, one per host
#
# Every stage connects to both copies of the stage before it (docs/scaling.md). A gateway on host
# A replays N CFPB complaints (redressctl submit --csv) at a fixed rate through both intakes
# (--endpoint B,C). Once at least a third are ACKed, and both intakes have ACKed some, every
# service on host B gets SIGKILL; the load carries on. Afterwards, with host C alone:
#   - every event was ACKed (none given up or refused);
#   - every ACKed event is in the ledger exactly once and is exactly one ticket (one 'created'
#     history row, one ticket per event);
#   - every ticket is classified, and assigned to an agent or waiting in the dispatch queue;
#   - every open ticket has a running resolution clock, the SLA and reporting queues are drained;
#   - host C's intake ACKed events after the kill (it carried the load).
# The counts are printed. Exit 0 = all held, 1 = something did not, 77 = network namespaces
# cannot be made here (not root, no CAP_NET_ADMIN): the test is skipped.
# Namespaces, processes and the scratch directory are removed however it ends.
#
# Environment: MULTIHOST_EVENTS (default 1500), MULTIHOST_RATE (events/s offered, default 150),
# REDRESS_CFPB_CSV (default ../shared/datasets/cfpb/complaints_sample.csv beside the repository),
# REDRESS_KEEP_TEST_DIR=1 keeps the logs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: multihost.sh BUILD_DIR}
build=$(cd "$build" && pwd)
events=${MULTIHOST_EVENTS:-1500}
rate=${MULTIHOST_RATE:-150}
csv=${REDRESS_CFPB_CSV:-$root/../shared/datasets/cfpb/complaints_sample.csv}
# shellcheck source=tests/lib/servers.sh
source "$root/tests/lib/servers.sh"

say() { printf 'multihost: %s\n' "$*" >&2; }
fail() {
  printf 'multihost: FAIL: %s\n' "$*" >&2
  exit 1
}

services=(intake classifier dispatcher escalation reporting)
for s in "${services[@]}"; do
  [[ -x $build/services/$s/redress-$s ]] || fail "$build/services/$s/redress-$s is not built"
done
ctl=$build/tools/redressctl
[[ -x $ctl ]] || fail "$ctl is not built"
[[ -r $csv ]] || fail "the CFPB sample $csv is missing (set REDRESS_CFPB_CSV)"
command -v ip >/dev/null 2>&1 || {
  say "SKIP: the ip command (package iproute2) is missing"
  exit 77
}

# ---- can we make namespaces at all? --------------------------------------------------------------
tag=mh$$
probe=${tag}probe
if ! ip netns add "$probe" 2>/dev/null; then
  say "SKIP: cannot create a network namespace (needs root or CAP_NET_ADMIN)"
  exit 77
fi
ip netns del "$probe"

nsA=${tag}A nsB=${tag}B nsC=${tag}C nsBr=${tag}Br
addrA=10.77.0.1 addrB=10.77.0.2 addrC=10.77.0.3
dir=$(mktemp -d "${TMPDIR:-/tmp}/redress-multihost.XXXXXX")
chmod 755 "$dir" # PostgreSQL runs as the postgres user and must get in
pids_b=() pids_c=() pid_redis='' pid_load=''

cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  rm -f "$dir/.running" # the watchdog has nothing left to do
  for p in "$pid_load" "${pids_b[@]}" "${pids_c[@]}"; do
    if [[ -n $p ]]; then rd_stop_pid "$p" 5 2>/dev/null || true; fi
  done
  if [[ -n $pid_redis ]]; then rd_stop_pid "$pid_redis" 5 2>/dev/null || true; fi
  rd_pg_stop "$dir" 2>/dev/null || true
  for ns in "$nsA" "$nsB" "$nsC" "$nsBr"; do
    ip netns del "$ns" 2>/dev/null || true
  done
  if ((rc != 0 && rc != 77)); then
    for f in "$dir"/*.log; do
      [[ -f $f ]] || continue
      printf '\n--- last lines of %s\n' "${f##*/}" >&2
      tail -n 15 "$f" >&2 || true
    done
  fi
  if [[ ${REDRESS_KEEP_TEST_DIR:-0} == 1 ]]; then
    say "kept $dir"
  else
    rm -rf "$dir"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# If this script is killed outright (ctest's timeout sends SIGKILL), the trap never runs: a
# detached watchdog then kills whatever runs in the namespaces, deletes them and the directory.
: >"$dir/.running"
# shellcheck disable=SC2016 # the watchdog's script expands its own arguments
setsid bash -c '
  while kill -0 "$1" 2>/dev/null; do sleep 2; done
  [[ -e $2/.running ]] || exit 0
  for ns in "${@:3}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$2"' multihost-watchdog $$ "$dir" "$nsA" "$nsB" "$nsC" "$nsBr" </dev/null >/dev/null 2>&1 &

# ---- the network ---------------------------------------------------------------------------------
say "namespaces $nsA $nsB $nsC and bridge namespace $nsBr"
for ns in "$nsA" "$nsB" "$nsC" "$nsBr"; do ip netns add "$ns"; done
ip -n "$nsBr" link add br0 type bridge
ip -n "$nsBr" link set br0 up
ip -n "$nsBr" link set lo up
for h in A B C; do
  ns=${tag}$h
  addr_var=addr$h
  ip link add "${tag}$h" type veth peer name "${tag}$h-p"
  ip link set "${tag}$h" netns "$ns"
  ip link set "${tag}$h-p" netns "$nsBr"
  ip -n "$ns" link set "${tag}$h" name eth0
  ip -n "$ns" addr add "${!addr_var}/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  ip -n "$nsBr" link set "${tag}$h-p" master br0
  ip -n "$nsBr" link set "${tag}$h-p" up
done

# ---- host A: PostgreSQL and Redis ------------------------------------------------------------------
# rd_pg_start listens on 127.0.0.1 (of host A's namespace) and migrates; then PostgreSQL is told
# to listen on host A's address too (postgresql.auto.conf wins over the redress.conf include)
# and to trust the hosts' subnet, and restarted.
say "host A: PostgreSQL and Redis on $addrA"
ip netns exec "$nsA" bash -c "source '$root/tests/lib/servers.sh' && REDRESS_PG_FSYNC=off rd_pg_start '$dir' 5432" \
  >"$dir/pg-start.log" 2>&1 || fail "PostgreSQL did not start on host A: $(tail -n 5 "$dir/pg-start.log")"
psql_a() { ip netns exec "$nsA" psql -X -q -v ON_ERROR_STOP=1 -At "host=127.0.0.1 port=5432 dbname=redress user=redress" "$@"; }
psql_a -c "ALTER SYSTEM SET listen_addresses = '127.0.0.1,$addrA'"
printf 'host all all 10.77.0.0/24 trust\n' >>"$dir/pg/pg_hba.conf"
ip netns exec "$nsA" bash -c "source '$root/tests/lib/servers.sh' && rd_pg_stop '$dir' && REDRESS_PG_FSYNC=off rd_pg_start '$dir' 5432" \
  >>"$dir/pg-start.log" 2>&1 || fail "PostgreSQL did not restart on host A: $(tail -n 5 "$dir/pg-start.log")"
mkdir -p "$dir/redis"
ip netns exec "$nsA" redis-server --port 6379 --bind "$addrA" 127.0.0.1 --dir "$dir/redis" --save '' \
  --appendonly no --protected-mode no >"$dir/redis.log" 2>&1 &
pid_redis=$!
dsn="host=$addrA port=5432 dbname=redress user=redress"
redis_url=redis://$addrA:6379
for ((i = 0; i < 100; i++)); do
  ip netns exec "$nsB" redis-cli -h "$addrA" ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
ip netns exec "$nsB" redis-cli -h "$addrA" ping 2>/dev/null | grep -q PONG || fail "Redis on host A is not reachable from host B"
ip netns exec "$nsB" psql -X -At "$dsn" -c 'SELECT 1' >/dev/null || fail "PostgreSQL on host A is not reachable from host B"

# The demo configuration, as deploy/local/up.sh loads it: rules, calendars, organisation, agents.
in_a() { ip netns exec "$nsA" "$@"; }
in_a "$ctl" --dsn "$dsn" rules load "$root/deploy/config/rules.default.json" >"$dir/setup.log" 2>&1
in_a "$ctl" --dsn "$dsn" calendar load "$root/deploy/config/calendars.example.json" >>"$dir/setup.log" 2>&1
in_a "$ctl" --dsn "$dsn" org load "$root/deploy/config/org.demo.json" >>"$dir/setup.log" 2>&1
for agent in $(psql_a -c "SELECT id FROM agents WHERE active ORDER BY id"); do
  in_a "$ctl" --dsn "$dsn" agent online "$agent" --ttl 3600 --redis "$redis_url" >>"$dir/setup.log" 2>&1
done

# ---- hosts B and C: one copy of every service each ---------------------------------------------
both() { printf 'tcp://%s:%s,tcp://%s:%s' "$addrB" "$1" "$addrC" "$1"; }
for h in B C; do
  addr_var=addr$h
  a=${!addr_var}
  cat >"$dir/redress-$h.conf" <<EOF
# host $h ($a), written by tests/integration/multihost.sh
[log]
level = info
[pg]
dsn = $dsn
[redis]
url = $redis_url
[intake]
bind = tcp://$a:7401
push_bind = tcp://$a:7402
pub_bind = tcp://$a:7403
http_bind = $a
http_port = 9401
[classifier]
intake_endpoint = $(both 7402)
push_bind = tcp://$a:7412
pub_bind = tcp://$a:7413
http_bind = $a
http_port = 9402
[dispatcher]
classifier_endpoint = $(both 7412)
events_endpoint = $(both 7403)
push_bind = tcp://$a:7422
pub_bind = tcp://$a:7423
http_bind = $a
http_port = 9403
[escalation]
calendar = cn-mainland
events_endpoint = $(both 7403),$(both 7423)
pub_bind = tcp://$a:7433
http_bind = $a
http_port = 9404
[reporting]
calendar = cn-mainland
http_bind = $a
http_port = 9405
EOF
done

start_host() { # start_host B|C: the five services, each healthy before the next
  local h=$1 ns=${tag}$1 addr_var=addr$1 s port pid i
  for s in "${services[@]}"; do
    # No REDRESS_* from the caller's environment (a test harness's DSN) may reach them.
    env -u REDRESS_PG_DSN -u REDRESS_REDIS_URL ip netns exec "$ns" \
      "$build/services/$s/redress-$s" --config "$dir/redress-$h.conf" >"$dir/$s-$h.log" 2>&1 &
    pid=$!
    if [[ $h == B ]]; then pids_b+=("$pid"); else pids_c+=("$pid"); fi
    case $s in intake) port=9401 ;; classifier) port=9402 ;; dispatcher) port=9403 ;; escalation) port=9404 ;; reporting) port=9405 ;; esac
    for ((i = 0; i < 120; i++)); do
      rd_pid_alive "$pid" || fail "redress-$s on host $h exited at start-up"
      ip netns exec "$ns" curl -fsS --max-time 1 "http://${!addr_var}:$port/healthz" >/dev/null 2>&1 && break
      sleep 0.25
    done
    ((i < 120)) || fail "redress-$s on host $h is not healthy after 30 s"
  done
  say "host $h: ${services[*]} up"
}
start_host B
start_host C

metric() { # metric HOST PORT NAME: a counter from a service's /metrics (0 when absent)
  local ns=${tag}$1 addr_var=addr$1 v
  v=$(ip netns exec "$ns" curl -fsS --max-time 2 "http://${!addr_var}:$2/metrics" 2>/dev/null |
    awk -v n="$3" '$1 == n { print $2; exit }')
  printf '%s' "${v:-0}"
}

# ---- the load, and host B killed in the middle ----------------------------------------------------
prefix="mh$$-"
say "load: $events CFPB complaints at $rate/s through both intakes (gateway on host A)"
ip netns exec "$nsA" "$ctl" --endpoint "$(both 7401)" --timeout 120 submit --csv "$csv" --limit "$events" \
  --window 32 --rate "$rate" --prefix "$prefix" >"$dir/load.out" 2>"$dir/load.log" &
pid_load=$!

acked_in_db() { psql_a -c "SELECT count(*) FROM inbound_events WHERE gateway_id = 'redressctl' AND event_id LIKE '$prefix%'"; }
for ((i = 0; i < 600; i++)); do
  n=$(acked_in_db)
  b=$(metric B 9401 redress_intake_events_acked_total)
  c=$(metric C 9401 redress_intake_events_acked_total)
  ((n >= events / 3 && ${b%.*} > 0 && ${c%.*} > 0)) && break
  rd_pid_alive "$pid_load" || fail "the load ended before host B was killed (only $n stored): $(tail -n 5 "$dir/load.log")"
  sleep 0.1
done
((i < 600)) || fail "after 60 s: $n events stored, intake B ACKed $b, intake C ACKed $c; both should have some"
c_before=$c
say "killing every service on host B (SIGKILL) with $n of $events stored; intake B had ACKed $b, intake C $c;" \
  "classifier B had classified $(metric B 9402 redress_classifier_tickets_total)," \
  "dispatcher B assigned $(metric B 9403 redress_dispatcher_assigned_total) and queued $(metric B 9403 redress_dispatcher_queued_total)"
kill -KILL "${pids_b[@]}"
for p in "${pids_b[@]}"; do
  { wait "$p"; } 2>/dev/null || true # reaps it, without bash's "Killed" notice
  rd_pid_alive "$p" && fail "pid $p on host B survived SIGKILL"
done
pids_b=()

load_rc=0
wait "$pid_load" || load_rc=$?
pid_load=''
cat "$dir/load.out" >&2
field() { awk -v k="$1" '$1 == k { print $2; exit }' "$dir/load.out"; }
sent=$(field sent)
acked=$(field acked)
nacked=$(field nacked)
gave_up=$(awk '$1 == "gave" { print $3; exit }' "$dir/load.out")
[[ -n $acked ]] || fail "no summary from the load (exit $load_rc): $(tail -n 5 "$dir/load.log")"
c_after=$(metric C 9401 redress_intake_events_acked_total)

# ---- let host C finish what is in flight ---------------------------------------------------------
T="(SELECT ticket_id FROM inbound_events WHERE gateway_id = 'redressctl' AND event_id LIKE '$prefix%')"
pending_sql="SELECT
  (SELECT count(*) FROM tickets WHERE id IN $T AND state = 'new')
  + (SELECT count(*) FROM tickets t WHERE id IN $T
       AND (t.state IN ('classified', 'returned') OR (t.state = 'assigned' AND t.owner_agent IS NULL))
       AND NOT EXISTS (SELECT 1 FROM dispatch_queue q WHERE q.ticket_id = t.id))
  + (SELECT count(*) FROM sla_queue)
  + (SELECT count(*) FROM reporting.queue)"
for ((i = 0; i < 240; i++)); do
  left=$(psql_a -c "$pending_sql")
  ((left == 0)) && break
  sleep 0.5
done
say "pipeline settled after $((i / 2)) s (left: $left)"

# ---- the checks ------------------------------------------------------------------------------------
q() { psql_a -c "$1"; }
ledger=$(q "SELECT count(*) FROM inbound_events WHERE gateway_id = 'redressctl' AND event_id LIKE '$prefix%'")
ledger_tickets=$(q "SELECT count(DISTINCT ticket_id) FROM inbound_events WHERE gateway_id = 'redressctl' AND event_id LIKE '$prefix%'")
tickets=$(q "SELECT count(*) FROM tickets WHERE id IN $T")
created=$(q "SELECT count(*) FROM ticket_history WHERE kind = 'created' AND gateway_id = 'redressctl' AND event_id LIKE '$prefix%'")
created_tickets=$(q "SELECT count(DISTINCT ticket_id) FROM ticket_history WHERE kind = 'created' AND gateway_id = 'redressctl' AND event_id LIKE '$prefix%'")
all_tickets=$(q "SELECT count(*) FROM tickets")
classified=$(q "SELECT count(*) FROM tickets t JOIN ticket_classifications c ON c.ticket_id = t.id WHERE t.id IN $T AND t.state <> 'new'")
assigned=$(q "SELECT count(*) FROM tickets t WHERE t.id IN $T AND t.owner_agent IS NOT NULL
  AND EXISTS (SELECT 1 FROM ticket_assignments a WHERE a.ticket_id = t.id AND a.ended_at IS NULL)")
queued=$(q "SELECT count(*) FROM tickets t WHERE t.id IN $T AND t.owner_agent IS NULL
  AND EXISTS (SELECT 1 FROM dispatch_queue d WHERE d.ticket_id = t.id)")
open=$(q "SELECT count(*) FROM tickets WHERE id IN $T AND state NOT IN ('resolved', 'closed')")
clocked=$(q "SELECT count(*) FROM tickets t WHERE t.id IN $T AND t.state NOT IN ('resolved', 'closed')
  AND EXISTS (SELECT 1 FROM sla_clocks k WHERE k.ticket_id = t.id AND k.clock = 'resolution' AND k.state = 'running')")
sla_queue=$(q "SELECT count(*) FROM sla_queue")
rep_queue=$(q "SELECT count(*) FROM reporting.queue")
timers=$(ip netns exec "$nsA" redis-cli -h 127.0.0.1 zcard '{esc}:due' 2>/dev/null || echo '?')

cat <<EOF
multihost: counts after host B was killed (events $events)
  load: sent $sent, acked $acked, nacked $nacked, gave up ${gave_up:-?}
  intake C ACKed $c_before before the kill, $c_after at the end
  ledger rows $ledger for $ledger_tickets tickets; tickets $tickets (all tickets in the database: $all_tickets)
  'created' history rows $created for $created_tickets tickets
  classified $classified; assigned $assigned + queued $queued = $((assigned + queued))
  open $open, of them with a running resolution clock $clocked; timers in Redis $timers
  sla_queue $sla_queue, reporting.queue $rep_queue
EOF

bad=0
check() { # check WHAT ACTUAL EXPECTED
  if [[ $2 == "$3" ]]; then
    printf '  ok    %s: %s\n' "$1" "$2"
  else
    printf '  FAIL  %s: %s, expected %s\n' "$1" "$2" "$3"
    bad=1
  fi
}
check "events sent" "$sent" "$events"
check "events ACKed" "${acked%% *}" "$events"
check "events refused" "${nacked%% *}" 0
check "events given up" "${gave_up:-?}" 0
check "ledger rows for the ACKed events" "$ledger" "$events"
check "tickets of those rows (one each)" "$ledger_tickets" "$events"
check "tickets in the database" "$tickets" "$events"
check "'created' history rows (exactly once)" "$created" "$events"
check "tickets with a 'created' row" "$created_tickets" "$events"
check "classified" "$classified" "$events"
check "assigned or queued" "$((assigned + queued))" "$events"
check "open tickets with a running resolution clock" "$clocked" "$open"
check "sla_queue drained" "$sla_queue" 0
check "reporting.queue drained" "$rep_queue" 0
if ((${c_after%.*} > ${c_before%.*})); then
  printf '  ok    intake C ACKed more after the kill: %s -> %s\n' "$c_before" "$c_after"
else
  printf '  FAIL  intake C ACKed nothing after the kill (%s -> %s)\n' "$c_before" "$c_after"
  bad=1
fi
((load_rc == 0)) || {
  printf '  FAIL  the load exited %s\n' "$load_rc"
  bad=1
}
((bad == 0)) || fail "see the FAIL lines above"
say "PASS: host B's services were killed under load; host C carried it, nothing lost or doubled"
