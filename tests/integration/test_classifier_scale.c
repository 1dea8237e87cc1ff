/*
 * Classifier processes share the work and lose nothing:
 *  - tickets stored while no classifier runs are classified when one starts (re-drive);
 *  - two processes split a stream of 2,000 CFPB complaints, each classified exactly once;
 *  - one of them SIGKILLed mid-stream: the other (and the re-drive) still classify everything once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <signal.h>

#include "itest.h"
#include "rd_cfpb.h"
#include "rd_time.h"

static itest_intake in;
static PGconn *pg;
static rd_cfpb *csv;
static char logPath[512];

static pid_t startClassifier(void)
{
    char env[1024];
    snprintf(env, sizeof(env),
             "REDRESS_CLASSIFIER_INTAKE_ENDPOINT=tcp://127.0.0.1:%d;REDRESS_CLASSIFIER_PUSH_BIND=tcp://127.0.0.1:%d;"
             "REDRESS_CLASSIFIER_PUB_BIND=tcp://127.0.0.1:%d;REDRESS_CLASSIFIER_HTTP_PORT=0;"
             "REDRESS_CLASSIFIER_REDRIVE_INTERVAL_MS=500;REDRESS_CLASSIFIER_BATCH=64;"
             "REDRESS_CLASSIFIER_RULES_FILE=" REDRESS_SOURCE_DIR "/deploy/config/rules.default.json",
             in.push_port, itest_free_port(), itest_free_port());
    pid_t p = itest_spawn(REDRESS_CLASSIFIER_BIN, env, logPath);
    assert_true(p > 0);
    return p;
}

typedef struct {
    size_t next, end;
    const char *prefix;
    int acked;
    pid_t *victim;
    int kill_at;
} feed;

static bool nextEvent(void *arg, uint8_t **buf, size_t *len, char *id, size_t idlen)
{
    feed *f = arg;
    if (f->next >= f->end)
        return false;
    assert_true(rd_cfpb_pack(csv, f->next % rd_cfpb_count(csv), "scale-gw", f->prefix, buf, len, id, idlen));
    f->next++;
    return true;
}

static void onDone(void *arg, const char *id, const Redress__V1__Reply *r, int64_t us)
{
    feed *f = arg;
    assert_non_null(r);
    assert_int_equal(r->error, REDRESS__V1__ERROR_CODE__ERROR_NONE);
    if (++f->acked == f->kill_at && f->victim) {
        print_message("SIGKILL one classifier after %d ACKs\n", f->acked);
        itest_reap(f->victim, SIGKILL);
    }
}

static void send(const char *prefix, size_t n, pid_t *victim, int kill_at)
{
    char err[256];
    rd_client *c = rd_client_new(in.endpoint, err, sizeof(err));
    assert_non_null(c);
    feed f = {.next = 0, .end = n, .prefix = prefix, .victim = victim, .kill_at = kill_at};
    rd_stream_opts o = {.window = 64, .attempt_timeout_ms = 5000, .deadline_ms = 60000};
    rd_stream_stats st;
    assert_true(rd_client_stream(c, &o, nextEvent, &f, onDone, &f, &st));
    assert_int_equal(f.acked, (int)n);
    rd_client_destroy(&c);
}

static void expectExactlyOnce(const char *prefix, int n)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM tickets t JOIN ticket_classifications k ON k.ticket_id = t.id"
             " WHERE t.event_id LIKE '%s%%' AND t.state = 'classified'",
             prefix);
    assert_true(itest_wait_count(pg, sql, n, 60000));
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM (SELECT h.ticket_id FROM ticket_history h JOIN tickets t ON t.id = h.ticket_id"
             " WHERE t.event_id LIKE '%s%%' AND h.kind = 'classify' GROUP BY h.ticket_id HAVING count(*) = 1) x",
             prefix);
    assert_int_equal(itest_count(pg, sql), n);
}

static void test_redrive_after_start(void **state)
{
    send("pre-", 300, NULL, 0); /* nobody is listening */
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM tickets WHERE state = 'new'"), 300);
    pid_t c1 = startClassifier();
    expectExactlyOnce("pre-", 300);
    itest_reap(&c1, SIGTERM);
}

static void test_two_share_and_one_killed(void **state)
{
    pid_t c1 = startClassifier(), c2 = startClassifier();
    rd_sleep_ms(500); /* both connected to intake's PUSH, so the stream is split */
    send("two-", 2000, NULL, 0);
    expectExactlyOnce("two-", 2000);
    int64_t procs = itest_count(pg, "SELECT count(DISTINCT k.classifier) FROM ticket_classifications k"
                                    " JOIN tickets t ON t.id = k.ticket_id WHERE t.event_id LIKE 'two-%'");
    print_message("2,000 tickets classified by %lld processes\n", (long long)procs);
    assert_int_equal(procs, 2);

    send("kill-", 2000, &c2, 700);
    expectExactlyOnce("kill-", 2000);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM tickets WHERE state = 'new'"), 0);
    itest_reap(&c1, SIGTERM);
}

static int setup(void **state)
{
    const char *path = itest_cfpb_path();
    if (path == NULL)
        return 0;
    const char *dir = getenv("REDRESS_TEST_DIR");
    snprintf(logPath, sizeof(logPath), "%s/classifier.log", dir ? dir : "/tmp");
    char err[256];
    csv = rd_cfpb_load(path, err, sizeof(err));
    pg = itest_pg();
    return (csv && itest_intake_start(&in, NULL)) ? 0 : -1;
}

static int teardown(void **state)
{
    itest_intake_stop(&in);
    if (pg)
        PQfinish(pg);
    rd_cfpb_destroy(&csv);
    return 0;
}

int main(void)
{
    if (itest_cfpb_path() == NULL) {
        printf("../shared/datasets is absent: skipping\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redrive_after_start),
        cmocka_unit_test(test_two_share_and_one_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
