/*
 * redress-dispatcher end to end: a real dispatcher against the private PostgreSQL and Redis of
 * tests/lib/with-stack.sh, and a real intake for the actions that end or hand over assignments
 * (accept, resolve, transfer, return). Tickets are inserted by SQL in state 'classified', so no
 * classifier runs: the dispatcher finds them by re-drive.
 *
 * Each test starts from an empty organisation and empty ticket tables (dtest_reset), builds its
 * own organisation, and starts its own dispatcher; only intake is shared.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dtest.h"
#include "rd_time.h"

#define E(x)   REDRESS__V1__ERROR_CODE__ERROR_##x
#define K(x)   REDRESS__V1__ACTION_KIND__ACTION_##x
#define LONG   600000 /* presence TTL (ms) that outlives any test */
#define WAIT_S 10000  /* generous timeout (ms) for things that take well under a second */

static PGconn *pg;
static redisContext *rd;
static itest_intake in;
static rd_client *cli;
static dtest_dispatcher disp;

static void start(const char *extra)
{
    if (!dtest_start(&disp, in.pub_port, extra))
        fail_msg("the dispatcher did not start");
}

/* Fails with the dispatcher's log when cond is false. */
#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            dtest_tail(&disp, 40);                                                                                     \
            fail_msg("%s", #cond);                                                                                     \
        }                                                                                                              \
    } while (0)

static void act(const char *tid, Redress__V1__ActionKind kind, const char *reason, const char *target,
                const char *want_state)
{
    char st[32];
    assert_int_equal(dtest_act(cli, tid, kind, reason, target, st, sizeof(st)), E(NONE));
    assert_string_equal(st, want_state);
}

/* One centre department with one team, every ticket goes there (no rules). */
static void oneTeam(const char *team, const char *strategy)
{
    dtest_dept(pg, "centre", NULL, true, team);
    dtest_team(pg, team, "centre", strategy, NULL, 300, 1);
}

/* An expected value with one agent id in it. */
static const char *expect(const char *fmt, const char *agent) __attribute__((format(printf, 1, 0)));

static const char *expect(const char *fmt, const char *agent)
{
    static char buf[256];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(buf, sizeof(buf), fmt, agent);
#pragma GCC diagnostic pop
    return buf;
}

/* ---- 1. routing rules ------------------------------------------------------------------------ */

