/*
 * redress-reporting end to end: the real service beside a real intake, classifier, dispatcher and
 * escalation, against the private PostgreSQL and Redis of tests/lib/with-stack.sh.
 *
 *  (a) tickets submitted through intake are classified, dispatched, accepted, replied to,
 *      transferred, resolved, return-visited (回访), closed and reopened; the service's rollups
 *      (hour, day and month grains alike) then equal the KPIs recomputed by plain SQL from
 *      tickets, ticket_history and sla_clocks -- and business-time first-response sums equal
 *      rd_calendar_between on the reporting calendar;
 *  (b) gap repair: with the service stopped, tickets change (through intake and by SQL) and their
 *      queue rows are deleted (missed events); after a restart the sweep finds them and the
 *      numbers are right again;
 *  (c) duplicate events (every ticket queued three more times) change no number;
 *  (d) a monthly report appears for the previous month once it has tickets;
 *  (e) an unknown reporting.calendar stops the service at start, non-zero, with a clear message.
 *
 * The tests run in this order and share the stack.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "etest.h"
#include "rd_calendar.h"
#include "rd_time.h"

#ifndef REDRESS_REPORTING_BIN
#error "REDRESS_REPORTING_BIN must name the reporting binary"
#endif

#define E(x)     REDRESS__V1__ERROR_CODE__ERROR_##x
#define K(x)     REDRESS__V1__ACTION_KIND__ACTION_##x
#define WAIT_MS  20000
#define NTICKETS 12
#define CALENDAR "cn-mainland"
#define LONG_TTL INT64_C(3600000)

static PGconn *pg;
static redisContext *rd;
static itest_intake in;
static rd_client *cli;
static pid_t classifier;
static char classifierLog[400];
static dtest_dispatcher disp;
static etest_service esc;
static dtest_dispatcher rep; /* the reporting service: pid, http_port, log_path (dtest's helpers) */
static char ids[NTICKETS][37];

/* Fails with the reporting service's log when cond is false. */
#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            dtest_tail(&rep, 60);                                                                                      \
            fail_msg("%s", #cond);                                                                                     \
        }                                                                                                              \
    } while (0)

/* ---- the reporting service ------------------------------------------------------------------- */

static bool repStart(const char *extra)
{
    rep.http_port = itest_free_port();
    const char *dir = getenv("REDRESS_TEST_DIR");
    snprintf(rep.log_path, sizeof(rep.log_path), "%s/reporting-%d.log", dir ? dir : "/tmp", rep.http_port);
    char env[1024];
    snprintf(env, sizeof(env),
             "REDRESS_REPORTING_HTTP_BIND=127.0.0.1;REDRESS_REPORTING_HTTP_PORT=%d;REDRESS_REPORTING_CALENDAR=" CALENDAR
             ";REDRESS_REPORTING_POLL_MS=20;REDRESS_REPORTING_SWEEP_INTERVAL_MS=500;"
             "REDRESS_REPORTING_MONTHLY_CHECK_MS=500;REDRESS_REPORTING_BATCH=7;REDRESS_LOG_LEVEL=debug;%s",
             rep.http_port, extra ? extra : "");
    rep.pid = itest_spawn(REDRESS_REPORTING_BIN, env, rep.log_path);
    if (rep.pid <= 0)
        return false;
    if (dtest_wait_health(&rep, 200, WAIT_MS))
        return true;
    dtest_tail(&rep, 40);
    return false;
}

static void repStop(void)
{
    dtest_stop(&rep);
}

/* A counter of the reporting service's /metrics (-1: absent or unreachable). */
static double repMetric(const char *name)
{
    etest_service s;
    memset(&s, 0, sizeof(s));
    s.d.http_port = rep.http_port;
    return etest_metric(&s, name);
}

/* ---- what the numbers must be ------------------------------------------------------------------ */

/* Every ticket's facts are as fresh as its history and SLA events, and nothing is queued. */
static const char *const STALE_SQL =
    "SELECT (SELECT count(*) FROM reporting.queue)"
    "     + (SELECT count(*) FROM tickets t LEFT JOIN reporting.ticket_facts f ON f.ticket_id = t.id"
    "         WHERE f.ticket_id IS NULL"
    "            OR f.last_seq < (SELECT COALESCE(max(h.seq), 0) FROM ticket_history h WHERE h.ticket_id = t.id)"
    "            OR f.last_sla_seq < (SELECT COALESCE(max(e.seq), 0) FROM sla_events e WHERE e.ticket_id = t.id))";

