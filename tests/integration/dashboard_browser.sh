#!/usr/bin/env bash
# tests/integration/dashboard_browser.sh BUILD_DIR: the reporting dashboard in a real browser.
#
# Starts the built redress-reporting on a free port against the private PostgreSQL of
# tests/lib/with-stack.sh, loads deterministic tickets by SQL (dashboard_data.sql: five
# departments, one named with HTML metacharacters, twelve agents, 1,200 tickets over 45 days with
# resolutions, return visits, repeats, SLA clocks met and breached), waits until the service has
# applied reporting.queue (every ticket has its facts), then renders the pages with Debian's
# headless Chromium (--dump-dom) and compares every number the page carries in data-* attributes,
# and the text shown beside it, with the same numbers computed from the RAW tables
# (dashboard_check.py): the overview, two department drill-downs (one with an agent who has no
# tickets, one whose names need escaping), an explicit 10-day period, a 366-day period, and each
# chart of /dashboard.svg as a well-formed SVG document. Also: bad dates -> 400, an unknown
# department -> 404, /healthz and /metrics still served, nothing loaded from outside.
#
# Screenshots (1400x2000) of the overview and of one department are kept, with the DOMs, in
# REDRESS_DASHBOARD_OUT (ctest sets it to the build's tests/integration; default: the current
# directory): dashboard.png, dashboard-department.png, dashboard*.html. Their paths are printed.
#
# Run by ctest under tests/lib/with-stack.sh (REDRESS_PG_DSN, REDRESS_TEST_DIR); run by hand it
# wraps itself in with-stack.sh. Timing is printed, never asserted.
#
# Environment: REDRESS_CHROMIUM_BIN (default /usr/bin/chromium), REDRESS_DASHBOARD_OUT,
# REDRESS_DASHBOARD_WAIT_SECS (how long the queue may take, default 600: a few seconds on an idle
# machine, minutes on a busy one).
set -euo pipefail
B=${1:?usage: dashboard_browser.sh BUILD_DIR}
B=$(cd "$B" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/integration
if [[ -z ${REDRESS_PG_DSN:-} || -z ${REDRESS_TEST_DIR:-} ]]; then
  exec "$ROOT/tests/lib/with-stack.sh" --no-redis -- "$0" "$B"
fi
# shellcheck source=tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"

CHROMIUM=${REDRESS_CHROMIUM_BIN:-/usr/bin/chromium}
PY=/usr/bin/python3 # Debian's (html.parser, json, xml): the first python3 on PATH may be another
BIN=$B/services/reporting/redress-reporting
OUT=${REDRESS_DASHBOARD_OUT:-$PWD}
WAIT_SECS=${REDRESS_DASHBOARD_WAIT_SECS:-600}

say() { printf 'dashboard_browser: %s\n' "$*" >&2; }
die() {
  printf 'dashboard_browser: error: %s\n' "$*" >&2
  exit 1
}

[[ -x $BIN ]] || die "$BIN not built"
[[ -x $CHROMIUM ]] ||
  die "$CHROMIUM not found: install the 'chromium' package (deploy/local/packages.txt lists it; deploy/local/bootstrap.sh installs it)"
[[ -x $PY ]] || die "$PY not found: install the 'python3' package"
command -v curl >/dev/null 2>&1 || die "curl not found: install the 'curl' package"
command -v psql >/dev/null 2>&1 || die "psql not found: install the 'postgresql-client' package"
mkdir -p "$OUT" "$REDRESS_TEST_DIR"
OUT=$(cd "$OUT" && pwd)
T=$(mktemp -d "$REDRESS_TEST_DIR/dashboard.XXXXXXXX")
PSQL=(psql -XAtq -v ON_ERROR_STOP=1 "$REDRESS_PG_DSN")

PID=
PORT=
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if ((rc != 0)); then
    {
      echo "---- last 30 lines of the redress-reporting log (pid ${PID:-none}, port ${PORT:-none}):"
      tail -n 30 "$T/reporting.log" 2>/dev/null || echo "  (none)"
      echo "---- last 10 lines of the Chromium log:"
      tail -n 10 "$T/chromium.log" 2>/dev/null || echo "  (none)"
    } >&2
  fi
  rd_stop_pid "$PID" 15 || true # no-op without a pid
  rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the service -----------------------------------------------------------------------------------

# Starts redress-reporting on a free port; a new port when the one picked is taken before it binds.
start_reporting() {
  local try i code
  for try in 1 2 3 4 5; do
    PORT=$(rd_free_port)
    : >"$T/reporting.log"
    env REDRESS_REPORTING_HTTP_BIND=127.0.0.1 REDRESS_REPORTING_HTTP_PORT="$PORT" REDRESS_REPORTING_POLL_MS=20 \
      "$BIN" </dev/null >>"$T/reporting.log" 2>&1 &
    PID=$!
    for ((i = 0; i < 300; i++)); do
      rd_pid_alive "$PID" || break
      code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/healthz" || true)
      if [[ $code =~ ^[1-5][0-9][0-9]$ ]] && rd_pid_alive "$PID"; then
        say "redress-reporting: pid $PID, http://127.0.0.1:$PORT/ (/healthz: $code)"
        return 0
      fi
      sleep 0.1
    done
    rd_pid_alive "$PID" && die "redress-reporting: http://127.0.0.1:$PORT/healthz did not answer within 30 s"
    wait "$PID" 2>/dev/null || true
    PID=
    if ((try < 5)) && grep -qiE 'cannot (bind|listen)|address already in use' "$T/reporting.log"; then
      say "port $PORT was taken before redress-reporting could bind it (try $try); trying another"
      continue
    fi
    die "redress-reporting exited at start"
  done
}

start_reporting
URL=http://127.0.0.1:$PORT

# ---- the data -----------------------------------------------------------------------------------------

"${PSQL[@]}" -f "$HERE/dashboard_data.sql" >/dev/null
N=$("${PSQL[@]}" -c "SELECT count(*) FROM tickets")
say "loaded $N tickets ($HERE/dashboard_data.sql); waiting for redress-reporting to apply reporting.queue"
start=$SECONDS
until [[ $("${PSQL[@]}" -c "SELECT (SELECT count(*) FROM reporting.queue) = 0
                               AND (SELECT count(*) FROM reporting.ticket_facts) = $N") == t ]]; do
  ((SECONDS - start < WAIT_SECS)) || die "after $WAIT_SECS s: $("${PSQL[@]}" -c "SELECT count(*) FROM reporting.queue") queued," \
    "$("${PSQL[@]}" -c "SELECT count(*) FROM reporting.ticket_facts") of $N tickets with facts"
  rd_pid_alive "$PID" || die "redress-reporting died"
  sleep 0.2
done
say "queue applied after $((SECONDS - start)) s: $N facts, $("${PSQL[@]}" -c "SELECT count(*) FROM reporting.rollup_day") rollup_day rows"
read -r TODAY D20 D11 D365 < <("${PSQL[@]}" -F ' ' -c "SELECT t, t - 20, t - 11, t - 365
                                   FROM (SELECT (now() AT TIME ZONE time_zone)::date AS t FROM reporting.settings) x")

# ---- the browser ---------------------------------------------------------------------------------------

browser() {
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --no-default-browser-check --disable-extensions --disable-background-networking --disable-sync \
    --disable-component-update --user-data-dir="$T/chrome" "$@" 2>>"$T/chromium.log"
}

FAILED=0
# page NAME PATH: the DOM of URL/PATH as Chromium rendered it, checked against the database.
page() {
  local path=$2 f=$OUT/$1.html
  browser --dump-dom "$URL$path" >"$f" || die "chromium --dump-dom $URL$path failed (exit $?)"
  grep -q 'data-page=' "$f" || die "the DOM of $URL$path has no dashboard page in it ($f)"
  REDRESS_PG_DSN=$REDRESS_PG_DSN "$PY" "$HERE/dashboard_check.py" page "$f" || FAILED=1
}

# status PATH WANT [TEXT]: GET answers WANT (and its body contains TEXT).
status() {
  local path=$1 want=$2 text=${3:-} code
  code=$(curl -s -o "$T/body" -w '%{http_code}' --max-time 30 "$URL$path")
  if [[ $code != "$want" ]]; then
    echo "GET $path: HTTP $code, want $want" >&2
    FAILED=1
  elif [[ -n $text ]] && ! grep -qF -- "$text" "$T/body"; then
    echo "GET $path: HTTP $code but the body does not say '$text': $(head -c 300 "$T/body")" >&2
    FAILED=1
  fi
}

page dashboard "/"
page dashboard-department "/department?id=south"
page dashboard-escaping "/department?id=rnd"
page dashboard-period "/?from=$D20&to=$D11"
grep -q "data-from=\"$D20\" data-to=\"$D11\"" "$OUT/dashboard-period.html" ||
  { echo "/?from=$D20&to=$D11: the page is not for that period" >&2; FAILED=1; }
page dashboard-year "/?from=$D365&to=$TODAY"

for q in "" "&department=north"; do
  for chart in volume sla backlog categories repeat; do
    type=$(curl -s -o "$T/$chart.svg" -w '%{content_type}' --max-time 30 "$URL/dashboard.svg?chart=$chart$q")
    [[ $type == image/svg+xml* ]] || { echo "/dashboard.svg?chart=$chart$q: Content-Type '$type'" >&2; FAILED=1; }
    REDRESS_PG_DSN=$REDRESS_PG_DSN "$PY" "$HERE/dashboard_check.py" svg "$T/$chart.svg" "$chart" || FAILED=1
  done
done

status "/?from=2026-02-30" 400 "is not a date"
status "/?from=2026-11-10&to=2026-11-01" 400 "is after"
status "/?from=$D365&to=$(date -d "$TODAY + 1 day" +%F)" 400 "at most 366"
status "/?from=%ZZ" 400 "badly encoded"
status "/department" 400 "which department"
status "/department?id=no-such-unit" 404 "no department"
status "/dashboard.svg?chart=pie" 400 "volume, sla, backlog, categories, repeat"
status "/no-such-page" 404
status "/healthz" 200
status "/metrics" 200 "redress_reporting_dashboard_requests_total"

# ---- screenshots and timing ---------------------------------------------------------------------------

shot() { # FILE PATH
  rm -f "$1"
  browser --window-size=1400,2000 --screenshot="$1" "$URL$2" >/dev/null || die "chromium --screenshot $URL$2 failed"
  [[ -s $1 && $(head -c 8 "$1" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]] || die "$1 is not a PNG"
}
shot "$OUT/dashboard.png" "/"
shot "$OUT/dashboard-department.png" "/department?id=south"
say "screenshot: $OUT/dashboard.png"
say "screenshot: $OUT/dashboard-department.png"
for p in "/" "/department?id=south" "/?from=$D365&to=$TODAY" "/dashboard.svg?chart=volume"; do
  say "$(curl -s -o /dev/null -w '%{time_total}' --max-time 30 "$URL$p" | awk '{ printf "%.1f ms", $1 * 1000 }') $p"
done

((FAILED == 0)) || die "the dashboard does not agree with the database (see above)"
say "ok: every number on every page and chart agrees with the raw tables"
