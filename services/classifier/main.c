/*
 * redress-classifier -- decides what every new ticket is.
 *
 * Stateless and CPU-bound: run one process per core, on as many hosts as needed. Work arrives
 * two ways, and either alone is enough:
 *   - the fast path: intake's PUSH socket hands each created ticket to one connected classifier;
 *   - re-drive: every classifier.redrive_interval_ms each process claims the oldest tickets still
 *     'new' (older than classifier.redrive_min_age_ms), so tickets whose notification was lost --
 *     no classifier running, a process killed mid-batch, a restart -- are classified anyway.
 * Claims use FOR UPDATE SKIP LOCKED, so the two paths and any number of processes never classify
 * a ticket twice (see store.c).
 *
 * Rules live in PostgreSQL (classifier_rulesets); `redressctl rules load` stores a new active
 * ruleset and NOTIFYs redress_rules, and every classifier reloads it without a restart (a poll
 * catches notifications lost while disconnected). Models are files, loaded at start.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "classifier.h"
#include "rd_config.h"
#include "rd_envelope.h"
#include "rd_http.h"
#include "rd_log.h"
#include "rd_metrics.h"
#include "rd_pg.h"
#include "rd_service.h"
#include "rd_time.h"
#include "redress.pb-c.h"

#define MAX_PENDING 4096

typedef struct {
    const char *dsn, *intake, *push_bind, *pub_bind, *http_bind, *model_bt, *model_cat, *rules_file;
    int64_t batch, redrive_ms, min_age_ms, rules_poll_ms, http_port, repeat_days, dup_hours, dup_pct;
} cfg;

typedef struct {
    rd_service svc;
    cfg c;
    cl_context ctx;
    rd_ruleset *rules;
    char rules_version[64];
    rd_model *model_bt, *model_cat;
    rd_pglink db;
    void *pull, *push, *pub;
    char *pending[MAX_PENDING];
    int npending;
    struct {
        rd_metric *classified, *redriven, *batches, *errors, *major, *duplicates, *repeats, *reloads, *decide_s, *db_up,
            *dropped;
    } m;
} classifier;

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: redress-classifier [--config FILE] [--check-config] [--help] [--version]\n"
        "\n"
        "Classifies every new ticket: business type, category, severity and priority, with repeat and\n"
        "duplicate links. Rules (from PostgreSQL, hot-reloaded) override the models (files).\n"
        "Run one process per core; they share the work and never classify a ticket twice.\n"
        "\n"
        "Configuration keys (environment REDRESS_<KEY> overrides, e.g. REDRESS_PG_DSN):\n"
        "  pg.dsn                              libpq connection string\n"
        "  classifier.intake_endpoint          intake's PUSH endpoint(s), comma-separated [tcp://127.0.0.1:7402]\n"
        "  classifier.push_bind                PUSH of classified tickets to the dispatcher [tcp://127.0.0.1:7412]\n"
        "  classifier.pub_bind                 PUB of every classification            [tcp://127.0.0.1:7413]\n"
        "  classifier.batch                    tickets per transaction                 [256]\n"
        "  classifier.redrive_interval_ms      how often to look for missed tickets    [2000]\n"
        "  classifier.redrive_min_age_ms       leave younger tickets to the fast path  [1000]\n"
        "  classifier.rules_poll_ms            re-check the active ruleset             [30000]\n"
        "  classifier.rules_file               ruleset used while none is stored in PostgreSQL []\n"
        "  classifier.model_business_type      model file (redress-train) for the type []\n"
        "  classifier.model_category           model file for the category             []\n"
        "  classifier.repeat_window_days       repeat: same customer, same category    [30]\n"
        "  classifier.duplicate_window_hours   duplicate: same customer, same text     [24]\n"
        "  classifier.duplicate_similarity_pct near-identical text threshold (Jaccard %%) [90]\n"
        "  classifier.http_bind, classifier.http_port  /healthz, /metrics     [127.0.0.1, 9402]\n"
        "  internal.curve_key_file             cluster key: CURVE on the internal links [\"\"]\n"
        "  log.level                           debug|info|warn|error                   [info]\n");
}

static bool loadCfg(rd_config *f, cfg *c, char *err, int errlen)
{
    c->dsn = rd_config_str(f, "pg.dsn", "host=127.0.0.1 port=55432 dbname=redress user=redress");
    c->intake = rd_config_str(f, "classifier.intake_endpoint", "tcp://127.0.0.1:7402");
    c->push_bind = rd_config_str(f, "classifier.push_bind", "tcp://127.0.0.1:7412");
    c->pub_bind = rd_config_str(f, "classifier.pub_bind", "tcp://127.0.0.1:7413");
    c->http_bind = rd_config_str(f, "classifier.http_bind", "127.0.0.1");
    c->model_bt = rd_config_str(f, "classifier.model_business_type", "");
    c->model_cat = rd_config_str(f, "classifier.model_category", "");
    c->rules_file = rd_config_str(f, "classifier.rules_file", "");
    return rd_config_int(f, "classifier.batch", 256, 1, 10000, &c->batch, err, errlen) &&
           rd_config_int(f, "classifier.redrive_interval_ms", 2000, 10, 3600000, &c->redrive_ms, err, errlen) &&
           rd_config_int(f, "classifier.redrive_min_age_ms", 1000, 0, 3600000, &c->min_age_ms, err, errlen) &&
           rd_config_int(f, "classifier.rules_poll_ms", 30000, 100, 3600000, &c->rules_poll_ms, err, errlen) &&
           rd_config_int(f, "classifier.repeat_window_days", 30, 0, 3650, &c->repeat_days, err, errlen) &&
           rd_config_int(f, "classifier.duplicate_window_hours", 24, 0, 24 * 365, &c->dup_hours, err, errlen) &&
           rd_config_int(f, "classifier.duplicate_similarity_pct", 90, 1, 100, &c->dup_pct, err, errlen) &&
           rd_config_int(f, "classifier.http_port", 9402, 0, 65535, &c->http_port, err, errlen);
}

/* ---- rules --------------------------------------------------------------------------------- */

