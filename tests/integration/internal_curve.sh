#!/usr/bin/env bash
# tests/integration/internal_curve.sh BUILD_DIR: the internal links between the services over CURVE.
#
# The five services run with internal.curve_key_file (one cluster key, made by `redressctl keys
# generate`), once with intake.auth = none and once with intake.auth = curve (then intake's own
# ZAP handler answers for the internal links too). In each run:
#   - complaints go through the fast paths: every ticket is classified and routed, and intake's
#     PUSH and the classifier's PUSH carried tickets, encrypted (with a broken link every ticket
#     would have to be re-driven from PostgreSQL; on a loaded machine a few may be anyway);
#   - a stranger subscribing to intake's PUB gets nothing: in plaintext (refused: not CURVE), and
#     with CURVE and the right server key but its own key pair (refused by ZAP); a subscriber with
#     the cluster key does get the events (so the two refusals are not an accident of timing).
# Run by ctest under tests/lib/with-stack.sh; by hand it wraps itself in it.
set -euo pipefail
B=${1:?usage: internal_curve.sh BUILD_DIR}
B=$(cd "$B" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z ${REDRESS_PG_DSN:-} || -z ${REDRESS_REDIS_URL:-} || -z ${REDRESS_TEST_DIR:-} ]]; then
  exec "$ROOT/tests/lib/with-stack.sh" -- "$0" "$B"
fi
# shellcheck source=tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"
PY=/usr/bin/python3 # Debian's, with python3-zmq
CTL=$B/tools/redressctl
SERVICES=(intake classifier dispatcher escalation reporting)
N=12

say() { printf 'internal_curve: %s\n' "$*" >&2; }
die() {
  printf 'internal_curve: FAIL: %s\n' "$*" >&2
  exit 1
}
"$PY" -c 'import zmq; assert zmq.has("curve")' 2>/dev/null || die "$PY with python3-zmq (and CURVE) is needed"

mkdir -p "$REDRESS_TEST_DIR"
T=$(mktemp -d "$REDRESS_TEST_DIR/internal-curve.XXXXXXXX")
PROBLEMS=$T/problems.txt
: >"$PROBLEMS"
# shellcheck source=tests/lib/services.sh
source "$ROOT/tests/lib/services.sh"

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  ((rc == 0)) || post_mortem
  stop_all_svc
  rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

psqlq() { psql "$REDRESS_PG_DSN" -X -q -tA -v ON_ERROR_STOP=1 -c "$1"; }

"$CTL" keys generate --out "$T/cluster.key" >/dev/null || die "redressctl keys generate failed"
"$CTL" keys generate --out "$T/intake.key" >/dev/null || die "redressctl keys generate failed"
"$CTL" keys generate --out "$T/gateway.key" >/dev/null || die "redressctl keys generate failed"
CLUSTER_PUBLIC=$("$CTL" keys public "$T/cluster.key")
"$CTL" --dsn "$REDRESS_PG_DSN" org load "$ROOT/deploy/config/org.demo.json" >/dev/null || die "org load failed"
"$CTL" --dsn "$REDRESS_PG_DSN" keys register curve-gw "$("$CTL" keys public "$T/gateway.key")" \
  --events '*' --channels '*' >/dev/null || die "keys register failed"

