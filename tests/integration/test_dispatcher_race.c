/*
 * The dispatcher under contention: 4 dispatcher processes, 50 agents of capacity 5, 5,000
 * tickets at once. Agents work their tickets (accept, resolve through intake) as fast as they
 * can, which frees capacity and makes the dispatchers hand out the queue, until every ticket has
 * been assigned. Throughout, the load of every agent is sampled in Redis and in PostgreSQL: no
 * agent may ever be above capacity. Afterwards every ticket was assigned exactly once and the
 * Redis counts equal PostgreSQL's.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>

#include "itest.h"
#include "rd_redis.h"
#include "rd_time.h"

#define AGENTS     50
#define CAPACITY   5
#define TICKETS    5000
#define PROCESSES  4
#define DEADLINE_S 240

#define E(x) REDRESS__V1__ERROR_CODE__ERROR_##x
#define K(x) REDRESS__V1__ACTION_KIND__ACTION_##x

static void sql(PGconn *pg, const char *q)
{
    PGresult *r = PQexec(pg, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQerrorMessage(pg));
    PQclear(r);
}

static pid_t startDispatcher(int i, const itest_intake *in)
{
    char env[1024], log[256];
    snprintf(env, sizeof(env),
             "REDRESS_DISPATCHER_CLASSIFIER_ENDPOINT=tcp://127.0.0.1:%d;"
             "REDRESS_DISPATCHER_EVENTS_ENDPOINT=tcp://127.0.0.1:%d;"
             "REDRESS_DISPATCHER_PUSH_BIND=tcp://127.0.0.1:%d;REDRESS_DISPATCHER_PUB_BIND=tcp://127.0.0.1:%d;"
             "REDRESS_DISPATCHER_HTTP_PORT=0;REDRESS_DISPATCHER_REDRIVE_MIN_AGE_MS=0;"
             "REDRESS_DISPATCHER_REDRIVE_INTERVAL_MS=200;REDRESS_DISPATCHER_QUEUE_INTERVAL_MS=100;"
             "REDRESS_DISPATCHER_RECONCILE_INTERVAL_MS=1000;REDRESS_DISPATCHER_BATCH=128",
             itest_free_port(), in->pub_port, itest_free_port(), itest_free_port());
    snprintf(log, sizeof(log), "%s/dispatcher-%d.log", getenv("REDRESS_TEST_DIR"), i);
    pid_t p = itest_spawn(REDRESS_DISPATCHER_BIN, env, log);
    assert_true(p > 0);
    return p;
}

/* The highest load of any agent in Redis ({rd}:load) and in PostgreSQL (open assignments). */
static int64_t maxRedis(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "HVALS {rd}:load");
    if (r == NULL)
        return 0;
    int64_t m = 0;
    for (size_t i = 0; i < r->elements; i++) {
        int64_t v = atoll(r->element[i]->str);
        if (v > m)
            m = v;
    }
    freeReplyObject(r);
    return m;
}

static int64_t maxPg(PGconn *pg)
{
    return itest_count(pg, "SELECT COALESCE(max(s), 0) FROM (SELECT sum(weight) AS s FROM ticket_assignments"
                           " WHERE ended_at IS NULL GROUP BY agent_id) x");
}

/* Samples both loads as fast as it can until told to stop; records the worst seen. */
typedef struct {
    atomic_bool stop;
    int64_t samples, worstRedis, worstPg;
    char failure[512];
} sampler;