static void rulesInstall(classifier *cl, rd_ruleset *rs, const char *origin)
{
    rd_rules_destroy(&cl->rules);
    cl->rules = rs;
    cl->ctx.rules = rs;
    snprintf(cl->rules_version, sizeof(cl->rules_version), "%s", rs ? rd_rules_version(rs) : "");
    char n[16];
    snprintf(n, sizeof(n), "%d", rs ? rd_rules_count(rs) : 0);
    rd_metric_inc(cl->m.reloads, 1);
    rd_log(RD_LOG_INFO, "rules loaded", "version", cl->rules_version, "rules", n, "from", origin, NULL);
}

/* Takes the active ruleset from PostgreSQL when it differs from ours; falls back to the file. */
static void rulesRefresh(classifier *cl)
{
    char *json = NULL, *version = NULL, err[512];
    if (!cl_store_active_rules(cl->db.conn, &json, &version, err, sizeof(err))) {
        rd_log(RD_LOG_WARN, "cannot read the active ruleset", "error", err, NULL);
        return;
    }
    if (json == NULL) {
        if (cl->rules == NULL && cl->c.rules_file[0]) {
            size_t len;
            char *buf = rd_read_file(cl->c.rules_file, &len);
            rd_ruleset *rs = buf ? rd_rules_parse(buf, len, err, sizeof(err)) : NULL;
            if (rs)
                rulesInstall(cl, rs, cl->c.rules_file);
            else
                rd_log(RD_LOG_ERROR, "cannot load the rules file", "path", cl->c.rules_file, "error",
                       buf ? err : "unreadable", NULL);
            free(buf);
        }
        return;
    }
    /* version is the content hash, so an unchanged ruleset is not parsed again */
    if (strcmp(version, cl->rules_version) != 0) {
        rd_ruleset *rs = rd_rules_parse(json, strlen(json), err, sizeof(err));
        if (rs)
            rulesInstall(cl, rs, "postgresql");
        else
            rd_log(RD_LOG_ERROR, "stored ruleset does not parse; keeping the current one", "version", version, "error",
                   err, NULL);
    }
    free(json);
    free(version);
}

/* ---- PostgreSQL ---------------------------------------------------------------------------- */

