/*
 * redress-reporting -- KPIs, rollups, BI views and the dashboard.
 *
 * Nearly everything is SQL (deploy/sql/0006_reporting.sql): statement triggers on ticket_history
 * and sla_events queue every changed ticket in reporting.queue (8 partitions by ticket), in the
 * writer's own transaction; reporting.apply_queue() takes a batch off one partition and refreshes
 * those tickets' facts and the hour, day and month rollups in the same transaction. This service
 * is the loop around it:
 *
 *  - on start (and every monthly_check_ms) it brings reporting.settings in line with its
 *    configuration (time zone, business calendar): when they differ it rewrites them, rebuilds
 *    the calendar's working intervals (reporting.work_intervals, computed here with rd_calendar)
 *    and queues every ticket, all in one transaction; otherwise it extends the intervals when
 *    their horizon comes near. An unknown calendar stops it at start.
 *  - it applies the queue partition by partition, each in its own transaction (asynchronous
 *    commit: a lost commit loses the queue deletion with it, so it is simply applied again), as
 *    long as there is any, then sleeps poll_ms. Any number of processes may run: a partition is
 *    applied by one at a time (advisory lock 7427000 + part).
 *  - every sweep_interval_ms it looks for tickets whose facts are behind the raw tables
 *    (reporting.sweep over the last two intervals' history and SLA events) and queues them.
 *  - every monthly_check_ms, once caught up, it writes last month's report
 *    (reporting.monthly_reports) if nobody has.
 *  - the HTTP side door has /healthz (and /health), /metrics and the dashboard (dashboard.c).
 */
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dashboard.h"
#include "rd_http.h"
#include "rd_log.h"
#include "rd_metrics.h"
#include "rd_pg.h"
#include "rd_service.h"
#include "rd_time.h"
#include "reporting.h"

#define DEPTH_EVERY_US   INT64_C(5000000) /* queue depth gauge refresh */
#define SUMMARY_EVERY_US INT64_C(60000000)

typedef struct {
    const char *dsn, *time_zone, *calendar, *http_bind;
    int64_t batch, poll_ms, sweep_ms, http_port, monthly_ms;
} cfg;

typedef struct {
    rd_service svc;
    cfg c;
    rd_pglink db;
    atomic_bool db_up;
    atomic_llong depth;
    bool synced;
    int64_t sync_backoff_ms, sync_retry_us;
    int64_t part_backoff_ms[RP_QUEUE_PARTS], part_retry_us[RP_QUEUE_PARTS];
    int part_start;
    struct {
        int64_t events, tickets, rollups, batches;
    } since; /* for the periodic summary line */
    struct {
        rd_metric *events, *tickets, *rollups, *batches, *latency, *depth, *sweeps, *sweep_queued, *errors, *monthly,
            *resyncs, *intervals, *db_up;
    } m;
} reporting;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: redress-reporting [--config FILE] [--check-config] [--help] [--version]\n"
            "\n"
            "Keeps the reporting tables of deploy/sql/0006_reporting.sql up to date: per-ticket facts and\n"
            "hourly, daily and monthly rollups (received, first response, resolution, SLA, escalation,\n"
            "return visits and satisfaction) that the BI views (docs/bi.md) read; writes each month's\n"
            "report; serves the dashboard. Input is reporting.queue, filled by triggers on ticket_history\n"
            "and sla_events; a periodic sweep finds anything missed. Run several; they share the queue.\n"
            "\n"
            "Configuration keys (environment REDRESS_<KEY> overrides, e.g. REDRESS_REPORTING_CALENDAR):\n"
            "  pg.dsn                          libpq connection string\n"
            "                                  [host=127.0.0.1 port=55432 dbname=redress user=redress]\n"
            "  reporting.time_zone             local time of the hour/day/month buckets  [Asia/Shanghai]\n"
            "  reporting.calendar              business calendar (business_calendars id) of the business-time\n"
            "                                  figures; \"\" = 24/7. Unknown: the service refuses to start [\"\"]\n"
            "  reporting.batch                 queued events per transaction at most      [5000]\n"
            "  reporting.poll_ms               sleep when the queue is empty              [100]\n"
            "  reporting.sweep_interval_ms     look for missed events (each window twice) [60000]\n"
            "  reporting.monthly_check_ms      last month's report, calendar horizon and settings\n"
            "                                  checks (also at start)                     [600000]\n"
            "  reporting.http_bind, reporting.http_port  /healthz, /health, /metrics, dashboard /\n"
            "                                                                             [127.0.0.1, 9405]\n"
            "  internal.curve_key_file         cluster key: CURVE on the internal links [\"\"]\n"
            "  log.level                       debug|info|warn|error                      [info]\n"
            "\n"
            "A change of time zone or calendar (or a calendar reloaded with redressctl) rebuilds the\n"
            "working intervals and recomputes every ticket's facts and rollups.\n");
}

