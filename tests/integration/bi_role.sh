#!/usr/bin/env bash
# tests/integration/bi_role.sh: the BI role of docs/bi.md, as an analyst would use it.
#
# In a private PostgreSQL (tests/lib/with-stack.sh --no-redis: REDRESS_PG_DSN, REDRESS_TEST_DIR),
# loads a small deterministic data set (tickets with personal data, history, a classification, SLA
# clocks and escalations, a stored monthly report; every ticket refreshed with reporting.refresh),
# creates a LOGIN role IN ROLE redress_bi, and as that role:
#   * runs every ```sql block of docs/bi.md: each must succeed;
#   * may read each granted view;
#   * may not SELECT raw tables (customers, tickets, ticket_history, ...) nor the reporting
#     internals (ticket_facts, the rollups, the queue, settings): permission denied;
#   * may not INSERT, UPDATE, DELETE or TRUNCATE any table or view of schemas reporting and
#     public (tried, and checked with has_table_privilege);
#   * may not CREATE TABLE / VIEW in public or reporting;
#   * sees no column of reporting.ticket_fact named like name, phone, email, subject or body, and
#     none of the customers' names, phones, e-mails or the tickets' texts in its rows;
#   * may not call reporting.refresh (nor apply_queue, sweep, fact_source).
# Every failed check is printed; the exit status is 1 if any failed. The role is dropped and the
# scratch files removed however the script ends; the role's name is unique to this run and
# everything else is in the private cluster, so runs in parallel do not meet.
#
# Run by hand it wraps itself in with-stack.sh: tests/integration/bi_role.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z ${REDRESS_PG_DSN:-} || -z ${REDRESS_TEST_DIR:-} ]]; then
  exec "$ROOT/tests/lib/with-stack.sh" --no-redis -- "$0" "$@"
fi
# shellcheck source=tests/lib/servers.sh
source "$ROOT/tests/lib/servers.sh"

PY=/usr/bin/python3 # Debian's; the first python3 on PATH may be another one
DOC=$ROOT/docs/bi.md
PSQL=$(rd_pg_bindir)/psql
ROLE="bi_test_$$_${RANDOM}"
WORK=$(mktemp -d "$REDRESS_TEST_DIR/bi_role.XXXXXX")
FAILED=()

say() { printf 'bi_role: %s\n' "$*" >&2; }
fail() {
  FAILED+=("$1")
  printf 'bi_role: FAIL: %s\n' "$1" >&2
}

owner() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$REDRESS_PG_DSN" "$@"; }
# As the BI login role: a later keyword of a connection string overrides an earlier one.
as_bi() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$REDRESS_PG_DSN user=$ROLE" "$@"; }

cleanup() {
  owner -c "DROP ROLE IF EXISTS $ROLE" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ -x $PY ]] || {
  say "error: $PY not found: install the 'python3' package"
  exit 1
}
[[ -r $DOC ]] || {
  say "error: $DOC not found"
  exit 1
}

# ---- the data set ---------------------------------------------------------------------------------
# Times relative to now, so that the examples' "last 30 days" and "this month" find rows.
say "loading the data set"
owner <<'SQL'
INSERT INTO departments (id, name) VALUES ('north', '华北分公司'), ('south', '华南分公司');
INSERT INTO customers (id, customer_ref, name, phone, email) VALUES
  ('00000000-0000-4000-8000-00000000c001', 'bi-c1', '张三', '13800138000', 'zhangsan@example.com'),
  ('00000000-0000-4000-8000-00000000c002', 'bi-c2', '李四', '13900139000', 'lisi@example.com');
INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, subject, body, state, business_type, severity,
                     priority, owner_unit, owner_team, owner_agent, reopen_count, occurred_at, created_at,
                     first_response_at, resolved_at, closed_at) VALUES
  ('00000000-0000-4000-8000-000000000b01', 'bi', 'b1', 'hotline', '00000000-0000-4000-8000-00000000c001',
   '停电三天无人处理', '我家从周一开始停电，电话 13800138000', 'closed', 'fault_repair', 'major', 1, 'north', 'n-team',
   'a-1', 0, now() - interval '3 days', now() - interval '3 days', now() - interval '71 hours',
   now() - interval '2 days', now() - interval '1 day'),
  ('00000000-0000-4000-8000-000000000b02', 'bi', 'b2', 'web', '00000000-0000-4000-8000-00000000c002',
   'Billing error', 'I was charged twice, mail lisi@example.com', 'in_progress', 'complaint', 'general', 3, 'north',
   'n-team', 'a-2', 0, now() - interval '10 days', now() - interval '10 days', now() - interval '9 days', NULL, NULL),
  ('00000000-0000-4000-8000-000000000b03', 'bi', 'b3', 'app', '00000000-0000-4000-8000-00000000c002',
   '电表读数异常', '读数比上月多一倍', 'assigned', 'complaint', 'general', 3, 'south', 's-team', 'a-3', 0,
   now() - interval '40 days', now() - interval '40 days', NULL, NULL, NULL),
  ('00000000-0000-4000-8000-000000000b04', 'bi', 'b4', 'hotline', '00000000-0000-4000-8000-00000000c001',
   '抢修太慢', '第二次报修', 'resolved', 'fault_repair', 'general', 2, 'south', 's-team', 'a-3', 1,
   now() - interval '35 days', now() - interval '35 days', now() - interval '34 days', now() - interval '33 days', NULL),
  ('00000000-0000-4000-8000-000000000b05', 'bi', 'b5', 'email', '00000000-0000-4000-8000-00000000c002',
   'Question', 'How do I pay?', 'new', NULL, NULL, NULL, NULL, NULL, NULL, 0,
   now() - interval '2 hours', now() - interval '2 hours', NULL, NULL, NULL),
  ('00000000-0000-4000-8000-000000000b06', 'bi', 'b6', 'hotline', '00000000-0000-4000-8000-00000000c001',
   '又停电了', '同一个问题', 'waiting_customer', 'fault_repair', 'major', 1, 'north', 'n-team', 'a-1', 0,
   now() - interval '1 day', now() - interval '1 day', now() - interval '20 hours', NULL, NULL);
INSERT INTO ticket_history (ticket_id, at, kind, from_state, to_state)
  SELECT id, created_at, 'created', NULL, 'new' FROM tickets;
INSERT INTO ticket_history (ticket_id, at, kind, from_state, to_state, actor, satisfaction) VALUES
  ('00000000-0000-4000-8000-000000000b01', now() - interval '1 day', 'return_visit', 'closed', 'closed', 'v', 5),
  ('00000000-0000-4000-8000-000000000b04', now() - interval '32 days', 'return_visit', 'resolved', 'resolved', 'v', 2);
INSERT INTO ticket_classifications (ticket_id, business_type, business_type_source, business_type_confidence,
                                    category_source, category_confidence, severity, priority, priority_source,
                                    repeat_of, duplicate_of) VALUES
  ('00000000-0000-4000-8000-000000000b06', 'fault_repair', 'default', 1, 'default', 1, 'major', 1, 'default',
   '00000000-0000-4000-8000-000000000b01', NULL);
INSERT INTO sla_clocks (ticket_id, clock, cycle, policy_id, target_ms, started_at, state, outcome, breached_at,
                        stopped_at, stage_code, stage_at, armed_at) VALUES
  ('00000000-0000-4000-8000-000000000b01', 'accept', 1, 'test', 300000, now() - interval '3 days', 'stopped', 'met',
   NULL, now() - interval '3 days' + interval '2 minutes', '{}', '{}', now() - interval '3 days'),
  ('00000000-0000-4000-8000-000000000b02', 'resolution', 1, 'test', 86400000, now() - interval '10 days', 'running',
   NULL, now() - interval '9 days', NULL, '{}', '{}', now() - interval '10 days');