# run AUTH: one round with intake.auth = AUTH
run() {
  local auth=$1 svc prefix=ic-$1-$$ n got
  SVC_EXTRA_ENV=("REDRESS_INTERNAL_CURVE_KEY_FILE=$T/cluster.key")
  if [[ $auth == curve ]]; then
    SVC_EXTRA_ENV+=(REDRESS_INTAKE_AUTH=curve "REDRESS_INTAKE_CURVE_SECRET_KEY_FILE=$T/intake.key")
  fi
  for svc in "${SERVICES[@]}"; do start_svc "$svc" || die "$svc did not start with internal CURVE (auth=$auth)"; done
  local -a client_env=()
  if [[ $auth == curve ]]; then
    client_env=("REDRESS_CURVE_SERVER_KEY=$("$CTL" keys public "$T/intake.key")" "REDRESS_CURVE_CLIENT_KEY_FILE=$T/gateway.key")
  fi

  # three subscribers on intake's PUB while N complaints are submitted
  "$PY" - "${ZMQ[intake_pub]}" "$T/cluster.key" "$CLUSTER_PUBLIC" >"$T/sub-$auth.out" 2>"$T/sub-$auth.err" <<'EOF' &
import sys, time, zmq
ep, keyfile, cluster_public = sys.argv[1], sys.argv[2], sys.argv[3].encode()
secret = next(l.strip() for l in open(keyfile) if l.strip() and not l.startswith("#")).encode()
ctx = zmq.Context()
def sub(curve_secret=None, curve_public=None):
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    if curve_secret:
        s.curve_serverkey = cluster_public
        s.curve_secretkey = curve_secret
        s.curve_publickey = curve_public
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(ep)
    return s
own_public, own_secret = zmq.curve_keypair()
socks = {"plain": sub(), "wrong_key": sub(own_secret, own_public), "cluster_key": sub(secret, cluster_public)}
got = {k: 0 for k in socks}
poller = zmq.Poller()
for s in socks.values():
    poller.register(s, zmq.POLLIN)
print("ready", flush=True)
deadline = time.time() + 12
while time.time() < deadline:
    for s, _ in poller.poll(200):
        for k, v in socks.items():
            if v is s:
                s.recv()
                got[k] += 1
print(" ".join("%s=%d" % kv for kv in got.items()), flush=True)
EOF
  local sub_pid=$!
  for ((i = 0; i < 50; i++)); do grep -q ready "$T/sub-$auth.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1 # subscriptions travel to the publisher
  for ((n = 1; n <= N; n++)); do
    env "${client_env[@]}" "$CTL" --endpoint "${ZMQ[intake_router]}" --gateway curve-gw submit --channel web --customer "IC-$auth-$n" \
      --subject "internal curve $auth $n" --body "内部链路加密测试 $n" --event-id "$prefix-$n" >/dev/null ||
      die "submit $n failed (auth=$auth)"
  done
  wait "$sub_pid" || die "the subscribers failed: $(cat "$T/sub-$auth.err")"
  got=$(tail -n 1 "$T/sub-$auth.out")
  say "auth=$auth: intake's PUB delivered: $got"
  [[ $got =~ plain=0\  ]] || die "a plaintext subscriber got events from intake's PUB: $got"
  [[ $got =~ wrong_key=0\  ]] || die "a subscriber with a key other than the cluster key got events: $got"
  [[ $got =~ cluster_key=([0-9]+) ]] && ((BASH_REMATCH[1] >= N)) ||
    die "the subscriber with the cluster key got fewer than $N events: $got (is the PUB link working?)"

  # the fast paths carried every ticket
  local deadline=$((SECONDS + 60)) done_
  until [[ $(psqlq "SELECT count(*) FROM inbound_events i JOIN tickets t ON t.id = i.ticket_id
                    WHERE i.event_id LIKE '$prefix-%' AND (t.owner_agent IS NOT NULL OR EXISTS
                    (SELECT 1 FROM dispatch_queue q WHERE q.ticket_id = t.id))") == "$N" ]]; do
    ((SECONDS < deadline)) || die "the $N tickets were not all routed within 60 s (auth=$auth)"
    sleep 0.3
  done
  local cr dr
  cr=$(svc_metric classifier redress_classifier_redriven_total)
  dr=$(svc_metric dispatcher redress_dispatcher_redriven_total)
  # A ticket the fast path has not delivered within redrive_min_age_ms (1 s) is taken by the
  # re-drive: on a loaded machine a few may be. A broken link would leave all N to the re-drive.
  [[ ${cr:-x} =~ ^[0-9]+$ && ${dr:-x} =~ ^[0-9]+$ ]] || die "cannot read the re-drive counters (${cr:-?}, ${dr:-?})"
  ((cr < N && dr < N)) ||
    die "every ticket was re-driven from PostgreSQL (classifier $cr, dispatcher $dr of $N): an internal PUSH link carried nothing"
  grep -h "internal peer refused" "$T/intake.log" >/dev/null || die "intake did not log the refused internal peer"
  say "ok (auth=$auth): $N complaints classified and routed, $((N - cr)) and $((N - dr)) of them through the encrypted fast paths of intake and the classifier; strangers refused"
  stop_all_svc
}

run none
run curve
say "ok: internal links over CURVE, with intake.auth none and curve"
