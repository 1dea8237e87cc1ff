/*
 * dashboard.c -- the reporting dashboard: HTML pages and SVG charts rendered here, from the
 * rollups (reporting.rollup_day), the backlog view and the organisation tables. See dashboard.h
 * for the routes and docs/dashboard.md for what every number means.
 *
 * One request = one READ ONLY REPEATABLE READ transaction of a handful of statements, all
 * parameterised (PQexecParams). The period is read with ONE scan of rollup_day (GROUPING SETS:
 * per day and business type, per category, per department or per agent); the day x type sums
 * give the headline numbers, the volume chart and the daily rates, so the cost grows with the
 * rollup rows of the period, never with the number of tickets. Only the backlog (open tickets
 * now) reads reporting.backlog, i.e. the open facts.
 *
 * The formulas are those of reporting.kpi_daily and reporting.sla_compliance_daily:
 *   on-time rate (及时率)    = SLA decisions met / (met + breached), all four clocks
 *   satisfaction (满意率)     = satisfied (4 or 5) / return visits
 *   repeat rate (重复投诉率)  = repeats / received
 *   avg business hours        = res_bs / resolved / 3600
 *
 * Rendering never touches the database: the model is loaded under the connection mutex, then the
 * page is built from it. Text from the database is escaped for HTML and XML (which also makes it
 * safe in attributes); C0 control characters, which XML forbids, become U+FFFD.
 */
#include "dashboard.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "rd_log.h"
#include "rd_metrics.h"
#include "rd_pg.h"
#include "rd_time.h"

#define MAX_DAYS    366 /* longest period a page may ask for */
#define DEFAULT_DAY 30  /* default period: the last 30 local days, today included */
#define TOP_CATS    10
#define MAX_PARAM   256 /* longest query parameter value we accept (decoded) */
#define NCLOCKS     4

static const char html_type[] = "text/html; charset=utf-8";
static const char svg_type[] = "image/svg+xml; charset=utf-8";
static const char text_type[] = "text/plain; charset=utf-8";

static const char *const clock_names[NCLOCKS] = {"accept", "first_response", "chase_update", "resolution"};
static const char *const clock_labels[NCLOCKS] = {"受理 Accept", "首次响应 First response", "催办答复 Chase answer",
                                                  "办结 Resolution"};

/* reporting.backlog's age buckets, in order; the labels are markup (escaped already). */
#define NAGES 5
static const char *const age_codes[NAGES] = {"0-1d", "1-3d", "3-7d", "7-30d", "30d+"};
static const char *const age_labels[NAGES] = {"1天内 &lt;1d", "1–3天 1–3d", "3–7天 3–7d", "7–30天 7–30d",
                                              "30天以上 30d+"};

/* Tableau 10: distinguishable, and readable in grey-scale prints. */
static const char *const palette[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                      "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#17becf"};
#define NPALETTE   (sizeof(palette) / sizeof(palette[0]))
#define GREY       "#bab0ac"
#define ACCENT     "#2f6db5"
#define FONT_STACK "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',system-ui,sans-serif"

/* ---- growing string buffer -------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 8192;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        sb_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_put(b, big, (size_t)n);
    free(big);
}

/* Text for HTML or XML, in content or in a quoted attribute. */
static void sb_esc(sbuf *b, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                rep = "\xEF\xBF\xBD"; /* U+FFFD: XML 1.0 has no control characters */
        }
        if (rep != NULL) {
            sb_put(b, run, (size_t)(s - run));
            sb_puts(b, rep);
            run = s + 1;
        }
    }
    sb_put(b, run, (size_t)(s - run));
}

/* Like sb_esc, cut to about max_cols columns (CJK counts two) with an ellipsis. */
static void sb_esc_cut(sbuf *b, const char *s, int max_cols)
{
    int cols = 0;
    size_t i = 0, cut = 0, n = strlen(s);
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        int w = c < 0xE0 ? 1 : 2;
        if (cols + w > max_cols)
            break;
        cols += w;
        i += len;
        cut = i > n ? n : i;
    }
    if (i >= n) {
        sb_esc(b, s);
        return;
    }
    char *part = strndup(s, cut);
    if (part == NULL) {
        b->oom = true;
        return;
    }
    sb_esc(b, part);
    sb_puts(b, "…");
    free(part);
}

/* A query-string component: everything but unreserved characters percent-encoded. */
static void sb_urlenc(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            sb_put(b, (const char *)&c, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_put(b, e, 3);
        }
    }
}

/* 1234567 -> "1,234,567" */
static void sb_count(sbuf *b, long long v)
{
    char digits[32], out[48];
    bool neg = v < 0;
    unsigned long long u = neg ? (unsigned long long)(-(v + 1)) + 1 : (unsigned long long)v;
    int n = snprintf(digits, sizeof(digits), "%llu", u);
    int o = 0;
    if (neg)
        out[o++] = '-';
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    sb_put(b, out, (size_t)o);
}

/* ---- dates: days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithms) - */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Exactly YYYY-MM-DD, a real day between 1970 and 9999. */
static bool parse_date(const char *s, int64_t *out)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
            return false;
    int y = atoi(s);
    unsigned m = (unsigned)atoi(s + 5), d = (unsigned)atoi(s + 8);
    static const unsigned mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || m < 1 || m > 12 || d < 1)
        return false;
    if (d > mdays[m - 1] + (m == 2 && is_leap(y)))
        return false;
    *out = days_from_civil(y, m, d);
    return true;
}

static void fmt_date(int64_t day, char out[16])
{
    int y;
    unsigned m, d;
    civil_from_days(day, &y, &m, &d);
    snprintf(out, 16, "%04d-%02u-%02u", y % 10000, m % 100, d % 100);
}

/* ---- the request's parameters ----------------------------------------------------------------- */

typedef struct {
    char from[MAX_PARAM], to[MAX_PARAM], dept[MAX_PARAM], chart[MAX_PARAM];
    bool has_from, has_to, has_dept, has_chart;
} params;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes n bytes of s ('+' = space, %XX) into out; false when too long, malformed or NUL. */
static bool url_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return false;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return false;
            c = h * 16 + l;
            i += 2;
        }
        if (c == 0 || o + 1 >= outlen)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

