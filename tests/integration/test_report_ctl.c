/*
 * test_report_ctl -- redressctl report daily / monthly / agents / monthly-saved / rebuild / status
 * against a real PostgreSQL (tests/lib/with-stack.sh --no-redis). No reporting service runs: the
 * setup writes tickets, their history, classifications, SLA clocks and escalations by SQL, sets a
 * reporting calendar (09:00-17:00 local every day, its working intervals written by SQL as the
 * reporting service would materialise them), and refreshes every ticket with reporting.refresh().
 *
 * The expected numbers are computed here, in C, from the same ticket table the setup writes: local
 * day and month of each instant by string (the instants are written as Asia/Shanghai wall-clock
 * times), business seconds by walking the days of the test calendar. Nothing expected comes from
 * the reporting SQL. Among the tickets: one received at 07:00 local on April 1st (March 31st in
 * UTC: it must count in April), one received before and resolved in the month, a reopened one, one
 * with no department, team or agent, repeats, a duplicate, met and breached clocks, escalations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "itest.h"

#define TZ       "Asia/Shanghai"
#define CUSTOMER "00000000-0000-4000-8000-00000000c0de"
#define WORK_H0  9  /* the calendar: 09:00 ... */
#define WORK_H1  17 /* ... to 17:00, every day */

static PGconn *pg;
static char dir[512];

#define ctl(...)               itest_ctl(dir, __VA_ARGS__)
#define printed(which, needle) itest_ctl_printed(dir, which, needle)

/* ---- the data set -------------------------------------------------------------------------- */

typedef struct {
    const char *clock;
    bool met;
    const char *at;
} clk_spec;

typedef struct {
    int level;
    const char *at;
} esc_spec;

/* Instants are local wall-clock times "YYYY-MM-DD HH:MM" in TZ; NULL = never. */
typedef struct {
    const char *created, *frt, *resolved, *closed, *visit;
    int satisfaction;
    const char *dept, *team, *agent, *channel, *btype;
    int reopens;
    int repeat_of, duplicate_of; /* index of another ticket, or -1 */
    clk_spec clk[3];
    esc_spec esc[3];
} tspec;

static const tspec T[] = {
    /* 0: March 30, answered and resolved in business hours, closed, very satisfied */
    {"2026-03-30 10:00",
     "2026-03-30 11:30",
     "2026-03-31 10:00",
     "2026-03-31 12:00",
     "2026-03-31 15:00",
     5,
     "north",
     "north-a",
     "a-1",
     "hotline",
     "complaint",
     0,
     -1,
     -1,
     {{"accept", true, "2026-03-30 10:05"}, {"resolution", true, "2026-03-31 10:00"}},
     {{0}}},
    /* 1: received after hours, a repeat of 0; resolution breached and escalated twice; not satisfied */
    {"2026-03-30 20:00",
     "2026-03-31 09:30",
     "2026-04-01 16:00",
     NULL,
     "2026-04-02 10:00",
     3,
     "north",
     "north-a",
     "a-2",
     "web",
     "consultation",
     0,
     0,
     -1,
     {{"first_response", true, "2026-03-31 09:30"}, {"resolution", false, "2026-04-01 09:00"}},
     {{1, "2026-04-01 09:00"}, {2, "2026-04-01 12:00"}}},
    /* 2: reopened once, resolved again on April 2 and closed; accept breached, escalated */
    {"2026-03-31 09:00",
     "2026-03-31 09:20",
     "2026-04-02 10:00",
     "2026-04-02 11:00",
     "2026-04-02 14:00",
     4,
     "south",
     "south-a",
     "a-3",
     "hotline",
     "fault_repair",
     1,
     -1,
     -1,
     {{"accept", false, "2026-03-31 09:10"}},
     {{1, "2026-03-31 09:10"}}},
    /* 3: 07:00 on April 1 local is March 31 in UTC: April. A repeat and a duplicate of 0 */
    {"2026-04-01 07:00",
     "2026-04-01 09:15",
     NULL,
     NULL,
     NULL,
     0,
     "north",
     "north-a",
     "a-1",
     "app",
     "complaint",
     0,
     0,
     0,
     {{"accept", true, "2026-04-01 07:30"}},
     {{0}}},
    /* 4: never answered; accept breached, escalated to level 1 then 3 */
    {"2026-04-02 13:00",
     NULL,
     NULL,
     NULL,
     NULL,
     0,
     "south",
     "south-a",
     "a-3",
     "hotline",
     "complaint",
     0,
     -1,
     -1,
     {{"accept", false, "2026-04-02 13:30"}},
     {{1, "2026-04-02 13:30"}, {3, "2026-04-02 18:00"}}},
    /* 5: received in February, resolved on March 2, visited March 3, unhappy */
    {"2026-02-27 10:00",
     "2026-02-27 10:30",
     "2026-03-02 10:00",
     NULL,
     "2026-03-03 10:00",
     1,
     "north",
     "north-a",
     "a-2",
     "hotline",
     "complaint",
     0,
     -1,
     -1,
     {{"resolution", true, "2026-03-02 10:00"}},
     {{0}}},
    /* 6: nobody owns it, not classified */
    {"2026-03-15 16:00", NULL, NULL, NULL, NULL, 0, "", "", "", "email", "", 0, -1, -1, {{0}}, {{0}}},
    /* 7: 23:30 on April 30, answered on May 1 (ten working minutes) */
    {"2026-04-30 23:30",
     "2026-05-01 09:10",
     NULL,
     NULL,
     NULL,
     0,
     "south",
     "south-a",
     "a-3",
     "hotline",
     "complaint",
     0,
     -1,
     -1,
     {{0}},
     {{0}}},
};
#define NT ((int)(sizeof(T) / sizeof(T[0])))

static void ticket_id(int i, char out[37])
{
    snprintf(out, 37, "00000000-0000-4000-8000-0000000000%02u", (unsigned)(i + 1) % 100u);
}

/* ---- expected values, computed here ---------------------------------------------------------- */

/* Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil). */
static long days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Local minutes since the epoch of "YYYY-MM-DD HH:MM". */
static long local_min(const char *s)
{
    int y, mo, d, h, mi;
    assert_int_equal(sscanf(s, "%d-%d-%d %d:%d", &y, &mo, &d, &h, &mi), 5);
    return days_from_civil(y, mo, d) * 1440 + h * 60 + mi;
}

/* Working seconds between two local instants in the test calendar (09:00-17:00 every day). */
static long biz_s(const char *a, const char *b)
{
    long ma = local_min(a), mb = local_min(b), total = 0;
    for (long day = ma / 1440; day <= mb / 1440; day++) {
        long lo = day * 1440 + WORK_H0 * 60, hi = day * 1440 + WORK_H1 * 60;
        long s = ma > lo ? ma : lo, e = mb < hi ? mb : hi;
        if (e > s)
            total += e - s;
    }
    return total * 60;
}

typedef struct {
    long received, resolved, closed, reopened, repeats, sla_met, sla_breached, visits, satisfied, responded, frt_bs,
        res_bs, escalations;
    long res_hist[9]; /* business resolution time histogram (reporting.hbucket) */
} agg;

static bool in(const char *instant, const char *bucket)
{
    return instant != NULL && strncmp(instant, bucket, strlen(bucket)) == 0;
}

/* Which tickets count: dept NULL = all; with team/agent NULL, any. */
typedef struct {
    const char *dept, *team, *agent;
} who;

static bool matches(const tspec *t, const who *w)
{
    return (w->dept == NULL || strcmp(t->dept, w->dept) == 0) && (w->team == NULL || strcmp(t->team, w->team) == 0) &&
           (w->agent == NULL || strcmp(t->agent, w->agent) == 0);
}

static int hbucket(long s)
{
    static const long bounds[] = {300, 900, 1800, 3600, 14400, 43200, 86400, 259200};
    int b = 0;
    while (b < 8 && s >= bounds[b])
        b++;
    return b;
}

/* The numbers of bucket ("2026-03-30" or "2026-03") for the tickets of w. */
static agg expect(const char *bucket, const who *w)
{
    agg a;
    memset(&a, 0, sizeof(a));
    for (int i = 0; i < NT; i++) {
        const tspec *t = &T[i];
        if (!matches(t, w))
            continue;
        if (in(t->created, bucket)) {
            a.received++;
            a.reopened += t->reopens > 0;
            a.repeats += t->repeat_of >= 0;
        }
        if (in(t->frt, bucket)) {
            a.responded++;
            a.frt_bs += biz_s(t->created, t->frt);
        }
        if (in(t->resolved, bucket)) {
            long s = biz_s(t->created, t->resolved);
            a.resolved++;
            a.res_bs += s;
            a.res_hist[hbucket(s)]++;
        }
        a.closed += in(t->closed, bucket);
        if (in(t->visit, bucket)) {
            a.visits++;
            a.satisfied += t->satisfaction >= 4;
        }
        for (int k = 0; k < 3 && t->clk[k].clock != NULL; k++) {
            if (in(t->clk[k].at, bucket)) {
                a.sla_met += t->clk[k].met;
                a.sla_breached += !t->clk[k].met;
            }
        }
        for (int k = 0; k < 3 && t->esc[k].level > 0; k++)
            a.escalations += in(t->esc[k].at, bucket);
    }
    return a;
}

static void agg_add(agg *sum, const agg *a)
{
    long *s = &sum->received;
    const long *x = &a->received;
    for (size_t i = 0; i < sizeof(agg) / sizeof(long); i++)
        s[i] += x[i];
}

/* p90 of the business resolution histogram: the bucket's upper bound, -1 for the last; -2 none. */
static long p90(const agg *a)
{
    static const long bounds[] = {300, 900, 1800, 3600, 14400, 43200, 86400, 259200, -1};
    long tot = 0, cum = 0;
    for (int i = 0; i < 9; i++)
        tot += a->res_hist[i];
    if (tot == 0)
        return -2;
    for (int i = 0; i < 9; i++) {
        cum += a->res_hist[i];
        if ((double)cum >= 0.9 * (double)tot)
            return bounds[i];
    }
    return -1;
}

/* ---- reading what redressctl printed ----------------------------------------------------------- */