static bool loadCfg(rd_config *f, cfg *c, char *err, int errlen)
{
    c->dsn = rd_config_str(f, "pg.dsn", "host=127.0.0.1 port=55432 dbname=redress user=redress");
    c->time_zone = rd_config_str(f, "reporting.time_zone", "Asia/Shanghai");
    c->calendar = rd_config_str(f, "reporting.calendar", "");
    c->http_bind = rd_config_str(f, "reporting.http_bind", "127.0.0.1");
    if (c->time_zone[0] == '\0') {
        snprintf(err, (size_t)errlen, "reporting.time_zone: must not be empty (e.g. Asia/Shanghai)");
        return false;
    }
    if (strlen(c->calendar) > 64) {
        snprintf(err, (size_t)errlen, "reporting.calendar: a calendar id has at most 64 characters");
        return false;
    }
    for (const char *p = c->calendar; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || strchr("_.:-", *p))) {
            snprintf(err, (size_t)errlen, "reporting.calendar: \"%s\" is not a calendar id ([A-Za-z0-9_.:-])",
                     c->calendar);
            return false;
        }
    return rd_config_int(f, "reporting.batch", 5000, 1, 1000000, &c->batch, err, errlen) &&
           rd_config_int(f, "reporting.poll_ms", 100, 1, 60000, &c->poll_ms, err, errlen) &&
           rd_config_int(f, "reporting.sweep_interval_ms", 60000, 100, 86400000, &c->sweep_ms, err, errlen) &&
           rd_config_int(f, "reporting.monthly_check_ms", 600000, 100, 86400000, &c->monthly_ms, err, errlen) &&
           rd_config_int(f, "reporting.http_port", 9405, 0, 65535, &c->http_port, err, errlen);
}

/* Sleeps up to ms, less when a signal arrives (SIGTERM). */
static void nap(int64_t ms)
{
    if (ms > 0 && !rd_service_stopping())
        poll(NULL, 0, (int)ms);
}

static void num(char *buf, size_t len, int64_t v)
{
    snprintf(buf, len, "%lld", (long long)v);
}

/* ---- connection ------------------------------------------------------------------------------- */

static void pgDrop(reporting *r, const char *why)
{
    rd_pglink_drop(&r->db, why);
    atomic_store(&r->db_up, false);
    rd_metric_set(r->m.db_up, 0);
}

/* After a failed statement: forget the connection when it is the connection that failed. */
static void pgFailed(reporting *r, const char *err)
{
    if (r->db.conn && PQstatus(r->db.conn) != CONNECTION_OK)
        pgDrop(r, err);
}

static bool pgEnsure(reporting *r)
{
    bool fresh;
    if (!rd_pglink_ensure(&r->db, &fresh)) {
        atomic_store(&r->db_up, false);
        rd_metric_set(r->m.db_up, 0);
        return false;
    }
    if (fresh) {
        char err[512];
        if (!rp_store_prepare(r->db.conn, err, sizeof(err))) {
            rd_log(RD_LOG_ERROR, "cannot prepare statements (is deploy/sql/0006_reporting.sql applied?)", "error", err,
                   NULL);
            rd_metric_inc(r->m.errors, 1);
            pgDrop(r, err);
            return false;
        }
        atomic_store(&r->db_up, true);
        rd_metric_set(r->m.db_up, 1);
    }
    return true;
}