static void test_routing_rules(void **state)
{
    (void)state;
    dtest_dept(pg, "centre", NULL, true, "t-centre");
    dtest_dept(pg, "d-senior", "centre", false, "t-senior");
    dtest_dept(pg, "d-south", "centre", false, "t-south");
    dtest_dept(pg, "d-service", "centre", false, NULL);
    dtest_team(pg, "t-centre", "centre", NULL, NULL, 300, 1);
    dtest_team(pg, "t-senior", "d-senior", NULL, NULL, 300, 3);
    dtest_team(pg, "t-south", "d-south", NULL, NULL, 300, 1);
    dtest_team(pg, "t-billing", "d-service", NULL, NULL, 300, 1);
    dtest_team(pg, "t-web", "d-service", NULL, NULL, 300, 1);
    static const char *const agents[][2] = {{"a-centre", "t-centre"},
                                            {"a-senior", "t-senior"},
                                            {"a-south", "t-south"},
                                            {"a-billing", "t-billing"},
                                            {"a-web", "t-web"}};
    for (size_t i = 0; i < sizeof(agents) / sizeof(agents[0]); i++) {
        dtest_agent(pg, agents[i][0], agents[i][1], 20);
        dtest_presence(pg, rd, agents[i][0], "online", LONG);
    }
    dtest_rule(pg, "major", 1, "t-senior", "severity=major");
    dtest_rule(pg, "south-repair", 2, "t-south", "business_type=fault_repair;region_prefix=CN-44");
    dtest_rule(pg, "billing", 3, "t-billing", "category_prefix=Billing");
    dtest_rule(pg, "web", 4, "t-web", "channel=web");
    start(NULL);

    static const struct {
        dtest_ticket t;
        const char *agent, *team, *dept, *why;
        int weight;
    } cases[] = {
        /* major first, although it also matches south-repair */
        {{.business_type = "fault_repair", .region = "CN-44-03", .severity = "major"},
         "a-senior",
         "t-senior",
         "d-senior",
         "rule:major",
         3},
        {{.business_type = "fault_repair", .region = "CN-44-01", .severity = "general"},
         "a-south",
         "t-south",
         "d-south",
         "rule:south-repair",
         1},
        /* business type right, region prefix wrong: no rule */
        {{.business_type = "fault_repair", .region = "CN-45-01", .severity = "general", .category = "Power"},
         "a-centre",
         "t-centre",
         "centre",
         "centre",
         1},
        {{.business_type = "complaint", .category = "Billing dispute", .region = "CN-44-01"},
         "a-billing",
         "t-billing",
         "d-service",
         "rule:billing",
         1},
        /* category rule (ord 3) before the channel rule (ord 4) */
        {{.business_type = "complaint", .category = "Billing error", .channel = "web"},
         "a-billing",
         "t-billing",
         "d-service",
         "rule:billing",
         1},
        {{.business_type = "complaint", .category = "Other", .channel = "web"},
         "a-web",
         "t-web",
         "d-service",
         "rule:web",
         1},
        {{.business_type = "complaint", .category = "Other", .channel = "hotline", .region = "CN-11"},
         "a-centre",
         "t-centre",
         "centre",
         "centre",
         1},
        /* nothing set at all */
        {{0}, "a-centre", "t-centre", "centre", "centre", 1},
    };
    enum { N = sizeof(cases) / sizeof(cases[0]) };
    char ids[N][37];
    for (int i = 0; i < N; i++)
        dtest_tickets(pg, &cases[i].t, 1, &ids[i]);
    for (int i = 0; i < N; i++)
        CHECK(dtest_wait_assigned(pg, ids[i], WAIT_S));

    for (int i = 0; i < N; i++) {
        char want[512];
        const char *got;
        /* the ticket */
        snprintf(want, sizeof(want), "assigned,%s,%s,%s,%s,%s,-", cases[i].agent, cases[i].team, cases[i].dept,
                 cases[i].dept, cases[i].dept);
        got = dtest_str(pg,
                        "SELECT concat_ws(',', state, owner_agent, owner_team, owner_unit, first_owner_unit,"
                        " accountable_unit, COALESCE(route_to_unit, '-')) FROM tickets WHERE id = '%s'",
                        ids[i]);
        assert_string_equal(got, want);
        /* one assignment, open, not accepted, due in the default 1800 s (fault_repair: 300 s) */
        snprintf(want, sizeof(want), "1,%s,%s,%s,assign,%d,t,%d", cases[i].agent, cases[i].team, cases[i].dept,
                 cases[i].weight,
                 cases[i].t.business_type && strcmp(cases[i].t.business_type, "fault_repair") == 0 ? 300 : 1800);
        got = dtest_str(pg,
                        "SELECT concat_ws(',', count(*) OVER (), agent_id, team_id, department_id, kind, weight,"
                        " ended_at IS NULL AND accepted_at IS NULL,"
                        " round(extract(epoch FROM accept_due_at - assigned_at))) FROM ticket_assignments"
                        " WHERE ticket_id = '%s'",
                        ids[i]);
        assert_string_equal(got, want);
        /* one history row */
        snprintf(want, sizeof(want), "1,classified,assigned,%s,%s,agent %s", cases[i].team, cases[i].why,
                 cases[i].agent);
        got = dtest_str(pg,
                        "SELECT concat_ws(',', count(*) OVER (), from_state, to_state, target_unit, reason, note)"
                        " FROM ticket_history WHERE ticket_id = '%s' AND kind = 'assign'",
                        ids[i]);
        assert_string_equal(got, want);
    }
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM dispatch_queue"), 0);
    CHECK(dtest_wait_redis_matches(pg, rd, WAIT_S));
}

/* ---- 2. skills and presence, least-loaded, round-robin ----------------------------------------- */

/* Waits until agent's presence in Redis has run out (Redis clock). */
static bool presenceGone(const char *agent, int timeout_ms)
{
    int64_t deadline = rd_mono_us() + (int64_t)timeout_ms * 1000;
    while (rd_mono_us() < deadline) {
        redisReply *p = redisCommand(rd, "HGET {rd}:pres %s", agent);
        redisReply *t = redisCommand(rd, "TIME");
        bool gone = p && t && t->type == REDIS_REPLY_ARRAY &&
                    (p->type == REDIS_REPLY_NIL ||
                     strtoll(p->str, NULL, 10) <=
                         strtoll(t->element[0]->str, NULL, 10) * 1000 + strtoll(t->element[1]->str, NULL, 10) / 1000);
        freeReplyObject(p);
        freeReplyObject(t);
        if (gone)
            return true;
        rd_sleep_ms(20);
    }
    return false;
}

