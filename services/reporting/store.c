/*
 * store.c -- redress-reporting's PostgreSQL side. Each function is one transaction around the SQL
 * of deploy/sql/0006_reporting.sql: the settings and working intervals (under advisory lock
 * 7427100), one queue partition (reporting.apply_queue takes 7427000 + part itself), the sweep for
 * missed events (7427101), the monthly report, the queue depth.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rd_pg.h"
#include "reporting.h"

#define MS(x) "(extract(epoch FROM " x ") * 1000)::bigint"

static const rd_pg_statement STATEMENTS[] = {
    /* not the (f()).* form: that calls the function once per column */
    {"rp_apply", "SELECT events, tickets, rollup_rows FROM reporting.apply_queue($1::integer, $2::integer)"},
    {"rp_settings", "SELECT time_zone, COALESCE(calendar_id, ''), calendar_version FROM reporting.settings"},
    {"rp_calendar", "SELECT body::text, loaded_at::text FROM business_calendars WHERE id = $1"},
    {"rp_last_interval",
     "SELECT " MS("starts_at") ", " MS("ends_at") ", round(cum_s * 1000)::bigint FROM reporting.work_intervals"
                                                  " WHERE calendar_id = $1 ORDER BY starts_at DESC LIMIT 1"},
    {"rp_set_settings", "UPDATE reporting.settings SET time_zone = $1, calendar_id = NULLIF($2, ''),"
                        " calendar_version = $3, updated_at = now()"},
    {"rp_drop_intervals", "DELETE FROM reporting.work_intervals WHERE calendar_id = $1"},
    {"rp_queue_all", "INSERT INTO reporting.queue (part, ticket_id) SELECT hashtext(id::text) & 7, id FROM tickets"},
    {"rp_marks", "SELECT prev_seq, " MS("now() - swept_at") " FROM reporting.sweep_marks WHERE source = $1 FOR UPDATE"},
    {"rp_sweep", "SELECT reporting.sweep($1::bigint, $2::bigint)"},
    {"rp_advance_marks", "UPDATE reporting.sweep_marks SET prev_seq = cur_seq, swept_at = now(),"
                         " cur_seq = CASE source WHEN 'history' THEN (SELECT COALESCE(max(seq), 0) FROM ticket_history)"
                         "                       ELSE (SELECT COALESCE(max(seq), 0) FROM sla_events) END"},
    {"rp_prev_month", "SELECT to_char(date_trunc('month', now() AT TIME ZONE time_zone) - interval '1 month',"
                      " 'YYYY-MM-DD') FROM reporting.settings"},
    /* One row per department (the unowned '' is left out: '' is the whole organisation here) and
     * the organisation's row, summed over the month; only when the month has data and no report
     * yet. Two processes racing both pass the NOT EXISTS and one loses at ON CONFLICT. */
    {"rp_monthly",
     "INSERT INTO reporting.monthly_reports AS r (month, department, body, generated_by)"
     " SELECT x.month, x.department, x.body, $2 FROM ("
     "   SELECT $1::date AS month, '' AS department, to_jsonb(o) AS body, 0 AS ord FROM ("
     "     SELECT $1::date AS month, '' AS department, sum(k.received) AS received, sum(k.resolved) AS resolved,"
     "            sum(k.closed) AS closed, sum(k.reopened) AS reopened, sum(k.repeats) AS repeats,"
     "            reporting.rate(sum(k.repeats), sum(k.received)) AS repeat_rate, sum(k.duplicates) AS duplicates,"
     "            sum(k.major) AS major, sum(k.responded) AS responded, sum(k.frt_s_sum) AS frt_s_sum,"
     "            sum(k.frt_bs_sum) AS frt_bs_sum, sum(k.res_s_sum) AS res_s_sum, sum(k.res_bs_sum) AS res_bs_sum,"
     "            sum(k.sla_met) AS sla_met, sum(k.sla_breached) AS sla_breached,"
     "            reporting.rate(sum(k.sla_met), sum(k.sla_met + k.sla_breached)) AS on_time_rate,"
     "            sum(k.esc_l1 + k.esc_l2 + k.esc_l3 + k.esc_l4) AS escalations, sum(k.esc_l1) AS esc_l1,"
     "            sum(k.esc_l2) AS esc_l2, sum(k.esc_l3) AS esc_l3, sum(k.esc_l4) AS esc_l4,"
     "            sum(k.visits) AS visits, sum(k.satisfied) AS satisfied,"
     "            reporting.rate(sum(k.satisfied), sum(k.visits)) AS satisfaction_rate,"
     "            round(sum(k.frt_bs_sum) / NULLIF(sum(k.responded), 0) / 3600, 2) AS avg_frt_business_h,"
     "            round(sum(k.res_bs_sum) / NULLIF(sum(k.resolved), 0) / 3600, 2) AS avg_res_business_h,"
     "            round(sum(k.res_s_sum) / NULLIF(sum(k.resolved), 0) / 3600, 2) AS avg_res_h,"
     "            (SELECT count(DISTINCT m.agent) FROM reporting.rollup_month m"
     "              WHERE m.bucket = $1::date AND m.agent <> '') AS agents"
     "       FROM reporting.kpi_monthly k WHERE k.month = $1::date) o"
     "   UNION ALL"
     "   SELECT d.month, d.department, to_jsonb(d), 1 FROM reporting.department_scorecard d"
     "    WHERE d.month = $1::date AND d.department <> '') x"
     " WHERE NOT EXISTS (SELECT 1 FROM reporting.monthly_reports p WHERE p.month = $1::date)"
     "   AND EXISTS (SELECT 1 FROM reporting.rollup_month m WHERE m.bucket = $1::date)"
     " ORDER BY x.ord, x.department"
     " ON CONFLICT (month, department) DO NOTHING"},
    {"rp_queue_estimate",
     "SELECT GREATEST(reltuples, 0)::bigint FROM pg_class WHERE oid = 'reporting.queue'::regclass"},
    {"rp_queue_count", "SELECT count(*) FROM (SELECT 1 FROM reporting.queue LIMIT 1000001) q"},
};

