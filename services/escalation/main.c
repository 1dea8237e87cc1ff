/*
 * redress-escalation -- SLA clocks in business time: warnings, breaches, chasing and escalation.
 *
 * Input is the ticket history itself: a trigger queues every committed ticket_history row
 * (sla_queue), and one process at a time applies the queue in seq order (esc_apply, clock.c),
 * arming, pausing, resuming and stopping clocks in the same transaction that takes the rows off
 * the queue. Intake's and the dispatcher's PUB only wake us up early.
 *
 * Each clock with something left to fire has a timer in Redis ({esc}:due, score = instant). Any
 * number of processes claim due timers atomically (a Lua script), lock the clocks' rows, record
 * what came due (sla_events, sla_escalations, priority raised, ticket re-routed) in one
 * transaction and then announce it on the PUB socket. PostgreSQL is the truth: a lost Redis is
 * rebuilt from it (at once when {esc}:ready is missing, and every rebuild_interval_ms), a timer
 * that fires twice finds nothing due the second time, and a process that dies holding claimed
 * timers leaves them to the others after the lease.
 *
 * "Now" is the system clock, or for tests the number in escalation.clock_file, so a test runs
 * three days of SLA time in a second.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "es_store.h"
#include "escalation.h"
#include "rd_http.h"
#include "rd_log.h"
#include "rd_metrics.h"
#include "rd_pg.h"
#include "rd_redis.h"
#include "rd_service.h"
#include "rd_time.h"
#include "redress.pb-c.h"

#define REBUILD_PAGE 5000
#define TURN_BATCHES 8

typedef struct {
    const char *dsn, *redis_url, *calendar, *events, *pub_bind, *clock_file, *http_bind;
    int64_t batch, poll_ms, rebuild_ms, lease_ms, policy_ms, http_port, redis_timeout_ms;
} cfg;

typedef struct {
    rd_service svc;
    cfg c;
    rd_pglink db;
    redisContext *rd;
    rd_redis_addr raddr;
    int64_t rd_backoff, rd_next;
    es_catalog *cat;
    bool need_rebuild, ready, wake;
    int64_t fake_now, next_due, cursor[ES_QUEUE_PARTS];
    int part_start;
    int64_t apply_backoff_ms;
    struct {
        bool active;
        int64_t after, total, t0;
    } rb; /* a rebuild under way */
    void *sub, *pub;
    es_result res;
    struct {
        rd_metric *applied, *armed, *fired, *breaches, *escalations, *rebuilds, *rebuilt, *lateness, *errors, *db_up,
            *redis_up, *published;
    } m;
} escalation;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: redress-escalation [--config FILE] [--check-config] [--help] [--version]\n"
            "\n"
            "Runs every ticket's SLA clocks (accept, first response, answer after a chase, resolution)\n"
            "in business time: warns, records breaches, escalates to team leads, department heads and\n"
            "leadership (督办), raises priority or re-routes where the policy says so, and announces it.\n"
            "Policies live in sla_policies / sla_escalation_levels; calendars in business_calendars.\n"
            "Run several; they share the timers.\n"
            "\n"
            "Configuration keys (environment REDRESS_<KEY> overrides, e.g. REDRESS_ESCALATION_CALENDAR):\n"
            "  pg.dsn                           libpq connection string\n"
            "  redis.url                        redis://host:port[/db]                [redis://127.0.0.1:56379]\n"
            "  redis.timeout_ms                 connect and command timeout           [2000]\n"
            "  escalation.calendar              calendar of business-time policies without one; \"\" = 24/7 [\"\"]\n"
            "  escalation.batch                 clocks or history rows per transaction [2000]\n"
            "  escalation.poll_ms               idle poll of the queue and the timers [50]\n"
            "  escalation.events_endpoint       SUB wake-ups (intake, dispatcher PUB)\n"
            "                                   [tcp://127.0.0.1:7403,tcp://127.0.0.1:7423]\n"
            "  escalation.pub_bind              PUB of SlaNotification frames         [tcp://127.0.0.1:7433]\n"
            "  escalation.rebuild_interval_ms   rebuild the Redis timers from PostgreSQL [60000]\n"
            "  escalation.lease_ms              a claimed timer goes to another process after [10000]\n"
            "  escalation.policy_poll_ms        re-read policies and calendars (also on NOTIFY\n"
            "                                   redress_sla / redress_org)            [30000]\n"
            "  escalation.clock_file            TESTS ONLY: read \"now\" (Unix ms) from this file [\"\"]\n"
            "  escalation.http_bind, escalation.http_port  /healthz, /metrics      [127.0.0.1, 9404]\n"
            "  internal.curve_key_file          cluster key: CURVE on the internal links [\"\"]\n"
            "  log.level                        debug|info|warn|error                 [info]\n");
}