/* Escalation has applied every history row, then reporting every change. */
static void settle(void)
{
    CHECK(etest_settle(pg, WAIT_MS));
    CHECK(dtest_wait(pg, 0, WAIT_MS, "%s", STALE_SQL));
}

/* The KPIs by plain SQL over the raw tables, as "name=value,...". */
static const char *plainKpis(void)
{
    return dtest_str(
        pg, "SELECT concat_ws(',',"
            " 'received=' || count(*), 'resolved=' || count(resolved_at), 'closed=' || count(closed_at),"
            " 'reopened=' || count(*) FILTER (WHERE reopen_count > 0), 'reopens=' || COALESCE(sum(reopen_count), 0),"
            " 'responded=' || count(first_response_at),"
            " 'frt_s=' || COALESCE(sum(floor(extract(epoch FROM first_response_at - created_at))), 0)::bigint,"
            " 'res_s=' || COALESCE(sum(floor(extract(epoch FROM resolved_at - created_at))), 0)::bigint,"
            " 'visits=' || (SELECT count(DISTINCT ticket_id) FROM ticket_history WHERE kind = 'return_visit'),"
            " 'satisfied=' || (SELECT count(*) FROM (SELECT DISTINCT ON (ticket_id) satisfaction FROM ticket_history"
            "                   WHERE kind = 'return_visit' ORDER BY ticket_id, seq DESC) v WHERE v.satisfaction >= 4),"
            " 'sla_met=' || (SELECT count(*) FROM sla_clocks WHERE outcome = 'met' AND breached_at IS NULL),"
            " 'sla_breached=' || (SELECT count(*) FROM sla_clocks WHERE breached_at IS NOT NULL))"
            " FROM tickets");
}

/* The same KPIs from one rollup table. */
static const char *rollupKpis(const char *grain)
{
    return dtest_str(pg,
                     "SELECT concat_ws(',',"
                     " 'received=' || COALESCE(sum(received), 0), 'resolved=' || COALESCE(sum(resolved), 0),"
                     " 'closed=' || COALESCE(sum(closed), 0), 'reopened=' || COALESCE(sum(reopened), 0),"
                     " 'reopens=' || COALESCE(sum(reopens), 0), 'responded=' || COALESCE(sum(responded), 0),"
                     " 'frt_s=' || COALESCE(sum(frt_s), 0), 'res_s=' || COALESCE(sum(res_s), 0),"
                     " 'visits=' || COALESCE(sum(visits), 0), 'satisfied=' || COALESCE(sum(satisfied), 0),"
                     " 'sla_met=' || COALESCE(sum(accept_met + first_response_met + chase_update_met"
                     "                            + resolution_met), 0),"
                     " 'sla_breached=' || COALESCE(sum(accept_breached + first_response_breached"
                     "                                 + chase_update_breached + resolution_breached), 0))"
                     " FROM reporting.rollup_%s",
                     grain);
}

/* Received per current owning department, "dept=n;...": plain and from the daily rollup. */
static const char *plainByDept(void)
{
    return dtest_str(pg, "SELECT string_agg(d || '=' || n, ';' ORDER BY d) FROM (SELECT COALESCE(owner_unit, '') AS d,"
                         " count(*) AS n FROM tickets GROUP BY 1) x");
}

static const char *rollupByDept(void)
{
    return dtest_str(pg, "SELECT string_agg(department || '=' || n, ';' ORDER BY department) FROM (SELECT department,"
                         " sum(received) AS n FROM reporting.rollup_day GROUP BY 1 HAVING sum(received) <> 0) x");
}

/* Sum of frt_bs over the rollups against rd_calendar_between on the calendar as loaded: each
 * ticket may differ by under a second (the database keeps microseconds, the calendar ms). */
