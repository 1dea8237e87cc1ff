/*
 * redress-escalation under trouble: two processes on the real clock, a few thousand resolution
 * clocks coming due 20 to 35 seconds after the start, and meanwhile
 *   1. Redis loses everything (FLUSHALL) as the first breaches fire: every running clock's timer
 *      must be back in {esc}:due or {esc}:inflight within 10 seconds, rebuilt from PostgreSQL, at
 *      its next_fire_at;
 *   2. one process is killed (SIGKILL) while breaches are firing, and a new one started: the
 *      timers it had claimed are re-claimed after the lease.
 * At the end every clock has breached exactly once, with one escalation per (clock, level), its
 * raise_priority applied once, and nothing is left in sla_queue.
 *
 * The clocks: tickets received almost 24 hours ago (created_at in the past), classified now, under
 * the default general-resolve policy (24 h; warnings at 50 and 80 % already past, so they fire at
 * once; escalation level 1 at the breach, level 2 at 48 h, which keeps every clock running with a
 * timer throughout).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "etest.h"
#include "rd_time.h"

#define N         3000
#define FIRST_DUE 20000 /* ms after t0: the first breach */
#define SPREAD    15000 /* ms over which the breaches are spread */
#define KILL_AT   26000 /* ms after t0: SIGKILL one process */

static PGconn *pg;
static redisContext *rd;
static etest_service procs[3];

static void tailAll(void)
{
    for (int i = 0; i < 3; i++)
        etest_tail(&procs[i], 30);
}

#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            tailAll();                                                                                                 \
            fail_msg("%s", #cond);                                                                                     \
        }                                                                                                              \
    } while (0)

static int cmpId(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Appends the members of a sorted set (clock ids) to ids. */
static void zmembers(const char *key, int64_t **ids, size_t *n, size_t *cap)
{
    redisReply *x = redisCommand(rd, "ZRANGE %s 0 -1", key);
    if (x == NULL || x->type != REDIS_REPLY_ARRAY)
        fail_msg("ZRANGE %s: %s", key, x && x->type == REDIS_REPLY_ERROR ? x->str : rd->errstr);
    for (size_t i = 0; i < x->elements; i++) {
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 4096;
            *ids = realloc(*ids, *cap * sizeof(**ids));
            assert_non_null(*ids);
        }
        (*ids)[(*n)++] = strtoll(x->element[i]->str, NULL, 10);
    }
    freeReplyObject(x);
}

/* How many clocks PostgreSQL says have a timer (next_fire_at set), and how many of them are in
 * neither {esc}:due nor {esc}:inflight. Redis is read after PostgreSQL: a clock that fired in
 * between is back in due (with its next instant) or still in inflight, so it is not "missing". */
static void timersMissing(int64_t *live, int64_t *missing)
{
    PGresult *r = PQexec(pg, "SELECT id FROM sla_clocks WHERE next_fire_at IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("live clocks: %s", PQerrorMessage(pg));
    int64_t *ids = NULL;
    size_t n = 0, cap = 0;
    zmembers("{esc}:due", &ids, &n, &cap);
    zmembers("{esc}:inflight", &ids, &n, &cap);
    if (n)
        qsort(ids, n, sizeof(*ids), cmpId);
    *live = PQntuples(r);
    *missing = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        if (n == 0 || bsearch(&id, ids, n, sizeof(*ids), cmpId) == NULL)
            (*missing)++;
    }
    PQclear(r);
    free(ids);
}

/* Timers in {esc}:due whose score is not their clock's next_fire_at (in ms), out of how many. Redis
 * is read first: a clock that fired in between (its score the breach instant, PostgreSQL already at
 * level 2) is not wrong. */