#define QUEUE_COUNT_CAP 1000000

static void pgErr(char *err, int errlen, const char *what, PGconn *c)
{
    snprintf(err, (size_t)errlen, "%s: %s", what, PQerrorMessage(c));
    size_t l = strlen(err);
    while (l > 0 && (err[l - 1] == '\n' || err[l - 1] == ' '))
        err[--l] = '\0';
}

static void rollback(PGconn *c)
{
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
}

static bool commit(PGconn *c, char *err, int errlen)
{
    return rd_pg_command(c, "COMMIT", err, errlen);
}

/* A prepared statement expecting tuples (tuples = true) or a command. NULL + err on failure. */
static PGresult *run(PGconn *c, const char *name, int n, const char *const *params, bool tuples, char *err, int errlen)
{
    PGresult *r = PQexecPrepared(c, name, n, params, NULL, NULL, 0);
    if (PQresultStatus(r) != (tuples ? PGRES_TUPLES_OK : PGRES_COMMAND_OK)) {
        pgErr(err, errlen, name, c);
        PQclear(r);
        return NULL;
    }
    return r;
}

bool rp_store_prepare(PGconn *c, char *err, int errlen)
{
    /* UTC: loaded_at::text (the calendar version) must read the same in every process */
    if (!rd_pg_command(c, "SET TimeZone = 'UTC'", err, errlen))
        return false;
    return rd_pg_prepare(c, STATEMENTS, sizeof(STATEMENTS) / sizeof(STATEMENTS[0]), err, errlen);
}

/* ---- settings and working intervals ------------------------------------------------------------ */