static char *out_text(void)
{
    static char buf[1 << 18];
    char path[600];

    snprintf(path, sizeof(path), "%s/out.txt", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

#define MAX_FIELDS 32
#define MAX_ROWS   64

typedef struct {
    int nrows, ncols;
    char *cell[MAX_ROWS][MAX_FIELDS];
} csv_doc;

/* RFC 4180: CRLF line ends, quoted fields with doubled quotes. Every line must end in CRLF. */
static void csv_parse(const char *text, csv_doc *d)
{
    static char store[1 << 18];
    size_t o = 0;
    const char *p = text;

    memset(d, 0, sizeof(*d));
    while (*p != '\0') {
        assert_true(d->nrows < MAX_ROWS);
        int c = 0;
        for (;;) {
            assert_true(c < MAX_FIELDS);
            d->cell[d->nrows][c] = &store[o];
            if (*p == '"') {
                p++;
                for (;;) {
                    assert_true(*p != '\0');
                    if (*p == '"' && p[1] == '"') {
                        store[o++] = '"';
                        p += 2;
                    } else if (*p == '"') {
                        p++;
                        break;
                    } else {
                        store[o++] = *p++;
                    }
                }
            } else {
                while (*p != ',' && *p != '\r' && *p != '\n' && *p != '\0')
                    store[o++] = *p++;
            }
            store[o++] = '\0';
            c++;
            if (*p == ',') {
                p++;
                continue;
            }
            assert_true(p[0] == '\r' && p[1] == '\n'); /* CRLF, never a bare LF */
            p += 2;
            break;
        }
        if (d->nrows == 0)
            d->ncols = c;
        else
            assert_int_equal(c, d->ncols);
        d->nrows++;
    }
}

static int csv_col(const csv_doc *d, const char *name)
{
    for (int j = 0; j < d->ncols; j++)
        if (strcmp(d->cell[0][j], name) == 0)
            return j;
    fail_msg("no column %s", name);
    return -1;
}

static void check_long(const char *what, const char *bucket, const char *got, long want)
{
    char w[32];
    snprintf(w, sizeof(w), "%ld", want);
    if (strcmp(got, w) != 0)
        fail_msg("%s of %s: got '%s', want %s", what, bucket, got, w);
}

/* A rate or an average: '' when den is 0, else num/den/scale rounded to places decimals. */
static void check_ratio(const char *what, const char *bucket, const char *got, double num, double den, double scale,
                        int places)
{
    if (den == 0) {
        if (got[0] != '\0')
            fail_msg("%s of %s: got '%s', want nothing (no denominator)", what, bucket, got);
        return;
    }
    char w[32];
    snprintf(w, sizeof(w), "%.*f", places, num / den / scale);
    if (strcmp(got, w) != 0)
        fail_msg("%s of %s: got '%s', want %s", what, bucket, got, w);
}

/* The KPI columns of a daily/monthly/agents CSV line against a. */
static void check_kpi_csv(const csv_doc *d, int row, const char *bucket, const agg *a, bool agents)
{
    check_long("received", bucket, d->cell[row][csv_col(d, "received")], a->received);
    check_long("resolved", bucket, d->cell[row][csv_col(d, "resolved")], a->resolved);
    check_long("closed", bucket, d->cell[row][csv_col(d, "closed")], a->closed);
    check_long("reopened", bucket, d->cell[row][csv_col(d, "reopened")], a->reopened);
    check_long("repeats", bucket, d->cell[row][csv_col(d, "repeats")], a->repeats);
    check_long("sla_met", bucket, d->cell[row][csv_col(d, "sla_met")], a->sla_met);
    check_long("sla_breached", bucket, d->cell[row][csv_col(d, "sla_breached")], a->sla_breached);
    check_long("visits", bucket, d->cell[row][csv_col(d, "visits")], a->visits);
    check_long("satisfied", bucket, d->cell[row][csv_col(d, "satisfied")], a->satisfied);
    check_long("escalations", bucket, d->cell[row][csv_col(d, "escalations")], a->escalations);
    check_ratio("on_time_rate", bucket, d->cell[row][csv_col(d, "on_time_rate")], (double)a->sla_met,
                (double)(a->sla_met + a->sla_breached), 1, 4);
    check_ratio("satisfaction_rate", bucket, d->cell[row][csv_col(d, "satisfaction_rate")], (double)a->satisfied,
                (double)a->visits, 1, 4);
    check_ratio("avg_frt_business_h", bucket, d->cell[row][csv_col(d, "avg_frt_business_h")], (double)a->frt_bs,
                (double)a->responded, 3600, 2);
    check_ratio("avg_res_business_h", bucket, d->cell[row][csv_col(d, "avg_res_business_h")], (double)a->res_bs,
                (double)a->resolved, 3600, 2);
    if (!agents) {
        check_ratio("repeat_rate", bucket, d->cell[row][csv_col(d, "repeat_rate")], (double)a->repeats,
                    (double)a->received, 1, 4);
    } else {
        long want = p90(a);
        const char *got = d->cell[row][csv_col(d, "p90_res_business_s")];
        if (want == -2)
            assert_string_equal(got, "");
        else
            check_long("p90_res_business_s", bucket, got, want);
    }
}

/* The display width of UTF-8 text: the CJK ideographs of this data set take two columns. */
static int width(const char *s, size_t n)
{
    int w = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            w++;
            i++;
        } else if ((c & 0xF0) == 0xE0) {
            w += 2; /* U+0800..U+FFFF: here only 华北南分公司张伟李娜 */
            i += 3;
        } else {
            w++;
            i += (c & 0xE0) == 0xC0 ? 2 : 4;
        }
    }
    return w;
}

/* Every line of a table is equally wide on a terminal (the last column is right-aligned). */
static int table_lines_aligned(const char *text)
{
    int lines = 0, w0 = -1;
    for (const char *p = text; *p != '\0';) {
        const char *e = strchr(p, '\n');
        assert_non_null(e);
        int w = width(p, (size_t)(e - p));
        if (w0 < 0)
            w0 = w;
        if (w != w0)
            fail_msg("line %d is %d columns wide, the header %d: %.*s", lines + 1, w, w0, (int)(e - p), p);
        lines++;
        p = e + 1;
    }
    return lines;
}

/* ---- setup ----------------------------------------------------------------------------------- */

