#!/usr/bin/env bash
# tests/integration/privacy.sh BUILD_DIR: personal data, erasure, retention, the audit log and the
# database roles of deploy/sql/0008_privacy_audit.sql (docs/privacy.md), through the real stack.
#
#  1. grants: the five services run as a LOGIN role IN ROLE redress_app (a user= override of the
#     connection string), redressctl's ordinary commands too (calendar and org load, agent online,
#     submit, act); tickets go through to classified, assigned, accepted, closed, SLA clocks armed
#     and reporting facts; no service logs a permission error.
#  2. the application role: cannot UPDATE, DELETE or TRUNCATE audit_log or ticket_history (not even
#     after setting redress.audit_unlock itself), cannot call the erasure or retention functions,
#     can INSERT into audit_log (the server stamps db_user); the owner's own UPDATE of
#     ticket_history is refused by the guard trigger.
#  3. erasure (redressctl customer erase, as a LOGIN role IN ROLE redress_admin): afterwards no
#     column of any table of any schema (information_schema driven: text, varchar, jsonb, arrays,
#     uuid and bytea) holds the customer's name, phone, e-mail, ref or old UUIDv5 id; every report
#     (rollups, KPI views, scorecards, SLA compliance, backlog, monthly reports) is identical
#     before and after, and after a full sweep; the audit trail records it; customer show works.
#  4. retention: an anonymise run and then a purge run (policies with 0 days), reports identical
#     after each and after a sweep plus a rebuild of everything left.
# Every failed check is printed; the exit status is 1 if any failed. Everything runs in a private
# directory with free ports; services and roles are removed however the script ends.
#
# Run by ctest under tests/lib/with-stack.sh; by hand it wraps itself in it:
#   tests/integration/privacy.sh build
set -euo pipefail
B=${1:?usage: privacy.sh BUILD_DIR}
B=$(cd "$B" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z ${REDRESS_PG_DSN:-} || -z ${REDRESS_REDIS_URL:-} || -z ${REDRESS_TEST_DIR:-} ]]; then
  exec "$ROOT/tests/lib/with-stack.sh" -- "$0" "$B"
fi
# shellcheck source=tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"

PSQL=$(rd_pg_bindir)/psql
CTL=$B/tools/redressctl
WAIT_SECS=${REDRESS_PRIVACY_WAIT_SECS:-120}
SERVICES=(intake classifier dispatcher escalation reporting)
APP="app_test_$$_${RANDOM}"
ADM="adm_test_$$_${RANDOM}"
T=$(mktemp -d "$REDRESS_TEST_DIR/privacy.XXXXXX")
FAILED=()

say() { printf 'privacy: %s\n' "$*" >&2; }
fail() {
  FAILED+=("$1")
  printf 'privacy: FAIL: %s\n' "$1" >&2
}
die() {
  printf 'privacy: error: %s\n' "$*" >&2
  exit 1
}
owner() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$REDRESS_PG_DSN" "$@"; }
as_app() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$REDRESS_PG_DSN user=$APP" "$@"; }
# The five services, started by tests/lib/services.sh, each logging in as the application role.
PROBLEMS=$T/problems.txt
# shellcheck source=tests/lib/services.sh
source "$ROOT/tests/lib/services.sh"
SVC_EXTRA_ENV=("REDRESS_PG_DSN=$REDRESS_PG_DSN user=$APP" "REDRESS_REPORTING_SWEEP_INTERVAL_MS=1000")

q() { owner -tAc "$1"; }
ctl_app() { "$CTL" --dsn "$REDRESS_PG_DSN user=$APP" --endpoint "${ZMQ[intake_router]:-tcp://127.0.0.1:1}" "$@"; }
ctl_adm() { "$CTL" --dsn "$REDRESS_PG_DSN user=$ADM" "$@"; }

# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
  local rc=$? svc
  trap - EXIT INT TERM HUP
  for svc in "${SERVICES[@]}"; do
    stop_svc "$svc"
  done
  if ((rc != 0)); then
    for svc in "${SERVICES[@]}"; do
      echo "---- last 15 lines of the $svc log:" >&2
      tail -n 15 "$T/$svc.log" 2>/dev/null >&2 || true
    done
  fi
  owner -c "DROP OWNED BY $APP, $ADM" -c "DROP ROLE IF EXISTS $APP" -c "DROP ROLE IF EXISTS $ADM" >/dev/null 2>&1 || true
  rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

for svc in "${SERVICES[@]}"; do
  [[ -x $B/services/$svc/redress-$svc ]] || die "$B/services/$svc/redress-$svc not built"
done
[[ -x $CTL ]] || die "$CTL not built"
command -v curl >/dev/null 2>&1 || die "curl not found: install the 'curl' package"

# wait_for WHAT SQL: until the query answers t (at most WAIT_SECS: a bound, not a measurement)
wait_for() {
  local what=$1 sql=$2 i
  for ((i = 0; i < WAIT_SECS * 10; i++)); do
    [[ $(q "$sql" 2>/dev/null || true) == t ]] && return 0
    sleep 0.1
  done
  fail "gave up after ${WAIT_SECS}s waiting for $what"
  return 1
}

# ---- roles -------------------------------------------------------------------------------------
owner -c "CREATE ROLE $APP LOGIN IN ROLE redress_app" -c "CREATE ROLE $ADM LOGIN IN ROLE redress_admin" >/dev/null
[[ $(as_app -tAc "SELECT current_user") == "$APP" ]] || die "could not connect as $APP"
say "roles $APP (redress_app) and $ADM (redress_admin)"

# ---- 1. the services as redress_app ------------------------------------------------------------
# redressctl's ordinary configuration commands as the application role
ctl_app calendar load "$ROOT/deploy/config/calendars.example.json" >/dev/null || fail "calendar load as $APP"
ctl_app org load "$ROOT/deploy/config/org.demo.json" >/dev/null || fail "org load as $APP"
ctl_app rules load "$ROOT/deploy/config/rules.default.json" >/dev/null || fail "rules load as $APP"
printf 'Product,Issue\nMortgage,Late fee\nBilling,Charged twice\n' >"$T/taxonomy.csv"
ctl_app taxonomy load "$T/taxonomy.csv" >/dev/null || fail "taxonomy load as $APP"
for svc in "${SERVICES[@]}"; do start_svc "$svc" || die "$svc did not start: $(cat "$PROBLEMS"; tail -n 5 "$T/$svc.log")"; done
for agent in $(q "SELECT id FROM agents WHERE active ORDER BY id"); do
  ctl_app agent online "$agent" --ttl 3600 --redis "$REDRESS_REDIS_URL" >/dev/null || fail "agent online $agent as $APP"
done

# The data subject P, a customer Q for retention, an unrelated R whose ticket stays open.
P_REF="PRIV-$$-ref" P_NAME="Zhao Privacy$$" P_PHONE="1391$(printf '%07d' $(($$ % 10000000)))"
P_EMAIL="p$$.subject@example.org"
Q_REF="RETN-$$-ref" Q_NAME="Retention Person$$" Q_PHONE="1382$(printf '%07d' $(($$ % 10000000)))"
R_REF="KEEP-$$-ref"
submit() { # REF NAME PHONE EMAIL SUBJECT BODY -> ticket id
  ctl_app submit --channel hotline --customer "$1" --name "$2" --phone "$3" --email "$4" --subject "$5" --body "$6"
}
declare -a P_T=() Q_T=()
for i in 1 2 3; do
  P_T+=("$(submit "$P_REF" "$P_NAME" "$P_PHONE" "$P_EMAIL" "停电 $i call $P_PHONE" \
    "客户 $P_NAME ($P_REF) 电话 $P_PHONE 邮箱 $P_EMAIL 第$i次报修，停电三天")") || die "submit for P failed"