/* ---- settings --------------------------------------------------------------------------------- */

/* Returns false when the configuration cannot work (the caller stops). */
static bool syncSettings(reporting *r, bool at_start)
{
    char err[1024];
    rp_sync_result res;
    int64_t t0 = rd_mono_us();
    rp_sync_status st =
        rp_settings_sync(r->db.conn, r->c.time_zone, r->c.calendar, rd_now_ms(), &res, err, sizeof(err));
    if (st == RP_SYNC_BAD_CONFIG) {
        rd_metric_inc(r->m.errors, 1);
        if (at_start) {
            rd_log(RD_LOG_ERROR, "cannot start: bad reporting configuration", "error", err, NULL);
            fprintf(stderr, "redress-reporting: %s\n", err);
            return false;
        }
        rd_log(RD_LOG_ERROR, "reporting settings cannot be checked; keeping the current ones", "error", err, NULL);
        return true;
    }
    if (st == RP_SYNC_FAILED) {
        rd_metric_inc(r->m.errors, 1);
        rd_log(RD_LOG_ERROR, "cannot check the reporting settings (retrying)", "error", err, NULL);
        pgFailed(r, err);
        r->sync_backoff_ms = rd_backoff_next(r->sync_backoff_ms, 100, 5000);
        r->sync_retry_us = rd_mono_us() + r->sync_backoff_ms * 1000;
        return true;
    }
    r->sync_backoff_ms = 0;
    r->synced = true;
    char iv[24], tk[24], ms[24];
    num(iv, sizeof(iv), res.intervals);
    num(tk, sizeof(tk), res.tickets_queued);
    num(ms, sizeof(ms), (rd_mono_us() - t0) / 1000);
    rd_metric_inc(r->m.intervals, (uint64_t)res.intervals);
    if (res.resynced) {
        rd_metric_inc(r->m.resyncs, 1);
        rd_log(RD_LOG_INFO, "reporting settings changed: working intervals rebuilt, every ticket queued for recompute",
               "time_zone", r->c.time_zone, "calendar", r->c.calendar[0] ? r->c.calendar : "(24/7)", "was",
               res.old_desc, "intervals", iv, "tickets_queued", tk, "rollups",
               res.rollups_reset ? "emptied (new time zone), refilled from the queue" : "kept", "ms", ms, NULL);
    } else if (res.extended) {
        rd_log(RD_LOG_INFO, "working intervals extended", "calendar", r->c.calendar, "intervals", iv, "ms", ms, NULL);
    } else if (at_start) {
        rd_log(RD_LOG_INFO, "reporting settings up to date", "time_zone", r->c.time_zone, "calendar",
               r->c.calendar[0] ? r->c.calendar : "(24/7)", NULL);
    }
    return true;
}

/* ---- the queue -------------------------------------------------------------------------------- */

/* One turn over the partitions. Returns the events applied; *caught_up is true when every
 * partition was read to its end (fewer than a batch left) without error. */