static void test_skills_and_presence(void **state)
{
    (void)state;
    oneTeam("t-skill", NULL);
    static const char *const all[] = {"s-ok", "s-lang", "s-region", "s-bt", "s-cat", "s-away", "s-off", "s-exp"};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        dtest_agent(pg, all[i], "t-skill", 20);
    dtest_skills(pg, "s-ok", "{fault_repair,billing}", "{Power}", "{en,zh}", "{CN-44}");
    dtest_skills(pg, "s-lang", "{fault_repair}", NULL, "{en}", "{CN-44}");
    dtest_skills(pg, "s-region", "{fault_repair}", NULL, "{zh}", "{CN-11,CN-45}");
    dtest_skills(pg, "s-bt", "{billing}", NULL, "{zh}", "{CN-44}");
    dtest_skills(pg, "s-cat", "{fault_repair}", "{Meter}", "{zh}", "{CN-44}");
    /* s-away, s-off and s-exp have every skill (empty lists) but are not online */
    for (size_t i = 0; i < 5; i++)
        dtest_presence(pg, rd, all[i], "online", LONG);
    dtest_presence(pg, rd, "s-away", "away", LONG);
    dtest_presence(pg, rd, "s-exp", "online", 1000);
    start(NULL);
    /* an online agent whose presence expired (no heartbeat) is offline */
    CHECK(presenceGone("s-exp", 5000));

    dtest_ticket t = {
        .business_type = "fault_repair", .category = "Power outage/area", .language = "zh-CN", .region = "CN-44-03"};
    char ids[8][37];
    dtest_tickets(pg, &t, 8, ids);
    for (int i = 0; i < 8; i++)
        CHECK(dtest_wait_assigned(pg, ids[i], WAIT_S));
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_assignments WHERE agent_id <> 's-ok'"), 0);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_assignments WHERE agent_id = 's-ok'"), 8);

    /* control: the away agent comes online and, least loaded, takes the next ones */
    dtest_presence(pg, rd, "s-away", "online", LONG);
    char more[2][37];
    dtest_tickets(pg, &t, 2, more);
    for (int i = 0; i < 2; i++) {
        CHECK(dtest_wait_assigned(pg, more[i], WAIT_S));
        assert_string_equal(dtest_owner(pg, more[i]), "s-away");
    }
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_assignments"
                                   " WHERE agent_id IN ('s-lang', 's-region', 's-bt', 's-cat', 's-off', 's-exp')"),
                     0);
    CHECK(dtest_wait_redis_matches(pg, rd, WAIT_S));
}

static void test_least_loaded(void **state)
{
    (void)state;
    oneTeam("t-ll", "least_loaded");
    static const char *const a[] = {"ll-1", "ll-2", "ll-3", "ll-4"};
    for (int i = 0; i < 4; i++) {
        dtest_agent(pg, a[i], "t-ll", 100);
        dtest_presence(pg, rd, a[i], "online", LONG);
    }
    start(NULL);
    dtest_ticket t = {.business_type = "complaint"};
    dtest_tickets(pg, &t, 10, NULL);
    CHECK(dtest_wait(pg, 10, WAIT_S, "SELECT count(*) FROM tickets WHERE owner_agent IS NOT NULL"));
    dtest_tickets(pg, &t, 12, NULL); /* a second batch on top of the loads of the first */
    CHECK(dtest_wait(pg, 22, WAIT_S, "SELECT count(*) FROM tickets WHERE owner_agent IS NOT NULL"));
    const char *spread = dtest_str(pg, "SELECT string_agg(agent_id || '=' || n, ' ' ORDER BY agent_id) FROM"
                                       " (SELECT agent_id, count(*) AS n FROM ticket_assignments GROUP BY 1) x");
    printf("least_loaded: 22 tickets over 4 agents: %s\n", spread);
    assert_int_equal(dtest_num(pg, "SELECT count(DISTINCT agent_id) FROM ticket_assignments"), 4);
    assert_true(dtest_num(pg, "SELECT max(n) - min(n) FROM (SELECT count(*) AS n FROM ticket_assignments"
                              " GROUP BY agent_id) x") <= 1);
    CHECK(dtest_wait_redis_matches(pg, rd, WAIT_S));
}