static void *sampleLoop(void *arg)
{
    sampler *s = arg;
    char err[256];
    rd_redis_addr ra;
    redisContext *rc = NULL;
    PGconn *pg = itest_pg();
    if (rd_redis_parse_url(getenv("REDRESS_REDIS_URL"), &ra, err, sizeof(err)))
        rc = rd_redis_connect(&ra, 5000, err, sizeof(err));
    if (rc == NULL || pg == NULL) {
        snprintf(s->failure, sizeof(s->failure), "sampler cannot connect: %s", err);
        return NULL;
    }
    while (!atomic_load(&s->stop)) {
        int64_t mr = maxRedis(rc), mp = maxPg(pg);
        s->samples++;
        s->worstRedis = mr > s->worstRedis ? mr : s->worstRedis;
        s->worstPg = mp > s->worstPg ? mp : s->worstPg;
        if ((mr > CAPACITY || mp > CAPACITY) && s->failure[0] == '\0')
            snprintf(s->failure, sizeof(s->failure), "an agent above capacity %d: Redis %lld, PostgreSQL %lld",
                     CAPACITY, (long long)mr, (long long)mp);
    }
    redisFree(rc);
    PQfinish(pg);
    return NULL;
}

static bool act(rd_client *c, const char *ticket, Redress__V1__ActionKind kind, int n)
{
    Redress__V1__Envelope e;
    Redress__V1__TicketAction a;
    char id[64];
    snprintf(id, sizeof(id), "race-%d-%.8s-%d", (int)kind, ticket, n);
    itest_action(&e, &a, id, ticket, kind);
    a.actor = "race-agent";
    Redress__V1__Reply *r = itest_call(c, &e);
    bool ok = r != NULL && r->error == E(NONE);
    if (r)
        redress__v1__reply__free_unpacked(r, NULL);
    return ok;
}

