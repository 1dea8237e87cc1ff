#!/usr/bin/env bash
# bench/reporting.sh: dashboard queries from the reporting rollups against the same KPIs computed
# from the raw tables, and how many events per second rollup upkeep sustains, on a history of
# 10,000,000 tickets. See bench/README.md ("Reporting").
#
# One run, on a private PostgreSQL in a temporary directory (tests/lib/servers.sh), tuned for the
# bench (shared_buffers, WAL; printed) and with every migration applied:
#   1. raw history (measured, not a target): N tickets over 24 months, by SQL (generate_series),
#      with their customers, classifications, lifecycle rows in ticket_history, SLA clocks and
#      escalations; the queue triggers are disabled meanwhile (nothing is queued);
#   2. facts and rollups for that history, set-based (measured, not a target): ticket_facts from
#      reporting.fact_source(), the three rollups by summing reporting.contrib() over the facts;
#      VACUUM (ANALYZE); then the server is restarted with production-like WAL settings;
#   3. upkeep (target): a fresh stream of lifecycles on top (new tickets: created, classify,
#      assign, accept, reply, resolve, close, return visit, their SLA events; and old open
#      tickets resolved and closed), applied stage by stage with the triggers on, each stage
#      drained by K consumers calling reporting.apply_queue(part, batch) as the reporting service
#      does. events/s = queued events / drain time;
#   4. dashboard (target): each dashboard query timed from the rollups (p50, max over R runs) and
#      the same KPI from the raw tables (median of r runs), the ratio, and whether the two answers
#      are equal (MATCH/MISMATCH, both in one snapshot).
# It prints figures and, beside each target, PASS or SHORT; it never fails on timing. It exits
# non-zero only when something did not work (a server that did not start, a query that failed,
# a queue that did not drain, not enough disk).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<'EOF'
Usage: bench/reporting.sh [options]

Benchmarks the reporting rollups (deploy/sql/0006_reporting.sql) on a private PostgreSQL
(see bench/README.md, "Reporting"). Needs the postgresql server package only.

Options (each also settable by the environment variable in brackets):
  --tickets N          tickets of history                                [BENCH_TICKETS=10000000]
  --months M           months the history spans, ending now              [BENCH_MONTHS=24]
  --customers C        customers (default: N / 5, at least 1000)         [BENCH_CUSTOMERS]
  --stream-tickets S   new tickets whose lifecycles make the upkeep stream [BENCH_STREAM=100000]
  --consumers K        queue consumers draining each stage              [BENCH_CONSUMERS=nproc]
  --drain service|psql who drains the queue: K redress-reporting processes (the default when
                       REDRESS_BUILD_DIR has it) or K psql sessions looping over
                       reporting.apply_queue() as the service does          [BENCH_DRAIN]
  --batch B            events per reporting.apply_queue call             [BENCH_BATCH=5000]
  --runs R             timed runs of each rollup query (after one warm-up) [BENCH_RUNS=20]
  --raw-runs r         timed runs of each raw-table query                [BENCH_RAW_RUNS=3]
  --workers W          parallel sessions for the history load and builds [BENCH_WORKERS=nproc]
  --chunk C            tickets per load/fact chunk                       [BENCH_CHUNK=1000000]
  --shared-buffers SZ  PostgreSQL shared_buffers                         [BENCH_SHARED_BUFFERS=2GB]
  --fsync on|off       PostgreSQL fsync (default on, as the other benches) [REDRESS_PG_FSYNC=on]
  --dir DIR            where the temporary directory goes (default $TMPDIR or /tmp)
  --keep               keep the temporary directory (database, logs, query outputs)
  --force              run even when the disk space check says it will not fit
  -h, --help           this text

Environment:
  REDRESS_BUILD_DIR        the build whose services/reporting/redress-reporting drains the queue
                           (default ./build, relative to the repository; copied at start)
  REDRESS_REPORTING_*      any reporting setting for those processes (the script sets pg.dsn,
                           http_port, batch and poll_ms 20)

Output: the figures, the targets with PASS/SHORT, then one line 'RESULT key=value ...'.
EOF
}

STOP=0 IN_READ=0
die() {
  ((STOP == 0)) || exit "$STOP"
  printf 'bench/reporting.sh: error: %s\n' "$*" >&2
  exit 1
}

NPROC=$(nproc)
TICKETS=${BENCH_TICKETS:-10000000}
MONTHS=${BENCH_MONTHS:-24}
CUSTOMERS=${BENCH_CUSTOMERS:-}
STREAM=${BENCH_STREAM:-100000}
CONSUMERS=${BENCH_CONSUMERS:-$NPROC}
DRAIN=${BENCH_DRAIN:-}
BATCH=${BENCH_BATCH:-5000}
RUNS=${BENCH_RUNS:-20}
RAW_RUNS=${BENCH_RAW_RUNS:-3}
WORKERS=${BENCH_WORKERS:-$NPROC}
CHUNK=${BENCH_CHUNK:-1000000}
SHARED_BUFFERS=${BENCH_SHARED_BUFFERS:-2GB}
BASEDIR=${TMPDIR:-/tmp}
KEEP=0 FORCE=0
need() { (($# >= 2)) || die "$1 needs a value (try --help)"; }
while (($#)); do
  case $1 in
    --tickets) need "$@"; TICKETS=$2; shift 2 ;;
    --months) need "$@"; MONTHS=$2; shift 2 ;;
    --customers) need "$@"; CUSTOMERS=$2; shift 2 ;;
    --stream-tickets) need "$@"; STREAM=$2; shift 2 ;;
    --consumers) need "$@"; CONSUMERS=$2; shift 2 ;;
    --drain) need "$@"; DRAIN=$2; shift 2 ;;
    --batch) need "$@"; BATCH=$2; shift 2 ;;
    --runs) need "$@"; RUNS=$2; shift 2 ;;
    --raw-runs) need "$@"; RAW_RUNS=$2; shift 2 ;;
    --workers) need "$@"; WORKERS=$2; shift 2 ;;
    --chunk) need "$@"; CHUNK=$2; shift 2 ;;
    --shared-buffers) need "$@"; SHARED_BUFFERS=$2; shift 2 ;;
    --fsync) need "$@"; export REDRESS_PG_FSYNC=$2; shift 2 ;;
    --dir) need "$@"; BASEDIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --force) FORCE=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
