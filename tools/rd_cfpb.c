/*
 * rd_cfpb.c -- loads a CFPB complaints CSV and turns its rows into NewTicket envelopes.
 *
 * The file is parsed with libcsv (quoted fields may hold commas, quotes and newlines). Only the
 * columns we map are kept: their text goes into one growing arena and each row holds offsets
 * into it, so a large extract costs one allocation per doubling rather than one per field.
 * Offset 0 is an empty string, which is what a missing column or field reads as.
 *
 * Text is made acceptable to intake once, at load time: invalid UTF-8 bytes become '?', control
 * characters become spaces (tabs and line breaks survive in the narrative, which is multi-line).
 * Replacements keep the byte length, so this is done in place. Packing then only has to cut
 * fields to the protocol limits, at a character boundary.
 */
#include "rd_cfpb.h"
#include "rd_utf8.h"

#include <csv.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rd_envelope.h"

enum {
    COL_DATE,
    COL_PRODUCT,
    COL_SUB_PRODUCT,
    COL_ISSUE,
    COL_SUB_ISSUE,
    COL_NARRATIVE,
    COL_COMPANY,
    COL_STATE,
    COL_ZIP,
    COL_VIA,
    COL_ID,
    NCOL
};

static const char *const col_names[NCOL] = {
    "Date received", "Product", "Sub-product", "Issue",         "Sub-issue",   "Consumer complaint narrative",
    "Company",       "State",   "ZIP code",    "Submitted via", "Complaint ID"};

typedef struct {
    size_t off[NCOL]; /* into the arena; 0 is "" */
    int64_t occurred_ms;
} cfpb_row;

struct rd_cfpb {
    char *text;
    size_t text_len, text_cap;
    cfpb_row *rows;
    size_t nrows, rows_cap;
};

/* ------------------------------------------------------------------------------------------------
 * UTF-8
 * --------------------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (n bytes available), 0 when it is not one. */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    uint32_t cp;
    return rd_utf8_decode(p, n, &cp);
}

/* In place, same length: invalid bytes -> '?', C0/C1 controls and DEL -> spaces. */
static void sanitize(char *s, size_t n, bool multiline)
{
    unsigned char *p = (unsigned char *)s;

    for (size_t i = 0; i < n;) {
        size_t len = utf8_seq_len(p + i, n - i);
        if (len == 0) {
            p[i++] = '?';
        } else if (len == 1) {
            bool keep = multiline && (p[i] == '\n' || p[i] == '\r' || p[i] == '\t');
            if ((p[i] < 0x20 && !keep) || p[i] == 0x7F)
                p[i] = ' ';
            i++;
        } else {
            if (len == 2 && p[i] == 0xC2 && p[i + 1] < 0xA0) /* U+0080..U+009F */
                p[i] = p[i + 1] = ' ';
            i += len;
        }
    }
}

/* Shortens s (valid UTF-8) to at most max bytes without splitting a character. */
static void utf8_cut(char *s, size_t max)
{
    size_t n = strlen(s);

    if (n <= max)
        return;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    s[n] = '\0';
}

/* ------------------------------------------------------------------------------------------------
 * Loading
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    rd_cfpb *d;
    int *pos2col; /* header position -> COL_*, or -1 for columns we ignore */
    size_t npos;
    size_t field;  /* position of the next field in the current record */
    size_t record; /* 1-based; record 1 is the header */
    cfpb_row cur;
    bool failed;
    char err[200];
} loader;

static void fail(loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Keeps the first error only: it is the cause, later ones are consequences. */
static void fail(loader *l, const char *fmt, ...)
{
    va_list ap;

    if (l->failed)
        return;
    l->failed = true;
    va_start(ap, fmt);
    vsnprintf(l->err, sizeof(l->err), fmt, ap);
    va_end(ap);
}

/* Appends n bytes plus a NUL to the arena; returns the offset, 0 when memory ran out. */
static size_t arena_add(rd_cfpb *d, const char *s, size_t n)
{
    if (d->text_len + n + 1 > d->text_cap) {
        size_t cap = d->text_cap ? d->text_cap : 1 << 16;
        while (d->text_len + n + 1 > cap)
            cap *= 2;
        char *t = realloc(d->text, cap);
        if (t == NULL)
            return 0;
        d->text = t;
        d->text_cap = cap;
    }
    size_t off = d->text_len;
    memcpy(d->text + off, s, n);
    d->text[off + n] = '\0';
    d->text_len += n + 1;
    return off;
}

/* Header names are matched exactly, ignoring surrounding blanks and a UTF-8 byte order mark. */
static int column_of(const char *s, size_t n)
{
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        n -= 3;
    }
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    for (int c = 0; c < NCOL; c++)
        if (strlen(col_names[c]) == n && memcmp(col_names[c], s, n) == 0)
            return c;
    return -1;
}