/* Parses the raw query; false + msg for a parameter we cannot read. Unknown keys are ignored. */
static bool parse_params(const char *query, params *p, char *msg, size_t msglen)
{
    memset(p, 0, sizeof(*p));
    const char *s = query ? query : "";
    while (*s) {
        const char *amp = strchr(s, '&');
        size_t len = amp ? (size_t)(amp - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        size_t klen = eq ? (size_t)(eq - s) : len;
        const char *v = eq ? eq + 1 : s + len;
        size_t vlen = eq ? len - klen - 1 : 0;
        char key[32];
        if (klen > 0 && url_decode(s, klen, key, sizeof(key))) {
            char *dst = NULL;
            bool *has = NULL;
            if (strcmp(key, "from") == 0)
                dst = p->from, has = &p->has_from;
            else if (strcmp(key, "to") == 0)
                dst = p->to, has = &p->has_to;
            else if (strcmp(key, "id") == 0 || strcmp(key, "department") == 0)
                dst = p->dept, has = &p->has_dept;
            else if (strcmp(key, "chart") == 0)
                dst = p->chart, has = &p->has_chart;
            if (dst != NULL) {
                if (!url_decode(v, vlen, dst, MAX_PARAM)) {
                    snprintf(msg, msglen, "parameter %s: not valid (too long or badly encoded)", key);
                    return false;
                }
                /* An empty value (from the period form left blank) means "not given". */
                *has = dst[0] != '\0';
            }
        }
        s += len;
        if (*s == '&')
            s++;
    }
    return true;
}

/* ---- the model: everything a page shows -------------------------------------------------------- */

typedef struct {
    long long received, resolved, repeats, visits, satisfied, res_bs;
    long long met[NCLOCKS], breached[NCLOCKS];
} kpis;

static long long k_met(const kpis *k)
{
    return k->met[0] + k->met[1] + k->met[2] + k->met[3];
}

static long long k_decided(const kpis *k)
{
    return k_met(k) + k->breached[0] + k->breached[1] + k->breached[2] + k->breached[3];
}

static void k_add(kpis *a, const kpis *b)
{
    a->received += b->received;
    a->resolved += b->resolved;
    a->repeats += b->repeats;
    a->visits += b->visits;
    a->satisfied += b->satisfied;
    a->res_bs += b->res_bs;
    for (int i = 0; i < NCLOCKS; i++) {
        a->met[i] += b->met[i];
        a->breached[i] += b->breached[i];
    }
}

typedef struct {
    char *code, *label; /* label: "投诉 Complaint" */
    long long total;
    int color; /* palette index, -1 = grey */
} btype;

typedef struct {
    char *id, *name; /* name NULL: not in the departments table */
    kpis k;
    long long backlog;
} dept;

typedef struct {
    char *code, *name;
    long long received;
} category;

typedef struct {
    char *team, *agent, *team_name, *agent_name;
    kpis k;
    bool member; /* an active agent of one of the department's teams */
} agentrow;

typedef struct {
    bool dept_page;
    char *dept_id, *dept_name; /* department page, or a chart filtered by department */
    int64_t from, to;
    int ndays;
    char from_s[16], to_s[16], today_s[16], generated[32], tz[64];
    int64_t today;

    kpis total;
    kpis *day; /* [ndays] */
    btype *types;
    int ntypes;
    long long *vol; /* [ndays * ntypes] received per day and type */
    category *cats;
    int ncats;
    dept *depts;
    int ndepts;
    agentrow *agents;
    int nagents;
    long long backlog[NAGES], backlog_total;
} model;

static void model_free(model *m)
{
    free(m->dept_id);
    free(m->dept_name);
    free(m->day);
    for (int i = 0; i < m->ntypes; i++) {
        free(m->types[i].code);
        free(m->types[i].label);
    }
    free(m->types);
    free(m->vol);
    for (int i = 0; i < m->ncats; i++) {
        free(m->cats[i].code);
        free(m->cats[i].name);
    }
    free(m->cats);
    for (int i = 0; i < m->ndepts; i++) {
        free(m->depts[i].id);
        free(m->depts[i].name);
    }
    free(m->depts);
    for (int i = 0; i < m->nagents; i++) {
        free(m->agents[i].team);
        free(m->agents[i].agent);
        free(m->agents[i].team_name);
        free(m->agents[i].agent_name);
    }
    free(m->agents);
    memset(m, 0, sizeof(*m));
}

/* Grows *arr (of elements of size sz) by one zeroed element; returns it or NULL. */
static void *grow(void *arr_ptr, int *n, size_t sz)
{
    void **arr = arr_ptr;
    char *p = realloc(*arr, (size_t)(*n + 1) * sz);
    if (p == NULL)
        return NULL;
    *arr = p;
    memset(p + (size_t)*n * sz, 0, sz);
    return p + (size_t)(*n)++ * sz;
}

static char *dupstr(const char *s)
{
    return strdup(s ? s : "");
}

/* ---- the dashboard object ------------------------------------------------------------------------ */

struct rp_dashboard {
    rd_http *http;
    char *dsn;
    pthread_mutex_t mu; /* guards link */
    rd_pglink link;
};

static rd_metric *m_requests, *m_errors, *m_seconds;

static void metrics_init(void)
{
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
    m_requests = rd_metric_counter("redress_reporting_dashboard_requests_total", "Dashboard pages and charts served.");
    m_errors = rd_metric_counter("redress_reporting_dashboard_errors_total",
                                 "Dashboard requests answered 5xx (database unreachable or failed).");
    m_seconds = rd_metric_histogram("redress_reporting_dashboard_seconds",
                                    "Time to read and render a dashboard page or chart.", bounds, 9);
}

/* ---- reading the database ------------------------------------------------------------------------ */

typedef struct {
    int status; /* 0 = fine; else the HTTP status to answer */
    bool transient;
    char msg[512];
} outcome;

static PGresult *exec(PGconn *c, const char *sql, int n, const char *const *vals, outcome *o)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return r;
    o->status = 503;
    o->transient = rd_pg_is_transient(c, r);
    snprintf(o->msg, sizeof(o->msg), "%s", PQerrorMessage(c));
    size_t l = strlen(o->msg);
    while (l > 0 && (o->msg[l - 1] == '\n' || o->msg[l - 1] == ' '))
        o->msg[--l] = '\0';
    if (!o->transient)
        o->status = 500;
    PQclear(r);
    return NULL;
}

