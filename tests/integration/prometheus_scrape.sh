#!/usr/bin/env bash
# tests/integration/prometheus_scrape.sh BUILD_DIR: a real Prometheus (Debian's prometheus package)
# scrapes /metrics of every Redress service, and its HTTP API must show it all: every target in
# /api/v1/targets with health "up", `up` = 1 for each job, at least one redress_<service>_* series
# from each, and the service-specific gauges below at 1 (connected to PostgreSQL, Redis). A
# target Prometheus cannot parse (exposition-format bugs) shows as down with its lastError.
#
# Run by ctest under tests/lib/with-stack.sh (REDRESS_PG_DSN, REDRESS_REDIS_URL, REDRESS_TEST_DIR);
# run by hand it wraps itself in with-stack.sh. Everything (service logs, prometheus.yml, the TSDB)
# lives in a private directory; every port is picked free (tests/lib/servers.sh), so it runs beside
# other tests; what it started is stopped however it ends. It waits (up to
# REDRESS_PROM_WAIT_SECS, default 30) for the targets, but asserts no timing.
#
# Environment: REDRESS_PROMETHEUS_BIN (default /usr/bin/prometheus), REDRESS_PROM_WAIT_SECS.
set -euo pipefail
B=${1:?usage: prometheus_scrape.sh BUILD_DIR}
B=$(cd "$B" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z ${REDRESS_PG_DSN:-} || -z ${REDRESS_REDIS_URL:-} || -z ${REDRESS_TEST_DIR:-} ]]; then
  exec "$ROOT/tests/lib/with-stack.sh" -- "$0" "$B"
fi
# shellcheck source=tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"
# shellcheck source=tests/lib/services.sh
source "$ROOT/tests/lib/services.sh" # pick_port, start_svc, PID, HTTP_PORT

PROMETHEUS=${REDRESS_PROMETHEUS_BIN:-/usr/bin/prometheus}
PY=/usr/bin/python3 # Debian's: has json; the first python3 on PATH may be another one
WAIT_SECS=${REDRESS_PROM_WAIT_SECS:-30}

say() { printf 'prometheus_scrape: %s\n' "$*" >&2; }
die() {
  printf 'prometheus_scrape: error: %s\n' "$*" >&2
  exit 1
}

# The services scraped, in start order (each connects to the ones before it).
SERVICES=(intake classifier dispatcher escalation reporting)

# Service-specific metrics (from services/*/main.c and intake_writer.c) and the value each must
# reach: "SERVICE METRIC VALUE". Every service is also checked for up = 1 and for series named
# redress_<service>_*.
METRIC_CHECKS=(
  "intake redress_intake_db_up 1"
  "classifier redress_classifier_db_up 1"
  "dispatcher redress_dispatcher_db_up 1"
  "dispatcher redress_dispatcher_redis_up 1"
  "escalation redress_escalation_db_up 1"
  "escalation redress_escalation_redis_up 1"
  "reporting redress_reporting_db_up 1"
)

[[ -x $PROMETHEUS ]] ||
  die "$PROMETHEUS not found: install the 'prometheus' package (deploy/local/packages.txt lists it; deploy/local/bootstrap.sh installs it)"
[[ -x $PY ]] || die "$PY not found: install the 'python3' package"
command -v curl >/dev/null 2>&1 || die "curl not found: install the 'curl' package"
for svc in "${SERVICES[@]}"; do
  [[ -x $B/services/$svc/redress-$svc ]] || die "$B/services/$svc/redress-$svc not built"
done

mkdir -p "$REDRESS_TEST_DIR"
T=$(mktemp -d "$REDRESS_TEST_DIR/prom-scrape.XXXXXXXX")
PROM_DIR=$T/prometheus
mkdir -p "$PROM_DIR/data"

# ---- clean-up and post-mortem -------------------------------------------------------------------

PROM_PID=
PROM_PORT=
PROBLEMS=$T/problems.txt
: >"$PROBLEMS"

# shellcheck disable=SC2317  # called from the EXIT trap
post_mortem() {
  local svc
  {
    echo "---- what was still wrong at the last check:"
    cat "$PROBLEMS" 2>/dev/null || true
    if [[ -n $PROM_PORT ]] && curl -fsS --max-time 5 -o "$T/targets.last.json" \
      "http://127.0.0.1:$PROM_PORT/api/v1/targets" 2>/dev/null; then
      echo "---- Prometheus targets (job, scrape URL, health, last error):"
      "$PY" -c '
import json, sys
for t in json.load(open(sys.argv[1]))["data"]["activeTargets"]:
    print("  %-22s %-40s %-8s %s" % (t["labels"].get("job"), t["scrapeUrl"], t["health"], t["lastError"] or "-"))
' "$T/targets.last.json" || true
    fi
    echo "---- last 40 lines of the Prometheus log ($PROM_DIR/prometheus.log):"
    tail -n 40 "$PROM_DIR/prometheus.log" 2>/dev/null || echo "  (none)"
    for svc in "${SERVICES[@]}"; do
      echo "---- last 15 lines of the $svc log (pid ${PID[$svc]:-none}, http port ${HTTP_PORT[$svc]:-none}):"
      tail -n 15 "$T/$svc.log" 2>/dev/null || echo "  (none)"
    done
  } >&2
}

