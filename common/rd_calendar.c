/*
 * rd_calendar.c -- business calendars (the format and the semantics are in rd_calendar.h and
 * docs/calendars.md).
 *
 * Representation. Working hours are kept as minutes of the local day ([start, end), 0..1440), per
 * weekday and per make-up working day; holidays and make-up days are sorted arrays of day numbers
 * (days since 1970-01-01, local calendar dates), searched with bsearch.
 *
 * Time zones. ICU's C calendar API (ucal_*) converts between UTC and wall time, so real IANA
 * zones with their DST history come from a maintained library instead of a hand-written TZif
 * reader, and nothing touches the process-wide TZ. The calendar keeps one configured UCalendar
 * as a template: SKIPPED_WALL_TIME = NEXT_VALID (a time inside a spring-forward gap is the first
 * instant after it) and REPEATED_WALL_TIME = FIRST (a repeated time is its first occurrence).
 * Both choices make local -> UTC monotonic (non-decreasing), so the working intervals of
 * consecutive days stay ordered and disjoint in UTC and "business time" is plain elapsed time
 * inside them. A UCalendar is mutable, so every call clones the template (ucal_clone is a const
 * operation on it) and works on its own copy: a calendar can be shared between threads.
 *
 * Arithmetic walks local days, never minutes: for each day it looks up that day's hours
 * (holiday, make-up day or weekday) and only days with working hours cost ICU conversions (two
 * per interval). A day's intervals lie within [its 00:00, the next day's 00:00]; the walk starts
 * one day before the local date of the first instant so that unusual transitions at midnight
 * cannot hide an interval.
 */
#include "rd_calendar.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicode/ucal.h>
#include <unicode/utypes.h>

#define DAY_MS    INT64_C(86400000)
#define MAX_SPANS 12  /* working intervals per day */
#define MAX_ID    64  /* calendar id and time zone id length */
#define MAX_RANGE 366 /* days in one holiday range */
#define MAX_FILE  (16 * 1024 * 1024)
#define MIN_YEAR  1970
#define MAX_YEAR  2199

typedef struct {
    int16_t start, end; /* minutes of the local day, start < end <= 1440 */
} cal_span;

typedef struct {
    int n;
    cal_span s[MAX_SPANS];
} cal_hours;

typedef struct {
    int32_t day;
    cal_hours hours;
} cal_workday;

struct rd_calendar {
    char *id, *name, *zone;
    UCalendar *tmpl;   /* configured, never used directly: cloned per call */
    cal_hours week[7]; /* 0 = Monday */
    int32_t *holidays;
    int nholidays;
    cal_workday *workdays;
    int nworkdays;
    bool any_time; /* some weekday or make-up day has working hours */
};

struct rd_calendar_set {
    rd_calendar **cals;
    int n;
};