static void test_round_robin(void **state)
{
    (void)state;
    oneTeam("t-rr", "round_robin");
    static const char *const a[] = {"rr-1", "rr-2", "rr-3"};
    for (int i = 0; i < 3; i++) {
        dtest_agent(pg, a[i], "t-rr", 100);
        dtest_presence(pg, rd, a[i], "online", LONG);
    }
    start(NULL);
    dtest_ticket t = {.business_type = "complaint"};
    dtest_tickets(pg, &t, 9, NULL);
    CHECK(dtest_wait(pg, 9, WAIT_S, "SELECT count(*) FROM tickets WHERE owner_agent IS NOT NULL"));
    /* in the order the assignments were made, the agents take turns */
    const char *seq = dtest_str(pg, "SELECT string_agg(agent_id, ' ' ORDER BY id) FROM ticket_assignments");
    printf("round_robin order: %s\n", seq);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM (SELECT agent_id, id, lag(agent_id) OVER (ORDER BY id) AS p1,"
                                   " lag(agent_id, 3) OVER (ORDER BY id) AS p3 FROM ticket_assignments) x"
                                   " WHERE x.p1 = x.agent_id OR x.p3 <> x.agent_id"),
                     0);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM (SELECT agent_id FROM ticket_assignments GROUP BY agent_id"
                                   " HAVING count(*) <> 3) x"),
                     0);
    assert_int_equal(dtest_num(pg, "SELECT count(DISTINCT agent_id) FROM ticket_assignments"), 3);
    /* one goes away: the other two alternate */
    dtest_presence(pg, rd, "rr-2", "away", LONG);
    dtest_tickets(pg, &t, 4, NULL);
    CHECK(dtest_wait(pg, 13, WAIT_S, "SELECT count(*) FROM tickets WHERE owner_agent IS NOT NULL"));
    seq = dtest_str(pg, "SELECT string_agg(agent_id, ' ' ORDER BY id) FROM ticket_assignments");
    printf("round_robin order, rr-2 away for the last 4: %s\n", seq);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_assignments WHERE agent_id = 'rr-2'"), 3);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_assignments WHERE agent_id = 'rr-1'"), 5);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_assignments WHERE agent_id = 'rr-3'"), 5);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM (SELECT agent_id, lag(agent_id) OVER (ORDER BY id) AS p1"
                                   " FROM ticket_assignments) x WHERE x.p1 = x.agent_id"),
                     0);
    CHECK(dtest_wait_redis_matches(pg, rd, WAIT_S));
}

/* ---- 3. capacity and the queue ----------------------------------------------------------------- */

static void test_capacity_and_queue(void **state)
{
    (void)state;
    oneTeam("t-q", NULL);
    dtest_agent(pg, "q-1", "t-q", 2);
    dtest_agent(pg, "q-2", "t-q", 2);
    dtest_presence(pg, rd, "q-1", "online", LONG);
    /* no periodic reconciliation: capacity freed by a resolve must come through intake's PUB */
    start("REDRESS_DISPATCHER_RECONCILE_INTERVAL_MS=3600000");

    dtest_ticket t = {.business_type = "complaint", .priority = 3};
    char first[2][37];
    dtest_tickets(pg, &t, 2, first);
    for (int i = 0; i < 2; i++) {
        CHECK(dtest_wait_assigned(pg, first[i], WAIT_S));
        assert_string_equal(dtest_owner(pg, first[i]), "q-1");
    }
    /* q-1 is full and q-2 offline: these wait, whatever their priority */
    static const int prio[4] = {4, 2, 3, 1};
    char q[4][37]; /* q[i] has priority prio[i] */
    for (int i = 0; i < 4; i++) {
        t.priority = prio[i];
        dtest_tickets(pg, &t, 1, &q[i]);
    }
    CHECK(dtest_wait(pg, 4, WAIT_S,
                     "SELECT count(*) FROM dispatch_queue WHERE team_id = 't-q' AND kind = 'assign'"
                     " AND reason LIKE '%%no skilled agent of team t-q online with capacity%%'"));
    for (int i = 0; i < 4; i++)
        assert_int_equal(dtest_num(pg, "SELECT priority FROM dispatch_queue WHERE ticket_id = '%s'", q[i]), prio[i]);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM tickets WHERE state = 'classified' AND owner_agent IS NULL"),
                     4);

    /* q-2 comes online: the two most urgent go to it at once */
    int64_t t0 = rd_mono_us();
    dtest_presence(pg, rd, "q-2", "online", LONG);
    CHECK(dtest_wait(pg, 2, 5000, "SELECT count(*) FROM tickets WHERE owner_agent = 'q-2'"));
    double online_ms = (double)(rd_mono_us() - t0) / 1000.0;
    printf("queue hand-out after an agent came online: %.0f ms (polled every 20 ms)\n", online_ms);
    assert_string_equal(dtest_owner(pg, q[3]), "q-2"); /* priority 1 */
    assert_string_equal(dtest_owner(pg, q[1]), "q-2"); /* priority 2 */
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM dispatch_queue WHERE ticket_id IN ('%s', '%s')", q[0], q[2]),
                     2);

    /* q-1 resolves a ticket (through intake): the next in priority order (3) is handed to q-1 */
    act(first[0], K(ACCEPT), NULL, NULL, "accepted");
    act(first[0], K(RESOLVE), NULL, NULL, "resolved");
    t0 = rd_mono_us();
    CHECK(dtest_wait_assigned(pg, q[2], 5000));
    double resolve_ms = (double)(rd_mono_us() - t0) / 1000.0;
    printf("queue hand-out after a resolve through intake: %.0f ms\n", resolve_ms);
    assert_string_equal(dtest_owner(pg, q[2]), "q-1");
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM dispatch_queue"), 1);
    assert_string_equal(dtest_owner(pg, q[0]), "");
    assert_string_equal(
        dtest_str(pg, "SELECT outcome FROM ticket_assignments WHERE ticket_id = '%s' AND ended_at IS NOT NULL",
                  first[0]),
        "resolved");

    act(first[1], K(ACCEPT), NULL, NULL, "accepted");
    act(first[1], K(RESOLVE), NULL, NULL, "resolved");
    CHECK(dtest_wait_assigned(pg, q[0], 5000));
    assert_string_equal(dtest_owner(pg, q[0]), "q-1");
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM dispatch_queue"), 0);
    assert_int_equal(dtest_overloaded(pg), 0);
    CHECK(dtest_wait_redis_matches(pg, rd, WAIT_S));
}

