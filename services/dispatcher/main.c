/*
 * redress-dispatcher -- gives every classified ticket an owner.
 *
 * Work arrives on several paths; each alone is enough, together they are fast:
 *   - the classifier's PUSH hands over each classified ticket (fast path);
 *   - intake's PUB tells us about actions: a transfer or return needs a new owner, a resolve,
 *     close or reopen changes an agent's load (and may free capacity for the queue);
 *   - re-drive: tickets still waiting for an owner whose notification was lost;
 *   - the queue: tickets nobody could take are retried, highest priority first, every
 *     dispatcher.queue_interval_ms and at once when capacity may have appeared;
 *   - the acceptance sweep: an agent who has not accepted in time loses the ticket to the next.
 * Every path claims tickets with FOR UPDATE SKIP LOCKED, so any number of dispatchers cooperate.
 *
 * The choice of agent is one Lua script in Redis (scripts.c): eligible = online, skilled, below
 * capacity; least-loaded or round-robin per team; the load is counted in the same step. The
 * scripts for a batch are pipelined (one round trip). PostgreSQL is the truth: reservations are
 * confirmed after COMMIT and cancelled when it fails, and every dispatcher.reconcile_interval_ms
 * the whole of Redis' dispatch state is reconciled to PostgreSQL, so a flushed or restarted Redis
 * heals itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "dispatcher.h"
#include "dp_store.h"
#include "rd_envelope.h"
#include "rd_http.h"
#include "rd_lifecycle.h"
#include "rd_log.h"
#include "rd_metrics.h"
#include "rd_pg.h"
#include "rd_redis.h"
#include "rd_service.h"
#include "rd_time.h"
#include "redress.pb-c.h"

#define MAX_PENDING    8192
#define MAX_CANDIDATES 4096
#define SYNC_CHUNK     300

typedef struct {
    const char *dsn, *redis_url, *classifier, *events, *push_bind, *pub_bind, *http_bind;
    int64_t batch, redrive_ms, min_age_ms, queue_ms, expire_ms, reconcile_ms, org_poll_ms, grace_ms, http_port,
        redis_timeout_ms;
} cfg;

typedef struct {
    char **v;
    int n;
} idset;

typedef struct {
    rd_service svc;
    cfg c;
    dp_org *org;
    rd_pglink db;
    redisContext *rd;
    rd_redis_addr raddr;
    int64_t rd_backoff, rd_next;
    bool need_reconcile, wake_queue;
    uint64_t reconciles;
    void *pull, *sub, *push, *pub;
    idset pending, tosync;
    struct {
        rd_metric *assigned, *queued, *redriven, *missed, *batches, *errors, *decision_s, *batch_s, *db_up, *redis_up,
            *reconcile_fixes, *reconciles, *dropped, *org_loads;
    } m;
} dispatcher;

static void usage(FILE *out)
{
    fprintf(out, "Usage: redress-dispatcher [--config FILE] [--check-config] [--help] [--version]\n"
                 "\n"
                 "Gives every classified ticket an owner: routes it to a team (routing rules, the unit a\n"
                 "transfer or return names, major tickets to a senior team), then picks an online, skilled\n"
                 "agent below capacity in one atomic Redis step. Tickets nobody can take wait in a\n"
                 "priority-ordered queue. Run several; they share the work.\n"
                 "\n"
                 "Configuration keys (environment REDRESS_<KEY> overrides, e.g. REDRESS_REDIS_URL):\n"
                 "  pg.dsn                              libpq connection string\n"
                 "  redis.url                           redis://host:port[/db]  [redis://127.0.0.1:56379]\n"
                 "  redis.timeout_ms                    connect and command timeout          [2000]\n"
                 "  dispatcher.classifier_endpoint      classifier PUSH endpoint(s)          [tcp://127.0.0.1:7412]\n"
                 "  dispatcher.events_endpoint          intake PUB endpoint(s) (actions)     [tcp://127.0.0.1:7403]\n"
                 "  dispatcher.push_bind                PUSH of assignments downstream       [tcp://127.0.0.1:7422]\n"
                 "  dispatcher.pub_bind                 PUB of every assignment              [tcp://127.0.0.1:7423]\n"
                 "  dispatcher.batch                    tickets per transaction              [64]\n"
                 "  dispatcher.redrive_interval_ms      look for tickets whose notice was lost [2000]\n"
                 "  dispatcher.redrive_min_age_ms       leave younger tickets to the fast path [1000]\n"
                 "  dispatcher.queue_interval_ms        retry the queue at least this often  [250]\n"
                 "  dispatcher.expire_interval_ms       acceptance-limit sweep               [1000]\n"
                 "  dispatcher.reconcile_interval_ms    rebuild Redis from PostgreSQL        [5000]\n"
                 "  dispatcher.org_poll_ms              re-read the organisation             [30000]\n"
                 "  dispatcher.reservation_grace_ms     age before an uncommitted reservation is void [30000]\n"
                 "  dispatcher.http_bind, dispatcher.http_port  /healthz, /metrics           [127.0.0.1, 9403]\n"
                 "  internal.curve_key_file             cluster key: CURVE on the internal links [\"\"]\n"
                 "  log.level                           debug|info|warn|error                [info]\n");
}

static bool loadCfg(rd_config *f, cfg *c, char *err, int errlen)
{
    c->dsn = rd_config_str(f, "pg.dsn", "host=127.0.0.1 port=55432 dbname=redress user=redress");
    c->redis_url = rd_config_str(f, "redis.url", "redis://127.0.0.1:56379");
    c->classifier = rd_config_str(f, "dispatcher.classifier_endpoint", "tcp://127.0.0.1:7412");
    c->events = rd_config_str(f, "dispatcher.events_endpoint", "tcp://127.0.0.1:7403");
    c->push_bind = rd_config_str(f, "dispatcher.push_bind", "tcp://127.0.0.1:7422");
    c->pub_bind = rd_config_str(f, "dispatcher.pub_bind", "tcp://127.0.0.1:7423");
    c->http_bind = rd_config_str(f, "dispatcher.http_bind", "127.0.0.1");
    return rd_config_int(f, "dispatcher.batch", 64, 1, 10000, &c->batch, err, errlen) &&
           rd_config_int(f, "dispatcher.redrive_interval_ms", 2000, 10, 3600000, &c->redrive_ms, err, errlen) &&
           rd_config_int(f, "dispatcher.redrive_min_age_ms", 1000, 0, 3600000, &c->min_age_ms, err, errlen) &&
           rd_config_int(f, "dispatcher.queue_interval_ms", 250, 10, 60000, &c->queue_ms, err, errlen) &&
           rd_config_int(f, "dispatcher.expire_interval_ms", 1000, 10, 600000, &c->expire_ms, err, errlen) &&
           rd_config_int(f, "dispatcher.reconcile_interval_ms", 5000, 100, 3600000, &c->reconcile_ms, err, errlen) &&
           rd_config_int(f, "dispatcher.org_poll_ms", 30000, 100, 3600000, &c->org_poll_ms, err, errlen) &&
           rd_config_int(f, "dispatcher.reservation_grace_ms", 30000, 1000, 3600000, &c->grace_ms, err, errlen) &&
           rd_config_int(f, "redis.timeout_ms", 2000, 10, 60000, &c->redis_timeout_ms, err, errlen) &&
           rd_config_int(f, "dispatcher.http_port", 9403, 0, 65535, &c->http_port, err, errlen);
}

/* ---- id sets ------------------------------------------------------------------------------- */