/* "2015-01-01 00:00:00.000+00" */
static void fmtTs(char *out, size_t len, int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        s--;
    }
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(out, len, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* COPY of intervals into reporting.work_intervals (calendar ids are [A-Za-z0-9_.:-]: no escaping). */
static bool copyIntervals(PGconn *c, const char *cal, const rp_intervals *iv, char *err, int errlen)
{
    if (iv->n == 0)
        return true;
    PGresult *r = PQexec(c, "COPY reporting.work_intervals (calendar_id, starts_at, ends_at, cum_s) FROM STDIN");
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        pgErr(err, errlen, "COPY reporting.work_intervals", c);
        PQclear(r);
        return false;
    }
    PQclear(r);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    bool ok = buf != NULL;
    for (size_t i = 0; ok && i < iv->n; i++) {
        char a[80], b[80], line[256];
        fmtTs(a, sizeof(a), iv->v[i].start_ms);
        fmtTs(b, sizeof(b), iv->v[i].end_ms);
        int n = snprintf(line, sizeof(line), "%s\t%s\t%s\t%lld.%03lld\n", cal, a, b,
                         (long long)(iv->v[i].cum_ms / 1000), (long long)(iv->v[i].cum_ms % 1000));
        if (n <= 0 || (size_t)n >= sizeof(line)) {
            ok = false;
            break;
        }
        if (len + (size_t)n > cap) {
            ok = PQputCopyData(c, buf, (int)len) == 1;
            len = 0;
        }
        memcpy(buf + len, line, (size_t)n);
        len += (size_t)n;
    }
    if (ok && len > 0)
        ok = PQputCopyData(c, buf, (int)len) == 1;
    free(buf);
    if (PQputCopyEnd(c, ok ? NULL : "reporting: cannot build the interval rows") != 1)
        ok = false;
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        pgErr(err, errlen, "COPY reporting.work_intervals", c);
        ok = false;
    }
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
    return ok;
}

/* Builds and copies the intervals of cal for [from_ms, to_ms), continuing cum0_ms. */
static bool writeIntervals(PGconn *c, const char *cal_id, const rd_calendar *cal, int64_t from_ms, int64_t to_ms,
                           int64_t cum0_ms, int64_t *written, char *err, int errlen)
{
    rp_intervals iv = {0};
    long n = rp_intervals_build(cal, from_ms, to_ms, cum0_ms, &iv);
    if (n < 0) {
        snprintf(err, (size_t)errlen, "calendar %s: cannot compute its working intervals", cal_id);
        rp_intervals_free(&iv);
        return false;
    }
    bool ok = copyIntervals(c, cal_id, &iv, err, errlen);
    *written += ok ? (int64_t)iv.n : 0;
    rp_intervals_free(&iv);
    return ok;
}