static void on_header_field(loader *l, const char *s, size_t n)
{
    int *p = realloc(l->pos2col, (l->npos + 1) * sizeof(*p));

    if (p == NULL) {
        fail(l, "out of memory");
        return;
    }
    l->pos2col = p;
    int c = column_of(s, n);
    for (size_t i = 0; i < l->npos && c >= 0; i++)
        if (p[i] == c)
            c = -1; /* a repeated name: the first one wins */
    p[l->npos++] = c;
}

static void on_field(void *s, size_t n, void *arg)
{
    loader *l = arg;
    size_t pos = l->field++;

    if (l->failed)
        return;
    if (l->record == 1) {
        on_header_field(l, s, n);
        return;
    }
    if (pos >= l->npos || l->pos2col[pos] < 0 || n == 0)
        return;
    int c = l->pos2col[pos];
    size_t off = arena_add(l->d, s, n);
    if (off == 0) {
        fail(l, "out of memory");
        return;
    }
    sanitize(l->d->text + off, n, c == COL_NARRATIVE);
    l->cur.off[c] = off;
}

/* Reads "y/m/d", "y-m-d" or "m/d/y" (a four-digit year tells which end it is at); anything after
 * a 'T' or a blank (a time of day) is ignored. Returns UTC midnight in epoch milliseconds. */
static bool parse_date(const char *s, int64_t *ms)
{
    long v[3];
    int digits[3];

    for (int k = 0; k < 3; k++) {
        char *end;
        if (*s < '0' || *s > '9')
            return false;
        errno = 0;
        v[k] = strtol(s, &end, 10);
        digits[k] = (int)(end - s);
        if (errno != 0 || digits[k] > 4)
            return false;
        s = end;
        if (k < 2 && *s != '/' && *s != '-')
            return false;
        if (k < 2)
            s++;
    }
    if (*s != '\0' && *s != 'T' && *s != ' ')
        return false;

    long y = v[0], m = v[1], d = v[2];
    if (digits[0] != 4) {
        if (digits[2] != 4)
            return false;
        y = v[2], m = v[0], d = v[1];
    }
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
        return false;

    /* Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil). */
    long yy = m <= 2 ? y - 1 : y;
    long era = (yy >= 0 ? yy : yy - 399) / 400;
    long yoe = yy - era * 400;
    long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    *ms = ((int64_t)era * 146097 + doe - 719468) * 86400000LL;
    return true;
}

static bool header_complete(loader *l)
{
    static const int required[] = {COL_ID, COL_DATE};

    for (size_t r = 0; r < sizeof(required) / sizeof(required[0]); r++) {
        bool found = false;
        for (size_t i = 0; i < l->npos; i++)
            found = found || l->pos2col[i] == required[r];
        if (!found) {
            fail(l, "no \"%s\" column in the header", col_names[required[r]]);
            return false;
        }
    }
    return true;
}

static void add_row(loader *l)
{
    rd_cfpb *d = l->d;

    if (d->text[l->cur.off[COL_ID]] == '\0') {
        fail(l, "record %zu: empty Complaint ID", l->record);
        return;
    }
    if (!parse_date(d->text + l->cur.off[COL_DATE], &l->cur.occurred_ms)) {
        fail(l, "record %zu: Date received \"%s\" is not a date", l->record, d->text + l->cur.off[COL_DATE]);
        return;
    }
    if (d->nrows == d->rows_cap) {
        size_t cap = d->rows_cap ? d->rows_cap * 2 : 1024;
        cfpb_row *rows = realloc(d->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            fail(l, "out of memory");
            return;
        }
        d->rows = rows;
        d->rows_cap = cap;
    }
    d->rows[d->nrows++] = l->cur;
}

static void on_record(int term, void *arg)
{
    loader *l = arg;

    (void)term; /* which line ending closed the record does not matter */
    if (!l->failed && l->record == 1)
        header_complete(l);
    else if (!l->failed)
        add_row(l);
    l->record++;
    l->field = 0;
    memset(&l->cur, 0, sizeof(l->cur));
}