done
for i in 1 2; do
  Q_T+=("$(submit "$Q_REF" "$Q_NAME" "$Q_PHONE" "q$$@example.org" "Billing $i $Q_PHONE" \
    "I am $Q_NAME, ref $Q_REF; charged twice")") || die "submit for Q failed"
done
R_T=$(submit "$R_REF" "Open Person" "13700000000" "r@example.org" "Question" "How do I pay?") || die "submit for R failed"
ALL=("${P_T[@]}" "${Q_T[@]}" "$R_T")
say "submitted ${#ALL[@]} tickets"
joined=$(IFS=,; echo "${ALL[*]}")
ids_sql="ARRAY['${joined//,/\',\'}']::uuid[]"

wait_for "every ticket assigned to an agent" \
  "SELECT bool_and(state = 'assigned' AND owner_agent IS NOT NULL) FROM tickets WHERE id = ANY ($ids_sql)" || true

# work P's and Q's tickets to closed: accept, reply, (P: chase by the customer), resolve, close, visit
for t in "${P_T[@]}" "${Q_T[@]}"; do
  agent=$(q "SELECT owner_agent FROM tickets WHERE id = '$t'")
  phone=$P_PHONE
  [[ " ${Q_T[*]} " == *" $t "* ]] && phone=$Q_PHONE
  ctl_app act "$t" accept --actor "$agent" >/dev/null || fail "accept $t"
  ctl_app act "$t" reply --actor "$agent" --note "called back on $phone" >/dev/null || fail "reply $t"
done
ctl_app act "${P_T[0]}" chase --actor "$P_REF" --note "还是没人来, 我是 $P_NAME $P_PHONE" >/dev/null || fail "chase"
for t in "${P_T[@]}" "${Q_T[@]}"; do
  agent=$(q "SELECT owner_agent FROM tickets WHERE id = '$t'")
  ctl_app act "$t" reply --actor "$agent" --note "done" >/dev/null || fail "reply $t"
  ctl_app act "$t" resolve --actor "$agent" >/dev/null || fail "resolve $t"
  ctl_app act "$t" close --actor "$agent" >/dev/null || fail "close $t"
  ctl_app act "$t" return_visit --actor visit --satisfaction 5 >/dev/null || fail "return_visit $t"
done

CAUGHT_UP="SELECT (SELECT count(*) FROM reporting.queue) = 0 AND (SELECT count(*) FROM sla_queue) = 0
  AND NOT EXISTS (SELECT 1 FROM tickets t LEFT JOIN reporting.ticket_facts f ON f.ticket_id = t.id
                   WHERE f.ticket_id IS NULL
                      OR f.last_seq < (SELECT max(h.seq) FROM ticket_history h WHERE h.ticket_id = t.id)
                      OR f.last_sla_seq < COALESCE((SELECT max(e.seq) FROM sla_clocks c JOIN sla_events e
                                                      ON e.clock_id = c.id WHERE c.ticket_id = t.id), 0))"
wait_for "P's and Q's tickets closed" \
  "SELECT bool_and(state = 'closed') FROM tickets WHERE id = ANY ($ids_sql) AND id <> '$R_T'" || true
wait_for "SLA clocks armed for every ticket" \
  "SELECT bool_and(EXISTS (SELECT 1 FROM sla_clocks c WHERE c.ticket_id = t.id)) FROM tickets t
    WHERE t.id = ANY ($ids_sql)" || true
wait_for "every ticket classified" \
  "SELECT count(*) = ${#ALL[@]} FROM ticket_classifications WHERE ticket_id = ANY ($ids_sql)" || true
wait_for "reporting caught up" "$CAUGHT_UP" || true
[[ $(q "SELECT sum(received) FROM reporting.kpi_daily") == "${#ALL[@]}" ]] ||
  fail "reporting.kpi_daily does not count the ${#ALL[@]} tickets: $(q "SELECT sum(received) FROM reporting.kpi_daily")"