static void pgDrop(classifier *cl, const char *why)
{
    rd_pglink_drop(&cl->db, why);
    rd_metric_set(cl->m.db_up, 0);
}

static bool pgEnsure(classifier *cl)
{
    bool fresh;
    if (!rd_pglink_ensure(&cl->db, &fresh))
        return false;
    if (fresh) {
        rd_metric_set(cl->m.db_up, 1);
        rulesRefresh(cl); /* we may have missed notifications while away */
    }
    return true;
}

static void pgNotifications(classifier *cl)
{
    if (rd_pglink_notified(&cl->db))
        rulesRefresh(cl);
    if (cl->db.conn == NULL)
        rd_metric_set(cl->m.db_up, 0);
}

/* ---- one batch ----------------------------------------------------------------------------- */

static void handOff(classifier *cl, const cl_decision *d, int64_t seq)
{
    Redress__V1__TicketEvent ev = REDRESS__V1__TICKET_EVENT__INIT;
    ev.seq = seq;
    ev.ticket_id = (char *)d->ticket_id;
    ev.kind = "classify";
    ev.state = "classified";
    ev.at_ms = rd_now_ms();
    uint8_t buf[256];
    size_t len = redress__v1__ticket_event__get_packed_size(&ev);
    if (len > sizeof(buf))
        return;
    redress__v1__ticket_event__pack(&ev, buf);
    if (zmq_send(cl->push, buf, len, ZMQ_DONTWAIT) < 0)
        rd_metric_inc(cl->m.dropped, 1);
    zmq_send(cl->pub, buf, len, ZMQ_DONTWAIT);
}

/* Claims, decides and writes one batch. Returns how many tickets it classified, -1 on error. */
static int classifyBatch(classifier *cl, const char *const *ids, int n)
{
    if (!pgEnsure(cl))
        return -1;
    char err[512];
    cl_batch claimed, hist;
    if (!cl_store_claim(cl->db.conn, ids, n, (int)cl->c.batch, cl->c.min_age_ms, &claimed, err, sizeof(err))) {
        pgDrop(cl, err);
        return -1;
    }
    if (claimed.n == 0) {
        rd_pg_command(cl->db.conn, "ROLLBACK", err, sizeof(err));
        cl_batch_free(&claimed);
        return 0;
    }
    int64_t window =
        cl->ctx.repeat_window_us > cl->ctx.duplicate_window_us ? cl->ctx.repeat_window_us : cl->ctx.duplicate_window_us;
    if (!cl_store_history(cl->db.conn, &claimed, window, &hist, err, sizeof(err))) {
        cl_batch_free(&claimed);
        pgDrop(cl, err);
        return -1;
    }
    int64_t t0 = rd_mono_us();
    cl_decision *d = calloc((size_t)claimed.n, sizeof(*d));
    int64_t *seqs = calloc((size_t)claimed.n, sizeof(*seqs));
    if (d == NULL || seqs == NULL)
        abort();
    for (int i = 0; i < claimed.n; i++)
        cl_decide(&cl->ctx, &claimed.v[i], hist.v, hist.n, &d[i]);
    rd_metric_observe(cl->m.decide_s, (double)(rd_mono_us() - t0) / 1e6);
    bool ok = cl_store_write(cl->db.conn, d, claimed.n, cl->rules_version, cl->svc.who, seqs, err, sizeof(err));
    int done = 0;
    if (ok) {
        for (int i = 0; i < claimed.n; i++) {
            if (seqs[i] == 0)
                continue;
            done++;
            rd_metric_inc(cl->m.major, d[i].major);
            rd_metric_inc(cl->m.duplicates, d[i].duplicate_of[0] != '\0');
            rd_metric_inc(cl->m.repeats, d[i].repeat_of[0] != '\0');
            handOff(cl, &d[i], seqs[i]);
        }
        rd_metric_inc(cl->m.classified, (uint64_t)done);
        rd_metric_inc(cl->m.batches, 1);
    } else {
        rd_metric_inc(cl->m.errors, 1);
        rd_log(RD_LOG_ERROR, "cannot store classifications", "error", err, NULL);
        if (PQstatus(cl->db.conn) == CONNECTION_OK)
            rd_pg_command(cl->db.conn, "ROLLBACK", err, sizeof(err));
        else
            pgDrop(cl, err);
    }
    free(d);
    free(seqs);
    cl_batch_free(&claimed);
    cl_batch_free(&hist);
    return ok ? done : -1;
}