static void checkBusinessTime(void)
{
    PGresult *r = PQexec(pg, "SELECT body::text FROM business_calendars WHERE id = '" CALENDAR "'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    char err[256];
    rd_calendar *cal = rd_calendar_parse(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0), err, sizeof(err));
    PQclear(r);
    if (cal == NULL)
        fail_msg("calendar: %s", err);
    r = PQexec(pg, "SELECT round(extract(epoch FROM created_at) * 1000)::bigint,"
                   " round(extract(epoch FROM first_response_at) * 1000)::bigint"
                   " FROM tickets WHERE first_response_at IS NOT NULL");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int64_t want = 0;
    for (int i = 0; i < PQntuples(r); i++)
        want +=
            rd_calendar_between(cal, strtoll(PQgetvalue(r, i, 0), NULL, 10), strtoll(PQgetvalue(r, i, 1), NULL, 10)) /
            1000;
    int n = PQntuples(r);
    PQclear(r);
    rd_calendar_free(cal);
    int64_t got = dtest_num(pg, "SELECT COALESCE(sum(frt_bs), 0) FROM reporting.rollup_month");
    print_message("frt_bs: rollups %lld s, rd_calendar_between %lld s over %d responded tickets\n", (long long)got,
                  (long long)want, n);
    assert_true(got >= want - n && got <= want + n);
    assert_int_equal(dtest_num(pg, "SELECT COALESCE(sum(frt_bs), 0) FROM reporting.rollup_day"), got);
    assert_int_equal(dtest_num(pg, "SELECT COALESCE(sum(frt_bs), 0) FROM reporting.rollup_hour"), got);
}

/* Whether every grain equals the plain KPIs (printed when not). */
static bool kpisMatch(bool verbose)
{
    char plain[1024];
    snprintf(plain, sizeof(plain), "%s", plainKpis());
    static const char *const grains[] = {"hour", "day", "month"};
    bool ok = true;
    for (int i = 0; i < 3; i++) {
        const char *got = rollupKpis(grains[i]);
        if (strcmp(plain, got) != 0) {
            ok = false;
            if (verbose)
                fprintf(stderr, "rollup_%s: %s\n   tickets: %s\n", grains[i], got, plain);
        }
    }
    char dept[512];
    snprintf(dept, sizeof(dept), "%s", plainByDept());
    if (strcmp(dept, rollupByDept()) != 0) {
        ok = false;
        if (verbose)
            fprintf(stderr, "received by department: rollups %s, tickets %s\n", rollupByDept(), dept);
    }
    return ok;
}

static bool waitKpis(int timeout_ms)
{
    int64_t deadline = rd_mono_us() + (int64_t)timeout_ms * 1000;
    while (!kpisMatch(false)) {
        if (rd_mono_us() >= deadline)
            return kpisMatch(true);
        rd_sleep_ms(50);
    }
    return true;
}

/* A digest of the three rollups. */
static const char *rollupDigest(void)
{
    return dtest_str(pg, "SELECT md5((SELECT COALESCE(string_agg(r::text, '|' ORDER BY r::text), '') FROM"
                         " reporting.rollup_hour r) || (SELECT COALESCE(string_agg(r::text, '|' ORDER BY r::text), '')"
                         " FROM reporting.rollup_day r) || (SELECT COALESCE(string_agg(r::text, '|' ORDER BY"
                         " r::text), '') FROM reporting.rollup_month r))");
}

/* ---- driving tickets ---------------------------------------------------------------------------- */

static void act(const char *tid, Redress__V1__ActionKind kind, const char *reason, const char *target,
                const char *want_state)
{
    char st[32];
    assert_int_equal(dtest_act(cli, tid, kind, reason, target, st, sizeof(st)), E(NONE));
    if (want_state)
        assert_string_equal(st, want_state);
}

static void returnVisit(const char *tid, unsigned satisfaction)
{
    static int seq;
    char eid[64];
    snprintf(eid, sizeof(eid), "rtest-visit-%d-%d", (int)getpid(), ++seq);
    Redress__V1__Envelope e;
    Redress__V1__TicketAction a;
    itest_action(&e, &a, eid, tid, K(RETURN_VISIT));
    a.satisfaction = satisfaction;
    a.note = "回访";
    Redress__V1__Reply *r = itest_call(cli, &e);
    assert_non_null(r);
    assert_int_equal(r->error, E(NONE));
    redress__v1__reply__free_unpacked(r, NULL);
}

