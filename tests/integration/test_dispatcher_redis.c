/*
 * redress-dispatcher when Redis loses its state under it: flushed while tickets are being
 * assigned, and stopped then started again empty (same port). PostgreSQL is the truth: afterwards
 * Redis' loads and open tickets must equal PostgreSQL's, and no agent may ever hold more than
 * its capacity in PostgreSQL.
 *
 * Each test starts from empty tables and an empty Redis (dtest_reset) with its own organisation
 * and dispatcher.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dtest.h"
#include "rd_redis.h"
#include "rd_time.h"

#define LONG   600000
#define WAIT_S 10000

static PGconn *pg;
static redisContext *rd;
static dtest_dispatcher disp;

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            dtest_tail(&disp, 40);                                                                                     \
            fail_msg("%s", #cond);                                                                                     \
        }                                                                                                              \
    } while (0)

/* Agents f-1..f-n in team t-f (the centre's), online in PostgreSQL and Redis. */
static void org(int n, int capacity, int major_weight)
{
    dtest_dept(pg, "centre", NULL, true, "t-f");
    dtest_team(pg, "t-f", "centre", NULL, NULL, 300, major_weight);
    for (int i = 1; i <= n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "f-%d", i);
        dtest_agent(pg, id, "t-f", capacity);
        dtest_presence(pg, rd, id, "online", LONG);
    }
}

static int64_t openLoad(void)
{
    return dtest_num(pg, "SELECT COALESCE(sum(weight), 0) FROM ticket_assignments WHERE ended_at IS NULL");
}

/* ---- 7. FLUSHALL while tickets are being assigned ---------------------------------------------- */

static void test_flushall_mid_run(void **state)
{
    (void)state;
    org(5, 20, 2); /* 100 load units; a major ticket counts 2 */
    if (!dtest_start(&disp, 0, NULL))
        fail_msg("the dispatcher did not start");
    int overloadSamples = 0, samples = 0, flushes = 0;
    int64_t flushedAt = 0, openAtFlush = 0;
    for (int b = 0; b < 60; b++) {
        dtest_ticket t = {
            .business_type = "complaint", .severity = b % 3 == 0 ? "major" : "general", .priority = 1 + b % 4};
        if (b < 50)
            dtest_tickets(pg, &t, 3, NULL);
        /* flush while the dispatcher is busy assigning: once it has assigned some since the last
         * flush (so Redis was rebuilt and in use), up to four times while there is room */
        int64_t open = dtest_num(pg, "SELECT count(*) FROM ticket_assignments WHERE ended_at IS NULL");
        if (getenv("DTEST_VERBOSE"))
            printf("batch %d: %lld open\n", b, (long long)open);
        if (flushes < 4 && open >= openAtFlush + 3 && open < 70) {
            redisReply *x = redisCommand(rd, "FLUSHALL");
            assert_non_null(x);
            assert_int_not_equal(x->type, REDIS_REPLY_ERROR);
            freeReplyObject(x);
            flushedAt = rd_mono_us();
            openAtFlush = open;
            printf("FLUSHALL %d at batch %d, %lld open assignments\n", ++flushes, b, (long long)open);
        }
        samples++;
        if (dtest_overloaded(pg) != 0 && overloadSamples++ == 0)
            printf("over capacity at batch %d: %s\n", b,
                   dtest_str(pg, "SELECT string_agg(agent_id || '=' || l, ' ' ORDER BY agent_id) FROM (SELECT agent_id,"
                                 " sum(weight) AS l FROM ticket_assignments WHERE ended_at IS NULL GROUP BY 1) x"));
        rd_sleep_ms(40);
    }
    assert_true(flushes >= 2);
    /* every ticket gets an owner or a place in the queue; every weight-1 ticket fits anywhere with
     * room, and some are still waiting: all full */
    static const char *const undecided = "SELECT count(*) FROM tickets t WHERE t.owner_agent IS NULL AND NOT EXISTS"
                                         " (SELECT 1 FROM dispatch_queue q WHERE q.ticket_id = t.id)";
    int64_t deadline = rd_mono_us() + 20000 * 1000LL;
    while (rd_mono_us() < deadline && (openLoad() != 100 || itest_count(pg, undecided) != 0)) {
        samples++;
        if (dtest_overloaded(pg) != 0)
            overloadSamples++;
        rd_sleep_ms(20);
    }
    printf("open load %lld of 100 units %.1f s after the last flush; %d capacity samples\n", (long long)openLoad(),
           (double)(rd_mono_us() - flushedAt) / 1e6, samples);
    assert_int_equal(overloadSamples, 0);
    CHECK(openLoad() == 100);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM (SELECT agent_id, sum(weight) AS l FROM ticket_assignments"
                                   " WHERE ended_at IS NULL GROUP BY agent_id) x WHERE x.l = 20"),
                     5);
    /* every ticket is either assigned or waiting, never both */
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM tickets t WHERE (t.owner_agent IS NOT NULL) ="
                                   " EXISTS (SELECT 1 FROM dispatch_queue q WHERE q.ticket_id = t.id)"),
                     0);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM tickets WHERE owner_agent IS NOT NULL") +
                         dtest_num(pg, "SELECT count(*) FROM dispatch_queue"),
                     150);
    /* one open assignment per assigned ticket, and it names the owner */
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM tickets t WHERE t.owner_agent IS NOT NULL AND NOT EXISTS"
                                   " (SELECT 1 FROM ticket_assignments a WHERE a.ticket_id = t.id"
                                   "  AND a.ended_at IS NULL AND a.agent_id = t.owner_agent)"),
                     0);
    CHECK(dtest_wait_redis_matches(pg, rd, 5000));
    assert_int_equal(dtest_overloaded(pg), 0);
}