INSERT INTO sla_escalations (clock_id, ticket_id, clock, level, role, action, at)
  SELECT id, ticket_id, clock, l, 'team_lead', 'notify', breached_at + (l - 1) * interval '1 day'
    FROM sla_clocks, generate_series(1, 2) AS l WHERE breached_at IS NOT NULL;
SELECT reporting.refresh(array_agg(id)) FROM tickets;
INSERT INTO reporting.monthly_reports (month, department, body, generated_by)
  SELECT (date_trunc('month', now() AT TIME ZONE 'Asia/Shanghai') - interval '1 month')::date, d,
         jsonb_build_object('received', 2, 'on_time_rate', 0.5), 'bi_role.sh'
    FROM unnest(ARRAY['', 'north']) AS d;
SQL
facts=$(owner -tAc "SELECT count(*) FROM reporting.ticket_facts")
[[ $facts == 6 ]] || fail "the data set: $facts fact rows, not 6"

owner -c "CREATE ROLE $ROLE LOGIN PASSWORD 'bi-test' IN ROLE redress_bi" >/dev/null
say "role $ROLE (IN ROLE redress_bi) created"
[[ $(as_bi -tAc "SELECT current_user") == "$ROLE" ]] || {
  fail "could not connect as $ROLE"
  exit 1
}

# ---- every ```sql block of docs/bi.md ---------------------------------------------------------------
# Written to WORK/block_NNN.sql; the index has "NNN LINE TITLE" (the line of the fence, the block's
# first comment or its first line).
"$PY" - "$DOC" "$WORK" >"$WORK/index" <<'PY'
import sys
doc, out = sys.argv[1], sys.argv[2]
blocks, cur, start = [], None, 0
with open(doc, encoding="utf-8") as f:
    for no, line in enumerate(f, 1):
        s = line.rstrip("\n")
        if cur is None and s.strip() == "```sql":
            cur, start = [], no
        elif cur is not None and s.strip() == "```":
            blocks.append((start, cur))
            cur = None
        elif cur is not None:
            cur.append(s)
if cur is not None:
    sys.exit("unterminated ```sql block at line %d" % start)
for i, (start, lines) in enumerate(blocks, 1):
    with open("%s/block_%03d.sql" % (out, i), "w", encoding="utf-8") as g:
        g.write("\n".join(lines) + "\n")
    title = next((l.strip() for l in lines if l.strip()), "(empty)")
    print("%03d %d %s" % (i, start, title))
PY
nblocks=$(wc -l <"$WORK/index")
say "docs/bi.md has $nblocks sql blocks"
((nblocks >= 15)) || fail "docs/bi.md has only $nblocks \`\`\`sql blocks (an example per KPI was expected)"
while read -r n line title; do
  if as_bi -f "$WORK/block_$n.sql" >"$WORK/block_$n.out" 2>"$WORK/block_$n.err"; then
    say "ok   docs/bi.md:$line $title ($(grep -c . "$WORK/block_$n.out") lines)"
  else
    fail "docs/bi.md:$line $title: $(tr '\n' ' ' <"$WORK/block_$n.err")"
  fi
done <"$WORK/index"

# ---- what it may read -----------------------------------------------------------------------------
GRANTED=(reporting.kpi_daily reporting.kpi_monthly reporting.sla_compliance_daily reporting.sla_compliance_monthly
  reporting.agent_scorecard reporting.department_scorecard reporting.ticket_fact reporting.backlog
  reporting.monthly_reports)
for v in "${GRANTED[@]}"; do
  printf 'SELECT %s AS view, count(*) FROM %s UNION ALL\n' "'$v'" "$v"
done >"$WORK/granted.sql"
echo "SELECT 'sum(received)', sum(received) FROM reporting.kpi_monthly;" >>"$WORK/granted.sql"
if as_bi -tA -F ' ' -f "$WORK/granted.sql" >"$WORK/granted" 2>&1; then
  grep -qx 'reporting.ticket_fact 6' "$WORK/granted" || fail "reporting.ticket_fact does not show the 6 tickets"
  grep -qx 'sum(received) 6' "$WORK/granted" || fail "reporting.kpi_monthly does not count the 6 tickets received"