if grep -iE 'permission denied|42501|must be owner' "$T"/*.log >"$T/perm" 2>/dev/null; then
  fail "a service running as $APP logged permission errors: $(head -c 1500 "$T/perm")"
fi
say "1. done: the stack ran as $APP"

# ---- 2. the application role -------------------------------------------------------------------
# Each statement in a subtransaction: NOTICE 'OUTCOME|SQLSTATE|STATEMENT'.
try_all() { # ROLE-FUNCTION FILE
  "$1" -v stmts="$(cat "$2")" 2>&1 >/dev/null <<'SQL'
SELECT set_config('privacy.stmts', :'stmts', false) IS NOT NULL AS stmts_set;
DO $$
DECLARE
    s text;
BEGIN
    FOREACH s IN ARRAY string_to_array(current_setting('privacy.stmts'), E'\n') LOOP
        BEGIN
            EXECUTE s;
            RAISE NOTICE 'SUCCEEDED|00000|%', s;
            RAISE EXCEPTION 'privacy: undo';
        EXCEPTION WHEN OTHERS THEN
            IF SQLERRM <> 'privacy: undo' THEN
                RAISE NOTICE 'REFUSED|%|%', SQLSTATE, s;
            END IF;
        END;
    END LOOP;
END
$$;
SQL
}
cat >"$T/refused.sql" <<'EOF'
UPDATE audit_log SET actor = 'x'
DELETE FROM audit_log
TRUNCATE audit_log
UPDATE ticket_history SET note = 'x'
DELETE FROM ticket_history
TRUNCATE ticket_history
WITH u AS (UPDATE ticket_history SET note = 'x' RETURNING 1) SELECT set_config('redress.audit_unlock', 'on', true), count(*) FROM u
SELECT * FROM privacy_erase_customer('nobody', NULL, 'x', 'x')
SELECT * FROM privacy_apply_retention(10, false, 'x', 'x')
SELECT privacy_redact_tickets(ARRAY[]::uuid[], ARRAY[]::text[])
UPDATE retention_policy SET active = true
INSERT INTO schema_migrations (version) VALUES ('9999')
DELETE FROM customers
DELETE FROM tickets
UPDATE sla_events SET detail = 'x'
EOF
try_all as_app "$T/refused.sql" >"$T/refusals" || true
n=0
while IFS='|' read -r outcome state stmt; do
  case ${outcome##*NOTICE:  } in
    SUCCEEDED) fail "as $APP: '$stmt' succeeded" ;;
    REFUSED) [[ $state == 42501 ]] || fail "as $APP: '$stmt' failed, but not with permission denied ($state)" ;;
    *) continue ;;
  esac
  n=$((n + 1))
done <"$T/refusals"
((n == $(wc -l <"$T/refused.sql"))) || fail "the refusals as $APP: $(head -c 1500 "$T/refusals")"
# ... where the audit log takes its INSERTs, stamped with the real login
as_app -c "INSERT INTO audit_log (actor, action, object_type, object_id, db_user)
           VALUES ('probe', 'test.probe', 'test', '1', 'forged')" >/dev/null || fail "INSERT into audit_log as $APP"
[[ $(q "SELECT db_user FROM audit_log WHERE action = 'test.probe'") == "$APP" ]] ||
  fail "audit_log.db_user is not the login role $APP: $(q "SELECT db_user FROM audit_log WHERE action = 'test.probe'")"
# even the owner changes history only through the privileged functions
if owner -c "UPDATE ticket_history SET note = note WHERE ticket_id = '$R_T'" >/dev/null 2>"$T/err"; then
  fail "the owner's UPDATE of ticket_history was not refused by the guard trigger"
fi
grep -q 'append-only' "$T/err" || fail "the guard's message: $(cat "$T/err")"
say "2. done: $APP is refused $n statements"

# ---- 3. erasure --------------------------------------------------------------------------------
REPORTS="SELECT 'hour', r::text FROM reporting.rollup_hour r
  UNION ALL SELECT 'day', r::text FROM reporting.rollup_day r
  UNION ALL SELECT 'month', r::text FROM reporting.rollup_month r
  UNION ALL SELECT 'kpi_daily', r::text FROM reporting.kpi_daily r
  UNION ALL SELECT 'kpi_monthly', r::text FROM reporting.kpi_monthly r
  UNION ALL SELECT 'sla_d', r::text FROM reporting.sla_compliance_daily r
  UNION ALL SELECT 'sla_m', r::text FROM reporting.sla_compliance_monthly r
  UNION ALL SELECT 'agents', r::text FROM reporting.agent_scorecard r
  UNION ALL SELECT 'depts', r::text FROM reporting.department_scorecard r
  UNION ALL SELECT 'backlog', r::text FROM reporting.backlog r
  UNION ALL SELECT 'monthly', (r.month, r.department, r.body)::text FROM reporting.monthly_reports r
  ORDER BY 1, 2"
snapshot() { q "$REPORTS" >"$T/reports.$1"; }
same_reports() { # LABEL: the reports now equal reports.before
  snapshot "$1"
  if ! cmp -s "$T/reports.before" "$T/reports.$1"; then
    fail "reports changed ($1): $(diff "$T/reports.before" "$T/reports.$1" | head -20)"
  fi
}
# full sweep and apply of every queue partition (the service does the same; this does not wait on it)
sweep_all() {
  q "SELECT reporting.sweep(0, 0)" >/dev/null
  wait_for "reporting caught up after a sweep" "$CAUGHT_UP" || true
}
snapshot before
[[ $(wc -l <"$T/reports.before") -gt 20 ]] || fail "the report snapshot has only $(wc -l <"$T/reports.before") rows"

OLD_ID=$(q "SELECT id FROM customers WHERE customer_ref = '$P_REF'")
[[ -n $OLD_ID ]] || die "customer $P_REF not stored"
ctl_app customer show "$P_REF" --json >"$T/dsar.json" || fail "customer show $P_REF"
if ! { grep -qF "$P_PHONE" "$T/dsar.json" && grep -qF "$P_EMAIL" "$T/dsar.json" && grep -qF "第3次报修" "$T/dsar.json"; }; then
  fail "customer show --json lacks the phone, e-mail or ticket text: $(head -c 600 "$T/dsar.json")"
fi
if ctl_app customer erase "$P_REF" --yes >"$T/out" 2>&1; then
  fail "customer erase as $APP (not redress_admin) succeeded"
fi
grep -q 'redress_admin' "$T/out" || fail "customer erase as $APP: the message does not say what to do: $(cat "$T/out")"
if ctl_adm customer erase "$P_REF" </dev/null >"$T/out" 2>&1; then fail "customer erase without --yes and no terminal"; fi
ctl_adm customer erase "$P_REF" --yes >"$T/out" 2>&1 || fail "customer erase as $ADM: $(cat "$T/out")"
say "erase: $(cat "$T/out")"
NEW_ID=$(q "SELECT DISTINCT customer_id FROM tickets WHERE id = '${P_T[0]}'")
[[ $NEW_ID != "$OLD_ID" && $(q "SELECT count(DISTINCT customer_id) FROM tickets WHERE id IN ('${P_T[0]}', '${P_T[1]}', '${P_T[2]}')") == 1 ]] ||
  fail "P's tickets were not re-keyed to one new customer id ($OLD_ID -> $NEW_ID)"
[[ $(q "SELECT count(*) FROM ticket_classifications WHERE repeat_of = ANY (ARRAY['${P_T[0]}', '${P_T[1]}']::uuid[])
         OR duplicate_of = ANY (ARRAY['${P_T[0]}', '${P_T[1]}']::uuid[])") -ge 0 ]] || true

# scan every column of every table of every schema for the personal data
scan() { # SECRET...: prints "schema.table.column: secret" per hit
  local sql="" s
  for s in "$@"; do
    sql+="SELECT '${s//\'/\'\'}'::text AS s UNION ALL "
  done
  owner -tA -v secrets="${sql% UNION ALL }" <<'SQL'
CREATE TEMP TABLE privacy_secrets AS :secrets;
DO $$
DECLARE
    c record;
    s text;
    hit boolean;
BEGIN
    FOR c IN SELECT k.table_schema, k.table_name, k.column_name, k.data_type FROM information_schema.columns k
               JOIN information_schema.tables b USING (table_schema, table_name)
              WHERE b.table_type = 'BASE TABLE' AND k.table_schema NOT IN ('pg_catalog', 'information_schema')
                AND k.table_schema NOT LIKE 'pg_temp%' AND k.table_schema NOT LIKE 'pg_toast%'
                AND (k.data_type IN ('text', 'character varying', 'character', 'jsonb', 'json', 'bytea', 'uuid',
                                     'ARRAY', 'USER-DEFINED'))
    LOOP
        FOR s IN SELECT p.s FROM privacy_secrets p LOOP
            IF c.data_type = 'bytea' THEN
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I WHERE position(convert_to($1, ''UTF8'') IN %I) > 0)',
                               c.table_schema, c.table_name, c.column_name) INTO hit USING s;
            ELSE
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I WHERE strpos(lower(%I::text), lower($1)) > 0)',
                               c.table_schema, c.table_name, c.column_name) INTO hit USING s;
            END IF;
            IF hit THEN
                RAISE NOTICE 'HIT|%.%.%|%', c.table_schema, c.table_name, c.column_name, s;
            END IF;
        END LOOP;
    END LOOP;
    RAISE NOTICE 'SCANNED|%', (SELECT count(*) FROM information_schema.columns WHERE table_schema NOT IN
                                   ('pg_catalog', 'information_schema'));
END
$$;
SQL
}
# first show the scan finds what is there (Q is not erased yet)
scan "$Q_PHONE" "$Q_REF" >"$T/scan.q" 2>&1 || fail "the scan failed: $(cat "$T/scan.q")"
if ! { grep -q 'HIT|public.customers.phone|' "$T/scan.q" && grep -q 'HIT|public.tickets.body|' "$T/scan.q"; }; then
  fail "the scan does not find Q's phone in customers and tickets: $(head -c 800 "$T/scan.q")"
fi
scan "$P_NAME" "$P_PHONE" "$P_EMAIL" "$P_REF" "$OLD_ID" >"$T/scan.p" 2>&1 || fail "the scan failed: $(cat "$T/scan.p")"
grep -q 'SCANNED|' "$T/scan.p" || fail "the scan did not finish: $(head -c 800 "$T/scan.p")"
if grep 'HIT|' "$T/scan.p" >"$T/hits"; then
  fail "personal data of the erased customer is still stored: $(sed 's/.*HIT|//' "$T/hits" | tr '\n' ' ')"
fi
same_reports after_erase
sweep_all
same_reports after_erase_sweep
ctl_app audit --operator-only --format csv >"$T/audit.csv" || fail "redressctl audit"
grep -q "customer.erase,customer,$NEW_ID" "$T/audit.csv" || fail "the audit trail lacks the erasure: $(cat "$T/audit.csv")"
if ! { grep -q ',org.load,' "$T/audit.csv" && grep -q ',calendar.load,' "$T/audit.csv" &&
  grep -q ',rules.load,' "$T/audit.csv" && grep -q ',taxonomy.load,' "$T/audit.csv" &&
  grep -q ",customer.show,customer,$NEW_ID," "$T/audit.csv"; }; then
  fail "the audit trail lacks org/calendar/rules/taxonomy.load or customer.show (re-pointed): $(cat "$T/audit.csv")"
fi
ctl_app audit --since '1 hour' --format json >"$T/audit.json" || fail "redressctl audit --format json"
grep -q '"ticket.close"' "$T/audit.json" || fail "the audit trail lacks the tickets' state changes"
if grep -qF "$OLD_ID" "$T/audit.csv" "$T/audit.json"; then fail "the audit trail shows the old customer id"; fi
if ! { ctl_adm customer erase --id "$NEW_ID" --yes >"$T/out" 2>&1 && grep -q 'erased before' "$T/out"; }; then
  fail "a second erase: $(cat "$T/out")"
fi
say "3. done: erased, nothing found, reports unchanged"

# ---- 4. retention ------------------------------------------------------------------------------
if ! { ctl_adm retention run >"$T/out" 2>&1 && grep -q 'no active' "$T/out"; }; then fail "retention run with no policy: $(cat "$T/out")"; fi
owner -c "UPDATE retention_policy SET active = (id = 'anonymise-closed'), older_than_days = 0" >/dev/null
ctl_adm retention run --dry-run >"$T/out" 2>&1 || fail "retention run --dry-run: $(cat "$T/out")"
[[ $(q "SELECT count(*) FROM tickets WHERE redacted_at IS NULL AND state = 'closed'") == 2 ]] ||
  fail "the dry run changed something"
ctl_adm retention run --batch 1 >"$T/out" 2>&1 || fail "retention run (anonymise): $(cat "$T/out")"
say "anonymise: $(tr '\n' ' ' <"$T/out")"
[[ $(q "SELECT count(*) FROM tickets WHERE state = 'closed' AND redacted_at IS NULL") == 0 ]] ||
  fail "closed tickets left unredacted after the anonymise run"
[[ $(q "SELECT count(*) FROM customers WHERE customer_ref IN ('$Q_REF', '$R_REF')") == 1 ]] ||
  fail "Q (all tickets closed) should be erased and R (open ticket) kept"
scan "$Q_NAME" "$Q_PHONE" "$Q_REF" >"$T/scan.q2" 2>&1 || true
if grep 'HIT|' "$T/scan.q2" >"$T/hits"; then
  fail "Q's personal data after the anonymise run: $(sed 's/.*HIT|//' "$T/hits" | tr '\n' ' ')"
fi
same_reports after_anonymise
owner -c "UPDATE retention_policy SET active = (id = 'purge-closed'), older_than_days = 0" >/dev/null
ctl_adm retention run --batch 2 >"$T/out" 2>&1 || fail "retention run (purge): $(cat "$T/out")"
say "purge: $(tr '\n' ' ' <"$T/out")"
left=$(q "SELECT count(*) FROM tickets WHERE id = ANY ($ids_sql)")
kept=$(q "SELECT count(*) FROM tickets t WHERE t.state = 'closed'")
# a closed ticket may be kept only while a remaining ticket names it as repeat_of / duplicate_of
[[ $(q "SELECT count(*) FROM tickets t WHERE t.state = 'closed' AND NOT EXISTS (SELECT 1 FROM ticket_classifications k
        WHERE k.repeat_of = t.id OR k.duplicate_of = t.id)") == 0 ]] || fail "closed tickets left after the purge ($kept)"
[[ $(q "SELECT count(*) FROM tickets WHERE id = '$R_T'") == 1 ]] || fail "the open ticket was purged"
say "purge left $left of ${#ALL[@]} tickets"
same_reports after_purge
sweep_all
same_reports after_purge_sweep
ctl_app report rebuild >/dev/null || fail "report rebuild"
wait_for "reporting caught up after a rebuild" "$CAUGHT_UP" || true
same_reports after_purge_rebuild
[[ $(q "SELECT count(*) FROM audit_log WHERE action IN ('retention.anonymise', 'retention.purge')") -ge 2 ]] ||
  fail "retention runs are not in the audit log"
if grep -iE 'permission denied|42501' "$T"/*.log >"$T/perm" 2>/dev/null; then
  fail "a service logged permission errors: $(head -c 1500 "$T/perm")"
fi
for svc in "${SERVICES[@]}"; do
  rd_pid_alive "${PID[$svc]}" || fail "$svc is no longer running"
done

if ((${#FAILED[@]} > 0)); then
  printf 'privacy: %d check(s) failed:\n' "${#FAILED[@]}" >&2
  printf '  - %s\n' "${FAILED[@]}" >&2
  exit 1
fi
say "all checks passed"
