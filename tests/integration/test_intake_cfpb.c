/*
 * 1,000 real CFPB complaints through a real intake into a real PostgreSQL: 1,000 ACKs and
 * exactly 1,000 tickets; the same 1,000 again are answered as replays with the same ticket ids
 * and create nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "itest.h"
#include "rd_cfpb.h"

#define N 1000

typedef struct {
    rd_cfpb *csv;
    size_t next;
    char ids[N][64];
    char tickets[N][40];
    int acks, replays, nacks;
} run;

static bool nextEvent(void *arg, uint8_t **buf, size_t *len, char *event_id, size_t idlen)
{
    run *r = arg;
    if (r->next >= N)
        return false;
    bool ok = rd_cfpb_pack(r->csv, r->next, "cfpb-gw", NULL, buf, len, event_id, idlen);
    assert_true(ok);
    snprintf(r->ids[r->next], sizeof(r->ids[0]), "%s", event_id);
    r->next++;
    return true;
}

static void onDone(void *arg, const char *event_id, const Redress__V1__Reply *reply, int64_t latency_us)
{
    run *r = arg;
    if (reply == NULL || reply->error != REDRESS__V1__ERROR_CODE__ERROR_NONE) {
        r->nacks++;
        return;
    }
    r->acks++;
    r->replays += reply->replay;
    for (int i = 0; i < N; i++) {
        if (strcmp(r->ids[i], event_id) == 0) {
            snprintf(r->tickets[i], sizeof(r->tickets[0]), "%s", reply->ticket_id);
            return;
        }
    }
    fail_msg("reply for an event never sent: %s", event_id);
}

static void streamAll(rd_client *c, run *r)
{
    rd_stream_opts o = {.window = 64, .attempt_timeout_ms = 5000, .deadline_ms = 60000};
    rd_stream_stats st;
    r->next = 0;
    r->acks = r->replays = r->nacks = 0;
    assert_true(rd_client_stream(c, &o, nextEvent, r, onDone, r, &st));
}

static void test_cfpb_thousand_twice(void **state)
{
    const char *path = itest_cfpb_path();
    if (path == NULL) {
        print_message("../shared/datasets is absent: skipping\n");
        skip();
    }
    char err[256];
    run *r = calloc(1, sizeof(*r));
    r->csv = rd_cfpb_load(path, err, sizeof(err));
    assert_non_null(r->csv);
    assert_true(rd_cfpb_count(r->csv) >= N);

    itest_intake s;
    assert_true(itest_intake_start(&s, NULL));
    rd_client *c = rd_client_new(s.endpoint, err, sizeof(err));
    assert_non_null(c);
    PGconn *pg = itest_pg();

    streamAll(c, r);
    assert_int_equal(r->acks, N);
    assert_int_equal(r->nacks, 0);
    assert_int_equal(r->replays, 0);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM tickets"), N);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM inbound_events"), N);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM ticket_history WHERE kind = 'created'"), N);
    assert_int_equal(itest_count(pg, "SELECT count(DISTINCT event_id) FROM tickets"), N);
    /* every ACKed ticket id is the ticket of exactly that event */
    char(*first)[40] = malloc(sizeof(r->tickets));
    memcpy(first, r->tickets, sizeof(r->tickets));
    for (int i = 0; i < N; i += 97) {
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM tickets WHERE id = '%s' AND event_id = '%s'", first[i],
                 r->ids[i]);
        assert_int_equal(itest_count(pg, sql), 1);
    }

    streamAll(c, r);
    assert_int_equal(r->acks, N);
    assert_int_equal(r->replays, N);
    for (int i = 0; i < N; i++)
        assert_string_equal(r->tickets[i], first[i]);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM tickets"), N);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM inbound_events"), N);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM ticket_history"), N);

    free(first);
    PQfinish(pg);
    rd_client_destroy(&c);
    itest_intake_stop(&s);
    rd_cfpb_destroy(&r->csv);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cfpb_thousand_twice)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