rp_sync_status rp_settings_sync(PGconn *c, const char *time_zone, const char *calendar, int64_t now_ms,
                                rp_sync_result *res, char *err, int errlen)
{
    memset(res, 0, sizeof(*res));
    /* the time zone first, on its own: an unknown one is a configuration error, not a failure */
    const char *tzp[1] = {time_zone};
    PGresult *r = PQexecParams(c, "SELECT now() AT TIME ZONE $1", 1, NULL, tzp, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool bad = st != NULL && strcmp(st, "22023") == 0; /* invalid_parameter_value */
        if (bad)
            snprintf(err, (size_t)errlen, "reporting.time_zone \"%s\" is not a time zone PostgreSQL knows", time_zone);
        else
            pgErr(err, errlen, "time zone check", c);
        PQclear(r);
        return bad ? RP_SYNC_BAD_CONFIG : RP_SYNC_FAILED;
    }
    PQclear(r);

    rp_sync_status st = RP_SYNC_FAILED;
    rd_calendar *cal = NULL;
    PGresult *set = NULL, *cr = NULL, *last = NULL;
    char lock[64];
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)", RP_SETTINGS_LOCK);
    if (!rd_pg_command(c, "BEGIN", err, errlen) || !rd_pg_command(c, lock, err, errlen))
        goto done;
    if ((set = run(c, "rp_settings", 0, NULL, true, err, errlen)) == NULL)
        goto done;
    if (PQntuples(set) != 1) {
        snprintf(err, (size_t)errlen, "reporting.settings has %d rows, want 1 (is 0006_reporting.sql applied?)",
                 PQntuples(set));
        goto done;
    }
    const char *version = "";
    if (calendar[0] != '\0') {
        const char *p[1] = {calendar};
        if ((cr = run(c, "rp_calendar", 1, p, true, err, errlen)) == NULL)
            goto done;
        if (PQntuples(cr) == 0) {
            snprintf(err, (size_t)errlen,
                     "reporting.calendar \"%s\" is not in business_calendars (load it with redressctl calendar load,"
                     " or set reporting.calendar = \"\" for 24/7 business time)",
                     calendar);
            st = RP_SYNC_BAD_CONFIG;
            goto done;
        }
        char cerr[256];
        cal = rd_calendar_parse(PQgetvalue(cr, 0, 0), (size_t)PQgetlength(cr, 0, 0), cerr, sizeof(cerr));
        if (cal == NULL) {
            snprintf(err, (size_t)errlen, "calendar \"%s\" in business_calendars does not parse: %s", calendar, cerr);
            st = RP_SYNC_BAD_CONFIG;
            goto done;
        }
        version = PQgetvalue(cr, 0, 1);
    }
    bool same = strcmp(PQgetvalue(set, 0, 0), time_zone) == 0 && strcmp(PQgetvalue(set, 0, 1), calendar) == 0 &&
                strcmp(PQgetvalue(set, 0, 2), version) == 0;
    int64_t horizon = now_ms + (int64_t)RP_HORIZON_DAYS * RP_DAY_MS;
    if (!same) {
        snprintf(res->old_desc, sizeof(res->old_desc), "time_zone=%s calendar=%s version=%s", PQgetvalue(set, 0, 0),
                 PQgetvalue(set, 0, 1)[0] ? PQgetvalue(set, 0, 1) : "(24/7)",
                 PQgetvalue(set, 0, 2)[0] ? PQgetvalue(set, 0, 2) : "(none)");
        const char *p3[3] = {time_zone, calendar, version};
        PGresult *u = run(c, "rp_set_settings", 3, p3, false, err, errlen);
        if (u == NULL)
            goto done;
        PQclear(u);
        /* reporting.refresh() files a ticket's old contributions under the buckets of the CURRENT
         * time zone to subtract them: after a change of zone that would leave every old number in
         * its old bucket. So the facts and rollups start again from nothing (the queue below
         * refills them); a calendar change alone is fine, the facts keep their business seconds. */
        if (strcmp(PQgetvalue(set, 0, 0), time_zone) != 0) {
            if (!rd_pg_command(c,
                               "TRUNCATE reporting.ticket_facts, reporting.rollup_hour, reporting.rollup_day,"
                               " reporting.rollup_month",
                               err, errlen))
                goto done;
            res->rollups_reset = true;
        }
        if (cal != NULL) {
            const char *p1[1] = {calendar};
            if ((u = run(c, "rp_drop_intervals", 1, p1, false, err, errlen)) == NULL)
                goto done;
            PQclear(u);
            if (!writeIntervals(c, calendar, cal, rp_intervals_epoch(cal), horizon, 0, &res->intervals, err, errlen))
                goto done;
        }
        if ((u = run(c, "rp_queue_all", 0, NULL, false, err, errlen)) == NULL)
            goto done;
        res->tickets_queued = strtoll(PQcmdTuples(u), NULL, 10);
        PQclear(u);
        res->resynced = true;
    } else if (cal != NULL) {
        const char *p1[1] = {calendar};
        if ((last = run(c, "rp_last_interval", 1, p1, true, err, errlen)) == NULL)
            goto done;
        int64_t from = rp_intervals_epoch(cal), cum = 0, end = INT64_MIN;
        if (PQntuples(last) == 1) {
            int64_t s = strtoll(PQgetvalue(last, 0, 0), NULL, 10);
            end = strtoll(PQgetvalue(last, 0, 1), NULL, 10);
            cum = strtoll(PQgetvalue(last, 0, 2), NULL, 10) + (end - s);
            from = end;
        }
        if (end < now_ms + RP_HORIZON_MIN_MS) {
            if (!writeIntervals(c, calendar, cal, from, horizon, cum, &res->intervals, err, errlen))
                goto done;
            res->extended = true;
        }
    }
    if (!commit(c, err, errlen)) {
        res->resynced = res->extended = false;
        goto done;
    }
    st = RP_SYNC_OK;
done:
    if (st != RP_SYNC_OK)
        rollback(c);
    PQclear(set);
    PQclear(cr);
    PQclear(last);
    rd_calendar_free(cal);
    return st;
}

/* ---- the queue ---------------------------------------------------------------------------------- */

