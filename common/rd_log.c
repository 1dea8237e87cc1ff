/*
 * rd_log.c -- logfmt records on stderr.
 *
 * Every record is built in a stack buffer and handed to the kernel with one write(2). Writes of
 * up to PIPE_BUF bytes to a pipe are atomic and a single write to a file or terminal is not
 * interleaved with other writers' records in practice, so lines from different threads (or
 * processes sharing the descriptor) never mix and no lock is needed. Stdio is avoided for the
 * same reason: its buffering would split or merge records.
 *
 * Quoting follows logfmt as read by common parsers: a value is written bare unless it is empty or
 * contains a space, '"', '=' or a control character; then it is double-quoted with \" \\ \n \r \t
 * escaped and other control bytes written as \u00XX. Bytes >= 0x80 (UTF-8) pass through as they
 * are. Records longer than the buffer are cut at a character boundary, closed properly and marked
 * with truncated=true so a parser still reads a well-formed line.
 */
#include "rd_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_RECORD_MAX 8192
#define LOG_RESERVE    32 /* kept free for a closing quote, " truncated=true" and '\n' */

static atomic_int min_level = RD_LOG_INFO;
/* Written by rd_log_init, which runs once at start-up before any other thread logs. */
static char service_name[64];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* A record being built. Appends past `limit` are dropped and remembered in `truncated`. */
typedef struct {
    char buf[LOG_RECORD_MAX];
    size_t len;
    size_t limit;
    bool truncated;
} record;

void rd_log_init(const char *service, rd_log_level level)
{
    snprintf(service_name, sizeof(service_name), "%s", service ? service : "");
    atomic_store(&min_level, (int)level);
}

rd_log_level rd_log_level_parse(const char *name)
{
    if (name == NULL)
        return RD_LOG_INFO;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return (rd_log_level)i;
    if (strcasecmp(name, "warning") == 0)
        return RD_LOG_WARN;
    return RD_LOG_INFO;
}

/* ---- record building ----------------------------------------------------------------------- */

static bool rec_room(const record *r, size_t n)
{
    return r->len + n <= r->limit;
}

static void rec_bytes(record *r, const char *s, size_t n)
{
    if (!rec_room(r, n)) {
        r->truncated = true;
        return;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
}

static void rec_str(record *r, const char *s)
{
    rec_bytes(r, s, strlen(s));
}

static bool needs_quotes(const char *v)
{
    if (*v == '\0')
        return true;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == 0x7f)
            return true;
    return false;
}

/* Length of the UTF-8 sequence starting with byte c (1 for ASCII and for stray bytes). Used only
 * to avoid cutting a character in half when a value is truncated. */
static size_t utf8_seq_len(unsigned char c)
{
    if (c >= 0xF0)
        return 4;
    if (c >= 0xE0)
        return 3;
    if (c >= 0xC0)
        return 2;
    return 1;
}

/* The two-character escape for c inside quotes, or NULL when c needs none of those. */
static const char *short_escape(unsigned char c)
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        return NULL;
    }
}

/* Appends one character of a quoted value: its escape or its whole UTF-8 sequence. Returns the
 * number of source bytes consumed, or 0 when it does not fit. */
static size_t rec_quoted_char(record *r, const unsigned char *p)
{
    char esc[8];
    const char *out = short_escape(*p);
    size_t n, used = 1;
    if (out != NULL) {
        n = 2;
    } else if (*p < ' ' || *p == 0x7f) {
        n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
        out = esc;
    } else {
        n = utf8_seq_len(*p);
        for (size_t i = 1; i < n; i++) /* a sequence cut short by the NUL ends early */
            if (p[i] == '\0') {
                n = i;
                break;
            }
        out = (const char *)p;
        used = n;
    }
    if (!rec_room(r, n))
        return 0;
    rec_bytes(r, out, n);
    return used;
}

/* Appends a value, quoted if needed. Returns false, having written nothing, when not even its
 * beginning fits. A quoted value that runs out of room is cut and still closed. */
static bool rec_value(record *r, const char *v)
{
    if (!needs_quotes(v)) {
        size_t n = strlen(v);
        if (!rec_room(r, n)) {
            r->truncated = true;
            return false;
        }
        rec_bytes(r, v, n);
        return true;
    }
    if (!rec_room(r, 1)) {
        r->truncated = true;
        return false;
    }
    rec_bytes(r, "\"", 1);
    const unsigned char *p = (const unsigned char *)v;
    while (*p) {
        size_t used = rec_quoted_char(r, p);
        if (used == 0) {
            r->truncated = true;
            break;
        }
        p += used;
    }
    /* The closing quote may use the reserve: a value, once opened, is always closed. */
    r->buf[r->len++] = '"';
    return true;
}

/* Keys come from code, not users, but a space or '=' in one would still corrupt the line. */
static void rec_key(record *r, const char *k)
{
    rec_bytes(r, " ", 1);
    for (const unsigned char *p = (const unsigned char *)k; *p; p++) {
        char c = (*p <= ' ' || *p == '"' || *p == '=' || *p == 0x7f) ? '_' : (char)*p;
        rec_bytes(r, &c, 1);
    }
    rec_bytes(r, "=", 1);
}

/* Once something has been cut, later fields are dropped too so that what is kept is a prefix of
 * the record; a key is never left without its value. */
static void rec_field(record *r, const char *k, const char *v)
{
    if (r->truncated)
        return;
    size_t mark = r->len;
    rec_key(r, k);
    if (r->truncated || !rec_value(r, v))
        r->len = mark;
}

static void rec_timestamp(record *r)
{
    struct timespec ts;
    struct tm tm;
    char buf[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, sizeof(buf), "ts=%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    rec_str(r, buf);
}

/* Hands the finished record to the kernel. A short write (a full pipe, a signal) is resumed so the
 * line is never lost half-way; in the common case this is exactly one write(2). */
static void rec_flush(record *r)
{
    if (r->truncated)
        rec_str(r, " truncated=true"); /* fits: it is inside the reserve once limit is lifted */
    r->buf[r->len++] = '\n';
    size_t off = 0;
    while (off < r->len) {
        ssize_t w = write(STDERR_FILENO, r->buf + off, r->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere left to report it */
        off += (size_t)w;
    }
}

/* fields: alternating key/value pointers ended by a NULL key, or NULL for none. */
static void emit(rd_log_level level, const char *msg, va_list *fields)
{
    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    if ((unsigned)level > RD_LOG_ERROR)
        level = RD_LOG_ERROR;

    record r;
    r.len = 0;
    r.limit = sizeof(r.buf) - LOG_RESERVE;
    r.truncated = false;

    rec_timestamp(&r);
    rec_field(&r, "level", level_names[level]);
    if (service_name[0])
        rec_field(&r, "svc", service_name);
    rec_field(&r, "msg", msg ? msg : "");
    if (fields) {
        const char *k;
        while ((k = va_arg(*fields, const char *)) != NULL) {
            const char *v = va_arg(*fields, const char *);
            /* A NULL value is indistinguishable from the sentinel: stop rather than read past it. */
            rec_field(&r, k, v ? v : "");
            if (v == NULL)
                break;
        }
    }
    r.limit = sizeof(r.buf) - 1; /* the reserve is now available for the trailer */
    rec_flush(&r);
}

void rd_log(rd_log_level level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    emit(level, msg, &ap);
    va_end(ap);
}

void rd_logf(rd_log_level level, const char *fmt, ...)
{
    if ((int)level < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    char msg[LOG_RECORD_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(level, msg, NULL);
}
