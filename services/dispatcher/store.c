/*
 * store.c -- the dispatcher's PostgreSQL side. Every function runs in the caller's transaction.
 *
 * A ticket is only ever assigned by a process holding its row lock (FOR UPDATE SKIP LOCKED), so
 * any number of dispatchers, and the fast path, re-drive, queue and timeout sweeps of each, never
 * decide the same ticket at once; the partial unique index on open assignments backs this up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher.h"
#include "dp_store.h"
#include "rd_lifecycle.h"
#include "rd_pg.h"

#define CLAIM_COLS                                                                                                     \
    "SELECT t.id, COALESCE(t.business_type, ''), COALESCE(t.category, ''), COALESCE(t.severity, 'general'),"           \
    "       t.channel, t.region, t.language, t.state, COALESCE(t.owner_agent, ''), COALESCE(t.route_to_unit, ''),"     \
    "       COALESCE(t.priority, 4),"                                                                                  \
    "       COALESCE(floor(extract(epoch FROM now() - q.enqueued_at))::bigint, 0),"                                    \
    "       CASE WHEN t.missed_accepts = 0 THEN '[]' ELSE"                                                             \
    "         (SELECT COALESCE(array_to_json(array_agg(DISTINCT m.agent_id)), '[]') FROM ticket_assignments m"         \
    "           WHERE m.ticket_id = t.id AND m.outcome = 'missed') END,"                                               \
    "       q.ticket_id IS NOT NULL"                                                                                   \
    "  FROM tickets t LEFT JOIN dispatch_queue q ON q.ticket_id = t.id"

#define NEEDS_DISPATCH "(t.state IN ('classified', 'returned') OR (t.state = 'assigned' AND t.owner_agent IS NULL))"

static const char *const SQL_CLAIM_IDS =
    CLAIM_COLS " WHERE t.id = ANY($1::uuid[]) AND " NEEDS_DISPATCH " ORDER BY t.id FOR UPDATE OF t SKIP LOCKED";

static const char *const SQL_CLAIM_REDRIVE =
    CLAIM_COLS " WHERE " NEEDS_DISPATCH " AND q.ticket_id IS NULL"
               "   AND t.updated_at < now() - make_interval(secs => $2::double precision / 1000)"
               " ORDER BY t.updated_at LIMIT $1 FOR UPDATE OF t SKIP LOCKED";

/* The head of every team's queue, so that a team nobody can serve never starves the others. */
static const char *const SQL_CLAIM_QUEUE =
    CLAIM_COLS " WHERE q.ticket_id IN (SELECT h.ticket_id FROM (SELECT DISTINCT team_id FROM dispatch_queue) tm"
               "                        CROSS JOIN LATERAL (SELECT ticket_id FROM dispatch_queue q2"
               "                                             WHERE q2.team_id = tm.team_id"
               "                                             ORDER BY q2.priority, q2.enqueued_at LIMIT $2) h)"
               "   AND " NEEDS_DISPATCH " ORDER BY q.priority, q.enqueued_at LIMIT $1 FOR UPDATE OF t SKIP LOCKED";

static const char *const SQL_EXPIRE =
    "WITH due AS ("
    "  SELECT a.id FROM ticket_assignments a JOIN tickets t ON t.id = a.ticket_id"
    "   WHERE a.ended_at IS NULL AND a.accepted_at IS NULL AND a.accept_due_at < now() AND t.state = 'assigned'"
    "   ORDER BY a.accept_due_at LIMIT $1 FOR UPDATE OF t, a SKIP LOCKED),"
    " m AS (UPDATE ticket_assignments a SET ended_at = now(), outcome = 'missed' FROM due WHERE a.id = due.id"
    "       RETURNING a.ticket_id, a.agent_id),"
    " t AS (UPDATE tickets t SET owner_agent = NULL, owner_team = NULL, missed_accepts = missed_accepts + 1,"
    "              updated_at = now(), version = version + 1"
    "         FROM m WHERE t.id = m.ticket_id RETURNING t.id)"
    " INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor, reason, note)"
    " SELECT m.ticket_id, 'assign', 'assigned', 'assigned', $2, 'acceptance timeout', 'missed by ' || m.agent_id"
    "   FROM m RETURNING ticket_id";