static bool parse_stream(loader *l, FILE *f)
{
    struct csv_parser p;
    char buf[1 << 16];
    size_t n;

    if (csv_init(&p, 0) != 0) {
        fail(l, "out of memory");
        return false;
    }
    while (!l->failed && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
        if (csv_parse(&p, buf, n, on_field, on_record, l) != n)
            fail(l, "CSV: %s", csv_strerror(csv_error(&p)));
    }
    if (!l->failed && ferror(f))
        fail(l, "read error: %s", strerror(errno));
    if (!l->failed)
        csv_fini(&p, on_field, on_record, l);
    csv_free(&p);
    if (!l->failed && l->record == 1)
        fail(l, "the file is empty");
    return !l->failed;
}

static rd_cfpb *load_from(FILE *f, const char *path, char *err, int errlen)
{
    loader l;

    memset(&l, 0, sizeof(l));
    l.record = 1;
    l.d = calloc(1, sizeof(*l.d));
    if (l.d == NULL)
        fail(&l, "out of memory");
    else if (arena_add(l.d, "", 0) != 0 || l.d->text == NULL) /* offset 0: the shared empty string */
        fail(&l, "out of memory");
    else
        parse_stream(&l, f);
    free(l.pos2col);
    if (l.failed) {
        snprintf(err, errlen, "%s: %s", path, l.err);
        rd_cfpb_destroy(&l.d);
    }
    return l.d;
}

rd_cfpb *rd_cfpb_load(const char *path, char *err, int errlen)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    rd_cfpb *d;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    d = load_from(f, is_stdin ? "standard input" : path, err, errlen);
    if (!is_stdin)
        fclose(f);
    return d;
}

void rd_cfpb_destroy(rd_cfpb **dp)
{
    rd_cfpb *d = *dp;

    if (d == NULL)
        return;
    free(d->text);
    free(d->rows);
    free(d);
    *dp = NULL;
}

size_t rd_cfpb_count(const rd_cfpb *d)
{
    return d->nrows;
}

const char *rd_cfpb_complaint_id(const rd_cfpb *d, size_t i)
{
    return i < d->nrows ? d->text + d->rows[i].off[COL_ID] : "";
}

/* ------------------------------------------------------------------------------------------------
 * Packing
 * --------------------------------------------------------------------------------------------- */

static Redress__V1__Channel channel_of(const char *via)
{
    static const struct {
        const char *name;
        Redress__V1__Channel ch;
    } map[] = {
        {"Web", REDRESS__V1__CHANNEL__CHANNEL_WEB},     {"Phone", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE},
        {"Email", REDRESS__V1__CHANNEL__CHANNEL_EMAIL}, {"Postal mail", REDRESS__V1__CHANNEL__CHANNEL_POSTAL},
        {"Fax", REDRESS__V1__CHANNEL__CHANNEL_FAX},     {"Referral", REDRESS__V1__CHANNEL__CHANNEL_REFERRAL},
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcasecmp(via, map[i].name) == 0)
            return map[i].ch;
    return REDRESS__V1__CHANNEL__CHANNEL_WEB;
}

/* dst = a, or b, or "a<sep>b" when both are set; cut to max bytes at a character boundary. */
static char *join(char *dst, size_t cap, size_t max, const char *a, const char *sep, const char *b)
{
    snprintf(dst, cap, "%s%s%s", a, *a && *b ? sep : "", b);
    utf8_cut(dst, max);
    return dst;
}

/* Everything a packed envelope points to that is not in the arena. */
typedef struct {
    char event_id[RD_MAX_ID_BYTES + 1];
    char customer_ref[RD_MAX_SHORT_BYTES + 1];
    char region[RD_MAX_SHORT_BYTES + 1];
    char subject[RD_MAX_SUBJECT_BYTES + 1];
    char organisation[RD_MAX_SHORT_BYTES + 1];
    char product[RD_MAX_SHORT_BYTES + 1];
    char case_no[RD_MAX_SHORT_BYTES + 1];
    char *body; /* malloc'd only when the narrative must be cut */
} pack_scratch;