static void idsAdd(idset *s, const char *id)
{
    if (s->n >= MAX_PENDING)
        return; /* the re-drive and the reconciliation find whatever we drop */
    for (int i = s->n - 1; i >= 0 && i >= s->n - 64; i--)
        if (strcmp(s->v[i], id) == 0)
            return;
    if (s->v == NULL && (s->v = calloc(MAX_PENDING, sizeof(char *))) == NULL)
        abort();
    if ((s->v[s->n] = strdup(id)) == NULL)
        abort();
    s->n++;
}

static void idsClear(idset *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    s->n = 0;
}

/* ---- connections --------------------------------------------------------------------------- */

static void pgDrop(dispatcher *d, const char *why)
{
    rd_pglink_drop(&d->db, why);
    rd_metric_set(d->m.db_up, 0);
}

static void orgReload(dispatcher *d)
{
    char err[512];
    dp_org *o = dp_org_load(d->db.conn, err, sizeof(err));
    if (o == NULL) {
        rd_log(RD_LOG_ERROR, "cannot read the organisation", "error", err, NULL);
        return;
    }
    dp_org_free(&d->org);
    d->org = o;
    d->need_reconcile = true; /* capacities may have changed */
    d->wake_queue = true;
    rd_metric_inc(d->m.org_loads, 1);
    char nt[16], na[16], nr[16];
    snprintf(nt, sizeof(nt), "%d", o->nteams);
    snprintf(na, sizeof(na), "%d", o->nagents);
    snprintf(nr, sizeof(nr), "%d", o->nrules);
    rd_log(RD_LOG_INFO, "organisation loaded", "teams", nt, "agents", na, "rules", nr, NULL);
    if (o->nteams == 0)
        rd_log(RD_LOG_WARN, "the organisation has no teams: nothing can be assigned (redressctl org load FILE)", NULL);
}

static bool pgEnsure(dispatcher *d)
{
    bool fresh;
    if (!rd_pglink_ensure(&d->db, &fresh))
        return false;
    if (fresh) {
        char err[512];
        if (!dp_store_prepare(d->db.conn, err, sizeof(err))) {
            rd_log(RD_LOG_ERROR, "cannot prepare statements (is the schema migrated?)", "error", err, NULL);
            pgDrop(d, err);
            return false;
        }
        rd_metric_set(d->m.db_up, 1);
        orgReload(d); /* notifications may have been missed while away */
    }
    return true;
}

static void redisDrop(dispatcher *d, const char *why)
{
    if (d->rd == NULL)
        return;
    /* log first: why often points into the context (its errstr) */
    rd_log(RD_LOG_WARN, "lost Redis", "error", why, NULL);
    redisFree(d->rd);
    d->rd = NULL;
    rd_metric_set(d->m.redis_up, 0);
}

static bool redisEnsure(dispatcher *d)
{
    if (d->rd && !rd_redis_broken(d->rd))
        return true;
    redisDrop(d, d->rd ? d->rd->errstr : "connection broken");
    int64_t now = rd_mono_us();
    if (now < d->rd_next)
        return false;
    char err[512];
    d->rd = rd_redis_connect(&d->raddr, (int)d->c.redis_timeout_ms, err, sizeof(err));
    rd_redis_script *all[] = {&dp_script_assign,   &dp_script_sync,    &dp_script_cancel,
                              &dp_script_presence, &dp_script_rebuild, &dp_script_now};
    for (size_t i = 0; d->rd && i < sizeof(all) / sizeof(all[0]); i++)
        if (!rd_redis_script_load(d->rd, all[i], err, sizeof(err))) {
            redisFree(d->rd);
            d->rd = NULL;
        }
    if (d->rd == NULL) {
        d->rd_backoff = rd_backoff_next(d->rd_backoff, 100, 5000);
        d->rd_next = now + d->rd_backoff * 1000;
        rd_log(RD_LOG_WARN, "cannot reach Redis", "error", err, NULL);
        return false;
    }
    d->rd_backoff = 0;
    rd_metric_set(d->m.redis_up, 1);
    rd_log(RD_LOG_INFO, "connected to Redis", "host", d->raddr.host, NULL);
    d->need_reconcile = true; /* it may have restarted empty */
    return true;
}

static bool ready(dispatcher *d)
{
    return pgEnsure(d) && redisEnsure(d) && d->org != NULL;
}

static void rollback(dispatcher *d)
{
    char err[256];
    if (d->db.conn && PQstatus(d->db.conn) == CONNECTION_OK && !rd_pg_command(d->db.conn, "ROLLBACK", err, sizeof(err)))
        pgDrop(d, err);
}