static void flushPending(classifier *cl)
{
    int off = 0;
    while (off < cl->npending) {
        int n = cl->npending - off;
        if (n > cl->c.batch)
            n = (int)cl->c.batch;
        if (classifyBatch(cl, (const char *const *)cl->pending + off, n) < 0)
            break; /* the re-drive will find them */
        off += n;
    }
    for (int i = 0; i < cl->npending; i++)
        free(cl->pending[i]);
    cl->npending = 0;
}

static void redrive(classifier *cl)
{
    int n;
    while ((n = classifyBatch(cl, NULL, 0)) > 0 && !rd_service_stopping()) {
        rd_metric_inc(cl->m.redriven, (uint64_t)n);
        if (n < cl->c.batch)
            break;
    }
}

/* Reads every waiting notification from intake; keeps the ids of created tickets. */
static void drainPull(classifier *cl)
{
    uint8_t buf[512];
    int n;
    while (cl->npending < MAX_PENDING && (n = zmq_recv(cl->pull, buf, sizeof(buf), ZMQ_DONTWAIT)) >= 0) {
        if (n > (int)sizeof(buf))
            continue;
        rd_ticket_event ev;
        if (rd_ticket_event_decode(buf, (size_t)n, &ev) && strcmp(ev.kind, "created") == 0)
            cl->pending[cl->npending++] = strdup(ev.ticket_id);
    }
}

/* ---- setup --------------------------------------------------------------------------------- */

static bool healthCheck(void *arg, char *detail, size_t len)
{
    classifier *cl = arg;
    bool up = cl->db.conn != NULL;
    snprintf(detail, len, "%s; rules %s", up ? "ok: PostgreSQL connected" : "PostgreSQL unreachable",
             cl->rules_version[0] ? cl->rules_version : "none");
    return up;
}

static void metricsInit(classifier *cl)
{
    static const double secs[] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1};
    cl->m.classified = rd_metric_counter("redress_classifier_tickets_total", "Tickets classified");
    cl->m.redriven = rd_metric_counter("redress_classifier_redriven_total", "Tickets found by re-drive");
    cl->m.batches = rd_metric_counter("redress_classifier_batches_total", "Transactions committed");
    cl->m.errors = rd_metric_counter("redress_classifier_errors_total", "Batches that failed to store");
    cl->m.major = rd_metric_counter("redress_classifier_major_total", "Tickets classified major");
    cl->m.duplicates = rd_metric_counter("redress_classifier_duplicates_total", "Tickets linked as duplicates");
    cl->m.repeats = rd_metric_counter("redress_classifier_repeats_total", "Tickets linked as repeats");
    cl->m.reloads = rd_metric_counter("redress_classifier_rules_loads_total", "Rulesets loaded");
    cl->m.decide_s = rd_metric_histogram("redress_classifier_decide_seconds", "Decision time per batch", secs, 9);
    cl->m.db_up = rd_metric_gauge("redress_classifier_db_up", "1 while connected to PostgreSQL");
    cl->m.dropped = rd_metric_counter("redress_classifier_handoff_dropped_total", "Notifications not delivered");
}

static rd_model *loadModel(const char *path)
{
    if (path == NULL || path[0] == '\0')
        return NULL;
    char err[512];
    rd_model *m = rd_model_load(path, err, sizeof(err));
    if (m == NULL)
        rd_log(RD_LOG_ERROR, "cannot load model", "path", path, "error", err, NULL);
    else
        rd_log(RD_LOG_INFO, "model loaded", "path", path, "version", rd_model_version(m), NULL);
    return m;
}

