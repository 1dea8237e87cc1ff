/*
 * ctl_report.c -- redressctl report daily|monthly|agents|monthly-saved|rebuild|status: the KPIs of
 * the reporting schema (deploy/sql/0006_reporting.sql; docs/bi.md) for operators and analysts.
 *
 * daily and monthly read reporting.kpi_daily / kpi_monthly, whose rows are per bucket, business
 * type, channel and department. A report adds the rows of a bucket up (numerators and denominators
 * first, then the rates: never an average of rates) and shows every bucket of the range, empty
 * ones as zeros, with a total line in the table. Buckets are local days and months in
 * reporting.settings.time_zone, so the default ranges (the last 7 days, the last 12 months) are
 * counted from today in that zone, not in the operator's.
 *
 * Every statement is parameterised: the only text pasted into SQL is the constant pieces below.
 * rebuild is the only write (it queues every ticket for the reporting service to refresh).
 */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_utf8.h"
#include "redressctl.h"

enum { OPT_RPT_DEPARTMENT = OPT_LOCAL, OPT_RPT_FROM, OPT_RPT_TO, OPT_RPT_FORMAT, OPT_RPT_MONTH };

/* Which options a subcommand takes: one bit per option, in the order of the enum above. */
#define RPT_BIT(opt) (1u << ((opt)-OPT_RPT_DEPARTMENT))
static const char *const rpt_opt_names[] = {"--department", "--from", "--to", "--format", "--month"};

#define RPT_MAX_DAYS   3660 /* the longest daily report: ten years */
#define RPT_MAX_MONTHS 1200 /* the longest monthly report: a hundred years */

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

typedef enum { FMT_TABLE, FMT_CSV, FMT_JSON } out_format;

/* clang-format off */
#define HELP_DAILY \
    "usage: redressctl report daily|monthly [--department D] [--from DATE] [--to DATE]\n" \
    "                                       [--format table|csv|json]\n" \
    "\n" \
    "  daily           one line per local day  [the last 7 days, today included]\n" \
    "  monthly         one line per local month  [the last 12 months, this one included]\n" \
    "    --department D  only department D (its id or its exact name; default: the whole\n" \
    "                  organisation); adds the columns department and department_name\n" \
    "    --from DATE   the first day, YYYY-MM-DD (monthly also takes YYYY-MM; a day means its\n" \
    "                  month)\n" \
    "    --to DATE     the last day, included  [today in reporting.settings.time_zone]\n" \
    "  Columns: day|month, received, resolved, closed, reopened, repeats, repeat_rate, sla_met,\n" \
    "  sla_breached, on_time_rate, visits, satisfied, satisfaction_rate, avg_frt_business_h,\n" \
    "  avg_res_business_h, escalations. Every count is in the bucket of the instant it describes\n" \
    "  (received at receipt, resolved at resolution, sla_* at the SLA decision, visits at the\n" \
    "  return visit); rates are computed from the sums of their parts (repeat_rate = repeats /\n" \
    "  received, on_time_rate = sla_met / (sla_met + sla_breached), satisfaction_rate =\n" \
    "  satisfied / visits); averages are business hours of the reporting calendar. An empty\n" \
    "  rate or average (no denominator) is '-' in the table, empty in CSV and null in JSON.\n"

#define HELP_AGENTS \
    "usage: redressctl report agents --month YYYY-MM [--department D] [--format table|csv|json]\n" \
    "\n" \
    "  agents          the month's scorecard of every agent (reporting.agent_scorecard), by\n" \
    "                  department and team; agent '' (table: '-') is what no agent owns yet\n" \
    "    --month M     the month (required)\n" \
    "    --department D  only department D (id or exact name)\n" \
    "  p90_res_business_s is the upper bound in seconds of the histogram bucket holding the 90th\n" \
    "  percentile of business resolution time (300, 900, 1800, 3600, 14400, 43200, 86400,\n" \
    "  259200; -1: 72 hours or more); the table shows it as '<4h', '>=72h'.\n"

#define HELP_SAVED \
    "usage: redressctl report monthly-saved --month YYYY-MM [--format json|csv|table]\n" \
    "\n" \
    "  monthly-saved   the monthly reports the reporting service stored for the month\n" \
    "                  (reporting.monthly_reports), one per department and one for the whole\n" \
    "                  organisation (department ''); default format json. CSV has one line per\n" \
    "                  report and one column per field of the stored report; the table has one\n" \
    "                  line per field and one column per report.\n"

#define HELP_ADMIN \
    "usage: redressctl report rebuild\n" \
    "       redressctl report status [--format table|json]\n" \
    "\n" \
    "  rebuild         queue every ticket for the reporting service to refresh (after a change\n" \
    "                  of the reporting calendar); prints how many. Refreshing a ticket that is\n" \
    "                  up to date changes nothing, so this is always safe. A change of time zone\n" \
    "                  needs the facts and rollups emptied first (docs/bi.md).\n" \
    "  status          the reporting settings (time zone, calendar and its working intervals),\n" \
    "                  tickets and facts, the queue's depth per partition and the sweep marks\n"

#define HELP_TAIL \
    "\n" \
    "  --format F      table (aligned text, the default), csv (RFC 4180, with a header line) or\n" \
    "                  json (an array of objects, numbers as numbers); the table shows rates as\n" \
    "                  percentages, CSV and JSON as fractions (0.8333)\n" \
    "\n" \
    "Reads PostgreSQL (--dsn). Exit status: 0 done, 1 not found (an unknown department, no saved\n" \
    "report) or a database error, 2 usage, 3 no database.\n"

const char help_report[] =
    "usage: redressctl report daily|monthly [--department D] [--from DATE] [--to DATE] [--format F]\n"
    "       redressctl report agents --month YYYY-MM [--department D] [--format F]\n"
    "       redressctl report monthly-saved --month YYYY-MM [--format F]\n"
    "       redressctl report rebuild\n"
    "       redressctl report status [--format table|json]\n"
    "\n"
    "KPIs of complaint handling from the reporting schema (docs/bi.md has every formula).\n"
    "\n"
    HELP_DAILY "\n" HELP_AGENTS "\n" HELP_SAVED "\n" HELP_ADMIN HELP_TAIL
    "\n"
    "Examples:\n"
    "  redressctl report daily\n"
    "  redressctl report monthly --department north --from 2026-01 --format csv > north.csv\n"
    "  redressctl report daily --from 2026-03-01 --to 2026-03-31 --format json\n"
    "  redressctl report agents --month 2026-03 --department 华北分公司\n"
    "  redressctl report monthly-saved --month 2026-03\n"
    "  redressctl report rebuild && redressctl report status\n";