static long long col_ll(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static const char *col_s(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static void oom(outcome *o)
{
    o->status = 500;
    snprintf(o->msg, sizeof(o->msg), "out of memory");
}

static const char sql_now[] = "SELECT (now() AT TIME ZONE s.time_zone)::date::text,"
                              "       to_char(now() AT TIME ZONE s.time_zone, 'YYYY-MM-DD HH24:MI'), s.time_zone"
                              "  FROM reporting.settings s";

static const char sql_dept[] = "SELECT (SELECT d.name FROM departments d WHERE d.id = $1),"
                               "       EXISTS (SELECT 1 FROM departments d WHERE d.id = $1)"
                               "       OR EXISTS (SELECT 1 FROM reporting.rollup_day r WHERE r.department = $1)";

static const char sql_types[] = "SELECT code, name_zh, name_en FROM taxonomy_business_types ORDER BY ord, code";

#define SCAN_SELECT(dims)                                                                                              \
    "SELECT r.bucket::text, r.business_type, r.category, " dims ","                                                    \
    "       sum(r.received), sum(r.resolved), sum(r.repeats), sum(r.visits), sum(r.satisfied), sum(r.res_bs),"         \
    "       sum(r.accept_met), sum(r.first_response_met), sum(r.chase_update_met), sum(r.resolution_met),"             \
    "       sum(r.accept_breached), sum(r.first_response_breached), sum(r.chase_update_breached),"                     \
    "       sum(r.resolution_breached)"                                                                                \
    "  FROM reporting.rollup_day r"                                                                                    \
    " WHERE r.bucket BETWEEN $1::date AND $2::date"

/* One scan of the period; a row's non-NULL key columns say which grouping set it belongs to. */
static const char sql_scan_all[] =
    SCAN_SELECT("r.department, NULL::text, NULL::text") " GROUP BY GROUPING SETS ((r.bucket, r.business_type), "
                                                        "(r.category), (r.department))";
static const char sql_scan_dept[] =
    SCAN_SELECT("NULL::text, r.team, r.agent") " AND r.department = $3"
                                               " GROUP BY GROUPING SETS ((r.bucket, r.business_type), (r.category), "
                                               "(r.team, r.agent))";

static const char sql_backlog[] = "SELECT b.department, b.age, sum(b.tickets)::bigint FROM reporting.backlog b"
                                  " WHERE $1::text IS NULL OR b.department = $1 GROUP BY 1, 2";

static const char sql_depts[] = "SELECT id, name FROM departments";

static const char sql_catnames[] = "SELECT code, name FROM taxonomy_categories WHERE code = ANY ($1::text[])";

static const char sql_agents[] = "SELECT a.id, a.name, a.team_id, t.department_id = $1 AND a.active"
                                 "  FROM agents a JOIN teams t ON t.id = a.team_id"
                                 " WHERE (t.department_id = $1 AND a.active) OR a.id = ANY ($2::text[])";

static const char sql_teams[] = "SELECT id, name FROM teams WHERE department_id = $1 OR id = ANY ($2::text[])";

static int type_index(model *m, const char *code)
{
    for (int i = 0; i < m->ntypes; i++)
        if (strcmp(m->types[i].code, code) == 0)
            return i;
    return -1;
}

static dept *find_dept(model *m, const char *id)
{
    for (int i = 0; i < m->ndepts; i++)
        if (strcmp(m->depts[i].id, id) == 0)
            return &m->depts[i];
    return NULL;
}

static agentrow *find_agent(model *m, const char *team, const char *agent)
{
    for (int i = 0; i < m->nagents; i++)
        if (strcmp(m->agents[i].team, team) == 0 && strcmp(m->agents[i].agent, agent) == 0)
            return &m->agents[i];
    return NULL;
}

static void row_kpis(const PGresult *r, int i, kpis *k)
{
    k->received = col_ll(r, i, 6);
    k->resolved = col_ll(r, i, 7);
    k->repeats = col_ll(r, i, 8);
    k->visits = col_ll(r, i, 9);
    k->satisfied = col_ll(r, i, 10);
    k->res_bs = col_ll(r, i, 11);
    for (int c = 0; c < NCLOCKS; c++) {
        k->met[c] = col_ll(r, i, 12 + c);
        k->breached[c] = col_ll(r, i, 16 + c);
    }
}

static int cmp_cat(const void *a, const void *b)
{
    const category *x = a, *y = b;
    if (x->received != y->received)
        return x->received > y->received ? -1 : 1;
    return strcmp(x->code, y->code);
}

static int cmp_dept(const void *a, const void *b)
{
    const dept *x = a, *y = b;
    if (x->k.received != y->k.received)
        return x->k.received > y->k.received ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int cmp_agent(const void *a, const void *b)
{
    const agentrow *x = a, *y = b;
    int t = strcmp(x->team, y->team);
    if (t != 0) /* the team-less and agent-less rows last */
        return x->team[0] == '\0' ? 1 : y->team[0] == '\0' ? -1 : t;
    if ((x->agent[0] == '\0') != (y->agent[0] == '\0'))
        return x->agent[0] == '\0' ? 1 : -1;
    return strcmp(x->agent, y->agent);
}

/* The business types: the taxonomy in its order, then codes only the rollups know ('' last). */
static bool load_types(PGconn *c, model *m, outcome *o)
{
    PGresult *r = exec(c, sql_types, 0, NULL, o);
    if (r == NULL)
        return false;
    for (int i = 0; i < PQntuples(r); i++) {
        btype *t = grow(&m->types, &m->ntypes, sizeof(*t));
        if (t == NULL) {
            PQclear(r);
            oom(o);
            return false;
        }
        t->code = dupstr(col_s(r, i, 0));
        if (asprintf(&t->label, "%s %s", PQgetvalue(r, i, 1), PQgetvalue(r, i, 2)) < 0)
            t->label = NULL;
        t->color = i % (int)NPALETTE;
        if (t->code == NULL || t->label == NULL) {
            PQclear(r);
            oom(o);
            return false;
        }
    }
    PQclear(r);
    return true;
}

static bool add_type(model *m, const char *code, outcome *o)
{
    btype *t = grow(&m->types, &m->ntypes, sizeof(*t));
    if (t == NULL) {
        oom(o);
        return false;
    }
    t->code = dupstr(code);
    t->label = dupstr(code[0] ? code : "未分类 Unclassified");
    t->color = code[0] ? (m->ntypes - 1) % (int)NPALETTE : -1;
    if (t->code == NULL || t->label == NULL) {
        oom(o);
        return false;
    }
    return true;
}

static bool load_scan(PGconn *c, model *m, outcome *o)
{
    const char *vals[3] = {m->from_s, m->to_s, m->dept_id};
    PGresult *r = exec(c, m->dept_id ? sql_scan_dept : sql_scan_all, m->dept_id ? 3 : 2, vals, o);
    if (r == NULL)
        return false;
    int n = PQntuples(r);
    /* First pass: business types the taxonomy does not list, so the volume matrix can be sized. */
    for (int i = 0; i < n; i++) {
        const char *bt = col_s(r, i, 1);
        if (col_s(r, i, 0) != NULL && bt != NULL && type_index(m, bt) < 0 && bt[0] != '\0' && !add_type(m, bt, o))
            goto fail;
    }
    for (int i = 0; i < n; i++) {
        const char *bt = col_s(r, i, 1);
        if (col_s(r, i, 0) != NULL && bt != NULL && bt[0] == '\0' && type_index(m, "") < 0 && !add_type(m, "", o))
            goto fail;
    }
    m->day = calloc((size_t)m->ndays, sizeof(*m->day));
    m->vol = calloc((size_t)m->ndays * (size_t)(m->ntypes ? m->ntypes : 1), sizeof(*m->vol));
    if (m->day == NULL || m->vol == NULL) {
        oom(o);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        kpis k = {0};
        row_kpis(r, i, &k);
        const char *bucket = col_s(r, i, 0), *cat = col_s(r, i, 2), *dep = col_s(r, i, 3);
        const char *team = col_s(r, i, 4), *agent = col_s(r, i, 5);
        if (bucket != NULL) {
            int64_t day;
            int t = type_index(m, col_s(r, i, 1) ? col_s(r, i, 1) : "");
            if (!parse_date(bucket, &day) || day < m->from || day > m->to || t < 0)
                continue; /* cannot happen: the WHERE clause bounds it */
            int di = (int)(day - m->from);
            k_add(&m->day[di], &k);
            k_add(&m->total, &k);
            m->vol[(size_t)di * (size_t)m->ntypes + (size_t)t] += k.received;
            m->types[t].total += k.received;
        } else if (cat != NULL) {
            if (k.received == 0)
                continue;
            category *ct = grow(&m->cats, &m->ncats, sizeof(*ct));
            if (ct == NULL || (ct->code = dupstr(cat)) == NULL) {
                oom(o);
                goto fail;
            }
            ct->received = k.received;
        } else if (dep != NULL) {
            dept *d = grow(&m->depts, &m->ndepts, sizeof(*d));
            if (d == NULL || (d->id = dupstr(dep)) == NULL) {
                oom(o);
                goto fail;
            }
            d->k = k;
        } else if (team != NULL && agent != NULL) {
            agentrow *a = grow(&m->agents, &m->nagents, sizeof(*a));
            if (a == NULL || (a->team = dupstr(team)) == NULL || (a->agent = dupstr(agent)) == NULL) {
                oom(o);
                goto fail;
            }
            a->k = k;
        }
    }
    PQclear(r);
    qsort(m->cats, (size_t)m->ncats, sizeof(*m->cats), cmp_cat);
    return true;
fail:
    PQclear(r);
    return false;
}

static bool load_backlog(PGconn *c, model *m, outcome *o)
{
    const char *vals[1] = {m->dept_id};
    PGresult *r = exec(c, sql_backlog, 1, vals, o);
    if (r == NULL)
        return false;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *dep = col_s(r, i, 0), *age = col_s(r, i, 1);
        long long v = col_ll(r, i, 2);
        for (int a = 0; a < NAGES; a++)
            if (age != NULL && strcmp(age, age_codes[a]) == 0)
                m->backlog[a] += v;
        m->backlog_total += v;
        if (!m->dept_page && dep != NULL) {
            dept *d = find_dept(m, dep);
            if (d == NULL) {
                d = grow(&m->depts, &m->ndepts, sizeof(*d));
                if (d == NULL || (d->id = dupstr(dep)) == NULL) {
                    PQclear(r);
                    oom(o);
                    return false;
                }
            }
            d->backlog += v;
        }
    }
    PQclear(r);
    return true;
}

/* Names of the departments; every department of the organisation gets a row, with or without data. */
static bool load_dept_names(PGconn *c, model *m, outcome *o)
{
    PGresult *r = exec(c, sql_depts, 0, NULL, o);
    if (r == NULL)
        return false;
    for (int i = 0; i < PQntuples(r); i++) {
        dept *d = find_dept(m, PQgetvalue(r, i, 0));
        if (d == NULL) {
            d = grow(&m->depts, &m->ndepts, sizeof(*d));
            if (d == NULL || (d->id = dupstr(PQgetvalue(r, i, 0))) == NULL) {
                PQclear(r);
                oom(o);
                return false;
            }
        }
        free(d->name);
        if ((d->name = dupstr(PQgetvalue(r, i, 1))) == NULL) {
            PQclear(r);
            oom(o);
            return false;
        }
    }
    PQclear(r);
    /* Every department of the organisation; others (the "no department yet" row, a unit since
     * removed) only with a number to show. */
    int w = 0;
    for (int i = 0; i < m->ndepts; i++) {
        dept *d = &m->depts[i];
        if (d->name == NULL && d->k.received == 0 && d->k.resolved == 0 && k_decided(&d->k) == 0 && d->k.visits == 0 &&
            d->backlog == 0) {
            free(d->id);
            free(d->name);
            continue;
        }
        m->depts[w++] = *d;
    }
    m->ndepts = w;
    qsort(m->depts, (size_t)m->ndepts, sizeof(*m->depts), cmp_dept);
    return true;
}

static bool load_cat_names(PGconn *c, model *m, outcome *o)
{
    int n = m->ncats < TOP_CATS ? m->ncats : TOP_CATS;
    if (n == 0)
        return true;
    rd_pgarr a;
    rd_pgarr_init(&a);
    for (int i = 0; i < n; i++)
        rd_pgarr_str(&a, m->cats[i].code);
    const char *vals[1] = {rd_pgarr_finish(&a)};
    PGresult *r = exec(c, sql_catnames, 1, vals, o);
    rd_pgarr_free(&a);
    if (r == NULL)
        return false;
    for (int i = 0; i < PQntuples(r); i++)
        for (int k = 0; k < n; k++)
            if (m->cats[k].name == NULL && strcmp(m->cats[k].code, PQgetvalue(r, i, 0)) == 0)
                m->cats[k].name = dupstr(PQgetvalue(r, i, 1));
    PQclear(r);
    return true;
}

/* The agents of the department (with or without tickets in the period) and the names of all. */
static bool load_agents(PGconn *c, model *m, outcome *o)
{
    rd_pgarr agents, teams;
    rd_pgarr_init(&agents);
    rd_pgarr_init(&teams);
    for (int i = 0; i < m->nagents; i++) {
        rd_pgarr_str(&agents, m->agents[i].agent);
        rd_pgarr_str(&teams, m->agents[i].team);
    }
    const char *va[2] = {m->dept_id, rd_pgarr_finish(&agents)};
    PGresult *r = exec(c, sql_agents, 2, va, o);
    rd_pgarr_free(&agents);
    if (r == NULL) {
        rd_pgarr_free(&teams);
        return false;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0), *name = PQgetvalue(r, i, 1), *team = PQgetvalue(r, i, 2);
        bool member = strcmp(PQgetvalue(r, i, 3), "t") == 0;
        agentrow *a = member ? find_agent(m, team, id) : NULL;
        if (member && a == NULL) {
            a = grow(&m->agents, &m->nagents, sizeof(*a));
            if (a == NULL || (a->team = dupstr(team)) == NULL || (a->agent = dupstr(id)) == NULL) {
                PQclear(r);
                rd_pgarr_free(&teams);
                oom(o);
                return false;
            }
            rd_pgarr_str(&teams, team);
        }
        if (a != NULL)
            a->member = true;
        for (int k = 0; k < m->nagents; k++)
            if (m->agents[k].agent_name == NULL && strcmp(m->agents[k].agent, id) == 0)
                m->agents[k].agent_name = dupstr(name);
    }
    PQclear(r);
    const char *vt[2] = {m->dept_id, rd_pgarr_finish(&teams)};
    r = exec(c, sql_teams, 2, vt, o);
    rd_pgarr_free(&teams);
    if (r == NULL)
        return false;
    for (int i = 0; i < PQntuples(r); i++)
        for (int k = 0; k < m->nagents; k++)
            if (m->agents[k].team_name == NULL && strcmp(m->agents[k].team, PQgetvalue(r, i, 0)) == 0)
                m->agents[k].team_name = dupstr(PQgetvalue(r, i, 1));
    PQclear(r);
    /* Every active agent of the department; others (a ticket's owner since moved to another
     * department, "no agent yet") only with a number to show. */
    int w = 0;
    for (int i = 0; i < m->nagents; i++) {
        agentrow *a = &m->agents[i];
        if (!a->member && a->k.received == 0 && a->k.resolved == 0 && k_decided(&a->k) == 0 && a->k.visits == 0) {
            free(a->team);
            free(a->agent);
            free(a->team_name);
            free(a->agent_name);
            continue;
        }
        m->agents[w++] = *a;
    }
    m->nagents = w;
    qsort(m->agents, (size_t)m->nagents, sizeof(*m->agents), cmp_agent);
    return true;
}

/* The period: given or the default, checked. 0 or 400 with the reason. */
static int resolve_period(const params *p, model *m, char *msg, size_t msglen)
{
    int64_t from = 0, to = 0;
    if (p->has_from && !parse_date(p->from, &from)) {
        snprintf(msg, msglen, "from: '%.40s' is not a date; use YYYY-MM-DD (e.g. 2026-11-01)", p->from);
        return 400;
    }
    if (p->has_to && !parse_date(p->to, &to)) {
        snprintf(msg, msglen, "to: '%.40s' is not a date; use YYYY-MM-DD (e.g. 2026-11-30)", p->to);
        return 400;
    }
    if (!p->has_to)
        to = p->has_from && from + DEFAULT_DAY - 1 < m->today ? from + DEFAULT_DAY - 1 : m->today;
    if (!p->has_from)
        from = to - (DEFAULT_DAY - 1);
    if (from > to) {
        snprintf(msg, msglen, "from (%.40s) is after to (%.40s)", p->has_from ? p->from : "default",
                 p->has_to ? p->to : "today");
        return 400;
    }
    if (to - from + 1 > MAX_DAYS) {
        snprintf(msg, msglen, "the period has %lld days; at most %d are allowed", (long long)(to - from + 1), MAX_DAYS);
        return 400;
    }
    m->from = from;
    m->to = to;
    m->ndays = (int)(to - from + 1);
    fmt_date(from, m->from_s);
    fmt_date(to, m->to_s);
    return 0;
}

/* Everything of one page, in one read-only snapshot. */
static void load_all(PGconn *c, const params *p, model *m, outcome *o)
{
    PGresult *r = exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, o);
    if (r == NULL)
        return;
    PQclear(r);
    if ((r = exec(c, sql_now, 0, NULL, o)) == NULL)
        goto end;
    if (PQntuples(r) != 1 || !parse_date(PQgetvalue(r, 0, 0), &m->today)) {
        PQclear(r);
        o->status = 500;
        snprintf(o->msg, sizeof(o->msg), "reporting.settings: no row, or a time zone PostgreSQL rejects");
        goto end;
    }
    snprintf(m->today_s, sizeof(m->today_s), "%s", PQgetvalue(r, 0, 0));
    snprintf(m->generated, sizeof(m->generated), "%s", PQgetvalue(r, 0, 1));
    snprintf(m->tz, sizeof(m->tz), "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    if ((o->status = resolve_period(p, m, o->msg, sizeof(o->msg))) != 0)
        goto end;
    if (p->has_dept) {
        m->dept_id = dupstr(p->dept);
        const char *vals[1] = {m->dept_id};
        if (m->dept_id == NULL) {
            oom(o);
            goto end;
        }
        if ((r = exec(c, sql_dept, 1, vals, o)) == NULL)
            goto end;
        bool exists = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 1), "t") == 0;
        if (exists && !PQgetisnull(r, 0, 0))
            m->dept_name = dupstr(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (!exists) {
            o->status = 404;
            snprintf(o->msg, sizeof(o->msg), "no department with id '%.64s'", p->dept);
            goto end;
        }
    }
    if (!load_types(c, m, o) || !load_scan(c, m, o) || !load_backlog(c, m, o) || !load_cat_names(c, m, o))
        goto end;
    if (m->dept_page && !load_agents(c, m, o))
        goto end;
    if (!m->dept_page && !m->dept_id && !load_dept_names(c, m, o))
        goto end;
end:
    /* A read-only transaction: ending it either way is the same. On a broken link this fails too. */
    r = PQexec(c, "ROLLBACK");
    PQclear(r);
}