static void submit(int i, char id[37])
{
    static const char *const subjects[] = {"停电三天无人处理", "Billing error", "宽带断网", "Card charged twice"};
    static const char *const bodies[] = {"我家从周一开始停电，打了三次95598都没有人来修。",
                                         "I was charged twice for the same month.",
                                         "家里宽带从昨天晚上开始一直断网，报修两次还没人上门。",
                                         "My card was charged twice for one purchase and the bank will not refund it."};
    char eid[64], cust[32];
    snprintf(eid, sizeof(eid), "rtest-%d-%d", (int)getpid(), i);
    snprintf(cust, sizeof(cust), "RT-%d", i % 5);
    Redress__V1__Envelope e;
    Redress__V1__NewTicket t;
    itest_new_ticket(&e, &t, eid);
    t.customer_ref = cust;
    t.subject = (char *)subjects[i % 4];
    t.body = (char *)bodies[i % 4];
    t.language = i % 2 ? "en" : "zh-CN";
    t.channel = i % 3 ? REDRESS__V1__CHANNEL__CHANNEL_HOTLINE : REDRESS__V1__CHANNEL__CHANNEL_WEB;
    Redress__V1__Reply *r = itest_call(cli, &e);
    assert_non_null(r);
    assert_int_equal(r->error, E(NONE));
    snprintf(id, 37, "%s", r->ticket_id);
    redress__v1__reply__free_unpacked(r, NULL);
}

/* ---- (a) the numbers ----------------------------------------------------------------------------- */

static void test_kpis(void **state)
{
    (void)state;
    for (int i = 0; i < NTICKETS; i++)
        submit(i, ids[i]);
    CHECK(dtest_wait(pg, NTICKETS, WAIT_MS,
                     "SELECT count(*) FROM tickets WHERE state = 'assigned'"
                     " AND owner_agent IS NOT NULL"));
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_classifications"), NTICKETS);
    for (int i = 0; i < NTICKETS; i++) {
        const char *id = ids[i];
        act(id, K(ACCEPT), NULL, NULL, "accepted");
        switch (i % 4) {
        case 0: /* answered, resolved, visited (satisfied), closed */
            act(id, K(REPLY), "已联系客户", NULL, "in_progress");
            act(id, K(RESOLVE), NULL, NULL, "resolved");
            returnVisit(id, 5);
            act(id, K(CLOSE), NULL, NULL, "closed");
            break;
        case 1: /* resolved, visited (not satisfied), reopened, resolved again */
            act(id, K(REPLY), "answered", NULL, "in_progress");
            act(id, K(RESOLVE), NULL, NULL, "resolved");
            returnVisit(id, 2);
            act(id, K(REOPEN), "客户不满意", NULL, "in_progress");
            act(id, K(RESOLVE), NULL, NULL, "resolved");
            break;
        case 2: /* answered, still open */
            act(id, K(REPLY), "working on it", NULL, "in_progress");
            break;
        default: /* transferred to the south: all its numbers move there */
            act(id, K(TRANSFER), "属于南区业务", "d-south", "assigned");
            CHECK(
                dtest_wait(pg, 1, WAIT_MS, "SELECT count(*) FROM tickets WHERE id = '%s' AND owner_agent = 's-1'", id));
            act(id, K(ACCEPT), NULL, NULL, "accepted");
            act(id, K(REPLY), "南区已受理", NULL, "in_progress");
            break;
        }
    }
    /* two answered across a weekend, written as a migration of old data would (whole seconds, so
     * their business time is exact): Friday 10:00 to Monday 10:00 China time is 7.5 working hours
     * (lunch 12:00-13:30), Friday 16:00 to Monday 09:00 two */
    dtest_sql(pg,
              "WITH x(id, t0, t1) AS (VALUES"
              "   (gen_random_uuid(), timestamptz '2026-11-20 10:00+08', timestamptz '2026-11-23 10:00+08'),"
              "   (gen_random_uuid(), timestamptz '2026-11-13 16:00+08', timestamptz '2026-11-16 09:00+08')),"
              " t AS (INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, occurred_at, created_at,"
              "                           state, business_type, severity, owner_unit, owner_team, owner_agent,"
              "                           first_response_at)"
              "       SELECT id, 'rtest', 'weekend-' || id, 'walk_in', '00000000-0000-4000-8000-00000000c001', t0,"
              "              t0, 'in_progress', 'complaint', 'general', 'centre', 't-centre', 'c-1', t1 FROM x"
              "       RETURNING id)"
              " INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, at, actor)"
              " SELECT x.id, k.kind, NULL, 'in_progress', CASE k.kind WHEN 'created' THEN x.t0 ELSE x.t1 END, 'rtest'"
              "   FROM x JOIN t USING (id), (VALUES ('created'), ('reply')) AS k(kind)");
    settle();
    CHECK(waitKpis(WAIT_MS));
    print_message("KPIs: %s\n", plainKpis());
    checkBusinessTime();
    assert_int_equal(dtest_num(pg, "SELECT sum(frt_bs) FROM reporting.ticket_facts WHERE channel = 'walk_in'"),
                     27000 + 7200);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM reporting.ticket_facts"), NTICKETS + 2);
    assert_string_equal(rollupByDept(), "centre=11;d-south=3");
    /* the metrics saw it */
    assert_true(repMetric("redress_reporting_events_applied_total") > NTICKETS);
    assert_true(repMetric("redress_reporting_rollup_rows_changed_total") > 0);
    assert_true(repMetric("redress_reporting_batches_total") > 0);
    assert_int_equal((int)repMetric("redress_reporting_db_up"), 1);
    assert_int_equal((int)repMetric("redress_reporting_errors_total"), 0);
    assert_int_equal(dtest_http_status(rep.http_port, "/health"), 200);
    assert_int_equal(dtest_http_status(rep.http_port, "/healthz"), 200);
}