static const char help_report_daily[] =
    HELP_DAILY HELP_TAIL
    "\n"
    "Examples:\n"
    "  redressctl report daily --department north --from 2026-03-01 --to 2026-03-31\n"
    "  redressctl report monthly --from 2026-01 --to 2026-12 --format csv\n";
static const char help_report_agents[] = HELP_AGENTS HELP_TAIL
    "\n"
    "Example:\n"
    "  redressctl report agents --month 2026-03 --department north --format csv\n";
static const char help_report_saved[] = HELP_SAVED HELP_TAIL
    "\n"
    "Example:\n"
    "  redressctl report monthly-saved --month 2026-03 --format table\n";
static const char help_report_admin[] = HELP_ADMIN HELP_TAIL
    "\n"
    "Example:\n"
    "  redressctl report rebuild && redressctl report status --format json\n";
/* clang-format on */

static const struct option report_opts[] = {
    {"department", required_argument, NULL, OPT_RPT_DEPARTMENT},
    {"from", required_argument, NULL, OPT_RPT_FROM},
    {"to", required_argument, NULL, OPT_RPT_TO},
    {"format", required_argument, NULL, OPT_RPT_FORMAT},
    {"month", required_argument, NULL, OPT_RPT_MONTH},
    GLOBAL_OPTIONS,
};

typedef struct {
    unsigned seen; /* RPT_BIT of every option given */
    const char *department, *from, *to, *format, *month;
} rpt_args;

/* ---- the database -------------------------------------------------------------------------- */

/* NULL after printing the error; *rc is then 1 (a statement failed) or 3 (the connection is gone). */
static PGresult *query(PGconn *conn, const char *sql, int n, const char *const *params, ExecStatusType want, int *rc)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != want) {
        fprintf(stderr, "error: %s", PQerrorMessage(conn));
        PQclear(r);
        *rc = PQstatus(conn) == CONNECTION_OK ? EXIT_NACK : EXIT_UNREACHABLE;
        return NULL;
    }
    return r;
}

static const char *val(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col);
}

static json_t *json_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_string(val(r, row, col));
}

static json_t *json_int(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_integer(strtoll(val(r, row, col), NULL, 10));
}

static void print_json(json_t *doc)
{
    json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
    putchar('\n');
    json_decref(doc);
}

/* ---- output: columns, tables, CSV, JSON ------------------------------------------------------ */

typedef enum {
    COL_TEXT,  /* a string */
    COL_INT,   /* a count */
    COL_RATE,  /* a fraction 0..1 (4 decimals); a percentage in the table */
    COL_HOURS, /* hours, 2 decimals */
    COL_P90,   /* a histogram bucket's upper bound in seconds, -1 = open-ended */
} col_kind;

typedef struct {
    const char *name;
    col_kind kind;
    int src;        /* column of the result */
    bool dept_only; /* shown only when the report is of one department */
} column;

/* Display columns a code point takes in a terminal: 2 for East Asian wide and full-width
 * characters (Chinese, Japanese, Korean, full-width forms, most emoji), 0 for combining marks and
 * other zero-width characters, 1 for the rest. */
static int cp_width(uint32_t c)
{
    static const uint32_t zero[][2] = {
        {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A}, {0x064B, 0x065F},
        {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x200B, 0x200F}, {0x202A, 0x202E}, {0x2060, 0x2064},
        {0x20D0, 0x20FF}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF}, {0xE0100, 0xE01EF},
    };
    static const uint32_t wide[][2] = {
        {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2E80, 0x303E},   {0x3041, 0x33FF}, {0x3400, 0x4DBF},
        {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xA960, 0xA97F},   {0xAC00, 0xD7A3}, {0xF900, 0xFAFF},
        {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6}, {0x1F300, 0x1F64F},
        {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
    };

    if (c < 0x20 || (c >= 0x7F && c < 0xA0))
        return 0;
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
        if (c >= zero[i][0] && c <= zero[i][1])
            return 0;
    for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++)
        if (c >= wide[i][0] && c <= wide[i][1])
            return 2;
    return 1;
}

/* The width of UTF-8 text on a terminal; a byte that starts no valid sequence counts as one. */
static int display_width(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    int w = 0;

    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t len = rd_utf8_decode(p + i, n - i, &c);
        if (len == 0) {
            w++;
            i++;
        } else {
            w += cp_width(c);
            i += len;
        }
    }
    return w;
}

static void spaces(int n)
{
    for (int i = 0; i < n; i++)
        putchar(' ');
}

static bool right_aligned(col_kind k)
{
    return k != COL_TEXT;
}

/* "<4h" for the bucket whose upper bound is 14400 s; ">=72h" for -1 (reporting.hist_quantile). */
static void p90_text(const char *v, char *out, size_t len)
{
    static const struct {
        long long s;
        const char *text;
    } bounds[] = {{300, "<5m"},    {900, "<15m"},   {1800, "<30m"},   {3600, "<1h"}, {14400, "<4h"},
                  {43200, "<12h"}, {86400, "<24h"}, {259200, "<72h"}, {-1, ">=72h"}};
    long long s = strtoll(v, NULL, 10);

    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        if (bounds[i].s == s) {
            snprintf(out, len, "%s", bounds[i].text);
            return;
        }
    }
    snprintf(out, len, "%s", v);
}

/* A cell as the table shows it: NULL and '' as "-", rates as percentages. */
static char *table_cell(const PGresult *r, int row, const column *c)
{
    char buf[64];
    const char *v = val(r, row, c->src);

    if (PQgetisnull(r, row, c->src) || v[0] == '\0')
        return strdup("-");
    if (c->kind == COL_RATE) {
        snprintf(buf, sizeof(buf), "%.2f%%", strtod(v, NULL) * 100.0);
        return strdup(buf);
    }
    if (c->kind == COL_P90) {
        p90_text(v, buf, sizeof(buf));
        return strdup(buf);
    }
    return strdup(v);
}

static void table_rule(const int *width, int n)
{
    for (int j = 0; j < n; j++) {
        if (j > 0)
            fputs("  ", stdout);
        for (int i = 0; i < width[j]; i++)
            putchar('-');
    }
    putchar('\n');
}

static void table_line(char *const *cells, const column *const *cols, const int *width, int n)
{
    for (int j = 0; j < n; j++) {
        int pad = width[j] - display_width(cells[j]);
        if (j > 0)
            fputs("  ", stdout);
        if (right_aligned(cols[j]->kind))
            spaces(pad);
        fputs(cells[j], stdout);
        if (!right_aligned(cols[j]->kind) && j + 1 < n)
            spaces(pad);
    }
    putchar('\n');
}

