/*
 * A ticket's whole life through intake: every gateway action, the state after each, the columns
 * each one owns, the history it leaves, replays of actions, a REQ-socket gateway, and the
 * downstream hand-off (PUSH and PUB carry the committed events with their history seq).
 *
 * Classifier and dispatcher are other services; where the life needs them we play their part
 * with SQL (new -> assigned), as they will through their own transactions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "itest.h"
#include "rd_time.h"

#define E(x) REDRESS__V1__ERROR_CODE__ERROR_##x
#define K(x) REDRESS__V1__ACTION_KIND__ACTION_##x

static rd_client *cli;
static char tid[40];
static int evn;

/* Sends an action; returns the reply (caller frees). */
static Redress__V1__Reply *act(Redress__V1__ActionKind kind, const char *reason, const char *target, uint32_t sat,
                               const char *event_id)
{
    Redress__V1__Envelope e;
    Redress__V1__TicketAction a;
    char id[32];
    if (event_id == NULL) {
        snprintf(id, sizeof(id), "act-%d", ++evn);
        event_id = id;
    }
    itest_action(&e, &a, event_id, tid, kind);
    e.occurred_at_ms = 1790000000000LL; /* fixed, so resending an action sends the same bytes */
    a.reason = (char *)(reason ? reason : "");
    a.target_unit = (char *)(target ? target : "");
    a.satisfaction = sat;
    a.note = "已联系客户 / contacted the customer";
    Redress__V1__Reply *r = itest_call(cli, &e);
    assert_non_null(r);
    return r;
}

static void expectState(Redress__V1__ActionKind kind, const char *reason, const char *target, uint32_t sat,
                        const char *want)
{
    Redress__V1__Reply *r = act(kind, reason, target, sat, NULL);
    if (r->error != E(NONE))
        fail_msg("action %d: %s", (int)kind, r->message);
    assert_string_equal(r->state, want);
    assert_string_equal(r->ticket_id, tid);
    assert_false(r->replay);
    redress__v1__reply__free_unpacked(r, NULL);
}

/* fmt holds one %s for the ticket id; tests only pass literals */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static int64_t q(PGconn *pg, const char *fmt)
{
    char sql[512];
    snprintf(sql, sizeof(sql), fmt, tid);
    return itest_count(pg, sql);
}
#pragma GCC diagnostic pop