static int64_t applyRound(reporting *r, bool *caught_up)
{
    char err[1024];
    int64_t total = 0;
    *caught_up = !rd_service_stopping();
    for (int i = 0; i < RP_QUEUE_PARTS && r->db.conn && !rd_service_stopping(); i++) {
        int part = (r->part_start + i) % RP_QUEUE_PARTS;
        int64_t now = rd_mono_us();
        if (now < r->part_retry_us[part]) {
            *caught_up = false;
            continue;
        }
        rp_applied a;
        if (!rp_apply(r->db.conn, part, (int)r->c.batch, &a, err, sizeof(err))) {
            char p[8];
            snprintf(p, sizeof(p), "%d", part);
            rd_metric_inc(r->m.errors, 1);
            *caught_up = false;
            if (r->db.conn && PQstatus(r->db.conn) != CONNECTION_OK) {
                pgDrop(r, err);
                break;
            }
            /* a refused batch: this partition waits, the others go on */
            r->part_backoff_ms[part] = rd_backoff_next(r->part_backoff_ms[part], 100, 5000);
            r->part_retry_us[part] = rd_mono_us() + r->part_backoff_ms[part] * 1000;
            rd_log(RD_LOG_ERROR, "cannot apply a queue partition (retrying it later)", "part", p, "error", err, NULL);
            continue;
        }
        r->part_backoff_ms[part] = 0;
        if (a.events > 0) {
            rd_metric_inc(r->m.events, (uint64_t)a.events);
            rd_metric_inc(r->m.tickets, (uint64_t)a.tickets);
            rd_metric_inc(r->m.rollups, (uint64_t)a.rollup_rows);
            rd_metric_inc(r->m.batches, 1);
            rd_metric_observe(r->m.latency, (double)(rd_mono_us() - now) / 1e6);
            r->since.events += a.events;
            r->since.tickets += a.tickets;
            r->since.rollups += a.rollup_rows;
            r->since.batches++;
            total += a.events;
        }
        if (a.events >= r->c.batch)
            *caught_up = false;
    }
    r->part_start = (r->part_start + 1) % RP_QUEUE_PARTS;
    return total;
}

static void summary(reporting *r)
{
    if (r->since.batches == 0)
        return;
    char e[24], t[24], x[24], b[24], d[24];
    num(e, sizeof(e), r->since.events);
    num(t, sizeof(t), r->since.tickets);
    num(x, sizeof(x), r->since.rollups);
    num(b, sizeof(b), r->since.batches);
    num(d, sizeof(d), (int64_t)atomic_load(&r->depth));
    rd_log(RD_LOG_INFO, "applied", "events", e, "tickets", t, "rollup_rows", x, "batches", b, "queue_depth", d, NULL);
    memset(&r->since, 0, sizeof(r->since));
}

/* ---- periodic work ---------------------------------------------------------------------------- */

static void sweep(reporting *r)
{
    char err[1024];
    /* a little less than the interval: processes started together still sweep once per interval */
    int64_t n = rp_sweep(r->db.conn, r->c.sweep_ms * 9 / 10, err, sizeof(err));
    if (n == -2)
        return;
    if (n < 0) {
        rd_metric_inc(r->m.errors, 1);
        rd_log(RD_LOG_ERROR, "sweep for missed events failed", "error", err, NULL);
        pgFailed(r, err);
        return;
    }
    rd_metric_inc(r->m.sweeps, 1);
    rd_metric_inc(r->m.sweep_queued, (uint64_t)n);
    char q[24];
    num(q, sizeof(q), n);
    rd_log(n > 0 ? RD_LOG_WARN : RD_LOG_DEBUG, n > 0 ? "sweep found tickets behind the raw tables: queued" : "sweep",
           "tickets", q, NULL);
}

static void queueDepth(reporting *r)
{
    char err[1024];
    int64_t n = rp_queue_depth(r->db.conn, err, sizeof(err));
    if (n < 0) {
        rd_metric_inc(r->m.errors, 1);
        rd_log(RD_LOG_WARN, "cannot read the queue depth", "error", err, NULL);
        pgFailed(r, err);
        return;
    }
    atomic_store(&r->depth, (long long)n);
    rd_metric_set(r->m.depth, n);
}

/* false: not done (a failure); try again at the next turn. */
static bool monthly(reporting *r)
{
    char err[1024], month[16];
    int64_t n = rp_monthly(r->db.conn, r->svc.who, month, err, sizeof(err));
    if (n < 0) {
        rd_metric_inc(r->m.errors, 1);
        rd_log(RD_LOG_ERROR, "cannot write the monthly report", "error", err, NULL);
        pgFailed(r, err);
        return false;
    }
    if (n > 0) {
        char rows[24];
        num(rows, sizeof(rows), n);
        rd_metric_inc(r->m.monthly, (uint64_t)n);
        rd_log(RD_LOG_INFO, "monthly report written", "month", month, "rows", rows, "by", r->svc.who, NULL);
    }
    return true;
}