/* The Redis clock in ms, -1 when Redis failed. */
static int64_t redisNow(dispatcher *d)
{
    char err[256];
    redisReply *r = rd_redis_eval(d->rd, &dp_script_now, 0, 0, NULL, NULL, err, sizeof(err));
    int64_t v = r && r->type == REDIS_REPLY_INTEGER ? (int64_t)r->integer : -1;
    freeReplyObject(r);
    if (v < 0 && rd_redis_broken(d->rd))
        redisDrop(d, err);
    return v;
}

/* ---- Redis: sync, cancel ------------------------------------------------------------------- */

/* Makes {rd}:open agree with these PostgreSQL rows (see dp_script_sync). Returns fixes, -1 on error. */
static int redisSync(dispatcher *d, const dp_open *rows, int n, int64_t since, int64_t grace)
{
    int fixes = 0;
    for (int off = 0; off < n; off += SYNC_CHUNK) {
        int k = n - off < SYNC_CHUNK ? n - off : SYNC_CHUNK;
        const char *argv[5 + 3 * SYNC_CHUNK];
        char ws[SYNC_CHUNK][12], s1[24], s2[24];
        snprintf(s1, sizeof(s1), "%lld", (long long)since);
        snprintf(s2, sizeof(s2), "%lld", (long long)grace);
        argv[0] = DP_KEY_LOAD;
        argv[1] = DP_KEY_OPEN;
        argv[2] = DP_KEY_GONE;
        argv[3] = s1;
        argv[4] = s2;
        for (int i = 0; i < k; i++) {
            snprintf(ws[i], sizeof(ws[i]), "%d", rows[off + i].weight);
            argv[5 + 3 * i] = rows[off + i].ticket;
            argv[6 + 3 * i] = rows[off + i].agent;
            argv[7 + 3 * i] = ws[i];
        }
        char err[512];
        redisReply *r = rd_redis_eval(d->rd, &dp_script_sync, 3, 5 + 3 * k, argv, NULL, err, sizeof(err));
        if (r == NULL) {
            rd_log(RD_LOG_WARN, "redis sync failed", "error", err, NULL);
            if (rd_redis_broken(d->rd))
                redisDrop(d, err);
            return -1;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3)
            fixes += (int)(r->element[0]->integer + r->element[1]->integer);
        freeReplyObject(r);
    }
    return fixes;
}

/* Drops the reservations of a batch whose transaction failed. */
static void redisCancel(dispatcher *d, const dp_batch *b, const dp_decision *dec)
{
    for (int i = 0; i < b->n && d->rd; i++) {
        if (dec[i].skip || dec[i].agent[0] == '\0')
            continue;
        const char *argv[] = {DP_KEY_LOAD, DP_KEY_OPEN, DP_KEY_GONE, dec[i].agent, b->v[i].id};
        char err[256];
        redisReply *r = rd_redis_eval(d->rd, &dp_script_cancel, 3, 5, argv, NULL, err, sizeof(err));
        if (r == NULL && rd_redis_broken(d->rd))
            redisDrop(d, err); /* the reconciliation voids them after the grace period */
        freeReplyObject(r);
    }
}

/* ---- deciding a batch ---------------------------------------------------------------------- */

static const char *kindOf(const dp_ticket *t)
{
    if (strcmp(t->state, "returned") == 0)
        return "return";
    if (strcmp(t->state, "assigned") == 0)
        return t->route_to_unit[0] ? "transfer" : "redispatch";
    return "assign";
}

/* Tickets of a batch that go to the same team with the same candidates: one script call. */
typedef struct {
    int team, nc, *cand;
    int *members, n;
} group;

/* Decides x's team and candidates; returns its candidate count (0: nothing to ask Redis). */
static int routeOne(const dp_org *o, const dp_ticket *t, dp_decision *x, int *team, int *cand)
{
    memset(x, 0, sizeof(*x));
    const char *why = "";
    *team = dp_route(o, t, &why);
    x->kind = kindOf(t);
    if (*team < 0 || rd_lifecycle_next(rd_state_parse(t->state), RD_EV_ASSIGN) == RD_STATE_INVALID) {
        x->skip = true;
        return 0;
    }
    x->team = o->teams[*team].id;
    x->dept = o->depts[o->teams[*team].dept].id;
    x->weight = dp_weight(o, *team, t);
    x->accept_s = dp_accept_limit(o, t);
    snprintf(x->why, sizeof(x->why), "%s", why);
    int nc = dp_candidates(o, *team, t, cand, MAX_CANDIDATES);
    if (nc == 0 && t->excluded && t->excluded[0]) {
        /* everyone who could take it has missed accepting it once: offer it to them again rather
         * than leave it queued for ever */
        dp_ticket again = *t;
        again.excluded = NULL;
        nc = dp_candidates(o, *team, &again, cand, MAX_CANDIDATES);
        if (nc > 0) {
            size_t l = strlen(x->why);
            snprintf(x->why + l, sizeof(x->why) - l, "; every skilled agent has missed it, offered again");
        }
    }
    if (nc == 0)
        snprintf(x->why, sizeof(x->why), "%s; no active agent in team %s has the skills", why, x->team);
    return nc;
}

/* The answer for one ticket: an agent, "" (nobody could take it). */
static void answer(const dp_org *o, dp_decision *x, int team, const char *agent)
{
    if (agent[0] == '\0') {
        size_t l = strlen(x->why);
        snprintf(x->why + l, sizeof(x->why) - l, "; no skilled agent of team %s online with capacity", x->team);
        return;
    }
    snprintf(x->agent, sizeof(x->agent), "%s", agent);
    int a = dp_org_agent(o, agent);
    if (a >= 0 && o->agents[a].team >= 0 && o->agents[a].team != team) {
        /* taken by the overflow team */
        const dp_team *ot = &o->teams[o->agents[a].team];
        x->team = ot->id;
        x->dept = o->depts[ot->dept].id;
        size_t l = strlen(x->why);
        snprintf(x->why + l, sizeof(x->why) - l, "; overflow to %s", ot->id);
    }
}