static bool loadCfg(rd_config *f, cfg *c, char *err, int errlen)
{
    c->dsn = rd_config_str(f, "pg.dsn", "host=127.0.0.1 port=55432 dbname=redress user=redress");
    c->redis_url = rd_config_str(f, "redis.url", "redis://127.0.0.1:56379");
    c->calendar = rd_config_str(f, "escalation.calendar", "");
    c->events = rd_config_str(f, "escalation.events_endpoint", "tcp://127.0.0.1:7403,tcp://127.0.0.1:7423");
    c->pub_bind = rd_config_str(f, "escalation.pub_bind", "tcp://127.0.0.1:7433");
    c->clock_file = rd_config_str(f, "escalation.clock_file", "");
    c->http_bind = rd_config_str(f, "escalation.http_bind", "127.0.0.1");
    return rd_config_int(f, "escalation.batch", 2000, 1, 20000, &c->batch, err, errlen) &&
           rd_config_int(f, "escalation.poll_ms", 50, 1, 60000, &c->poll_ms, err, errlen) &&
           rd_config_int(f, "escalation.rebuild_interval_ms", 60000, 1000, 86400000, &c->rebuild_ms, err, errlen) &&
           rd_config_int(f, "escalation.lease_ms", 10000, 100, 3600000, &c->lease_ms, err, errlen) &&
           rd_config_int(f, "escalation.policy_poll_ms", 30000, 100, 3600000, &c->policy_ms, err, errlen) &&
           rd_config_int(f, "redis.timeout_ms", 2000, 10, 60000, &c->redis_timeout_ms, err, errlen) &&
           rd_config_int(f, "escalation.http_port", 9404, 0, 65535, &c->http_port, err, errlen);
}

/* ---- the clock -------------------------------------------------------------------------------- */

static int64_t nowMs(escalation *e)
{
    if (e->c.clock_file[0] == '\0')
        return rd_now_ms();
    FILE *f = fopen(e->c.clock_file, "r");
    long long v = 0;
    if (f != NULL) {
        if (fscanf(f, "%lld", &v) == 1 && v > 0)
            e->fake_now = v;
        fclose(f);
    }
    if (e->fake_now == 0) {
        rd_log(RD_LOG_WARN, "escalation.clock_file unreadable: using the system clock until it is", "path",
               e->c.clock_file, NULL);
        return rd_now_ms();
    }
    return e->fake_now;
}

/* ---- connections ------------------------------------------------------------------------------ */

static void pgDrop(escalation *e, const char *why)
{
    rd_pglink_drop(&e->db, why);
    rd_metric_set(e->m.db_up, 0);
}

static void catalogReload(escalation *e)
{
    char err[512];
    es_catalog *cat = es_catalog_load(e->db.conn, e->c.calendar, err, sizeof(err));
    if (cat == NULL) {
        rd_log(RD_LOG_ERROR, "cannot read SLA policies and calendars", "error", err, NULL);
        if (PQstatus(e->db.conn) != CONNECTION_OK)
            pgDrop(e, err);
        return;
    }
    es_catalog_free(&e->cat);
    e->cat = cat;
    char np[16], nc[16];
    snprintf(np, sizeof(np), "%d", cat->nactive);
    snprintf(nc, sizeof(nc), "%d", cat->ncals);
    rd_log(RD_LOG_INFO, "SLA policies loaded", "active_policies", np, "calendars", nc, "default_calendar",
           cat->fallback ? e->c.calendar : "(24/7)", NULL);
}

static bool pgEnsure(escalation *e)
{
    bool fresh;
    if (!rd_pglink_ensure(&e->db, &fresh))
        return false;
    if (fresh) {
        char err[512];
        if (!es_store_prepare(e->db.conn, err, sizeof(err)) ||
            !rd_pg_command(e->db.conn, "LISTEN redress_org", err, sizeof(err))) {
            rd_log(RD_LOG_ERROR, "cannot prepare statements (is the schema migrated?)", "error", err, NULL);
            pgDrop(e, err);
            return false;
        }
        rd_metric_set(e->m.db_up, 1);
        catalogReload(e);
        e->need_rebuild = true; /* timers may have been missed while away */
    }
    return e->db.conn != NULL;
}