/* ---- 4. overflow ----------------------------------------------------------------------------------- */

static void test_overflow(void **state)
{
    (void)state;
    dtest_dept(pg, "centre", NULL, true, "t-main");
    dtest_dept(pg, "d-over", "centre", false, "t-over");
    dtest_team(pg, "t-over", "d-over", NULL, NULL, 300, 1);
    dtest_team(pg, "t-main", "centre", NULL, "t-over", 1, 1);
    dtest_agent(pg, "m-1", "t-main", 1);
    dtest_agent(pg, "o-1", "t-over", 5);
    dtest_presence(pg, rd, "m-1", "online", LONG);
    dtest_presence(pg, rd, "o-1", "online", LONG);
    start(NULL);
    dtest_ticket t = {.business_type = "complaint"};
    char a[37], b[37];
    dtest_tickets(pg, &t, 1, &a);
    CHECK(dtest_wait_assigned(pg, a, WAIT_S));
    assert_string_equal(dtest_owner(pg, a), "m-1");
    /* m-1 is full: b waits in t-main's queue, then overflows to t-over */
    int64_t t0 = rd_mono_us();
    dtest_tickets(pg, &t, 1, &b);
    CHECK(dtest_wait(pg, 1, WAIT_S, "SELECT count(*) FROM dispatch_queue WHERE ticket_id = '%s' AND team_id = 't-main'",
                     b));
    int64_t enqueued = dtest_num(pg,
                                 "SELECT (extract(epoch FROM enqueued_at) * 1000)::bigint FROM dispatch_queue"
                                 " WHERE ticket_id = '%s'",
                                 b);
    CHECK(dtest_wait_assigned(pg, b, 5000));
    double ms = (double)(rd_mono_us() - t0) / 1000.0;
    double waited = (double)(dtest_num(pg,
                                       "SELECT (extract(epoch FROM assigned_at) * 1000)::bigint FROM ticket_assignments"
                                       " WHERE ticket_id = '%s'",
                                       b) -
                             enqueued);
    printf("overflow %.0f ms after the insert; it had waited %.0f ms in the queue (overflow_after_s = 1)\n", ms,
           waited);
    assert_string_equal(dtest_str(pg,
                                  "SELECT concat_ws(',', owner_agent, owner_team, owner_unit, first_owner_unit)"
                                  " FROM tickets WHERE id = '%s'",
                                  b),
                        "o-1,t-over,d-over,d-over");
    assert_string_equal(dtest_str(pg,
                                  "SELECT concat_ws(',', team_id, department_id) FROM ticket_assignments"
                                  " WHERE ticket_id = '%s'",
                                  b),
                        "t-over,d-over");
    assert_int_equal(dtest_num(pg,
                               "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s' AND kind = 'assign'"
                               " AND reason LIKE '%%overflow to t-over%%'",
                               b),
                     1);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM dispatch_queue"), 0);
    CHECK(dtest_wait_redis_matches(pg, rd, WAIT_S));
    /* it had waited overflow_after_s (1 s) in the queue before the overflow team could take it
     * (the wait is floored: a cast of 0.6 s to bigint would round it up to 1 s) */
    if (waited < 1000.0)
        fail_msg("overflowed after %.0f ms in the queue, before overflow_after_s = 1 s", waited);
}

/* ---- 5. acceptance timeout ------------------------------------------------------------------------- */