else
  fail "SELECT from the granted views: $(cat "$WORK/granted")"
fi

# ---- what it may not do ---------------------------------------------------------------------------
# Every refusal is tried in one session (connections are slow to make): WORK/refused.txt has one
# "MODE STATEMENT" per line, MODE p (must fail with permission denied, SQLSTATE 42501) or a (must
# fail; writes to a view that is not updatable fail before permissions are checked). Each runs in
# a subtransaction that is rolled back even when it succeeds, so a wrongly granted write leaves
# nothing behind; each outcome is a NOTICE "OUTCOME|SQLSTATE|STATEMENT|MESSAGE".

# Raw tables and the reporting internals: no SELECT.
for t in customers tickets ticket_history ticket_classifications ticket_attachments inbound_events sla_clocks \
  sla_events sla_escalations departments agents reporting.ticket_facts reporting.rollup_hour reporting.rollup_day \
  reporting.rollup_month reporting.queue reporting.settings reporting.work_intervals reporting.sweep_marks; do
  echo "p SELECT 1 FROM $t LIMIT 1"
done >"$WORK/refused.txt"
# Every table and view of the schemas reporting and public: no INSERT, UPDATE, DELETE, TRUNCATE.
owner -tA -F ' ' -c "
  SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'p' ELSE 'a' END, s
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
         LATERAL (SELECT quote_ident(a.attname) AS col FROM pg_attribute a
                   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     AND a.attidentity = '' AND a.attgenerated = '' ORDER BY a.attnum LIMIT 1) a,
         LATERAL (VALUES (format('INSERT INTO %s DEFAULT VALUES', c.oid::regclass)),
                         (format('UPDATE %s SET %s = %s WHERE false', c.oid::regclass, a.col, a.col)),
                         (format('DELETE FROM %s WHERE false', c.oid::regclass)),
                         (CASE WHEN c.relkind IN ('r', 'p') THEN format('TRUNCATE %s', c.oid::regclass) END)) v(s)
   WHERE n.nspname IN ('reporting', 'public') AND c.relkind IN ('r', 'v', 'm', 'p') AND s IS NOT NULL
   ORDER BY c.oid::regclass::text" >>"$WORK/refused.txt"
nwrites=$(grep -c -E '^. (INSERT|UPDATE|DELETE|TRUNCATE) ' "$WORK/refused.txt" || true)
((nwrites > 100)) || fail "only $nwrites write statements for the tables and views of reporting and public?"
# No DDL in public or reporting; no maintenance functions.
cat >>"$WORK/refused.txt" <<'EOF2'
p CREATE TABLE public.bi_probe (i int)
p CREATE TABLE reporting.bi_probe (i int)
p CREATE VIEW public.bi_probe AS SELECT 1 AS i
p CREATE VIEW reporting.bi_probe AS SELECT 1 AS i
p CREATE FUNCTION reporting.bi_probe() RETURNS int LANGUAGE sql AS 'SELECT 1'
p SELECT reporting.refresh(ARRAY[]::uuid[])
p SELECT reporting.apply_queue(0, 10)
p SELECT reporting.sweep(0, 0)
p SELECT count(*) FROM reporting.fact_source(ARRAY[]::uuid[])
p SELECT reporting.work_s('x', now())
EOF2
nrefused=$(wc -l <"$WORK/refused.txt")
# The statements reach the DO block through a setting: psql does not substitute variables inside
# the block's dollar quotes.
as_bi -v stmts="$(cat "$WORK/refused.txt")" >/dev/null 2>"$WORK/refusals" <<'SQL' || fail "the refusals did not run: $(cat "$WORK/refusals")"
SELECT set_config('bi_role.stmts', :'stmts', false) IS NOT NULL AS stmts_set;
DO $$
DECLARE
    line text;
    s text;