# shellcheck disable=SC2317
cleanup() {
  local rc=$? svc
  trap - EXIT INT TERM HUP
  ((rc == 0)) || post_mortem
  rd_stop_pid "$PROM_PID" 10 || true # no-op without a pid
  for svc in "${SERVICES[@]}"; do
    stop_svc "$svc"
  done
  rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- Prometheus ---------------------------------------------------------------------------------

write_prometheus_yml() {
  local svc
  {
    echo "# Written by tests/integration/prometheus_scrape.sh: one job per Redress service."
    echo "global:"
    echo "  scrape_interval: 1s"
    echo "  scrape_timeout: 1s"
    echo "  evaluation_interval: 1s"
    echo "scrape_configs:"
    for svc in "${SERVICES[@]}"; do
      echo "  - job_name: redress-$svc"
      echo "    metrics_path: /metrics"
      echo "    static_configs:"
      echo "      - targets: ['127.0.0.1:${HTTP_PORT[$svc]}']"
    done
  } >"$PROM_DIR/prometheus.yml"
}

# start_prometheus: on a free port, with its own TSDB; a new port when the one picked is taken
# before Prometheus binds it. Ready when /-/ready answers and /api/v1/status/flags shows our TSDB
# path (so that it is our Prometheus answering, not a stranger on the port).
start_prometheus() {
  local try i path
  for try in 1 2 3 4 5; do
    pick_port PROM_PORT
    : >"$PROM_DIR/prometheus.log"
    (cd "$PROM_DIR" && exec "$PROMETHEUS" --config.file="$PROM_DIR/prometheus.yml" \
      --storage.tsdb.path="$PROM_DIR/data" --web.listen-address="127.0.0.1:$PROM_PORT" \
      --log.level=info </dev/null >>"$PROM_DIR/prometheus.log" 2>&1) &
    PROM_PID=$!
    for ((i = 0; i < 300; i++)); do
      rd_pid_alive "$PROM_PID" || break
      if curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$PROM_PORT/-/ready" 2>/dev/null; then
        path=$(curl -fsS --max-time 5 "http://127.0.0.1:$PROM_PORT/api/v1/status/flags" 2>/dev/null |
          "$PY" -c 'import json, sys; print(json.load(sys.stdin)["data"]["storage.tsdb.path"])' 2>/dev/null || true)
        if [[ $path == "$PROM_DIR/data" ]] && rd_pid_alive "$PROM_PID"; then
          say "prometheus: pid $PROM_PID on 127.0.0.1:$PROM_PORT ($("$PROMETHEUS" --version 2>&1 | head -n 1))"
          return 0
        fi
      fi
      sleep 0.1
    done
    if rd_pid_alive "$PROM_PID"; then
      echo "prometheus: not ready on 127.0.0.1:$PROM_PORT within 30 s" >>"$PROBLEMS"
      return 1
    fi
    wait "$PROM_PID" 2>/dev/null || true
    PROM_PID=
    if ((try < 5)) && grep -qi 'address already in use' "$PROM_DIR/prometheus.log"; then
      say "prometheus: port $PROM_PORT was taken before it could bind (try $try); trying another"
      continue
    fi
    echo "prometheus: exited at start" >>"$PROBLEMS"
    return 1
  done
}

# ---- the checks (Prometheus's HTTP API; JSON read by Debian's python3) --------------------------

# api FILE PATH [QUERY]: GET PATH (with ?query=QUERY, URL-encoded) into FILE.
api() {
  local out=$1 path=$2
  shift 2
  if (($#)); then
    curl -fsS --max-time 5 -G -o "$out" "http://127.0.0.1:$PROM_PORT$path" --data-urlencode "query=$1"
  else
    curl -fsS --max-time 5 -o "$out" "http://127.0.0.1:$PROM_PORT$path"
  fi
}

# check_targets FILE JOB...: exactly one active target per JOB, none else, every one health "up".
check_targets() {
  "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
want = sys.argv[2:]
bad = []
if d.get("status") != "success":
    bad.append("/api/v1/targets: status %r, error %r" % (d.get("status"), d.get("error")))
    targets = []
else:
    targets = d["data"]["activeTargets"]
jobs = {}
for t in targets:
    jobs.setdefault(t["labels"].get("job"), []).append(t)
for j in want:
    ts = jobs.get(j, [])
    if len(ts) != 1:
        bad.append("%s: %d active targets, want 1" % (j, len(ts)))
    for t in ts:
        if t["health"] != "up":
            bad.append("%s: target %s health %r, last error %r" % (j, t["scrapeUrl"], t["health"], t["lastError"]))
for j in sorted(set(jobs) - set(want)):
    bad.append("%s: an active target nobody asked for" % j)
print("\n".join(bad))
sys.exit(1 if bad else 0)
' "$@"
}

# check_vector FILE WANT JOB...: the instant vector in FILE has exactly one sample per JOB, none
# for other jobs, each equal to WANT (a number) or, with WANT ">0", above zero.
check_vector() {
  "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
what, want, jobs = sys.argv[2], sys.argv[3], sys.argv[4:]
bad = []
if d.get("status") != "success" or d["data"]["resultType"] != "vector":
    bad.append("%s: status %r, error %r" % (what, d.get("status"), d.get("error")))
    res = []
else:
    res = d["data"]["result"]
got = {}
for s in res:
    got.setdefault(s["metric"].get("job"), []).append(float(s["value"][1]))
for j in jobs:
    vs = got.get(j, [])
    if len(vs) != 1:
        bad.append("%s: %d samples for job %s, want 1" % (what, len(vs), j))
    elif (want == ">0" and not vs[0] > 0) or (want != ">0" and vs[0] != float(want)):
        bad.append("%s{job=%r} = %g, want %s" % (what, j, vs[0], want))
for j in sorted(set(got) - set(jobs)):
    bad.append("%s: samples for job %s, which is not scraped" % (what, j))
print("\n".join(bad))
sys.exit(1 if bad else 0)
' "$@"
}

# all_checks: every check once; what is wrong goes to $PROBLEMS. 0 when all pass.
all_checks() {
  local jobs=() svc check m v q ok=0
  : >"$PROBLEMS"
  for svc in "${SERVICES[@]}"; do jobs+=("redress-$svc"); done
  api "$T/targets.json" /api/v1/targets 2>>"$PROBLEMS" &&
    check_targets "$T/targets.json" "${jobs[@]}" >>"$PROBLEMS" || ok=1
  api "$T/up.json" /api/v1/query up 2>>"$PROBLEMS" &&
    check_vector "$T/up.json" up 1 "${jobs[@]}" >>"$PROBLEMS" || ok=1
  # What each target gave: samples scraped, and at least one series of its own (redress_<svc>_*).
  api "$T/samples.json" /api/v1/query scrape_samples_scraped 2>>"$PROBLEMS" &&
    check_vector "$T/samples.json" scrape_samples_scraped ">0" "${jobs[@]}" >>"$PROBLEMS" || ok=1
  for svc in "${SERVICES[@]}"; do
    q="count by (job) ({job=\"redress-$svc\", __name__=~\"redress_${svc}_.+\"})"
    api "$T/own.json" /api/v1/query "$q" 2>>"$PROBLEMS" &&
      check_vector "$T/own.json" "count(redress_${svc}_*)" ">0" "redress-$svc" >>"$PROBLEMS" || ok=1
  done
  for check in "${METRIC_CHECKS[@]}"; do
    read -r svc m v <<<"$check"
    [[ -n ${HTTP_PORT[$svc]:-} ]] || continue # a service not in SERVICES
    api "$T/metric.json" /api/v1/query "$m" 2>>"$PROBLEMS" &&
      check_vector "$T/metric.json" "$m" "$v" "redress-$svc" >>"$PROBLEMS" || ok=1
  done
  sed -i '/^$/d' "$PROBLEMS"
  return "$ok"
}

# ---- the test -----------------------------------------------------------------------------------

say "services: ${SERVICES[*]}; build: $B; private directory: $T"
for svc in "${SERVICES[@]}"; do
  start_svc "$svc" || die "$svc did not start (see its log below)"
done
write_prometheus_yml
start_prometheus || die "Prometheus did not start (see its log below)"

start=$SECONDS
deadline=$((SECONDS + WAIT_SECS))
until all_checks; do
  if ((SECONDS >= deadline)); then
    die "after ${WAIT_SECS}s Prometheus still does not see every service up with its metrics (details below)"
  fi
  for svc in "${SERVICES[@]}"; do
    rd_pid_alive "${PID[$svc]}" || die "$svc (pid ${PID[$svc]}) died while being scraped"
  done
  rd_pid_alive "$PROM_PID" || die "Prometheus (pid $PROM_PID) died"
  sleep 0.5
done

"$PY" -c '
import json, sys
for t in json.load(open(sys.argv[1]))["data"]["activeTargets"]:
    print("  %-22s %-36s health=%s last scrape %.1f ms" % (t["labels"]["job"], t["scrapeUrl"], t["health"], t["lastScrapeDuration"] * 1000))
' "$T/targets.json" >&2
say "checked: up, scrape_samples_scraped, redress_<service>_* series; ${METRIC_CHECKS[*]/%/;}"
say "ok: all ${#SERVICES[@]} targets up and scraped after $((SECONDS - start))s"
