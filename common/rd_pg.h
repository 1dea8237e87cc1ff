/*
 * rd_pg.h -- the little libpq glue every service needs: connect, tell a lost connection from a
 * refused statement, back off between reconnects, and build array parameters for
 * "INSERT ... SELECT FROM unnest($1::text[], ...)" batch statements.
 */
#ifndef RD_PG_H
#define RD_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* One connection attempt (connect_timeout 5 s unless the DSN says otherwise). NULL + err on failure. */
PGconn *rd_pg_connect(const char *dsn, const char *application_name, char *err, int errlen);

/* True when res/conn show the server or the link is gone or refusing work for now (class 08,
 * 57P0x admin shutdown / crash recovery, 53xxx resources): the right answer is UNAVAILABLE and a
 * reconnect, not blaming the input. */
bool rd_pg_is_transient(PGconn *conn, const PGresult *res);

/* Runs a command that returns no rows; false + err when it failed. */
bool rd_pg_command(PGconn *conn, const char *sql, char *err, int errlen);

/* A statement a service prepares once per connection and runs by name (PQexecPrepared). */
typedef struct {
    const char *name, *sql;
} rd_pg_statement;

/* Prepares every statement; false + err ("prepare NAME: why") at the first that fails. */
bool rd_pg_prepare(PGconn *conn, const rd_pg_statement *st, size_t n, char *err, int errlen);

/* Exponential backoff with jitter: next delay after cur (0 = first), capped at max_ms. */
int64_t rd_backoff_next(int64_t cur_ms, int64_t min_ms, int64_t max_ms);

/*
 * rd_pglink -- a service's connection that comes back by itself: ensure() reconnects (with
 * backoff, never more often than it allows) and LISTENs again; drop() forgets a broken one.
 * Connection changes are logged.
 */
typedef struct {
    const char *dsn, *app, *listen; /* listen: a NOTIFY channel, or NULL */
    PGconn *conn;
    int64_t backoff_ms, next_us;
} rd_pglink;

/* True when connected. *fresh (may be NULL) is true when this call made a new connection: the
 * caller may have missed notifications and should re-read what they announce. */
bool rd_pglink_ensure(rd_pglink *l, bool *fresh);
void rd_pglink_drop(rd_pglink *l, const char *why);
/* Consumes input on the link's socket; true when a notification arrived. Drops a broken link. */
bool rd_pglink_notified(rd_pglink *l);

/*
 * rd_pgarr -- a PostgreSQL array literal under construction ('{"a","b\"c"}').
 * Elements are quoted and escaped so any UTF-8 text (without NUL) round-trips exactly.
 */
typedef struct {
    char *buf;
    size_t len, cap;
    size_t n;
} rd_pgarr;

void rd_pgarr_init(rd_pgarr *a);
void rd_pgarr_reset(rd_pgarr *a); /* empty it, keep the memory */
void rd_pgarr_free(rd_pgarr *a);
void rd_pgarr_text(rd_pgarr *a, const char *s, size_t len);
void rd_pgarr_str(rd_pgarr *a, const char *s); /* NULL is stored as "" */
void rd_pgarr_int(rd_pgarr *a, int64_t v);
void rd_pgarr_bool(rd_pgarr *a, bool v);
void rd_pgarr_bytea(rd_pgarr *a, const uint8_t *p, size_t len); /* hex form */
const char *rd_pgarr_finish(rd_pgarr *a);                       /* closes the literal; valid until the next change */

#endif