static void sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sql(const char *fmt, ...)
{
    char q[8192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(pg, q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQerrorMessage(pg));
    PQclear(r);
}

static int64_t count(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int64_t count(const char *fmt, ...)
{
    char q[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(q, sizeof(q), fmt, ap);
    va_end(ap);
    return itest_count(pg, q);
}

/* "TIMESTAMP 'x' AT TIME ZONE 'Asia/Shanghai'" or NULL */
static const char *at(char *buf, size_t len, const char *local)
{
    if (local == NULL)
        snprintf(buf, len, "NULL");
    else
        snprintf(buf, len, "(TIMESTAMP '%s' AT TIME ZONE '" TZ "')", local);
    return buf;
}

static const char *nullable(char *buf, size_t len, const char *s)
{
    if (s == NULL || s[0] == '\0')
        snprintf(buf, len, "NULL");
    else
        snprintf(buf, len, "'%s'", s);
    return buf;
}

static void insert_ticket(int i)
{
    const tspec *t = &T[i];
    char id[37], c[96], f[96], r[96], cl[96], d[64], tm[64], ag[64], bt[64];
    const char *state = t->closed     ? "closed"
                        : t->resolved ? "resolved"
                        : t->frt      ? "in_progress"
                        : t->agent[0] ? "assigned"
                                      : "new";

    ticket_id(i, id);
    sql("INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, subject, body, state, business_type,"
        " severity, priority, owner_unit, owner_team, owner_agent, reopen_count, occurred_at, created_at,"
        " first_response_at, resolved_at, closed_at)"
        " VALUES ('%s', 'test', 'report-%d', '%s', '" CUSTOMER
        "', '投诉 %d', '正文', '%s', %s, 'general', 3, %s, %s, %s,"
        " %d, %s, %s, %s, %s, %s)",
        id, i, t->channel, i, state, nullable(bt, sizeof(bt), t->btype), nullable(d, sizeof(d), t->dept),
        nullable(tm, sizeof(tm), t->team), nullable(ag, sizeof(ag), t->agent), t->reopens, at(c, sizeof(c), t->created),
        c, at(f, sizeof(f), t->frt), at(r, sizeof(r), t->resolved), at(cl, sizeof(cl), t->closed));
    sql("INSERT INTO ticket_history (ticket_id, at, kind, from_state, to_state) VALUES ('%s', %s, 'created', NULL, "
        "'new')",
        id, c);
    if (t->visit != NULL)
        sql("INSERT INTO ticket_history (ticket_id, at, kind, from_state, to_state, actor, satisfaction)"
            " VALUES ('%s', %s, 'return_visit', '%s', '%s', 'agent-visit', %d)",
            id, at(f, sizeof(f), t->visit), state, state, t->satisfaction);
    if (t->repeat_of >= 0 || t->duplicate_of >= 0) {
        char rep[37] = "", dup[37] = "", rq[48], dq[48];
        if (t->repeat_of >= 0)
            ticket_id(t->repeat_of, rep);
        if (t->duplicate_of >= 0)
            ticket_id(t->duplicate_of, dup);
        sql("INSERT INTO ticket_classifications (ticket_id, business_type, business_type_source,"
            " business_type_confidence, category_source, category_confidence, severity, priority, priority_source,"
            " repeat_of, duplicate_of) VALUES ('%s', '%s', 'default', 1, 'default', 1, 'general', 3, 'default', %s, "
            "%s)",
            id, t->btype, nullable(rq, sizeof(rq), rep), nullable(dq, sizeof(dq), dup));
    }
    int64_t first_clock = 0;
    for (int k = 0; k < 3 && t->clk[k].clock != NULL; k++) {
        char a[96];
        at(a, sizeof(a), t->clk[k].at);
        int64_t cid =
            count("INSERT INTO sla_clocks (ticket_id, clock, cycle, policy_id, target_ms, started_at, state,"
                  " outcome, breached_at, stopped_at, stage_code, stage_at, armed_at)"
                  " VALUES ('%s', '%s', 1, 'test', 60000, %s, '%s', %s, %s, %s, '{}', '{}', %s) RETURNING id",
                  id, t->clk[k].clock, c, t->clk[k].met ? "stopped" : "running", t->clk[k].met ? "'met'" : "NULL",
                  t->clk[k].met ? "NULL" : a, t->clk[k].met ? a : "NULL", c);
        assert_true(cid > 0);
        if (first_clock == 0)
            first_clock = cid;
    }
    for (int k = 0; k < 3 && t->esc[k].level > 0; k++) {
        char a[96];
        sql("INSERT INTO sla_escalations (clock_id, ticket_id, clock, level, role, action, at)"
            " SELECT id, ticket_id, clock, %d, 'team_lead', 'notify', %s FROM sla_clocks WHERE id = %lld",
            t->esc[k].level, at(a, sizeof(a), t->esc[k].at), (long long)first_clock);
    }
}

static int setup(void **state)
{
    (void)state;
    sql("INSERT INTO departments (id, name) VALUES ('north', '华北分公司'), ('south', '华南分公司')");
    sql("INSERT INTO teams (id, department_id, name) VALUES ('north-a', 'north', '华北一组'), ('south-a', 'south', "
        "'华南一组')");
    sql("INSERT INTO agents (id, team_id, name) VALUES ('a-1', 'north-a', '张伟'), ('a-2', 'north-a', 'Emily Carter'),"
        " ('a-3', 'south-a', '李娜')");
    sql("INSERT INTO customers (id, customer_ref, name, phone) VALUES ('" CUSTOMER
        "', 'report-ctl', '王五', '13800000000')");
    /* the reporting calendar: 09:00-17:00 local every day from February to May */
    sql("UPDATE reporting.settings SET time_zone = '" TZ "', calendar_id = 'rpt-cal', calendar_version = 'test'");
    sql("INSERT INTO reporting.work_intervals (calendar_id, starts_at, ends_at, cum_s)"
        " SELECT 'rpt-cal', (d::date + time '%02d:00') AT TIME ZONE '" TZ
        "', (d::date + time '%02d:00') AT TIME ZONE '" TZ "', %d * (row_number() OVER (ORDER BY d) - 1)"
        "   FROM generate_series(date '2026-02-01', date '2026-05-31', interval '1 day') d",
        WORK_H0, WORK_H1, (WORK_H1 - WORK_H0) * 3600);
    for (int i = 0; i < NT; i++)
        insert_ticket(i);
    sql("SELECT reporting.refresh(array_agg(id)) FROM tickets");
    assert_int_equal(count("SELECT count(*) FROM reporting.ticket_facts"), NT);
    return 0;
}

/* ---- the tests ------------------------------------------------------------------------------- */

static const char *const days[] = {"2026-03-29", "2026-03-30", "2026-03-31", "2026-04-01", "2026-04-02", "2026-04-03"};
#define NDAYS 6

static void check_daily_csv(const char *dept)
{
    csv_doc d;
    who w = {dept, NULL, NULL};

    if (dept != NULL)
        assert_int_equal(ctl("report daily --from 2026-03-29 --to 2026-04-03 --format csv --department %s", dept), 0);
    else
        assert_int_equal(ctl("report daily --from 2026-03-29 --to 2026-04-03 --format csv"), 0);
    csv_parse(out_text(), &d);
    assert_int_equal(d.nrows, 1 + NDAYS); /* a header, every day (empty ones too), no total */
    assert_string_equal(d.cell[0][0], "day");
    if (dept != NULL) {
        assert_string_equal(d.cell[0][1], "department");
        assert_string_equal(d.cell[0][2], "department_name");
    }
    assert_string_equal(d.cell[0][d.ncols - 1], "escalations");
    for (int i = 0; i < NDAYS; i++) {
        agg a = expect(days[i], &w);
        assert_string_equal(d.cell[i + 1][0], days[i]);
        if (dept != NULL)
            assert_string_equal(d.cell[i + 1][1], dept);
        check_kpi_csv(&d, i + 1, days[i], &a, false);
    }
}

static void test_daily_csv(void **state)
{
    (void)state;
    /* the data set is what it is meant to be: April 1 has T3 (07:00 local, the day before in UTC) */
    who all = {NULL, NULL, NULL};
    agg a = expect("2026-04-01", &all);
    assert_int_equal(a.received, 1);
    assert_int_equal(a.repeats, 1);
    assert_int_equal(expect("2026-03-30", &all).received, 2);

    check_daily_csv(NULL);
    check_daily_csv("north");
    check_daily_csv("south");
    /* the header names the columns in order */
    assert_true(printed("out", "day,department,department_name,received,resolved,closed,reopened,repeats,repeat_rate,"
                               "sla_met,sla_breached,on_time_rate,visits,satisfied,satisfaction_rate,"
                               "avg_frt_business_h,avg_res_business_h,escalations\r\n"));
    /* a department by its name */
    assert_int_equal(ctl("report daily --from 2026-03-31 --to 2026-03-31 --format csv --department 华南分公司"), 0);
    assert_true(printed("out", "2026-03-31,south,华南分公司,1,"));
}

static void test_monthly_csv(void **state)
{
    static const char *const months[] = {"2026-02", "2026-03", "2026-04", "2026-05"};
    csv_doc d;
    who all = {NULL, NULL, NULL};
    (void)state;

    /* --from as a day means its month; --to as a month */
    assert_int_equal(ctl("report monthly --from 2026-02-14 --to 2026-05 --format csv"), 0);
    csv_parse(out_text(), &d);
    assert_int_equal(d.nrows, 5);
    assert_string_equal(d.cell[0][0], "month");
    for (int i = 0; i < 4; i++) {
        agg a = expect(months[i], &all);
        assert_string_equal(d.cell[i + 1][0], months[i]);
        check_kpi_csv(&d, i + 1, months[i], &a, false);
    }
    /* March and April hold most of it; the sums are not averages of the days' rates */
    assert_int_equal(expect("2026-03", &all).received, 4);
    assert_int_equal(expect("2026-04", &all).received, 3);

    for (int k = 0; k < 2; k++) {
        const char *dept = k == 0 ? "north" : "south";
        who w = {dept, NULL, NULL};
        assert_int_equal(ctl("report monthly --from 2026-03 --to 2026-04 --format csv --department %s", dept), 0);
        csv_parse(out_text(), &d);
        assert_int_equal(d.nrows, 3);
        for (int i = 0; i < 2; i++) {
            agg a = expect(months[i + 1], &w);
            check_kpi_csv(&d, i + 1, months[i + 1], &a, false);
        }
    }
}

static void check_json_number(json_t *o, const char *key, const char *bucket, double num, double den, double scale,
                              double tolerance)
{
    json_t *v = json_object_get(o, key);
    if (den == 0) {
        if (!json_is_null(v))
            fail_msg("%s of %s: want null", key, bucket);
        return;
    }
    if (!json_is_number(v))
        fail_msg("%s of %s: not a JSON number", key, bucket);
    double got = json_number_value(v), want = num / den / scale;
    if (got < want - tolerance || got > want + tolerance)
        fail_msg("%s of %s: got %.6f, want %.6f", key, bucket, got, want);
}

static void check_json_int(json_t *o, const char *key, const char *bucket, long want)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        fail_msg("%s of %s: not a JSON integer", key, bucket);
    if (json_integer_value(v) != want)
        fail_msg("%s of %s: got %lld, want %ld", key, bucket, (long long)json_integer_value(v), want);
}

static void test_daily_json(void **state)
{
    json_error_t err;
    who w = {"north", NULL, NULL};
    (void)state;

    assert_int_equal(ctl("report daily --from 2026-03-29 --to 2026-04-03 --format json --department north"), 0);
    json_t *doc = json_loads(out_text(), 0, &err);
    if (doc == NULL)
        fail_msg("not JSON: %s", err.text);
    assert_true(json_is_array(doc));
    assert_int_equal(json_array_size(doc), NDAYS);
    for (int i = 0; i < NDAYS; i++) {
        json_t *o = json_array_get(doc, (size_t)i);
        agg a = expect(days[i], &w);
        assert_string_equal(json_string_value(json_object_get(o, "day")), days[i]);
        assert_string_equal(json_string_value(json_object_get(o, "department")), "north");
        assert_string_equal(json_string_value(json_object_get(o, "department_name")), "华北分公司");
        assert_int_equal(json_object_size(o), 18);
        check_json_int(o, "received", days[i], a.received);
        check_json_int(o, "resolved", days[i], a.resolved);
        check_json_int(o, "closed", days[i], a.closed);
        check_json_int(o, "reopened", days[i], a.reopened);
        check_json_int(o, "repeats", days[i], a.repeats);
        check_json_int(o, "sla_met", days[i], a.sla_met);
        check_json_int(o, "sla_breached", days[i], a.sla_breached);
        check_json_int(o, "visits", days[i], a.visits);
        check_json_int(o, "satisfied", days[i], a.satisfied);
        check_json_int(o, "escalations", days[i], a.escalations);
        check_json_number(o, "repeat_rate", days[i], (double)a.repeats, (double)a.received, 1, 0.00005);
        check_json_number(o, "on_time_rate", days[i], (double)a.sla_met, (double)(a.sla_met + a.sla_breached), 1,
                          0.00005);
        check_json_number(o, "satisfaction_rate", days[i], (double)a.satisfied, (double)a.visits, 1, 0.00005);
        check_json_number(o, "avg_frt_business_h", days[i], (double)a.frt_bs, (double)a.responded, 3600, 0.005);
        check_json_number(o, "avg_res_business_h", days[i], (double)a.res_bs, (double)a.resolved, 3600, 0.005);
    }
    json_decref(doc);

    /* monthly JSON: the whole organisation */
    who all = {NULL, NULL, NULL};
    assert_int_equal(ctl("report monthly --from 2026-04 --to 2026-04 --format json"), 0);
    doc = json_loads(out_text(), 0, &err);
    assert_non_null(doc);
    assert_int_equal(json_array_size(doc), 1);
    json_t *o = json_array_get(doc, 0);
    agg a = expect("2026-04", &all);
    assert_string_equal(json_string_value(json_object_get(o, "month")), "2026-04");
    assert_null(json_object_get(o, "department"));
    check_json_int(o, "received", "2026-04", a.received);
    check_json_int(o, "resolved", "2026-04", a.resolved);
    check_json_int(o, "escalations", "2026-04", a.escalations);
    check_json_number(o, "on_time_rate", "2026-04", (double)a.sla_met, (double)(a.sla_met + a.sla_breached), 1,
                      0.00005);
    check_json_number(o, "avg_res_business_h", "2026-04", (double)a.res_bs, (double)a.resolved, 3600, 0.005);
    json_decref(doc);
}

/* The total line of a table: "total" then the numbers (no department columns). */
static void check_total_line(const char *text, const agg *a)
{
    const char *line = strstr(text, "\ntotal ");
    assert_non_null(line);
    char want[512], rate[3][32], avg[2][32];
    double r[3][2] = {{(double)a->repeats, (double)a->received},
                      {(double)a->sla_met, (double)(a->sla_met + a->sla_breached)},
                      {(double)a->satisfied, (double)a->visits}};
    for (int i = 0; i < 3; i++) {
        if (r[i][1] == 0)
            snprintf(rate[i], sizeof(rate[i]), "-");
        else
            snprintf(rate[i], sizeof(rate[i]), "%.2f%%", r[i][0] / r[i][1] * 100);
    }
    snprintf(avg[0], sizeof(avg[0]), "%.2f", (double)a->frt_bs / (double)a->responded / 3600);
    snprintf(avg[1], sizeof(avg[1]), "%.2f", (double)a->res_bs / (double)a->resolved / 3600);
    snprintf(want, sizeof(want), "total %ld %ld %ld %ld %ld %s %ld %ld %s %ld %ld %s %s %s %ld", a->received,
             a->resolved, a->closed, a->reopened, a->repeats, rate[0], a->sla_met, a->sla_breached, rate[1], a->visits,
             a->satisfied, rate[2], avg[0], avg[1], a->escalations);
    /* squeeze the line's runs of spaces to compare */
    char got[512];
    size_t o = 0;
    for (const char *p = line + 1; *p != '\n' && *p != '\0' && o + 1 < sizeof(got); p++)
        if (*p != ' ' || (o > 0 && got[o - 1] != ' '))
            got[o++] = *p;
    got[o] = '\0';
    assert_string_equal(got, want);
}

static void test_tables(void **state)
{
    who all = {NULL, NULL, NULL};
    agg sum;
    (void)state;

    assert_int_equal(ctl("report daily --from 2026-03-29 --to 2026-04-03"), 0);
    const char *text = out_text();
    /* header, rule, 6 days, rule, total */
    assert_int_equal(table_lines_aligned(text), 2 + NDAYS + 2);
    assert_true(strncmp(text, "day         received  resolved", 30) == 0);
    memset(&sum, 0, sizeof(sum));
    for (int i = 0; i < NDAYS; i++) {
        agg a = expect(days[i], &all);
        agg_add(&sum, &a);
    }
    check_total_line(text, &sum);

    /* Chinese department names take two columns each: the lines stay aligned */
    assert_int_equal(ctl("report daily --from 2026-03-30 --to 2026-03-31 --department north"), 0);
    text = out_text();
    assert_int_equal(table_lines_aligned(text), 2 + 2 + 2);
    assert_true(printed("out", "2026-03-30  north       华北分公司     "));

    assert_int_equal(ctl("report monthly --from 2026-03 --to 2026-04"), 0);
    text = out_text();
    assert_int_equal(table_lines_aligned(text), 2 + 2 + 2);
    agg m3 = expect("2026-03", &all), m4 = expect("2026-04", &all);
    memset(&sum, 0, sizeof(sum));
    agg_add(&sum, &m3);
    agg_add(&sum, &m4);
    check_total_line(text, &sum);

    assert_int_equal(ctl("report agents --month 2026-03"), 0);
    text = out_text();
    assert_int_equal(table_lines_aligned(text), 2 + 4);
    assert_true(printed("out", "张伟"));
    assert_true(printed("out", "李娜"));
}

static void test_agents(void **state)
{
    csv_doc d;
    (void)state;

    /* March: T6 (nobody's), a-1 (T0), a-2 (T1, and T5 received in February), a-3 (T2) */
    static const who rows[] = {
        {"", "", ""}, {"north", "north-a", "a-1"}, {"north", "north-a", "a-2"}, {"south", "south-a", "a-3"}};
    for (int fmt = 0; fmt < 2; fmt++) {
        assert_int_equal(ctl("report agents --month 2026-03 --format csv%s", fmt ? " --department north" : ""), 0);
        csv_parse(out_text(), &d);
        int first = fmt ? 1 : 0, n = fmt ? 2 : 4;
        assert_int_equal(d.nrows, 1 + n);
        assert_string_equal(d.cell[0][0], "department");
        assert_string_equal(d.cell[0][d.ncols - 1], "p90_res_business_s");
        for (int i = 0; i < n; i++) {
            const who *w = &rows[first + i];
            agg a = expect("2026-03", w);
            char bucket[64];
            snprintf(bucket, sizeof(bucket), "2026-03 %s/%s/%s", w->dept, w->team, w->agent);
            assert_string_equal(d.cell[i + 1][csv_col(&d, "department")], w->dept);
            assert_string_equal(d.cell[i + 1][csv_col(&d, "team")], w->team);
            assert_string_equal(d.cell[i + 1][csv_col(&d, "agent")], w->agent);
            check_kpi_csv(&d, i + 1, bucket, &a, true);
        }
    }
    assert_true(printed("out", "north,华北分公司,north-a,a-1,张伟,"));

    /* April as JSON, south only */
    json_error_t err;
    who w = {"south", "south-a", "a-3"};
    assert_int_equal(ctl("report agents --month 2026-04 --department south --format json"), 0);
    json_t *doc = json_loads(out_text(), 0, &err);
    assert_non_null(doc);
    assert_int_equal(json_array_size(doc), 1);
    json_t *o = json_array_get(doc, 0);
    agg a = expect("2026-04", &w);
    assert_string_equal(json_string_value(json_object_get(o, "agent_name")), "李娜");
    check_json_int(o, "received", "2026-04", a.received);
    check_json_int(o, "resolved", "2026-04", a.resolved);
    check_json_int(o, "escalations", "2026-04", a.escalations);
    check_json_int(o, "p90_res_business_s", "2026-04", p90(&a));
    check_json_number(o, "on_time_rate", "2026-04", (double)a.sla_met, (double)(a.sla_met + a.sla_breached), 1,
                      0.00005);
    json_decref(doc);

    /* a month without numbers */
    assert_int_equal(ctl("report agents --month 2025-01 --format csv"), 0);
    csv_parse(out_text(), &d);
    assert_int_equal(d.nrows, 1);
    assert_int_equal(ctl("report agents --month 2025-01 --format json"), 0);
    assert_true(printed("out", "[]"));
}

/* Today in Asia/Shanghai (UTC+8 all year since 1991). */
static void shanghai_today(char out[11])
{
    time_t now = time(NULL) + 8 * 3600;
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

static void test_defaults(void **state)
{
    csv_doc d;
    char before[11], after[11];
    (void)state;

    shanghai_today(before);
    assert_int_equal(ctl("report daily --format csv"), 0);
    shanghai_today(after);
    csv_parse(out_text(), &d);
    assert_int_equal(d.nrows, 1 + 7);
    const char *last = d.cell[7][0];
    assert_true(strcmp(last, before) == 0 || strcmp(last, after) == 0);

    assert_int_equal(ctl("report monthly --format csv"), 0);
    csv_parse(out_text(), &d);
    assert_int_equal(d.nrows, 1 + 12);
    assert_true(strncmp(d.cell[12][0], before, 7) == 0 || strncmp(d.cell[12][0], after, 7) == 0);

    /* only --from: up to today; only --to: the 7 days before it */
    assert_int_equal(ctl("report daily --to 2026-04-02 --format csv"), 0);
    csv_parse(out_text(), &d);
    assert_int_equal(d.nrows, 8);
    assert_string_equal(d.cell[1][0], "2026-03-27");
    assert_int_equal(ctl("report monthly --to 2026-04 --format csv"), 0);
    csv_parse(out_text(), &d);
    assert_int_equal(d.nrows, 13);
    assert_string_equal(d.cell[1][0], "2025-05");
}

static void test_saved(void **state)
{
    (void)state;
    assert_int_equal(ctl("report monthly-saved --month 2026-03"), 1);
    assert_true(printed("err", "no monthly report is saved for 2026-03"));

    sql("INSERT INTO reporting.monthly_reports (month, department, body, generated_by) VALUES"
        " ('2026-03-01', '', '{\"received\": 4, \"on_time_rate\": 0.6, \"note\": \"a, \\\"b\\\"\"}', 'reporting'),"
        " ('2026-03-01', 'north', '{\"received\": 2, \"on_time_rate\": null}', 'reporting')");
    assert_int_equal(ctl("report monthly-saved --month 2026-03"), 0); /* JSON by default */
    json_error_t err;
    json_t *doc = json_loads(out_text(), 0, &err);
    assert_non_null(doc);
    assert_int_equal(json_array_size(doc), 2);
    json_t *org = json_array_get(doc, 0), *north = json_array_get(doc, 1);
    assert_string_equal(json_string_value(json_object_get(org, "department")), "");
    assert_string_equal(json_string_value(json_object_get(north, "department_name")), "华北分公司");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(org, "report"), "received")), 4);
    assert_true(json_is_null(json_object_get(json_object_get(north, "report"), "on_time_rate")));
    json_decref(doc);

    csv_doc d;
    assert_int_equal(ctl("report monthly-saved --month 2026-03 --format csv"), 0);
    csv_parse(out_text(), &d);
    assert_int_equal(d.nrows, 3);
    assert_string_equal(d.cell[1][csv_col(&d, "note")], "a, \"b\"");
    assert_string_equal(d.cell[2][csv_col(&d, "received")], "2");
    assert_string_equal(d.cell[2][csv_col(&d, "on_time_rate")], "");

    assert_int_equal(ctl("report monthly-saved --month 2026-03 --format table"), 0);
    assert_true(printed("out", "(all)"));
    assert_true(printed("out", "north 华北分公司"));
}

