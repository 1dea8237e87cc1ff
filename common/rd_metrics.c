/*
 * rd_metrics.c -- the metrics registry and the Prometheus text renderer.
 *
 * Registration is rare (start-up) and takes a mutex; updates are hot (every event) and are single
 * relaxed atomic operations with no lock, so a writer thread never waits for the HTTP thread that
 * renders. Relaxed ordering is enough because each number is independent: a scrape that sees a
 * counter one increment behind is indistinguishable from a scrape taken a moment earlier.
 *
 * Metrics are grouped into families by base name (the part before '{'). A family carries the one
 * HELP/TYPE header, taken from its first registration; a later registration of the same base with
 * a different type is refused (NULL), because the exposition format cannot express it.
 *
 * Histograms keep one non-cumulative count per bucket and make them cumulative when rendering;
 * _count is the sum of that same snapshot, so buckets and count always agree within one scrape.
 * The sum is a double kept as its bit pattern in an atomic uint64 and updated by compare-and-swap.
 *
 * Update functions tolerate NULL and wrong-typed metrics (they do nothing), so a failed
 * registration degrades to missing numbers rather than a crash.
 */
#include "rd_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BOUNDS 32

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } mtype;

typedef struct family family;

struct rd_metric {
    struct rd_metric *next; /* within the family, in registration order */
    family *fam;
    char *name;   /* full name as registered */
    char *labels; /* what was between the braces, "" when none */
    /* counters: the count; gauges: an int64 stored as its two's complement bit pattern, so that
     * adding a negative delta is the same unsigned wrap-around addition */
    _Atomic uint64_t value;
    int nbounds;
    double bounds[MAX_BOUNDS];
    _Atomic uint64_t buckets[MAX_BOUNDS + 1]; /* the last one is +Inf */
    _Atomic uint64_t sum_bits;
};

struct family {
    family *next;
    char *base;
    char *help;
    mtype type;
    rd_metric *head, *tail;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static family *fam_head, *fam_tail;

/* ---- names --------------------------------------------------------------------------------- */

static bool name_char(char c, bool first, bool colon_ok)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':'))
        return true;
    return !first && c >= '0' && c <= '9';
}

/* Checks a label set body, name="value"{,name="value"}, with \" \\ \n escapes in values. When
 * reserved is not NULL a label of that name is refused (histograms own "le"). */
static bool valid_labels(const char *s, const char *reserved)
{
    while (*s) {
        const char *name = s;
        if (!name_char(*s, true, false))
            return false;
        while (name_char(*s, false, false))
            s++;
        if (reserved && (size_t)(s - name) == strlen(reserved) && strncmp(name, reserved, strlen(reserved)) == 0)
            return false;
        if (s[0] != '=' || s[1] != '"')
            return false;
        for (s += 2; *s && *s != '"'; s++)
            if (*s == '\\' && *++s == '\0')
                return false;
        if (*s != '"')
            return false;
        s++;
        if (*s == ',' && s[1] != '\0')
            s++;
        else if (*s != '\0')
            return false;
    }
    return true;
}

/* Splits "base{labels}" into malloc'd base and labels; false when malformed. */
static bool split_name(const char *name, const char *reserved, char **base, char **labels)
{
    const char *brace = strchr(name, '{');
    size_t blen = brace ? (size_t)(brace - name) : strlen(name);
    if (blen == 0)
        return false;
    for (size_t i = 0; i < blen; i++)
        if (!name_char(name[i], i == 0, true))
            return false;
    const char *lab = "";
    size_t llen = 0;
    if (brace != NULL) {
        size_t rest = strlen(brace);
        if (rest < 3 || brace[rest - 1] != '}')
            return false;
        lab = brace + 1;
        llen = rest - 2;
    }
    *base = strndup(name, blen);
    *labels = strndup(lab, llen);
    if (*base == NULL || *labels == NULL || !valid_labels(*labels, reserved)) {
        free(*base);
        free(*labels);
        return false;
    }
    return true;
}

/* ---- registration -------------------------------------------------------------------------- */

static family *family_find(const char *base)
{
    for (family *f = fam_head; f; f = f->next)
        if (strcmp(f->base, base) == 0)
            return f;
    return NULL;
}