/* Aligned text: a header, a rule, the rows; the last row after another rule when it is a total. */
static void print_table(const PGresult *r, const column *const *cols, int ncols, int nrows, bool last_is_total)
{
    int *width = calloc((size_t)ncols, sizeof(int));
    char **cells = calloc((size_t)(nrows + 1) * (size_t)ncols, sizeof(char *));

    if (width == NULL || cells == NULL) {
        fprintf(stderr, "error: out of memory\n");
        free(width);
        free(cells);
        return;
    }
    for (int j = 0; j < ncols; j++) {
        cells[j] = strdup(cols[j]->name);
        for (int i = 0; i < nrows; i++)
            cells[(size_t)(i + 1) * (size_t)ncols + (size_t)j] = table_cell(r, i, cols[j]);
    }
    for (int k = 0; k < (nrows + 1) * ncols; k++) {
        if (cells[k] == NULL)
            cells[k] = strdup("?");
        if (cells[k] == NULL) {
            fprintf(stderr, "error: out of memory\n");
            goto out;
        }
        int w = display_width(cells[k]);
        if (w > width[k % ncols])
            width[k % ncols] = w;
    }
    table_line(cells, cols, width, ncols);
    table_rule(width, ncols);
    for (int i = 0; i < nrows; i++) {
        if (last_is_total && i == nrows - 1)
            table_rule(width, ncols);
        table_line(cells + (size_t)(i + 1) * (size_t)ncols, cols, width, ncols);
    }
out:
    for (int k = 0; k < (nrows + 1) * ncols; k++)
        free(cells[k]);
    free(cells);
    free(width);
}

/* One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
static void csv_field(const char *s, bool last)
{
    if (strpbrk(s, ",\"\r\n") != NULL) {
        putchar('"');
        for (const char *p = s; *p != '\0'; p++) {
            if (*p == '"')
                putchar('"');
            putchar(*p);
        }
        putchar('"');
    } else {
        fputs(s, stdout);
    }
    fputs(last ? "\r\n" : ",", stdout);
}

static void print_csv(const PGresult *r, const column *const *cols, int ncols, int nrows)
{
    for (int j = 0; j < ncols; j++)
        csv_field(cols[j]->name, j + 1 == ncols);
    for (int i = 0; i < nrows; i++)
        for (int j = 0; j < ncols; j++)
            csv_field(PQgetisnull(r, i, cols[j]->src) ? "" : val(r, i, cols[j]->src), j + 1 == ncols);
}

static json_t *json_cell(const PGresult *r, int row, const column *c)
{
    if (PQgetisnull(r, row, c->src))
        return json_null();
    switch (c->kind) {
    case COL_INT:
    case COL_P90:
        return json_int(r, row, c->src);
    case COL_RATE:
    case COL_HOURS:
        return json_real(strtod(val(r, row, c->src), NULL));
    default:
        return json_text(r, row, c->src);
    }
}

static void print_json_rows(const PGresult *r, const column *const *cols, int ncols, int nrows)
{
    json_t *arr = json_array();

    for (int i = 0; i < nrows; i++) {
        json_t *o = json_object();
        for (int j = 0; j < ncols; j++)
            json_object_set_new(o, cols[j]->name, json_cell(r, i, cols[j]));
        json_array_append_new(arr, o);
    }
    print_json(arr);
}

/* Prints the rows of r in the format; with a total (the last row), only the table shows it. */
static void print_rows(const PGresult *r, const column *all, int nall, bool one_department, bool with_total,
                       out_format fmt)
{
    const column *cols[64];
    int ncols = 0, nrows = PQntuples(r);

    for (int j = 0; j < nall && ncols < 64; j++)
        if (!all[j].dept_only || one_department)
            cols[ncols++] = &all[j];
    if (fmt == FMT_TABLE)
        print_table(r, cols, ncols, nrows, with_total);
    else if (fmt == FMT_CSV)
        print_csv(r, cols, ncols, with_total ? nrows - 1 : nrows);
    else
        print_json_rows(r, cols, ncols, with_total ? nrows - 1 : nrows);
}

/* ---- arguments ----------------------------------------------------------------------------- */

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/*
 * YYYY-MM-DD (a real day: no February 30th), or YYYY-MM when month_ok (the first of the month),
 * as YYYY-MM-DD in out; with month_only only YYYY-MM. Years 1000..9999.
 */
static bool parse_date(const char *s, bool month_ok, bool month_only, char out[11])
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t n = strlen(s);
    int y, m, d = 1;

    if (n == 7 && !month_ok && !month_only)
        return false;
    if ((n != 7 && n != 10) || (month_only && n != 7))
        return false;
    if (!all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2))
        return false;
    if (n == 10 && (s[7] != '-' || !all_digits(s + 8, 2)))
        return false;
    y = atoi(s);
    m = (s[5] - '0') * 10 + (s[6] - '0');
    if (n == 10)
        d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1000 || m < 1 || m > 12 || d < 1)
        return false;
    int last = mdays[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    if (d > last)
        return false;
    memcpy(out, s, 7);
    memcpy(out + 7, n == 10 ? s + 7 : "-01", 3);
    out[10] = '\0';
    return true;
}

static bool parse_format(const char *s, out_format *f)
{
    if (strcmp(s, "table") == 0)
        *f = FMT_TABLE;
    else if (strcmp(s, "csv") == 0)
        *f = FMT_CSV;
    else if (strcmp(s, "json") == 0)
        *f = FMT_JSON;
    else
        return false;
    return true;
}

/* A usage error when an option was given that sub does not take. */
static int check_options(const char *sub, unsigned seen, unsigned allowed)
{
    for (size_t i = 0; i < sizeof(rpt_opt_names) / sizeof(rpt_opt_names[0]); i++)
        if ((seen & ~allowed) & (1u << i))
            return usage_error("report", "%s does not take %s", sub, rpt_opt_names[i]);
    return EXIT_ACK;
}

/*
 * The department a report is about: D is a department id, or the exact name of one department;
 * a department that is no longer in the organisation but still has numbers counts too. Sets id
 * and name (malloc'd; name '' when unknown). 0, or 1 after saying why (unknown, ambiguous).
 */
