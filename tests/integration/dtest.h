/*
 * dtest.h -- helpers for the dispatcher's integration tests: run a real redress-dispatcher against
 * the private PostgreSQL and Redis of tests/lib/with-stack.sh, build an organisation and
 * classified tickets by SQL, act on tickets through a real intake, and compare Redis' dispatch
 * state with PostgreSQL's.
 *
 * The organisation is global (one dispatch centre, one set of routing rules), so a test starts
 * from dtest_reset: every ticket and organisation table emptied, Redis flushed.
 */
#ifndef DTEST_H
#define DTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "itest.h"

#define DTEST_FMT(i, j) __attribute__((format(printf, i, j)))

/* ---- the service ----------------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int http_port, push_port, pub_port;
    char log_path[256];
} dtest_dispatcher;

/* Starts redress-dispatcher on free ports and waits until /healthz answers 200 (20 s). events_port
 * is intake's PUB port (0: a free port nobody binds, so no actions arrive). Test intervals unless
 * extra_env ("K=V;K=V") overrides them: redrive every 200 ms with min age 0, queue 250 ms, expiry
 * sweep 200 ms, reconciliation 500 ms. false (and the log's tail on stderr) when it does not. */
bool dtest_start(dtest_dispatcher *d, int events_port, const char *extra_env);
void dtest_stop(dtest_dispatcher *d); /* SIGTERM and wait; no-op when not running */
void dtest_tail(const dtest_dispatcher *d, int lines);
/* The HTTP status of GET path on 127.0.0.1:port, -1 when nothing answers. */
int dtest_http_status(int port, const char *path);
bool dtest_wait_health(const dtest_dispatcher *d, int status, int timeout_ms);

/* ---- PostgreSQL ------------------------------------------------------------------------------ */

/* Runs a statement; a failure fails the test. */
void dtest_sql(PGconn *c, const char *fmt, ...) DTEST_FMT(2, 3);
/* First column of the first row as an integer (-1 on error or no row). */
int64_t dtest_num(PGconn *c, const char *fmt, ...) DTEST_FMT(2, 3);
/* First column of the first row as text ("" for NULL or no row); one of 8 rotating static buffers. */
const char *dtest_str(PGconn *c, const char *fmt, ...) DTEST_FMT(2, 3);
/* Polls the number query every 20 ms until it equals want (true) or timeout_ms passes. */
bool dtest_wait(PGconn *c, int64_t want, int timeout_ms, const char *fmt, ...) DTEST_FMT(4, 5);

/* Empties the ticket and organisation tables, restores the default acceptance limits, adds the
 * test customer and flushes Redis. The dispatcher must not be running. */
void dtest_reset(PGconn *c, redisContext *r);

/* ---- the organisation (SQL; NULL = SQL NULL) -------------------------------------------------- */

void dtest_dept(PGconn *c, const char *id, const char *parent, bool centre, const char *default_team);
void dtest_team(PGconn *c, const char *id, const char *dept, const char *strategy, const char *overflow_team,
                int overflow_after_s, int major_weight);
/* An active agent without skills (every skill list empty = any). */
void dtest_agent(PGconn *c, const char *id, const char *team, int capacity);
/* Skill lists as PostgreSQL array literals ("{zh,en}"); NULL leaves one as it is. */
void dtest_skills(PGconn *c, const char *agent, const char *business_types, const char *categories,
                  const char *languages, const char *regions);
/* A routing rule; cond is "column=value;column=value" over business_type, category_prefix,
 * region_prefix, severity, channel (NULL or "" = matches everything). */
void dtest_rule(PGconn *c, const char *name, int ord, const char *team, const char *cond);
void dtest_limit(PGconn *c, const char *business_type, int seconds, int transferred_s);
/* Presence as a desk sets it: agent_presence first, then Redis (dp_presence_set). */
void dtest_presence(PGconn *c, redisContext *r, const char *agent, const char *status, int64_t ttl_ms);

/* ---- tickets ---------------------------------------------------------------------------------- */

typedef struct {
    const char *business_type, *category, *severity, *channel, *region, *language; /* NULL: column default */
    int priority;                                                                  /* 0: NULL */
} dtest_ticket;

/* Inserts n tickets in state 'classified' (one statement, one transaction); ids (may be NULL)
 * gets their ids in insertion order. */
void dtest_tickets(PGconn *c, const dtest_ticket *t, int n, char (*ids)[37]);
/* Waits until ticket tid is assigned to an agent. */
bool dtest_wait_assigned(PGconn *c, const char *tid, int timeout_ms);
/* tickets.owner_agent ("" when none). */
const char *dtest_owner(PGconn *c, const char *tid);
/* How many agents hold more open load (SUM(weight) of open assignments) than their capacity. */
int64_t dtest_overloaded(PGconn *c);

/* ---- Redis -------------------------------------------------------------------------------------- */

redisContext *dtest_redis(void); /* REDRESS_REDIS_URL; fails the test when unreachable */
/* Whether {rd}:load equals the per-agent SUM(weight) of open assignments and {rd}:open holds
 * exactly the open assignments (agent and weight). What differs goes to detail. */
bool dtest_redis_matches(PGconn *c, redisContext *r, char *detail, size_t len);
bool dtest_wait_redis_matches(PGconn *c, redisContext *r, int timeout_ms);

/* ---- intake actions ----------------------------------------------------------------------------- */

/* Sends an action on ticket tid through intake; returns the reply's error code and copies the
 * state it reports to state (may be NULL). A missing reply fails the test. */
int dtest_act(rd_client *cli, const char *tid, Redress__V1__ActionKind kind, const char *reason,
              const char *target_unit, char *state, size_t statelen);

#endif