static void redisDrop(escalation *e, const char *why)
{
    if (e->rd == NULL)
        return;
    rd_log(RD_LOG_WARN, "lost Redis", "error", why, NULL); /* first: why may point into the context */
    redisFree(e->rd);
    e->rd = NULL;
    e->ready = false;
    rd_metric_set(e->m.redis_up, 0);
}

static bool redisEnsure(escalation *e)
{
    if (e->rd && !rd_redis_broken(e->rd))
        return true;
    redisDrop(e, e->rd ? e->rd->errstr : "connection broken");
    int64_t now = rd_mono_us();
    if (now < e->rd_next)
        return false;
    char err[512];
    e->rd = rd_redis_connect(&e->raddr, (int)e->c.redis_timeout_ms, err, sizeof(err));
    if (e->rd == NULL) {
        e->rd_backoff = rd_backoff_next(e->rd_backoff, 100, 5000);
        e->rd_next = now + e->rd_backoff * 1000;
        rd_log(RD_LOG_WARN, "cannot reach Redis", "error", err, NULL);
        return false;
    }
    e->rd_backoff = 0;
    rd_metric_set(e->m.redis_up, 1);
    rd_log(RD_LOG_INFO, "connected to Redis", "host", e->raddr.host, NULL);
    e->need_rebuild = true; /* timers written while it was away are missing */
    return true;
}

static void redisFailed(escalation *e, const char *err)
{
    if (e->rd && rd_redis_broken(e->rd))
        redisDrop(e, err);
    else
        rd_log(RD_LOG_WARN, "redis error", "error", err, NULL);
    e->need_rebuild = true;
}

/* ---- rebuild ---------------------------------------------------------------------------------- */

/* Every clock with a timer, from PostgreSQL into Redis (ZADD LT: a timer already earlier stays --
 * an early timer only makes us look sooner), then {esc}:ready. One page per call; the rebuild is
 * done when rb.active goes false. */
static void rebuildPage(escalation *e)
{
    char err[512];
    if (!e->rb.active) {
        e->rb.active = true;
        e->rb.after = e->rb.total = 0;
        e->rb.t0 = rd_mono_us();
    }
    es_timer *t = NULL;
    int n = es_live_page(e->db.conn, e->rb.after, REBUILD_PAGE, &t, err, sizeof(err));
    if (n < 0) {
        free(t);
        e->rb.active = false;
        rd_log(RD_LOG_ERROR, "rebuild: cannot read clocks", "error", err, NULL);
        if (PQstatus(e->db.conn) != CONNECTION_OK)
            pgDrop(e, err);
        return;
    }
    if (n > 0 && !es_timers_put(e->rd, t, n, true, NULL, 0, err, sizeof(err))) {
        free(t);
        e->rb.active = false;
        redisFailed(e, err);
        return;
    }
    e->rb.total += n;
    if (n > 0)
        e->rb.after = t[n - 1].id;
    free(t);
    if (n == REBUILD_PAGE)
        return;
    e->rb.active = false;
    redisReply *r = redisCommand(e->rd, "SET " ES_KEY_READY " 1");
    if (r == NULL) {
        redisFailed(e, e->rd->errstr);
        return;
    }
    freeReplyObject(r);
    e->ready = true;
    e->need_rebuild = false;
    rd_metric_inc(e->m.rebuilds, 1);
    rd_metric_inc(e->m.rebuilt, (uint64_t)e->rb.total);
    char nt[24], ms[24];
    snprintf(nt, sizeof(nt), "%lld", (long long)e->rb.total);
    snprintf(ms, sizeof(ms), "%lld", (long long)((rd_mono_us() - e->rb.t0) / 1000));
    rd_log(RD_LOG_INFO, "timers rebuilt from PostgreSQL", "timers", nt, "ms", ms, NULL);
}

/* The periodic safety net: one process per interval (the {esc}:rebuild lease), page by page
 * between the turn's other work, so firing never waits for it. */
static bool rebuildLease(escalation *e)
{
    char px[24];
    snprintf(px, sizeof(px), "%lld", (long long)e->c.rebuild_ms);
    redisReply *r = redisCommand(e->rd, "SET " ES_KEY_REBUILD " %s NX PX %s", e->svc.who, px);
    if (r == NULL) {
        redisFailed(e, e->rd->errstr);
        return false;
    }
    bool got = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return got;
}