int main(int argc, char **argv)
{
    static classifier cl;
    cl.svc.name = "classifier";
    cl.svc.usage = usage;
    int rc0 = rd_service_init(&cl.svc, argc, argv);
    if (rc0 >= 0)
        return rc0;
    char err[512];
    if (!loadCfg(cl.svc.cfg, &cl.c, err, sizeof(err))) {
        fprintf(stderr, "redress-classifier: configuration: %s\n", err);
        return 2;
    }
    cl.db.dsn = cl.c.dsn;
    cl.db.app = "redress-classifier";
    cl.db.listen = "redress_rules";
    cl.model_bt = loadModel(cl.c.model_bt);
    cl.model_cat = loadModel(cl.c.model_cat);
    if ((cl.c.model_bt[0] && !cl.model_bt) || (cl.c.model_cat[0] && !cl.model_cat))
        return 2;
    if (cl.svc.check_only) {
        printf("configuration ok\n");
        return 0;
    }
    cl.ctx.model_business_type = cl.model_bt;
    cl.ctx.model_category = cl.model_cat;
    cl.ctx.repeat_window_us = cl.c.repeat_days * 86400LL * 1000000;
    cl.ctx.duplicate_window_us = cl.c.dup_hours * 3600LL * 1000000;
    cl.ctx.duplicate_similarity = (double)cl.c.dup_pct / 100.0;
    metricsInit(&cl);
    rd_service_signals();
    void *zctx = zmq_ctx_new();
    cl.pull = rd_service_socket(zctx, ZMQ_PULL, cl.c.intake, false, 100000);
    cl.push = rd_service_socket(zctx, ZMQ_PUSH, cl.c.push_bind, true, 100000);
    cl.pub = rd_service_socket(zctx, ZMQ_PUB, cl.c.pub_bind, true, 100000);
    if (!cl.pull || !cl.push || !cl.pub)
        return 1;
    rd_http *http = rd_http_start(cl.c.http_bind, (int)cl.c.http_port, healthCheck, &cl, err, sizeof(err));
    if (http == NULL) {
        rd_log(RD_LOG_ERROR, "cannot start HTTP endpoint", "error", err, NULL);
        return 1;
    }
    pgEnsure(&cl);
    rd_log(RD_LOG_INFO, "classifier ready", "intake", cl.c.intake, "push", cl.c.push_bind, "who", cl.svc.who, NULL);
    int64_t nextRedrive = 0, nextPoll = rd_mono_us() + cl.c.rules_poll_ms * 1000;
    while (!rd_service_stopping()) {
        int64_t now = rd_mono_us();
        if (now >= nextRedrive) {
            redrive(&cl);
            nextRedrive = rd_mono_us() + cl.c.redrive_ms * 1000;
        }
        if (now >= nextPoll) {
            if (pgEnsure(&cl))
                rulesRefresh(&cl);
            nextPoll = now + cl.c.rules_poll_ms * 1000;
        }
        zmq_pollitem_t items[2] = {{cl.pull, 0, ZMQ_POLLIN, 0},
                                   {NULL, cl.db.conn ? PQsocket(cl.db.conn) : -1, ZMQ_POLLIN, 0}};
        long timeout = (long)((nextRedrive - rd_mono_us()) / 1000);
        if (timeout < 0)
            timeout = 0;
        if (timeout > 500)
            timeout = 500;
        int rc = zmq_poll(items, cl.db.conn ? 2 : 1, timeout);
        if (rc < 0 && zmq_errno() != EINTR)
            break;
        /* every round, not only when the socket is readable: libpq also takes notifications in
         * while it reads the results of our own queries, and then the socket shows nothing */
        if (cl.db.conn)
            pgNotifications(&cl);
        if (items[0].revents & ZMQ_POLLIN) {
            drainPull(&cl);
            flushPending(&cl);
        }
    }
    rd_log(RD_LOG_INFO, "classifier stopping", NULL);
    for (int i = 0; i < cl.npending; i++)
        free(cl.pending[i]); /* still 'new' in PostgreSQL: re-driven by whoever runs next */
    rd_http_stop(&http);
    zmq_close(cl.pull);
    zmq_close(cl.push);
    zmq_close(cl.pub);
    zmq_ctx_term(zctx);
    if (cl.db.conn)
        PQfinish(cl.db.conn);
    rd_rules_destroy(&cl.rules);
    rd_model_destroy(&cl.model_bt);
    rd_model_destroy(&cl.model_cat);
    rd_service_done(&cl.svc);
    rd_log(RD_LOG_INFO, "classifier stopped", NULL);
    return 0;
}