/* Takes ownership of base. */
static family *family_add(char *base, const char *help, mtype type)
{
    family *f = calloc(1, sizeof(*f));
    char *h = strdup(help ? help : "");
    if (f == NULL || h == NULL) {
        free(f);
        free(h);
        free(base);
        return NULL;
    }
    f->base = base;
    f->help = h;
    f->type = type;
    if (fam_tail)
        fam_tail->next = f;
    else
        fam_head = f;
    fam_tail = f;
    return f;
}

static bool same_bounds(const rd_metric *m, const double *bounds, int nbounds)
{
    if (m->nbounds != nbounds)
        return false;
    for (int i = 0; i < nbounds; i++)
        if (m->bounds[i] != bounds[i])
            return false;
    return true;
}

/* Returns the metric registered as name, creating it (and its family) when new. NULL on bad
 * names, on a type clash with an earlier registration, or out of memory. */
static rd_metric *metric_get(const char *name, const char *help, mtype type, const double *bounds, int nbounds)
{
    char *base, *labels;
    if (name == NULL || !split_name(name, type == M_HISTOGRAM ? "le" : NULL, &base, &labels))
        return NULL;
    family *f = family_find(base);
    if (f == NULL) {
        f = family_add(base, help, type);
        base = NULL; /* owned by the family now, or freed */
    }
    free(base);
    if (f == NULL || f->type != type) {
        free(labels);
        return NULL;
    }
    for (rd_metric *m = f->head; m; m = m->next)
        if (strcmp(m->name, name) == 0) {
            free(labels);
            return (type != M_HISTOGRAM || same_bounds(m, bounds, nbounds)) ? m : NULL;
        }
    rd_metric *m = calloc(1, sizeof(*m));
    char *full = strdup(name);
    if (m == NULL || full == NULL) {
        free(m);
        free(full);
        free(labels);
        return NULL;
    }
    m->fam = f;
    m->name = full;
    m->labels = labels;
    m->nbounds = nbounds;
    if (nbounds > 0)
        memcpy(m->bounds, bounds, (size_t)nbounds * sizeof(double));
    if (f->tail)
        f->tail->next = m;
    else
        f->head = m;
    f->tail = m;
    return m;
}

static rd_metric *metric_register(const char *name, const char *help, mtype type, const double *bounds, int nbounds)
{
    pthread_mutex_lock(&reg_mu);
    rd_metric *m = metric_get(name, help, type, bounds, nbounds);
    pthread_mutex_unlock(&reg_mu);
    return m;
}

rd_metric *rd_metric_counter(const char *name, const char *help)
{
    return metric_register(name, help, M_COUNTER, NULL, 0);
}

rd_metric *rd_metric_gauge(const char *name, const char *help)
{
    return metric_register(name, help, M_GAUGE, NULL, 0);
}

/* Bounds must be finite and strictly ascending; le="+Inf" is always added by the renderer. */
rd_metric *rd_metric_histogram(const char *name, const char *help, const double *bounds, int nbounds)
{
    if (nbounds < 0 || nbounds > MAX_BOUNDS || (nbounds > 0 && bounds == NULL))
        return NULL;
    for (int i = 0; i < nbounds; i++)
        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
            return NULL;
    return metric_register(name, help, M_HISTOGRAM, bounds, nbounds);
}

/* ---- updates (lock-free) ------------------------------------------------------------------- */

static bool is_type(const rd_metric *m, mtype t)
{
    return m != NULL && m->fam->type == t;
}

void rd_metric_inc(rd_metric *m, uint64_t n)
{
    if (is_type(m, M_COUNTER) || is_type(m, M_GAUGE))
        atomic_fetch_add_explicit(&m->value, n, memory_order_relaxed);
}

void rd_metric_set(rd_metric *m, int64_t v)
{
    if (is_type(m, M_GAUGE))
        atomic_store_explicit(&m->value, (uint64_t)v, memory_order_relaxed);
}