static int resolve_department(PGconn *conn, const char *d, char **id, char **name)
{
    const char *params[1] = {d};
    int rc = EXIT_ACK;
    PGresult *r = query(conn,
                        "SELECT id, name FROM departments WHERE id = $1"
                        " UNION ALL (SELECT id, name FROM departments WHERE name = $1 AND id <> $1 ORDER BY id)",
                        1, params, PGRES_TUPLES_OK, &rc);

    if (r == NULL)
        return rc;
    if (PQntuples(r) > 0 && (PQntuples(r) == 1 || strcmp(val(r, 0, 0), d) == 0)) {
        *id = strdup(val(r, 0, 0));
        *name = strdup(val(r, 0, 1));
        PQclear(r);
        return EXIT_ACK;
    }
    if (PQntuples(r) > 1) {
        fprintf(stderr, "error: %d departments are named '%s' (%s, %s...): give the id\n", PQntuples(r), d,
                val(r, 0, 0), val(r, 1, 0));
        PQclear(r);
        return EXIT_NACK;
    }
    PQclear(r);
    /* gone from the organisation, but its numbers are still there */
    r = query(conn, "SELECT 1 FROM reporting.rollup_month WHERE department = $1 LIMIT 1", 1, params, PGRES_TUPLES_OK,
              &rc);
    if (r != NULL && PQntuples(r) == 1) {
        *id = strdup(d);
        *name = strdup("");
        PQclear(r);
        return EXIT_ACK;
    }
    PQclear(r);
    if (rc != EXIT_ACK)
        return rc;
    r = query(
        conn,
        "SELECT count(*), string_agg(id, ', ' ORDER BY id) FROM (SELECT id FROM departments ORDER BY id LIMIT 20) d", 0,
        NULL, PGRES_TUPLES_OK, &rc);
    if (r == NULL)
        return rc;
    if (strcmp(val(r, 0, 0), "0") == 0)
        fprintf(stderr, "error: unknown department '%s' (there are no departments: redressctl org load)\n", d);
    else
        fprintf(stderr, "error: unknown department '%s' (departments: %s)\n", d, val(r, 0, 1));
    PQclear(r);
    return EXIT_NACK;
}

/* ---- daily and monthly ----------------------------------------------------------------------- */

/* 0 day|month, 1 department, 2 department_name, then the metrics; the last row is the total. */
static const column kpi_cols_daily[] = {
    {"day", COL_TEXT, 0, false},
    {"department", COL_TEXT, 1, true},
    {"department_name", COL_TEXT, 2, true},
    {"received", COL_INT, 3, false},
    {"resolved", COL_INT, 4, false},
    {"closed", COL_INT, 5, false},
    {"reopened", COL_INT, 6, false},
    {"repeats", COL_INT, 7, false},
    {"repeat_rate", COL_RATE, 8, false},
    {"sla_met", COL_INT, 9, false},
    {"sla_breached", COL_INT, 10, false},
    {"on_time_rate", COL_RATE, 11, false},
    {"visits", COL_INT, 12, false},
    {"satisfied", COL_INT, 13, false},
    {"satisfaction_rate", COL_RATE, 14, false},
    {"avg_frt_business_h", COL_HOURS, 15, false},
    {"avg_res_business_h", COL_HOURS, 16, false},
    {"escalations", COL_INT, 17, false},
};
#define KPI_NCOLS ((int)(sizeof(kpi_cols_daily) / sizeof(kpi_cols_daily[0])))

/* $1 first bucket, $2 last bucket (both dates), $3 department or NULL, $4 its name. */
#define KPI_SQL(VIEW, BUCKET, STEP, FMT)                                                                               \
    "WITH b AS (SELECT g::date AS bucket"                                                                              \
    "             FROM generate_series($1::date::timestamp, $2::date::timestamp, interval '" STEP "') g),"             \
    "     k AS (SELECT " BUCKET " AS bucket, sum(received) AS received, sum(resolved) AS resolved,"                    \
    "                  sum(closed) AS closed, sum(reopened) AS reopened, sum(repeats) AS repeats,"                     \
    "                  sum(sla_met) AS sla_met, sum(sla_breached) AS sla_breached, sum(visits) AS visits,"             \
    "                  sum(satisfied) AS satisfied, sum(responded) AS responded, sum(frt_bs_sum) AS frt_bs,"           \
    "                  sum(res_bs_sum) AS res_bs, sum(esc_l1 + esc_l2 + esc_l3 + esc_l4) AS escalations"               \
    "             FROM reporting." VIEW " WHERE " BUCKET " BETWEEN $1::date AND $2::date"                              \
    "              AND ($3::text IS NULL OR department = $3::text)"                                                    \
    "            GROUP BY 1)"                                                                                          \
    " SELECT CASE WHEN grouping(b.bucket) = 1 THEN 'total' ELSE to_char(b.bucket, '" FMT "') END, $3::text, $4::text," \
    "        COALESCE(sum(k.received), 0), COALESCE(sum(k.resolved), 0), COALESCE(sum(k.closed), 0),"                  \
    "        COALESCE(sum(k.reopened), 0), COALESCE(sum(k.repeats), 0),"                                               \
    "        reporting.rate(sum(k.repeats), sum(k.received)),"                                                         \
    "        COALESCE(sum(k.sla_met), 0), COALESCE(sum(k.sla_breached), 0),"                                           \
    "        reporting.rate(sum(k.sla_met), sum(k.sla_met + k.sla_breached)),"                                         \
    "        COALESCE(sum(k.visits), 0), COALESCE(sum(k.satisfied), 0),"                                               \
    "        reporting.rate(sum(k.satisfied), sum(k.visits)),"                                                         \
    "        round(sum(k.frt_bs) / NULLIF(sum(k.responded), 0) / 3600, 2),"                                            \
    "        round(sum(k.res_bs) / NULLIF(sum(k.resolved), 0) / 3600, 2),"                                             \
    "        COALESCE(sum(k.escalations), 0)"                                                                          \
    "   FROM b LEFT JOIN k ON k.bucket = b.bucket"                                                                     \
    "  GROUP BY ROLLUP (b.bucket)"                                                                                     \
    "  ORDER BY grouping(b.bucket), b.bucket"

/* Today in the reporting time zone; the first and last bucket of the range and its length less one
 * (days or months): $1 --from or NULL, $2 --to or NULL. */
static const char range_daily_sql[] =
    "WITH s AS (SELECT (now() AT TIME ZONE time_zone)::date AS today FROM reporting.settings),"
    "     t AS (SELECT COALESCE($2::date, today) AS t FROM s),"
    "     f AS (SELECT COALESCE($1::date, t.t - 6) AS f FROM t)"
    " SELECT to_char(f.f, 'YYYY-MM-DD'), to_char(t.t, 'YYYY-MM-DD'), t.t - f.f FROM t, f";
static const char range_monthly_sql[] =
    "WITH s AS (SELECT (now() AT TIME ZONE time_zone)::date AS today FROM reporting.settings),"
    "     t AS (SELECT date_trunc('month', COALESCE($2::date, today))::date AS t FROM s),"
    "     f AS (SELECT COALESCE(date_trunc('month', $1::date)::date, (t.t - interval '11 months')::date) AS f FROM t)"
    " SELECT to_char(f.f, 'YYYY-MM-DD'), to_char(t.t, 'YYYY-MM-DD'),"
    "        (extract(year FROM t.t) * 12 + extract(month FROM t.t)"
    "         - extract(year FROM f.f) * 12 - extract(month FROM f.f))::integer"
    "   FROM t, f";