static const char *const weekday_keys[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

/* ---- errors ---- */

__attribute__((format(printf, 3, 4))) static void seterr(char *err, int errlen, const char *fmt, ...)
{
    if (err == NULL || errlen <= 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, (size_t)errlen, fmt, ap);
    va_end(ap);
}

/* ---- civil dates (proleptic Gregorian, days since 1970-01-01) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int32_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const int yoe = y - era * 400;
    const int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int32_t z, int *y, int *m, int *d)
{
    z += 719468;
    const int32_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int32_t doe = z - era * 146097;
    const int32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int32_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

static int weekday_of(int32_t day) /* 0 = Monday */
{
    return (int)(((int64_t)day + 3) % 7 + 7) % 7;
}

static void format_day(int32_t day, char out[16])
{
    int y, m, d;
    civil_from_days(day, &y, &m, &d);
    snprintf(out, 16, "%04d-%02d-%02d", y, m, d);
}

/* ---- ICU: one cloned UCalendar per call ---- */

typedef struct {
    UCalendar *cal;
    bool ok;
} conv;

static bool conv_open(const rd_calendar *c, conv *cv)
{
    UErrorCode st = U_ZERO_ERROR;
    cv->cal = ucal_clone(c->tmpl, &st);
    cv->ok = U_SUCCESS(st) && cv->cal != NULL;
    if (!cv->ok && cv->cal != NULL) {
        ucal_close(cv->cal);
        cv->cal = NULL;
    }
    return cv->ok;
}

static void conv_close(conv *cv)
{
    if (cv->cal != NULL)
        ucal_close(cv->cal);
    cv->cal = NULL;
}

/* local - UTC at instant t, in ms. */
static int64_t conv_offset(conv *cv, int64_t t)
{
    UErrorCode st = U_ZERO_ERROR;
    ucal_setMillis(cv->cal, (UDate)t, &st);
    int32_t zone = ucal_get(cv->cal, UCAL_ZONE_OFFSET, &st);
    int32_t dst = ucal_get(cv->cal, UCAL_DST_OFFSET, &st);
    if (U_FAILURE(st)) {
        cv->ok = false;
        return 0;
    }
    return (int64_t)zone + dst;
}

static int32_t conv_local_day(conv *cv, int64_t t)
{
    return (int32_t)floor_div(t + conv_offset(cv, t), DAY_MS);
}

/* The instant of local day + seconds of that day (0 .. 86400; 86400 is the next day's 00:00). */
static int64_t conv_to_utc(conv *cv, int32_t day, int32_t sec)
{
    if (sec >= 86400) {
        day += sec / 86400;
        sec %= 86400;
    }
    int y, m, d;
    civil_from_days(day, &y, &m, &d);
    UErrorCode st = U_ZERO_ERROR;
    ucal_clear(cv->cal);
    ucal_setDateTime(cv->cal, y, m - 1, d, sec / 3600, sec / 60 % 60, sec % 60, &st);
    UDate u = ucal_getMillis(cv->cal, &st);
    if (U_FAILURE(st)) {
        cv->ok = false;
        return 0;
    }
    return (int64_t)u;
}

/* ---- a day's working intervals ---- */

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int cmp_workday(const void *a, const void *b)
{
    return cmp_i32(&((const cal_workday *)a)->day, &((const cal_workday *)b)->day);
}

static const cal_hours *hours_of(const rd_calendar *c, int32_t day)
{
    static const cal_hours none = {0};
    if (c->nholidays > 0 && bsearch(&day, c->holidays, (size_t)c->nholidays, sizeof *c->holidays, cmp_i32))
        return &none;
    if (c->nworkdays > 0) {
        cal_workday key = {.day = day};
        const cal_workday *w = bsearch(&key, c->workdays, (size_t)c->nworkdays, sizeof *c->workdays, cmp_workday);
        if (w != NULL)
            return &w->hours;
    }
    return &c->week[weekday_of(day)];
}

/* The day's intervals as UTC [s, e) pairs, empty ones (inside a DST gap) left out. */
static int day_spans(const rd_calendar *c, conv *cv, int32_t day, int64_t out[MAX_SPANS][2])
{
    const cal_hours *h = hours_of(c, day);
    int n = 0;
    for (int i = 0; i < h->n; i++) {
        int64_t s = conv_to_utc(cv, day, h->s[i].start * 60);
        int64_t e = conv_to_utc(cv, day, h->s[i].end * 60);
        if (e > s) {
            out[n][0] = s;
            out[n][1] = e;
            n++;
        }
    }
    return n;
}

/* ---- arithmetic ---- */

int64_t rd_calendar_add(const rd_calendar *c, int64_t from_ms, int64_t business_ms)
{
    if (c == NULL || business_ms < 0 || from_ms < RD_CALENDAR_MIN_MS || from_ms >= RD_CALENDAR_MAX_MS || !c->any_time)
        return RD_CALENDAR_NEVER;
    conv cv;
    if (!conv_open(c, &cv))
        return RD_CALENDAR_NEVER;
    int64_t result = RD_CALENDAR_NEVER;
    int64_t left = business_ms;
    int32_t first = conv_local_day(&cv, from_ms) - 1;
    for (int32_t day = first; day <= first + RD_CALENDAR_HORIZON_DAYS + 1 && cv.ok; day++) {
        if (hours_of(c, day)->n == 0)
            continue;
        int64_t sp[MAX_SPANS][2];
        int n = day_spans(c, &cv, day, sp);
        for (int i = 0; i < n && cv.ok; i++) {
            int64_t s = sp[i][0], e = sp[i][1];
            if (e <= from_ms)
                continue;
            if (s < from_ms)
                s = from_ms;
            if (s >= RD_CALENDAR_MAX_MS)
                goto out;
            if (left <= e - s) {
                if (s + left < RD_CALENDAR_MAX_MS)
                    result = s + left;
                goto out;
            }
            left -= e - s;
        }
    }
out:
    if (!cv.ok)
        result = RD_CALENDAR_NEVER;
    conv_close(&cv);
    return result;
}

int64_t rd_calendar_between(const rd_calendar *c, int64_t a_ms, int64_t b_ms)
{
    if (c == NULL)
        return -1;
    if (a_ms < RD_CALENDAR_MIN_MS)
        a_ms = RD_CALENDAR_MIN_MS;
    if (b_ms > RD_CALENDAR_MAX_MS)
        b_ms = RD_CALENDAR_MAX_MS;
    if (b_ms <= a_ms || !c->any_time)
        return 0;
    conv cv;
    if (!conv_open(c, &cv))
        return -1;
    int64_t sum = 0;
    int32_t first = conv_local_day(&cv, a_ms) - 1;
    int32_t last = conv_local_day(&cv, b_ms - 1) + 1;
    for (int32_t day = first; day <= last && cv.ok; day++) {
        if (hours_of(c, day)->n == 0)
            continue;
        int64_t sp[MAX_SPANS][2];
        int n = day_spans(c, &cv, day, sp);
        for (int i = 0; i < n; i++) {
            int64_t s = sp[i][0] > a_ms ? sp[i][0] : a_ms;
            int64_t e = sp[i][1] < b_ms ? sp[i][1] : b_ms;
            if (e > s)
                sum += e - s;
        }
    }
    bool ok = cv.ok;
    conv_close(&cv);
    return ok ? sum : -1;
}

bool rd_calendar_is_working(const rd_calendar *c, int64_t t_ms)
{
    if (c == NULL || t_ms < RD_CALENDAR_MIN_MS || t_ms >= RD_CALENDAR_MAX_MS || !c->any_time)
        return false;
    conv cv;
    if (!conv_open(c, &cv))
        return false;
    bool working = false;
    int32_t mid = conv_local_day(&cv, t_ms);
    for (int32_t day = mid - 1; day <= mid + 1 && !working && cv.ok; day++) {
        int64_t sp[MAX_SPANS][2];
        int n = day_spans(c, &cv, day, sp);
        for (int i = 0; i < n; i++)
            if (t_ms >= sp[i][0] && t_ms < sp[i][1])
                working = true;
    }
    working = working && cv.ok;
    conv_close(&cv);
    return working;
}

bool rd_calendar_to_local(const rd_calendar *c, int64_t t_ms, rd_local_time *out)
{
    if (c == NULL || out == NULL || t_ms < RD_CALENDAR_MIN_MS || t_ms >= RD_CALENDAR_MAX_MS)
        return false;
    conv cv;
    if (!conv_open(c, &cv))
        return false;
    int64_t off = conv_offset(&cv, t_ms);
    bool ok = cv.ok;
    conv_close(&cv);
    if (!ok)
        return false;
    int64_t local = t_ms + off;
    int32_t day = (int32_t)floor_div(local, DAY_MS);
    int64_t ms = local - (int64_t)day * DAY_MS;
    civil_from_days(day, &out->year, &out->month, &out->day);
    out->hour = (int)(ms / 3600000);
    out->minute = (int)(ms / 60000 % 60);
    out->second = (int)(ms / 1000 % 60);
    out->millisecond = (int)(ms % 1000);
    out->weekday = weekday_of(day) + 1;
    out->utc_offset_ms = (int)off;
    return true;
}

int64_t rd_calendar_from_local(const rd_calendar *c, int year, int month, int day, int hour, int minute, int second)
{
    if (c == NULL || year < MIN_YEAR || year > MAX_YEAR || month < 1 || month > 12 || day < 1 ||
        day > days_in_month(year, month) || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 ||
        second > 59)
        return RD_CALENDAR_NEVER;
    conv cv;
    if (!conv_open(c, &cv))
        return RD_CALENDAR_NEVER;
    int64_t t = conv_to_utc(&cv, days_from_civil(year, month, day), hour * 3600 + minute * 60 + second);
    bool ok = cv.ok;
    conv_close(&cv);
    if (!ok || t < RD_CALENDAR_MIN_MS || t >= RD_CALENDAR_MAX_MS)
        return RD_CALENDAR_NEVER;
    return t;
}

const char *rd_calendar_id(const rd_calendar *c)
{
    return c->id;
}

const char *rd_calendar_name(const rd_calendar *c)
{
    return c->name;
}

const char *rd_calendar_time_zone(const rd_calendar *c)
{
    return c->zone;
}

/* ---- parsing ---- */

typedef struct {
    char *err;
    int errlen;
    const char *where; /* "calendars[2]: " or "" */
} perr;

#define FAIL(p, ...)                                                                                                   \
    do {                                                                                                               \
        char msg_[384];                                                                                                \
        snprintf(msg_, sizeof msg_, __VA_ARGS__);                                                                      \
        seterr((p)->err, (p)->errlen, "%s%s", (p)->where, msg_);                                                       \
        return false;                                                                                                  \
    } while (0)

static bool only_keys(perr *p, json_t *obj, const char *what, const char *const *keys, int nkeys)
{
    const char *k;
    json_t *v;
    json_object_foreach (obj, k, v) {
        (void)v;
        bool known = false;
        for (int i = 0; i < nkeys; i++)
            if (strcmp(k, keys[i]) == 0)
                known = true;
        if (!known)
            FAIL(p, "%s: unknown key \"%.40s\"", what, k);
    }
    return true;
}

static bool two_digits(const char *s, int *v)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return false;
    *v = (s[0] - '0') * 10 + (s[1] - '0');
    return true;
}