static void test_race(void **state)
{
    PGconn *pg = itest_pg();
    sql(pg, "INSERT INTO departments (id, name, dispatch_centre) VALUES ('centre', 'Dispatch centre', true)");
    sql(pg, "INSERT INTO teams (id, department_id, name) VALUES ('pool', 'centre', 'Pool')");
    sql(pg, "UPDATE departments SET default_team = 'pool'");
    char q[512];
    snprintf(q, sizeof(q),
             "INSERT INTO agents (id, team_id, name, capacity)"
             " SELECT 'agent-' || g, 'pool', '坐席 ' || g, %d FROM generate_series(1, %d) g",
             CAPACITY, AGENTS);
    sql(pg, q);
    sql(pg, "UPDATE accept_limits SET seconds = 3600, transferred_s = 3600");
    sql(pg, "INSERT INTO agent_presence SELECT id, 'online', now() + interval '1 hour' FROM agents");
    sql(pg, "INSERT INTO customers (id, customer_ref) VALUES ('00000000-0000-4000-8000-000000000001', 'race')");
    snprintf(q, sizeof(q),
             "INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, occurred_at, state,"
             "                     business_type, severity, priority, subject)"
             " SELECT gen_random_uuid(), 'race', 'race-' || g, 'web', '00000000-0000-4000-8000-000000000001',"
             "        now(), 'classified', 'complaint', 'general', 1 + g %% 4, 'race ' || g"
             "   FROM generate_series(1, %d) g",
             TICKETS);
    sql(pg, q);

    char err[256];
    rd_redis_addr ra;
    assert_true(rd_redis_parse_url(getenv("REDRESS_REDIS_URL"), &ra, err, sizeof(err)));
    redisContext *rc = rd_redis_connect(&ra, 5000, err, sizeof(err));
    assert_non_null(rc);

    itest_intake in;
    assert_true(itest_intake_start(&in, NULL));
    rd_client *cli = rd_client_new(in.endpoint, err, sizeof(err));
    assert_non_null(cli);

    pid_t d[PROCESSES];
    for (int i = 0; i < PROCESSES; i++)
        d[i] = startDispatcher(i, &in);

    /* Work the tickets while another thread samples the loads all the while. */
    static sampler smp;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sampleLoop, &smp), 0);
    int64_t resolved = 0;
    int64_t t0 = rd_mono_us();
    for (;;) {
        if (smp.failure[0])
            break;
        if (itest_count(pg, "SELECT count(DISTINCT ticket_id) FROM ticket_assignments") == TICKETS)
            break;
        if (rd_mono_us() - t0 > DEADLINE_S * 1000000LL)
            fail_msg("only %lld of %d tickets assigned after %d s",
                     (long long)itest_count(pg, "SELECT count(DISTINCT ticket_id) FROM ticket_assignments"), TICKETS,
                     DEADLINE_S);
        PGresult *r = PQexec(pg, "SELECT id FROM tickets WHERE state = 'assigned' ORDER BY random() LIMIT 25");
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        for (int i = 0; i < PQntuples(r); i++) {
            const char *t = PQgetvalue(r, i, 0);
            assert_true(act(cli, t, K(ACCEPT), 0));
            assert_true(act(cli, t, K(RESOLVE), 0));
            resolved++;
        }
        PQclear(r);
    }
    double secs = (double)(rd_mono_us() - t0) / 1e6;
    atomic_store(&smp.stop, true);
    pthread_join(th, NULL);
    if (smp.failure[0])
        fail_msg("%s (after %lld samples)", smp.failure, (long long)smp.samples);
    printf("# all %d tickets assigned in %.1f s; %lld resolved meanwhile; %lld load samples, worst Redis %lld, "
           "worst PostgreSQL %lld (capacity %d)\n",
           TICKETS, secs, (long long)resolved, (long long)smp.samples, (long long)smp.worstRedis,
           (long long)smp.worstPg, CAPACITY);
    /* the agents really were full: the test exercised the capacity limit, not an idle pool */
    assert_int_equal(smp.worstPg, CAPACITY);
    assert_true(smp.samples >= 100);

    /* Exactly once: one assignment per ticket, none missed or repeated. */
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM ticket_assignments"), TICKETS);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM ticket_assignments WHERE kind <> 'assign'"), 0);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM ticket_history WHERE kind = 'assign'"), TICKETS);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM dispatch_queue"), 0);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM tickets WHERE state = 'classified'"), 0);
    /* every open ticket is owned by the agent its open assignment names */
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM tickets t JOIN ticket_assignments a ON a.ticket_id = t.id"
                                     " AND a.ended_at IS NULL WHERE t.owner_agent IS DISTINCT FROM a.agent_id"),
                     0);

    /* Final counts: Redis equals PostgreSQL for every agent (checked after the dispatchers have
     * confirmed their last batch: stop them first). */
    for (int i = 0; i < PROCESSES; i++)
        itest_reap(&d[i], SIGTERM);
    PGresult *r = PQexec(pg, "SELECT a.id, COALESCE(sum(x.weight), 0) FROM agents a LEFT JOIN ticket_assignments x"
                             " ON x.agent_id = a.id AND x.ended_at IS NULL GROUP BY a.id ORDER BY a.id");
    assert_int_equal(PQntuples(r), AGENTS);
    int64_t open = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        redisReply *v = redisCommand(rc, "HGET {rd}:load %s", PQgetvalue(r, i, 0));
        assert_non_null(v);
        int64_t want = atoll(PQgetvalue(r, i, 1));
        int64_t got = v->type == REDIS_REPLY_STRING ? atoll(v->str) : 0;
        if (got != want)
            fail_msg("agent %s: Redis load %lld, PostgreSQL %lld", PQgetvalue(r, i, 0), (long long)got,
                     (long long)want);
        open += want;
        freeReplyObject(v);
    }
    PQclear(r);
    redisReply *h = redisCommand(rc, "HLEN {rd}:open");
    assert_int_equal(h->integer, itest_count(pg, "SELECT count(*) FROM ticket_assignments WHERE ended_at IS NULL"));
    freeReplyObject(h);
    printf("# final: %lld tickets open, Redis equal to PostgreSQL for all %d agents\n", (long long)open, AGENTS);

    rd_client_destroy(&cli);
    itest_intake_stop(&in);
    redisFree(rc);
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_race)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