/* ---- applying history ------------------------------------------------------------------------- */

/* Each partition of the queue, a few batches at a time; several processes share the partitions
 * (whoever holds a partition's lock applies it). */
static bool applyQueue(escalation *e, int64_t now)
{
    char err[512];
    bool more = false;
    for (int i = 0; i < ES_QUEUE_PARTS && e->db.conn; i++) {
        int part = (e->part_start + i) % ES_QUEUE_PARTS;
        for (int k = 0; k < TURN_BATCHES; k++) {
            es_result_reset(&e->res);
            int n = es_apply_batch(e->db.conn, e->cat, part, (int)e->c.batch, &e->cursor[part], now, &e->res, err,
                                   sizeof(err));
            if (n < 0) {
                rd_metric_inc(e->m.errors, 1);
                rd_log(RD_LOG_ERROR, "cannot apply history", "error", err, NULL);
                if (PQstatus(e->db.conn) != CONNECTION_OK)
                    pgDrop(e, err);
                return false;
            }
            rd_metric_inc(e->m.applied, (uint64_t)n);
            rd_metric_inc(e->m.armed, (uint64_t)e->res.armed);
            if (e->res.ntimers > 0 && e->rd) {
                if (!es_timers_put(e->rd, e->res.timers, e->res.ntimers, false, NULL, 0, err, sizeof(err)))
                    redisFailed(e, err); /* committed: the rebuild brings the timers back */
            } else if (e->res.ntimers > 0) {
                e->need_rebuild = true;
            }
            for (int j = 0; j < e->res.ntimers; j++)
                if (e->res.timers[j].next_ms != ESC_NONE && e->res.timers[j].next_ms < e->next_due)
                    e->next_due = e->res.timers[j].next_ms;
            if (n < e->c.batch)
                break;
            if (k == TURN_BATCHES - 1)
                more = true;
        }
    }
    e->part_start = (e->part_start + 1) % ES_QUEUE_PARTS;
    if (more)
        e->wake = true; /* more queued: come back after a look at the timers */
    return true;
}

/* ---- firing ----------------------------------------------------------------------------------- */

static void publish(escalation *e, const es_note *n)
{
    Redress__V1__SlaNotification m = REDRESS__V1__SLA_NOTIFICATION__INIT;
    m.ticket_id = (char *)n->ticket;
    m.clock = (char *)esc_kind_name(n->clock);
    m.kind = (char *)esc_evkind_name(n->kind);
    m.level = (uint32_t)n->level;
    m.policy_id = (char *)n->policy;
    if (n->kind == ESC_EV_ESCALATED) {
        m.role = (char *)esc_role_name(n->role);
        m.action = (char *)esc_action_name(n->action);
        m.target_unit = (char *)n->target_unit;
    }
    m.at_ms = n->at_ms;
    m.due_at_ms = n->due_ms == ESC_NONE ? 0 : n->due_ms;
    uint8_t buf[1024];
    size_t len = redress__v1__sla_notification__get_packed_size(&m);
    if (len > sizeof(buf))
        return;
    redress__v1__sla_notification__pack(&m, buf);
    if (zmq_send(e->pub, buf, len, ZMQ_DONTWAIT) >= 0)
        rd_metric_inc(e->m.published, 1);
}