/* "HH:MM" -> minutes; 24:00 only when end is set. */
static bool parse_hhmm(const char *s, bool end, int *minutes)
{
    int h, m;
    if (!two_digits(s, &h) || s[2] != ':' || !two_digits(s + 3, &m) || m > 59)
        return false;
    if (h > 24 || (h == 24 && (m != 0 || !end)))
        return false;
    *minutes = h * 60 + m;
    return true;
}

static bool parse_hours(perr *p, json_t *arr, const char *what, cal_hours *out)
{
    if (!json_is_array(arr))
        FAIL(p, "%s: expected an array of \"HH:MM-HH:MM\" strings", what);
    if (json_array_size(arr) > MAX_SPANS)
        FAIL(p, "%s: at most %d working intervals per day", what, MAX_SPANS);
    out->n = 0;
    size_t i;
    json_t *v;
    json_array_foreach (arr, i, v) {
        if (!json_is_string(v))
            FAIL(p, "%s[%zu]: expected a string \"HH:MM-HH:MM\"", what, i);
        const char *s = json_string_value(v);
        int a, b;
        if (json_string_length(v) != 11 || s[5] != '-' || !parse_hhmm(s, false, &a) || !parse_hhmm(s + 6, true, &b))
            FAIL(p,
                 "%s[%zu] \"%.40s\": expected \"HH:MM-HH:MM\" (00:00..23:59, 24:00 allowed only as an "
                 "end)",
                 what, i, s);
        if (a >= b)
            FAIL(p, "%s[%zu] \"%s\": the start must be before the end", what, i, s);
        if (out->n > 0 && a < out->s[out->n - 1].end) {
            if (a < out->s[out->n - 1].start)
                FAIL(p, "%s[%zu] \"%s\": intervals must be in order (it starts before the previous one)", what, i, s);
            FAIL(p, "%s[%zu] \"%s\": overlaps the previous interval", what, i, s);
        }
        out->s[out->n].start = (int16_t)a;
        out->s[out->n].end = (int16_t)b;
        out->n++;
    }
    return true;
}