static bool fill_ticket(const rd_cfpb *d, const cfpb_row *r, pack_scratch *sc, Redress__V1__NewTicket *t)
{
    const char *id = d->text + r->off[COL_ID];
    const char *narrative = d->text + r->off[COL_NARRATIVE];
    const char *state = d->text + r->off[COL_STATE], *zip = d->text + r->off[COL_ZIP];

    t->channel = channel_of(d->text + r->off[COL_VIA]);
    t->customer_ref = join(sc->customer_ref, sizeof(sc->customer_ref), RD_MAX_SHORT_BYTES, "cfpb-", "", id);
    if (*state)
        snprintf(sc->region, sizeof(sc->region), "US-%s%s%s", state, *zip ? "-" : "", zip);
    else
        snprintf(sc->region, sizeof(sc->region), "US");
    utf8_cut(sc->region, RD_MAX_SHORT_BYTES);
    t->region = sc->region;
    t->language = "en";
    t->subject = join(sc->subject, sizeof(sc->subject), RD_MAX_SUBJECT_BYTES, d->text + r->off[COL_ISSUE], " / ",
                      d->text + r->off[COL_SUB_ISSUE]);
    t->product = join(sc->product, sizeof(sc->product), RD_MAX_SHORT_BYTES, d->text + r->off[COL_PRODUCT], " / ",
                      d->text + r->off[COL_SUB_PRODUCT]);
    if (*t->subject == '\0' && *narrative == '\0')
        t->subject =
            join(sc->subject, sizeof(sc->subject), RD_MAX_SUBJECT_BYTES, d->text + r->off[COL_PRODUCT], "", "");
    t->body = d->text + r->off[COL_NARRATIVE];
    if (strlen(narrative) > RD_MAX_TEXT_BYTES) {
        if ((sc->body = strndup(narrative, RD_MAX_TEXT_BYTES + 1)) == NULL)
            return false;
        utf8_cut(sc->body, RD_MAX_TEXT_BYTES);
        t->body = sc->body;
    }
    t->organisation =
        join(sc->organisation, sizeof(sc->organisation), RD_MAX_SHORT_BYTES, d->text + r->off[COL_COMPANY], "", "");
    t->vip = false;
    t->external_case_no = join(sc->case_no, sizeof(sc->case_no), RD_MAX_SHORT_BYTES, id, "", "");
    return true;
}

bool rd_cfpb_pack(const rd_cfpb *d, size_t i, const char *gateway_id, const char *event_id_prefix, uint8_t **buf,
                  size_t *len, char *event_id, size_t event_id_len)
{
    Redress__V1__Envelope env = REDRESS__V1__ENVELOPE__INIT;
    Redress__V1__NewTicket t = REDRESS__V1__NEW_TICKET__INIT;
    pack_scratch *sc;
    const char *prefix = event_id_prefix != NULL ? event_id_prefix : "cfpb-";
    bool ok = false;

    if (i >= d->nrows || gateway_id == NULL || (sc = calloc(1, sizeof(*sc))) == NULL)
        return false;
    int n = snprintf(sc->event_id, sizeof(sc->event_id), "%s%s", prefix, d->text + d->rows[i].off[COL_ID]);
    /* An event id is an identity: cutting it could merge two events, so refuse instead. */
    if (n > 0 && (size_t)n <= RD_MAX_ID_BYTES && (size_t)n < event_id_len && fill_ticket(d, &d->rows[i], sc, &t)) {
        env.schema_version = RD_SCHEMA_VERSION;
        env.gateway_id = (char *)gateway_id;
        env.event_id = sc->event_id;
        env.occurred_at_ms = d->rows[i].occurred_ms;
        env.payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_NEW_TICKET;
        env.new_ticket = &t;
        *len = redress__v1__envelope__get_packed_size(&env);
        *buf = malloc(*len);
        if (*buf != NULL) {
            redress__v1__envelope__pack(&env, *buf);
            memcpy(event_id, sc->event_id, (size_t)n + 1);
            ok = true;
        }
    }
    free(sc->body);
    free(sc);
    return ok;
}

bool rd_cfpb_next(void *cursor, uint8_t **buf, size_t *len, char *event_id, size_t event_id_len)
{
    rd_cfpb_cursor *cur = cursor;

    if (cur->next >= cur->end || cur->next >= rd_cfpb_count(cur->data))
        return false;
    if (!rd_cfpb_pack(cur->data, cur->next, cur->gateway_id, cur->prefix, buf, len, event_id, event_id_len)) {
        cur->failed = true;
        return false;
    }
    cur->next++;
    return true;
}
