/*
 * Intake is SIGKILLed twice in the middle of a stream of 3,000 events and restarted. The client
 * keeps retrying un-ACKed events with the same event ids. Afterwards: every ACKed event is in
 * PostgreSQL as exactly the ticket its ACK named, and there are no duplicates.
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
#include "rd_pg.h"

#define N 3000

typedef struct {
    rd_cfpb *csv;
    itest_intake *srv;
    size_t next;
    int acks, nacks, kills;
    char (*ids)[64];
    char (*tickets)[40];
} run;

static bool nextEvent(void *arg, uint8_t **buf, size_t *len, char *event_id, size_t idlen)
{
    run *r = arg;
    if (r->next >= N)
        return false;
    assert_true(rd_cfpb_pack(r->csv, r->next % rd_cfpb_count(r->csv), "kill-gw", "kill-", buf, len, event_id, idlen));
    snprintf(r->ids[r->next], 64, "%s", event_id);
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
    for (size_t i = 0; i < r->next; i++)
        if (strcmp(r->ids[i], event_id) == 0)
            snprintf(r->tickets[i], 40, "%s", reply->ticket_id);
    r->acks++;
    if ((r->acks == 800 || r->acks == 2000) && r->kills < 2) {
        r->kills++;
        print_message("SIGKILL intake after %d ACKs\n", r->acks);
        itest_intake_kill(r->srv, SIGKILL);
        assert_true(itest_intake_restart(r->srv));
    }
}

static void test_kill_mid_stream(void **state)
{
    const char *path = itest_cfpb_path();
    if (path == NULL) {
        print_message("../shared/datasets is absent: skipping\n");
        skip();
    }
    char err[256];
    run r = {0};
    r.ids = calloc(N, 64);
    r.tickets = calloc(N, 40);
    r.csv = rd_cfpb_load(path, err, sizeof(err));
    assert_non_null(r.csv);
    itest_intake s;
    /* small batches so a kill lands between many commits */
    assert_true(itest_intake_start(&s, "REDRESS_INTAKE_MAX_BATCH=32"));
    r.srv = &s;
    rd_client *c = rd_client_new(s.endpoint, err, sizeof(err));
    assert_non_null(c);

    rd_stream_opts o = {.window = 128, .attempt_timeout_ms = 1000, .deadline_ms = 120000};
    rd_stream_stats st;
    assert_true(rd_client_stream(c, &o, nextEvent, &r, onDone, &r, &st));
    print_message("sent %llu, acked %llu, replays %llu, resends %llu, busy retries %llu\n", (unsigned long long)st.sent,
                  (unsigned long long)st.acked, (unsigned long long)st.replays, (unsigned long long)st.resends,
                  (unsigned long long)st.retried_busy);
    assert_int_equal(r.kills, 2);
    assert_int_equal(r.acks, N);
    assert_int_equal(r.nacks, 0);

    PGconn *pg = itest_pg();
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM tickets"), N);
    assert_int_equal(itest_count(pg, "SELECT count(DISTINCT event_id) FROM tickets"), N);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM inbound_events"), N);
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM ticket_history"), N);

    /* every ACK named the ticket that really holds that event */
    rd_pgarr ids, tks;
    rd_pgarr_init(&ids);
    rd_pgarr_init(&tks);
    for (int i = 0; i < N; i++) {
        rd_pgarr_str(&ids, r.ids[i]);
        rd_pgarr_str(&tks, r.tickets[i]);
    }
    const char *params[2] = {rd_pgarr_finish(&ids), rd_pgarr_finish(&tks)};
    PGresult *res = PQexecParams(pg,
                                 "SELECT count(*) FROM tickets t JOIN unnest($1::text[], $2::uuid[]) AS k(eid, id)"
                                 " ON t.id = k.id AND t.event_id = k.eid AND t.gateway_id = 'kill-gw'",
                                 2, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    assert_int_equal(strtol(PQgetvalue(res, 0, 0), NULL, 10), N);
    PQclear(res);
    rd_pgarr_free(&ids);
    rd_pgarr_free(&tks);

    PQfinish(pg);
    rd_client_destroy(&c);
    itest_intake_stop(&s);
    rd_cfpb_destroy(&r.csv);
    free(r.ids);
    free(r.tickets);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill_mid_stream)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