static void test_acceptance_timeout(void **state)
{
    (void)state;
    oneTeam("t-acc", NULL);
    static const char *const ag[] = {"x-1", "x-2", "x-3"};
    for (int i = 0; i < 3; i++) {
        dtest_agent(pg, ag[i], "t-acc", 5);
        dtest_presence(pg, rd, ag[i], "online", LONG);
    }
    dtest_limit(pg, "*", 1, 1);
    dtest_sql(pg, "DELETE FROM accept_limits WHERE business_type <> '*'");
    start(NULL);
    dtest_ticket t = {.business_type = "complaint"};
    char ids[2][37]; /* ids[0] is never accepted, ids[1] is accepted at once */
    dtest_tickets(pg, &t, 2, ids);
    CHECK(dtest_wait(pg, 2, WAIT_S, "SELECT count(*) FROM tickets WHERE owner_agent IS NOT NULL"));
    act(ids[1], K(ACCEPT), NULL, NULL, "accepted");
    char keeper[65], a1[65], a2[65], a3[65];
    snprintf(keeper, sizeof(keeper), "%s", dtest_owner(pg, ids[1]));
    snprintf(a1, sizeof(a1), "%s", dtest_owner(pg, ids[0]));

    /* the first agent misses it: taken away and given to another agent */
    CHECK(dtest_wait(pg, 1, 5000,
                     "SELECT count(*) FROM tickets t WHERE t.id = '%s' AND t.missed_accepts = 1"
                     " AND t.state = 'assigned' AND t.owner_agent IS NOT NULL AND t.owner_agent <> '%s'"
                     " AND EXISTS (SELECT 1 FROM ticket_assignments a WHERE a.ticket_id = t.id AND a.ended_at IS NULL"
                     "             AND a.agent_id = t.owner_agent AND a.kind = 'redispatch')",
                     ids[0], a1));
    snprintf(a2, sizeof(a2), "%s", dtest_owner(pg, ids[0]));
    assert_string_equal(dtest_str(pg,
                                  "SELECT concat_ws(',', count(*) OVER (), agent_id, outcome, ended_at IS NOT NULL)"
                                  " FROM ticket_assignments WHERE ticket_id = '%s' AND outcome IS NOT NULL",
                                  ids[0]),
                        expect("1,%s,missed,t", a1));
    assert_int_equal(dtest_num(pg,
                               "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s' AND kind = 'assign'"
                               " AND reason = 'acceptance timeout' AND note = 'missed by %s'",
                               ids[0], a1),
                     1);
    /* the accepted one stays where it is: by now a sweep has run after its own limit passed */
    assert_string_equal(dtest_owner(pg, ids[1]), keeper);
    assert_string_equal(dtest_str(pg,
                                  "SELECT concat_ws(',', count(*) OVER (), state, missed_accepts) FROM tickets"
                                  " WHERE id = '%s'",
                                  ids[1]),
                        "1,accepted,0");
    assert_string_equal(dtest_str(pg,
                                  "SELECT concat_ws(',', count(*) OVER (), agent_id, accepted_at IS NOT NULL,"
                                  " ended_at IS NULL) FROM ticket_assignments WHERE ticket_id = '%s'",
                                  ids[1]),
                        expect("1,%s,t,t", keeper));

    /* the second misses it too: a third agent, never one who missed it */
    CHECK(dtest_wait(pg, 1, 5000,
                     "SELECT count(*) FROM tickets t WHERE t.id = '%s' AND t.missed_accepts = 2"
                     " AND t.owner_agent IS NOT NULL AND t.owner_agent NOT IN ('%s', '%s')",
                     ids[0], a1, a2));
    snprintf(a3, sizeof(a3), "%s", dtest_owner(pg, ids[0]));
    /* and the third: every skilled agent has now missed it once, so it is offered to them again
     * rather than left in the queue for ever */
    CHECK(dtest_wait(pg, 1, 5000,
                     "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s' AND kind = 'assign'"
                     " AND reason LIKE '%%every skilled agent has missed it, offered again%%'",
                     ids[0]));
    printf("after three missed acceptances: offered again to %s\n", dtest_owner(pg, ids[0]));
    assert_true(dtest_num(pg, "SELECT missed_accepts FROM tickets WHERE id = '%s'", ids[0]) >= 3);
    assert_int_equal(dtest_num(pg,
                               "SELECT count(DISTINCT agent_id) FROM ticket_assignments WHERE ticket_id = '%s'"
                               " AND outcome = 'missed'",
                               ids[0]),
                     3);
    assert_true(dtest_num(pg,
                          "SELECT count(*) FROM ticket_assignments WHERE ticket_id = '%s' AND agent_id = '%s'"
                          " AND outcome = 'missed'",
                          ids[0], a3) >= 1);
    /* every assignment of it but the open one ended as missed; at most one is open */
    assert_int_equal(dtest_num(pg,
                               "SELECT count(*) FROM ticket_assignments WHERE ticket_id = '%s'"
                               " AND ended_at IS NOT NULL AND outcome <> 'missed'",
                               ids[0]),
                     0);
    assert_true(dtest_num(pg, "SELECT count(*) FROM ticket_assignments WHERE ticket_id = '%s' AND ended_at IS NULL",
                          ids[0]) <= 1);
    /* stop the round: later assignments get an hour, and the queue is empty once it is held */
    dtest_sql(pg, "UPDATE accept_limits SET seconds = 3600, transferred_s = 3600; NOTIFY redress_org");
    CHECK(dtest_wait(pg, 1, 5000,
                     "SELECT count(*) FROM ticket_assignments WHERE ticket_id = '%s' AND ended_at IS NULL"
                     " AND accept_due_at > now() + interval '10 minutes'",
                     ids[0]));
    CHECK(dtest_wait_redis_matches(pg, rd, WAIT_S));
}