static const char *const SQL_ASSIGN =
    "WITH x AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],"
    "                                $7::int[], $8::text[], $9::text[])"
    "             AS x(id, agent, team, dept, kind, weight, accept_s, from_state, why)),"
    " u AS (UPDATE tickets t SET state = 'assigned', owner_agent = x.agent, owner_team = x.team, owner_unit = x.dept,"
    "              first_owner_unit = COALESCE(t.first_owner_unit, x.dept),"
    "              accountable_unit = COALESCE(t.accountable_unit, x.dept),"
    "              route_to_unit = NULL, updated_at = now(), version = t.version + 1"
    "         FROM x WHERE t.id = x.id RETURNING t.id),"
    " a AS (INSERT INTO ticket_assignments (ticket_id, agent_id, team_id, department_id, kind, weight,"
    "                                       accept_due_at, dispatcher)"
    "       SELECT id, agent, team, dept, kind, weight, now() + make_interval(secs => accept_s), $10 FROM x"
    "       RETURNING 1),"
    " q AS (DELETE FROM dispatch_queue WHERE ticket_id IN (SELECT id FROM x) RETURNING 1)"
    " INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor, target_unit, reason, note)"
    " SELECT id, 'assign', from_state, 'assigned', $10, team, why, 'agent ' || agent FROM x"
    " RETURNING ticket_id, seq";

static const char *const SQL_QUEUE =
    "INSERT INTO dispatch_queue (ticket_id, team_id, priority, kind, reason)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::smallint[], $4::text[], $5::text[])"
    " ON CONFLICT (ticket_id) DO UPDATE SET team_id = EXCLUDED.team_id, priority = EXCLUDED.priority,"
    "   kind = EXCLUDED.kind, reason = EXCLUDED.reason, attempts = dispatch_queue.attempts + 1";

static const char *const SQL_OPEN_OF = "SELECT k.id, COALESCE(a.agent_id, ''), COALESCE(a.weight, 1)"
                                       "  FROM unnest($1::uuid[]) AS k(id)"
                                       "  LEFT JOIN ticket_assignments a ON a.ticket_id = k.id AND a.ended_at IS NULL";

static const char *const SQL_OPEN_ALL =
    "SELECT ticket_id, agent_id, weight FROM ticket_assignments WHERE ended_at IS NULL";

static const char *const SQL_PRESENCE =
    "SELECT agent_id, status, GREATEST(0, (extract(epoch FROM expires_at - now()) * 1000)::bigint)"
    "  FROM agent_presence p JOIN agents a ON a.id = p.agent_id AND a.active";

/* Every statement is prepared once per connection (dp_store_prepare) and run by name. */
bool dp_store_prepare(PGconn *c, char *err, int errlen)
{
    static const rd_pg_statement st[] = {{"dp_claim_ids", SQL_CLAIM_IDS},     {"dp_claim_redrive", SQL_CLAIM_REDRIVE},
                                         {"dp_claim_queue", SQL_CLAIM_QUEUE}, {"dp_expire", SQL_EXPIRE},
                                         {"dp_assign", SQL_ASSIGN},           {"dp_queue", SQL_QUEUE},
                                         {"dp_open_of", SQL_OPEN_OF}};
    return rd_pg_prepare(c, st, sizeof(st) / sizeof(st[0]), err, errlen);
}

void dp_batch_free(dp_batch *b)
{
    for (int i = 0; i < b->n; i++) {
        dp_ticket *t = &b->v[i];
        free(t->business_type);
        free(t->category);
        free(t->severity);
        free(t->channel);
        free(t->region);
        free(t->language);
        free(t->state);
        free(t->owner_agent);
        free(t->route_to_unit);
        for (char **p = t->excluded; p && *p; p++)
            free(*p);
        free(t->excluded);
    }
    free(b->v);
    free(b->queued);
    memset(b, 0, sizeof(*b));
}

static bool failed(PGconn *c, PGresult *r, ExecStatusType want, const char *what, char *err, int errlen)
{
    if (PQresultStatus(r) == want)
        return false;
    snprintf(err, errlen, "%s: %s", what, PQerrorMessage(c));
    PQclear(r);
    return true;
}

static char *col(const PGresult *r, int row, int c)
{
    char *s = strdup(PQgetvalue(r, row, c));
    if (s == NULL)
        abort();
    return s;
}

/* '["a","b"]' from array_to_json: ids only (the CHECK on agents.id forbids quotes and escapes). */
static char **idList(const char *json)
{
    int n = 0;
    for (const char *p = json; *p; p++)
        n += *p == '"';
    char **v = calloc((size_t)n / 2 + 1, sizeof(*v));
    if (v == NULL)
        abort();
    int k = 0;
    for (const char *p = strchr(json, '"'); p; p = strchr(p, '"')) {
        const char *e = strchr(p + 1, '"');
        if (e == NULL)
            break;
        v[k] = strndup(p + 1, (size_t)(e - p - 1));
        if (v[k++] == NULL)
            abort();
        p = e + 1;
    }
    return v;
}