static const char *status_reason(int status)
{
    switch (status) {
    case 400:
        return "Bad request";
    case 404:
        return "Not found";
    case 503:
        return "Service unavailable";
    default:
        return "Internal error";
    }
}

/* Loads the model under the connection mutex; retries once on a fresh connection when the old
 * one turns out to be broken (the server restarted since the last request). */
static void load(rp_dashboard *d, const params *p, bool dept_page, model *m, outcome *o)
{
    pthread_mutex_lock(&d->mu);
    for (int attempt = 0; attempt < 2; attempt++) {
        memset(o, 0, sizeof(*o));
        model_free(m);
        m->dept_page = dept_page;
        bool fresh = false;
        if (!rd_pglink_ensure(&d->link, &fresh)) {
            o->status = 503;
            snprintf(o->msg, sizeof(o->msg), "the reporting database is not reachable; try again shortly");
            break;
        }
        if (fresh) {
            /* Belt and braces: nothing here writes, and nothing may run away with the HTTP thread.
             * JIT compiles for tens of milliseconds to save less on scans of this size: off. */
            char err[256];
            if (!rd_pg_command(d->link.conn,
                               "SET default_transaction_read_only = on; SET statement_timeout = '10s';"
                               " SET DateStyle = 'ISO, YMD'; SET jit = off",
                               err, sizeof(err))) {
                rd_pglink_drop(&d->link, err);
                continue;
            }
        }
        load_all(d->link.conn, p, m, o);
        if (o->status == 0 || o->status == 400 || o->status == 404)
            break;
        rd_log(RD_LOG_WARN, "dashboard: query failed", "error", o->msg, (char *)NULL);
        if (!o->transient)
            break;
        rd_pglink_drop(&d->link, o->msg);
        snprintf(o->msg, sizeof(o->msg), "the reporting database is not reachable; try again shortly");
    }
    pthread_mutex_unlock(&d->mu);
    if (o->status == 500)
        snprintf(o->msg, sizeof(o->msg), "the dashboard could not read the database (see the service log)");
}

/* ---- SVG charts ---------------------------------------------------------------------------------- */

#define CW      640  /* chart width (viewBox units) */
#define CW_WIDE 1280 /* the volume chart: a full row */
#define ML      52   /* margins: left (y labels), right, top, bottom (x labels) */
#define MR      16
#define MT      14
#define MB      30

/* The 1-2-2.5-5 step at or above raw; integral: whole numbers only (no 2.5 below 10). */
static double nice_step(double raw, bool integral)
{
    if (raw <= 0)
        return 1;
    double e = pow(10, floor(log10(raw)));
    double f = raw / e;
    bool quarter = !integral || e >= 10;
    double step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 && quarter ? 2.5 : f <= 5 ? 5 : 10) * e;
    return integral && step < 1 ? 1 : step;
}

/* Axis top and step for values up to vmax (about four steps). */
static void axis(double vmax, bool integral, double *top, double *step)
{
    *step = nice_step(vmax > 0 ? vmax / 4 : 0.25, integral);
    *top = *step * ceil(vmax / *step);
    if (*top <= 0)
        *top = *step * 4;
}

static void svg_open(sbuf *b, const char *chart, const model *m, int cw, int h, bool standalone, const char *label)
{
    if (standalone)
        sb_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    sb_printf(b,
              "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" data-chart=\"%s\" data-from=\"%s\" "
              "data-to=\"%s\"",
              chart, m->from_s, m->to_s);
    if (m->dept_id != NULL) {
        sb_puts(b, " data-department=\"");
        sb_esc(b, m->dept_id);
        sb_puts(b, "\"");
    }
    sb_printf(b, " viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" aria-label=\"", cw, h, cw, h);
    sb_esc(b, label);
    sb_puts(b, "\" font-family=\"" FONT_STACK "\" font-size=\"11\">");
    if (standalone) {
        sb_printf(b, "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><title>", cw, h);
        sb_esc(b, label);
        sb_puts(b, "</title>");
    }
}