/* ---- (b) missed events ----------------------------------------------------------------------------- */

static void test_gap_repair(void **state)
{
    (void)state;
    repStop();
    /* while it is down: the open tickets are resolved through intake ... */
    for (int i = 2; i < NTICKETS; i += 4)
        act(ids[i], K(RESOLVE), NULL, NULL, "resolved");
    CHECK(etest_settle(pg, WAIT_MS)); /* the SLA events of those resolutions are written too */
    /* ... and visited, by SQL (history rows escalation ignores) */
    for (int i = 2; i < NTICKETS; i += 4)
        dtest_sql(pg,
                  "WITH u AS (UPDATE tickets SET satisfaction = 4, version = version + 1 WHERE id = '%s' RETURNING id)"
                  " INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor, satisfaction)"
                  " SELECT id, 'return_visit', 'resolved', 'resolved', 'rtest', 4 FROM u",
                  ids[i]);
    CHECK(etest_settle(pg, WAIT_MS));
    /* every event of that is lost */
    int64_t lost = dtest_num(pg, "SELECT count(*) FROM reporting.queue");
    assert_true(lost > 0);
    dtest_sql(pg, "DELETE FROM reporting.queue");
    assert_false(kpisMatch(false));
    print_message("deleted %lld queued events; restarting\n", (long long)lost);

    CHECK(repStart(NULL));
    CHECK(waitKpis(WAIT_MS));
    settle();
    CHECK(waitKpis(WAIT_MS));
    checkBusinessTime();
    assert_true(repMetric("redress_reporting_sweep_queued_total") >= (NTICKETS + 3) / 4);
    print_message("KPIs: %s\n", plainKpis());
}

/* ---- (c) duplicates ----------------------------------------------------------------------------- */

static void test_duplicates(void **state)
{
    (void)state;
    settle();
    char before[64];
    snprintf(before, sizeof(before), "%s", rollupDigest());
    double events = repMetric("redress_reporting_events_applied_total");
    double rows = repMetric("redress_reporting_rollup_rows_changed_total");
    dtest_sql(pg, "INSERT INTO reporting.queue (part, ticket_id) SELECT hashtext(id::text) & 7, id FROM tickets,"
                  " generate_series(1, 3)");
    CHECK(dtest_wait(pg, 0, WAIT_MS, "SELECT count(*) FROM reporting.queue"));
    settle();
    assert_string_equal(rollupDigest(), before);
    CHECK(waitKpis(1000));
    assert_true(repMetric("redress_reporting_events_applied_total") >= events + 3 * NTICKETS);
    assert_true(repMetric("redress_reporting_rollup_rows_changed_total") == rows);
}