static bool claimRows(PGconn *c, PGresult *r, dp_batch *out, char *err, int errlen)
{
    memset(out, 0, sizeof(*out));
    if (failed(c, r, PGRES_TUPLES_OK, "claim", err, errlen))
        return false;
    int n = PQntuples(r);
    out->v = calloc((size_t)n + 1, sizeof(*out->v));
    out->queued = calloc((size_t)n + 1, sizeof(*out->queued));
    if (out->v == NULL || out->queued == NULL)
        abort();
    for (int i = 0; i < n; i++) {
        dp_ticket *t = &out->v[i];
        snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(r, i, 0));
        t->business_type = col(r, i, 1);
        t->category = col(r, i, 2);
        t->severity = col(r, i, 3);
        t->channel = col(r, i, 4);
        t->region = col(r, i, 5);
        t->language = col(r, i, 6);
        t->state = col(r, i, 7);
        t->owner_agent = col(r, i, 8);
        t->route_to_unit = col(r, i, 9);
        t->priority = atoi(PQgetvalue(r, i, 10));
        t->waiting_s = atoll(PQgetvalue(r, i, 11));
        t->excluded = idList(PQgetvalue(r, i, 12));
        t->transferred = t->route_to_unit[0] != '\0';
        out->queued[i] = PQgetvalue(r, i, 13)[0] == 't';
    }
    out->n = n;
    PQclear(r);
    return true;
}

bool dp_store_claim_ids(PGconn *c, const char *const *ids, int n, dp_batch *out, char *err, int errlen)
{
    rd_pgarr a;
    rd_pgarr_init(&a);
    for (int i = 0; i < n; i++)
        rd_pgarr_str(&a, ids[i]);
    const char *p[1] = {rd_pgarr_finish(&a)};
    PGresult *r = PQexecPrepared(c, "dp_claim_ids", 1, p, NULL, NULL, 0);
    rd_pgarr_free(&a);
    return claimRows(c, r, out, err, errlen);
}

bool dp_store_claim_redrive(PGconn *c, int limit, int64_t min_age_ms, dp_batch *out, char *err, int errlen)
{
    char l[16], age[24];
    snprintf(l, sizeof(l), "%d", limit);
    snprintf(age, sizeof(age), "%lld", (long long)min_age_ms);
    const char *p[2] = {l, age};
    return claimRows(c, PQexecPrepared(c, "dp_claim_redrive", 2, p, NULL, NULL, 0), out, err, errlen);
}

bool dp_store_claim_queue(PGconn *c, int limit, int per_team, dp_batch *out, char *err, int errlen)
{
    char l[16], t[16];
    snprintf(l, sizeof(l), "%d", limit);
    snprintf(t, sizeof(t), "%d", per_team);
    const char *p[2] = {l, t};
    return claimRows(c, PQexecPrepared(c, "dp_claim_queue", 2, p, NULL, NULL, 0), out, err, errlen);
}

int dp_store_expire(PGconn *c, int limit, const char *who, char ***ids, char *err, int errlen)
{
    char l[16];
    snprintf(l, sizeof(l), "%d", limit);
    const char *p[2] = {l, who};
    PGresult *r = PQexecPrepared(c, "dp_expire", 2, p, NULL, NULL, 0);
    if (failed(c, r, PGRES_TUPLES_OK, "expire", err, errlen))
        return -1;
    int n = PQntuples(r);
    *ids = calloc((size_t)n + 1, sizeof(char *));
    if (*ids == NULL)
        abort();
    for (int i = 0; i < n; i++)
        (*ids)[i] = col(r, i, 0);
    PQclear(r);
    return n;
}