/*
 * Routes every ticket, groups the tickets that have the same candidates, and sends one assign
 * script per group, all pipelined (one round trip), then reads the answers. false when Redis
 * failed (nothing may be written then).
 */
static bool decide(dispatcher *d, const dp_batch *b, dp_decision *dec)
{
    const dp_org *o = d->org;
    int *cand = malloc(sizeof(int) * MAX_CANDIDATES);
    group *g = calloc((size_t)b->n + 1, sizeof(*g));
    int *teamOf = calloc((size_t)b->n + 1, sizeof(int));
    char(*ws)[12] = calloc((size_t)b->n + 1, sizeof(*ws));
    if (cand == NULL || g == NULL || teamOf == NULL || ws == NULL)
        abort();
    int ng = 0;
    int64_t now = rd_now_ms(); /* for agents' calendars */
    for (int i = 0; i < b->n; i++) {
        dp_ticket t = b->v[i];
        t.now_ms = now;
        int nc = routeOne(o, &t, &dec[i], &teamOf[i], cand);
        if (nc == 0)
            continue;
        snprintf(ws[i], sizeof(ws[i]), "%d", dec[i].weight);
        int k = 0;
        while (k < ng && !(g[k].team == teamOf[i] && g[k].nc == nc && memcmp(g[k].cand, cand, sizeof(int) * nc) == 0))
            k++;
        if (k == ng) {
            g[k].team = teamOf[i];
            g[k].nc = nc;
            g[k].cand = malloc(sizeof(int) * (size_t)nc);
            g[k].members = malloc(sizeof(int) * (size_t)b->n);
            if (g[k].cand == NULL || g[k].members == NULL)
                abort();
            memcpy(g[k].cand, cand, sizeof(int) * (size_t)nc);
            ng++;
        }
        g[k].members[g[k].n++] = i;
    }
    int64_t t0 = rd_mono_us();
    int nsent = 0;
    for (int k = 0; k < ng; k++) {
        const char **argv = malloc(sizeof(char *) * (size_t)(12 + g[k].nc + 2 * g[k].n));
        char rr[128], nc[16];
        if (argv == NULL)
            abort();
        snprintf(rr, sizeof(rr), DP_KEY_RR "%s", o->teams[g[k].team].id);
        snprintf(nc, sizeof(nc), "%d", g[k].nc);
        int a = 0;
        argv[a++] = "EVALSHA";
        argv[a++] = dp_script_assign.sha;
        argv[a++] = "7";
        argv[a++] = DP_KEY_LOAD;
        argv[a++] = DP_KEY_CAP;
        argv[a++] = DP_KEY_PRES;
        argv[a++] = DP_KEY_OPEN;
        argv[a++] = rr;
        argv[a++] = DP_KEY_READY;
        argv[a++] = DP_KEY_GONE;
        argv[a++] = o->teams[g[k].team].strategy == DP_ROUND_ROBIN ? "rr" : "ll";
        argv[a++] = nc;
        for (int j = 0; j < g[k].nc; j++)
            argv[a++] = o->agents[g[k].cand[j]].id;
        for (int j = 0; j < g[k].n; j++) {
            argv[a++] = b->v[g[k].members[j]].id;
            argv[a++] = ws[g[k].members[j]];
        }
        /* hiredis copies the arguments into its output buffer here */
        int rc = redisAppendCommandArgv(d->rd, a, argv, NULL);
        free(argv);
        if (rc != REDIS_OK)
            break;
        nsent++;
    }
    bool ok = nsent == ng;
    for (int k = 0; k < nsent; k++) {
        redisReply *r = NULL;
        if (redisGetReply(d->rd, (void **)&r) != REDIS_OK || r == NULL) {
            ok = false;
            break;
        }
        double secs = (double)(rd_mono_us() - t0) / 1e6;
        for (int j = 0; j < g[k].n; j++) {
            int i = g[k].members[j];
            rd_metric_observe(d->m.decision_s, secs);
            if (r->type == REDIS_REPLY_ARRAY && r->elements == (size_t)g[k].n &&
                r->element[j]->type == REDIS_REPLY_STRING) {
                answer(o, &dec[i], teamOf[i], r->element[j]->str);
            } else if (r->type == REDIS_REPLY_INTEGER) {
                dec[i].skip = true; /* Redis forgot its state: nothing is assigned until it is reconciled */
                d->need_reconcile = true;
            } else {
                dec[i].skip = true; /* stays where it is; tried again later */
            }
        }
        if (r->type == REDIS_REPLY_ERROR || (r->type == REDIS_REPLY_ARRAY && r->elements != (size_t)g[k].n)) {
            rd_log(RD_LOG_ERROR, "assign script failed", "error", r->type == REDIS_REPLY_ERROR ? r->str : "bad reply",
                   NULL);
            if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0)
                dp_script_assign.sha[0] = '\0'; /* reloaded below */
        }
        freeReplyObject(r);
    }
    if (!ok) {
        redisDrop(d, d->rd && d->rd->errstr[0] ? d->rd->errstr : "pipeline failed");
    } else if (dp_script_assign.sha[0] == '\0') {
        char err[256];
        if (!rd_redis_script_load(d->rd, &dp_script_assign, err, sizeof(err)))
            redisDrop(d, err);
    }
    for (int k = 0; k < ng; k++) {
        free(g[k].cand);
        free(g[k].members);
    }
    free(g);
    free(cand);
    free(teamOf);
    free(ws);
    return ok;
}

static void handOff(dispatcher *d, const char *ticket, int64_t seq)
{
    Redress__V1__TicketEvent ev = REDRESS__V1__TICKET_EVENT__INIT;
    ev.seq = seq;
    ev.ticket_id = (char *)ticket;
    ev.kind = "assign";
    ev.state = "assigned";
    ev.at_ms = rd_now_ms();
    uint8_t buf[256];
    size_t len = redress__v1__ticket_event__get_packed_size(&ev);
    if (len > sizeof(buf))
        return;
    redress__v1__ticket_event__pack(&ev, buf);
    if (zmq_send(d->push, buf, len, ZMQ_DONTWAIT) < 0)
        rd_metric_inc(d->m.dropped, 1);
    zmq_send(d->pub, buf, len, ZMQ_DONTWAIT);
}