/* ---- (d) the monthly report ------------------------------------------------------------------------ */

static void test_monthly(void **state)
{
    (void)state;
    const char *month = dtest_str(pg, "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'Asia/Shanghai')"
                                      " - interval '1 month', 'YYYY-MM-DD')");
    char m[16];
    snprintf(m, sizeof(m), "%s", month);
    repStop();
    dtest_sql(pg, "DELETE FROM reporting.monthly_reports");
    /* three tickets received on the 6th of last month (local time), two resolved the next day,
     * in one transaction as a migration of old data would write them */
    dtest_sql(pg,
              "BEGIN;"
              " CREATE TEMP TABLE old_t ON COMMIT DROP AS"
              "   SELECT gen_random_uuid() AS id, g,"
              "          (('%s'::date + interval '5 days 10 hours') AT TIME ZONE 'Asia/Shanghai') AS t0"
              "     FROM generate_series(1, 3) g;"
              " INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, occurred_at, created_at, state,"
              "                      business_type, severity, owner_unit, owner_team, owner_agent, resolved_at,"
              "                      first_response_at)"
              "   SELECT id, 'rtest', 'old-' || id, 'web', '00000000-0000-4000-8000-00000000c001', t0, t0,"
              "          CASE WHEN g < 3 THEN 'resolved' ELSE 'in_progress' END, 'complaint', 'general', 'centre',"
              "          't-centre', 'c-1', CASE WHEN g < 3 THEN t0 + interval '1 day' END, t0 + interval '2 hours'"
              "     FROM old_t;"
              " INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, at, actor)"
              "   SELECT id, 'created', NULL, 'new', t0, 'rtest' FROM old_t;"
              " INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, at, actor)"
              "   SELECT id, 'resolve', 'in_progress', 'resolved', t0 + interval '1 day', 'rtest' FROM old_t"
              "    WHERE g < 3;"
              " COMMIT",
              m);
    CHECK(repStart(NULL));
    CHECK(dtest_wait(pg, 1, WAIT_MS,
                     "SELECT count(*) FROM reporting.monthly_reports WHERE month = '%s'"
                     " AND department = ''",
                     m));
    /* what the month holds, by plain SQL: received, resolved, responded in it (local time) */
#define IN_MONTH(col)                                                                                                  \
    "(" col " AT TIME ZONE 'Asia/Shanghai') >= '%s'::date AND (" col " AT TIME ZONE 'Asia/Shanghai')"                  \
    " < '%s'::date + interval '1 month'"
    char want[128];
    snprintf(want, sizeof(want), "%s,t",
             dtest_str(pg,
                       "SELECT concat_ws(',', count(*) FILTER (WHERE " IN_MONTH(
                           "created_at") "),"
                                         " count(*) FILTER (WHERE " IN_MONTH(
                                             "resolved_at") "),"
                                                            " count(*) FILTER (WHERE " IN_MONTH(
                                                                "first_response_at") ")) FROM tickets",
                       m, m, m, m, m, m));
    assert_string_equal(dtest_str(pg,
                                  "SELECT concat_ws(',', body->>'received', body->>'resolved', body->>'responded',"
                                  " generated_by <> '') FROM reporting.monthly_reports"
                                  " WHERE month = '%s' AND department = ''",
                                  m),
                        want);
    snprintf(want, sizeof(want), "centre,%s",
             dtest_str(pg,
                       "SELECT concat_ws(',', count(*) FILTER (WHERE " IN_MONTH(
                           "created_at") "),"
                                         " count(*) FILTER (WHERE " IN_MONTH(
                                             "resolved_at") ")) FROM tickets WHERE owner_unit = 'centre'",
                       m, m, m, m));
#undef IN_MONTH
    assert_string_equal(dtest_str(pg,
                                  "SELECT concat_ws(',', body->>'department', body->>'received', body->>'resolved')"
                                  " FROM reporting.monthly_reports WHERE month = '%s' AND department = 'centre'",
                                  m),
                        want);
    assert_true(dtest_num(pg,
                          "SELECT (body->>'received')::int FROM reporting.monthly_reports WHERE month = '%s'"
                          " AND department = ''",
                          m) >= 3);
    int64_t nrows = dtest_num(pg, "SELECT count(*) FROM reporting.monthly_reports WHERE month = '%s'", m);
    assert_true(nrows >= 2);
    assert_true(repMetric("redress_reporting_monthly_reports_total") == (double)nrows);
    /* written once: the next checks leave it alone */
    const char *at = dtest_str(pg, "SELECT max(generated_at)::text FROM reporting.monthly_reports");
    char at0[64];
    snprintf(at0, sizeof(at0), "%s", at);
    rd_sleep_ms(1200);
    assert_string_equal(dtest_str(pg, "SELECT max(generated_at)::text FROM reporting.monthly_reports"), at0);
    settle();
    CHECK(waitKpis(WAIT_MS));
}