static void fireDue(escalation *e, int64_t now)
{
    char err[512];
    for (int k = 0; k < TURN_BATCHES && e->rd && e->db.conn; k++) {
        int64_t *ids = NULL, next = ESC_NONE;
        int n = es_timers_claim(e->rd, now, (int)e->c.batch, e->c.lease_ms, &ids, &next, err, sizeof(err));
        if (n == -2) {
            free(ids);
            e->ready = false;
            e->need_rebuild = true;
            return;
        }
        if (n < 0) {
            free(ids);
            redisFailed(e, err);
            return;
        }
        e->next_due = next == ESC_NONE ? INT64_MAX : next;
        if (n == 0) {
            free(ids);
            return;
        }
        es_result_reset(&e->res);
        int got = es_fire_batch(e->db.conn, e->cat, ids, n, now, &e->res, err, sizeof(err));
        if (got < 0) {
            free(ids);
            rd_metric_inc(e->m.errors, 1);
            rd_log(RD_LOG_ERROR, "cannot record what came due (the lease hands it out again)", "error", err, NULL);
            if (PQstatus(e->db.conn) != CONNECTION_OK)
                pgDrop(e, err);
            return;
        }
        if (!es_timers_put(e->rd, e->res.timers, e->res.ntimers, true, ids, n, err, sizeof(err)))
            redisFailed(e, err);
        free(ids);
        int64_t real = rd_now_ms();
        for (int i = 0; i < e->res.nnotes; i++) {
            publish(e, &e->res.notes[i]);
            rd_metric_observe(e->m.lateness,
                              (double)((e->c.clock_file[0] ? now : real) - e->res.notes[i].at_ms) / 1000.0);
        }
        for (int i = 0; i < e->res.ntimers; i++)
            if (e->res.timers[i].next_ms != ESC_NONE && e->res.timers[i].next_ms < e->next_due)
                e->next_due = e->res.timers[i].next_ms;
        rd_metric_inc(e->m.fired, (uint64_t)e->res.fired);
        rd_metric_inc(e->m.breaches, (uint64_t)e->res.breaches);
        rd_metric_inc(e->m.escalations, (uint64_t)e->res.escalations);
        if (n < e->c.batch)
            return;
        if (!e->c.clock_file[0])
            now = rd_now_ms();
    }
}

static void drainSub(escalation *e)
{
    uint8_t buf[512];
    while (zmq_recv(e->sub, buf, sizeof(buf), ZMQ_DONTWAIT) >= 0)
        e->wake = true; /* whatever it was, it is in the queue: apply it now */
}

/* ---- setup ------------------------------------------------------------------------------------ */

static bool healthCheck(void *arg, char *detail, size_t len)
{
    escalation *e = arg;
    bool up = e->db.conn != NULL && e->rd != NULL && e->ready && e->cat != NULL;
    snprintf(detail, len, "%s; %s; timers %s; %d active policies",
             e->db.conn ? "PostgreSQL connected" : "PostgreSQL unreachable",
             e->rd ? "Redis connected" : "Redis unreachable", e->ready ? "rebuilt" : "not rebuilt yet",
             e->cat ? e->cat->nactive : 0);
    return up;
}

static void metricsInit(escalation *e)
{
    static const double late[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60};
    e->m.applied = rd_metric_counter("redress_escalation_applied_total", "History rows applied to clocks");
    e->m.armed = rd_metric_counter("redress_escalation_armed_total", "Clocks armed");
    e->m.fired = rd_metric_counter("redress_escalation_fired_total", "Stages fired (warnings, breaches, levels)");
    e->m.breaches = rd_metric_counter("redress_escalation_breaches_total", "Breaches recorded");
    e->m.escalations = rd_metric_counter("redress_escalation_escalations_total", "Escalation levels reached");
    e->m.rebuilds = rd_metric_counter("redress_escalation_rebuilds_total", "Rebuilds of the Redis timers");
    e->m.rebuilt = rd_metric_counter("redress_escalation_rebuilt_timers_total", "Timers written by rebuilds");
    e->m.lateness = rd_metric_histogram("redress_escalation_lateness_seconds",
                                        "From a stage's instant to its commit (real clock)", late, 15);
    e->m.errors = rd_metric_counter("redress_escalation_errors_total", "Batches that failed");
    e->m.db_up = rd_metric_gauge("redress_escalation_db_up", "1 while connected to PostgreSQL");
    e->m.redis_up = rd_metric_gauge("redress_escalation_redis_up", "1 while connected to Redis");
    e->m.published = rd_metric_counter("redress_escalation_notifications_total", "SlaNotification frames sent");
}