/* ---- HTTP ------------------------------------------------------------------------------------- */

static bool healthCheck(void *arg, char *detail, size_t len)
{
    reporting *r = arg;
    bool up = atomic_load(&r->db_up);
    snprintf(detail, len, "%s; queue depth %lld", up ? "PostgreSQL connected" : "PostgreSQL unreachable",
             (long long)atomic_load(&r->depth));
    return up;
}

/* /health: the same as rd_http's /healthz. */
static int healthRoute(void *arg, const char *path, const char *query, char **body, size_t *body_len,
                       const char **content_type)
{
    *content_type = "text/plain; charset=utf-8";
    char detail[256];
    int status = 404;
    if (strcmp(path, "/health") != 0)
        *body = strdup("not found\n");
    else if (healthCheck(arg, detail, sizeof(detail))) {
        status = 200;
        *body = strdup("ok\n");
    } else {
        status = 503;
        size_t l = strlen(detail);
        *body = malloc(l + 2);
        if (*body) {
            memcpy(*body, detail, l);
            memcpy(*body + l, "\n", 2);
        }
    }
    *body_len = *body ? strlen(*body) : 0;
    return status;
}

static void metricsInit(reporting *r)
{
    static const double lat[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    r->m.events = rd_metric_counter("redress_reporting_events_applied_total", "Queued events applied");
    r->m.tickets = rd_metric_counter("redress_reporting_tickets_refreshed_total", "Ticket facts refreshed");
    r->m.rollups = rd_metric_counter("redress_reporting_rollup_rows_changed_total", "Rollup rows changed");
    r->m.batches = rd_metric_counter("redress_reporting_batches_total", "Queue batches applied (with events)");
    r->m.latency = rd_metric_histogram("redress_reporting_batch_seconds", "Time to apply and commit one batch", lat,
                                       (int)(sizeof(lat) / sizeof(lat[0])));
    r->m.depth = rd_metric_gauge("redress_reporting_queue_depth",
                                 "Rows in reporting.queue (counted up to a million, estimated above)");
    r->m.sweeps = rd_metric_counter("redress_reporting_sweeps_total", "Sweeps for missed events run");
    r->m.sweep_queued = rd_metric_counter("redress_reporting_sweep_queued_total",
                                          "Tickets the sweep found behind the raw tables and queued");
    r->m.errors = rd_metric_counter("redress_reporting_errors_total", "Failed statements and transactions");
    r->m.monthly = rd_metric_counter("redress_reporting_monthly_reports_total", "Monthly report rows written");
    r->m.resyncs = rd_metric_counter("redress_reporting_resyncs_total",
                                     "Settings changes: intervals rebuilt and every ticket queued");
    r->m.intervals = rd_metric_counter("redress_reporting_work_intervals_written_total", "Working intervals written");
    r->m.db_up = rd_metric_gauge("redress_reporting_db_up", "1 while connected to PostgreSQL");
}

/* ---- main ------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static reporting r;
    r.svc.name = "reporting";
    r.svc.usage = usage;
    int rc = rd_service_init(&r.svc, argc, argv);
    if (rc >= 0)
        return rc;
    char err[512];
    if (!loadCfg(r.svc.cfg, &r.c, err, sizeof(err))) {
        fprintf(stderr, "redress-reporting: configuration: %s\n", err);
        rd_service_done(&r.svc);
        return 2;
    }
    if (r.svc.check_only) {
        printf("configuration ok\n");
        rd_service_done(&r.svc);
        return 0;
    }
    r.db.dsn = r.c.dsn;
    r.db.app = "redress-reporting";
    metricsInit(&r);
    rd_service_signals();
    srandom((unsigned)getpid() ^ (unsigned)rd_now_ms());
    rd_http *http = rd_http_start(r.c.http_bind, (int)r.c.http_port, healthCheck, &r, err, sizeof(err));
    if (http == NULL) {
        rd_log(RD_LOG_ERROR, "cannot start HTTP endpoint", "error", err, NULL);
        rd_service_done(&r.svc);
        return 1;
    }
    rd_http_route(http, "/health", healthRoute, &r);
    rp_dashboard *dash = rp_dashboard_start(http, r.c.dsn, err, sizeof(err));
    if (dash == NULL)
        rd_log(RD_LOG_ERROR, "cannot start the dashboard (the rest goes on)", "error", err, NULL);
    char port[16];
    num(port, sizeof(port), r.c.http_port);
    r.part_start = (int)(getpid() % RP_QUEUE_PARTS); /* processes start on different partitions */
    rd_log(RD_LOG_INFO, "reporting ready", "time_zone", r.c.time_zone, "calendar",
           r.c.calendar[0] ? r.c.calendar : "(24/7)", "http", r.c.http_port ? r.c.http_bind : "off", "port", port,
           "who", r.svc.who, NULL);

    int exitCode = 0;
    int64_t nextSweep = rd_mono_us() + r.c.sweep_ms * 1000, nextDepth = 0, nextCheck = 0, nextSummary = 0;
    int64_t monthlyDue = 0; /* since when last month's report is due (mono us); -1: not due */
    int sweepsPut = 0;      /* sweeps put off while the queue was behind */
    while (!rd_service_stopping()) {
        if (!pgEnsure(&r)) {
            nap(r.c.poll_ms < 100 ? r.c.poll_ms : 100);
            continue;
        }
        if (!r.synced) {
            if (rd_mono_us() < r.sync_retry_us) {
                nap(50);
                continue;
            }
            if (!syncSettings(&r, true)) {
                exitCode = 1;
                break;
            }
            if (!r.synced)
                continue;
            nextCheck = rd_mono_us() + r.c.monthly_ms * 1000;
        }
        bool caughtUp;
        int64_t roundStart = rd_mono_us();
        int64_t applied = applyRound(&r, &caughtUp);
        if (r.db.conn == NULL || rd_service_stopping())
            continue;
        int64_t mono = rd_mono_us();
        if (mono >= nextDepth) {
            queueDepth(&r);
            nextDepth = mono + DEPTH_EVERY_US;
        }
        /* While the queue is behind, the facts of the tickets queued are behind too: the sweep
         * would queue them all again. So it waits (its window only grows: nothing is missed) until
         * a round reads every partition to its end -- or ten intervals, if that never happens. */
        if (r.db.conn && mono >= nextSweep && (caughtUp || ++sweepsPut > 10)) {
            sweep(&r);
            sweepsPut = 0;
            nextSweep = mono + r.c.sweep_ms * 1000;
        } else if (mono >= nextSweep) {
            nextSweep = mono + r.c.sweep_ms * 1000;
        }
        if (r.db.conn && mono >= nextCheck) {
            syncSettings(&r, false); /* a reloaded calendar, the intervals' horizon */
            if (monthlyDue < 0)
                monthlyDue = mono;
            nextCheck = mono + r.c.monthly_ms * 1000;
        }
        /* Last month's report once a whole round that started after it came due has read every
         * partition to its end: whatever was committed before then is in the rollups. */
        if (r.db.conn && monthlyDue >= 0 && caughtUp && roundStart >= monthlyDue && monthly(&r))
            monthlyDue = -1;
        if (mono >= nextSummary) {
            summary(&r);
            nextSummary = mono + SUMMARY_EVERY_US;
        }
        if (applied == 0)
            nap(r.c.poll_ms);
    }
    rd_log(RD_LOG_INFO, "reporting stopping", NULL);
    summary(&r);
    rd_http_stop(&http); /* first: no request may reach the dashboard once it is freed */
    rp_dashboard_stop(&dash);
    if (r.db.conn)
        PQfinish(r.db.conn);
    r.db.conn = NULL;
    rd_log(RD_LOG_INFO, "reporting stopped", NULL);
    rd_service_done(&r.svc);
    return exitCode;
}