/* ---- a new time zone ------------------------------------------------------------------------------ */

/* Received per day: in the rollups, and by plain SQL in zone tz. */
static const char *receivedByDay(const char *tz)
{
    if (tz == NULL)
        return dtest_str(pg, "SELECT string_agg(bucket || '=' || n, ';' ORDER BY bucket) FROM (SELECT bucket,"
                             " sum(received) AS n FROM reporting.rollup_day GROUP BY 1 HAVING sum(received) <> 0) x");
    return dtest_str(
        pg,
        "SELECT string_agg(d || '=' || n, ';' ORDER BY d) FROM (SELECT (created_at AT TIME ZONE '%s')::date"
        " AS d, count(*) AS n FROM tickets GROUP BY 1) x",
        tz);
}

/* Restarted with another reporting.time_zone, the service files every number again under the new
 * zone's days (the facts and rollups are rebuilt from scratch), and the totals stay right. */
static void test_time_zone(void **state)
{
    (void)state;
    char before[512];
    snprintf(before, sizeof(before), "%s", receivedByDay(NULL));
    assert_string_equal(before, receivedByDay("Asia/Shanghai"));
    repStop();
    CHECK(repStart("REDRESS_REPORTING_TIME_ZONE=UTC"));
    CHECK(dtest_wait(pg, 1, WAIT_MS, "SELECT count(*) FROM reporting.settings WHERE time_zone = 'UTC'"));
    settle();
    CHECK(waitKpis(WAIT_MS));
    char want[512];
    snprintf(want, sizeof(want), "%s", receivedByDay("UTC"));
    assert_string_equal(receivedByDay(NULL), want);
    print_message("received per day: Asia/Shanghai %s; UTC %s\n", before, want);
    checkBusinessTime();
    assert_true(repMetric("redress_reporting_resyncs_total") == 1);
    repStop();
    CHECK(repStart(NULL)); /* and back */
    CHECK(dtest_wait(pg, 1, WAIT_MS, "SELECT count(*) FROM reporting.settings WHERE time_zone = 'Asia/Shanghai'"));
    settle();
    CHECK(waitKpis(WAIT_MS));
    assert_string_equal(receivedByDay(NULL), before);
}

/* ---- (e) a calendar that does not exist ------------------------------------------------------------- */

static void test_bad_calendar(void **state)
{
    (void)state;
    dtest_dispatcher bad;
    memset(&bad, 0, sizeof(bad));
    const char *dir = getenv("REDRESS_TEST_DIR");
    snprintf(bad.log_path, sizeof(bad.log_path), "%s/reporting-bad.log", dir ? dir : "/tmp");
    char env[512];
    snprintf(env, sizeof(env), "REDRESS_REPORTING_HTTP_PORT=0;REDRESS_REPORTING_CALENDAR=no-such-calendar");
    bad.pid = itest_spawn(REDRESS_REPORTING_BIN, env, bad.log_path);
    assert_true(bad.pid > 0);
    int64_t deadline = rd_mono_us() + 20000000;
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    while (rd_mono_us() < deadline) {
        si.si_pid = 0;
        if (waitid(P_PID, (id_t)bad.pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == bad.pid)
            break;
        rd_sleep_ms(50);
    }
    if (si.si_pid != bad.pid) {
        dtest_tail(&bad, 20);
        itest_reap(&bad.pid, SIGKILL);
        fail_msg("redress-reporting with an unknown calendar did not exit within 20 s");
    }
    assert_int_equal(si.si_code, CLD_EXITED);
    assert_int_not_equal(si.si_status, 0);
    itest_reap(&bad.pid, SIGKILL); /* reaps it */
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "grep -q 'reporting.calendar .*no-such-calendar.* is not in business_calendars' '%s'",
             bad.log_path);
    if (itest_run(cmd) != 0) {
        dtest_tail(&bad, 20);
        fail_msg("no clear message about the unknown calendar in %s", bad.log_path);
    }
    /* and nothing was changed */
    assert_string_equal(dtest_str(pg, "SELECT COALESCE(calendar_id, '') FROM reporting.settings"), CALENDAR);
}