BEGIN
    FOREACH line IN ARRAY string_to_array(current_setting('bi_role.stmts'), E'\n') LOOP
        s := substr(line, 3);
        BEGIN
            EXECUTE s;
            RAISE NOTICE 'SUCCEEDED|00000|%|', s;
            RAISE EXCEPTION 'bi_role: undo';
        EXCEPTION WHEN OTHERS THEN
            IF SQLERRM <> 'bi_role: undo' THEN
                RAISE NOTICE 'REFUSED|%|%|%', SQLSTATE, s, replace(SQLERRM, E'\n', ' ');
            END IF;
        END;
    END LOOP;
END
$$;
SQL
declare -A mode=()
while read -r m stmt; do mode[$stmt]=$m; done <"$WORK/refused.txt"
seen=0
while IFS='|' read -r outcome state stmt msg; do
  case ${outcome##*NOTICE:  } in
    SUCCEEDED) fail "as $ROLE: '$stmt' succeeded" ;;
    REFUSED)
      if [[ ${mode[$stmt]:-p} == p && $state != 42501 ]]; then
        fail "as $ROLE: '$stmt' failed, but not with permission denied: $msg"
      fi
      ;;
    *) continue ;;
  esac
  seen=$((seen + 1))
done <"$WORK/refusals"
((seen == nrefused)) || fail "$nrefused statements tried, $seen outcomes reported: $(head -c 2000 "$WORK/refusals")"
owner -c "DROP TABLE IF EXISTS public.bi_probe, reporting.bi_probe" >/dev/null 2>&1 || true

# The catalog agrees: no write privilege of any kind on any table or view of reporting and public.
as_bi -tA -F ' ' -c "
  SELECT c.oid::regclass, p
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
         unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES']) AS p
   WHERE n.nspname IN ('reporting', 'public') AND c.relkind IN ('r', 'v', 'm', 'p')
     AND has_table_privilege(c.oid, p)" >"$WORK/privs" 2>&1 || fail "the privilege query: $(cat "$WORK/privs")"
while read -r rel p; do
  fail "$ROLE has $p on $rel"
done <"$WORK/privs"

# ---- no personal data in ticket_fact -----------------------------------------------------------------
cols=$(as_bi -tAc "SELECT string_agg(attname, ', ') FROM pg_attribute
                    WHERE attrelid = 'reporting.ticket_fact'::regclass AND attnum > 0 AND NOT attisdropped
                      AND attname ~* '(name|phone|email|e_mail|subject|body)'" 2>&1)
[[ -z $cols ]] || fail "reporting.ticket_fact has personal columns: $cols"
as_bi -tAc "SELECT row_to_json(f) FROM reporting.ticket_fact f" >"$WORK/facts.json" 2>&1 ||
  fail "SELECT row_to_json(ticket_fact): $(cat "$WORK/facts.json")"
for secret in 张三 李四 13800138000 13900139000 zhangsan@example.com lisi@example.com 停电三天无人处理 \
  'Billing error' 'charged twice' bi-c1 bi-c2 00000000-0000-4000-8000-00000000c00; do
  if grep -qF -- "$secret" "$WORK/facts.json"; then
    fail "reporting.ticket_fact shows '$secret'"
  fi
done

# ---- the two functions it is given ------------------------------------------------------------------
as_bi -tAc "SELECT reporting.rate(1, 3), reporting.hist_quantile(ARRAY[1,1,1,1,1,1,1,1,2]::bigint[], 0.9)" \
  >"$WORK/out" 2>&1 || fail "reporting.rate / hist_quantile: $(cat "$WORK/out")"
[[ $(cat "$WORK/out") == "0.3333|-1" ]] || fail "reporting.rate(1, 3), hist_quantile(..., 0.9): $(cat "$WORK/out")"

if ((${#FAILED[@]} > 0)); then
  printf 'bi_role: %d check(s) failed:\n' "${#FAILED[@]}" >&2
  printf '  - %s\n' "${FAILED[@]}" >&2
  exit 1
fi
say "all checks passed ($nblocks doc examples, $nrefused statements refused)"