static int report_kpi(const globals *g, bool monthly, const rpt_args *a, out_format fmt)
{
    char from[11], to[11];
    const char *unit = monthly ? "month" : "day";

    if (a->from != NULL && !parse_date(a->from, monthly, false, from))
        return usage_error("report", "--from wants a date YYYY-MM-DD%s, not '%s'", monthly ? " or YYYY-MM" : "",
                           a->from);
    if (a->to != NULL && !parse_date(a->to, monthly, false, to))
        return usage_error("report", "--to wants a date YYYY-MM-DD%s, not '%s'", monthly ? " or YYYY-MM" : "", a->to);
    if (a->from != NULL && a->to != NULL && strcmp(from, to) > 0)
        return usage_error("report", "--from %s is after --to %s", a->from, a->to);

    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    int rc = EXIT_ACK;
    char *dept = NULL, *dept_name = NULL;
    PGresult *range = NULL, *r = NULL;
    const char *rp[2] = {a->from ? from : NULL, a->to ? to : NULL};

    if (a->department != NULL && (rc = resolve_department(conn, a->department, &dept, &dept_name)) != EXIT_ACK)
        goto out;
    range = query(conn, monthly ? range_monthly_sql : range_daily_sql, 2, rp, PGRES_TUPLES_OK, &rc);
    if (range == NULL)
        goto out;
    if (PQntuples(range) != 1) {
        fprintf(stderr, "error: reporting.settings has no row (is migration 0006 applied?)\n");
        rc = EXIT_NACK;
        goto out;
    }
    long span = strtol(val(range, 0, 2), NULL, 10);
    if (span < 0) {
        rc = usage_error("report", "--from %s is after --to %s", val(range, 0, 0), val(range, 0, 1));
        goto out;
    }
    if (span >= (monthly ? RPT_MAX_MONTHS : RPT_MAX_DAYS)) {
        rc = usage_error("report", "from %s to %s is %ld %ss; a report covers at most %d", val(range, 0, 0),
                         val(range, 0, 1), span + 1, unit, monthly ? RPT_MAX_MONTHS : RPT_MAX_DAYS);
        goto out;
    }
    const char *params[4] = {val(range, 0, 0), val(range, 0, 1), dept, dept_name};
    r = query(conn,
              monthly ? KPI_SQL("kpi_monthly", "month", "1 month", "YYYY-MM")
                      : KPI_SQL("kpi_daily", "day", "1 day", "YYYY-MM-DD"),
              4, params, PGRES_TUPLES_OK, &rc);
    if (r == NULL)
        goto out;
    /* the first column is "month" in a monthly report */
    column cols[KPI_NCOLS];
    memcpy(cols, kpi_cols_daily, sizeof(cols));
    cols[0].name = unit;
    print_rows(r, cols, KPI_NCOLS, dept != NULL, true, fmt);
out:
    PQclear(r);
    PQclear(range);
    free(dept);
    free(dept_name);
    PQfinish(conn);
    return rc;
}

/* ---- agents -------------------------------------------------------------------------------- */

static const column agent_cols[] = {
    {"department", COL_TEXT, 0, false},
    {"department_name", COL_TEXT, 1, false},
    {"team", COL_TEXT, 2, false},
    {"agent", COL_TEXT, 3, false},
    {"agent_name", COL_TEXT, 4, false},
    {"received", COL_INT, 5, false},
    {"resolved", COL_INT, 6, false},
    {"closed", COL_INT, 7, false},
    {"reopened", COL_INT, 8, false},
    {"repeats", COL_INT, 9, false},
    {"sla_met", COL_INT, 10, false},
    {"sla_breached", COL_INT, 11, false},
    {"on_time_rate", COL_RATE, 12, false},
    {"escalations", COL_INT, 13, false},
    {"visits", COL_INT, 14, false},
    {"satisfied", COL_INT, 15, false},
    {"satisfaction_rate", COL_RATE, 16, false},
    {"avg_frt_business_h", COL_HOURS, 17, false},
    {"avg_res_business_h", COL_HOURS, 18, false},
    {"p90_res_business_s", COL_P90, 19, false},
};

static int report_agents(const globals *g, const rpt_args *a, out_format fmt)
{
    char month[11];

    if (a->month == NULL)
        return usage_error("report", "agents wants --month YYYY-MM");
    if (!parse_date(a->month, false, true, month))
        return usage_error("report", "--month wants a month YYYY-MM, not '%s'", a->month);

    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    int rc = EXIT_ACK;
    char *dept = NULL, *dept_name = NULL;
    PGresult *r = NULL;

    if (a->department == NULL || (rc = resolve_department(conn, a->department, &dept, &dept_name)) == EXIT_ACK) {
        const char *params[2] = {month, dept};
        /* rollup rows whose every count went back to zero (a ticket moved away) are left out */
        r = query(conn,
                  "SELECT a.department, COALESCE(d.name, ''), a.team, a.agent, COALESCE(ag.name, ''),"
                  "       a.received, a.resolved, a.closed, a.reopened, a.repeats, a.sla_met, a.sla_breached,"
                  "       a.on_time_rate, a.escalations, a.visits, a.satisfied, a.satisfaction_rate,"
                  "       a.avg_frt_business_h, a.avg_res_business_h, a.p90_res_business_s"
                  "  FROM reporting.agent_scorecard a"
                  "  LEFT JOIN departments d ON d.id = a.department"
                  "  LEFT JOIN agents ag ON ag.id = a.agent"
                  " WHERE a.month = $1::date AND ($2::text IS NULL OR a.department = $2::text)"
                  "   AND (a.received + a.resolved + a.closed + a.sla_met + a.sla_breached + a.escalations"
                  "        + a.visits > 0 OR a.avg_frt_business_h IS NOT NULL)"
                  " ORDER BY a.department COLLATE \"C\", a.team COLLATE \"C\", a.agent COLLATE \"C\"",
                  2, params, PGRES_TUPLES_OK, &rc);
        if (r != NULL) {
            if (PQntuples(r) == 0 && fmt == FMT_TABLE)
                printf("no numbers for %.7s%s%s\n", month, dept ? " in department " : "", dept ? dept : "");
            else
                print_rows(r, agent_cols, (int)(sizeof(agent_cols) / sizeof(agent_cols[0])), false, false, fmt);
        }
    }
    PQclear(r);
    free(dept);
    free(dept_name);
    PQfinish(conn);
    return rc;
}

/* ---- monthly-saved ------------------------------------------------------------------------- */

/* A field of a stored report as text: strings as they are, null as '', the rest as JSON. */
static char *field_text(const json_t *v)
{
    if (v == NULL || json_is_null(v))
        return strdup("");
    if (json_is_string(v))
        return strdup(json_string_value(v));
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(12));
}