/* ---- fixtures ---------------------------------------------------------------------------------------- */

static int groupSetup(void **state)
{
    (void)state;
    pg = itest_pg();
    rd = dtest_redis();
    etest_reset(pg, rd);
    dtest_sql(pg, "TRUNCATE reporting.queue, reporting.ticket_facts, reporting.rollup_hour, reporting.rollup_day,"
                  " reporting.rollup_month, reporting.monthly_reports, reporting.work_intervals");
    dtest_sql(pg, "UPDATE reporting.sweep_marks SET prev_seq = 0, cur_seq = 0");
    /* the organisation: a dispatch centre (every ticket) and the south, which takes transfers */
    dtest_dept(pg, "centre", NULL, true, "t-centre");
    dtest_dept(pg, "d-south", "centre", false, "t-south");
    dtest_team(pg, "t-centre", "centre", NULL, NULL, 300, 1);
    dtest_team(pg, "t-south", "d-south", NULL, NULL, 300, 1);
    dtest_agent(pg, "c-1", "t-centre", 100);
    dtest_agent(pg, "s-1", "t-south", 100);
    dtest_presence(pg, rd, "c-1", "online", LONG_TTL);
    dtest_presence(pg, rd, "s-1", "online", LONG_TTL);
    const char *dir = getenv("REDRESS_TEST_DIR");
    char ctlDir[300];
    snprintf(ctlDir, sizeof(ctlDir), "%s", dir ? dir : "/tmp");
    if (itest_ctl(ctlDir, "calendar load '%s/deploy/config/calendars.example.json'", REDRESS_SOURCE_DIR) != 0)
        return -1;
    if (!itest_intake_start(&in, NULL))
        return -1;
    char err[256];
    cli = rd_client_new(in.endpoint, err, sizeof(err));
    if (cli == NULL)
        return -1;
    snprintf(classifierLog, sizeof(classifierLog), "%s/classifier.log", ctlDir);
    char env[1024];
    snprintf(env, sizeof(env),
             "REDRESS_CLASSIFIER_INTAKE_ENDPOINT=tcp://127.0.0.1:%d;REDRESS_CLASSIFIER_PUSH_BIND=tcp://127.0.0.1:%d;"
             "REDRESS_CLASSIFIER_PUB_BIND=tcp://127.0.0.1:%d;REDRESS_CLASSIFIER_HTTP_PORT=0;"
             "REDRESS_CLASSIFIER_REDRIVE_INTERVAL_MS=300;REDRESS_CLASSIFIER_REDRIVE_MIN_AGE_MS=0;"
             "REDRESS_CLASSIFIER_RULES_FILE=" REDRESS_SOURCE_DIR "/deploy/config/rules.default.json",
             in.push_port, itest_free_port(), itest_free_port());
    classifier = itest_spawn(REDRESS_CLASSIFIER_BIN, env, classifierLog);
    if (classifier <= 0 || !dtest_start(&disp, in.pub_port, NULL) ||
        !etest_start(&esc, in.pub_port, ETEST_REAL, "REDRESS_ESCALATION_CALENDAR=" CALENDAR))
        return -1;
    return repStart(NULL) ? 0 : -1;
}

static int groupTeardown(void **state)
{
    (void)state;
    repStop();
    etest_stop(&esc);
    dtest_stop(&disp);
    itest_reap(&classifier, SIGTERM);
    rd_client_destroy(&cli);
    itest_intake_stop(&in);
    redisFree(rd);
    PQfinish(pg);
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kpis),    cmocka_unit_test(test_gap_repair), cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_monthly), cmocka_unit_test(test_time_zone),  cmocka_unit_test(test_bad_calendar),
    };
    return cmocka_run_group_tests(tests, groupSetup, groupTeardown);
}