static int64_t wrongScores(int64_t *checked)
{
    redisReply *x = redisCommand(rd, "ZRANGE {esc}:due 0 -1 WITHSCORES");
    if (x == NULL || x->type != REDIS_REPLY_ARRAY)
        fail_msg("ZRANGE {esc}:due: %s", x && x->type == REDIS_REPLY_ERROR ? x->str : rd->errstr);
    PGresult *r = PQexec(pg, "SELECT id, COALESCE(round(extract(epoch FROM next_fire_at) * 1000)::bigint, -1),"
                             " round(extract(epoch FROM started_at + interval '24 hours') * 1000)::bigint"
                             " FROM sla_clocks ORDER BY id");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("clocks: %s", PQerrorMessage(pg));
    int rows = PQntuples(r);
    int64_t(*pgv)[3] = calloc((size_t)rows + 1, sizeof(*pgv));
    assert_non_null(pgv);
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < 3; j++)
            pgv[i][j] = strtoll(PQgetvalue(r, i, j), NULL, 10);
    PQclear(r);
    int64_t wrong = 0;
    *checked = 0;
    for (size_t i = 0; i + 1 < x->elements; i += 2) {
        int64_t id = strtoll(x->element[i]->str, NULL, 10);
        int64_t score = (int64_t)llround(strtod(x->element[i + 1]->str, NULL));
        const int64_t(*row)[3] = bsearch(&id, pgv, (size_t)rows, sizeof(*pgv), cmpId);
        (*checked)++;
        if (row && (score == (*row)[1] || (score == (*row)[2] && (*row)[1] != (*row)[2])))
            continue;
        if (wrong++ < 5)
            fprintf(stderr, "chaos: {esc}:due has clock %lld at %lld, PostgreSQL says %lld\n", (long long)id,
                    (long long)score, row ? (long long)(*row)[1] : -2LL);
    }
    freeReplyObject(x);
    free(pgv);
    return wrong;
}

static double rebuilds(void)
{
    double sum = 0;
    for (int i = 0; i < 3; i++)
        if (procs[i].d.pid > 0) {
            double v = etest_metric(&procs[i], "redress_escalation_rebuilds_total");
            sum += v > 0 ? v : 0;
        }
    return sum;
}

static int64_t breaches(void)
{
    return dtest_num(pg, "SELECT count(*) FROM sla_events WHERE kind = 'breached'");
}