static bool parse_date(perr *p, json_t *v, const char *what, int32_t *day)
{
    if (!json_is_string(v))
        FAIL(p, "%s: expected a date \"YYYY-MM-DD\"", what);
    const char *s = json_string_value(v);
    int y1, y2, m, d;
    if (json_string_length(v) != 10 || !two_digits(s, &y1) || !two_digits(s + 2, &y2) || s[4] != '-' ||
        !two_digits(s + 5, &m) || s[7] != '-' || !two_digits(s + 8, &d))
        FAIL(p, "%s \"%.40s\": expected a date \"YYYY-MM-DD\"", what, s);
    int y = y1 * 100 + y2;
    if (y < MIN_YEAR || y > MAX_YEAR)
        FAIL(p, "%s \"%s\": the year must be in %d..%d", what, s, MIN_YEAR, MAX_YEAR);
    if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        FAIL(p, "%s \"%s\": no such date", what, s);
    *day = days_from_civil(y, m, d);
    return true;
}

static bool optional_string(perr *p, json_t *obj, const char *key, const char *what)
{
    json_t *v = json_object_get(obj, key);
    if (v != NULL && !json_is_string(v))
        FAIL(p, "%s.%s: expected a string", what, key);
    return true;
}

static bool push_day(perr *p, int32_t **arr, int *n, int *cap, int32_t day)
{
    if (*n == *cap) {
        int ncap = *cap ? *cap * 2 : 64;
        int32_t *na = realloc(*arr, (size_t)ncap * sizeof *na);
        if (na == NULL)
            FAIL(p, "out of memory");
        *arr = na;
        *cap = ncap;
    }
    (*arr)[(*n)++] = day;
    return true;
}

