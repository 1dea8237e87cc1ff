/*
 * test_sla_ctl -- redressctl sla policies / escalations / ack / timeline against a real PostgreSQL
 * (tests/lib/with-stack.sh --no-redis). No escalation service runs: the setup writes a ticket, its
 * clocks, their events and escalations by SQL, the way redress-escalation would have.
 *
 * Ticket T, received at T0, has two clocks:
 *   resolution #1 (major-resolve): warned 50% and 80%, breached, escalated levels 1..3; level 1
 *     (team_lead) acknowledged, levels 2 (department_head) and 3 (leadership) open;
 *   chase_update #1 (chase-update), armed 2 h later: escalated level 3 (leadership), acknowledged.
 * The tests run in order and build on each other (ack changes the department head's row).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "itest.h"

#define TICKET   "00000000-0000-4000-8000-00000000a001"
#define CUSTOMER "00000000-0000-4000-8000-00000000c001"
#define T0       "TIMESTAMPTZ '2026-03-02 01:00:00+00'"

static PGconn *pg;
static char dir[512];
static int64_t esc_lead, esc_dept, esc_leader, esc_chase; /* sla_escalations ids */

/* redressctl with args, output kept in dir (itest_ctl) */
#define ctl(...)               itest_ctl(dir, __VA_ARGS__)
#define printed(which, needle) itest_ctl_printed(dir, which, needle)