/* "No data" centred on the plot; y is its baseline. */
static void svg_no_data(sbuf *b, int cw, int y)
{
    sb_printf(b,
              "<text class=\"no-data\" x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#8a94a6\" font-size=\"14\">"
              "无数据 No data</text>",
              (ML + cw - MR) / 2, y);
}

/* Horizontal grid lines and y labels; pct: values are fractions shown as percentages. */
static void y_axis(sbuf *b, int cw, double top, double step, int y0, int y1, bool pct)
{
    for (double v = 0; v <= top + step / 2; v += step) {
        double y = y1 - (v / top) * (y1 - y0);
        sb_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>", ML, cw - MR, y, y,
                  v == 0 ? "#9aa3b2" : "#e6e9ef");
        sb_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#5b6475\">", ML - 6, y + 4);
        if (pct)
            sb_printf(b, "%g%%", round(v * 1000) / 10);
        else if (step < 1)
            sb_printf(b, "%g", v);
        else
            sb_count(b, (long long)llround(v));
        sb_puts(b, "</text>");
    }
}

/* Date labels under a day axis: one per 80 units at most, the last day always labelled. */
static void x_days(sbuf *b, const model *m, int cw, int y1)
{
    double bw = (double)(cw - ML - MR) / m->ndays;
    int most = cw / 80, every = (m->ndays + most - 1) / most;
    for (int i = m->ndays - 1; i >= 0; i -= every) {
        char ds[16];
        fmt_date(m->from + i, ds);
        sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#5b6475\">%s</text>", ML + (i + 0.5) * bw,
                  y1 + 16, ds + 5);
    }
}

/* Legend rows under the plot; returns the height it needs (layout only when b is NULL). */
static int legend(sbuf *b, const model *m, int cw, int y)
{
    int x = ML, rows = 0;
    bool any = false;
    for (int t = 0; t < m->ntypes; t++) {
        if (m->types[t].total == 0)
            continue;
        const char *s = m->types[t].label;
        int w = 20;
        for (const unsigned char *u = (const unsigned char *)s; *u; u++)
            w += (*u & 0xC0) == 0x80 ? 0 : *u >= 0xE0 ? 11 : 6;
        if (x + w > cw - MR && x > ML) {
            x = ML;
            rows++;
        }
        any = true;
        if (b != NULL) {
            const char *color = m->types[t].color < 0 ? GREY : palette[m->types[t].color];
            int yy = y + rows * 18;
            sb_printf(b, "<g class=\"legend\" data-type=\"");
            sb_esc(b, m->types[t].code);
            sb_printf(b, "\"><rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" rx=\"2\" fill=\"%s\"/>", x, yy, color);
            sb_printf(b, "<text x=\"%d\" y=\"%d\" fill=\"#333\">", x + 14, yy + 9);
            sb_esc(b, s);
            sb_puts(b, "</text></g>");
        }
        x += w + 10;
    }
    return any ? (rows + 1) * 18 + 4 : 0;
}

static void chart_volume(sbuf *b, const model *m, bool standalone)
{
    int cw = CW_WIDE, plot_h = 220, lh = legend(NULL, m, cw, 0);
    int h = MT + plot_h + MB + lh;
    int y0 = MT, y1 = MT + plot_h;
    svg_open(b, "volume", m, cw, h, standalone, "日工单量（按业务类型） Daily volume by business type");
    double vmax = 0;
    for (int i = 0; i < m->ndays; i++)
        if (m->day[i].received > vmax)
            vmax = (double)m->day[i].received;
    double top, step;
    axis(vmax, true, &top, &step);
    y_axis(b, cw, top, step, y0, y1, false);
    x_days(b, m, cw, y1);
    double bw = (double)(cw - ML - MR) / m->ndays, gap = bw > 4 ? bw * 0.18 : 0;
    for (int i = 0; i < m->ndays; i++) {
        char ds[16];
        fmt_date(m->from + i, ds);
        double acc = 0;
        for (int t = 0; t < m->ntypes; t++) {
            long long v = m->vol[(size_t)i * (size_t)m->ntypes + (size_t)t];
            if (v == 0)
                continue;
            double hh = v / top * plot_h, y = y1 - (acc + v) / top * plot_h;
            acc += (double)v;
            const char *color = m->types[t].color < 0 ? GREY : palette[m->types[t].color];
            sb_printf(b, "<rect class=\"mark\" data-day=\"%s\" data-type=\"", ds);
            sb_esc(b, m->types[t].code);
            sb_printf(b, "\" data-value=\"%lld\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\">", v,
                      ML + i * bw + gap / 2, y, bw - gap > 0.6 ? bw - gap : 0.6, hh, color);
            sb_printf(b, "<title>%s ", ds);
            sb_esc(b, m->types[t].label);
            sb_printf(b, ": %lld</title></rect>", v);
        }
    }
    if (m->total.received == 0)
        svg_no_data(b, cw, MT + plot_h / 2 + 5);
    legend(b, m, cw, y1 + MB);
    sb_puts(b, "</svg>");
}

/* A daily rate num/den as a line with a point per day that has a denominator. */
static void chart_rate(sbuf *b, const model *m, const char *chart, const char *label, bool sla, bool standalone)
{
    int cw = CW, plot_h = 200, h = MT + plot_h + MB;
    int y0 = MT, y1 = MT + plot_h;
    svg_open(b, chart, m, cw, h, standalone, label);
    double rmax = 0;
    int points = 0;
    for (int i = 0; i < m->ndays; i++) {
        const kpis *k = &m->day[i];
        long long num = sla ? k_met(k) : k->repeats, den = sla ? k_decided(k) : k->received;
        if (den > 0 && (double)num / den > rmax)
            rmax = (double)num / den;
    }
    double top = 1, step = 0.25;
    if (!sla) {
        step = nice_step(rmax > 0 ? rmax / 4 : 0.05, false);
        if (step < 0.01)
            step = 0.01;
        top = step * ceil(rmax / step);
        if (top <= 0)
            top = step * 4;
    }
    y_axis(b, cw, top, step, y0, y1, true);
    x_days(b, m, cw, y1);
    double bw = (double)(cw - ML - MR) / m->ndays;
    /* the line, broken where a day has no denominator */
    sb_printf(b, "<path class=\"line\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-linejoin=\"round\" d=\"",
              sla ? ACCENT : "#e15759");
    bool pen = false;
    for (int i = 0; i < m->ndays; i++) {
        const kpis *k = &m->day[i];
        long long num = sla ? k_met(k) : k->repeats, den = sla ? k_decided(k) : k->received;
        if (den == 0) {
            pen = false;
            continue;
        }
        double r = (double)num / den;
        sb_printf(b, "%c%.2f %.2f ", pen ? 'L' : 'M', ML + (i + 0.5) * bw, y1 - r / top * plot_h);
        pen = true;
    }
    sb_puts(b, "\"/>");
    double rad = bw >= 8 ? 3.2 : bw >= 3 ? 2 : 1.2;
    for (int i = 0; i < m->ndays; i++) {
        const kpis *k = &m->day[i];
        long long num = sla ? k_met(k) : k->repeats, den = sla ? k_decided(k) : k->received;
        if (den == 0)
            continue;
        char ds[16];
        fmt_date(m->from + i, ds);
        double r = (double)num / den;
        sb_printf(b,
                  "<circle class=\"mark\" data-day=\"%s\" data-value=\"%.4f\" data-num=\"%lld\" data-den=\"%lld\" "
                  "cx=\"%.2f\" cy=\"%.2f\" r=\"%.1f\" fill=\"#fff\" stroke=\"%s\" stroke-width=\"1.5\">"
                  "<title>%s: %.1f%% (%lld / %lld)</title></circle>",
                  ds, r, num, den, ML + (i + 0.5) * bw, y1 - r / top * plot_h, rad, sla ? ACCENT : "#e15759", ds,
                  r * 100, num, den);
        points++;
    }
    if (points == 0)
        svg_no_data(b, cw, MT + plot_h / 2 + 5);
    sb_puts(b, "</svg>");
}

static void chart_backlog(sbuf *b, const model *m, bool standalone)
{
    int cw = CW, plot_h = 180, h = MT + plot_h + MB + 4;
    int y0 = MT, y1 = MT + plot_h;
    svg_open(b, "backlog", m, cw, h, standalone, "积压工单（按账龄） Open backlog by age");
    double vmax = 0;
    for (int a = 0; a < NAGES; a++)
        if (m->backlog[a] > vmax)
            vmax = (double)m->backlog[a];
    double top, step;
    axis(vmax, true, &top, &step);
    y_axis(b, cw, top, step, y0, y1, false);
    double slot = (double)(cw - ML - MR) / NAGES, bw = slot * 0.56;
    static const char *const age_colors[NAGES] = {"#9ecae1", "#6baed6", "#f2b447", "#ef7d3c", "#d0413e"};
    for (int a = 0; a < NAGES; a++) {
        double x = ML + a * slot + (slot - bw) / 2, hh = m->backlog[a] / top * plot_h;
        sb_printf(b,
                  "<rect class=\"mark\" data-age=\"%s\" data-value=\"%lld\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
                  "height=\"%.2f\" rx=\"2\" fill=\"%s\"><title>%s: %lld</title></rect>",
                  age_codes[a], m->backlog[a], x, y1 - hh, bw, hh, age_colors[a], age_labels[a], m->backlog[a]);
        sb_printf(b, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" fill=\"#333\" font-weight=\"600\">",
                  x + bw / 2, y1 - hh - 5);
        sb_count(b, m->backlog[a]);
        sb_printf(b, "</text><text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\" fill=\"#5b6475\">%s</text>", x + bw / 2,
                  y1 + 17, age_labels[a]);
    }
    sb_puts(b, "</svg>");
}