static bool parse_holidays(perr *p, json_t *arr, rd_calendar *c)
{
    if (!json_is_array(arr))
        FAIL(p, "holidays: expected an array of dates or {\"from\", \"to\"} ranges");
    int cap = 0;
    size_t i;
    json_t *v;
    char what[64];
    json_array_foreach (arr, i, v) {
        snprintf(what, sizeof what, "holidays[%zu]", i);
        int32_t from = 0, to = -1;
        if (json_is_string(v)) {
            if (!parse_date(p, v, what, &from))
                return false;
            to = from;
        } else if (json_is_object(v)) {
            static const char *const keys[] = {"date", "from", "to", "name"};
            if (!only_keys(p, v, what, keys, 4) || !optional_string(p, v, "name", what))
                return false;
            json_t *date = json_object_get(v, "date"), *jf = json_object_get(v, "from"), *jt = json_object_get(v, "to");
            char sub[96];
            if (date != NULL) {
                if (jf != NULL || jt != NULL)
                    FAIL(p, "%s: give either \"date\" or \"from\" and \"to\"", what);
                snprintf(sub, sizeof sub, "%s.date", what);
                if (!parse_date(p, date, sub, &from))
                    return false;
                to = from;
            } else {
                if (jf == NULL || jt == NULL)
                    FAIL(p, "%s: a range needs both \"from\" and \"to\" (or give \"date\")", what);
                snprintf(sub, sizeof sub, "%s.from", what);
                if (!parse_date(p, jf, sub, &from))
                    return false;
                snprintf(sub, sizeof sub, "%s.to", what);
                if (!parse_date(p, jt, sub, &to))
                    return false;
                if (to < from)
                    FAIL(p, "%s: \"to\" is before \"from\"", what);
                if (to - from >= MAX_RANGE)
                    FAIL(p, "%s: a range may span at most %d days", what, MAX_RANGE);
            }
        } else {
            FAIL(p, "%s: expected a date \"YYYY-MM-DD\" or {\"from\", \"to\", \"name\"}", what);
        }
        for (int32_t d = from; d <= to; d++)
            if (!push_day(p, &c->holidays, &c->nholidays, &cap, d))
                return false;
    }
    if (c->nholidays > 0)
        qsort(c->holidays, (size_t)c->nholidays, sizeof *c->holidays, cmp_i32);
    for (int k = 1; k < c->nholidays; k++)
        if (c->holidays[k] == c->holidays[k - 1]) {
            char ds[16];
            format_day(c->holidays[k], ds);
            FAIL(p, "holidays: %s is listed more than once", ds);
        }
    return true;
}