static int64_t count(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t count(const char *fmt, ...)
{
    char sql[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return itest_count(pg, sql);
}

static void sql(const char *q)
{
    PGresult *r = PQexec(pg, q);
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQerrorMessage(pg));
    PQclear(r);
}

/* The lines of the last itest_ctl()'s standard output (static buffer), and how many there are. */
static char *out_text(int *lines)
{
    static char buf[1 << 16];
    char path[600];

    snprintf(path, sizeof(path), "%s/out.txt", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    *lines = 0;
    for (size_t i = 0; i < n; i++)
        *lines += buf[i] == '\n';
    return buf;
}

static int64_t escalation(int64_t clock, int level, const char *role, const char *unit, const char *action,
                          const char *at, const char *acked_at, const char *acked_by)
{
    char q[1024];

    snprintf(q, sizeof(q),
             "INSERT INTO sla_escalations (clock_id, ticket_id, clock, level, role, target_unit, action, at,"
             " acknowledged_at, acknowledged_by)"
             " SELECT id, ticket_id, clock, %d, '%s', '%s', '%s', %s, %s, %s FROM sla_clocks WHERE id = %lld"
             " RETURNING id",
             level, role, unit, action, at, acked_at, acked_by, (long long)clock);
    return count("%s", q);
}

static int setup(void **state)
{
    (void)state;
    sql("INSERT INTO customers (id, customer_ref, name) VALUES ('" CUSTOMER "', 'sla-ctl', '李四')");
    sql("INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, subject, state, business_type,"
        " severity, priority, occurred_at, created_at)"
        " VALUES ('" TICKET "', 'test', 'sla-ctl-1', 'hotline', '" CUSTOMER "', '停电投诉', 'assigned',"
        " 'fault_repair', 'major', 2, " T0 ", " T0 ")");
    int64_t res = count("INSERT INTO sla_clocks (ticket_id, clock, cycle, policy_id, target_ms, started_at,"
                        " running_since, state, due_at, breached_at, stage_code, stage_at, next_stage, armed_at)"
                        " VALUES ('" TICKET "', 'resolution', 1, 'major-resolve', 43200000, " T0 ", " T0 ","
                        " 'running', " T0 " + interval '12 hours', " T0 " + interval '12 hours',"
                        " '{50,80,100,101,102,103}', '{21600000,34560000,43200000,43200000,64800000,86400000}',"
                        " 6, " T0 " + interval '1 second') RETURNING id");
    int64_t chase =
        count("INSERT INTO sla_clocks (ticket_id, clock, cycle, policy_id, target_ms, started_at,"
              " running_since, state, due_at, stage_code, stage_at, next_stage, armed_at)"
              " VALUES ('" TICKET "', 'chase_update', 1, 'chase-update', 86400000, " T0 " + interval '2 hours', " T0
              " + interval '2 hours', 'running', " T0 " + interval '26 hours', '{50,100,101,102,103}',"
              " '{43200000,86400000,86400000,172800000,259200000}', 5, " T0 " + interval '2 hours')"
              " RETURNING id");
    assert_true(res > 0 && chase > 0);
    char q[2048];
    snprintf(q, sizeof(q),
             "INSERT INTO sla_events (clock_id, ticket_id, clock, kind, level, at, detail) VALUES"
             " (%lld, '" TICKET "', 'resolution', 'warned', 50, " T0 " + interval '6 hours', ''),"
             " (%lld, '" TICKET "', 'resolution', 'warned', 80, " T0 " + interval '9.6 hours', ''),"
             " (%lld, '" TICKET "', 'resolution', 'breached', NULL, " T0 " + interval '12 hours', ''),"
             " (%lld, '" TICKET "', 'resolution', 'escalated', 1, " T0 " + interval '12 hours', 'team_lead'),"
             " (%lld, '" TICKET "', 'resolution', 'escalated', 2, " T0 " + interval '18 hours', 'department_head'),"
             " (%lld, '" TICKET "', 'resolution', 'escalated', 3, " T0 " + interval '24 hours', 'leadership'),"
             " (%lld, '" TICKET "', 'chase_update', 'escalated', 3, " T0 " + interval '74 hours', 'leadership')",
             (long long)res, (long long)res, (long long)res, (long long)res, (long long)res, (long long)res,
             (long long)chase);
    sql(q);
    esc_lead = escalation(res, 1, "team_lead", "north-repair", "raise_priority", T0 " + interval '12 hours'",
                          T0 " + interval '13 hours'", "'lead-zhao'");
    esc_dept = escalation(res, 2, "department_head", "north", "notify", T0 " + interval '18 hours'", "NULL", "NULL");
    esc_leader = escalation(res, 3, "leadership", "north", "notify", T0 " + interval '24 hours'", "NULL", "NULL");
    esc_chase = escalation(chase, 3, "leadership", "north", "notify", T0 " + interval '74 hours'",
                           T0 " + interval '75 hours'", "'boss-qian'");
    assert_true(esc_lead > 0 && esc_dept > 0 && esc_leader > 0 && esc_chase > 0);
    return 0;
}

static void test_policies(void **state)
{
    static const char *const ids[] = {"repair-accept",    "transfer-accept", "service-contact", "consultation-reply",
                                      "suggestion-reply", "major-resolve",   "general-resolve", "chase-update"};
    (void)state;

    assert_int_equal(ctl("sla policies"), 0);
    assert_true(printed("out", "8 policies (8 active)"));
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char head[64];
        snprintf(head, sizeof(head), "\n%s  ", ids[i]);
        assert_true(printed("out", head));
    }
    /* chase-update and its three levels, in order, its Chinese description as UTF-8 */
    assert_true(printed("out", "chase-update  chase_update\n"
                               "  催办后24小时内回复，3天未回复升级督办 / answer a chase in 24 hours; leadership"
                               " supervision after 3 days\n"));
    assert_true(printed("out", "  target 1440 minutes, calendar none (calendar time), warnings at 50%\n"
                               "  level 1: after 1440 minutes -> team_lead, raise_priority\n"
                               "  level 2: after 2880 minutes -> department_head, notify\n"
                               "  level 3: after 4320 minutes -> leadership, notify\n"));
    assert_true(printed("out", "applies to: business_type fault_repair, severity any, channel any, customer_tier any,"
                               " transferred no"));
    assert_true(printed("out", "  level 1: after 5 minutes -> team_lead, reroute\n"));
    assert_true(printed("out", "target 3 working_days"));

    assert_int_equal(ctl("sla policies --json"), 0);
    assert_true(printed("out", "\"count\": 8"));
    assert_true(printed("out", "\"description\": \"催办后24小时内回复"));
    assert_true(printed("out", "\"level\": 3,\n          \"after\": 4320,\n          \"role\": \"leadership\""));

    /* an inactive policy comes after the active ones */
    sql("UPDATE sla_policies SET active = false WHERE id = 'chase-update'");
    assert_int_equal(ctl("sla policies"), 0);
    sql("UPDATE sla_policies SET active = true WHERE id = 'chase-update'");
    assert_true(printed("out", "8 policies (7 active)"));
    assert_true(printed("out", "chase-update  chase_update  [inactive]\n"));
    int lines;
    const char *text = out_text(&lines);
    assert_true(strstr(text, "\ntransfer-accept  ") < strstr(text, "\nchase-update  "));

    assert_int_equal(ctl("sla policies extra"), 2);
    assert_int_equal(ctl("sla policies --open"), 2);
}

static void test_escalations(void **state)
{
    char want[64];
    int lines;
    (void)state;

    /* exactly the open leadership one */
    assert_int_equal(ctl("sla escalations --open --role leadership"), 0);
    snprintf(want, sizeof(want), "#%lld  ", (long long)esc_leader);
    assert_true(printed("out", want));
    assert_true(printed("out", "resolution level 3 -> leadership of north (notify)  OPEN\n"));
    out_text(&lines);
    assert_int_equal(lines, 1);
    assert_int_equal(ctl("sla escalations --open --role leadership --json"), 0);
    assert_true(printed("out", "\"count\": 1,"));
    snprintf(want, sizeof(want), "\"id\": %lld,", (long long)esc_leader);
    assert_true(printed("out", want));

    /* all of them, newest first: the chase's (74 h) first, the team lead's (12 h) last */
    assert_int_equal(ctl("sla escalations"), 0);
    const char *text = out_text(&lines);
    assert_int_equal(lines, 4);
    snprintf(want, sizeof(want), "#%lld  ", (long long)esc_chase);
    assert_ptr_equal(strstr(text, want), text);
    assert_true(printed("out", "acknowledged 2026-03-05T04:00:00.000Z by boss-qian\n"));
    assert_true(printed("out", "2026-03-02T13:00:00.000Z  ticket " TICKET
                               "  resolution level 1 -> team_lead of north-repair (raise_priority)"
                               "  acknowledged 2026-03-02T14:00:00.000Z by lead-zhao\n"));
    /* open ones only; a limit */
    assert_int_equal(ctl("sla escalations --open"), 0);
    out_text(&lines);
    assert_int_equal(lines, 2);
    assert_int_equal(ctl("sla escalations --limit 1"), 0);
    assert_true(printed("out", "there are more"));
    out_text(&lines);
    assert_int_equal(lines, 2);
    assert_int_equal(ctl("sla escalations --role team_lead --open"), 0);
    assert_true(printed("out", "no open escalations for team_lead"));

    assert_int_equal(ctl("sla escalations --role boss"), 2);
    assert_int_equal(ctl("sla escalations --limit 0"), 2);
    assert_int_equal(ctl("sla escalations --limit ten"), 2);
    assert_int_equal(ctl("sla escalations --by x"), 2);
}

static void test_ack(void **state)
{
    (void)state;
    char *before = itest_db_fingerprint(pg);

    /* bad ids and missing --by: usage errors, nothing changed */
    assert_int_equal(ctl("sla ack abc --by lead-wang"), 2);
    assert_int_equal(ctl("sla ack 0 --by lead-wang"), 2);
    assert_int_equal(ctl("sla ack 12x --by lead-wang"), 2);
    assert_int_equal(ctl("sla ack --by lead-wang -- -3"), 2);
    assert_int_equal(ctl("sla ack 99999999999999999999 --by lead-wang"), 2);
    assert_int_equal(ctl("sla ack %lld", (long long)esc_dept), 2);
    assert_int_equal(ctl("sla ack %lld --by ''", (long long)esc_dept), 2);
    assert_int_equal(ctl("sla ack"), 2);
    /* one that does not exist is refused */
    assert_int_equal(ctl("sla ack 999999 --by lead-wang"), 1);
    assert_true(printed("err", "no escalation 999999"));
    char *after = itest_db_fingerprint(pg);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* the department head's */
    assert_int_equal(ctl("sla ack %lld --by lead-wang --note '已电话督办'", (long long)esc_dept), 0);
    assert_true(printed("out", "acknowledged by lead-wang"));
    assert_true(printed("out", "已电话督办"));
    assert_int_equal(count("SELECT count(*) FROM sla_escalations WHERE id = %lld AND acknowledged_by = 'lead-wang'"
                           " AND acknowledged_note = '已电话督办'"
                           " AND acknowledged_at BETWEEN now() - interval '1 minute' AND now()",
                           (long long)esc_dept),
                     1);
    /* nothing else */
    assert_int_equal(count("SELECT count(*) FROM sla_escalations WHERE acknowledged_at IS NULL"), 1);
    assert_int_equal(count("SELECT count(*) FROM sla_escalations WHERE id = %lld AND acknowledged_at IS NULL",
                           (long long)esc_leader),
                     1);

    /* twice: refused, says by whom, nothing changed */
    before = itest_db_fingerprint(pg);
    assert_int_equal(ctl("sla ack %lld --by someone-else", (long long)esc_dept), 1);
    assert_true(printed("err", "already acknowledged by lead-wang at 20"));
    after = itest_db_fingerprint(pg);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_int_equal(count("SELECT count(*) FROM sla_escalations WHERE id = %lld AND acknowledged_by = 'lead-wang'",
                           (long long)esc_dept),
                     1);

    assert_int_equal(ctl("sla escalations --open"), 0);
    int lines;
    out_text(&lines);
    assert_int_equal(lines, 1);
}

static void test_timeline(void **state)
{
    int lines;
    (void)state;

    assert_int_equal(ctl("sla timeline " TICKET), 0);
    const char *text = out_text(&lines);
    assert_int_equal(lines, 9); /* 2 clocks armed + 7 events */
    assert_ptr_equal(strstr(text, "2026-03-02T01:00:01.000Z  resolution     #1   armed"), text);
    assert_true(printed("out", "major-resolve\n"));
    assert_true(printed("out", "resolution     #1   warned     50%"));
    assert_true(printed("out", "resolution     #1   breached"));
    assert_true(printed("out", "chase_update   #1   armed"));
    assert_true(printed("out", "2026-03-05T03:00:00.000Z  chase_update   #1   escalated  level 3  leadership\n"));
    /* in time order: the chase's arming (2 h) before the resolution's first warning (6 h) */
    assert_true(strstr(text, "chase_update   #1   armed") < strstr(text, "warned     50%"));

    assert_int_equal(ctl("sla timeline " TICKET " --json"), 0);
    assert_true(printed("out", "\"count\": 9"));
    assert_true(printed("out", "\"kind\": \"armed\""));

    assert_int_equal(ctl("sla timeline 00000000-0000-4000-8000-0000000000ff"), 1);
    assert_true(printed("err", "not found"));
    assert_int_equal(ctl("sla timeline not-a-uuid"), 2);
    assert_int_equal(ctl("sla timeline"), 2);
    assert_int_equal(ctl("sla timeline " TICKET " --open"), 2);
    assert_int_equal(ctl("sla nonsense"), 2);
    assert_int_equal(ctl("sla --help"), 0);
    assert_true(printed("out", "redressctl sla ack ESCALATION_ID --by WHO"));
}

int main(void)
{
    const char *d = getenv("REDRESS_TEST_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policies),
        cmocka_unit_test(test_escalations),
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_timeline),
    };

    snprintf(dir, sizeof(dir), "%s", d != NULL ? d : "/tmp");
    pg = itest_pg();
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    PQfinish(pg);
    return rc;
}
