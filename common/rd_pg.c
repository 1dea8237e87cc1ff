/*
 * rd_pg.c -- libpq glue: connecting, classifying failures, backoff, array literals.
 *
 * Batch writes in Redress send one array parameter per column and let the server unnest them
 * (one round trip, one plan, no per-row protocol overhead). Text array literals are used rather
 * than the binary array format because they need no OIDs and stay readable in logs; the quoting
 * below is the whole of their grammar for one-dimensional arrays of quoted elements.
 */
#include "rd_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_log.h"
#include "rd_time.h"

PGconn *rd_pg_connect(const char *dsn, const char *application_name, char *err, int errlen)
{
    /* libpq keeps the last value of a repeated key, so our defaults come first and anything the
     * DSN (expanded from dbname, expand_dbname=1) says wins. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"5", application_name, dsn, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        size_t l = strlen(err);
        while (l > 0 && (err[l - 1] == '\n' || err[l - 1] == ' '))
            err[--l] = '\0';
        PQfinish(c);
        return NULL;
    }
    return c;
}

bool rd_pg_is_transient(PGconn *conn, const PGresult *res)
{
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return true;
    if (res == NULL)
        return true;
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (st == NULL)
        return PQresultStatus(res) == PGRES_FATAL_ERROR && PQstatus(conn) != CONNECTION_OK;
    return strncmp(st, "08", 2) == 0 || strncmp(st, "57P", 3) == 0 || strncmp(st, "53", 2) == 0 ||
           strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0;
}

bool rd_pg_command(PGconn *conn, const char *sql, char *err, int errlen)
{
    PGresult *r = PQexec(conn, sql);
    bool ok = r != NULL && (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    if (!ok)
        snprintf(err, errlen, "%s", conn ? PQerrorMessage(conn) : "no connection");
    PQclear(r);
    return ok;
}

int64_t rd_backoff_next(int64_t cur_ms, int64_t min_ms, int64_t max_ms)
{
    int64_t next = cur_ms <= 0 ? min_ms : cur_ms * 2;
    if (next > max_ms)
        next = max_ms;
    /* +-20% jitter so a fleet of restarted services does not reconnect in lockstep */
    int64_t j = next / 5;
    if (j > 0)
        next += (int64_t)(random() % (2 * j + 1)) - j;
    return next < min_ms ? min_ms : next;
}

void rd_pglink_drop(rd_pglink *l, const char *why)
{
    if (l->conn == NULL)
        return;
    /* log first: why is often PQerrorMessage(l->conn), which PQfinish frees */
    rd_log(RD_LOG_WARN, "lost PostgreSQL", "error", why, NULL);
    PQfinish(l->conn);
    l->conn = NULL;
}

bool rd_pglink_ensure(rd_pglink *l, bool *fresh)
{
    if (fresh)
        *fresh = false;
    if (l->conn && PQstatus(l->conn) == CONNECTION_OK)
        return true;
    rd_pglink_drop(l, "connection broken");
    int64_t now = rd_mono_us();
    if (now < l->next_us)
        return false;
    char err[512], sql[160];
    l->conn = rd_pg_connect(l->dsn, l->app, err, sizeof(err));
    if (l->conn && l->listen) {
        snprintf(sql, sizeof(sql), "LISTEN %s", l->listen);
        if (!rd_pg_command(l->conn, sql, err, sizeof(err))) {
            PQfinish(l->conn);
            l->conn = NULL;
        }
    }
    if (l->conn == NULL) {
        l->backoff_ms = rd_backoff_next(l->backoff_ms, 100, 5000);
        l->next_us = now + l->backoff_ms * 1000;
        rd_log(RD_LOG_WARN, "cannot reach PostgreSQL", "error", err, NULL);
        return false;
    }
    l->backoff_ms = 0;
    rd_log(RD_LOG_INFO, "connected to PostgreSQL", NULL);
    if (fresh)
        *fresh = true;
    return true;
}

bool rd_pglink_notified(rd_pglink *l)
{
    if (l->conn == NULL || !PQconsumeInput(l->conn)) {
        rd_pglink_drop(l, l->conn ? PQerrorMessage(l->conn) : "no connection");
        return false;
    }
    bool any = false;
    PGnotify *n;
    while ((n = PQnotifies(l->conn)) != NULL) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

bool rd_pg_prepare(PGconn *conn, const rd_pg_statement *st, size_t n, char *err, int errlen)
{
    for (size_t i = 0; i < n; i++) {
        PGresult *r = PQprepare(conn, st[i].name, st[i].sql, 0, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            snprintf(err, errlen, "prepare %s: %s", st[i].name, PQerrorMessage(conn));
        PQclear(r);
        if (!ok)
            return false;
    }
    return true;
}

static void pgarrReserve(rd_pgarr *a, size_t more)
{
    if (a->len + more + 2 <= a->cap)
        return;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < a->len + more + 2)
        cap *= 2;
    char *nb = realloc(a->buf, cap);
    if (nb == NULL)
        abort(); /* a batch we cannot even describe: nothing sane to do */
    a->buf = nb;
    a->cap = cap;
}

void rd_pgarr_init(rd_pgarr *a)
{
    memset(a, 0, sizeof(*a));
    rd_pgarr_reset(a);
}

void rd_pgarr_reset(rd_pgarr *a)
{
    a->len = 0;
    a->n = 0;
    pgarrReserve(a, 1);
    a->buf[a->len++] = '{';
}

void rd_pgarr_free(rd_pgarr *a)
{
    free(a->buf);
    memset(a, 0, sizeof(*a));
}

static void pgarrSep(rd_pgarr *a)
{
    if (a->n++ > 0)
        a->buf[a->len++] = ',';
}

void rd_pgarr_text(rd_pgarr *a, const char *s, size_t len)
{
    pgarrReserve(a, 2 * len + 4);
    pgarrSep(a);
    a->buf[a->len++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"' || s[i] == '\\')
            a->buf[a->len++] = '\\';
        a->buf[a->len++] = s[i];
    }
    a->buf[a->len++] = '"';
}

void rd_pgarr_str(rd_pgarr *a, const char *s)
{
    rd_pgarr_text(a, s ? s : "", s ? strlen(s) : 0);
}

void rd_pgarr_int(rd_pgarr *a, int64_t v)
{
    pgarrReserve(a, 24);
    pgarrSep(a);
    a->len += (size_t)snprintf(a->buf + a->len, 24, "%lld", (long long)v);
}

void rd_pgarr_bool(rd_pgarr *a, bool v)
{
    pgarrReserve(a, 2);
    pgarrSep(a);
    a->buf[a->len++] = v ? 't' : 'f';
}

void rd_pgarr_bytea(rd_pgarr *a, const uint8_t *p, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    pgarrReserve(a, 2 * len + 8);
    pgarrSep(a);
    /* "\\x..." inside the array literal: the array parser eats one backslash, bytea sees \x */
    memcpy(a->buf + a->len, "\"\\\\x", 4);
    a->len += 4;
    for (size_t i = 0; i < len; i++) {
        a->buf[a->len++] = hex[p[i] >> 4];
        a->buf[a->len++] = hex[p[i] & 15];
    }
    a->buf[a->len++] = '"';
}

const char *rd_pgarr_finish(rd_pgarr *a)
{
    pgarrReserve(a, 2);
    a->buf[a->len] = '}';
    a->buf[a->len + 1] = '\0';
    return a->buf;
}
