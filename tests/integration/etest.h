/*
 * etest.h -- helpers for the escalation service's integration tests: run a real redress-escalation
 * against the private PostgreSQL and Redis of tests/lib/with-stack.sh, drive its test clock
 * (escalation.clock_file), write tickets and ticket_history rows with explicit times, and listen to
 * the SlaNotification frames it publishes.
 *
 * Built on dtest (dtest_sql, dtest_num, dtest_str, dtest_wait, dtest_reset, dtest_tickets, the
 * HTTP probe) and itest (ports, processes, intake).
 */
#ifndef ETEST_H
#define ETEST_H

#include <stdbool.h>
#include <stdint.h>

#include "dtest.h"

#define ETEST_MIN  INT64_C(60000)
#define ETEST_HOUR INT64_C(3600000)
#define ETEST_REAL INT64_MIN /* etest_start: no clock file, the real clock */

/* ---- the service ----------------------------------------------------------------------------- */

typedef struct {
    dtest_dispatcher d;   /* pid, http_port, pub_port and log_path (the dtest process helpers) */
    int events_port;      /* what escalation.events_endpoint points at */
    char clock_path[256]; /* escalation.clock_file; "" with the real clock */
} etest_service;

/* Starts redress-escalation on free ports and waits for /healthz 200 (20 s). events_port: the PUB
 * it subscribes to for wake-ups (intake's), 0 for a free port nobody binds. clock_ms: the test
 * clock's first value (written before the start), or ETEST_REAL. Test settings unless extra_env
 * ("K=V;K=V") overrides them: poll every 20 ms, lease 3 s. false (and the log's tail) when it does
 * not come up. */
bool etest_start(etest_service *s, int events_port, int64_t clock_ms, const char *extra_env);
void etest_stop(etest_service *s); /* SIGTERM and wait; no-op when not running */
void etest_kill(etest_service *s); /* SIGKILL and wait */
void etest_tail(const etest_service *s, int lines);
/* Sets the test clock (tmp file + rename, so the service never reads half a number). */
void etest_set_clock(const etest_service *s, int64_t now_ms);
/* The counter or gauge `name` (no labels) of /metrics; -1 when absent or unreachable. */
double etest_metric(const etest_service *s, const char *name);

/* ---- PostgreSQL ------------------------------------------------------------------------------ */

/* dtest_reset, the SLA tables emptied (sla_queue too) and the SLA policies as the migration left
 * them (the first call snapshots them into temporary tables of this connection). */
void etest_reset(PGconn *c, redisContext *r);
/* Waits until every history row has been applied (sla_queue is empty). */
bool etest_settle(PGconn *c, int timeout_ms);
/* Checks that the count query keeps returning want for ms milliseconds (false at the first other
 * value, printed). For "nothing happens": the service polls every 20 ms, so 500 ms is 25 loops. */
bool etest_stays(PGconn *c, int64_t want, int ms, const char *fmt, ...) DTEST_FMT(4, 5);

/* One ticket in state 'new' with created_at (receipt) and occurred_at = received_ms; the facts
 * from t (dtest_tickets' defaults where NULL). */
void etest_ticket(PGconn *c, const dtest_ticket *t, int64_t received_ms, char id[37]);
/* A ticket_history row at at_ms (and tickets.state = to_state, as the writers do), in one
 * statement. from_state NULL = SQL NULL; reason may be NULL. Returns its seq. */
int64_t etest_hist(PGconn *c, const char *tid, const char *kind, const char *from_state, const char *to_state,
                   int64_t at_ms, const char *reason);
/* An open, unaccepted assignment as the dispatcher writes it (ticket_assignments row, tickets'
 * owner columns, state 'assigned') and its 'assign' history row, at at_ms; due accept_due_ms. */
void etest_assign(PGconn *c, const char *tid, const char *agent, const char *team, const char *dept, int64_t at_ms,
                  int64_t accept_due_ms);

/* ---- SlaNotification frames ------------------------------------------------------------------ */

typedef struct {
    char ticket_id[40], clock[24], kind[16], role[24], target_unit[72], action[24], policy_id[72];
    unsigned level;
    int64_t at_ms, due_at_ms;
} etest_note;

typedef struct {
    void *ctx, *sock;
    etest_note *v;
    int n, cap;
    int bad; /* frames that were not a SlaNotification */
} etest_sub;

/* Subscribes (everything) to the service's PUB and waits a moment for the subscription to arrive. */
void etest_sub_open(etest_sub *s, const etest_service *svc);
void etest_sub_close(etest_sub *s);
/* Receives for up to ms milliseconds, keeping every notification. */
void etest_sub_drain(etest_sub *s, int ms);
/* The first notification kept or received (up to timeout_ms) that matches; clock/kind NULL = any,
 * level < 0 = any. NULL on timeout. The pointer is good until the next receive on s. */
const etest_note *etest_sub_wait(etest_sub *s, const char *ticket_id, const char *clock, const char *kind, int level,
                                 int timeout_ms);
/* How many kept notifications match. */
int etest_sub_count(const etest_sub *s, const char *ticket_id, const char *clock, const char *kind, int level);

#endif