/* The union of the reports' field names in order of first appearance. */
static json_t *saved_keys(json_t *const *bodies, int n)
{
    json_t *keys = json_array(), *seen = json_object();
    const char *k;
    json_t *v;

    for (int i = 0; i < n; i++) {
        json_object_foreach (bodies[i], k, v) {
            if (json_object_get(seen, k) == NULL) {
                json_object_set_new(seen, k, json_true());
                json_array_append_new(keys, json_string(k));
            }
        }
    }
    json_decref(seen);
    return keys;
}

static void saved_csv(const PGresult *r, json_t *const *bodies, const json_t *keys)
{
    static const char *const head[] = {"month", "department", "department_name", "generated_at", "generated_by"};
    size_t nk = json_array_size(keys);

    for (size_t j = 0; j < 5; j++)
        csv_field(head[j], j == 4 && nk == 0);
    for (size_t j = 0; j < nk; j++)
        csv_field(json_string_value(json_array_get(keys, j)), j + 1 == nk);
    for (int i = 0; i < PQntuples(r); i++) {
        for (int j = 0; j < 5; j++)
            csv_field(val(r, i, j), j == 4 && nk == 0);
        for (size_t j = 0; j < nk; j++) {
            char *s = field_text(json_object_get(bodies[i], json_string_value(json_array_get(keys, j))));
            csv_field(s ? s : "", j + 1 == nk);
            free(s);
        }
    }
}

/* One line per field, one column per report: reports have many fields and few departments. */
static void saved_table(const PGresult *r, json_t *const *bodies, const json_t *keys)
{
    int n = PQntuples(r), nk = (int)json_array_size(keys), nl = nk + 3;
    char **cells = calloc((size_t)nl * (size_t)(n + 1), sizeof(char *));
    int *width = calloc((size_t)(n + 1), sizeof(int));

    if (cells == NULL || width == NULL) {
        fprintf(stderr, "error: out of memory\n");
        free(cells);
        free(width);
        return;
    }
    /* line 0: department; 1: generated_at; 2: generated_by; then the fields */
    cells[0] = strdup("department");
    cells[(size_t)(n + 1)] = strdup("generated_at");
    cells[(size_t)(2 * (n + 1))] = strdup("generated_by");
    for (int k = 0; k < nk; k++)
        cells[(size_t)(k + 3) * (size_t)(n + 1)] = strdup(json_string_value(json_array_get(keys, (size_t)k)));
    for (int i = 0; i < n; i++) {
        char head[512];
        const char *id = val(r, i, 1), *name = val(r, i, 2);
        if (id[0] == '\0')
            snprintf(head, sizeof(head), "(all)");
        else if (name[0] != '\0')
            snprintf(head, sizeof(head), "%s %s", id, name);
        else
            snprintf(head, sizeof(head), "%s", id);
        cells[i + 1] = strdup(head);
        cells[(size_t)(n + 1) + (size_t)i + 1] = strdup(val(r, i, 3));
        cells[(size_t)(2 * (n + 1)) + (size_t)i + 1] = strdup(val(r, i, 4)[0] ? val(r, i, 4) : "-");
        for (int k = 0; k < nk; k++) {
            const json_t *v = json_object_get(bodies[i], json_string_value(json_array_get(keys, (size_t)k)));
            char *s = field_text(v);
            if (s != NULL && s[0] == '\0') {
                free(s);
                s = strdup("-");
            }
            cells[(size_t)(k + 3) * (size_t)(n + 1) + (size_t)i + 1] = s;
        }
    }
    for (int k = 0; k < nl * (n + 1); k++) {
        if (cells[k] == NULL)
            cells[k] = strdup("?");
        int w = cells[k] != NULL ? display_width(cells[k]) : 1;
        if (w > width[k % (n + 1)])
            width[k % (n + 1)] = w;
    }
    for (int l = 0; l < nl; l++) {
        for (int j = 0; j <= n; j++) {
            const char *c = cells[(size_t)l * (size_t)(n + 1) + (size_t)j];
            c = c ? c : "?";
            int pad = width[j] - display_width(c);
            if (j > 0) {
                fputs("  ", stdout);
                spaces(pad); /* values right-aligned */
            }
            fputs(c, stdout);
            if (j == 0 && n > 0)
                spaces(pad);
        }
        putchar('\n');
        if (l == 0) {
            for (int j = 0; j <= n; j++) {
                if (j > 0)
                    fputs("  ", stdout);
                for (int x = 0; x < width[j]; x++)
                    putchar('-');
            }
            putchar('\n');
        }
    }
    for (int k = 0; k < nl * (n + 1); k++)
        free(cells[k]);
    free(cells);
    free(width);
}

static int report_saved(const globals *g, const rpt_args *a, out_format fmt)
{
    char month[11];

    if (a->month == NULL)
        return usage_error("report", "monthly-saved wants --month YYYY-MM");
    if (!parse_date(a->month, false, true, month))
        return usage_error("report", "--month wants a month YYYY-MM, not '%s'", a->month);

    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    int rc = EXIT_ACK;
    const char *params[1] = {month};
    /* 0 month, 1 department, 2 its name, 3 generated_at, 4 generated_by, 5 body */
    PGresult *r =
        query(conn,
              "SELECT to_char(m.month, 'YYYY-MM'), m.department, COALESCE(d.name, ''),"
              "       " TS(
                  "m.generated_at") ", m.generated_by, m.body::text"
                                    "  FROM reporting.monthly_reports m LEFT JOIN departments d ON d.id = m.department"
                                    " WHERE m.month = $1::date ORDER BY m.department COLLATE \"C\"",
              1, params, PGRES_TUPLES_OK, &rc);
    int n = r != NULL ? PQntuples(r) : 0;
    json_t **bodies = n > 0 ? calloc((size_t)n, sizeof(json_t *)) : NULL;

    if (r != NULL && n == 0) {
        fprintf(stderr,
                "error: no monthly report is saved for %.7s (the reporting service saves them after each month)\n",
                month);
        rc = EXIT_NACK;
    } else if (r != NULL && bodies == NULL) {
        fprintf(stderr, "error: out of memory\n");
        rc = EXIT_NACK;
    } else if (r != NULL) {
        for (int i = 0; i < n; i++) {
            json_error_t err;
            bodies[i] = json_loads(val(r, i, 5), JSON_DECODE_ANY, &err);
            if (!json_is_object(bodies[i])) { /* stored as jsonb: only a non-object can be wrong */
                json_decref(bodies[i]);
                bodies[i] = json_pack("{s:s}", "body", val(r, i, 5));
            }
        }
        json_t *keys = saved_keys(bodies, n);
        if (fmt == FMT_JSON) {
            json_t *arr = json_array();
            for (int i = 0; i < n; i++)
                json_array_append_new(arr,
                                      json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "month", val(r, i, 0), "department",
                                                val(r, i, 1), "department_name", val(r, i, 2), "generated_at",
                                                val(r, i, 3), "generated_by", val(r, i, 4), "report", bodies[i]));
            print_json(arr);
        } else if (fmt == FMT_CSV) {
            saved_csv(r, bodies, keys);
        } else {
            printf("monthly reports of %s\n\n", val(r, 0, 0));
            saved_table(r, bodies, keys);
        }
        json_decref(keys);
    }
    for (int i = 0; i < n && bodies != NULL; i++)
        json_decref(bodies[i]);
    free(bodies);
    PQclear(r);
    PQfinish(conn);
    return rc;
}