static void test_flush_and_kill(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        if (!etest_start(&procs[i], 0, ETEST_REAL, NULL))
            fail_msg("escalation process %d did not start", i);

    /* N tickets received 24 h - (20..35 s) ago, classified now (one transaction) */
    const int64_t t0 = rd_now_ms();
    dtest_ticket t = {.business_type = "complaint", .severity = "general", .priority = 4};
    dtest_tickets(pg, &t, N, NULL);
    dtest_sql(
        pg,
        "UPDATE tickets SET state = 'new', created_at = to_timestamp((%lld + (split_part(event_id, '-', 4)::int - 1)"
        " * %d / %d) / 1000.0) WHERE gateway_id = 'dtest'",
        (long long)(t0 - 24 * ETEST_HOUR + FIRST_DUE), SPREAD, N);
    dtest_sql(pg, "INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, at, actor)"
                  " SELECT id, 'classify', 'new', 'classified', now(), 'etest' FROM tickets ORDER BY created_at");
    dtest_sql(pg, "UPDATE tickets SET state = 'classified'");
    CHECK(dtest_wait(pg, N, 15000, "SELECT count(*) FROM sla_clocks WHERE clock = 'resolution' AND state = 'running'"));
    CHECK(etest_settle(pg, 10000));
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_clocks"), N);
    int64_t armedAt = rd_now_ms() - t0;
    fprintf(stderr, "chaos: %d clocks armed after %lld ms\n", N, (long long)armedAt);
    CHECK(armedAt < FIRST_DUE - 5000);

    /* 1. Redis loses everything while the first breaches fire: every clock's timer must be back
     * within 10 s */
    int64_t wait = t0 + FIRST_DUE + 1000 - rd_now_ms();
    if (wait > 0)
        rd_sleep_ms(wait);
    double rebuiltBefore = rebuilds();
    int64_t breachedBefore = breaches();
    redisReply *x = redisCommand(rd, "FLUSHALL");
    CHECK(x != NULL && x->type == REDIS_REPLY_STATUS);
    freeReplyObject(x);
    int64_t flushedAt = rd_mono_us(), live = 0, missing = -1;
    while (rd_mono_us() - flushedAt < 10000000) {
        timersMissing(&live, &missing);
        if (missing == 0)
            break;
        rd_sleep_ms(100);
    }
    fprintf(stderr, "chaos: after FLUSHALL %lld live clocks, %lld not in Redis after %lld ms (%lld breached before)\n",
            (long long)live, (long long)missing, (long long)(rd_mono_us() - flushedAt) / 1000,
            (long long)breachedBefore);
    /* not vacuous: every clock has a timer (level 2 at 48 h), and Redis was empty at the flush */
    assert_int_equal(live, N);
    CHECK(missing == 0);
    CHECK(rebuilds() > rebuiltBefore);
    int64_t checked = 0, wrong = wrongScores(&checked);
    fprintf(stderr, "chaos: %lld of %lld rebuilt timers at the wrong instant\n", (long long)wrong, (long long)checked);
    CHECK(wrong == 0 && checked > N / 2);

    /* 2. SIGKILL one process while the breaches fire; start another */
    wait = t0 + KILL_AT - rd_now_ms();
    if (wait > 0)
        rd_sleep_ms(wait);
    int64_t atKill = breaches();
    etest_kill(&procs[0]);
    fprintf(stderr, "chaos: killed process 0 with %lld of %d breached\n", (long long)atKill, N);
    if (!etest_start(&procs[2], 0, ETEST_REAL, NULL))
        fail_msg("the replacement did not start");

    /* the last breach is due at t0 + 35 s; a killed claim is re-claimed after the 3 s lease */
    int64_t left = t0 + FIRST_DUE + SPREAD + 15000 - rd_now_ms();
    CHECK(
        dtest_wait(pg, N, (int)(left > 5000 ? left : 5000), "SELECT count(*) FROM sla_events WHERE kind = 'breached'"));
    CHECK(dtest_wait(pg, N, 5000, "SELECT count(*) FROM sla_escalations"));
    CHECK(dtest_wait(pg, N, 5000, "SELECT count(*) FROM tickets WHERE priority = 3"));
    CHECK(etest_settle(pg, 5000));
    rd_sleep_ms(500); /* anything firing twice would show now */

    /* exactly once, at the exact instant */
    assert_int_equal(breaches(), N);
    assert_int_equal(dtest_num(pg, "SELECT count(DISTINCT clock_id) FROM sla_events WHERE kind = 'breached'"), N);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_events e JOIN sla_clocks c ON c.id = e.clock_id"
                                   " WHERE e.kind = 'breached' AND e.at = c.started_at + interval '24 hours'"
                                   " AND c.breached_at = e.at"),
                     N);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_events WHERE kind = 'warned'"), 2 * N);
    assert_int_equal(dtest_num(pg, "SELECT count(DISTINCT (clock_id, level)) FROM sla_events WHERE kind = 'warned'"),
                     2 * N);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_events WHERE kind = 'escalated'"), N);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_events WHERE kind = 'escalated' AND level = 1"), N);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_escalations"), N);
    assert_int_equal(dtest_num(pg, "SELECT count(DISTINCT (clock_id, level)) FROM sla_escalations WHERE level = 1"
                                   " AND role = 'team_lead' AND action = 'raise_priority'"),
                     N);
    /* raise_priority applied once per ticket: 4 -> 3, never 2 */
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM tickets WHERE priority = 3"), N);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_queue"), 0);
    /* every clock still runs towards level 2 (48 h), with a timer */
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_clocks WHERE state = 'running' AND next_fire_at ="
                                   " started_at + interval '48 hours'"),
                     N);

    /* lateness: breaches claimed by the killed process wait for the lease (3 s) */
    const char *late =
        dtest_str(pg, "SELECT round(extract(epoch FROM max(recorded_at - at))::numeric, 3) || ' s max, ' ||"
                      " round(extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY recorded_at -"
                      " at))::numeric, 3) || ' s p99' FROM sla_events WHERE kind = 'breached'");
    fprintf(stderr, "chaos: breach lateness %s\n", late);
    assert_int_equal(dtest_num(pg, "SELECT count(*) FROM sla_events WHERE kind = 'breached'"
                                   " AND recorded_at - at > interval '20 seconds'"),
                     0);
    for (int i = 1; i < 3; i++)
        CHECK(waitpid(procs[i].d.pid, NULL, WNOHANG) == 0); /* the survivors are still running */
}

static int setup(void **state)
{
    (void)state;
    pg = itest_pg();
    rd = dtest_redis();
    etest_reset(pg, rd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        etest_stop(&procs[i]);
    redisFree(rd);
    PQfinish(pg);
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_flush_and_kill, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