static void test_rebuild_status(void **state)
{
    (void)state;
    assert_int_equal(ctl("report daily --from 2026-03-29 --to 2026-04-03 --format csv"), 0);
    char *before = strdup(out_text());

    int64_t queued = count("SELECT count(*) FROM reporting.queue");
    assert_int_equal(ctl("report rebuild"), 0);
    char want[64];
    snprintf(want, sizeof(want), "queued %d tickets", NT);
    assert_true(printed("out", want));
    assert_int_equal(count("SELECT count(*) FROM reporting.queue"), queued + NT);
    /* each ticket in the partition its triggers use */
    assert_int_equal(count("SELECT count(*) FROM reporting.queue q WHERE q.part <> hashtext(q.ticket_id::text) & 7"),
                     0);

    assert_int_equal(ctl("report status"), 0);
    snprintf(want, sizeof(want), "queue           %lld events (", (long long)(queued + NT));
    assert_true(printed("out", want));
    snprintf(want, sizeof(want), "facts           %d (0 tickets without one)", NT);
    assert_true(printed("out", want));
    assert_true(printed("out", "time zone       Asia/Shanghai"));
    assert_true(printed("out", "calendar        rpt-cal, version 'test', 120 working intervals"));
    assert_true(printed("out", "sweep history   prev_seq 0"));

    assert_int_equal(ctl("report status --format json"), 0);
    json_error_t err;
    json_t *doc = json_loads(out_text(), 0, &err);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "queue"), "events")), queued + NT);
    assert_int_equal(json_integer_value(json_object_get(doc, "facts")), NT);
    assert_int_equal(json_integer_value(json_object_get(doc, "tickets")), NT);
    assert_string_equal(json_string_value(json_object_get(doc, "calendar_id")), "rpt-cal");
    assert_int_equal(json_array_size(json_object_get(doc, "sweep")), 2);
    json_decref(doc);

    /* the reporting service's work, done here: the numbers do not move */
    for (int p = 0; p < 8; p++)
        sql("SELECT reporting.apply_queue(%d, 100000)", p);
    assert_int_equal(count("SELECT count(*) FROM reporting.queue"), 0);
    assert_int_equal(ctl("report daily --from 2026-03-29 --to 2026-04-03 --format csv"), 0);
    assert_string_equal(out_text(), before);
    free(before);
    assert_int_equal(ctl("report status"), 0);
    assert_true(printed("out", "queue           0 events\n"));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char *fp = itest_db_fingerprint(pg);

    assert_int_equal(ctl("report"), 2);
    assert_int_equal(ctl("report weekly"), 2);
    assert_true(printed("err", "unknown subcommand 'weekly'"));
    assert_int_equal(ctl("report daily extra"), 2);
    assert_int_equal(ctl("report daily --from 2026-02-30"), 2);
    assert_true(printed("err", "--from wants a date YYYY-MM-DD, not '2026-02-30'"));
    assert_int_equal(ctl("report daily --from 2026-3-1"), 2);
    assert_int_equal(ctl("report daily --from 2026-03"), 2); /* a month is for monthly */
    assert_int_equal(ctl("report daily --to yesterday"), 2);
    assert_int_equal(ctl("report daily --from 2026-04-02 --to 2026-04-01"), 2);
    assert_true(printed("err", "is after"));
    assert_int_equal(ctl("report daily --from 2099-01-01"), 2); /* after today */
    assert_int_equal(ctl("report daily --from 1990-01-01 --to 2026-01-01"), 2);
    assert_true(printed("err", "at most 3660"));
    assert_int_equal(ctl("report monthly --from 2026-13"), 2);
    assert_int_equal(ctl("report daily --format xml"), 2);
    assert_true(printed("err", "--format wants table, csv or json, not 'xml'"));
    assert_int_equal(ctl("report daily --month 2026-03"), 2);
    assert_int_equal(ctl("report daily --department ''"), 2);
    assert_int_equal(ctl("report daily --department nowhere"), 1);
    assert_true(printed("err", "unknown department 'nowhere' (departments: north, south)"));
    assert_int_equal(ctl("report agents --department nowhere --month 2026-03"), 1);
    assert_int_equal(ctl("report agents"), 2);
    assert_true(printed("err", "agents wants --month YYYY-MM"));
    assert_int_equal(ctl("report agents --month 2026-3"), 2);
    assert_int_equal(ctl("report agents --month 2026-03-01"), 2);
    assert_int_equal(ctl("report agents --month 2026-03 --from 2026-03-01"), 2);
    assert_int_equal(ctl("report monthly-saved"), 2);
    assert_int_equal(ctl("report monthly-saved --month 2026-03 --department north"), 2);
    assert_int_equal(ctl("report rebuild --format json"), 2);
    assert_int_equal(ctl("report status --format csv"), 2);
    assert_int_equal(ctl("report daily --bogus"), 2);
    assert_int_equal(ctl("report daily --format"), 2);
    /* no database: 3 */
    assert_int_equal(ctl("--dsn 'host=127.0.0.1 port=1 dbname=x user=x' --timeout 2 report daily"), 3);

    /* none of them changed anything */
    char *after = itest_db_fingerprint(pg);
    assert_string_equal(fp, after);
    free(fp);
    free(after);

    /* help for each */
    assert_int_equal(ctl("report --help"), 0);
    assert_true(printed("out", "redressctl report monthly-saved --month YYYY-MM"));
    assert_int_equal(ctl("report daily --help"), 0);
    assert_true(printed("out", "usage: redressctl report daily|monthly"));
    assert_false(printed("out", "report agents"));
    assert_int_equal(ctl("report monthly --format csv -h"), 0);
    assert_true(printed("out", "usage: redressctl report daily|monthly"));
    assert_int_equal(ctl("report agents --help"), 0);
    assert_true(printed("out", "usage: redressctl report agents --month YYYY-MM"));
    assert_int_equal(ctl("report --month 2026-03 monthly-saved --help"), 0);
    assert_true(printed("out", "usage: redressctl report monthly-saved"));
    assert_int_equal(ctl("report rebuild --help"), 0);
    assert_true(printed("out", "usage: redressctl report rebuild"));
    assert_int_equal(ctl("report status --help"), 0);
    assert_true(printed("out", "redressctl report status [--format table|json]"));
    assert_int_equal(ctl("help report"), 0);
    assert_true(printed("out", "usage: redressctl report daily|monthly"));
    assert_int_equal(ctl("--help"), 0);
    assert_true(printed("out", "  report "));
}

int main(void)
{
    const char *d = getenv("REDRESS_TEST_DIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_daily_csv), cmocka_unit_test(test_monthly_csv),   cmocka_unit_test(test_daily_json),
        cmocka_unit_test(test_tables),    cmocka_unit_test(test_agents),        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_saved),     cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_rebuild_status),
    };

    snprintf(dir, sizeof(dir), "%s", d != NULL ? d : "/tmp");
    pg = itest_pg();
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    PQfinish(pg);
    return rc;
}