static void chart_categories(sbuf *b, const model *m, bool standalone)
{
    int cw = CW, n = m->ncats < TOP_CATS ? m->ncats : TOP_CATS, row = 22, lw = 190;
    int h = MT + (n > 0 ? n : 4) * row + 22;
    svg_open(b, "categories", m, cw, h, standalone, "前十类别 Top 10 categories");
    if (n == 0) {
        svg_no_data(b, cw, h / 2 + 5);
        sb_puts(b, "</svg>");
        return;
    }
    double top, step;
    axis((double)m->cats[0].received, true, &top, &step);
    int x0 = lw, x1 = cw - MR - 40;
    for (double v = 0; v <= top + step / 2; v += step) {
        double x = x0 + v / top * (x1 - x0);
        sb_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#e6e9ef\"/>", x, x, MT - 4,
                  MT + n * row);
        sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" fill=\"#5b6475\">", x, MT + n * row + 14);
        sb_count(b, (long long)llround(v));
        sb_puts(b, "</text>");
    }
    for (int i = 0; i < n; i++) {
        const category *c = &m->cats[i];
        const char *name = c->name ? c->name : c->code[0] ? c->code : "未分类 Uncategorised";
        double y = MT + i * row, w = c->received / top * (x1 - x0);
        sb_puts(b, "<g class=\"cat\"><text x=\"");
        sb_printf(b, "%d\" y=\"%.1f\" text-anchor=\"end\" fill=\"#333\">", x0 - 8, y + row / 2.0 + 4);
        sb_esc_cut(b, name, 28);
        sb_puts(b, "</text><rect class=\"mark\" data-category=\"");
        sb_esc(b, c->code);
        sb_puts(b, "\" data-name=\"");
        sb_esc(b, name);
        sb_printf(b, "\" data-value=\"%lld\" x=\"%d\" y=\"%.1f\" width=\"%.2f\" height=\"%d\" rx=\"2\" fill=\"%s\">",
                  c->received, x0, y + 3, w, row - 6, palette[0]);
        sb_puts(b, "<title>");
        sb_esc(b, name);
        sb_printf(b, " (");
        sb_esc(b, c->code);
        sb_printf(b, "): %lld</title></rect>", c->received);
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#333\">", x0 + w + 5, y + row / 2.0 + 4);
        sb_count(b, c->received);
        sb_puts(b, "</text></g>");
    }
    sb_puts(b, "</svg>");
}

typedef enum { CH_VOLUME, CH_SLA, CH_BACKLOG, CH_CATEGORIES, CH_REPEAT, CH_N } chart_id;
static const char *const chart_names[CH_N] = {"volume", "sla", "backlog", "categories", "repeat"};

static void chart(sbuf *b, const model *m, chart_id id, bool standalone)
{
    switch (id) {
    case CH_VOLUME:
        chart_volume(b, m, standalone);
        break;
    case CH_SLA:
        chart_rate(b, m, "sla", "每日及时率 Daily SLA on-time rate", true, standalone);
        break;
    case CH_BACKLOG:
        chart_backlog(b, m, standalone);
        break;
    case CH_CATEGORIES:
        chart_categories(b, m, standalone);
        break;
    default:
        chart_rate(b, m, "repeat", "每日重复投诉率 Daily repeat-complaint rate", false, standalone);
        break;
    }
}

/* ---- HTML ------------------------------------------------------------------------------------------ */

static const char css[] =
    "*{box-sizing:border-box}"
    "body{margin:0;background:#f3f5f9;color:#1f2937;font:14px/1.45 " FONT_STACK "}"
    "a{color:#2f6db5;text-decoration:none}a:hover{text-decoration:underline}"
    "header.top{background:#1f3b63;color:#fff;padding:10px 24px;display:flex;flex-wrap:wrap;gap:12px 24px;"
    "align-items:center;justify-content:space-between}"
    ".brand{font-size:18px;font-weight:700;letter-spacing:.5px}.brand span{font-weight:400;opacity:.8;"
    "margin-left:8px;font-size:14px}"
    "form.period{display:flex;flex-wrap:wrap;gap:8px;align-items:center;font-size:13px}"
    "form.period input{font:inherit;padding:3px 6px;border:1px solid #9fb3d1;border-radius:4px}"
    "form.period button{font:inherit;padding:4px 12px;border:0;border-radius:4px;background:#f2b447;color:#1f2937;"
    "font-weight:600;cursor:pointer}"
    "form.period a{color:#cfe0ff;margin-left:4px}"
    "main{max-width:1360px;margin:0 auto;padding:16px 24px 32px}"
    ".crumbs{font-size:13px;color:#5b6475;margin-bottom:4px}"
    "h1{font-size:22px;margin:0 0 2px}.sub{color:#5b6475;margin:0 0 16px;font-size:13px}"
    ".kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:12px;margin-bottom:16px}"
    ".kpi{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px rgba(16,24,40,.08);"
    "border-top:3px solid #2f6db5}"
    ".kpi .label{color:#5b6475;font-size:13px}.kpi .label span{display:block;font-size:11px;color:#8a94a6}"
    ".kpi .value{font-size:28px;font-weight:700;margin:4px 0 0;font-variant-numeric:tabular-nums}"
    ".kpi .detail{font-size:12px;color:#8a94a6}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px;margin-bottom:16px}"
    ".card{background:#fff;border-radius:8px;padding:14px 16px;box-shadow:0 1px 2px rgba(16,24,40,.08)}"
    ".card h2{font-size:15px;margin:0 0 8px}.card h2 span{font-weight:400;color:#5b6475;margin-left:6px;"
    "font-size:13px}"
    ".card.wide{grid-column:1/-1}"
    ".card .note{font-size:12px;color:#8a94a6;margin:6px 0 0}"
    "svg.chart{width:100%;height:auto;display:block}"
    "table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}"
    "th,td{padding:6px 10px;border-bottom:1px solid #e6e9ef;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child,th.l,td.l{text-align:left}"
    "thead th{font-size:12px;color:#5b6475;font-weight:600;background:#f8f9fb}"
    "thead th span{display:block;font-weight:400;color:#8a94a6}"
    "tbody tr:hover{background:#f5f8fd}td small,th small{color:#8a94a6;margin-left:6px;font-weight:400}"
    "table.mini td,table.mini th{padding:3px 8px;font-size:12px}"
    ".err{background:#fff;border-left:4px solid #d0413e;padding:16px 20px;border-radius:6px}"
    "footer{color:#8a94a6;font-size:12px;text-align:center;padding:0 0 24px}";

static void html_head(sbuf *b, const char *title)
{
    sb_puts(b, "<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline';"
               " img-src 'self' data:; form-action 'self'\">"
               "<link rel=\"icon\" href=\"data:,\"><title>");
    sb_esc(b, title);
    sb_puts(b, "</title><style>");
    sb_puts(b, css);
    sb_puts(b, "</style></head>");
}

/* "?from=..&to=.." (+ "&id=D" when dept) for links, HTML-escaped. */
static void link_period(sbuf *b, const char *path, const char *dept_id, int64_t from, int64_t to)
{
    char f[16], t[16];
    fmt_date(from, f);
    fmt_date(to, t);
    sb_puts(b, path);
    sb_puts(b, "?");
    if (dept_id != NULL) {
        sb_puts(b, "id=");
        sb_urlenc(b, dept_id);
        sb_puts(b, "&amp;");
    }
    sb_printf(b, "from=%s&amp;to=%s", f, t);
}

static void html_top(sbuf *b, const model *m)
{
    const char *path = m->dept_page ? "/department" : "/";
    sb_puts(b, "<header class=\"top\"><div class=\"brand\">Redress 工单报表<span>Reporting dashboard</span></div>"
               "<form class=\"period\" method=\"get\" action=\"");
    sb_puts(b, path);
    sb_puts(b, "\">");
    if (m->dept_page) {
        sb_puts(b, "<input type=\"hidden\" name=\"id\" value=\"");
        sb_esc(b, m->dept_id);
        sb_puts(b, "\">");
    }
    sb_printf(b,
              "<label>从 From <input type=\"date\" name=\"from\" value=\"%s\"></label>"
              "<label>至 To <input type=\"date\" name=\"to\" value=\"%s\"></label>"
              "<button type=\"submit\">查询 Apply</button>",
              m->from_s, m->to_s);
    static const int spans[] = {7, 30, 90, 365};
    for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++) {
        sb_puts(b, "<a href=\"");
        link_period(b, path, m->dept_page ? m->dept_id : NULL, m->today - spans[i] + 1, m->today);
        sb_printf(b, "\">近%d天</a>", spans[i]);
    }
    sb_puts(b, "</form></header>");
}