static bool parse_workdays(perr *p, json_t *arr, rd_calendar *c)
{
    if (!json_is_array(arr))
        FAIL(p, "workdays: expected an array of {\"date\", \"hours\", \"name\"}");
    size_t n = json_array_size(arr);
    if (n == 0)
        return true;
    if (n > 100000)
        FAIL(p, "workdays: too many entries");
    c->workdays = calloc(n, sizeof *c->workdays);
    if (c->workdays == NULL)
        FAIL(p, "out of memory");
    size_t i;
    json_t *v;
    char what[64], sub[96];
    json_array_foreach (arr, i, v) {
        snprintf(what, sizeof what, "workdays[%zu]", i);
        cal_workday *w = &c->workdays[c->nworkdays];
        json_t *date = v, *hours = NULL;
        if (json_is_object(v)) {
            static const char *const keys[] = {"date", "hours", "name"};
            if (!only_keys(p, v, what, keys, 3) || !optional_string(p, v, "name", what))
                return false;
            date = json_object_get(v, "date");
            hours = json_object_get(v, "hours");
            if (date == NULL)
                FAIL(p, "%s: \"date\" is required", what);
            snprintf(sub, sizeof sub, "%s.date", what);
        } else if (json_is_string(v)) {
            snprintf(sub, sizeof sub, "%s", what);
        } else {
            FAIL(p, "%s: expected {\"date\", \"hours\", \"name\"} or a date", what);
        }
        if (!parse_date(p, date, sub, &w->day))
            return false;
        if (hours != NULL) {
            snprintf(sub, sizeof sub, "%s.hours", what);
            if (!parse_hours(p, hours, sub, &w->hours))
                return false;
            if (w->hours.n == 0)
                FAIL(p, "%s.hours: a make-up working day needs working hours", what);
        } else {
            if (c->week[0].n == 0)
                FAIL(p, "%s: no \"hours\" given and Monday (the default) has none", what);
            w->hours = c->week[0];
        }
        c->nworkdays++;
    }
    qsort(c->workdays, (size_t)c->nworkdays, sizeof *c->workdays, cmp_workday);
    char ds[16];
    for (int k = 0; k < c->nworkdays; k++) {
        int32_t d = c->workdays[k].day;
        if (k > 0 && d == c->workdays[k - 1].day) {
            format_day(d, ds);
            FAIL(p, "workdays: %s is listed more than once", ds);
        }
        if (c->nholidays > 0 && bsearch(&d, c->holidays, (size_t)c->nholidays, sizeof *c->holidays, cmp_i32)) {
            format_day(d, ds);
            FAIL(p, "%s is both a holiday and a make-up working day", ds);
        }
        c->any_time = true;
    }
    return true;
}

static bool parse_zone(perr *p, json_t *v, rd_calendar *c)
{
    if (!json_is_string(v))
        FAIL(p, "time_zone: expected an IANA time zone name such as \"Asia/Shanghai\"");
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    UChar uz[MAX_ID + 1];
    bool ok = len > 0 && len <= MAX_ID;
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '/' ||
             ch == '_' || ch == '-' || ch == '+';
        uz[i] = (UChar)ch;
    }
    UBool system = 0;
    UChar canon[128];
    UErrorCode st = U_ZERO_ERROR;
    if (ok) {
        ucal_getCanonicalTimeZoneID(uz, (int32_t)len, canon, 128, &system, &st);
        ok = U_SUCCESS(st) && system;
    }
    if (!ok)
        FAIL(p, "time_zone \"%.40s\": unknown time zone (expected an IANA name such as \"Asia/Shanghai\")", s);
    st = U_ZERO_ERROR;
    c->tmpl = ucal_open(uz, (int32_t)len, "en_US_POSIX", UCAL_GREGORIAN, &st);
    if (U_FAILURE(st) || c->tmpl == NULL)
        FAIL(p, "time_zone \"%s\": ICU cannot open it (%s)", s, u_errorName(st));
    ucal_setAttribute(c->tmpl, UCAL_LENIENT, 1);
    ucal_setAttribute(c->tmpl, UCAL_SKIPPED_WALL_TIME, UCAL_WALLTIME_NEXT_VALID);
    ucal_setAttribute(c->tmpl, UCAL_REPEATED_WALL_TIME, UCAL_WALLTIME_FIRST);
    c->zone = strdup(s);
    if (c->zone == NULL)
        FAIL(p, "out of memory");
    return true;
}