static void test_lifecycle(void **state)
{
    itest_intake s;
    assert_true(itest_intake_start(&s, NULL));
    char err[256];
    cli = rd_client_new(s.endpoint, err, sizeof(err));
    PGconn *pg = itest_pg();

    /* downstream listeners, connected before anything happens */
    void *zctx = zmq_ctx_new();
    void *pull = zmq_socket(zctx, ZMQ_PULL), *sub = zmq_socket(zctx, ZMQ_SUB);
    char ep[64];
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", s.push_port);
    assert_int_equal(zmq_connect(pull, ep), 0);
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", s.pub_port);
    assert_int_equal(zmq_connect(sub, ep), 0);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    int tmo = 5000;
    zmq_setsockopt(pull, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(sub, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    rd_sleep_ms(300); /* let the connections settle (PUB drops to not-yet-joined subscribers) */

    Redress__V1__Envelope e;
    Redress__V1__NewTicket t;
    itest_new_ticket(&e, &t, "life-1");
    Redress__V1__Reply *r = itest_call(cli, &e);
    assert_non_null(r);
    assert_int_equal(r->error, E(NONE));
    assert_string_equal(r->state, "new");
    snprintf(tid, sizeof(tid), "%s", r->ticket_id);
    redress__v1__reply__free_unpacked(r, NULL);

    /* hand-off: the created event arrives on both sockets with its history seq */
    uint8_t buf[512];
    int n = zmq_recv(pull, buf, sizeof(buf), 0);
    assert_true(n > 0);
    Redress__V1__TicketEvent *te = redress__v1__ticket_event__unpack(NULL, (size_t)n, buf);
    assert_non_null(te);
    assert_string_equal(te->ticket_id, tid);
    assert_string_equal(te->kind, "created");
    assert_int_equal(te->seq, q(pg, "SELECT seq FROM ticket_history WHERE ticket_id = '%s' AND kind = 'created'"));
    redress__v1__ticket_event__free_unpacked(te, NULL);
    n = zmq_recv(sub, buf, sizeof(buf), 0);
    assert_true(n > 0);

    /* Chinese text and personal data are stored apart and intact */
    assert_int_equal(q(pg, "SELECT count(*) FROM tickets t JOIN customers c ON c.id = t.customer_id"
                           " WHERE t.id = '%s' AND c.name = '张三' AND t.subject = '停电三天无人处理'"
                           " AND t.body LIKE '%%95598%%'"),
                     1);

    /* chase (催办) is allowed on a new ticket and counted; accept is not (not assigned yet) */
    expectState(K(CHASE), NULL, NULL, 0, "new");
    assert_int_equal(q(pg, "SELECT chase_count FROM tickets WHERE id = '%s'"), 1);
    r = act(K(ACCEPT), NULL, NULL, 0, NULL);
    assert_int_equal(r->error, E(INVALID_TRANSITION));
    assert_string_equal(r->state, "new");
    redress__v1__reply__free_unpacked(r, NULL);

    /* the dispatcher's part */
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE tickets SET state = 'assigned', owner_unit = 'repair-1', owner_agent = 'agent-007',"
             " first_owner_unit = 'repair-1' WHERE id = '%s'",
             tid);
    PQclear(PQexec(pg, sql));

    r = act(K(ACCEPT), NULL, NULL, 0, "accept-1");
    assert_int_equal(r->error, E(NONE));
    assert_string_equal(r->state, "accepted");
    redress__v1__reply__free_unpacked(r, NULL);
    assert_int_equal(q(pg, "SELECT count(*) FROM tickets WHERE id = '%s' AND first_response_at IS NULL"), 1);
    expectState(K(REPLY), NULL, NULL, 0, "in_progress");
    assert_int_equal(q(pg, "SELECT count(*) FROM tickets WHERE id = '%s' AND first_response_at IS NOT NULL"), 1);
    expectState(K(WAIT_CUSTOMER), NULL, NULL, 0, "waiting_customer");
    expectState(K(CHASE), NULL, NULL, 0, "waiting_customer");
    expectState(K(RESUME), NULL, NULL, 0, "in_progress");
    expectState(K(TRANSFER), "属于抢修二班辖区", "repair-2", 0, "assigned");
    assert_int_equal(q(pg, "SELECT count(*) FROM tickets WHERE id = '%s' AND owner_unit = 'repair-2'"
                           " AND owner_agent IS NULL AND first_owner_unit = 'repair-1'"),
                     1);
    expectState(K(RETURN), "非本班组业务", "dispatch-centre", 0, "returned");
    assert_int_equal(q(pg, "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s' AND kind = 'return'"
                           " AND reason = '非本班组业务' AND target_unit = 'dispatch-centre'"),
                     1);
    snprintf(sql, sizeof(sql), "UPDATE tickets SET state = 'assigned' WHERE id = '%s'", tid);
    PQclear(PQexec(pg, sql));
    expectState(K(ACCEPT), NULL, NULL, 0, "accepted");
    expectState(K(RESOLVE), NULL, NULL, 0, "resolved");
    expectState(K(RETURN_VISIT), NULL, NULL, 4, "resolved");
    assert_int_equal(q(pg, "SELECT satisfaction FROM tickets WHERE id = '%s'"), 4);
    r = act(K(CHASE), NULL, NULL, 0, NULL);
    assert_int_equal(r->error, E(INVALID_TRANSITION));
    redress__v1__reply__free_unpacked(r, NULL);
    expectState(K(CLOSE), NULL, NULL, 0, "closed");
    assert_int_equal(q(pg, "SELECT count(*) FROM tickets WHERE id = '%s' AND closed_at IS NOT NULL"), 1);
    expectState(K(REOPEN), "客户反映问题复发", NULL, 0, "in_progress");
    assert_int_equal(q(pg, "SELECT count(*) FROM tickets WHERE id = '%s' AND reopen_count = 1"
                           " AND closed_at IS NULL AND resolved_at IS NULL"),
                     1);

    /* a replayed action answers as it did the first time and changes nothing */
    int64_t hist = q(pg, "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s'");
    r = act(K(ACCEPT), NULL, NULL, 0, "accept-1");
    assert_int_equal(r->error, E(NONE));
    assert_true(r->replay);
    assert_string_equal(r->state, "accepted");
    redress__v1__reply__free_unpacked(r, NULL);
    assert_int_equal(q(pg, "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s'"), hist);
    /* history: created + 13 successful actions (two of them chases), each from the state before */
    assert_int_equal(hist, 14);
    assert_int_equal(q(pg, "SELECT count(*) FROM ticket_history h1 JOIN ticket_history h2"
                           " ON h2.ticket_id = h1.ticket_id AND h2.seq > h1.seq AND h2.from_state <> h1.to_state"
                           " AND NOT EXISTS (SELECT 1 FROM ticket_history h3 WHERE h3.ticket_id = h1.ticket_id"
                           "                 AND h3.seq > h1.seq AND h3.seq < h2.seq)"
                           " WHERE h1.ticket_id = '%s' AND h2.kind NOT IN ('accept')"),
                     0);
    assert_int_equal(q(pg, "SELECT version FROM tickets WHERE id = '%s'"), 1 + 13);

    /* a REQ socket gateway gets its answers too (empty delimiter frame echoed) */
    void *req = zmq_socket(zctx, ZMQ_REQ);
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    assert_int_equal(zmq_connect(req, s.endpoint), 0);
    itest_new_ticket(&e, &t, "req-1");
    size_t len;
    uint8_t *pb = itest_pack(&e, &len);
    assert_int_equal(zmq_send(req, pb, len, 0), (int)len);
    free(pb);
    n = zmq_recv(req, buf, sizeof(buf), 0);
    assert_true(n > 0);
    r = redress__v1__reply__unpack(NULL, (size_t)n, buf);
    assert_non_null(r);
    assert_int_equal(r->error, E(NONE));
    redress__v1__reply__free_unpacked(r, NULL);

    int linger = 0;
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(pull, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_close(req);
    zmq_close(pull);
    zmq_close(sub);
    zmq_ctx_term(zctx);
    PQfinish(pg);
    rd_client_destroy(&cli);
    itest_intake_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_lifecycle)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