bool rp_apply(PGconn *c, int part, int max_events, rp_applied *out, char *err, int errlen)
{
    memset(out, 0, sizeof(*out));
    /* Asynchronous commit: the queue deletion and the rollup change commit together, so a commit
     * lost in a crash is simply applied again. No JIT: the planner's row estimates for
     * reporting.refresh() (set-returning SQL functions) are in the millions, so it would compile
     * the statement for every batch -- measured at 6.7 s of a 8.8 s batch of 5,000 events. No
     * sequential scans: every statement looks up a batch of keys, and statistics of tables that
     * grew from nothing a minute ago would have the planner scan them whole (as escalation). */
    if (!rd_pg_command(c,
                       "BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL jit = off; SET LOCAL enable_seqscan = off",
                       err, errlen))
        return false;
    char p[16], m[16];
    snprintf(p, sizeof(p), "%d", part);
    snprintf(m, sizeof(m), "%d", max_events);
    const char *params[2] = {p, m};
    PGresult *r = run(c, "rp_apply", 2, params, true, err, errlen);
    if (r == NULL || PQntuples(r) != 1) {
        if (r != NULL)
            snprintf(err, (size_t)errlen, "apply_queue returned %d rows", PQntuples(r));
        PQclear(r);
        rollback(c);
        return false;
    }
    out->events = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    out->tickets = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    out->rollup_rows = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    if (!commit(c, err, errlen)) {
        rollback(c);
        memset(out, 0, sizeof(*out));
        return false;
    }
    return true;
}

/* ---- the sweep ---------------------------------------------------------------------------------- */

int64_t rp_sweep(PGconn *c, int64_t min_age_ms, char *err, int errlen)
{
    int64_t rc = -1;
    PGresult *h = NULL, *s = NULL, *r = NULL;
    char lock[64];
    snprintf(lock, sizeof(lock), "SELECT pg_try_advisory_xact_lock(%d)", RP_SWEEP_LOCK);
    if (!rd_pg_command(c, "BEGIN; SET LOCAL jit = off", err, errlen))
        return -1;
    r = PQexec(c, lock);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pgErr(err, errlen, "sweep lock", c);
        goto done;
    }
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        rc = -2; /* another process is sweeping */
        goto done;
    }
    PQclear(r);
    r = NULL;
    const char *ph[1] = {"history"}, *ps[1] = {"sla"};
    if ((h = run(c, "rp_marks", 1, ph, true, err, errlen)) == NULL ||
        (s = run(c, "rp_marks", 1, ps, true, err, errlen)) == NULL)
        goto done;
    if (PQntuples(h) != 1 || PQntuples(s) != 1) {
        snprintf(err, (size_t)errlen, "reporting.sweep_marks lacks its history or sla row");
        goto done;
    }
    /* every process looks every interval; the sweep itself runs once per interval in all */
    int64_t age = strtoll(PQgetvalue(h, 0, 1), NULL, 10);
    if (age < min_age_ms) {
        rc = -2;
        goto done;
    }
    const char *p2[2] = {PQgetvalue(h, 0, 0), PQgetvalue(s, 0, 0)};
    if ((r = run(c, "rp_sweep", 2, p2, true, err, errlen)) == NULL)
        goto done;
    int64_t queued = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if ((r = run(c, "rp_advance_marks", 0, NULL, false, err, errlen)) == NULL)
        goto done;
    if (!commit(c, err, errlen))
        goto done;
    rc = queued;
done:
    if (rc < 0)
        rollback(c);
    PQclear(h);
    PQclear(s);
    PQclear(r);
    return rc;
}

/* ---- the monthly report ------------------------------------------------------------------------- */

int64_t rp_monthly(PGconn *c, const char *who, char month[16], char *err, int errlen)
{
    month[0] = '\0';
    PGresult *r = run(c, "rp_prev_month", 0, NULL, true, err, errlen);
    if (r == NULL)
        return -1;
    if (PQntuples(r) != 1) {
        snprintf(err, (size_t)errlen, "reporting.settings has %d rows, want 1", PQntuples(r));
        PQclear(r);
        return -1;
    }
    snprintf(month, 16, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *p[2] = {month, who};
    if ((r = run(c, "rp_monthly", 2, p, false, err, errlen)) == NULL)
        return -1;
    int64_t n = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return n;
}

/* ---- queue depth -------------------------------------------------------------------------------- */

int64_t rp_queue_depth(PGconn *c, char *err, int errlen)
{
    /* the planner's estimate first (free): above the cap, counting would cost more than it tells */
    PGresult *r = run(c, "rp_queue_estimate", 0, NULL, true, err, errlen);
    if (r == NULL)
        return -1;
    int64_t est = PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    if (est > QUEUE_COUNT_CAP)
        return est;
    if ((r = run(c, "rp_queue_count", 0, NULL, true, err, errlen)) == NULL)
        return -1;
    int64_t n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n > QUEUE_COUNT_CAP ? QUEUE_COUNT_CAP + 1 : n;
}