static bool valid_id(const char *s, size_t len)
{
    if (len == 0 || len > MAX_ID)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static bool parse_calendar_obj(perr *p, json_t *root, rd_calendar *c)
{
    if (!json_is_object(root))
        FAIL(p, "a calendar must be a JSON object");
    static const char *const keys[] = {"id", "name", "description", "time_zone", "week", "holidays", "workdays"};
    if (!only_keys(p, root, "calendar", keys, 7))
        return false;
    json_t *id = json_object_get(root, "id");
    if (!json_is_string(id) || !valid_id(json_string_value(id), json_string_length(id)))
        FAIL(p, "id: required, 1..%d characters of A-Z a-z 0-9 . _ -", MAX_ID);
    json_t *name = json_object_get(root, "name");
    if (name != NULL && !json_is_string(name))
        FAIL(p, "name: expected a string");
    if (!optional_string(p, root, "description", "calendar"))
        return false;
    c->id = strdup(json_string_value(id));
    c->name = strdup(name ? json_string_value(name) : "");
    if (c->id == NULL || c->name == NULL)
        FAIL(p, "out of memory");

    json_t *zone = json_object_get(root, "time_zone");
    if (zone == NULL)
        FAIL(p, "time_zone is required (an IANA name such as \"Asia/Shanghai\")");
    if (!parse_zone(p, zone, c))
        return false;

    json_t *week = json_object_get(root, "week");
    if (!json_is_object(week))
        FAIL(p, "week: required, an object with the working hours of \"mon\" .. \"sun\"");
    if (!only_keys(p, week, "week", weekday_keys, 7))
        return false;
    for (int d = 0; d < 7; d++) {
        json_t *h = json_object_get(week, weekday_keys[d]);
        char what[16];
        snprintf(what, sizeof what, "week.%s", weekday_keys[d]);
        if (h == NULL)
            FAIL(p, "%s is missing (use [] for a day off)", what);
        if (!parse_hours(p, h, what, &c->week[d]))
            return false;
        if (c->week[d].n > 0)
            c->any_time = true;
    }

    json_t *hol = json_object_get(root, "holidays");
    if (hol != NULL && !parse_holidays(p, hol, c))
        return false;
    json_t *wd = json_object_get(root, "workdays");
    if (wd != NULL && !parse_workdays(p, wd, c))
        return false;
    return true;
}

void rd_calendar_free(rd_calendar *c)
{
    if (c == NULL)
        return;
    if (c->tmpl != NULL)
        ucal_close(c->tmpl);
    free(c->id);
    free(c->name);
    free(c->zone);
    free(c->holidays);
    free(c->workdays);
    free(c);
}

static rd_calendar *calendar_from_json(perr *p, json_t *obj)
{
    rd_calendar *c = calloc(1, sizeof *c);
    if (c == NULL) {
        seterr(p->err, p->errlen, "%sout of memory", p->where);
        return NULL;
    }
    if (!parse_calendar_obj(p, obj, c)) {
        rd_calendar_free(c);
        return NULL;
    }
    return c;
}

static json_t *load_json(const char *json, size_t len, char *err, int errlen)
{
    if (json == NULL) {
        seterr(err, errlen, "no document");
        return NULL;
    }
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        seterr(err, errlen, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text);
    return root;
}

rd_calendar *rd_calendar_parse(const char *json, size_t len, char *err, int errlen)
{
    json_t *root = load_json(json, len, err, errlen);
    if (root == NULL)
        return NULL;
    perr p = {err, errlen, ""};
    rd_calendar *c = calendar_from_json(&p, root);
    json_decref(root);
    return c;
}

void rd_calendar_set_free(rd_calendar_set *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->n; i++)
        rd_calendar_free(s->cals[i]);
    free(s->cals);
    free(s);
}