/* ---- 6. transfer and return through intake -------------------------------------------------------- */

static void test_transfer_and_return(void **state)
{
    (void)state;
    dtest_dept(pg, "centre", NULL, true, "t-centre");
    dtest_dept(pg, "d-north", "centre", false, "t-north-b");
    dtest_dept(pg, "d-south", "centre", false, NULL);
    dtest_team(pg, "t-centre", "centre", NULL, NULL, 300, 1);
    dtest_team(pg, "t-north-a", "d-north", NULL, NULL, 300, 1);
    dtest_team(pg, "t-north-b", "d-north", NULL, NULL, 300, 1);
    dtest_team(pg, "t-south", "d-south", NULL, NULL, 300, 1);
    static const char *const agents[][2] = {
        {"c-1", "t-centre"}, {"na-1", "t-north-a"}, {"nb-1", "t-north-b"}, {"s-1", "t-south"}};
    for (int i = 0; i < 4; i++) {
        dtest_agent(pg, agents[i][0], agents[i][1], 5);
        dtest_presence(pg, rd, agents[i][0], "online", LONG);
    }
    dtest_limit(pg, "*", 600, 900);
    start(NULL);
    dtest_ticket t = {.business_type = "complaint"};
    char id[37];
    dtest_tickets(pg, &t, 1, &id);
    CHECK(dtest_wait_assigned(pg, id, WAIT_S));
    /* the ticket's owner columns */
#define OWNER                                                                                                          \
    "SELECT concat_ws(',', state, owner_agent, owner_team, owner_unit, first_owner_unit, accountable_unit)"            \
    " FROM tickets WHERE id = '%s'"
    assert_string_equal(dtest_str(pg, OWNER, id), "assigned,c-1,t-centre,centre,centre,centre");
    act(id, K(ACCEPT), NULL, NULL, "accepted");

    /* a transfer needs a reason: refused by intake, nothing changes */
    char st[32];
    assert_int_equal(dtest_act(cli, id, K(TRANSFER), NULL, "t-south", st, sizeof(st)), E(MISSING_FIELD));
    assert_string_equal(dtest_str(pg, OWNER, id), "accepted,c-1,t-centre,centre,centre,centre");

    /* transfer to a team */
    act(id, K(TRANSFER), "属于南区业务", "t-south", "assigned");
    CHECK(dtest_wait(pg, 1, WAIT_S, "SELECT count(*) FROM tickets WHERE id = '%s' AND owner_agent = 's-1'", id));
    /* first_owner_unit stays the first unit; accountability has not moved yet */
    assert_string_equal(dtest_str(pg, OWNER, id), "assigned,s-1,t-south,d-south,centre,centre");
    assert_int_equal(dtest_num(pg,
                               "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s' AND kind = 'assign'"
                               " AND reason = 'unit:t-south' AND target_unit = 't-south' AND note = 'agent s-1'",
                               id),
                     1);
    /* the transferred acceptance limit (900 s) */
    assert_string_equal(dtest_str(pg,
                                  "SELECT concat_ws(',', kind, team_id, department_id,"
                                  " round(extract(epoch FROM accept_due_at - assigned_at)))"
                                  " FROM ticket_assignments WHERE ticket_id = '%s' AND ended_at IS NULL",
                                  id),
                        "transfer,t-south,d-south,900");
    assert_string_equal(dtest_str(pg,
                                  "SELECT concat_ws(',', agent_id, outcome) FROM ticket_assignments"
                                  " WHERE ticket_id = '%s' AND ended_at IS NOT NULL",
                                  id),
                        "c-1,transferred");
    act(id, K(ACCEPT), NULL, NULL, "accepted");
    assert_string_equal(dtest_str(pg, OWNER, id), "accepted,s-1,t-south,d-south,centre,d-south");

    /* transfer to a department: its default team */
    act(id, K(TRANSFER), "北区辖区", "d-north", "assigned");
    CHECK(dtest_wait(pg, 1, WAIT_S, "SELECT count(*) FROM tickets WHERE id = '%s' AND owner_agent = 'nb-1'", id));
    assert_string_equal(dtest_str(pg, OWNER, id), "assigned,nb-1,t-north-b,d-north,centre,d-south");
    assert_int_equal(dtest_num(pg,
                               "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s' AND kind = 'assign'"
                               " AND reason = 'unit:d-north' AND target_unit = 't-north-b'",
                               id),
                     1);
    act(id, K(ACCEPT), NULL, NULL, "accepted");
    assert_string_equal(dtest_str(pg, OWNER, id), "accepted,nb-1,t-north-b,d-north,centre,d-north");

    /* return (退单) to a unit: routed there */
    act(id, K(RETURN), "非本班组业务", "t-north-a", "returned");
    CHECK(dtest_wait(pg, 1, WAIT_S, "SELECT count(*) FROM tickets WHERE id = '%s' AND owner_agent = 'na-1'", id));
    assert_string_equal(dtest_str(pg, OWNER, id), "assigned,na-1,t-north-a,d-north,centre,d-north");
    assert_int_equal(dtest_num(pg,
                               "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s' AND kind = 'assign'"
                               " AND from_state = 'returned' AND reason = 'unit:t-north-a'",
                               id),
                     1);
    /* return to the dispatch centre */
    act(id, K(RETURN), "退回调度中心", "centre", "returned");
    CHECK(dtest_wait(pg, 1, WAIT_S, "SELECT count(*) FROM tickets WHERE id = '%s' AND owner_agent = 'c-1'", id));
    assert_string_equal(dtest_str(pg, OWNER, id), "assigned,c-1,t-centre,centre,centre,d-north");
    act(id, K(ACCEPT), NULL, NULL, "accepted");
    assert_string_equal(dtest_str(pg, OWNER, id), "accepted,c-1,t-centre,centre,centre,centre");

    /* a transfer to a unit that does not exist lands in the dispatch centre's default team */
    act(id, K(TRANSFER), "不知道哪个班组", "no-such-unit", "assigned");
    CHECK(dtest_wait(pg, 1, WAIT_S,
                     "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s' AND kind = 'assign'"
                     " AND reason = 'unknown unit -> centre' AND target_unit = 't-centre' AND note = 'agent c-1'",
                     id));
    assert_string_equal(dtest_str(pg, OWNER, id), "assigned,c-1,t-centre,centre,centre,centre");
    act(id, K(ACCEPT), NULL, NULL, "accepted");

    assert_string_equal(dtest_str(pg,
                                  "SELECT string_agg(kind || ':' || agent_id || ':' || COALESCE(outcome, 'open'),"
                                  " ' ' ORDER BY id) FROM ticket_assignments WHERE ticket_id = '%s'",
                                  id),
                        "assign:c-1:transferred transfer:s-1:transferred transfer:nb-1:returned return:na-1:returned "
                        "return:c-1:transferred transfer:c-1:open");
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_assignments WHERE ended_at IS NULL"), 1);
    CHECK(dtest_wait_redis_matches(pg, rd, WAIT_S));
}