bool dp_store_write(PGconn *c, const dp_batch *b, const dp_decision *d, const char *who, int64_t *seqs, char *err,
                    int errlen)
{
    rd_pgarr a[9], q[5];
    for (int i = 0; i < 9; i++)
        rd_pgarr_init(&a[i]);
    for (int i = 0; i < 5; i++)
        rd_pgarr_init(&q[i]);
    int na = 0, nq = 0;
    for (int i = 0; i < b->n; i++) {
        seqs[i] = 0;
        const dp_decision *x = &d[i];
        if (x->skip)
            continue;
        if (x->agent[0]) {
            rd_pgarr_str(&a[0], b->v[i].id);
            rd_pgarr_str(&a[1], x->agent);
            rd_pgarr_str(&a[2], x->team);
            rd_pgarr_str(&a[3], x->dept);
            rd_pgarr_str(&a[4], x->kind);
            rd_pgarr_int(&a[5], x->weight);
            rd_pgarr_int(&a[6], x->accept_s);
            rd_pgarr_str(&a[7], b->v[i].state);
            rd_pgarr_str(&a[8], x->why);
            na++;
        } else {
            rd_pgarr_str(&q[0], b->v[i].id);
            rd_pgarr_str(&q[1], x->team);
            rd_pgarr_int(&q[2], b->v[i].priority);
            rd_pgarr_str(&q[3], x->kind);
            rd_pgarr_str(&q[4], x->why);
            nq++;
        }
    }
    bool ok = true;
    if (na > 0) {
        const char *p[10];
        for (int i = 0; i < 9; i++)
            p[i] = rd_pgarr_finish(&a[i]);
        p[9] = who;
        PGresult *r = PQexecPrepared(c, "dp_assign", 10, p, NULL, NULL, 0);
        if (failed(c, r, PGRES_TUPLES_OK, "assign", err, errlen)) {
            ok = false;
        } else {
            for (int k = 0; k < PQntuples(r); k++) {
                const char *id = PQgetvalue(r, k, 0);
                for (int i = 0; i < b->n; i++)
                    if (seqs[i] == 0 && strcmp(b->v[i].id, id) == 0) {
                        seqs[i] = atoll(PQgetvalue(r, k, 1));
                        break;
                    }
            }
            PQclear(r);
        }
    }
    if (ok && nq > 0) {
        const char *p[5];
        for (int i = 0; i < 5; i++)
            p[i] = rd_pgarr_finish(&q[i]);
        PGresult *r = PQexecPrepared(c, "dp_queue", 5, p, NULL, NULL, 0);
        if (failed(c, r, PGRES_COMMAND_OK, "queue", err, errlen))
            ok = false;
        else
            PQclear(r);
    }
    for (int i = 0; i < 9; i++)
        rd_pgarr_free(&a[i]);
    for (int i = 0; i < 5; i++)
        rd_pgarr_free(&q[i]);
    return ok;
}

static int openRows(PGconn *c, PGresult *r, dp_open **out, char *err, int errlen)
{
    if (failed(c, r, PGRES_TUPLES_OK, "open assignments", err, errlen))
        return -1;
    int n = PQntuples(r);
    *out = calloc((size_t)n + 1, sizeof(**out));
    if (*out == NULL)
        abort();
    for (int i = 0; i < n; i++) {
        snprintf((*out)[i].ticket, sizeof((*out)[i].ticket), "%s", PQgetvalue(r, i, 0));
        snprintf((*out)[i].agent, sizeof((*out)[i].agent), "%s", PQgetvalue(r, i, 1));
        (*out)[i].weight = atoi(PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return n;
}

int dp_store_open_of(PGconn *c, const char *const *ids, int n, dp_open **out, char *err, int errlen)
{
    rd_pgarr a;
    rd_pgarr_init(&a);
    for (int i = 0; i < n; i++)
        rd_pgarr_str(&a, ids[i]);
    const char *p[1] = {rd_pgarr_finish(&a)};
    PGresult *r = PQexecPrepared(c, "dp_open_of", 1, p, NULL, NULL, 0);
    rd_pgarr_free(&a);
    return openRows(c, r, out, err, errlen);
}

int dp_store_open_all(PGconn *c, dp_open **out, char *err, int errlen)
{
    return openRows(c, PQexec(c, SQL_OPEN_ALL), out, err, errlen);
}

int dp_store_presence(PGconn *c, dp_presence **out, char *err, int errlen)
{
    PGresult *r = PQexec(c, SQL_PRESENCE);
    if (failed(c, r, PGRES_TUPLES_OK, "presence", err, errlen))
        return -1;
    int n = PQntuples(r);
    *out = calloc((size_t)n + 1, sizeof(**out));
    if (*out == NULL)
        abort();
    for (int i = 0; i < n; i++) {
        snprintf((*out)[i].agent, sizeof((*out)[i].agent), "%s", PQgetvalue(r, i, 0));
        snprintf((*out)[i].status, sizeof((*out)[i].status), "%s", PQgetvalue(r, i, 1));
        (*out)[i].ttl_ms = atoll(PQgetvalue(r, i, 2));
    }
    PQclear(r);
    return n;
}