rd_calendar_set *rd_calendar_set_parse(const char *json, size_t len, char *err, int errlen)
{
    json_t *root = load_json(json, len, err, errlen);
    if (root == NULL)
        return NULL;
    rd_calendar_set *s = NULL;
    json_t *arr = json_object_get(root, "calendars");
    json_t *desc = json_object_get(root, "description");
    size_t nkeys = json_is_object(root) ? json_object_size(root) : 0;
    if (!json_is_object(root) || !json_is_array(arr) || json_array_size(arr) == 0) {
        seterr(err, errlen, "expected {\"calendars\": [calendar, ...]} with at least one calendar");
        goto out;
    }
    if ((desc != NULL && !json_is_string(desc)) || nkeys != 1u + (desc != NULL)) {
        seterr(err, errlen, "only \"calendars\" and a \"description\" string are allowed at the top level");
        goto out;
    }
    s = calloc(1, sizeof *s);
    if (s == NULL || (s->cals = calloc(json_array_size(arr), sizeof *s->cals)) == NULL) {
        seterr(err, errlen, "out of memory");
        free(s);
        s = NULL;
        goto out;
    }
    size_t i;
    json_t *v;
    json_array_foreach (arr, i, v) {
        char where[96];
        json_t *jid = json_is_object(v) ? json_object_get(v, "id") : NULL;
        if (json_is_string(jid))
            snprintf(where, sizeof where, "calendars[%zu] (\"%.40s\"): ", i, json_string_value(jid));
        else
            snprintf(where, sizeof where, "calendars[%zu]: ", i);
        perr p = {err, errlen, where};
        rd_calendar *c = calendar_from_json(&p, v);
        if (c == NULL) {
            rd_calendar_set_free(s);
            s = NULL;
            goto out;
        }
        s->cals[s->n++] = c;
        for (int k = 0; k + 1 < s->n; k++)
            if (strcmp(s->cals[k]->id, c->id) == 0) {
                seterr(err, errlen, "%sthe id \"%s\" is used twice", where, c->id);
                rd_calendar_set_free(s);
                s = NULL;
                goto out;
            }
    }
out:
    json_decref(root);
    return s;
}

rd_calendar_set *rd_calendar_set_load(const char *path, char *err, int errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        seterr(err, errlen, "%s: cannot open", path);
        return NULL;
    }
    char *buf = malloc(MAX_FILE);
    size_t n = buf ? fread(buf, 1, MAX_FILE, f) : 0;
    bool too_big = buf && n == MAX_FILE;
    bool failed = buf == NULL || ferror(f);
    fclose(f);
    rd_calendar_set *s = NULL;
    if (failed)
        seterr(err, errlen, "%s: cannot read", path);
    else if (too_big)
        seterr(err, errlen, "%s: larger than %d bytes", path, MAX_FILE);
    else {
        char msg[512];
        s = rd_calendar_set_parse(buf, n, msg, sizeof msg);
        if (s == NULL)
            seterr(err, errlen, "%s: %s", path, msg);
    }
    free(buf);
    return s;
}

int rd_calendar_set_count(const rd_calendar_set *s)
{
    return s ? s->n : 0;
}

const rd_calendar *rd_calendar_set_at(const rd_calendar_set *s, int i)
{
    return (s && i >= 0 && i < s->n) ? s->cals[i] : NULL;
}

const rd_calendar *rd_calendar_set_find(const rd_calendar_set *s, const char *id)
{
    if (s == NULL || id == NULL)
        return NULL;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->cals[i]->id, id) == 0)
            return s->cals[i];
    return NULL;
}