/* ---- rebuild and status -------------------------------------------------------------------- */

static int report_rebuild(const globals *g)
{
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    int rc = EXIT_ACK;
    /* the partition of a ticket is the one the queue's triggers use */
    PGresult *r =
        query(conn, "INSERT INTO reporting.queue (part, ticket_id) SELECT hashtext(id::text) & 7, id FROM tickets", 0,
              NULL, PGRES_COMMAND_OK, &rc);
    if (r != NULL) {
        const char *n = PQcmdTuples(r);
        printf("queued %s ticket%s for refresh; the reporting service applies the queue"
               " ('redressctl report status' shows its depth)\n",
               n, strcmp(n, "1") == 0 ? "" : "s");
        ctl_audit_record(conn, g, "report.rebuild", "reporting", "", NULL);
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

static void status_text(const PGresult *s, const PGresult *c, const PGresult *q, const PGresult *m)
{
    long long depth = 0;

    printf("time zone       %s (local time now %s)\n", val(s, 0, 0), val(s, 0, 4));
    if (PQgetisnull(s, 0, 1))
        printf("calendar        none: business time is calendar time (24/7)\n");
    else
        printf("calendar        %s, version '%s', %s working intervals%s%s%s%s\n", val(s, 0, 1), val(s, 0, 2),
               val(s, 0, 5), PQgetisnull(s, 0, 6) ? "" : " from ", val(s, 0, 6), PQgetisnull(s, 0, 7) ? "" : " to ",
               val(s, 0, 7));
    printf("settings        updated %s\n", val(s, 0, 3));
    printf("tickets         %s\n", val(c, 0, 0));
    printf("facts           %s (%s ticket%s without one), last refreshed %s\n", val(c, 0, 1), val(c, 0, 2),
           strcmp(val(c, 0, 2), "1") == 0 ? "" : "s", PQgetisnull(c, 0, 3) ? "never" : val(c, 0, 3));
    for (int i = 0; i < PQntuples(q); i++)
        depth += strtoll(val(q, i, 1), NULL, 10);
    printf("queue           %lld event%s", depth, depth == 1 ? "" : "s");
    for (int i = 0; i < PQntuples(q); i++)
        printf("%spart %s: %s", i == 0 ? " (" : ", ", val(q, i, 0), val(q, i, 1));
    printf("%s\n", PQntuples(q) > 0 ? ")" : "");
    for (int i = 0; i < PQntuples(m); i++)
        printf("sweep %-9s prev_seq %s, cur_seq %s (newest seq %s), swept %s\n", val(m, i, 0), val(m, i, 1),
               val(m, i, 2), val(m, i, 4), val(m, i, 3));
}

static void status_json(const PGresult *s, const PGresult *c, const PGresult *q, const PGresult *m)
{
    json_t *doc = json_object(), *parts = json_array(), *sweep = json_array();
    long long depth = 0, per[8] = {0};

    json_object_set_new(doc, "time_zone", json_text(s, 0, 0));
    json_object_set_new(doc, "local_time", json_text(s, 0, 4));
    json_object_set_new(doc, "calendar_id", json_text(s, 0, 1));
    json_object_set_new(doc, "calendar_version", json_text(s, 0, 2));
    json_object_set_new(doc, "settings_updated_at", json_text(s, 0, 3));
    json_object_set_new(
        doc, "work_intervals",
        json_pack("{s:o, s:o, s:o}", "count", json_int(s, 0, 5), "from", json_text(s, 0, 6), "to", json_text(s, 0, 7)));
    json_object_set_new(doc, "tickets", json_int(c, 0, 0));
    json_object_set_new(doc, "facts", json_int(c, 0, 1));
    json_object_set_new(doc, "tickets_without_facts", json_int(c, 0, 2));
    json_object_set_new(doc, "last_refreshed_at", json_text(c, 0, 3));
    for (int i = 0; i < PQntuples(q); i++) {
        long p = strtol(val(q, i, 0), NULL, 10);
        long long n = strtoll(val(q, i, 1), NULL, 10);
        if (p >= 0 && p < 8)
            per[p] = n;
        depth += n;
    }
    for (int p = 0; p < 8; p++)
        json_array_append_new(parts, json_integer(per[p]));
    json_object_set_new(doc, "queue", json_pack("{s:I, s:o}", "events", (json_int_t)depth, "partitions", parts));
    for (int i = 0; i < PQntuples(m); i++)
        json_array_append_new(sweep, json_pack("{s:o, s:o, s:o, s:o, s:o}", "source", json_text(m, i, 0), "prev_seq",
                                               json_int(m, i, 1), "cur_seq", json_int(m, i, 2), "newest_seq",
                                               json_int(m, i, 4), "swept_at", json_text(m, i, 3)));
    json_object_set_new(doc, "sweep", sweep);
    print_json(doc);
}

static int report_status(const globals *g, out_format fmt)
{
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    int rc = EXIT_ACK;
    /* 0 time_zone, 1 calendar_id, 2 calendar_version, 3 updated_at, 4 local now, 5 working intervals,
     * 6 the first one's start, 7 the last one's end */
    PGresult *s =
        query(conn,
              "SELECT s.time_zone, s.calendar_id, s.calendar_version, " TS(
                  "s.updated_at") ","
                                  "       to_char(now() AT TIME ZONE s.time_zone, 'YYYY-MM-DD HH24:MI'),"
                                  "       (SELECT count(*) FROM reporting.work_intervals w WHERE w.calendar_id = "
                                  "s.calendar_id),"
                                  "       (SELECT " TS(
                                      "min(w.starts_at)") " FROM reporting.work_intervals w"
                                                          "         WHERE w.calendar_id = s.calendar_id),"
                                                          "       (SELECT " TS(
                                                              "max(w.ends_at)") " FROM reporting.work_intervals w"
                                                                                "         WHERE w.calendar_id = "
                                                                                "s.calendar_id)"
                                                                                "  FROM reporting.settings s",
              0, NULL, PGRES_TUPLES_OK, &rc);
    PGresult *c = s == NULL
                      ? NULL
                      : query(conn,
                              "SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM reporting.ticket_facts),"
                              "       (SELECT count(*) FROM tickets t WHERE NOT EXISTS"
                              "         (SELECT 1 FROM reporting.ticket_facts f WHERE f.ticket_id = t.id)),"
                              "       (SELECT " TS("max(refreshed_at)") " FROM reporting.ticket_facts)",
                              0, NULL, PGRES_TUPLES_OK, &rc);
    PGresult *q = c == NULL ? NULL
                            : query(conn, "SELECT part, count(*) FROM reporting.queue GROUP BY part ORDER BY part", 0,
                                    NULL, PGRES_TUPLES_OK, &rc);
    PGresult *m =
        q == NULL
            ? NULL
            : query(conn,
                    "SELECT m.source, m.prev_seq, m.cur_seq, " TS(
                        "m.swept_at") ","
                                      "       CASE m.source WHEN 'history' THEN (SELECT COALESCE(max(seq), 0) FROM "
                                      "ticket_history)"
                                      "                     ELSE (SELECT COALESCE(max(seq), 0) FROM sla_events) END"
                                      "  FROM reporting.sweep_marks m ORDER BY m.source",
                    0, NULL, PGRES_TUPLES_OK, &rc);
    if (m != NULL && PQntuples(s) != 1) {
        fprintf(stderr, "error: reporting.settings has no row (is migration 0006 applied?)\n");
        rc = EXIT_NACK;
    } else if (m != NULL && fmt == FMT_JSON) {
        status_json(s, c, q, m);
    } else if (m != NULL) {
        status_text(s, c, q, m);
    }
    PQclear(s);
    PQclear(c);
    PQclear(q);
    PQclear(m);
    PQfinish(conn);
    return rc;
}

/* ---- the command --------------------------------------------------------------------------- */

/* The subcommand named in argv (the first argument that is neither an option nor an option's
 * value), so that "report daily --help" prints the help of daily; NULL when there is none. */
static const char *find_subcommand(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--") == 0)
            return i + 1 < argc ? argv[i + 1] : NULL;
        if (s[0] != '-' || s[1] == '\0')
            return s;
        if (s[1] != '-' || strchr(s, '=') != NULL)
            continue;
        /* --name VALUE: getopt takes unambiguous abbreviations too */
        size_t len = strlen(s + 2);
        const struct option *match = NULL;
        int matches = 0;
        for (const struct option *o = report_opts; o->name != NULL; o++) {
            if (strncmp(o->name, s + 2, len) == 0) {
                match = o;
                matches++;
                if (strlen(o->name) == len) {
                    matches = 1;
                    break;
                }
            }
        }
        if (matches == 1 && match->has_arg == required_argument)
            i++;
    }
    return NULL;
}

static const char *sub_help(const char *sub)
{
    if (sub == NULL)
        return help_report;
    if (strcmp(sub, "daily") == 0 || strcmp(sub, "monthly") == 0)
        return help_report_daily;
    if (strcmp(sub, "agents") == 0)
        return help_report_agents;
    if (strcmp(sub, "monthly-saved") == 0)
        return help_report_saved;
    if (strcmp(sub, "rebuild") == 0 || strcmp(sub, "status") == 0)
        return help_report_admin;
    return help_report;
}

static int report_run(globals *g, const char *sub, int nargs, const rpt_args *a)
{
    out_format fmt = strcmp(sub, "monthly-saved") == 0 ? FMT_JSON : FMT_TABLE;
    unsigned fmt_bit = RPT_BIT(OPT_RPT_FORMAT), dept = RPT_BIT(OPT_RPT_DEPARTMENT);
    bool daily = strcmp(sub, "daily") == 0, monthly = strcmp(sub, "monthly") == 0;

    if (!daily && !monthly && strcmp(sub, "agents") != 0 && strcmp(sub, "monthly-saved") != 0 &&
        strcmp(sub, "rebuild") != 0 && strcmp(sub, "status") != 0)
        return usage_error(
            "report", "unknown subcommand '%s' (there are: daily, monthly, agents, monthly-saved, rebuild, status)",
            sub);
    if (nargs != 0)
        return usage_error("report", "%s takes no arguments, only options", sub);
    if (a->format != NULL && !parse_format(a->format, &fmt))
        return usage_error("report", "--format wants table, csv or json, not '%s'", a->format);
    if (a->department != NULL && a->department[0] == '\0')
        return usage_error("report", "--department wants a department id or name");
    if (daily || monthly) {
        if (check_options(sub, a->seen, dept | RPT_BIT(OPT_RPT_FROM) | RPT_BIT(OPT_RPT_TO) | fmt_bit) != EXIT_ACK)
            return EXIT_USAGE;
        return report_kpi(g, monthly, a, fmt);
    }
    if (strcmp(sub, "agents") == 0) {
        if (check_options(sub, a->seen, RPT_BIT(OPT_RPT_MONTH) | dept | fmt_bit) != EXIT_ACK)
            return EXIT_USAGE;
        return report_agents(g, a, fmt);
    }
    if (strcmp(sub, "monthly-saved") == 0) {
        if (check_options(sub, a->seen, RPT_BIT(OPT_RPT_MONTH) | fmt_bit) != EXIT_ACK)
            return EXIT_USAGE;
        return report_saved(g, a, fmt);
    }
    if (strcmp(sub, "rebuild") == 0)
        return check_options(sub, a->seen, 0) != EXIT_ACK ? EXIT_USAGE : report_rebuild(g);
    if (check_options(sub, a->seen, fmt_bit) != EXIT_ACK)
        return EXIT_USAGE;
    if (fmt == FMT_CSV)
        return usage_error("report", "status prints a table or json, not csv");
    return report_status(g, fmt);
}

int cmd_report(globals *g, int argc, char **argv)
{
    cli p;
    rpt_args a = {0};
    int c, rc = EXIT_ACK;

    cli_init(&p, "report", sub_help(find_subcommand(argc, argv)), report_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c < OPT_RPT_DEPARTMENT || c > OPT_RPT_MONTH)
            continue; /* cli_next returns no other codes */
        a.seen |= RPT_BIT(c);
        if (c == OPT_RPT_DEPARTMENT)
            a.department = optarg;
        else if (c == OPT_RPT_FROM)
            a.from = optarg;
        else if (c == OPT_RPT_TO)
            a.to = optarg;
        else if (c == OPT_RPT_FORMAT)
            a.format = optarg;
        else
            a.month = optarg;
    }
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("report", "wants a subcommand: daily, monthly, agents, monthly-saved, rebuild or status");
    return report_run(g, argv[optind], argc - optind - 1, &a);
}