/* A headline number. */
static void kpi_count(sbuf *b, const char *kpi, const char *zh, const char *en, long long v, const char *detail)
{
    sb_printf(b,
              "<div class=\"kpi\" data-kpi=\"%s\" data-value=\"%lld\"><div class=\"label\">%s<span>%s</span></div>"
              "<div class=\"value\">",
              kpi, v, zh, en);
    sb_count(b, v);
    sb_printf(b, "</div><div class=\"detail\">%s</div></div>", detail);
}

/* A headline rate num/den. */
static void kpi_rate(sbuf *b, const char *kpi, const char *zh, const char *en, long long num, long long den,
                     const char *unit)
{
    sb_printf(b, "<div class=\"kpi\" data-kpi=\"%s\" data-num=\"%lld\" data-den=\"%lld\" data-value=\"", kpi, num, den);
    if (den > 0)
        sb_printf(b, "%.4f", (double)num / den);
    sb_printf(b, "\"><div class=\"label\">%s<span>%s</span></div><div class=\"value\">", zh, en);
    if (den > 0)
        sb_printf(b, "%.1f%%", 100.0 * num / den);
    else
        sb_puts(b, "—");
    sb_puts(b, "</div><div class=\"detail\">");
    sb_count(b, num);
    sb_puts(b, " / ");
    sb_count(b, den);
    sb_printf(b, " %s</div></div>", unit);
}

static void kpi_cards(sbuf *b, const model *m)
{
    const kpis *k = &m->total;
    sb_puts(b, "<section class=\"kpis\">");
    kpi_count(b, "received", "受理量", "Received", k->received, "本期新受理工单 tickets received");
    kpi_count(b, "resolved", "办结量", "Resolved", k->resolved, "本期办结 tickets resolved");
    kpi_rate(b, "on_time_rate", "及时率", "On-time rate", k_met(k), k_decided(k), "时限按时 SLA decisions met");
    kpi_rate(b, "satisfaction_rate", "满意率", "Satisfaction rate", k->satisfied, k->visits,
             "回访满意 return visits satisfied");
    kpi_rate(b, "repeat_rate", "重复投诉率", "Repeat-complaint rate", k->repeats, k->received,
             "重复诉求 repeats of received");
    kpi_count(b, "backlog", "当前积压", "Open backlog (now)", m->backlog_total, "未办结工单 open tickets, now");
    sb_puts(b, "</section>");
}

/* A table cell with a count. */
static void td_count(sbuf *b, const char *kpi, const char *key, const char *id, long long v)
{
    sb_printf(b, "<td data-kpi=\"%s\" data-%s=\"", kpi, key);
    sb_esc(b, id);
    sb_printf(b, "\" data-value=\"%lld\">", v);
    sb_count(b, v);
    sb_puts(b, "</td>");
}

static void td_rate(sbuf *b, const char *kpi, const char *key, const char *id, long long num, long long den)
{
    sb_printf(b, "<td data-kpi=\"%s\" data-%s=\"", kpi, key);
    sb_esc(b, id);
    sb_printf(b, "\" data-num=\"%lld\" data-den=\"%lld\" data-value=\"", num, den);
    if (den > 0)
        sb_printf(b, "%.4f\" title=\"%lld / %lld\">%.1f%%</td>", (double)num / den, num, den, 100.0 * num / den);
    else
        sb_puts(b, "\">—</td>");
}

static void card_open(sbuf *b, const char *zh, const char *en)
{
    sb_printf(b, "<section class=\"card\"><h2>%s<span>%s</span></h2>", zh, en);
}

static void charts_grid(sbuf *b, const model *m)
{
    sb_puts(b, "<div class=\"grid\">");
    sb_puts(b, "<section class=\"card wide\"><h2>日工单量<span>Daily volume by business type</span></h2>");
    chart(b, m, CH_VOLUME, false);
    sb_puts(b, "<p class=\"note\">按受理日（本地时间）计 · by day received, local time</p></section>");

    card_open(b, "及时率趋势", "SLA on-time rate by day");
    chart(b, m, CH_SLA, false);
    sb_puts(b, "<table class=\"mini\"><thead><tr><th>时限 Clock</th><th>按时 Met</th><th>超时 Breached</th>"
               "<th>及时率 On-time</th></tr></thead><tbody>");
    for (int c = 0; c < NCLOCKS; c++) {
        kpis k = {0};
        for (int i = 0; i < m->ndays; i++) {
            k.met[c] += m->day[i].met[c];
            k.breached[c] += m->day[i].breached[c];
        }
        sb_printf(b, "<tr data-clock=\"%s\"><td>%s</td>", clock_names[c], clock_labels[c]);
        td_count(b, "sla_met", "clock", clock_names[c], k.met[c]);
        td_count(b, "sla_breached", "clock", clock_names[c], k.breached[c]);
        td_rate(b, "on_time_rate", "clock", clock_names[c], k.met[c], k.met[c] + k.breached[c]);
        sb_puts(b, "</tr>");
    }
    sb_puts(b, "</tbody></table><p class=\"note\">按时限判定日计 · by the day each SLA clock was met or breached</p>"
               "</section>");

    card_open(b, "重复投诉率", "Repeat-complaint rate by day");
    chart(b, m, CH_REPEAT, false);
    sb_puts(b, "<p class=\"note\">重复诉求 / 受理量，按受理日 · repeats / received, by day received</p></section>");

    card_open(b, "积压账龄", "Open backlog by age (now)");
    chart(b, m, CH_BACKLOG, false);
    sb_puts(b,
            "<p class=\"note\">当前未办结工单，不受所选期间影响 · open tickets now, whatever the period</p></section>");

    card_open(b, "前十类别", "Top 10 categories");
    chart(b, m, CH_CATEGORIES, false);
    sb_puts(b, "<p class=\"note\">本期受理量 · tickets received in the period</p></section>");
    sb_puts(b, "</div>");
}

static void dept_table(sbuf *b, const model *m)
{
    card_open(b, "部门", "Departments");
    sb_puts(b, "<table class=\"departments\"><thead><tr><th>部门<span>Department</span></th>"
               "<th>受理<span>Received</span></th><th>办结<span>Resolved</span></th>"
               "<th>及时率<span>On-time rate</span></th><th>满意率<span>Satisfaction</span></th>"
               "<th>重复诉求<span>Repeats</span></th><th>当前积压<span>Open now</span></th></tr></thead><tbody>");
    for (int i = 0; i < m->ndepts; i++) {
        const dept *d = &m->depts[i];
        sb_puts(b, "<tr data-department=\"");
        sb_esc(b, d->id);
        sb_puts(b, "\"><th class=\"l\">");
        if (d->id[0] != '\0') {
            sb_puts(b, "<a href=\"");
            link_period(b, "/department", d->id, m->from, m->to);
            sb_puts(b, "\">");
            sb_esc(b, d->name ? d->name : d->id);
            sb_puts(b, "</a><small>");
            sb_esc(b, d->id);
            sb_puts(b, "</small>");
        } else {
            sb_puts(b, "未分派 <small>No department yet</small>");
        }
        sb_puts(b, "</th>");
        td_count(b, "received", "department", d->id, d->k.received);
        td_count(b, "resolved", "department", d->id, d->k.resolved);
        td_rate(b, "on_time_rate", "department", d->id, k_met(&d->k), k_decided(&d->k));
        td_rate(b, "satisfaction_rate", "department", d->id, d->k.satisfied, d->k.visits);
        td_count(b, "repeats", "department", d->id, d->k.repeats);
        td_count(b, "backlog", "department", d->id, d->backlog);
        sb_puts(b, "</tr>");
    }
    if (m->ndepts == 0)
        sb_puts(b, "<tr><td colspan=\"7\">无部门 No departments</td></tr>");
    sb_puts(b, "</tbody></table></section>");
}

