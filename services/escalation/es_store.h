/*
 * es_store.h -- redress-escalation's PostgreSQL and Redis sides (store.c, timers.c).
 *
 * PostgreSQL is the truth (sla_clocks, sla_events, sla_escalations; deploy/sql/0005); Redis holds
 * one timer per clock with something left to fire:
 *   {esc}:due       zset  clock id -> the instant (ms) of its next stage
 *   {esc}:inflight  zset  clock id -> lease expiry (ms): claimed by a process that is firing it;
 *                         anyone re-claims it once the lease has run out (the process died)
 *   {esc}:ready     string  set once every timer has been rebuilt from PostgreSQL; while it is
 *                           missing (a flushed or new Redis) nothing is claimed
 *   {esc}:rebuild   string  lease: the process doing this interval's periodic rebuild
 * A timer only says "look at clock N at time T": firing locks the clock's row and recomputes what
 * is due, so a stale, early or duplicate timer changes nothing; a missing one is restored by the
 * rebuild.
 */
#ifndef ES_STORE_H
#define ES_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "escalation.h"
#include "rd_redis.h"

#define ES_KEY_DUE      "{esc}:due"
#define ES_KEY_INFLIGHT "{esc}:inflight"
#define ES_KEY_READY    "{esc}:ready"
#define ES_KEY_REBUILD  "{esc}:rebuild"

/* Policies (all of them, for escalation levels; the active ones for arming) and calendars. */
typedef struct {
    esc_policy *all, *active;
    int nall, nactive;
    rd_calendar **cals;
    char **cal_ids;
    int ncals;
    const rd_calendar *fallback; /* escalation.calendar, NULL = 24/7 */
} es_catalog;

es_catalog *es_catalog_load(PGconn *c, const char *default_calendar, char *err, int errlen);
void es_catalog_free(es_catalog **cat);
const rd_calendar *es_catalog_calendar(const es_catalog *cat, const char *id); /* NULL when unknown */

bool es_store_prepare(PGconn *c, char *err, int errlen);

/* What Redis must learn after a commit: clock id and its next instant (ESC_NONE: no timer). */
typedef struct {
    int64_t id, next_ms;
} es_timer;

/* What the PUB socket announces after a commit. */
typedef struct {
    char ticket[37], policy[65];
    esc_kind clock;
    esc_evkind kind; /* warned, breached, escalated */
    int level;
    esc_role role;
    esc_action action;
    char target_unit[128];
    int64_t at_ms, due_ms;
} es_note;

typedef struct {
    es_timer *timers;
    int ntimers, captimers;
    es_note *notes;
    int nnotes, capnotes;
    int64_t rows, armed, fired, breaches, escalations;
    double lateness_sum;
} es_result;

void es_result_reset(es_result *r);
void es_result_free(es_result *r);

/* sla_queue's partitions (deploy/sql/0005): each is applied by one process at a time, in seq order,
 * under the advisory lock ES_APPLY_LOCK + part. */
#define ES_QUEUE_PARTS 8
#define ES_APPLY_LOCK  7426000

/* Applies up to limit queued history rows of partition part in one transaction, those with
 * seq > *cursor (start with 0; it is advanced past a full batch and reset to 0 after a short one).
 * Returns the rows applied (0: nothing queued, or another process holds the partition), -1 + err
 * on failure (rolled back). now_ms stamps armed_at. */
int es_apply_batch(PGconn *c, const es_catalog *cat, int part, int limit, int64_t *cursor, int64_t now_ms,
                   es_result *out, char *err, int errlen);

/* Fires what is due at now_ms on the clocks ids[0..n) in one transaction. Clocks another process
 * holds locked are returned in out->timers with next_ms = now_ms + 100 (look again soon).
 * Returns the clocks examined, -1 + err on failure. */
int es_fire_batch(PGconn *c, const es_catalog *cat, const int64_t *ids, int n, int64_t now_ms, es_result *out,
                  char *err, int errlen);

/* Every clock with a timer, id > after, in id order, at most limit: for the rebuild. */
int es_live_page(PGconn *c, int64_t after, int limit, es_timer **out, char *err, int errlen);

/* ---- Redis (timers.c) -------------------------------------------------------------------------- */

/* Claims up to limit due timers (score <= now) plus timers whose lease expired; leases them until
 * now + lease_ms. Returns how many (ids in out, malloc'd), -2 when Redis is not ready (rebuild
 * first), -1 + err on failure. *next_ms = the earliest remaining due score (ESC_NONE if none). */
int es_timers_claim(redisContext *r, int64_t now_ms, int limit, int64_t lease_ms, int64_t **out, int64_t *next_ms,
                    char *err, int errlen);
/* After a commit: sets each timer (ZADD, or ZADD LT when only_earlier), removes the ones with no
 * instant, and (release) drops the claimed ids from the in-flight set. false + err on failure. */
bool es_timers_put(redisContext *r, const es_timer *t, int n, bool only_earlier, const int64_t *release, int nrel,
                   char *err, int errlen);

#endif