int main(int argc, char **argv)
{
    static escalation e;
    e.svc.name = "escalation";
    e.svc.usage = usage;
    int rc = rd_service_init(&e.svc, argc, argv);
    if (rc >= 0)
        return rc;
    char err[512];
    if (!loadCfg(e.svc.cfg, &e.c, err, sizeof(err)) || !rd_redis_parse_url(e.c.redis_url, &e.raddr, err, sizeof(err))) {
        fprintf(stderr, "redress-escalation: configuration: %s\n", err);
        return 2;
    }
    e.db.dsn = e.c.dsn;
    e.db.app = "redress-escalation";
    e.db.listen = "redress_sla";
    if (e.svc.check_only) {
        printf("configuration ok\n");
        return 0;
    }
    metricsInit(&e);
    rd_service_signals();
    void *zctx = zmq_ctx_new();
    e.sub = rd_service_socket(zctx, ZMQ_SUB, e.c.events, false, 100000);
    e.pub = rd_service_socket(zctx, ZMQ_PUB, e.c.pub_bind, true, 100000);
    if (!e.sub || !e.pub)
        return 1;
    zmq_setsockopt(e.sub, ZMQ_SUBSCRIBE, "", 0);
    rd_http *http = rd_http_start(e.c.http_bind, (int)e.c.http_port, healthCheck, &e, err, sizeof(err));
    if (http == NULL) {
        rd_log(RD_LOG_ERROR, "cannot start HTTP endpoint", "error", err, NULL);
        return 1;
    }
    e.need_rebuild = true;
    e.next_due = INT64_MAX;
    e.part_start = (int)(getpid() % ES_QUEUE_PARTS); /* processes start on different partitions */
    srand((unsigned)getpid());
    rd_log(RD_LOG_INFO, "escalation ready", "events", e.c.events, "pub", e.c.pub_bind, "who", e.svc.who, "clock",
           e.c.clock_file[0] ? e.c.clock_file : "system", NULL);
    int64_t nextRebuild = rd_mono_us() + e.c.rebuild_ms * 1000, nextPolicy = rd_mono_us() + e.c.policy_ms * 1000,
            nextApply = 0;
    while (!rd_service_stopping()) {
        bool db = pgEnsure(&e), red = redisEnsure(&e);
        int64_t mono = rd_mono_us();
        if (db && mono >= nextPolicy) {
            catalogReload(&e);
            nextPolicy = mono + e.c.policy_ms * 1000;
        }
        if (db && red && e.need_rebuild) {
            /* Redis lost or missed timers: nothing is claimed until every one is back */
            do
                rebuildPage(&e);
            while (e.rb.active && e.db.conn && e.rd);
        } else if (db && red && e.rb.active) {
            rebuildPage(&e);
        } else if (db && red && mono >= nextRebuild) {
            if (rebuildLease(&e))
                rebuildPage(&e);
            /* jitter keeps processes started together from asking at the same moment */
            nextRebuild = mono + e.c.rebuild_ms * (900 + rand() % 200); /* in us: 0.9 to 1.1 intervals */
        }
        int64_t now = nowMs(&e);
        if (e.db.conn && e.cat && (e.wake || rd_mono_us() >= nextApply)) {
            e.wake = false;
            if (applyQueue(&e, now)) {
                e.apply_backoff_ms = 0;
                nextApply = rd_mono_us() + e.c.poll_ms * 1000;
            } else { /* a batch the database refuses: do not hammer it */
                e.apply_backoff_ms = rd_backoff_next(e.apply_backoff_ms, 100, 5000);
                nextApply = rd_mono_us() + e.apply_backoff_ms * 1000;
            }
        }
        /* every turn (one script call): other processes arm timers we do not hear about */
        if (e.db.conn && e.rd && e.ready && e.cat)
            fireDue(&e, now);
        long timeout = (long)e.c.poll_ms;
        if (!e.c.clock_file[0] && e.next_due != INT64_MAX) {
            int64_t until = e.next_due - rd_now_ms();
            if (until < timeout)
                timeout = until < 0 ? 0 : (long)until;
        }
        if (e.wake)
            timeout = 0;
        zmq_pollitem_t items[2] = {{e.sub, 0, ZMQ_POLLIN, 0},
                                   {NULL, e.db.conn ? PQsocket(e.db.conn) : -1, ZMQ_POLLIN, 0}};
        int prc = zmq_poll(items, e.db.conn ? 2 : 1, timeout);
        if (prc < 0 && zmq_errno() != EINTR)
            break;
        if (e.db.conn && rd_pglink_notified(&e.db)) {
            catalogReload(&e);
            e.wake = true;
        }
        if (e.db.conn == NULL)
            rd_metric_set(e.m.db_up, 0);
        if (items[0].revents & ZMQ_POLLIN)
            drainSub(&e);
    }
    rd_log(RD_LOG_INFO, "escalation stopping", NULL);
    es_result_free(&e.res);
    rd_http_stop(&http);
    zmq_close(e.sub);
    zmq_close(e.pub);
    zmq_ctx_term(zctx);
    if (e.db.conn)
        PQfinish(e.db.conn);
    if (e.rd)
        redisFree(e.rd);
    es_catalog_free(&e.cat);
    rd_service_done(&e.svc);
    rd_log(RD_LOG_INFO, "escalation stopped", NULL);
    return 0;
}