typedef enum { FROM_IDS, FROM_REDRIVE, FROM_QUEUE, FROM_EXPIRED } source;

/*
 * One transaction: claim, decide, write, commit, confirm. Returns how many tickets were claimed
 * (0 = nothing to do), -1 on error. In queue mode tickets that still cannot be placed are left as
 * they are (their queue row stays) rather than rewritten on every retry.
 */
static int dispatchBatch(dispatcher *d, source src, const char *const *ids, int n)
{
    if (!ready(d))
        return -1;
    char err[512];
    if (!rd_pg_command(d->db.conn, "BEGIN", err, sizeof(err))) {
        pgDrop(d, err);
        return -1;
    }
    char **expired = NULL;
    dp_batch b = {0};
    bool ok;
    switch (src) {
    case FROM_IDS:
        ok = dp_store_claim_ids(d->db.conn, ids, n, &b, err, sizeof(err));
        break;
    case FROM_REDRIVE:
        ok = dp_store_claim_redrive(d->db.conn, (int)d->c.batch, d->c.min_age_ms, &b, err, sizeof(err));
        break;
    case FROM_QUEUE:
        ok = dp_store_claim_queue(d->db.conn, (int)d->c.batch, (int)(d->c.batch / 4 > 0 ? d->c.batch / 4 : 1), &b, err,
                                  sizeof(err));
        break;
    default: {
        int ne = dp_store_expire(d->db.conn, (int)d->c.batch, d->svc.who, &expired, err, sizeof(err));
        ok = ne >= 0 && dp_store_claim_ids(d->db.conn, (const char *const *)expired, ne, &b, err, sizeof(err));
        if (ok)
            rd_metric_inc(d->m.missed, (uint64_t)ne);
        for (int i = 0; expired && i < ne; i++)
            free(expired[i]);
        free(expired);
        if (ok && ne == 0) {
            dp_batch_free(&b);
            rollback(d);
            return 0;
        }
    }
    }
    if (!ok) {
        rd_log(RD_LOG_ERROR, "cannot claim tickets", "error", err, NULL);
        rollback(d);
        if (PQstatus(d->db.conn) != CONNECTION_OK)
            pgDrop(d, err);
        return -1;
    }
    if (b.n == 0) {
        dp_batch_free(&b);
        rollback(d);
        return 0;
    }
    int64_t t0 = rd_mono_us();
    dp_decision *dec = calloc((size_t)b.n, sizeof(*dec));
    int64_t *seqs = calloc((size_t)b.n, sizeof(*seqs));
    if (dec == NULL || seqs == NULL)
        abort();
    if (!decide(d, &b, dec)) {
        rollback(d);
        dp_batch_free(&b);
        free(dec);
        free(seqs);
        return -1;
    }
    int nassigned = 0, nqueued = 0;
    for (int i = 0; i < b.n; i++) {
        if (dec[i].skip)
            continue;
        if (dec[i].agent[0])
            nassigned++;
        else if (src == FROM_QUEUE && b.queued[i])
            dec[i].skip = true; /* still waiting; its row already says why */
        else
            nqueued++;
    }
    ok = dp_store_write(d->db.conn, &b, dec, d->svc.who, seqs, err, sizeof(err)) &&
         rd_pg_command(d->db.conn, "COMMIT", err, sizeof(err));
    if (!ok) {
        rd_metric_inc(d->m.errors, 1);
        rd_log(RD_LOG_ERROR, "cannot store assignments", "error", err, NULL);
        rollback(d);
        redisCancel(d, &b, dec);
        if (PQstatus(d->db.conn) != CONNECTION_OK)
            pgDrop(d, err);
    } else {
        dp_open *conf = calloc((size_t)b.n, sizeof(*conf));
        int nc = 0;
        for (int i = 0; i < b.n; i++) {
            if (dec[i].skip || dec[i].agent[0] == '\0' || seqs[i] == 0)
                continue;
            snprintf(conf[nc].ticket, sizeof(conf[nc].ticket), "%s", b.v[i].id);
            snprintf(conf[nc].agent, sizeof(conf[nc].agent), "%s", dec[i].agent);
            conf[nc++].weight = dec[i].weight;
            handOff(d, b.v[i].id, seqs[i]);
        }
        if (nc > 0 && d->rd)
            redisSync(d, conf, nc, 0, 0); /* confirm: younger than everything, so nothing is removed */
        free(conf);
        rd_metric_inc(d->m.assigned, (uint64_t)nassigned);
        rd_metric_inc(d->m.queued, (uint64_t)nqueued);
        rd_metric_inc(d->m.batches, 1);
        rd_metric_observe(d->m.batch_s, (double)(rd_mono_us() - t0) / 1e6);
    }
    int claimed = b.n;
    dp_batch_free(&b);
    free(dec);
    free(seqs);
    return ok ? claimed : -1;
}

/* ---- the paths ----------------------------------------------------------------------------- */

static void flushPending(dispatcher *d)
{
    for (int off = 0; off < d->pending.n; off += (int)d->c.batch) {
        int n = d->pending.n - off < d->c.batch ? d->pending.n - off : (int)d->c.batch;
        if (dispatchBatch(d, FROM_IDS, (const char *const *)d->pending.v + off, n) < 0)
            break; /* re-drive finds them */
    }
    idsClear(&d->pending);
}

static void drainSource(dispatcher *d, source src, rd_metric *counter)
{
    int n, rounds = 0;
    /* a bounded number of batches per turn, so that a backlog does not keep the loop from its
     * other duties (notifications, reconciliation, the fast path) */
    while (!rd_service_stopping() && rounds++ < 8 && (n = dispatchBatch(d, src, NULL, 0)) > 0) {
        if (counter)
            rd_metric_inc(counter, (uint64_t)n);
        if (n < d->c.batch || src == FROM_QUEUE)
            break; /* the queue's head: one batch per round, the rest waits its turn */
    }
}