void rd_metric_add(rd_metric *m, int64_t d)
{
    if (is_type(m, M_GAUGE))
        atomic_fetch_add_explicit(&m->value, (uint64_t)d, memory_order_relaxed);
}

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* NaN is dropped: it belongs in no bucket and would turn the sum into NaN for good. */
void rd_metric_observe(rd_metric *m, double v)
{
    if (!is_type(m, M_HISTOGRAM) || isnan(v))
        return;
    int i = 0;
    while (i < m->nbounds && v > m->bounds[i])
        i++;
    atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&m->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&m->sum_bits, &old, double_bits(bits_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ; /* old now holds the current bits; retry with them */
}

uint64_t rd_metric_value(const rd_metric *m)
{
    if (m == NULL)
        return 0;
    return atomic_load_explicit(&m->value, memory_order_relaxed);
}

/* ---- rendering ----------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(strbuf *sb, const char *fmt, ...)
{
    if (sb->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            sb->oom = true;
            return;
        }
        if ((size_t)n < sb->cap - sb->len) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = sb->cap * 2 > sb->len + (size_t)n + 1 ? sb->cap * 2 : sb->len + (size_t)n + 1;
        char *b = realloc(sb->buf, cap);
        if (b == NULL) {
            sb->oom = true;
            return;
        }
        sb->buf = b;
        sb->cap = cap;
    }
}

/* A decimal that reads back as the same double: %g with the least precision (6 at minimum, so
 * that 10 is "10" and not "1e+01") that round-trips. Matches what the Go client prints for the
 * usual bucket bounds ("0.005", "2.5", "10"). */
static void fmt_double(char *out, size_t outlen, double d)
{
    if (isnan(d)) {
        snprintf(out, outlen, "NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(out, outlen, "%s", d > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

/* HELP text escapes backslash and newline and nothing else. */
static void render_help(strbuf *sb, const family *f)
{
    sb_printf(sb, "# HELP %s ", f->base);
    for (const char *p = f->help; *p; p++) {
        if (*p == '\\')
            sb_printf(sb, "\\\\");
        else if (*p == '\n')
            sb_printf(sb, "\\n");
        else
            sb_printf(sb, "%c", *p);
    }
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    sb_printf(sb, "\n# TYPE %s %s\n", f->base, type_names[f->type]);
}

/* "{labels}" or "" -- the sample's own labels, for _sum and _count. */
static void render_labels(strbuf *sb, const rd_metric *m)
{
    if (m->labels[0])
        sb_printf(sb, "{%s}", m->labels);
}

static void render_histogram(strbuf *sb, const rd_metric *m)
{
    const char *base = m->fam->base;
    const char *sep = m->labels[0] ? "," : "";
    uint64_t cum = 0;
    char le[40];
    for (int i = 0; i <= m->nbounds; i++) {
        cum += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        if (i < m->nbounds)
            fmt_double(le, sizeof(le), m->bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        sb_printf(sb, "%s_bucket{%s%sle=\"%s\"} %llu\n", base, m->labels, sep, le, (unsigned long long)cum);
    }
    char sum[40];
    fmt_double(sum, sizeof(sum), bits_double(atomic_load_explicit(&m->sum_bits, memory_order_relaxed)));
    sb_printf(sb, "%s_sum", base);
    render_labels(sb, m);
    sb_printf(sb, " %s\n%s_count", sum, base);
    render_labels(sb, m);
    sb_printf(sb, " %llu\n", (unsigned long long)cum);
}

static void render_metric(strbuf *sb, const rd_metric *m)
{
    uint64_t v = rd_metric_value(m);
    switch (m->fam->type) {
    case M_COUNTER:
        sb_printf(sb, "%s %llu\n", m->name, (unsigned long long)v);
        break;
    case M_GAUGE:
        sb_printf(sb, "%s %lld\n", m->name, (long long)(int64_t)v);
        break;
    case M_HISTOGRAM:
        render_histogram(sb, m);
        break;
    }
}

char *rd_metrics_render(void)
{
    strbuf sb = {.cap = 4096};
    sb.buf = malloc(sb.cap);
    if (sb.buf == NULL)
        return NULL;
    sb.buf[0] = '\0';
    /* The lock guards the lists against a concurrent registration; values are read atomically. */
    pthread_mutex_lock(&reg_mu);
    for (const family *f = fam_head; f; f = f->next) {
        render_help(&sb, f);
        for (const rd_metric *m = f->head; m; m = m->next)
            render_metric(&sb, m);
    }
    pthread_mutex_unlock(&reg_mu);
    if (sb.oom) {
        free(sb.buf);
        return NULL;
    }
    return sb.buf;
}