/* ---- the command line -------------------------------------------------------------------------------- */

static void test_command_line(void **state)
{
    (void)state;
    const char *dir = getenv("REDRESS_TEST_DIR");
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "'%s' --help > '%s/help.txt' 2>&1", REDRESS_DISPATCHER_BIN, dir);
    assert_int_equal(itest_run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "grep -q 'redis.url' '%s/help.txt'", dir);
    assert_int_equal(itest_run(cmd), 0);
    static const char *const bad[] = {
        "REDRESS_DISPATCHER_BATCH=0",
        "REDRESS_DISPATCHER_QUEUE_INTERVAL_MS=soon",
        "REDRESS_DISPATCHER_RESERVATION_GRACE_MS=10",
        "REDRESS_REDIS_URL=redis://127.0.0.1:notaport",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* without --check-config: it would run, were the value accepted (timeout: exit 124) */
        snprintf(cmd, sizeof(cmd), "%s timeout 10 '%s' > '%s/bad.txt' 2>&1", bad[i], REDRESS_DISPATCHER_BIN, dir);
        int rc = itest_run(cmd);
        if (rc != 2)
            fail_msg("%s: exit %d, want 2", bad[i], rc);
        snprintf(cmd, sizeof(cmd), "grep -q 'configuration' '%s/bad.txt'", dir);
        assert_int_equal(itest_run(cmd), 0);
    }
}

/* ---- fixtures ---------------------------------------------------------------------------------------- */

static int groupSetup(void **state)
{
    (void)state;
    pg = itest_pg();
    rd = dtest_redis();
    if (!itest_intake_start(&in, NULL))
        return -1;
    char err[256];
    cli = rd_client_new(in.endpoint, err, sizeof(err));
    return cli ? 0 : -1;
}

static int groupTeardown(void **state)
{
    (void)state;
    dtest_stop(&disp);
    rd_client_destroy(&cli);
    itest_intake_stop(&in);
    redisFree(rd);
    PQfinish(pg);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    dtest_reset(pg, rd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dtest_stop(&disp);
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_line),
        cmocka_unit_test_setup_teardown(test_routing_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skills_and_presence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_least_loaded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_robin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_and_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acceptance_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_and_return, setup, teardown),
    };
    return cmocka_run_group_tests(tests, groupSetup, groupTeardown);
}