/* Tickets whose load may have changed (resolved, closed, reopened, transferred, returned). */
static void flushSync(dispatcher *d)
{
    if (d->tosync.n == 0 || !ready(d))
        return;
    int64_t since = redisNow(d);
    dp_open *rows = NULL;
    char err[512];
    int n = since < 0
                ? -1
                : dp_store_open_of(d->db.conn, (const char *const *)d->tosync.v, d->tosync.n, &rows, err, sizeof(err));
    if (n >= 0 && redisSync(d, rows, n, since, d->c.grace_ms) >= 0) {
        idsClear(&d->tosync);
        d->wake_queue = true;
    } else if (n < 0 && since >= 0) {
        rd_log(RD_LOG_WARN, "cannot read open assignments", "error", err, NULL);
        if (PQstatus(d->db.conn) != CONNECTION_OK)
            pgDrop(d, err);
    }
    free(rows);
}

static int cmpOpen(const void *a, const void *b)
{
    return strcmp(((const dp_open *)a)->ticket, ((const dp_open *)b)->ticket);
}

/* Capacities, presence and open tickets in Redis made equal to PostgreSQL. */
/* One dispatcher reconciles per interval (a lease in Redis); after a flush the lease is gone too,
 * so the first one to notice does it at once. */
static bool reconcileLease(dispatcher *d)
{
    char px[24];
    snprintf(px, sizeof(px), "%lld", (long long)(d->c.reconcile_ms > 1 ? d->c.reconcile_ms - 1 : 1));
    redisReply *r = redisCommand(d->rd, "SET " DP_KEY_LEASE " %s NX PX %s", d->svc.who, px);
    if (r == NULL) {
        redisDrop(d, d->rd->errstr);
        return false;
    }
    bool got = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    return got;
}