static void agent_table(sbuf *b, const model *m)
{
    card_open(b, "坐席", "Agents");
    sb_puts(
        b,
        "<table class=\"agents\"><thead><tr><th>班组<span>Team</span></th><th class=\"l\">坐席<span>Agent</span></th>"
        "<th>受理<span>Received</span></th><th>办结<span>Resolved</span></th>"
        "<th>及时率<span>On-time rate</span></th><th>满意率<span>Satisfaction</span></th>"
        "<th>平均办结工时<span>Avg business hours to resolve</span></th></tr></thead><tbody>");
    for (int i = 0; i < m->nagents; i++) {
        const agentrow *a = &m->agents[i];
        sb_puts(b, "<tr data-agent=\"");
        sb_esc(b, a->agent);
        sb_puts(b, "\" data-team=\"");
        sb_esc(b, a->team);
        sb_puts(b, "\"><td>");
        if (a->team[0]) {
            sb_esc(b, a->team_name ? a->team_name : a->team);
            sb_puts(b, "<small>");
            sb_esc(b, a->team);
            sb_puts(b, "</small>");
        } else {
            sb_puts(b, "—");
        }
        sb_puts(b, "</td><td class=\"l\">");
        if (a->agent[0]) {
            sb_esc(b, a->agent_name && a->agent_name[0] ? a->agent_name : a->agent);
            sb_puts(b, "<small>");
            sb_esc(b, a->agent);
            sb_puts(b, "</small>");
        } else {
            sb_puts(b, "未分派 <small>No agent yet</small>");
        }
        sb_puts(b, "</td>");
        td_count(b, "received", "agent", a->agent, a->k.received);
        td_count(b, "resolved", "agent", a->agent, a->k.resolved);
        td_rate(b, "on_time_rate", "agent", a->agent, k_met(&a->k), k_decided(&a->k));
        td_rate(b, "satisfaction_rate", "agent", a->agent, a->k.satisfied, a->k.visits);
        sb_puts(b, "<td data-kpi=\"avg_res_business_h\" data-agent=\"");
        sb_esc(b, a->agent);
        sb_printf(b, "\" data-num=\"%lld\" data-den=\"%lld\" data-value=\"", a->k.res_bs, a->k.resolved);
        if (a->k.resolved > 0) {
            double hrs = (double)a->k.res_bs / a->k.resolved / 3600;
            sb_printf(b, "%.2f\">%.2f h</td>", hrs, hrs);
        } else {
            sb_puts(b, "\">—</td>");
        }
        sb_puts(b, "</tr>");
    }
    if (m->nagents == 0)
        sb_puts(b, "<tr><td colspan=\"7\">无坐席 No agents</td></tr>");
    sb_puts(b, "</tbody></table></section>");
}

static void html_page(sbuf *b, const model *m)
{
    char title[256];
    if (m->dept_page)
        snprintf(title, sizeof(title), "%s · Redress 工单报表", m->dept_name ? m->dept_name : m->dept_id);
    else
        snprintf(title, sizeof(title), "总览 Overview · Redress 工单报表");
    html_head(b, title);
    sb_printf(b, "<body data-page=\"%s\" data-from=\"%s\" data-to=\"%s\" data-today=\"%s\" data-days=\"%d\"",
              m->dept_page ? "department" : "overview", m->from_s, m->to_s, m->today_s, m->ndays);
    if (m->dept_page) {
        sb_puts(b, " data-department=\"");
        sb_esc(b, m->dept_id);
        sb_puts(b, "\"");
    }
    sb_puts(b, ">");
    html_top(b, m);
    sb_puts(b, "<main>");
    if (m->dept_page) {
        sb_puts(b, "<div class=\"crumbs\"><a href=\"");
        link_period(b, "/", NULL, m->from, m->to);
        sb_puts(b, "\">← 总览 Overview</a></div><h1>");
        sb_esc(b, m->dept_name ? m->dept_name : m->dept_id);
        sb_puts(b, " <small style=\"font-weight:400;color:#8a94a6;font-size:14px\">");
        sb_esc(b, m->dept_id);
        sb_puts(b, "</small></h1>");
    } else {
        sb_puts(b, "<h1>总览 <span style=\"font-weight:400\">Overview</span></h1>");
    }
    sb_printf(b, "<p class=\"sub\">%s 至 %s · %d 天 days · %s</p>", m->from_s, m->to_s, m->ndays, m->tz);
    kpi_cards(b, m);
    charts_grid(b, m);
    if (m->dept_page)
        agent_table(b, m);
    else
        dept_table(b, m);
    sb_printf(b,
              "</main><footer>Redress · 数据来自报表汇总表 from the reporting rollups · 生成于 generated %s (%s)"
              "</footer></body></html>\n",
              m->generated, m->tz);
}

static void html_error(sbuf *b, int status, const char *msg)
{
    char title[64];
    snprintf(title, sizeof(title), "%d %s · Redress", status, status_reason(status));
    html_head(b, title);
    sb_printf(b,
              "<body data-page=\"error\" data-status=\"%d\"><header class=\"top\"><div class=\"brand\">Redress 工单报表"
              "<span>Reporting dashboard</span></div></header><main><div class=\"err\"><h1>%d %s</h1><p "
              "class=\"message\">",
              status, status, status_reason(status));
    sb_esc(b, msg);
    sb_puts(b, "</p><p><a href=\"/\">← 总览 Overview</a></p></div></main></body></html>\n");
}

/* ---- the route -------------------------------------------------------------------------------------- */

typedef enum { PAGE_OVERVIEW, PAGE_DEPARTMENT, PAGE_SVG, PAGE_NONE } page_kind;

static page_kind page_of(const char *path)
{
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
        return PAGE_OVERVIEW;
    if (strcmp(path, "/department") == 0)
        return PAGE_DEPARTMENT;
    if (strcmp(path, "/dashboard.svg") == 0)
        return PAGE_SVG;
    return PAGE_NONE;
}

static int finish(sbuf *b, int status, const char *type, char **body, size_t *body_len, const char **content_type)
{
    if (b->oom || b->p == NULL) {
        free(b->p);
        *body = strdup("out of memory\n");
        *body_len = *body ? strlen(*body) : 0;
        *content_type = text_type;
        return 500;
    }
    *body = b->p;
    *body_len = b->len;
    *content_type = type;
    return status;
}

static int handle(void *arg, const char *path, const char *query, char **body, size_t *body_len,
                  const char **content_type)
{
    rp_dashboard *d = arg;
    int64_t t0 = rd_mono_us();
    sbuf b = {0};
    page_kind pk = page_of(path);
    params p;
    outcome o = {0};
    int status = 200;
    chart_id ch = CH_N;

    rd_metric_inc(m_requests, 1);
    if (pk == PAGE_NONE) {
        status = 404;
        snprintf(o.msg, sizeof(o.msg), "no page at %.200s", path);
    } else if (!parse_params(query, &p, o.msg, sizeof(o.msg))) {
        status = 400;
    } else if (pk == PAGE_DEPARTMENT && !p.has_dept) {
        status = 400;
        snprintf(o.msg, sizeof(o.msg), "id: which department? e.g. /department?id=south");
    } else if (pk == PAGE_SVG) {
        for (int i = 0; i < CH_N; i++)
            if (p.has_chart && strcmp(p.chart, chart_names[i]) == 0)
                ch = (chart_id)i;
        if (ch == CH_N) {
            status = 400;
            snprintf(o.msg, sizeof(o.msg), "chart: one of volume, sla, backlog, categories, repeat");
        }
    }
    if (status == 200) {
        model m = {0};
        load(d, &p, pk != PAGE_SVG && p.has_dept, &m, &o);
        if (o.status != 0) {
            status = o.status;
        } else if (pk == PAGE_SVG) {
            chart(&b, &m, ch, true);
        } else {
            html_page(&b, &m);
        }
        model_free(&m);
    }
    const char *type = pk == PAGE_SVG ? svg_type : html_type;
    if (status != 200) {
        free(b.p);
        memset(&b, 0, sizeof(b));
        if (pk == PAGE_SVG) {
            type = text_type;
            sb_printf(&b, "%d %s: %s\n", status, status_reason(status), o.msg);
        } else {
            html_error(&b, status, o.msg);
        }
    }
    if (status >= 500)
        rd_metric_inc(m_errors, 1);
    rd_metric_observe(m_seconds, (double)(rd_mono_us() - t0) / 1e6);
    return finish(&b, status, type, body, body_len, content_type);
}

/* ---- public API ------------------------------------------------------------------------------------- */

rp_dashboard *rp_dashboard_start(rd_http *http, const char *dsn, char *err, int errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (http == NULL || dsn == NULL) {
        snprintf(err, (size_t)errlen, "dashboard: no HTTP server or no DSN");
        return NULL;
    }
    pthread_once(&once, metrics_init);
    rp_dashboard *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->dsn = strdup(dsn)) == NULL) {
        free(d);
        snprintf(err, (size_t)errlen, "dashboard: out of memory");
        return NULL;
    }
    d->http = http;
    pthread_mutex_init(&d->mu, NULL);
    d->link.dsn = d->dsn;
    d->link.app = "redress-reporting-dashboard";
    if (!rd_http_route(http, "/", handle, d)) {
        snprintf(err, (size_t)errlen, "dashboard: cannot add the route / (too many routes?)");
        pthread_mutex_destroy(&d->mu);
        free(d->dsn);
        free(d);
        return NULL;
    }
    return d;
}

void rp_dashboard_stop(rp_dashboard **d)
{
    if (d == NULL || *d == NULL)
        return;
    rp_dashboard *x = *d;
    pthread_mutex_lock(&x->mu);
    if (x->link.conn != NULL)
        PQfinish(x->link.conn);
    x->link.conn = NULL;
    pthread_mutex_unlock(&x->mu);
    pthread_mutex_destroy(&x->mu);
    free(x->dsn);
    free(x);
    *d = NULL;
}