[[ -n $CUSTOMERS ]] || CUSTOMERS=$((TICKETS / 5 > 1000 ? TICKETS / 5 : 1000))
for v in TICKETS MONTHS CUSTOMERS STREAM CONSUMERS BATCH RUNS RAW_RUNS WORKERS CHUNK; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "${v,,} must be a positive integer, not '${!v}'"
done
((TICKETS >= 10000 && TICKETS <= 100000000)) || die "--tickets: 10000 .. 100000000"
((MONTHS >= 2 && MONTHS <= 120)) || die "--months: 2 .. 120"
((STREAM <= TICKETS)) || die "--stream-tickets: at most --tickets"
((CONSUMERS <= 8)) || die "--consumers: at most 8 (the queue has 8 partitions)"
((WORKERS <= 16)) || die "--workers: at most 16"
[[ $SHARED_BUFFERS =~ ^[0-9]+(MB|GB)$ ]] || die "--shared-buffers: like 512MB or 2GB, not '$SHARED_BUFFERS'"
case ${REDRESS_PG_FSYNC:-on} in on | off) ;; *) die "--fsync: on or off, not '$REDRESS_PG_FSYNC'" ;; esac
[[ -d $BASEDIR ]] || die "--dir: no such directory: $BASEDIR"
BUILD=${REDRESS_BUILD_DIR:-build}
[[ $BUILD == /* ]] || BUILD=$ROOT/$BUILD
SVC_SRC=$BUILD/services/reporting/redress-reporting
if [[ -z $DRAIN ]]; then
  if [[ -x $SVC_SRC ]]; then DRAIN=service; else DRAIN=psql; fi
fi
case $DRAIN in
  service) [[ -x $SVC_SRC ]] || die "--drain service: $SVC_SRC is missing (build it, or set REDRESS_BUILD_DIR, or --drain psql)" ;;
  psql) ;;
  *) die "--drain: service or psql, not '$DRAIN'" ;;
esac

# shellcheck source=../tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"
PGBIN=$(rd_pg_bindir)

# ---- disk space ----------------------------------------------------------------------------------
# What one ticket of history costs on disk, everything included (raw tables and their indexes,
# facts, the three rollups and their indexes): 7,300 bytes measured with this script's data at
# 5,000,000 tickets over 12 months (the density of 10,000,000 over 24); plus WAL (max_wal_size)
# and room for sorts. Refuse to fill a shared disk.
BYTES_PER_TICKET=${BENCH_BYTES_PER_TICKET:-7500}
need_gb=$(((TICKETS * BYTES_PER_TICKET + 12 * 1024 * 1024 * 1024) / 1024 / 1024 / 1024))
avail_gb=$(($(df -Pk "$BASEDIR" | awk 'NR == 2 { print $4 }') / 1024 / 1024))
if ((need_gb + 10 > avail_gb)); then
  ((FORCE)) || die "about $need_gb GiB needed in $BASEDIR for $TICKETS tickets, $avail_gb GiB free (10 GiB are kept free): use --dir elsewhere, fewer --tickets, or --force"
  printf 'warning: about %s GiB needed, %s GiB free; going on (--force)\n' "$need_gb" "$avail_gb" >&2
fi

WORK=$(mktemp -d "$BASEDIR/redress-reporting-bench.XXXXXX")
chmod 755 "$WORK"
BGPIDS=() SVC_PIDS=()

stop_svc() {
  local p
  for p in "${SVC_PIDS[@]}"; do rd_stop_pid "$p" 20 || true; done
  SVC_PIDS=()
}
stop_bg() {
  local p
  for p in "${BGPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${BGPIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  BGPIDS=()
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_bg
  stop_svc
  rd_pg_stop "$WORK" || true
  if ((KEEP)); then
    printf 'kept %s (pg/log/postgresql.log, *.log, q/ query outputs)\n' "$WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
# Bash 5.2 can crash when a trap calls exit while the read builtin waits with -t (snooze below):
# there the signal only sets STOP, and after_read exits once the read is over.
on_signal() {
  STOP=$1
  printf 'bench/reporting.sh: stopped by SIG%s at %s\n' "$(case $1 in 130) echo INT ;; 129) echo HUP ;; *) echo TERM ;; esac)" "$(date -u +%H:%M:%SZ)" >&2
  ((IN_READ)) || exit "$1"
}
after_read() {
  IN_READ=0
  ((STOP == 0)) || exit "$STOP"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP
exec {SNOOZE_FD}<> <(:)
snooze() {
  IN_READ=1
  read -r -t "$1" -u "$SNOOZE_FD" _ || true
  after_read
}

say() { printf '%s\n' "$*"; }
hr() {
  local l
  read -r l _ </proc/loadavg
  printf -- '---- %s %s (load %s, %s)\n' "$*" "$(printf '%*s' $((60 - ${#1})) '' | tr ' ' -)" "$l" "$(date -u +%H:%M:%SZ)"
}
now_ms() { local t=${EPOCHREALTIME/./}; printf '%s\n' "${t:0:-3}"; }
secs_since() { awk -v a="$EPOCHREALTIME" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
fdiv() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b > 0 ? a / b : 0) }'; }
thousands() { printf "%'d" "$1" 2>/dev/null || printf '%d' "$1"; }
gib() { awk -v b="$1" 'BEGIN { printf "%.2f GiB", b / 1073741824 }'; }

psql_() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$REDRESS_PG_DSN" "$@"; }
sql() { psql_ -tA -c "$1"; }
# sqlv VAR=VALUE... <<'SQL': a script from stdin with psql variables (:name, :'name').
sqlv() {
  local a=() kv
  for kv in "$@"; do a+=(-v "$kv"); done
  psql_ -tA "${a[@]}"
}

pg_start() {
  rd_pg_start "$WORK" 2>>"$WORK/pg-start.log" || {
    cat "$WORK/pg-start.log" >&2
    die "could not start PostgreSQL"
  }
  PG_PID=$(head -n 1 "$WORK/pg/postmaster.pid")
}
pg_restart() {
  sql "CHECKPOINT" >/dev/null # a fast shutdown then has little to write
  rd_pg_stop "$WORK" || die "could not stop PostgreSQL"
  pg_start
}

# ---- CPU accounting (as bench/escalation.sh) -----------------------------------------------------
TICKS=$(getconf CLK_TCK)
proc_ticks() { (($#)) || { echo 0; return; }; { cat "$@" 2>/dev/null || true; } | awk '{ sub(/.*\) /, ""); t += $12 + $13 } END { print t + 0 }'; }
# cpu_snap VAR: "machine postgres steal seconds": busy clock ticks of all CPUs, of PostgreSQL (the
# postmaster, its live children, and the children it reaped: backends that exited), the ticks the
# hypervisor gave our CPUs to others, and when /proc/stat was read.
cpu_snap() {
  local machine steal pg pids p t=$EPOCHREALTIME
  read -r machine steal < <(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $9 }' /proc/stat)
  mapfile -t pids < <(pgrep -P "$PG_PID" | sed 's|.*|/proc/&/stat|')
  pg=$(($(awk '{ sub(/.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$PG_PID/stat") + $(proc_ticks "${pids[@]}")))
  pids=()
  for p in "${SVC_PIDS[@]}"; do pids+=("/proc/$p/stat"); done
  printf -v "$1" '%s %s %s %s %s' "$machine" "$pg" "$steal" "$t" "$(proc_ticks "${pids[@]}")"
}
# cpu_add ACC A B: ACC += B - A (field-wise)
cpu_add() {
  local -n acc=$1
  acc=$(awk -v a="$2" -v b="$3" -v c="${acc:-0 0 0 0 0}" 'BEGIN { split(a, x, " "); split(b, y, " "); split(c, z, " ")
    d = y[2] - x[2]; if (d < 0) d = 0
    printf "%d %d %d %.3f %d", z[1] + y[1] - x[1], z[2] + d, z[3] + y[3] - x[3], z[4] + y[4] - x[4], z[5] + y[5] - x[5] }')
}
cpu_line() { # DELTA
  awk -v d="$1" -v k="$TICKS" -v n="$NPROC" 'BEGIN {
    split(d, x, " "); m = x[1]; p = x[2]; st = x[3]; secs = x[4]; sv = x[5]; o = m - p - sv; if (o < 0) o = 0
    f = (secs > 0 ? 100 / (secs * k) : 0)
    printf "CPU over %.1f s (%% of one CPU, %d CPUs): PostgreSQL %.0f%%, redress-reporting %.0f%%, anything else %.0f%%; machine busy %.0f%%, steal %.0f%%", secs, n, p * f, sv * f, o * f, m * f / n, st * f / n }'
}
cpu_secs_pg() { awk -v d="$1" -v k="$TICKS" 'BEGIN { split(d, x, " "); printf "%.2f", x[2] / k }'; }

# ---- start -----------------------------------------------------------------------------------------

pg_start
[[ $(sql "SELECT to_regclass('reporting.ticket_facts') IS NOT NULL") == t ]] ||
  die "the database has no reporting.ticket_facts: deploy/sql/0006_reporting.sql was not applied"
# Bench settings: a bigger cache and WAL than tests/lib/servers.sh gives (postgresql.auto.conf is
# read after its redress.conf). While the history is prepared, wal_level=minimal lets the rollup
# build (TRUNCATE and INSERT in one transaction) skip WAL, and autovacuum waits for the explicit
# VACUUM; both are back to PostgreSQL's defaults (replica, on) before anything is measured.
sql "ALTER SYSTEM SET shared_buffers = '$SHARED_BUFFERS'" >/dev/null
sql "ALTER SYSTEM SET max_wal_size = '8GB'" >/dev/null
sql "ALTER SYSTEM SET checkpoint_timeout = '30min'" >/dev/null
sql "ALTER SYSTEM SET wal_level = 'minimal'" >/dev/null
sql "ALTER SYSTEM SET max_wal_senders = 0" >/dev/null
sql "ALTER SYSTEM SET autovacuum = off" >/dev/null
pg_restart

cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
read -r load1 _ </proc/loadavg
TZ_REP=$(sql "SELECT time_zone FROM reporting.settings")
hr "configuration"
say "date         : $(date -u +%Y-%m-%dT%H:%M:%SZ)"
say "machine      : $NPROC CPUs ($cpu_model), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r); $avail_gb GiB free in $BASEDIR"
say "load average : $load1 at start$(awk -v l="$load1" 'BEGIN { if (l > 0.5) print "  (something else is running: expect noise)" }')"
say "PostgreSQL   : $(sql 'SHOW server_version') in $WORK/pg; $(sql "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'work_mem', 'max_parallel_workers_per_gather', 'effective_cache_size')")"
say "               while preparing: wal_level=minimal, autovacuum=off; from the upkeep on: wal_level=replica, autovacuum=on (the defaults)"
say "history      : $(thousands "$TICKETS") tickets over $MONTHS months ending now, $(thousands "$CUSTOMERS") customers; reporting time zone $TZ_REP, calendar time (no business calendar)"
say "schema       : deploy/sql/0006_reporting.sql md5 $(md5sum "$ROOT/deploy/sql/0006_reporting.sql" | cut -c1-12)$(cd "$ROOT" && git diff --quiet HEAD -- deploy/sql 2>/dev/null && echo " (as committed, $(git log -1 --format=%h -- deploy/sql))" || echo " (the working tree: differs from the last commit $(cd "$ROOT" && git log -1 --format=%h -- deploy/sql 2>/dev/null))")"
say "upkeep       : $(thousands "$STREAM") new tickets' lifecycles + $(thousands $((STREAM / 5))) old open tickets resolved; drained by $CONSUMERS $([[ $DRAIN == service ]] && echo "redress-reporting processes ($SVC_SRC)" || echo "psql sessions") calling apply_queue(part, $BATCH)"
say "dashboard    : $RUNS runs per rollup query (after one warm-up), $RAW_RUNS per raw-table query"

# ---- the bench's own SQL (schema bench: generator, loader, builders, drain, stream) --------------

sqlv >/dev/null <<'SQL'
CREATE SCHEMA bench;

-- Ticket g's attributes and planned lifecycle (instants; NULL = not planned). Deterministic where
-- another ticket refers to it (its id, its customer); the rest is drawn with random().
--  business types: complaint 35%, consultation 25%, fault_repair 20%, service_application 10%,
--    suggestion 5%, report 3%, praise 2%; categories: 40, 2..10 per type, skewed (u^2);
--  channels: hotline 50%, web 12%, app 15%, mayor_hotline 12%, social_media 6%, email 5%;
--  regions R01..R20 skewed (u^1.6); department D01..D10: the region's (85%) or any; team
--    <dept>-a (complaint, report, praise), -b (fault_repair, service_application),
--    -c (consultation, suggestion); 5..9 agents per team (210);
--  severity major 5%; repeats 8% (of an earlier ticket of the same customer, up to ~100,000
--    tickets before), duplicates 1% (of the ticket just before);
--  80% planned resolved (5% of all reopened once and resolved again), 60% closed, 30% with a
--    return visit (satisfaction 1..5: 6/7/12/30/45%); the open 20%: new 1%, classified 2%,
--    assigned 10%, accepted 15%, in_progress 42%, waiting_customer 30%;
--  delays: classify 5-60 s, assign 10 s-10 min, accept 1-26 min (fault_repair 0.5-4.5 min;
--    5%/3% late), reply exp(mean 2 h), resolve +5 min + exp(mean 8 h), reopen 1-49 h later,
--    close 1-72 h after resolving, return visit 1-48 h after closing or resolving.
CREATE FUNCTION bench.gen(lo bigint, hi bigint, n bigint, t0 timestamptz, span_s double precision, ncust bigint)
RETURNS TABLE (g bigint, id uuid, customer_id uuid, created_at timestamptz, bt text, category text, channel text,
               region text, dept text, team text, agent text, severity text, priority smallint,
               repeat_of uuid, duplicate_of uuid, open_state text,
               t_cls timestamptz, t_asg timestamptz, t_acc timestamptz, t_rep timestamptz, t_wait timestamptz,
               t_res1 timestamptz, t_reo timestamptz, t_res timestamptz, t_clo timestamptz, t_vis timestamptz,
               sat smallint, variant integer)
LANGUAGE sql VOLATILE AS $$
SELECT r.g, md5('t' || r.g)::uuid,
       md5('c' || (1 + (hashint8(COALESCE(o.orig, r.g)) & 2147483647) % ncust))::uuid,
       c.created, a.bt,
       a.bt || '.' || lpad((1 + floor(a.ncat * r.u2 * r.u2))::int::text, 2, '0'),
       CASE WHEN r.u3 < 0.50 THEN 'hotline' WHEN r.u3 < 0.62 THEN 'web' WHEN r.u3 < 0.77 THEN 'app'
            WHEN r.u3 < 0.89 THEN 'mayor_hotline' WHEN r.u3 < 0.95 THEN 'social_media' ELSE 'email' END,
       'R' || lpad(x.rg::text, 2, '0'),
       d.dept, d.dept || '-' || a.grp,
       d.dept || '-' || a.grp || '-' || lpad((1 + floor(d.na * r.u30))::int::text, 2, '0'),
       CASE WHEN r.u28 < 0.05 THEN 'major' ELSE 'general' END,
       (CASE WHEN r.u28 < 0.05 THEN 1 ELSE 2 + floor(3 * r.u29) END)::smallint,
       CASE WHEN o.kind = 'r' THEN md5('t' || o.orig)::uuid END,
       CASE WHEN o.kind = 'd' THEN md5('t' || o.orig)::uuid END,
       p.open_state,
       CASE WHEN f.cls THEN c.created + s.cls * interval '1 second' END,
       CASE WHEN f.asg THEN c.created + s.asg * interval '1 second' END,
       CASE WHEN f.acc THEN c.created + s.acc * interval '1 second' END,
       CASE WHEN f.rep THEN c.created + s.rep * interval '1 second' END,
       CASE WHEN f.wait THEN c.created + s.wait * interval '1 second' END,
       CASE WHEN f.res THEN c.created + (CASE WHEN f.rep THEN s.rep ELSE s.acc END + s.res1) * interval '1 second' END,
       CASE WHEN f.reo THEN c.created + (CASE WHEN f.rep THEN s.rep ELSE s.acc END + s.res1 + s.reo) * interval '1 second' END,
       CASE WHEN f.reo THEN c.created + (CASE WHEN f.rep THEN s.rep ELSE s.acc END + s.res1 + s.reo + s.res2) * interval '1 second' END,
       CASE WHEN f.clo THEN c.created + (CASE WHEN f.rep THEN s.rep ELSE s.acc END + s.res1
                                         + CASE WHEN f.reo THEN s.reo + s.res2 ELSE 0 END + s.clo) * interval '1 second' END,
       CASE WHEN f.vis THEN c.created + (CASE WHEN f.rep THEN s.rep ELSE s.acc END + s.res1
                                         + CASE WHEN f.reo THEN s.reo + s.res2 ELSE 0 END
                                         + CASE WHEN f.clo THEN s.clo ELSE 0 END + s.vis) * interval '1 second' END,
       (CASE WHEN r.u27 < 0.06 THEN 1 WHEN r.u27 < 0.13 THEN 2 WHEN r.u27 < 0.25 THEN 3 WHEN r.u27 < 0.55 THEN 4 ELSE 5 END)::smallint,
       floor(8 * r.u31)::int
  FROM (SELECT gs AS g, random() AS u1, random() AS u2, random() AS u3, random() AS u4, random() AS u5,
               random() AS u6, random() AS u7, random() AS u8, random() AS u9, random() AS u10, random() AS u11,
               random() AS u12, random() AS u13, random() AS u14, random() AS u15, random() AS u16,
               random() AS u17, random() AS u18, random() AS u19, random() AS u20, random() AS u21,
               random() AS u22, random() AS u23, random() AS u24, random() AS u25, random() AS u26,
               random() AS u27, random() AS u28, random() AS u29, random() AS u30, random() AS u31
          FROM generate_series(lo, hi) AS gs OFFSET 0) r
  CROSS JOIN LATERAL (SELECT CASE WHEN r.u1 < 0.35 THEN 1 WHEN r.u1 < 0.60 THEN 2 WHEN r.u1 < 0.80 THEN 3
                                  WHEN r.u1 < 0.90 THEN 4 WHEN r.u1 < 0.95 THEN 5 WHEN r.u1 < 0.98 THEN 6
                                  ELSE 7 END AS bi) b
  CROSS JOIN LATERAL (SELECT (ARRAY['complaint', 'consultation', 'fault_repair', 'service_application',
                                    'suggestion', 'report', 'praise'])[b.bi] AS bt,
                             (ARRAY[10, 8, 8, 6, 3, 3, 2])[b.bi] AS ncat,
                             (ARRAY['a', 'c', 'b', 'b', 'c', 'a', 'a'])[b.bi] AS grp) a
  CROSS JOIN LATERAL (SELECT 1 + floor(20 * power(r.u4, 1.6))::int AS rg) x
  CROSS JOIN LATERAL (SELECT 'D' || lpad(dd.di::text, 2, '0') AS dept, 5 + (dd.di * 3 + ascii(a.grp) - 97) % 5 AS na
                        FROM (SELECT CASE WHEN r.u5 < 0.85 THEN (x.rg + 1) / 2 ELSE 1 + floor(10 * r.u6)::int END AS di) dd) d
  CROSS JOIN LATERAL (SELECT ok.kind,
                             CASE ok.kind WHEN 'r' THEN r.g - 1 - 2 * floor(r.u8 * least(50000, (r.g - 1) / 2))::bigint
                                          WHEN 'd' THEN r.g - 1 END AS orig
                        FROM (SELECT CASE WHEN r.g % 2 = 1 AND r.g >= 3 AND r.u7 < 0.16 THEN 'r'
                                          WHEN r.g % 2 = 1 AND r.g >= 3 AND r.u7 < 0.18 THEN 'd' END AS kind) ok) o
  CROSS JOIN LATERAL (SELECT t0 + ((r.g - 1) + r.u9) * span_s / n * interval '1 second' AS created) c
  CROSS JOIN LATERAL (SELECT r.u10 < 0.80 AS res,
                             CASE WHEN r.u10 >= 0.80 THEN
                                  CASE WHEN r.u11 < 0.01 THEN 'new' WHEN r.u11 < 0.03 THEN 'classified'
                                       WHEN r.u11 < 0.13 THEN 'assigned' WHEN r.u11 < 0.28 THEN 'accepted'
                                       WHEN r.u11 < 0.70 THEN 'in_progress' ELSE 'waiting_customer' END END AS open_state) p
  CROSS JOIN LATERAL (SELECT p.open_state IS DISTINCT FROM 'new' AS cls,
                             p.open_state IS NULL OR p.open_state NOT IN ('new', 'classified') AS asg,
                             p.open_state IS NULL OR p.open_state IN ('accepted', 'in_progress', 'waiting_customer') AS acc,
                             (p.res AND r.u16 < 0.90) OR p.open_state IN ('in_progress', 'waiting_customer') AS rep,
                             p.open_state = 'waiting_customer' AS wait,
                             p.res AS res, p.res AND r.u20 < 0.0625 AS reo, p.res AND r.u23 < 0.75 AS clo,
                             p.res AND r.u25 < 0.375 AS vis) f
  CROSS JOIN LATERAL (SELECT s0.cls, s0.asg, s0.acc, s0.acc - ln(1 - r.u17) * 7200 AS rep,
                             s0.acc - ln(1 - r.u17) * 7200 + 600 + 14400 * r.u18 AS wait,
                             300 - ln(1 - r.u19) * 28800 AS res1, 3600 + 172800 * r.u21 AS reo,
                             300 - ln(1 - r.u22) * 21600 AS res2, 3600 + 255600 * r.u24 AS clo,
                             3600 + 169200 * r.u26 AS vis
                        FROM (SELECT 5 + 55 * r.u12 AS cls, 5 + 55 * r.u12 + 10 + 590 * r.u13 AS asg,
                                     5 + 55 * r.u12 + 10 + 590 * r.u13
                                     + CASE WHEN b.bi = 3 THEN 30 + 240 * r.u14 + CASE WHEN r.u15 < 0.05 THEN 600 ELSE 0 END
                                            ELSE 60 + 1500 * r.u14 + CASE WHEN r.u15 < 0.03 THEN 1800 ELSE 0 END END AS acc) s0) s
$$;

-- The clocks a ticket has (resolution for every classified ticket; accept for fault repairs from
-- the assignment; first_response for consultations, service applications and suggestions), with
-- their policy's stages. stop = when the ticket's event stopped it (NULL: still running or paused).
CREATE FUNCTION bench.clock_defs(bt text, severity text)
RETURNS TABLE (k integer, clock text, policy_id text, target_s bigint, stage_code smallint[], stage_pct real[],
               lv_after_s bigint[], lv_role text[], lv_action text[])
LANGUAGE sql IMMUTABLE AS $$
SELECT 1, 'resolution', CASE WHEN severity = 'major' THEN 'major-resolve' ELSE 'general-resolve' END,
       CASE WHEN severity = 'major' THEN 43200 ELSE 86400 END::bigint,
       CASE WHEN severity = 'major' THEN '{50,80,100,101,102,103}' ELSE '{50,80,100,101,102}' END::smallint[],
       CASE WHEN severity = 'major' THEN '{0.5,0.8,1,1,1.5,2}' ELSE '{0.5,0.8,1,1,2}' END::real[],
       CASE WHEN severity = 'major' THEN '{43200,64800,86400}' ELSE '{86400,172800}' END::bigint[],
       CASE WHEN severity = 'major' THEN '{team_lead,department_head,leadership}' ELSE '{team_lead,department_head}' END::text[],
       CASE WHEN severity = 'major' THEN '{raise_priority,notify,notify}' ELSE '{raise_priority,notify}' END::text[]
UNION ALL
SELECT 2, 'accept', 'repair-accept', 300, '{80,100,101,102}', '{0.8,1,1,3}', '{300,900}', '{team_lead,department_head}',
       '{reroute,notify}'
 WHERE bt = 'fault_repair'
UNION ALL
SELECT 2, 'first_response', CASE bt WHEN 'consultation' THEN 'consultation-reply' WHEN 'suggestion' THEN 'suggestion-reply'
                                    ELSE 'service-contact' END,
       259200, '{50,80,100,101,102}', '{0.5,0.8,1,1,1.333}', '{259200,345600}', '{team_lead,department_head}',
       '{notify,notify}'
 WHERE bt IN ('consultation', 'suggestion', 'service_application')
$$;

-- One chunk of history: tickets lo..hi of n, in one transaction. Events after t_end do not happen.
CREATE FUNCTION bench.load_chunk(lo bigint, hi bigint, n bigint, t0 timestamptz, span_s double precision,
                                 ncust bigint, t_end timestamptz) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
    nt bigint; nc bigint; nh bigint; nk bigint; ne bigint;
BEGIN
    CREATE TEMP TABLE b ON COMMIT DROP AS
    SELECT x.*,
           CASE WHEN x.t_clo IS NOT NULL THEN 'closed'
                WHEN x.t_res IS NOT NULL THEN 'resolved' WHEN x.t_reo IS NOT NULL THEN 'in_progress'
                WHEN x.t_res1 IS NOT NULL THEN 'resolved' WHEN x.t_wait IS NOT NULL THEN 'waiting_customer'
                WHEN x.t_rep IS NOT NULL THEN 'in_progress' WHEN x.t_acc IS NOT NULL THEN 'accepted'
                WHEN x.t_asg IS NOT NULL THEN 'assigned' WHEN x.t_cls IS NOT NULL THEN 'classified'
                ELSE 'new' END AS state,
           CASE WHEN x.t_reo IS NULL THEN x.t_res1 ELSE x.t_res END AS resolved_at,
           greatest(x.created_at, x.t_cls, x.t_asg, x.t_acc, x.t_rep, x.t_wait, x.t_res1, x.t_reo, x.t_res,
                    x.t_clo, x.t_vis) AS updated_at,
           1 + (x.t_cls IS NOT NULL)::int + (x.t_asg IS NOT NULL)::int + (x.t_acc IS NOT NULL)::int
             + (x.t_rep IS NOT NULL)::int + (x.t_wait IS NOT NULL)::int + (x.t_res1 IS NOT NULL)::int
             + (x.t_reo IS NOT NULL)::int + (x.t_res IS NOT NULL)::int + (x.t_clo IS NOT NULL)::int
             + (x.t_vis IS NOT NULL)::int AS version
      FROM (SELECT q.g, q.id, q.customer_id, q.created_at, q.bt, q.category, q.channel, q.region, q.dept, q.team,
                   q.agent, q.severity, q.priority, q.repeat_of, q.duplicate_of, q.sat, q.variant,
                   CASE WHEN q.t_cls <= t_end THEN q.t_cls END AS t_cls,
                   CASE WHEN q.t_asg <= t_end THEN q.t_asg END AS t_asg,
                   CASE WHEN q.t_acc <= t_end THEN q.t_acc END AS t_acc,
                   CASE WHEN q.t_rep <= t_end THEN q.t_rep END AS t_rep,
                   CASE WHEN q.t_wait <= t_end THEN q.t_wait END AS t_wait,
                   CASE WHEN q.t_res1 <= t_end THEN q.t_res1 END AS t_res1,
                   CASE WHEN q.t_reo <= t_end THEN q.t_reo END AS t_reo,
                   CASE WHEN q.t_res <= t_end THEN q.t_res END AS t_res,
                   CASE WHEN q.t_clo <= t_end THEN q.t_clo END AS t_clo,
                   CASE WHEN q.t_vis <= t_end THEN q.t_vis END AS t_vis
              FROM bench.gen(lo, hi, n, t0, span_s, ncust) q) x;

    INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, region, language, subject, body, state,
                         business_type, category, severity, priority, first_owner_unit, owner_unit, owner_agent,
                         accountable_unit, owner_team, reopen_count, satisfaction, occurred_at, created_at,
                         updated_at, first_response_at, resolved_at, closed_at, version)
    SELECT b.id, 'bench', 'bench-' || b.g, b.channel, b.customer_id, b.region, 'zh-CN',
           (ARRAY['停电', '电压不稳', '电费异常', '报装进度', '抄表错误', '服务态度', '线路隐患', '缴费问题'])[b.variant + 1]
             || ' ' || b.g,
           (ARRAY['我家从周一开始停电，打了三次电话都没有人来修，冰箱里的东西全坏了。',
                  '最近一周电压忽高忽低，家里的电器已经烧坏了两台，请尽快派人检查。',
                  '这个月的电费比上个月高了三倍，家里用电情况没有变化，要求核实。',
                  '新房报装已经提交一个月了，一直没有人联系，请告知办理进度。',
                  '抄表数字和电表上的读数对不上，多收了电费，请更正。',
                  '营业厅工作人员态度很差，问了两次都不耐烦，希望加强管理。',
                  '小区门口的电线杆倾斜，电线垂得很低，存在安全隐患。',
                  '网上缴费显示成功，但是系统仍然提示欠费，还收到了停电通知。'])[b.variant + 1],
           b.state,
           CASE WHEN b.t_cls IS NOT NULL THEN b.bt END, CASE WHEN b.t_cls IS NOT NULL THEN b.category END,
           CASE WHEN b.t_cls IS NOT NULL THEN b.severity END, CASE WHEN b.t_cls IS NOT NULL THEN b.priority END,
           CASE WHEN b.t_asg IS NOT NULL THEN b.dept END, CASE WHEN b.t_asg IS NOT NULL THEN b.dept END,
           CASE WHEN b.t_asg IS NOT NULL THEN b.agent END, CASE WHEN b.t_asg IS NOT NULL THEN b.dept END,
           CASE WHEN b.t_asg IS NOT NULL THEN b.team END,
           (b.t_reo IS NOT NULL)::int, CASE WHEN b.t_vis IS NOT NULL THEN b.sat END,
           b.created_at, b.created_at, b.updated_at, b.t_rep, b.resolved_at, b.t_clo, b.version
      FROM b ORDER BY b.g;
    GET DIAGNOSTICS nt = ROW_COUNT;

    INSERT INTO ticket_classifications (ticket_id, business_type, business_type_source, business_type_confidence,
                                        category, category_source, category_confidence, severity, priority,
                                        priority_source, repeat_of, duplicate_of, rules_version, classified_at,
                                        classifier)
    SELECT b.id, b.bt, 'model:bench', 0.9, b.category, 'model:bench', 0.8, b.severity, b.priority, 'default',
           b.repeat_of, b.duplicate_of, 'bench', b.t_cls, 'bench'
      FROM b WHERE b.t_cls IS NOT NULL ORDER BY b.g;
    GET DIAGNOSTICS nc = ROW_COUNT;

    -- in time order, as the writers commit them
    INSERT INTO ticket_history (ticket_id, at, kind, from_state, to_state, actor, gateway_id, event_id, satisfaction)
    SELECT b.id, e.at, e.kind, e.fs, e.ts, e.actor, e.gw, e.ev, e.sat
      FROM b CROSS JOIN LATERAL (VALUES
             ('created', b.created_at, NULL, 'new', '', 'bench', 'bench-' || b.g, NULL::smallint),
             ('classify', b.t_cls, 'new', 'classified', 'classifier', '', '', NULL),
             ('assign', b.t_asg, 'classified', 'assigned', 'dispatcher', '', '', NULL),
             ('accept', b.t_acc, 'assigned', 'accepted', b.agent, '', '', NULL),
             ('reply', b.t_rep, 'accepted', 'in_progress', b.agent, '', '', NULL),
             ('wait_customer', b.t_wait, 'in_progress', 'waiting_customer', b.agent, '', '', NULL),
             ('resolve', b.t_res1, CASE WHEN b.t_rep IS NULL THEN 'accepted' ELSE 'in_progress' END, 'resolved', b.agent, '', '', NULL),
             ('reopen', b.t_reo, 'resolved', 'in_progress', 'callcenter', '', '', NULL),
             ('resolve', b.t_res, 'in_progress', 'resolved', b.agent, '', '', NULL),
             ('close', b.t_clo, 'resolved', 'closed', 'callcenter', '', '', NULL),
             ('return_visit', b.t_vis, CASE WHEN b.t_clo IS NULL THEN 'resolved' ELSE 'closed' END,
                              CASE WHEN b.t_clo IS NULL THEN 'resolved' ELSE 'closed' END, 'callcenter', '', '', b.sat))
           AS e(kind, at, fs, ts, actor, gw, ev, sat)
     WHERE e.at IS NOT NULL
     ORDER BY e.at;
    GET DIAGNOSTICS nh = ROW_COUNT;

    -- clock ids: 2g - 1 (resolution), 2g (the other)
    CREATE TEMP TABLE k ON COMMIT DROP AS
    SELECT y.*, y.breached AND true AS br,
           CASE WHEN y.breached THEN y.started_at + y.target_s * interval '1 second' END AS breached_at
      FROM (SELECT b.id AS ticket_id, 2 * b.g - 2 + d.k AS clock_id, d.clock, d.policy_id, d.target_s,
                   d.stage_code, d.stage_pct, d.lv_after_s, d.lv_role, d.lv_action, b.team, b.dept,
                   st.started_at, b.t_cls AS armed_at, st.stop_at, st.paused_at,
                   CASE WHEN st.stop_at IS NOT NULL THEN st.stop_at > st.started_at + d.target_s * interval '1 second'
                        WHEN st.paused_at IS NOT NULL THEN st.paused_at > st.started_at + d.target_s * interval '1 second'
                        ELSE t_end > st.started_at + d.target_s * interval '1 second' END AS breached
              FROM b CROSS JOIN LATERAL bench.clock_defs(b.bt, b.severity) d
              CROSS JOIN LATERAL (SELECT CASE d.clock WHEN 'accept' THEN b.t_asg ELSE b.created_at END AS started_at,
                                         CASE d.clock WHEN 'accept' THEN b.t_acc
                                                      WHEN 'first_response' THEN COALESCE(b.t_rep, b.resolved_at)
                                                      ELSE b.resolved_at END AS stop_at,
                                         CASE WHEN d.clock = 'resolution' AND b.resolved_at IS NULL THEN b.t_wait END AS paused_at) st
             WHERE b.t_cls IS NOT NULL AND st.started_at IS NOT NULL) y;

    INSERT INTO sla_clocks (id, ticket_id, clock, cycle, policy_id, calendar_id, target_ms, started_at, running_since,
                            elapsed_ms, state, outcome, due_at, breached_at, stage_code, stage_at, next_stage,
                            next_fire_at, by_transfer, armed_at, stopped_at)
    SELECT k.clock_id, k.ticket_id, k.clock, 1, k.policy_id, NULL, k.target_s * 1000, k.started_at,
           CASE WHEN k.stop_at IS NULL AND k.paused_at IS NULL THEN k.started_at END,
           floor(extract(epoch FROM COALESCE(k.stop_at, k.paused_at, k.started_at) - k.started_at) * 1000)::bigint,
           CASE WHEN k.stop_at IS NOT NULL THEN 'stopped' WHEN k.paused_at IS NOT NULL THEN 'paused' ELSE 'running' END,
           CASE WHEN k.stop_at IS NOT NULL THEN 'met' END,
           CASE WHEN k.stop_at IS NULL AND k.paused_at IS NULL THEN k.started_at + k.target_s * interval '1 second' END,
           k.breached_at, k.stage_code,
           (SELECT array_agg((p * k.target_s * 1000)::bigint ORDER BY i) FROM unnest(k.stage_pct) WITH ORDINALITY AS u(p, i)),
           st.fired, CASE WHEN st.fired < cardinality(k.stage_code) AND k.stop_at IS NULL AND k.paused_at IS NULL
                          THEN k.started_at + k.stage_pct[st.fired + 1] * k.target_s * interval '1 second' END,
           false, COALESCE(least(k.armed_at, k.started_at), k.started_at), k.stop_at
      FROM k CROSS JOIN LATERAL (SELECT count(*)::smallint AS fired FROM unnest(k.stage_pct) AS u(p)
                                  WHERE k.started_at + u.p * k.target_s * interval '1 second'
                                        <= COALESCE(k.stop_at, k.paused_at, t_end)) st
     ORDER BY k.clock_id;
    GET DIAGNOSTICS nk = ROW_COUNT;

    INSERT INTO sla_escalations (clock_id, ticket_id, clock, level, role, target_unit, action, at)
    SELECT k.clock_id, k.ticket_id, k.clock, l.i, l.role, CASE WHEN l.role = 'team_lead' THEN k.team ELSE k.dept END,
           l.action, k.started_at + l.after_s * interval '1 second'
      FROM k CROSS JOIN LATERAL unnest(k.lv_after_s, k.lv_role, k.lv_action) WITH ORDINALITY AS l(after_s, role, action, i)
     WHERE k.breached AND k.started_at + l.after_s * interval '1 second' <= COALESCE(k.stop_at, k.paused_at, t_end)
     ORDER BY 8;
    GET DIAGNOSTICS ne = ROW_COUNT;
    RETURN format('%s %s %s %s %s', nt, nc, nh, nk, ne);
END
$fn$;

-- One rollup for the whole history, the sums of reporting.contrib() over the facts, as
-- reporting.refresh() would have added them one ticket at a time: the facts a slice of receipt
-- instants at a time (a month of contributions fits in work_mem), merged by the same upsert.
-- One transaction with the TRUNCATE, so that with wal_level=minimal the rows skip WAL.
CREATE FUNCTION bench.build_rollup(grain text, slices timestamptz[]) RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
    cols text[] := reporting.metric_columns();
    tz text := (SELECT time_zone FROM reporting.settings);
    names text; sums text; sets text; q text; n bigint := 0; m bigint;
BEGIN
    SELECT string_agg(format('%I', c), ', '),
           string_agg(format('COALESCE(sum(c.v) FILTER (WHERE c.col = %L), 0)', c), ', '),
           string_agg(format('%I = r.%I + excluded.%I', c, c, c), ', ')
      INTO names, sums, sets FROM unnest(cols) AS c;
    EXECUTE format('TRUNCATE reporting.rollup_%s', grain);
    q := format('INSERT INTO reporting.rollup_%1$s AS r (bucket, business_type, channel, category, department, team,'
                ' agent, region, %2$s)'
                ' SELECT date_trunc(%1$L, c.t AT TIME ZONE $1)::%3$s, f.business_type, f.channel, f.category,'
                '        f.department, f.team, f.agent, f.region, %4$s'
                '   FROM reporting.ticket_facts f CROSS JOIN LATERAL reporting.contrib(f) c'
                '  WHERE f.created_at >= $2 AND f.created_at < $3'
                '  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8 ORDER BY 1, 2, 3, 4, 5, 6, 7, 8'
                ' ON CONFLICT (bucket, business_type, channel, category, department, team, agent, region)'
                ' DO UPDATE SET %5$s',
                grain, names, CASE grain WHEN 'hour' THEN 'timestamp' ELSE 'date' END, sums, sets);
    FOR i IN 1 .. cardinality(slices) - 1 LOOP
        EXECUTE q USING tz, slices[i], slices[i + 1];
        GET DIAGNOSTICS m = ROW_COUNT;
        n := n + m;
    END LOOP;
    RETURN n;
END
$fn$;

-- One queue consumer, as the reporting service runs: every partition in turn (starting at its
-- own), reporting.apply_queue(part, batch) in its own transaction; until the queue is empty.
CREATE TABLE bench.drain_log (stage text, consumer integer, started timestamptz, finished timestamptz,
                              events bigint, tickets bigint, rollup_rows bigint, calls integer, busy_skips integer);
CREATE PROCEDURE bench.drain(stage text, me integer, k integer, batch integer)
LANGUAGE plpgsql AS $fn$
DECLARE
    t0 timestamptz := clock_timestamp();
    ev bigint := 0; tk bigint := 0; rr bigint := 0; calls integer := 0; skips integer := 0;
    got bigint; p integer; r record;
BEGIN
    LOOP
        got := 0;
        FOR i IN 0 .. 7 LOOP
            p := (me * 8 / k + i) % 8;
            SELECT * INTO r FROM reporting.apply_queue(p, batch);
            COMMIT;
            calls := calls + 1;
            IF r.events = 0 AND EXISTS (SELECT 1 FROM reporting.queue WHERE part = p) THEN
                skips := skips + 1;  -- the other consumer holds it
            END IF;
            got := got + r.events; ev := ev + r.events; tk := tk + r.tickets; rr := rr + r.rollup_rows;
        END LOOP;
        IF got = 0 THEN
            EXIT WHEN NOT EXISTS (SELECT 1 FROM reporting.queue);
            PERFORM pg_sleep(0.002);
        END IF;
    END LOOP;
    INSERT INTO bench.drain_log VALUES (stage, me, t0, clock_timestamp(), ev, tk, rr, calls, skips);
    COMMIT;
END
$fn$;
SQL

# ---- 1. raw history --------------------------------------------------------------------------------

hr "1. raw history: $(thousands "$TICKETS") tickets (measured, not a target)"
T_LOAD=$EPOCHREALTIME
# The history ends now (to the second) and spans MONTHS months.
read -r T_END_E T0_E < <(sql "SELECT extract(epoch FROM date_trunc('second', now()))::bigint,
  extract(epoch FROM date_trunc('second', now()) - interval '$MONTHS months')::bigint" | tr '|' ' ')
SPAN_S=$((T_END_E - T0_E))
sqlv ncust="$CUSTOMERS" >/dev/null <<'SQL'
BEGIN;
-- the organisation: 10 departments x 3 teams x 5..9 agents (210)
INSERT INTO departments (id, name) SELECT 'D' || lpad(d::text, 2, '0'), '第' || d || '供电所' FROM generate_series(1, 10) d;
INSERT INTO teams (id, department_id, name)
  SELECT 'D' || lpad(d::text, 2, '0') || '-' || g, 'D' || lpad(d::text, 2, '0'), 'team ' || g
    FROM generate_series(1, 10) d, unnest(ARRAY['a', 'b', 'c']) g;
INSERT INTO agents (id, team_id, name)
  SELECT 'D' || lpad(d::text, 2, '0') || '-' || g || '-' || lpad(a::text, 2, '0'), 'D' || lpad(d::text, 2, '0') || '-' || g, '坐席' || d || g || a
    FROM generate_series(1, 10) d, unnest(ARRAY['a', 'b', 'c']) g, generate_series(1, 9) a
   WHERE a <= 5 + (d * 3 + ascii(g) - 97) % 5;
COMMIT;
SET session_replication_role = replica;
INSERT INTO customers (id, customer_ref, name, phone)
  SELECT md5('c' || c)::uuid, 'bench-c-' || c, '客户' || c, '138' || lpad((c % 100000000)::text, 8, '0')
    FROM generate_series(1, :ncust) c;
SQL
say "  organisation (10 departments, 30 teams, $(sql "SELECT count(*) FROM agents") agents) and $(thousands "$CUSTOMERS") customers: $(secs_since "$T_LOAD") s"

# Secondary indexes (not those of constraints) are dropped for the load and built again after it,
# identical (their definitions are kept in bench.saved_indexes).
sql "CREATE TABLE bench.saved_indexes AS
       SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS def, pg_relation_size(i.indrelid) AS tsize
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid IN ('tickets'::regclass, 'ticket_history'::regclass, 'ticket_classifications'::regclass,
                             'sla_clocks'::regclass, 'sla_escalations'::regclass)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = i.indexrelid)" >/dev/null
sql "SELECT 'DROP INDEX ' || quote_ident(name) || ';' FROM bench.saved_indexes" | psql_ >/dev/null
sql "ALTER TABLE ticket_history DISABLE TRIGGER ticket_history_reporting;
     ALTER TABLE ticket_history DISABLE TRIGGER ticket_history_sla;
     ALTER TABLE sla_events DISABLE TRIGGER sla_events_reporting" >/dev/null
say "  triggers ticket_history_reporting, ticket_history_sla, sla_events_reporting disabled; $(sql "SELECT count(*) FROM bench.saved_indexes") secondary indexes dropped; foreign keys not checked (session_replication_role = replica)"

# W workers, each taking every W-th chunk; progress from their log files.
run_chunks() { # LABEL LOGPREFIX FUNCTION-SQL-TEMPLATE (with @LO@ @HI@)
  local label=$1 prefix=$2 tmpl=$3 w lo hi nchunks done_n t_start last=0
  nchunks=$(((TICKETS + CHUNK - 1) / CHUNK))
  t_start=$EPOCHREALTIME
  BGPIDS=()
  for ((w = 0; w < WORKERS; w++)); do
    (
      for ((c = w; c < nchunks; c += WORKERS)); do
        lo=$((c * CHUNK + 1))
        hi=$(((c + 1) * CHUNK))
        ((hi <= TICKETS)) || hi=$TICKETS
        s=${tmpl//@LO@/$lo}
        s=${s//@HI@/$hi}
        out=$(psql_ -tA -c "SET session_replication_role = replica; SET synchronous_commit = off; SET work_mem = '256MB'; SET jit = off; $s") || exit 1
        printf '%s %s %s\n' "$lo" "$hi" "$out" >>"$WORK/$prefix-$w.log"
      done
    ) 2>"$WORK/$prefix-$w.err" &
    BGPIDS+=("$!")
  done
  while :; do
    local alive=0 p
    for p in "${BGPIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    done_n=$({ cat "$WORK/$prefix"-*.log 2>/dev/null || true; } | wc -l)
    if ((done_n > last)); then
      say "  $label: $done_n of $nchunks chunks ($(secs_since "$t_start") s)"
      last=$done_n
    fi
    ((alive)) || break
    snooze 1
  done
  for p in "${BGPIDS[@]}"; do
    wait "$p" || { cat "$WORK/$prefix"-*.err >&2; die "$label: a worker failed (above)"; }
  done
  BGPIDS=()
  ((done_n == nchunks)) || die "$label: $done_n of $nchunks chunks done"
}

T_RAW=$EPOCHREALTIME
run_chunks "history" load "SELECT bench.load_chunk(@LO@, @HI@, $TICKETS, to_timestamp($T0_E), $SPAN_S, $CUSTOMERS, to_timestamp($T_END_E))"
read -r n_t n_c n_h n_k n_e < <(cat "$WORK"/load-*.log | awk '{ t += $3; c += $4; h += $5; k += $6; e += $7 } END { print t, c, h, k, e }')
RAW_ROWS_S=$(secs_since "$T_RAW")
say "  rows: $(thousands "$n_t") tickets, $(thousands "$n_c") classifications, $(thousands "$n_h") history rows ($(awk -v a="$n_h" -v b="$n_t" 'BEGIN { printf "%.2f", a / b }') per ticket), $(thousands "$n_k") SLA clocks, $(thousands "$n_e") escalations: $RAW_ROWS_S s ($(fdiv "$((n_t + n_c + n_h + n_k + n_e))" "$RAW_ROWS_S") rows/s)"

T_IDX=$EPOCHREALTIME
# largest tables' indexes first, split over the workers
mapfile -t IDX < <(sql "SELECT def FROM bench.saved_indexes ORDER BY tsize DESC, name")
BGPIDS=()
for ((w = 0; w < WORKERS; w++)); do
  (
    for ((i = w; i < ${#IDX[@]}; i += WORKERS)); do
      psql_ -c "SET maintenance_work_mem = '1GB'; ${IDX[i]}" >/dev/null || exit 1
    done
  ) 2>"$WORK/index-$w.err" &
  BGPIDS+=("$!")
done
for p in "${BGPIDS[@]}"; do wait "$p" || { cat "$WORK"/index-*.err >&2; die "building the indexes failed (above)"; }; done
BGPIDS=()
sql "ALTER TABLE ticket_history ENABLE TRIGGER ticket_history_reporting;
     ALTER TABLE ticket_history ENABLE TRIGGER ticket_history_sla;
     ALTER TABLE sla_events ENABLE TRIGGER sla_events_reporting;
     SELECT setval(pg_get_serial_sequence('sla_clocks', 'id'), (SELECT max(id) FROM sla_clocks))" >/dev/null
say "  ${#IDX[@]} secondary indexes built again: $(secs_since "$T_IDX") s; triggers enabled again"
LOAD_S=$(secs_since "$T_LOAD")
say "  raw history loaded in $LOAD_S s"
say "  states: $(sql "SELECT string_agg(state || ' ' || pct || '%', ', ' ORDER BY n DESC) FROM (SELECT state, n, round(100.0 * n / sum(n) OVER (), 1) AS pct FROM (SELECT state, count(*) AS n FROM tickets GROUP BY 1) x) y")"
say "  SLA clocks breached: $(sql "SELECT round(100.0 * count(*) FILTER (WHERE breached_at IS NOT NULL) / count(*), 1) FROM sla_clocks")%; repeats $(sql "SELECT round(100.0 * count(repeat_of) / count(*), 1) FROM ticket_classifications")%; reopened $(sql "SELECT round(100.0 * count(*) FILTER (WHERE reopen_count > 0) / count(*), 1) FROM tickets")%"

# ---- 2. facts and rollups ---------------------------------------------------------------------------

hr "2. facts and rollups for the history (measured, not a target)"
T_FACTS=$EPOCHREALTIME
run_chunks "facts" facts "INSERT INTO reporting.ticket_facts SELECT * FROM reporting.fact_source(ARRAY(SELECT md5('t' || g)::uuid FROM generate_series(@LO@, @HI@) g)); SELECT 1"
n_f=$(sql "SELECT count(*) FROM reporting.ticket_facts")
((n_f == n_t)) || die "ticket_facts holds $n_f rows, expected $n_t"
FACTS_S=$(secs_since "$T_FACTS")
say "  $(thousands "$n_f") fact rows (reporting.fact_source, chunks of $(thousands "$CHUNK")): $FACTS_S s ($(fdiv "$n_f" "$FACTS_S")/s)"

T_ROLL=$EPOCHREALTIME
# Slices by receipt instant, about 250,000 facts each (at least a day): a slice's contributions are
# sorted in work_mem.
SLICES=$(sql "SELECT '{' || string_agg('\"' || s || '\"', ',' ORDER BY s) || '}' FROM (
  SELECT generate_series(min(created_at), max(created_at),
                         greatest(interval '1 day', (max(created_at) - min(created_at)) * 250000 / count(*))) AS s
    FROM reporting.ticket_facts
  UNION ALL SELECT 'infinity'::timestamptz) x")
NSLICES=$(($(tr -cd , <<<"$SLICES" | wc -c)))
BGPIDS=()
if ((WORKERS >= 2)); then GROUPS_=("hour" "day month"); else GROUPS_=("hour day month"); fi
w=0
for grp in "${GROUPS_[@]}"; do
  (
    for g in $grp; do
      t=$EPOCHREALTIME
      n=$(psql_ -tA -c "SET work_mem = '1GB'; SET jit = off; SELECT bench.build_rollup('$g', '$SLICES')") || exit 1
      printf '%s %s %s\n' "$g" "$n" "$(secs_since "$t")" >>"$WORK/rollup-$w.log"
    done
  ) 2>"$WORK/rollup-$w.err" &
  BGPIDS+=("$!")
  w=$((w + 1))
done
for p in "${BGPIDS[@]}"; do wait "$p" || { cat "$WORK"/rollup-*.err >&2; die "building the rollups failed (above)"; }; done
BGPIDS=()
ROLL_S=$(secs_since "$T_ROLL")
while read -r g n s; do
  say "  rollup_$g: $(thousands "$(sql "SELECT count(*) FROM reporting.rollup_$g")") rows ($(thousands "$n") upserts over $NSLICES slices) in $s s"
done < <(cat "$WORK"/rollup-*.log)
say "  rollups built in $ROLL_S s ($((WORKERS >= 2 ? 2 : 1)) sessions)"
# The bulk build must agree with the facts: every ticket received once, in every grain.
read -r rh rd rm < <(sql "SELECT (SELECT sum(received) FROM reporting.rollup_hour), (SELECT sum(received) FROM reporting.rollup_day),
                              (SELECT sum(received) FROM reporting.rollup_month)" | tr '|' ' ')
((rh == n_f && rd == n_f && rm == n_f)) || die "rollups disagree with the facts: received = $rh / $rd / $rm, facts $n_f"

T_VAC=$EPOCHREALTIME
BGPIDS=()
VAC_TABLES=(ticket_history tickets reporting.rollup_hour reporting.rollup_day reporting.ticket_facts sla_clocks
  reporting.rollup_month ticket_classifications sla_escalations customers)
for ((w = 0; w < WORKERS; w++)); do
  (
    for ((i = w; i < ${#VAC_TABLES[@]}; i += WORKERS)); do
      psql_ -c "VACUUM (ANALYZE) ${VAC_TABLES[i]}" >/dev/null || exit 1
    done
  ) 2>"$WORK/vacuum-$w.err" &
  BGPIDS+=("$!")
done
for p in "${BGPIDS[@]}"; do wait "$p" || { cat "$WORK"/vacuum-*.err >&2; die "VACUUM failed (above)"; }; done
BGPIDS=()
sql "VACUUM (ANALYZE)" >/dev/null
say "  VACUUM (ANALYZE): $(secs_since "$T_VAC") s"
for v in wal_level max_wal_senders autovacuum; do sql "ALTER SYSTEM RESET $v" >/dev/null; done
T_RS=$EPOCHREALTIME
pg_restart
say "  restarted with wal_level=$(sql "SHOW wal_level"), autovacuum=$(sql "SHOW autovacuum"): $(secs_since "$T_RS") s"
PREP_S=$(secs_since "$T_LOAD")
say "  sizes: $(sql "SELECT string_agg(n || ' ' || pg_size_pretty(s), ', ' ORDER BY s DESC) FROM (
    SELECT c.relname AS n, pg_total_relation_size(c.oid) AS s FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
     WHERE c.relkind = 'r' AND s.nspname IN ('public', 'reporting') AND pg_total_relation_size(c.oid) > 10 * 1024 * 1024) x")"
DB_BYTES=$(sql "SELECT pg_database_size(current_database())")
say "  database $(gib "$DB_BYTES") ($(fdiv "$DB_BYTES" "$n_t") bytes per ticket); data directory $(du -sb "$WORK/pg" | awk '{ printf "%.2f GiB", $1 / 1073741824 }')"
say "  preparation took $PREP_S s in all"

# ---- 3. upkeep ---------------------------------------------------------------------------------------

hr "3. upkeep: a stream of events on top, drained stage by stage"
# The stream (not measured): S new tickets (attributes from the same generator, numbers after the
# history's) and S/5 old tickets that are open (accepted or in progress), sampled over the history.
sqlv n="$TICKETS" s="$STREAM" t0="$T0_E" span="$SPAN_S" ncust="$CUSTOMERS" >/dev/null <<'SQL'
CREATE TABLE bench.stream AS
SELECT g, id, customer_id, bt, category, channel, region, dept, team, agent, severity, priority, repeat_of,
       duplicate_of, sat, variant, t_rep IS NOT NULL AS do_reply, t_res1 IS NOT NULL AS do_resolve,
       t_clo IS NOT NULL AS do_close, t_vis IS NOT NULL AS do_visit,
       random() < 0.10 AS late, g % 20 = 0 AS late_accept
  FROM bench.gen(:n + 1, :n + :s, :n, to_timestamp(:t0), :span, :ncust);
CREATE UNIQUE INDEX ON bench.stream (id);
CREATE TABLE bench.old AS
SELECT id, random() < 0.5 AS do_close
  FROM tickets TABLESAMPLE SYSTEM (least(100, 100.0 * :s / :n * 2.5))
 WHERE state IN ('accepted', 'in_progress') LIMIT :s / 5;
CREATE UNIQUE INDEX ON bench.old (id);
ANALYZE bench.stream;
ANALYZE bench.old;

-- One stage of the stream: one statement (a writable CTE), as one writer transaction would do it
-- for one event, here for every ticket at once. now() is the event's instant.
CREATE FUNCTION bench.stage(name text) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  CASE name
  WHEN 'created' THEN
    WITH t AS (INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, region, language, subject, body,
                                    state, occurred_at)
               SELECT s.id, 'bench', 'stream-' || s.g, s.channel, s.customer_id, s.region, 'zh-CN', '停电 ' || s.g,
                      '我家从周一开始停电，打了三次电话都没有人来修，冰箱里的东西全坏了。', 'new', now()
                 FROM bench.stream s ORDER BY s.g
               RETURNING id, gateway_id, event_id)
    INSERT INTO ticket_history (ticket_id, kind, to_state, gateway_id, event_id)
    SELECT id, 'created', 'new', gateway_id, event_id FROM t;
  WHEN 'classify' THEN
    WITH c AS (INSERT INTO ticket_classifications (ticket_id, business_type, business_type_source,
                                                   business_type_confidence, category, category_source,
                                                   category_confidence, severity, priority, priority_source,
                                                   repeat_of, duplicate_of, rules_version, classifier)
               SELECT s.id, s.bt, 'model:bench', 0.9, s.category, 'model:bench', 0.8, s.severity, s.priority,
                      'default', s.repeat_of, s.duplicate_of, 'bench', 'bench' FROM bench.stream s),
         u AS (UPDATE tickets t SET state = 'classified', business_type = s.bt, category = s.category,
                                    severity = s.severity, priority = s.priority, updated_at = now(),
                                    version = t.version + 1
                 FROM bench.stream s WHERE t.id = s.id),
         k AS (INSERT INTO sla_clocks (id, ticket_id, clock, cycle, policy_id, target_ms, started_at, running_since,
                                       state, due_at, stage_code, stage_at, next_stage, next_fire_at, armed_at)
               SELECT 2 * s.g - 2 + d.k, s.id, d.clock, 1, d.policy_id, d.target_s * 1000, now(), now(), 'running',
                      now() + d.target_s * interval '1 second', d.stage_code,
                      (SELECT array_agg((p * d.target_s * 1000)::bigint ORDER BY i)
                         FROM unnest(d.stage_pct) WITH ORDINALITY AS u(p, i)),
                      0, now() + d.stage_pct[1] * d.target_s * interval '1 second', now()
                 FROM bench.stream s CROSS JOIN LATERAL bench.clock_defs(s.bt, s.severity) d
                WHERE d.clock <> 'accept')
    INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor)
    SELECT id, 'classify', 'new', 'classified', 'classifier' FROM bench.stream;
  WHEN 'assign' THEN
    WITH u AS (UPDATE tickets t SET state = 'assigned', first_owner_unit = s.dept, owner_unit = s.dept,
                                    accountable_unit = s.dept, owner_team = s.team, owner_agent = s.agent,
                                    updated_at = now(), version = t.version + 1
                 FROM bench.stream s WHERE t.id = s.id),
         k AS (INSERT INTO sla_clocks (id, ticket_id, clock, cycle, policy_id, target_ms, started_at, running_since,
                                       state, due_at, stage_code, stage_at, next_stage, next_fire_at, armed_at)
               SELECT 2 * s.g, s.id, 'accept', 1, 'repair-accept', 300000, now(), now(), 'running',
                      now() + interval '5 minutes', '{80,100,101,102}', '{240000,300000,300000,900000}', 0,
                      now() + interval '4 minutes', now()
                 FROM bench.stream s WHERE s.bt = 'fault_repair')
    INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor, target_unit)
    SELECT id, 'assign', 'classified', 'assigned', 'dispatcher', team FROM bench.stream;
  WHEN 'accept' THEN
    WITH u AS (UPDATE tickets t SET state = 'accepted', updated_at = now(), version = t.version + 1
                 FROM bench.stream s WHERE t.id = s.id)
    INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor)
    SELECT id, 'accept', 'assigned', 'accepted', agent FROM bench.stream;
  WHEN 'sla_accept' THEN
    -- the escalation service stops the fault repairs' accept clocks (5% had breached first)
    WITH u AS (UPDATE sla_clocks c SET state = 'stopped', outcome = 'met', stopped_at = now(), running_since = NULL,
                                       elapsed_ms = 1000, due_at = NULL, next_fire_at = NULL,
                                       breached_at = CASE WHEN s.late_accept THEN now() END
                 FROM bench.stream s WHERE s.bt = 'fault_repair' AND c.id = 2 * s.g)
    INSERT INTO sla_events (clock_id, ticket_id, clock, kind, at)
    SELECT 2 * s.g, s.id, 'accept', CASE WHEN s.late_accept THEN 'breached' ELSE 'met' END, now()
      FROM bench.stream s WHERE s.bt = 'fault_repair';
  WHEN 'reply' THEN
    WITH u AS (UPDATE tickets t SET state = 'in_progress', first_response_at = now(), updated_at = now(),
                                    version = t.version + 1
                 FROM bench.stream s WHERE s.do_reply AND t.id = s.id)
    INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor)
    SELECT id, 'reply', 'accepted', 'in_progress', agent FROM bench.stream WHERE do_reply;
  WHEN 'sla_first_response' THEN
    WITH u AS (UPDATE sla_clocks c SET state = 'stopped', outcome = 'met', stopped_at = now(), running_since = NULL,
                                       elapsed_ms = 60000, due_at = NULL, next_fire_at = NULL
                 FROM bench.stream s
                WHERE s.do_reply AND s.bt IN ('consultation', 'suggestion', 'service_application') AND c.id = 2 * s.g)
    INSERT INTO sla_events (clock_id, ticket_id, clock, kind, at)
    SELECT 2 * s.g, s.id, 'first_response', 'met', now() FROM bench.stream s
     WHERE s.do_reply AND s.bt IN ('consultation', 'suggestion', 'service_application');
  WHEN 'breach' THEN
    -- 10% of the tickets about to be resolved breach their resolution clock first (level 1)
    WITH u AS (UPDATE sla_clocks c SET breached_at = now(), next_stage = 4
                 FROM bench.stream s WHERE s.late AND s.do_resolve AND c.id = 2 * s.g - 1),
         e AS (INSERT INTO sla_escalations (clock_id, ticket_id, clock, level, role, target_unit, action, at)
               SELECT 2 * s.g - 1, s.id, 'resolution', 1, 'team_lead', s.team, 'raise_priority', now()
                 FROM bench.stream s WHERE s.late AND s.do_resolve)
    INSERT INTO sla_events (clock_id, ticket_id, clock, kind, level, at)
    SELECT 2 * s.g - 1, s.id, 'resolution', x.kind, x.level, now()
      FROM bench.stream s CROSS JOIN (VALUES ('breached', NULL::smallint), ('escalated', 1)) AS x(kind, level)
     WHERE s.late AND s.do_resolve;
  WHEN 'resolve' THEN
    -- the stream's tickets and the old open ones
    WITH x AS (SELECT t.id, t.state, t.owner_agent FROM tickets t
                WHERE t.id IN (SELECT id FROM bench.stream WHERE do_resolve UNION ALL SELECT id FROM bench.old)),
         u AS (UPDATE tickets t SET state = 'resolved', resolved_at = now(), updated_at = now(), version = t.version + 1
                 FROM x WHERE t.id = x.id)
    INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor)
    SELECT id, 'resolve', state, 'resolved', COALESCE(owner_agent, '') FROM x;
  WHEN 'sla_resolution' THEN
    -- resolving stops the resolution clocks: 'met' events for those that had not breached
    WITH x AS (SELECT c.id, c.ticket_id, c.breached_at FROM sla_clocks c
                WHERE c.ticket_id IN (SELECT id FROM bench.stream WHERE do_resolve UNION ALL SELECT id FROM bench.old)
                  AND c.clock = 'resolution' AND c.state <> 'stopped'),
         u AS (UPDATE sla_clocks c SET state = 'stopped', outcome = 'met', stopped_at = now(), running_since = NULL,
                                       due_at = NULL, next_fire_at = NULL
                 FROM x WHERE c.id = x.id)
    INSERT INTO sla_events (clock_id, ticket_id, clock, kind, at)
    SELECT id, ticket_id, 'resolution', 'met', now() FROM x WHERE breached_at IS NULL;
  WHEN 'close' THEN
    WITH x AS (SELECT id FROM bench.stream WHERE do_close UNION ALL SELECT id FROM bench.old WHERE do_close),
         u AS (UPDATE tickets t SET state = 'closed', closed_at = now(), updated_at = now(), version = t.version + 1
                 FROM x WHERE t.id = x.id)
    INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor)
    SELECT id, 'close', 'resolved', 'closed', 'callcenter' FROM x;
  WHEN 'return_visit' THEN
    WITH x AS (SELECT s.id, s.sat, t.state FROM bench.stream s JOIN tickets t ON t.id = s.id WHERE s.do_visit),
         u AS (UPDATE tickets t SET satisfaction = x.sat, updated_at = now(), version = t.version + 1
                 FROM x WHERE t.id = x.id)
    INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor, satisfaction)
    SELECT id, 'return_visit', state, state, 'callcenter', sat FROM x;
  END CASE;
END
$fn$;
SQL
say "  stream: $(thousands "$(sql "SELECT count(*) FROM bench.stream")") new tickets, $(thousands "$(sql "SELECT count(*) FROM bench.old")") old open tickets to resolve ($(sql "SELECT count(*) FILTER (WHERE do_close) FROM bench.old") of them closed too)"
[[ $(sql "SELECT count(*) FROM reporting.queue") == 0 ]] || die "reporting.queue is not empty before the stream"
sql "CHECKPOINT" >/dev/null

# The consumers' settings are the service's (services/reporting/store.c, rp_apply): every batch in
# its own transaction with synchronous_commit=off, jit=off, enable_seqscan=off.
STAGES=(created classify assign accept sla_accept reply sla_first_response breach resolve sla_resolution close return_visit)
# svc_totals: sets S_EV S_TK S_RR S_BATCH, summed over the processes' /metrics (bash's /dev/tcp:
# no process started per poll); S_SEEN counts the processes that answered.
svc_totals() {
  local port fd k v _
  IN_READ=1
  S_EV=0 S_TK=0 S_RR=0 S_BATCH=0 S_SEEN=0 S_RESYNC=0
  for port in "${SVC_PORTS[@]}"; do
    { exec {fd}<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || continue
    { printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' 1>&"$fd"; } 2>/dev/null || true
    S_SEEN=$((S_SEEN + 1))
    while read -r -t 5 k v _ <&"$fd"; do
      v=${v%$'\r'}
      v=${v%%.*}
      [[ $v =~ ^[0-9]+$ ]] || continue
      case $k in
        redress_reporting_events_applied_total) S_EV=$((S_EV + v)) ;;
        redress_reporting_tickets_refreshed_total) S_TK=$((S_TK + v)) ;;
        redress_reporting_rollup_rows_changed_total) S_RR=$((S_RR + v)) ;;
        redress_reporting_batches_total) S_BATCH=$((S_BATCH + v)) ;;
        redress_reporting_resyncs_total) S_RESYNC=$((S_RESYNC + v)) ;;
      esac
    done
    exec {fd}>&-
  done
  after_read
}
svc_alive() {
  local p i=0
  for p in "${SVC_PIDS[@]}"; do
    rd_pid_alive "$p" || { tail -n 20 "$WORK/reporting-$i.log" >&2; die "redress-reporting $i (pid $p) exited $1 (its log above)"; }
    i=$((i + 1))
  done
}
SVC_PORTS=()
if [[ $DRAIN == service ]]; then
  cp "$SVC_SRC" "$WORK/redress-reporting"
  for ((c = 0; c < CONSUMERS; c++)); do
    port=$(rd_free_port)
    SVC_PORTS+=("$port")
    REDRESS_REPORTING_HTTP_PORT=$port REDRESS_REPORTING_BATCH=$BATCH \
      REDRESS_REPORTING_POLL_MS=${REDRESS_REPORTING_POLL_MS:-20} \
      "$WORK/redress-reporting" 2>"$WORK/reporting-$c.log" &
    SVC_PIDS+=("$!")
  done
  # Started when every process answers; idle once it wrote last month's report (at start) and the
  # queue stayed empty: a few quiet seconds.
  t=$EPOCHREALTIME
  while :; do
    svc_alive "at start"
    svc_totals
    ((S_SEEN == CONSUMERS)) && break
    awk -v s="$(secs_since "$t")" 'BEGIN { exit !(s > 60) }' && die "the redress-reporting processes do not answer on /metrics after 60 s"
    snooze 0.2
  done
  snooze 5
  svc_totals
  ((S_RESYNC == 0)) || die "redress-reporting resynced its settings at start (it would queue every ticket): reporting.settings differ from its configuration"
  [[ $(sql "SELECT count(*) FROM reporting.queue") == 0 ]] || die "reporting.queue is not empty after the processes started"
  say "  $CONSUMERS redress-reporting processes started ($(secs_since "$t") s; batch $BATCH, poll_ms ${REDRESS_REPORTING_POLL_MS:-20}); they set per batch synchronous_commit=off, jit=off, enable_seqscan=off"
else
  say "  $CONSUMERS psql sessions, each CALL bench.drain(): apply_queue(part, $BATCH) per partition in turn from its own, one transaction each, with the service's settings (synchronous_commit=off, jit=off, enable_seqscan=off)"
fi

printf '  %-20s %9s %9s %11s %9s %11s  %s\n' stage events tickets rollup_rows drain_s events/s "produce_s"
EV_TOTAL=0 DRAIN_MS_TOTAL=0 TK_TOTAL=0 RR_TOTAL=0 CPU_ACC='' BATCHES=0
for st in "${STAGES[@]}"; do
  if [[ $DRAIN == service ]]; then svc_totals; e0=$S_EV t0=$S_TK r0=$S_RR b0=$S_BATCH; fi
  tp=$EPOCHREALTIME
  # the stage and its count in one transaction: the service may apply events as soon as they commit
  ev=$(sql "BEGIN; SELECT bench.stage('$st'); SELECT count(*) FROM reporting.queue; COMMIT" | tail -n 1)
  produce_s=$(secs_since "$tp")
  cpu_snap ca
  td=$EPOCHREALTIME
  if [[ $DRAIN == service ]]; then
    # drained when the processes' applied events reach the stage's; polled every 20 ms
    while :; do
      svc_totals
      ((S_EV - e0 >= ev)) && break
      svc_alive "in stage $st"
      snooze 0.02
    done
    cpu_snap cb
    d_ms=$(awk -v a="$EPOCHREALTIME" -v b="$td" 'BEGIN { printf "%.0f", (a - b) * 1000 }')
    d_ev=$((S_EV - e0)) d_tk=$((S_TK - t0)) d_rr=$((S_RR - r0))
    BATCHES=$((BATCHES + S_BATCH - b0))
    wall_s=$(secs_since "$td")
  else
    BGPIDS=()
    for ((c = 0; c < CONSUMERS; c++)); do
      psql_ -c "SET synchronous_commit = off; SET jit = off; SET enable_seqscan = off" -c "CALL bench.drain('$st', $c, $CONSUMERS, $BATCH)" >/dev/null 2>"$WORK/drain-$st-$c.err" &
      BGPIDS+=("$!")
    done
    for p in "${BGPIDS[@]}"; do wait "$p" || { cat "$WORK/drain-$st-"*.err >&2; die "a consumer failed in stage $st (above)"; }; done
    BGPIDS=()
    cpu_snap cb
    wall_s=$(secs_since "$td")
    # the drain's span by the server's clock: first consumer's start to last consumer's end
    read -r d_ms d_ev d_tk d_rr < <(sql "SELECT round(extract(epoch FROM max(finished) - min(started)) * 1000), sum(events), sum(tickets), sum(rollup_rows)
                                           FROM bench.drain_log WHERE stage = '$st'" | tr '|' ' ')
  fi
  cpu_add CPU_ACC "$ca" "$cb"
  left=$(sql "SELECT count(*) FROM reporting.queue")
  ((left == 0)) || die "stage $st: $left events left in the queue after the consumers were done"
  ((d_ev == ev)) || die "stage $st: $ev events queued, the consumers applied $d_ev"
  EV_TOTAL=$((EV_TOTAL + ev)) DRAIN_MS_TOTAL=$((DRAIN_MS_TOTAL + d_ms)) TK_TOTAL=$((TK_TOTAL + d_tk)) RR_TOTAL=$((RR_TOTAL + d_rr))
  printf '  %-20s %9s %9s %11s %9s %11s  %s\n' "$st" "$ev" "$d_tk" "$d_rr" "$(awk -v m="$d_ms" 'BEGIN { printf "%.2f", m / 1000 }')" \
    "$(fdiv "$ev" "$(awk -v m="$d_ms" 'BEGIN { print m / 1000 }')")" "$produce_s (wall $wall_s)"
done
DRAIN_S=$(awk -v m="$DRAIN_MS_TOTAL" 'BEGIN { printf "%.2f", m / 1000 }')
EVPS=$(fdiv "$EV_TOTAL" "$DRAIN_S")
say "  total: $(thousands "$EV_TOTAL") events ($(thousands "$TK_TOTAL") ticket refreshes, $(thousands "$RR_TOTAL") rollup row changes) drained in $DRAIN_S s -> $EVPS events/s"
say "  $(cpu_line "$CPU_ACC") (while draining)"
PG_CPU_S=$(cpu_secs_pg "$CPU_ACC")
EV_PER_CPU_S=$(fdiv "$EV_TOTAL" "$PG_CPU_S")
say "  PostgreSQL used $PG_CPU_S CPU-seconds: $EV_PER_CPU_S events per CPU-second, i.e. about $((EV_PER_CPU_S * NPROC)) events/s if it had all $NPROC CPUs to itself"
if [[ $DRAIN == service ]]; then
  say "  batches: $BATCHES with events (redress_reporting_batches_total); $(cat "$WORK"/reporting-*.log | grep -cE 'level=(warn|error)' || true) warning/error lines in the processes' logs"
  stop_svc
else
  say "  batches: $(sql "SELECT sum(calls) FROM bench.drain_log") apply_queue calls, $(sql "SELECT sum(busy_skips) FROM bench.drain_log") found their partition held by the other consumer"
fi
# The upkeep must leave the facts equal to what fact_source computes now, for every ticket touched.
bad=$(sql "SET jit = off; SELECT count(*) FROM (
  SELECT ticket_id, last_seq, last_sla_seq, business_type, channel, category, department, team, agent, region, severity, state,
         created_at, first_response_at, resolved_at, closed_at, frt_s, frt_bs, res_s, res_bs, reopens, is_repeat, is_duplicate,
         visit_at, satisfaction, clk, clk_at, esc_level, esc_at FROM reporting.ticket_facts
   WHERE ticket_id IN (SELECT id FROM bench.stream UNION ALL SELECT id FROM bench.old)
  EXCEPT
  SELECT ticket_id, last_seq, last_sla_seq, business_type, channel, category, department, team, agent, region, severity, state,
         created_at, first_response_at, resolved_at, closed_at, frt_s, frt_bs, res_s, res_bs, reopens, is_repeat, is_duplicate,
         visit_at, satisfaction, clk, clk_at, esc_level, esc_at
    FROM reporting.fact_source(ARRAY(SELECT id FROM bench.stream UNION ALL SELECT id FROM bench.old))) x" | tail -n 1)
say "  facts of the $(thousands $((STREAM + $(sql "SELECT count(*) FROM bench.old")))) tickets touched equal reporting.fact_source(): $([[ $bad == 0 ]] && echo yes || echo "NO ($bad differ)")"

# ---- 4. dashboard ------------------------------------------------------------------------------------

hr "4. dashboard: rollups against the raw tables"
# as the service's dashboard sessions (dashboard.c: SET jit = off); the raw queries too
export PGOPTIONS="-c jit=off"
T_VAC2=$EPOCHREALTIME
sql "VACUUM (ANALYZE) reporting.rollup_hour, reporting.rollup_day, reporting.rollup_month, reporting.ticket_facts, tickets, sla_clocks, sla_escalations, ticket_classifications" >/dev/null
say "  VACUUM (ANALYZE) after the stream (what autovacuum would do by itself): $(secs_since "$T_VAC2") s"
read -r TODAY D0 D1 PM CM M12 < <(sql "WITH d AS (SELECT (now() AT TIME ZONE '$TZ_REP')::date AS today)
  SELECT today, today - 29, today + 1, (date_trunc('month', today) - interval '1 month')::date, date_trunc('month', today)::date,
         (date_trunc('month', today) - interval '11 months')::date FROM d" | tr '|' ' ')
DEPT=D03
at() { printf "('%s'::timestamp AT TIME ZONE '%s')" "$1" "$TZ_REP"; } # a local midnight as an instant
S0=$(at "$D0") S1=$(at "$D1") PM0=$(at "$PM") PM1=$(at "$CM") Y0=$(at "$M12") T0D=$(at "$TODAY")
L="AT TIME ZONE '$TZ_REP'"
say "  rows the rollup queries read: rollup_day in the 30 days $(thousands "$(sql "SELECT count(*) FROM reporting.rollup_day WHERE bucket >= '$D0'")"), rollup_month in the month $(thousands "$(sql "SELECT count(*) FROM reporting.rollup_month WHERE bucket = '$PM'")") and in the 12 months $(thousands "$(sql "SELECT count(*) FROM reporting.rollup_month WHERE bucket >= '$M12'")"), rollup_hour today $(thousands "$(sql "SELECT count(*) FROM reporting.rollup_hour WHERE bucket >= '$TODAY'")"), open facts $(thousands "$(sql "SELECT count(*) FROM reporting.ticket_facts WHERE state NOT IN ('resolved', 'closed')")")"
say "  today ($TZ_REP) $TODAY; 30 days = $D0 .. $TODAY; the month = $PM (the last complete one); 12 months = $M12 .. $CM; department $DEPT"

QN=() QR=() QW=()
# 1
QN+=("volume by business type, 30 days (kpi_daily)")
QR+=("SELECT day, business_type, sum(received) AS received FROM reporting.kpi_daily
 WHERE day >= '$D0' AND day < '$D1' GROUP BY 1, 2 HAVING sum(received) > 0 ORDER BY 1, 2")
QW+=("SELECT (created_at $L)::date AS day, COALESCE(business_type, '') AS business_type, count(*) AS received
  FROM tickets WHERE created_at >= $S0 AND created_at < $S1 GROUP BY 1, 2 ORDER BY 1, 2")
# 2
QN+=("SLA compliance by clock, 30 days (sla_compliance_daily)")
QR+=("SELECT day, clock, sum(met) AS met, sum(breached) AS breached, reporting.rate(sum(met), sum(met + breached)) AS on_time_rate
  FROM reporting.sla_compliance_daily WHERE day >= '$D0' AND day < '$D1' GROUP BY 1, 2 HAVING sum(met + breached) > 0 ORDER BY 1, 2")
QW+=("SELECT (x.at $L)::date AS day, c.clock, count(*) FILTER (WHERE NOT x.br) AS met, count(*) FILTER (WHERE x.br) AS breached,
       reporting.rate(count(*) FILTER (WHERE NOT x.br), count(*)) AS on_time_rate
  FROM sla_clocks c CROSS JOIN LATERAL (SELECT COALESCE(c.breached_at, c.stopped_at) AS at, c.breached_at IS NOT NULL AS br) x
 WHERE (c.breached_at IS NOT NULL OR c.outcome = 'met') AND x.at >= $S0 AND x.at < $S1 GROUP BY 1, 2 ORDER BY 1, 2")
# 3
QN+=("top-10 categories, 30 days (rollup_day)")
QR+=("SELECT category, sum(received) AS received FROM reporting.rollup_day
 WHERE bucket >= '$D0' AND bucket < '$D1' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10")
QW+=("SELECT COALESCE(category, '') AS category, count(*) AS received FROM tickets
 WHERE created_at >= $S0 AND created_at < $S1 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10")
# 4
QN+=("repeat-complaint rate per day, 30 days (kpi_daily)")
QR+=("SELECT day, sum(repeats) AS repeats, sum(received) AS received, reporting.rate(sum(repeats), sum(received)) AS repeat_rate
  FROM reporting.kpi_daily WHERE day >= '$D0' AND day < '$D1' AND business_type = 'complaint'
 GROUP BY 1 HAVING sum(received) > 0 ORDER BY 1")
QW+=("SELECT (t.created_at $L)::date AS day, count(c.repeat_of) AS repeats, count(*) AS received,
       reporting.rate(count(c.repeat_of), count(*)) AS repeat_rate
  FROM tickets t LEFT JOIN ticket_classifications c ON c.ticket_id = t.id
 WHERE t.business_type = 'complaint' AND t.created_at >= $S0 AND t.created_at < $S1 GROUP BY 1 ORDER BY 1")
# The contributions of the raw tables to one period [A, B): per ticket event, the ticket's current
# owner, as the facts have them (the latest return visit only).
ev_sql() { # A B [extra WHERE on tickets t]
  local a=$1 b=$2 w=${3:-true}
  cat <<SQL
  SELECT COALESCE(t.owner_unit, '') AS dept, COALESCE(t.owner_team, '') AS team, COALESCE(t.owner_agent, '') AS agent,
         1 AS received, (c.repeat_of IS NOT NULL)::int AS repeats, (t.reopen_count > 0)::int AS reopened,
         0 AS responded, 0::bigint AS frt_bs, 0 AS resolved, 0::bigint AS res_bs, 0 AS closed, 0 AS met, 0 AS breached,
         0 AS esc, 0 AS visits, 0 AS satisfied
    FROM tickets t LEFT JOIN ticket_classifications c ON c.ticket_id = t.id
   WHERE t.created_at >= $a AND t.created_at < $b AND $w
  UNION ALL
  SELECT COALESCE(t.owner_unit, ''), COALESCE(t.owner_team, ''), COALESCE(t.owner_agent, ''), 0, 0, 0,
         1, floor(extract(epoch FROM t.first_response_at - t.created_at))::bigint, 0, 0, 0, 0, 0, 0, 0, 0
    FROM tickets t WHERE t.first_response_at >= $a AND t.first_response_at < $b AND $w
  UNION ALL
  SELECT COALESCE(t.owner_unit, ''), COALESCE(t.owner_team, ''), COALESCE(t.owner_agent, ''), 0, 0, 0, 0, 0,
         1, floor(extract(epoch FROM t.resolved_at - t.created_at))::bigint, 0, 0, 0, 0, 0, 0
    FROM tickets t WHERE t.resolved_at >= $a AND t.resolved_at < $b AND $w
  UNION ALL
  SELECT COALESCE(t.owner_unit, ''), COALESCE(t.owner_team, ''), COALESCE(t.owner_agent, ''), 0, 0, 0, 0, 0, 0, 0,
         1, 0, 0, 0, 0, 0
    FROM tickets t WHERE t.closed_at >= $a AND t.closed_at < $b AND $w
  UNION ALL
  SELECT COALESCE(t.owner_unit, ''), COALESCE(t.owner_team, ''), COALESCE(t.owner_agent, ''), 0, 0, 0, 0, 0, 0, 0, 0,
         (k.breached_at IS NULL)::int, (k.breached_at IS NOT NULL)::int, 0, 0, 0
    FROM sla_clocks k JOIN tickets t ON t.id = k.ticket_id
   WHERE (k.breached_at IS NOT NULL OR k.outcome = 'met')
     AND COALESCE(k.breached_at, k.stopped_at) >= $a AND COALESCE(k.breached_at, k.stopped_at) < $b AND $w
  UNION ALL
  SELECT COALESCE(t.owner_unit, ''), COALESCE(t.owner_team, ''), COALESCE(t.owner_agent, ''), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         1, 0, 0
    FROM sla_escalations e JOIN tickets t ON t.id = e.ticket_id WHERE e.at >= $a AND e.at < $b AND $w
  UNION ALL
  SELECT COALESCE(t.owner_unit, ''), COALESCE(t.owner_team, ''), COALESCE(t.owner_agent, ''), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
         0, 1, (v.satisfaction >= 4)::int
    FROM (SELECT DISTINCT ON (h.ticket_id) h.ticket_id, h.at, h.satisfaction FROM ticket_history h
           WHERE h.kind = 'return_visit' ORDER BY h.ticket_id, h.seq DESC) v
    JOIN tickets t ON t.id = v.ticket_id WHERE v.at >= $a AND v.at < $b AND $w
SQL
}
# 5
QN+=("department table, the month (department_scorecard)")
QR+=("SELECT department, received, resolved, closed, reopened, repeats, repeat_rate, sla_met, sla_breached, on_time_rate,
       escalations, visits, satisfied, satisfaction_rate, agents
  FROM reporting.department_scorecard WHERE month = '$PM' ORDER BY department")
QW+=("SELECT dept, sum(received), sum(resolved), sum(closed), sum(reopened), sum(repeats), reporting.rate(sum(repeats), sum(received)),
       sum(met), sum(breached), reporting.rate(sum(met), sum(met + breached)), sum(esc), sum(visits), sum(satisfied),
       reporting.rate(sum(satisfied), sum(visits)), count(DISTINCT agent) FILTER (WHERE agent <> '')
  FROM ($(ev_sql "$PM0" "$PM1")) ev GROUP BY dept ORDER BY dept")
# 6
QN+=("agent drill-down, one department, the month (agent_scorecard)")
QR+=("SELECT team, agent, received, resolved, closed, reopened, repeats, sla_met, sla_breached, on_time_rate, escalations,
       visits, satisfied, satisfaction_rate, avg_frt_business_h, avg_res_business_h, p90_res_business_s
  FROM reporting.agent_scorecard WHERE month = '$PM' AND department = '$DEPT' ORDER BY team, agent")
QW+=("SELECT team, agent, sum(received), sum(resolved), sum(closed), sum(reopened), sum(repeats), sum(met), sum(breached),
       reporting.rate(sum(met), sum(met + breached)), sum(esc), sum(visits), sum(satisfied), reporting.rate(sum(satisfied), sum(visits)),
       round(sum(frt_bs)::numeric / NULLIF(sum(responded), 0) / 3600, 2), round(sum(res_bs)::numeric / NULLIF(sum(resolved), 0) / 3600, 2),
       reporting.hist_quantile(ARRAY[count(*) FILTER (WHERE resolved = 1 AND reporting.hbucket(res_bs) = 0),
         count(*) FILTER (WHERE resolved = 1 AND reporting.hbucket(res_bs) = 1), count(*) FILTER (WHERE resolved = 1 AND reporting.hbucket(res_bs) = 2),
         count(*) FILTER (WHERE resolved = 1 AND reporting.hbucket(res_bs) = 3), count(*) FILTER (WHERE resolved = 1 AND reporting.hbucket(res_bs) = 4),
         count(*) FILTER (WHERE resolved = 1 AND reporting.hbucket(res_bs) = 5), count(*) FILTER (WHERE resolved = 1 AND reporting.hbucket(res_bs) = 6),
         count(*) FILTER (WHERE resolved = 1 AND reporting.hbucket(res_bs) = 7), count(*) FILTER (WHERE resolved = 1 AND reporting.hbucket(res_bs) = 8)]::bigint[], 0.9)
  FROM ($(ev_sql "$PM0" "$PM1" "t.owner_unit = '$DEPT'")) ev GROUP BY team, agent ORDER BY team, agent")
# 7
QN+=("monthly KPIs, 12 months (kpi_monthly)")
QR+=("SELECT month, sum(received) AS received, sum(resolved) AS resolved, sum(closed) AS closed,
       reporting.rate(sum(repeats), sum(received)) AS repeat_rate, reporting.rate(sum(sla_met), sum(sla_met + sla_breached)) AS on_time_rate,
       reporting.rate(sum(satisfied), sum(visits)) AS satisfaction_rate, round(sum(res_s_sum)::numeric / NULLIF(sum(resolved), 0) / 3600, 2) AS avg_res_h
  FROM reporting.kpi_monthly WHERE month >= '$M12' GROUP BY 1 ORDER BY 1")
QW+=("SELECT month, sum(received), sum(resolved), sum(closed), reporting.rate(sum(repeats), sum(received)),
       reporting.rate(sum(met), sum(met + breached)), reporting.rate(sum(satisfied), sum(visits)),
       round(sum(res_s)::numeric / NULLIF(sum(resolved), 0) / 3600, 2)
  FROM (SELECT date_trunc('month', t.created_at $L)::date AS month, 1 AS received, (c.repeat_of IS NOT NULL)::int AS repeats,
               0 AS resolved, 0::bigint AS res_s, 0 AS closed, 0 AS met, 0 AS breached, 0 AS visits, 0 AS satisfied
          FROM tickets t LEFT JOIN ticket_classifications c ON c.ticket_id = t.id WHERE t.created_at >= $Y0
        UNION ALL
        SELECT date_trunc('month', resolved_at $L)::date, 0, 0, 1, floor(extract(epoch FROM resolved_at - created_at))::bigint, 0, 0, 0, 0, 0
          FROM tickets WHERE resolved_at >= $Y0
        UNION ALL
        SELECT date_trunc('month', closed_at $L)::date, 0, 0, 0, 0, 1, 0, 0, 0, 0 FROM tickets WHERE closed_at >= $Y0
        UNION ALL
        SELECT date_trunc('month', COALESCE(breached_at, stopped_at) $L)::date, 0, 0, 0, 0, 0,
               (breached_at IS NULL)::int, (breached_at IS NOT NULL)::int, 0, 0
          FROM sla_clocks WHERE (breached_at IS NOT NULL OR outcome = 'met') AND COALESCE(breached_at, stopped_at) >= $Y0
        UNION ALL
        SELECT date_trunc('month', v.at $L)::date, 0, 0, 0, 0, 0, 0, 0, 1, (v.satisfaction >= 4)::int
          FROM (SELECT DISTINCT ON (h.ticket_id) h.ticket_id, h.at, h.satisfaction FROM ticket_history h
                 WHERE h.kind = 'return_visit' ORDER BY h.ticket_id, h.seq DESC) v WHERE v.at >= $Y0) x
 GROUP BY 1 ORDER BY 1")
# 8
QN+=("backlog by age (backlog: the facts, not a rollup)")
QR+=("SELECT age, sum(tickets) AS tickets, min(oldest) AS oldest FROM reporting.backlog GROUP BY 1 ORDER BY 1")
QW+=("SELECT CASE WHEN now() - created_at < interval '1 day' THEN '0-1d' WHEN now() - created_at < interval '3 days' THEN '1-3d'
            WHEN now() - created_at < interval '7 days' THEN '3-7d' WHEN now() - created_at < interval '30 days' THEN '7-30d'
            ELSE '30d+' END AS age, count(*) AS tickets, min(created_at) AS oldest
  FROM tickets WHERE state NOT IN ('resolved', 'closed') GROUP BY 1 ORDER BY 1")
# 9
QN+=("today by hour (rollup_hour)")
QR+=("SELECT bucket, sum(received) AS received, sum(resolved) AS resolved, sum(closed) AS closed, sum(visits) AS visits
  FROM reporting.rollup_hour WHERE bucket >= '$TODAY' GROUP BY 1 HAVING sum(received + resolved + closed + visits) > 0 ORDER BY 1")
QW+=("SELECT date_trunc('hour', x.at $L) AS bucket, sum(x.r), sum(x.s), sum(x.c), sum(x.v)
  FROM (SELECT created_at AS at, 1 AS r, 0 AS s, 0 AS c, 0 AS v FROM tickets WHERE created_at >= $T0D
        UNION ALL SELECT resolved_at, 0, 1, 0, 0 FROM tickets WHERE resolved_at >= $T0D
        UNION ALL SELECT closed_at, 0, 0, 1, 0 FROM tickets WHERE closed_at >= $T0D
        UNION ALL SELECT v.at, 0, 0, 0, 1
          FROM (SELECT DISTINCT ON (h.ticket_id) h.ticket_id, h.at FROM ticket_history h
                 WHERE h.kind = 'return_visit' ORDER BY h.ticket_id, h.seq DESC) v WHERE v.at >= $T0D) x
 GROUP BY 1 ORDER BY 1")

# 10: what the dashboard itself sends for a 30-day page (services/reporting/dashboard.c, sql_scan_all):
# one scan of rollup_day with GROUPING SETS. No raw-table twin.
QN+=("the dashboard page's own scan, 30 days (dashboard.c, GROUPING SETS)")
QR+=("SELECT r.bucket::text, r.business_type, r.category, r.department, NULL::text, NULL::text,
       sum(r.received), sum(r.resolved), sum(r.repeats), sum(r.visits), sum(r.satisfied), sum(r.res_bs),
       sum(r.accept_met), sum(r.first_response_met), sum(r.chase_update_met), sum(r.resolution_met),
       sum(r.accept_breached), sum(r.first_response_breached), sum(r.chase_update_breached), sum(r.resolution_breached)
  FROM reporting.rollup_day r WHERE r.bucket BETWEEN '$D0'::date AND '$TODAY'::date
 GROUP BY GROUPING SETS ((r.bucket, r.business_type), (r.category), (r.department))")
QW+=("")

mkdir -p "$WORK/q"
chmod 777 "$WORK/q"
# time_runs N SQL: prints the N times (ms) of SQL in one session, each as psql's \timing measures
# it (sent, planned, executed, every row received).
time_runs() {
  { printf '\\timing on\n\\o /dev/null\n'; for ((j = 0; j < $1; j++)); do printf '%s;\n' "$2"; done; } |
    psql_ | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p'
}
pct() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) { print "NA NA NA"; exit } m = (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2); printf "%.1f %.1f %.1f\n", m, a[NR], a[1] }'; }
RAW_CAP_MS=${BENCH_RAW_CAP_MS:-60000}
printf '  %-62s %22s %18s %8s %9s\n' "query" "rollup p50/max (runs)" "raw p50 (runs)" "raw/rollup" "answers"
RES_Q='' NPASS=0 NMATCH=0 SLOW=() NRAW=0
for q in "${QW[@]}"; do [[ -n $q ]] && NRAW=$((NRAW + 1)); done
for ((i = 0; i < ${#QN[@]}; i++)); do
  n=$((i + 1))
  if [[ -z ${QW[i]} ]]; then
    warm=$(time_runs 1 "${QR[i]}")
    runs=$RUNS
    awk -v t="$warm" 'BEGIN { exit !(t > 2000) }' && ((runs > 5)) && runs=5
    read -r r50 rmax _ < <(time_runs "$runs" "${QR[i]}" | pct)
    rows=$(psql_ -tA -c "${QR[i]}" | wc -l)
    v=$(awk -v t="$r50" 'BEGIN { print (t <= 100 ? "PASS" : "SHORT") }')
    [[ $v == PASS ]] && NPASS=$((NPASS + 1))
    [[ $v == SHORT ]] && SLOW+=("$n")
    printf '  %-62s %8s/%-8s (%2d) %13s %8s %9s  %s (%d rows)\n' "$n. ${QN[i]}" "$r50" "$rmax" "$runs" "-" "-" "-" "$v" "$rows"
    RES_Q+=" q${n}_rollup_p50_ms=$r50 q${n}_rollup_max_ms=$rmax"
    continue
  fi
  # the two answers, in one snapshot (one transaction: one now() for the backlog's ages)
  psql_ -tA -F'|' >/dev/null <<SQL
BEGIN ISOLATION LEVEL REPEATABLE READ;
\o $WORK/q/q$n-rollup.txt
${QR[i]};
\o $WORK/q/q$n-raw.txt
${QW[i]};
\o
COMMIT;
SQL
  if cmp -s "$WORK/q/q$n-rollup.txt" "$WORK/q/q$n-raw.txt"; then
    ans="MATCH"
    NMATCH=$((NMATCH + 1))
  else
    ans="MISMATCH"
  fi
  rows=$(wc -l <"$WORK/q/q$n-rollup.txt")
  # a slow query gets fewer runs: 5 when its warm-up run took more than 2 s
  warm=$(time_runs 1 "${QR[i]}")
  runs=$RUNS
  awk -v t="$warm" 'BEGIN { exit !(t > 2000) }' && ((runs > 5)) && runs=5
  read -r r50 rmax _ < <(time_runs "$runs" "${QR[i]}" | pct)
  raw_times=()
  for ((j = 0; j < RAW_RUNS; j++)); do
    t=$(time_runs 1 "${QW[i]}")
    raw_times+=("$t")
    awk -v t="$t" -v c="$RAW_CAP_MS" 'BEGIN { exit !(t > c) }' && break
  done
  read -r w50 _ _ < <(printf '%s\n' "${raw_times[@]}" | pct)
  ratio=$(awk -v a="$w50" -v b="$r50" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }')
  v=$(awk -v t="$r50" 'BEGIN { print (t <= 100 ? "PASS" : "SHORT") }')
  [[ $v == PASS ]] && NPASS=$((NPASS + 1))
  [[ $v == SHORT ]] && SLOW+=("$n")
  printf '  %-62s %8s/%-8s (%2d) %10s ms (%d) %7sx %9s  %s (%d rows)\n' "$n. ${QN[i]}" "$r50" "$rmax" "$runs" "$w50" "${#raw_times[@]}" "$ratio" "$ans" "$v" "$rows"
  if [[ $ans == MISMATCH ]]; then
    diff "$WORK/q/q$n-rollup.txt" "$WORK/q/q$n-raw.txt" | head -n 6 | sed 's/^/      /'
  fi
  RES_Q+=" q${n}_rollup_p50_ms=$r50 q${n}_rollup_max_ms=$rmax q${n}_raw_ms=$w50 q${n}_ratio=$ratio q${n}=$ans"
done
say "  (rollup: p50/max of $RUNS runs (5 when the warm-up took more than 2 s) in one session after one warm-up; raw: median of up to $RAW_RUNS runs, one session each,"
say "   fewer when one takes more than $((RAW_CAP_MS / 1000)) s; both as psql's \\timing: planning, execution and the rows received)"
for n in "${SLOW[@]}"; do
  say "  why query $n takes more than 100 ms (EXPLAIN (ANALYZE, BUFFERS): the top, the scans, spilled sorts):"
  { printf 'SET max_parallel_workers_per_gather = %s;\n' "$(sql "SHOW max_parallel_workers_per_gather")"; printf 'EXPLAIN (ANALYZE, BUFFERS) %s;\n' "${QR[n - 1]}"; } |
    psql_ -tA >"$WORK/q/q$n-explain.txt"
  { head -n 2 "$WORK/q/q$n-explain.txt"; grep -E 'Scan on|Scan using|Workers Launched|Sort Method: external|Execution Time' "$WORK/q/q$n-explain.txt" | grep -v 'Values Scan' | head -n 8; } | cut -c1-200 | sed 's/^/      /'
done

# ---- targets ----------------------------------------------------------------------------------------

verdict() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "NA" || v == "") print "n/a"; else if ((op == ">=" && v + 0 >= t) || (op == "<=" && v + 0 <= t)) print "PASS"; else print "SHORT" }'; }
hr "targets ($NPROC CPUs, $(thousands "$TICKETS") tickets, fsync=$(sql "SHOW fsync"))"
printf '  %-66s %10s  %s\n' "dashboard queries from the rollups, p50 <= 100 ms each" "$NPASS of ${#QN[@]}" "$( ((NPASS == ${#QN[@]})) && echo PASS || echo SHORT)"
printf '  %-66s %10s  %s\n' "rollup upkeep, events/s ($CONSUMERS x $DRAIN, batch $BATCH), target >= 20000" "$EVPS" "$(verdict "$EVPS" '>=' 20000)"
printf '  %-66s %10s\n' "answers equal to the raw tables' (MATCH)" "$NMATCH of $NRAW"
say "RESULT tickets=$TICKETS months=$MONTHS load_s=$LOAD_S facts_s=$FACTS_S rollups_s=$ROLL_S prep_s=$PREP_S db_bytes=$DB_BYTES rollup_hour_rows=$(sql "SELECT count(*) FROM reporting.rollup_hour") rollup_day_rows=$(sql "SELECT count(*) FROM reporting.rollup_day") rollup_month_rows=$(sql "SELECT count(*) FROM reporting.rollup_month") events=$EV_TOTAL drain_s=$DRAIN_S events_per_s=$EVPS events_per_pg_cpu_s=$EV_PER_CPU_S drain=$DRAIN consumers=$CONSUMERS batch=$BATCH dashboard_jit=off dashboard_pass=$NPASS/${#QN[@]} match=$NMATCH/$NRAW$RES_Q fsync=$(sql "SHOW fsync")"