/* The keys of {rd}:open, read with HSCAN (never one long blocking command). Caller frees. */
static char **openKeys(dispatcher *d, size_t *n)
{
    size_t cap = 1024;
    char **v = malloc(cap * sizeof(*v));
    char cursor[32] = "0";
    *n = 0;
    if (v == NULL)
        abort();
    do {
        redisReply *r = redisCommand(d->rd, "HSCAN " DP_KEY_OPEN " %s COUNT 1000", cursor);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r == NULL)
                redisDrop(d, d->rd->errstr);
            freeReplyObject(r);
            for (size_t i = 0; i < *n; i++)
                free(v[i]);
            free(v);
            return NULL;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        const redisReply *kv = r->element[1];
        for (size_t i = 0; i + 1 < kv->elements; i += 2) {
            if (*n == cap) {
                char **nv = realloc(v, (cap *= 2) * sizeof(*v));
                if (nv == NULL)
                    abort();
                v = nv;
            }
            if ((v[(*n)++] = strdup(kv->element[i]->str)) == NULL)
                abort();
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return v;
}

static void reconcile(dispatcher *d)
{
    if (!ready(d) || !reconcileLease(d)) {
        d->need_reconcile = false;
        return;
    }
    const dp_org *o = d->org;
    char err[512];
    int fixes = 0;
    redisReply *e = redisCommand(d->rd, "EXISTS " DP_KEY_READY);
    if (e == NULL) {
        redisDrop(d, d->rd->errstr);
        return;
    }
    bool emptyRedis = e->type == REDIS_REPLY_INTEGER && e->integer == 0;
    freeReplyObject(e);
    /* capacities */
    for (int i = 0; i < o->nagents; i++) {
        const dp_agent *a = &o->agents[i];
        if (a->active && a->team >= 0)
            redisAppendCommand(d->rd, "HSET " DP_KEY_CAP " %s %d", a->id, a->capacity);
        else
            redisAppendCommand(d->rd, "HDEL " DP_KEY_CAP " %s", a->id);
    }
    for (int i = 0; i < o->nagents; i++) {
        redisReply *r = NULL;
        if (redisGetReply(d->rd, (void **)&r) != REDIS_OK) {
            redisDrop(d, d->rd->errstr);
            return;
        }
        freeReplyObject(r);
    }
    /* open tickets: every PostgreSQL row, plus "none" for entries PostgreSQL does not have */
    int64_t since = redisNow(d);
    dp_open *rows = NULL;
    int n = since < 0 ? -1 : dp_store_open_all(d->db.conn, &rows, err, sizeof(err));
    if (n < 0) {
        if (since >= 0)
            rd_log(RD_LOG_WARN, "cannot read open assignments", "error", err, NULL);
        return;
    }
    size_t nkeys = 0;
    char **keys = openKeys(d, &nkeys);
    if (keys == NULL) {
        free(rows);
        return;
    }
    qsort(rows, (size_t)n, sizeof(*rows), cmpOpen);
    int extra = 0;
    dp_open *more = calloc(nkeys + 1, sizeof(*more));
    for (size_t i = 0; i < nkeys; i++) {
        dp_open key = {0};
        snprintf(key.ticket, sizeof(key.ticket), "%s", keys[i]);
        if (bsearch(&key, rows, (size_t)n, sizeof(*rows), cmpOpen) == NULL) {
            more[extra] = key;
            more[extra++].weight = 1;
        }
        free(keys[i]);
    }
    free(keys);
    int f1 = redisSync(d, rows, n, since, d->c.grace_ms);
    int f2 = d->rd ? redisSync(d, more, extra, since, d->c.grace_ms) : -1;
    free(rows);
    free(more);
    if (f1 < 0 || f2 < 0)
        return;
    /* The scripts keep every load equal to the sum of its open entries; recomputing them all
     * (which blocks Redis for a while with many open tickets) is the safety net, run when this
     * reconciliation fixed something, after Redis was found empty, and every 12th time. */
    int f3 = 0;
    redisReply *r;
    if (f1 + f2 > 0 || d->reconciles % 12 == 0 || emptyRedis) {
        char keep[24];
        snprintf(keep, sizeof(keep), "%lld", (long long)(4 * d->c.grace_ms));
        const char *kargv[] = {DP_KEY_LOAD, DP_KEY_OPEN, DP_KEY_GONE, keep};
        r = rd_redis_eval(d->rd, &dp_script_rebuild, 3, 4, kargv, NULL, err, sizeof(err));
        f3 = r && r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
        freeReplyObject(r);
    }
    d->reconciles++;
    /* presence, once loads are right (PostgreSQL is written first by redressctl, so what Redis
     * lacks comes back); only then is Redis declared ready for assignments */
    dp_presence *pres = NULL;
    int np = dp_store_presence(d->db.conn, &pres, err, sizeof(err));
    for (int i = 0; i < np; i++)
        redisAppendCommand(d->rd, "HEXISTS " DP_KEY_PRES " %s", pres[i].agent);
    bool *there = calloc((size_t)np + 1, sizeof(bool));
    for (int i = 0; i < np; i++) {
        redisReply *h = NULL;
        if (redisGetReply(d->rd, (void **)&h) != REDIS_OK) {
            free(pres);
            free(there);
            redisDrop(d, d->rd->errstr);
            return;
        }
        there[i] = h->type == REDIS_REPLY_INTEGER && h->integer == 1;
        freeReplyObject(h);
    }
    for (int i = 0; i < np; i++) {
        bool online = strcmp(pres[i].status, "online") == 0 && pres[i].ttl_ms > 0;
        if (!there[i] && (online || strcmp(pres[i].status, "away") == 0)) {
            dp_presence_set(d->rd, pres[i].agent, online ? "online" : "away", pres[i].ttl_ms, err, sizeof(err));
            fixes++;
        }
    }
    free(pres);
    free(there);
    r = redisCommand(d->rd, "SET " DP_KEY_READY " 1");
    if (r == NULL) {
        redisDrop(d, d->rd->errstr);
        return;
    }
    freeReplyObject(r);
    rd_metric_inc(d->m.reconciles, 1);
    if (fixes + f1 + f2 + f3 > 0) {
        char npf[16], no[16], nx[16], nl[16], nr[16];
        snprintf(npf, sizeof(npf), "%d", fixes);
        snprintf(no, sizeof(no), "%d", n);
        snprintf(nx, sizeof(nx), "%d", f1 + f2);
        snprintf(nr, sizeof(nr), "%d", extra);
        snprintf(nl, sizeof(nl), "%d", f3);
        rd_metric_inc(d->m.reconcile_fixes, (uint64_t)(fixes + f1 + f2 + f3));
        rd_log(RD_LOG_INFO, "redis reconciled to PostgreSQL", "presence_fixed", npf, "open_in_pg", no, "open_fixed", nx,
               "stale_in_redis", nr, "loads_fixed", nl, NULL);
        d->wake_queue = true;
    }
    d->need_reconcile = false;
}

static void pgNotifications(dispatcher *d)
{
    if (rd_pglink_notified(&d->db))
        orgReload(d);
    if (d->db.conn == NULL)
        rd_metric_set(d->m.db_up, 0);
}

/* Classified tickets from the classifier's PUSH. */
static void drainPull(dispatcher *d)
{
    uint8_t buf[512];
    int n;
    while (d->pending.n < MAX_PENDING && (n = zmq_recv(d->pull, buf, sizeof(buf), ZMQ_DONTWAIT)) >= 0) {
        if (n > (int)sizeof(buf))
            continue;
        rd_ticket_event ev;
        if (rd_ticket_event_decode(buf, (size_t)n, &ev))
            idsAdd(&d->pending, ev.ticket_id);
    }
}

/* Actions from intake's PUB. */
static void drainSub(dispatcher *d)
{
    uint8_t buf[512];
    int n;
    while (d->tosync.n < MAX_PENDING && (n = zmq_recv(d->sub, buf, sizeof(buf), ZMQ_DONTWAIT)) >= 0) {
        if (n > (int)sizeof(buf))
            continue;
        rd_ticket_event ev;
        if (!rd_ticket_event_decode(buf, (size_t)n, &ev))
            continue;
        const char *k = ev.kind;
        if (strcmp(k, "transfer") == 0 || strcmp(k, "return") == 0)
            idsAdd(&d->pending, ev.ticket_id);
        if (strcmp(k, "transfer") == 0 || strcmp(k, "return") == 0 || strcmp(k, "resolve") == 0 ||
            strcmp(k, "close") == 0 || strcmp(k, "reopen") == 0)
            idsAdd(&d->tosync, ev.ticket_id);
    }
}

/* ---- setup --------------------------------------------------------------------------------- */

static bool healthCheck(void *arg, char *detail, size_t len)
{
    dispatcher *d = arg;
    bool up = d->db.conn != NULL && d->rd != NULL && d->org != NULL;
    snprintf(detail, len, "%s; %s; %d teams", d->db.conn ? "PostgreSQL connected" : "PostgreSQL unreachable",
             d->rd ? "Redis connected" : "Redis unreachable", d->org ? d->org->nteams : 0);
    return up;
}

static void metricsInit(dispatcher *d)
{
    static const double fine[] = {0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.0015, 0.002,
                                  0.003,   0.004,  0.005,  0.0075, 0.01,   0.02,    0.05,  0.1,    0.5};
    d->m.assigned = rd_metric_counter("redress_dispatcher_assigned_total", "Tickets assigned to an agent");
    d->m.queued = rd_metric_counter("redress_dispatcher_queued_total", "Tickets put in the queue");
    d->m.redriven = rd_metric_counter("redress_dispatcher_redriven_total", "Tickets found by re-drive");
    d->m.missed = rd_metric_counter("redress_dispatcher_missed_accepts_total", "Assignments not accepted in time");
    d->m.batches = rd_metric_counter("redress_dispatcher_batches_total", "Transactions committed");
    d->m.errors = rd_metric_counter("redress_dispatcher_errors_total", "Batches that failed to store");
    d->m.decision_s = rd_metric_histogram("redress_dispatcher_decision_seconds",
                                          "Time from sending a batch's decisions to Redis to each answer", fine, 18);
    d->m.batch_s =
        rd_metric_histogram("redress_dispatcher_batch_seconds", "Decide + write + commit per batch", fine, 18);
    d->m.db_up = rd_metric_gauge("redress_dispatcher_db_up", "1 while connected to PostgreSQL");
    d->m.redis_up = rd_metric_gauge("redress_dispatcher_redis_up", "1 while connected to Redis");
    d->m.reconciles = rd_metric_counter("redress_dispatcher_reconciles_total", "Reconciliations of Redis");
    d->m.reconcile_fixes =
        rd_metric_counter("redress_dispatcher_reconcile_fixes_total", "Redis entries corrected by reconciliation");
    d->m.dropped = rd_metric_counter("redress_dispatcher_handoff_dropped_total", "Notifications not delivered");
    d->m.org_loads = rd_metric_counter("redress_dispatcher_org_loads_total", "Organisation (re)loads");
}

int main(int argc, char **argv)
{
    static dispatcher d;
    d.svc.name = "dispatcher";
    d.svc.usage = usage;
    int rc = rd_service_init(&d.svc, argc, argv);
    if (rc >= 0)
        return rc;
    char err[512];
    if (!loadCfg(d.svc.cfg, &d.c, err, sizeof(err)) || !rd_redis_parse_url(d.c.redis_url, &d.raddr, err, sizeof(err))) {
        fprintf(stderr, "redress-dispatcher: configuration: %s\n", err);
        return 2;
    }
    d.db.dsn = d.c.dsn;
    d.db.app = "redress-dispatcher";
    d.db.listen = "redress_org";
    if (d.svc.check_only) {
        printf("configuration ok\n");
        return 0;
    }
    metricsInit(&d);
    rd_service_signals();
    void *zctx = zmq_ctx_new();
    d.pull = rd_service_socket(zctx, ZMQ_PULL, d.c.classifier, false, 100000);
    d.sub = rd_service_socket(zctx, ZMQ_SUB, d.c.events, false, 100000);
    d.push = rd_service_socket(zctx, ZMQ_PUSH, d.c.push_bind, true, 100000);
    d.pub = rd_service_socket(zctx, ZMQ_PUB, d.c.pub_bind, true, 100000);
    if (!d.pull || !d.sub || !d.push || !d.pub)
        return 1;
    rd_http *http = rd_http_start(d.c.http_bind, (int)d.c.http_port, healthCheck, &d, err, sizeof(err));
    if (http == NULL) {
        rd_log(RD_LOG_ERROR, "cannot start HTTP endpoint", "error", err, NULL);
        return 1;
    }
    ready(&d);
    rd_log(RD_LOG_INFO, "dispatcher ready", "classifier", d.c.classifier, "events", d.c.events, "push", d.c.push_bind,
           "who", d.svc.who, NULL);
    int64_t nextRedrive = 0, nextQueue = 0, nextExpire = 0, nextReconcile = 0,
            nextOrg = rd_mono_us() + d.c.org_poll_ms * 1000;
    while (!rd_service_stopping()) {
        int64_t now = rd_mono_us();
        if (now >= nextReconcile || (d.need_reconcile && d.rd && d.db.conn)) {
            reconcile(&d);
            nextReconcile = rd_mono_us() + d.c.reconcile_ms * 1000;
        }
        if (now >= nextOrg) {
            if (pgEnsure(&d))
                orgReload(&d);
            nextOrg = now + d.c.org_poll_ms * 1000;
        }
        if (now >= nextRedrive) {
            drainSource(&d, FROM_REDRIVE, d.m.redriven);
            nextRedrive = rd_mono_us() + d.c.redrive_ms * 1000;
        }
        if (now >= nextExpire) {
            drainSource(&d, FROM_EXPIRED, NULL);
            nextExpire = rd_mono_us() + d.c.expire_ms * 1000;
        }
        if (now >= nextQueue || d.wake_queue) {
            d.wake_queue = false;
            drainSource(&d, FROM_QUEUE, NULL);
            nextQueue = rd_mono_us() + d.c.queue_ms * 1000;
        }
        zmq_pollitem_t items[3] = {{d.pull, 0, ZMQ_POLLIN, 0},
                                   {d.sub, 0, ZMQ_POLLIN, 0},
                                   {NULL, d.db.conn ? PQsocket(d.db.conn) : -1, ZMQ_POLLIN, 0}};
        int64_t next = nextQueue < nextRedrive ? nextQueue : nextRedrive;
        long timeout = (long)((next - rd_mono_us()) / 1000);
        if (timeout < 0)
            timeout = 0;
        if (timeout > 100)
            timeout = 100;
        int prc = zmq_poll(items, d.db.conn ? 3 : 2, timeout);
        if (prc < 0 && zmq_errno() != EINTR)
            break;
        /* every round, not only when the socket is readable: libpq also takes notifications in
         * while it reads the results of our own queries, and then the socket shows nothing */
        if (d.db.conn)
            pgNotifications(&d);
        if (items[1].revents & ZMQ_POLLIN)
            drainSub(&d);
        if (items[0].revents & ZMQ_POLLIN)
            drainPull(&d);
        flushSync(&d);
        if (d.pending.n > 0)
            flushPending(&d);
    }
    rd_log(RD_LOG_INFO, "dispatcher stopping", NULL);
    idsClear(&d.pending); /* still waiting in PostgreSQL: re-driven by whoever runs next */
    idsClear(&d.tosync);
    free(d.pending.v);
    free(d.tosync.v);
    rd_http_stop(&http);
    zmq_close(d.pull);
    zmq_close(d.sub);
    zmq_close(d.push);
    zmq_close(d.pub);
    zmq_ctx_term(zctx);
    if (d.db.conn)
        PQfinish(d.db.conn);
    if (d.rd)
        redisFree(d.rd);
    dp_org_free(&d.org);
    rd_service_done(&d.svc);
    rd_log(RD_LOG_INFO, "dispatcher stopped", NULL);
    return 0;
}