/* ---- 8. Redis stopped, then started again empty -------------------------------------------------- */

/* Runs a function of tests/lib/servers.sh on the stack's directory (the parent of REDRESS_TEST_DIR). */
static int servers(const char *fn, const char *arg)
{
    char cmd[2048];
    snprintf(
        cmd, sizeof(cmd),
        "bash -c 'set -euo pipefail; source \"%s/tests/lib/servers.sh\"; %s \"$(dirname \"$REDRESS_TEST_DIR\")\" %s'"
        " >&2",
        REDRESS_SOURCE_DIR, fn, arg ? arg : "");
    return itest_run(cmd);
}

static void test_redis_restart(void **state)
{
    (void)state;
    rd_redis_addr addr;
    char err[256], port[16];
    assert_true(rd_redis_parse_url(getenv("REDRESS_REDIS_URL"), &addr, err, sizeof(err)));
    snprintf(port, sizeof(port), "%d", addr.port);
    org(2, 10, 1);
    if (!dtest_start(&disp, 0, NULL))
        fail_msg("the dispatcher did not start");
    dtest_ticket t = {.business_type = "complaint"};
    char before[2][37];
    dtest_tickets(pg, &t, 2, before);
    for (int i = 0; i < 2; i++)
        CHECK(dtest_wait_assigned(pg, before[i], WAIT_S));

    /* Redis goes away */
    redisFree(rd);
    rd = NULL;
    assert_int_equal(servers("rd_redis_stop", NULL), 0);
    int64_t t0 = rd_mono_us();
    char ids[6][37];
    dtest_tickets(pg, &t, 6, ids); /* the dispatcher finds them, and finds Redis gone */
    CHECK(dtest_wait_health(&disp, 503, WAIT_S));
    printf("/healthz 503 %.0f ms after Redis stopped\n", (double)(rd_mono_us() - t0) / 1000.0);
    /* nothing is assigned meanwhile: several re-drive rounds (200 ms) pass */
    rd_sleep_ms(1500);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM tickets WHERE owner_agent IS NOT NULL"), 2);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_assignments"), 2);
    assert_int_equal(dtest_http_status(disp.http_port, "/healthz"), 503);

    /* Redis comes back on the same port, empty */
    assert_int_equal(servers("rd_redis_start", port), 0);
    t0 = rd_mono_us();
    rd = dtest_redis();
    CHECK(dtest_wait_health(&disp, 200, 15000));
    for (int i = 0; i < 6; i++)
        CHECK(dtest_wait_assigned(pg, ids[i], 15000));
    printf("after Redis came back: healthy and 6 waiting tickets assigned in %.0f ms\n",
           (double)(rd_mono_us() - t0) / 1000.0);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_assignments"), 8);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM dispatch_queue"), 0);
    CHECK(dtest_wait_redis_matches(pg, rd, WAIT_S));
    assert_int_equal(dtest_overloaded(pg), 0);
    /* the two assigned before the outage kept their owners */
    for (int i = 0; i < 2; i++)
        assert_int_equal(dtest_num(pg, "SELECT count(*) FROM ticket_assignments WHERE ticket_id = '%s'", before[i]), 1);
}

/* ---- fixtures ---------------------------------------------------------------------------------------- */

static int groupSetup(void **state)
{
    (void)state;
    pg = itest_pg();
    rd = dtest_redis();
    return 0;
}

static int groupTeardown(void **state)
{
    (void)state;
    dtest_stop(&disp);
    if (rd)
        redisFree(rd);
    PQfinish(pg);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    if (rd == NULL || rd->err)
        return -1;
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
        cmocka_unit_test_setup_teardown(test_flushall_mid_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redis_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, groupSetup, groupTeardown);
}
