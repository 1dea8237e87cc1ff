/*
 * intake_writer.c -- turning batches of validated events into committed rows.
 *
 * Group commit: a whole batch is one transaction, so one WAL flush makes hundreds of events
 * durable. New tickets go in with a single statement whose data-modifying CTEs write the ledger,
 * customers, tickets, attachments and history from column arrays (one round trip for the lot):
 * the ledger insert says ON CONFLICT DO NOTHING and everything else is filtered on the rows it
 * really inserted, so a replay -- even one racing in from another intake process -- never
 * creates a second ticket. Events the ledger already held are looked up afterwards in the same
 * transaction and answered as replays (same digest) or CONFLICT (different digest).
 *
 * Actions are rarer and need the ticket's current state, so each is applied on its own under
 * a row lock (SELECT ... FOR UPDATE), still inside the batch's transaction.
 *
 * Failure handling: a lost connection fails the batch as UNAVAILABLE (the client retries with
 * the same event id; if the COMMIT did land, the retry is answered as a replay). Any other error
 * means one event upset the database despite validation: the batch is rolled back and every
 * event retried alone, so one bad event cannot take its neighbours down with it.
 */
#include "intake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "rd_envelope.h"
#include "rd_lifecycle.h"
#include "rd_log.h"
#include "rd_pg.h"
#include "rd_time.h"

#define MAX_WRITERS 64

typedef struct writer {
    intake *in;
    int idx;
    pthread_t th;
    PGconn *conn;
    void *done; /* inproc PUSH to the main thread */
    int64_t backoff_ms;
    int64_t next_connect_us;
    rd_pgarr col[26]; /* column arrays for the new-ticket statement */
} writer;

static writer writers[MAX_WRITERS];
static int nwriters;

/* ---- statements ---------------------------------------------------------------------------- */

static const char *const SQL_NEW =
    "WITH r AS ("
    "  SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::uuid[], $5::uuid[], $6::text[], $7::text[],"
    "                       $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],"
    "                       $15::text[], $16::text[], $17::bool[], $18::text[], $19::bigint[])"
    "    AS r(gw, eid, digest, tid, cid, cref, cname, cphone, cemail, channel, region, lang, subject, body, org,"
    "         product, vip, caseno, occ)"
    "), led AS ("
    "  INSERT INTO inbound_events (gateway_id, event_id, payload_sha256, ticket_id, kind, state_after)"
    "  SELECT gw, eid, digest, tid, 'new_ticket', 'new' FROM r"
    "  ON CONFLICT DO NOTHING RETURNING ticket_id"
    "), cus AS ("
    "  INSERT INTO customers AS c (id, customer_ref, name, phone, email)"
    "  SELECT DISTINCT ON (cid) cid, cref, NULLIF(cname, ''), NULLIF(cphone, ''), NULLIF(cemail, '')"
    "    FROM r WHERE tid IN (SELECT ticket_id FROM led) ORDER BY cid"
    "  ON CONFLICT (id) DO UPDATE SET name = COALESCE(EXCLUDED.name, c.name),"
    "     phone = COALESCE(EXCLUDED.phone, c.phone), email = COALESCE(EXCLUDED.email, c.email), updated_at = now()"
    "  WHERE (c.name, c.phone, c.email) IS DISTINCT FROM"
    "        (COALESCE(EXCLUDED.name, c.name), COALESCE(EXCLUDED.phone, c.phone), COALESCE(EXCLUDED.email, c.email))"
    "), tk AS ("
    "  INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, region, language, subject, body,"
    "                      organisation, product, vip, external_case_no, occurred_at)"
    "  SELECT tid, gw, eid, channel, cid, region, lang, subject, body, org, product, vip, caseno,"
    "         to_timestamp(occ / 1000.0) FROM r WHERE tid IN (SELECT ticket_id FROM led)"
    "  RETURNING id, gateway_id, event_id"
    "), att AS ("
    "  INSERT INTO ticket_attachments (ticket_id, ord, uri, sha256, size_bytes, media_type)"
    "  SELECT a.tid, a.ord, a.uri, a.sha, a.sz, a.mt"
    "    FROM unnest($20::uuid[], $21::smallint[], $22::text[], $23::bytea[], $24::bigint[], $25::text[])"
    "      AS a(tid, ord, uri, sha, sz, mt)"
    "   WHERE a.tid IN (SELECT id FROM tk)"
    ")"
    " INSERT INTO ticket_history (ticket_id, kind, to_state, gateway_id, event_id)"
    " SELECT id, 'created', 'new', gateway_id, event_id FROM tk"
    " RETURNING ticket_id, seq";

static const char *const SQL_LEDGER_MANY =
    "SELECT i.gateway_id, i.event_id, i.payload_sha256, i.ticket_id, i.state_after"
    "  FROM inbound_events i JOIN unnest($1::text[], $2::text[]) AS k(gw, eid)"
    "    ON i.gateway_id = k.gw AND i.event_id = k.eid";

static const char *const SQL_LEDGER_ONE =
    "SELECT payload_sha256, ticket_id, state_after FROM inbound_events WHERE gateway_id = $1 AND event_id = $2";

static const char *const SQL_LOCK = "SELECT state, gateway_id FROM tickets WHERE id = $1 FOR UPDATE";

static const char *const SQL_LEDGER_PUT =
    "INSERT INTO inbound_events (gateway_id, event_id, payload_sha256, ticket_id, kind, state_after)"
    " VALUES ($1, $2, $3::bytea, $4, $5, $6) ON CONFLICT DO NOTHING";

/* One UPDATE for every action: each column changes only for the events that own it. */
static const char *const SQL_APPLY =
    "WITH u AS ("
    "  UPDATE tickets SET state = $2, updated_at = now(), version = version + 1,"
    "    first_response_at = CASE WHEN $3 = 'reply' THEN COALESCE(first_response_at, now())"
    "                             ELSE first_response_at END,"
    "    resolved_at = CASE WHEN $3 = 'resolve' THEN now() WHEN $3 = 'reopen' THEN NULL ELSE resolved_at END,"
    "    closed_at = CASE WHEN $3 = 'close' THEN now() WHEN $3 = 'reopen' THEN NULL ELSE closed_at END,"
    "    reopen_count = reopen_count + CASE WHEN $3 = 'reopen' THEN 1 ELSE 0 END,"
    "    chase_count = chase_count + CASE WHEN $3 = 'chase' THEN 1 ELSE 0 END,"
    "    satisfaction = CASE WHEN $3 = 'return_visit' THEN $9::smallint ELSE satisfaction END,"
    "    owner_unit = CASE WHEN $3 = 'transfer' THEN $8 WHEN $3 = 'return' THEN NULL ELSE owner_unit END,"
    "    owner_agent = CASE WHEN $3 IN ('transfer', 'return') THEN NULL ELSE owner_agent END,"
    "    owner_team = CASE WHEN $3 IN ('transfer', 'return') THEN NULL ELSE owner_team END,"
    "    route_to_unit = CASE WHEN $3 IN ('transfer', 'return') THEN $8 ELSE route_to_unit END,"
    /* 首问负责: accountability moves only when a hand-over is accepted */
    "    accountable_unit = CASE WHEN $3 = 'accept' THEN COALESCE(owner_unit, accountable_unit)"
    "                            ELSE accountable_unit END"
    "  WHERE id = $1 RETURNING id, owner_agent, owner_team, owner_unit"
    "),"
    /* the owner's open assignment: accepted, or ended (its load freed), or opened again on reopen */
    " acc AS (UPDATE ticket_assignments SET accepted_at = now()"
    "          WHERE $3 = 'accept' AND ticket_id = $1 AND ended_at IS NULL AND accepted_at IS NULL RETURNING 1),"
    " fin AS (UPDATE ticket_assignments SET ended_at = now(),"
    "                outcome = CASE $3 WHEN 'transfer' THEN 'transferred' WHEN 'return' THEN 'returned'"
    "                                  WHEN 'resolve' THEN 'resolved' ELSE 'closed' END"
    "          WHERE $3 IN ('transfer', 'return', 'resolve', 'close') AND ticket_id = $1 AND ended_at IS NULL"
    "          RETURNING 1),"
    " ro AS (INSERT INTO ticket_assignments (ticket_id, agent_id, team_id, department_id, kind, weight,"
    "                                        accept_due_at, accepted_at, dispatcher)"
    "         SELECT u.id, u.owner_agent, COALESCE(u.owner_team, ''), COALESCE(u.owner_unit, ''), 'reopen',"
    "                COALESCE((SELECT weight FROM ticket_assignments WHERE ticket_id = $1 ORDER BY id DESC LIMIT 1), "
    "1),"
    "                now(), now(), 'intake'"
    "           FROM u WHERE $3 = 'reopen' AND u.owner_agent IS NOT NULL"
    "            AND NOT EXISTS (SELECT 1 FROM ticket_assignments WHERE ticket_id = $1 AND ended_at IS NULL)"
    "         RETURNING 1)"
    " INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor, gateway_id, event_id, reason,"
    "                             target_unit, note, satisfaction)"
    " SELECT id, $3, $4, $2, $5, $10, $11, $7, $8, $6, $9::smallint FROM u RETURNING seq";

static bool writerPrepare(writer *w, char *err, int errlen)
{
    static const rd_pg_statement st[] = {
        {"new", SQL_NEW},   {"ledger_many", SQL_LEDGER_MANY}, {"ledger_one", SQL_LEDGER_ONE},
        {"lock", SQL_LOCK}, {"ledger_put", SQL_LEDGER_PUT},   {"apply", SQL_APPLY}};
    if (!rd_pg_prepare(w->conn, st, sizeof(st) / sizeof(st[0]), err, errlen))
        return false;
    char sql[96];
    snprintf(sql, sizeof(sql), "SET statement_timeout = %lld", (long long)w->in->cfg.statement_timeout_ms);
    return rd_pg_command(w->conn, sql, err, errlen);
}

/* ---- connection ---------------------------------------------------------------------------- */

static void writerDisconnect(writer *w, const char *why)
{
    if (w->conn == NULL)
        return;
    PQfinish(w->conn);
    w->conn = NULL;
    atomic_fetch_sub(&w->in->connected, 1);
    rd_metric_set(w->in->m.db_up, atomic_load(&w->in->connected) > 0);
    char idx[16];
    snprintf(idx, sizeof(idx), "%d", w->idx);
    rd_log(RD_LOG_WARN, "lost PostgreSQL", "writer", idx, "error", why, NULL);
}

/* One attempt, at most as often as the backoff allows. */
static bool writerConnect(writer *w)
{
    if (w->conn)
        return true;
    int64_t now = rd_mono_us();
    if (now < w->next_connect_us)
        return false;
    char err[512];
    w->conn = rd_pg_connect(w->in->cfg.pg_dsn, "redress-intake", err, sizeof(err));
    if (w->conn && !writerPrepare(w, err, sizeof(err))) {
        PQfinish(w->conn);
        w->conn = NULL;
    }
    if (w->conn == NULL) {
        w->backoff_ms = rd_backoff_next(w->backoff_ms, 100, 5000);
        w->next_connect_us = now + w->backoff_ms * 1000;
        rd_log(RD_LOG_WARN, "cannot reach PostgreSQL", "error", err, NULL);
        return false;
    }
    w->backoff_ms = 0;
    w->next_connect_us = 0;
    atomic_fetch_add(&w->in->connected, 1);
    rd_metric_set(w->in->m.db_up, 1);
    rd_log(RD_LOG_INFO, "connected to PostgreSQL", NULL);
    return true;
}

/* ---- answers ------------------------------------------------------------------------------- */

static void itemReset(intake_item *it)
{
    it->code = REDRESS__V1__ERROR_CODE__ERROR_NONE;
    it->field = NULL;
    it->message[0] = '\0';
    it->replay = false;
    it->state[0] = '\0';
    it->seq = 0;
}

static void itemFail(intake_item *it, Redress__V1__ErrorCode code, const char *msg)
{
    it->code = code;
    snprintf(it->message, sizeof(it->message), "%s", msg);
}

/* A ledger row for this item's (gateway, event id): replay of the same event, or a conflict. */
static void itemFromLedger(intake_item *it, const PGresult *r, int row, int digestCol)
{
    size_t n = 0;
    unsigned char *d = PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, digestCol), &n);
    bool same = d != NULL && n == 32 && memcmp(d, it->digest, 32) == 0;
    PQfreemem(d);
    if (!same) {
        itemFail(it, REDRESS__V1__ERROR_CODE__ERROR_CONFLICT,
                 "this event id was already used for a different event; use a new event id");
        it->field = "event_id";
        return;
    }
    it->replay = true;
    snprintf(it->ticket_id, sizeof(it->ticket_id), "%s", PQgetvalue(r, row, digestCol + 1));
    snprintf(it->state, sizeof(it->state), "%s", PQgetvalue(r, row, digestCol + 2));
}

/* ---- new tickets --------------------------------------------------------------------------- */

static const char *emptyIfNull(const char *s)
{
    return s ? s : "";
}

static bool applyNew(writer *w, intake_item **items, int n, PGresult **fail)
{
    for (int c = 0; c < 25; c++)
        rd_pgarr_reset(&w->col[c]);
    for (int i = 0; i < n; i++) {
        const Redress__V1__Envelope *e = items[i]->env;
        const Redress__V1__NewTicket *t = e->new_ticket;
        rd_pgarr *col = w->col;
        rd_pgarr_str(&col[0], e->gateway_id);
        rd_pgarr_str(&col[1], e->event_id);
        rd_pgarr_bytea(&col[2], items[i]->digest, 32);
        rd_pgarr_str(&col[3], items[i]->ticket_id);
        rd_pgarr_str(&col[4], items[i]->customer_id);
        rd_pgarr_str(&col[5], t->customer_ref);
        rd_pgarr_str(&col[6], t->customer_name);
        rd_pgarr_str(&col[7], t->customer_phone);
        rd_pgarr_str(&col[8], t->customer_email);
        rd_pgarr_str(&col[9], rd_channel_name(t->channel));
        rd_pgarr_str(&col[10], t->region);
        rd_pgarr_str(&col[11], t->language);
        rd_pgarr_str(&col[12], t->subject);
        rd_pgarr_str(&col[13], t->body);
        rd_pgarr_str(&col[14], t->organisation);
        rd_pgarr_str(&col[15], t->product);
        rd_pgarr_bool(&col[16], t->vip);
        rd_pgarr_str(&col[17], t->external_case_no);
        rd_pgarr_int(&col[18], e->occurred_at_ms);
        for (size_t a = 0; a < t->n_attachments; a++) {
            const Redress__V1__Attachment *at = t->attachments[a];
            rd_pgarr_str(&col[19], items[i]->ticket_id);
            rd_pgarr_int(&col[20], (int64_t)a);
            rd_pgarr_str(&col[21], at->uri);
            rd_pgarr_bytea(&col[22], at->sha256.data, at->sha256.len);
            rd_pgarr_int(&col[23], (int64_t)at->size);
            rd_pgarr_str(&col[24], emptyIfNull(at->media_type));
        }
    }
    const char *params[25];
    for (int c = 0; c < 25; c++)
        params[c] = rd_pgarr_finish(&w->col[c]);

    PGresult *r = PQexecPrepared(w->conn, "new", 25, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        *fail = r;
        return false;
    }
    /* Match created tickets back to items; the ones left over are already in the ledger. */
    int created = PQntuples(r);
    int missing = 0;
    for (int i = 0; i < n; i++) {
        intake_item *it = items[i];
        it->seq = 0;
        for (int k = 0; k < created; k++) { /* batches are small enough for a scan to win */
            if (strcmp(PQgetvalue(r, k, 0), it->ticket_id) == 0) {
                it->seq = strtoll(PQgetvalue(r, k, 1), NULL, 10);
                break;
            }
        }
        if (it->seq) {
            it->kind = "created";
            snprintf(it->state, sizeof(it->state), "new");
        } else {
            missing++;
        }
    }
    PQclear(r);
    if (missing == 0)
        return true;

    rd_pgarr_reset(&w->col[0]);
    rd_pgarr_reset(&w->col[1]);
    for (int i = 0; i < n; i++) {
        if (items[i]->seq == 0) {
            rd_pgarr_str(&w->col[0], items[i]->env->gateway_id);
            rd_pgarr_str(&w->col[1], items[i]->env->event_id);
        }
    }
    const char *p2[2] = {rd_pgarr_finish(&w->col[0]), rd_pgarr_finish(&w->col[1])};
    r = PQexecPrepared(w->conn, "ledger_many", 2, p2, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        *fail = r;
        return false;
    }
    for (int i = 0; i < n; i++) {
        intake_item *it = items[i];
        if (it->seq)
            continue;
        int row = -1;
        for (int k = 0; k < PQntuples(r) && row < 0; k++)
            if (strcmp(PQgetvalue(r, k, 0), it->env->gateway_id) == 0 &&
                strcmp(PQgetvalue(r, k, 1), it->env->event_id) == 0)
                row = k;
        if (row >= 0)
            itemFromLedger(it, r, row, 2);
        else /* cannot happen: ON CONFLICT skipped it, so a row exists */
            itemFail(it, REDRESS__V1__ERROR_CODE__ERROR_INTERNAL, "ledger row vanished");
    }
    PQclear(r);
    return true;
}

/* ---- actions ------------------------------------------------------------------------------- */

static bool ledgerLookup(writer *w, intake_item *it, bool *found, PGresult **fail)
{
    const char *p[2] = {it->env->gateway_id, it->env->event_id};
    PGresult *r = PQexecPrepared(w->conn, "ledger_one", 2, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        *fail = r;
        return false;
    }
    *found = PQntuples(r) > 0;
    if (*found)
        itemFromLedger(it, r, 0, 0);
    PQclear(r);
    return true;
}

static bool applyAction(writer *w, intake_item *it, PGresult **fail)
{
    const Redress__V1__TicketAction *a = it->env->action;
    rd_event ev = rd_action_event(a->kind);
    bool found;
    if (!ledgerLookup(w, it, &found, fail))
        return false;
    if (found)
        return true;

    const char *pl[1] = {a->ticket_id};
    PGresult *r = PQexecPrepared(w->conn, "lock", 1, pl, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        *fail = r;
        return false;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        itemFail(it, REDRESS__V1__ERROR_CODE__ERROR_NOT_FOUND, "no ticket with this id");
        it->field = "ticket_id";
        return true;
    }
    if (it->own_only && strcmp(PQgetvalue(r, 0, 1), it->env->gateway_id) != 0) {
        /* the gateways table says this gateway acts only on its own tickets (intake_auth.c) */
        PQclear(r);
        itemFail(it, REDRESS__V1__ERROR_CODE__ERROR_FORBIDDEN,
                 "this ticket was created by another gateway, and this gateway may act only on its own tickets");
        it->field = "ticket_id";
        return true;
    }
    rd_state from = rd_state_parse(PQgetvalue(r, 0, 0));
    PQclear(r);
    rd_state to = rd_lifecycle_next(from, ev);
    if (to == RD_STATE_INVALID) {
        char m[160];
        snprintf(m, sizeof(m), "cannot %s a ticket that is %s", rd_event_name(ev), rd_state_name(from));
        itemFail(it, REDRESS__V1__ERROR_CODE__ERROR_INVALID_TRANSITION, m);
        it->field = "kind";
        snprintf(it->state, sizeof(it->state), "%s", rd_state_name(from));
        return true;
    }

    char hex[2 + 64 + 1] = "\\x";
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 + 2 * i, 3, "%02x", it->digest[i]);
    const char *pp[6] = {it->env->gateway_id, it->env->event_id, hex,
                         a->ticket_id,        rd_event_name(ev), rd_state_name(to)};
    r = PQexecPrepared(w->conn, "ledger_put", 6, pp, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        *fail = r;
        return false;
    }
    bool inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!inserted) /* another intake process stored the same event meanwhile */
        return ledgerLookup(w, it, &found, fail);

    char sat[8];
    snprintf(sat, sizeof(sat), "%u", a->satisfaction);
    const char *pa[11] = {a->ticket_id,
                          rd_state_name(to),
                          rd_event_name(ev),
                          rd_state_name(from),
                          a->actor,
                          emptyIfNull(a->note),
                          emptyIfNull(a->reason),
                          emptyIfNull(a->target_unit),
                          a->satisfaction ? sat : NULL,
                          it->env->gateway_id,
                          it->env->event_id};
    r = PQexecPrepared(w->conn, "apply", 11, pa, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        *fail = r;
        return false;
    }
    it->seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    it->kind = rd_event_name(ev);
    snprintf(it->state, sizeof(it->state), "%s", rd_state_name(to));
    PQclear(r);
    return true;
}

/* ---- one transaction ----------------------------------------------------------------------- */

typedef enum { TX_OK, TX_TRANSIENT, TX_ERROR } tx_result;

static tx_result txApply(writer *w, intake_item **items, int n, char *err, int errlen)
{
    PGresult *fail = NULL;
    bool ok = rd_pg_command(w->conn, "BEGIN", err, errlen);
    if (!ok)
        return rd_pg_is_transient(w->conn, NULL) ? TX_TRANSIENT : TX_ERROR;

    intake_item *news[n];
    int nn = 0;
    for (int i = 0; i < n; i++) {
        itemReset(items[i]);
        if (items[i]->env->payload_case == REDRESS__V1__ENVELOPE__PAYLOAD_NEW_TICKET)
            news[nn++] = items[i];
    }
    if (nn > 0)
        ok = applyNew(w, news, nn, &fail);
    for (int i = 0; ok && i < n; i++)
        if (items[i]->env->payload_case == REDRESS__V1__ENVELOPE__PAYLOAD_ACTION)
            ok = applyAction(w, items[i], &fail);
    if (ok) {
        PGresult *r = PQexec(w->conn, "COMMIT");
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            fail = r;
        else
            PQclear(r);
    }
    if (ok)
        return TX_OK;

    snprintf(err, errlen, "%s", PQerrorMessage(w->conn));
    tx_result res = rd_pg_is_transient(w->conn, fail) ? TX_TRANSIENT : TX_ERROR;
    PQclear(fail);
    if (PQstatus(w->conn) == CONNECTION_OK) {
        char e2[64];
        rd_pg_command(w->conn, "ROLLBACK", e2, sizeof(e2));
    }
    return res;
}

static void failAll(intake_item **items, int n, Redress__V1__ErrorCode code, const char *msg)
{
    for (int i = 0; i < n; i++) {
        itemReset(items[i]);
        itemFail(items[i], code, msg);
        items[i]->seq = 0;
    }
}

static void writerProcess(writer *w, intake_batch *b)
{
    intake_item *items[b->n];
    for (int i = 0; i < b->n; i++)
        items[i] = &b->items[i];
    if (!writerConnect(w)) {
        failAll(items, b->n, REDRESS__V1__ERROR_CODE__ERROR_UNAVAILABLE, "storage unavailable; retry later");
        return;
    }
    char err[512];
    int64_t t0 = rd_mono_us();
    tx_result res = txApply(w, items, b->n, err, sizeof(err));
    if (res == TX_ERROR && b->n > 1) {
        /* isolate the event the database refused: each alone, in its own transaction */
        rd_metric_inc(w->in->m.writer_errors, 1);
        rd_log(RD_LOG_ERROR, "batch refused; retrying events one by one", "error", err, NULL);
        for (int i = 0; i < b->n && w->conn; i++) {
            tx_result r1 = txApply(w, &items[i], 1, err, sizeof(err));
            if (r1 == TX_ERROR) {
                rd_log(RD_LOG_ERROR, "event refused by PostgreSQL", "event_id", items[i]->env->event_id, "error", err,
                       NULL);
                failAll(&items[i], 1, REDRESS__V1__ERROR_CODE__ERROR_INTERNAL, "the database refused this event");
            } else if (r1 == TX_TRANSIENT) {
                writerDisconnect(w, err);
                failAll(&items[i], b->n - i, REDRESS__V1__ERROR_CODE__ERROR_UNAVAILABLE,
                        "storage unavailable; retry later");
            }
        }
        res = TX_OK;
    } else if (res == TX_ERROR) {
        rd_metric_inc(w->in->m.writer_errors, 1);
        rd_log(RD_LOG_ERROR, "event refused by PostgreSQL", "event_id", items[0]->env->event_id, "error", err, NULL);
        failAll(items, 1, REDRESS__V1__ERROR_CODE__ERROR_INTERNAL, "the database refused this event");
    }
    if (res == TX_TRANSIENT) {
        writerDisconnect(w, err);
        failAll(items, b->n, REDRESS__V1__ERROR_CODE__ERROR_UNAVAILABLE, "storage unavailable; retry later");
    }
    rd_metric_observe(w->in->m.commit_seconds, (double)(rd_mono_us() - t0) / 1e6);
}

/* ---- the thread ---------------------------------------------------------------------------- */

static void *writerMain(void *arg)
{
    writer *w = arg;
    intake *in = w->in;
    for (;;) {
        pthread_mutex_lock(&in->mu);
        while (in->qhead == NULL && !in->stopping) {
            if (w->conn == NULL) {
                /* idle and disconnected: wake up to retry the connection on our backoff */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 200 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&in->cv, &in->mu, &ts);
                if (in->qhead == NULL && !in->stopping) {
                    pthread_mutex_unlock(&in->mu);
                    writerConnect(w);
                    pthread_mutex_lock(&in->mu);
                }
            } else {
                pthread_cond_wait(&in->cv, &in->mu);
            }
        }
        intake_batch *b = in->qhead;
        if (b) {
            in->qhead = b->next;
            if (in->qhead == NULL)
                in->qtail = NULL;
        }
        bool stop = in->stopping && b == NULL;
        pthread_mutex_unlock(&in->mu);
        if (stop)
            break;
        writerProcess(w, b);
        zmq_send(w->done, &b, sizeof(b), 0);
    }
    if (w->conn) {
        PQfinish(w->conn);
        w->conn = NULL;
        atomic_fetch_sub(&in->connected, 1);
    }
    return NULL;
}

void intake_queue_push(intake *in, intake_batch *b)
{
    b->next = NULL;
    pthread_mutex_lock(&in->mu);
    if (in->qtail)
        in->qtail->next = b;
    else
        in->qhead = b;
    in->qtail = b;
    pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

bool intake_writers_start(intake *in, char *err, int errlen)
{
    nwriters = (int)in->cfg.writers;
    if (nwriters > MAX_WRITERS)
        nwriters = MAX_WRITERS;
    for (int i = 0; i < nwriters; i++) {
        writer *w = &writers[i];
        memset(w, 0, sizeof(*w));
        w->in = in;
        w->idx = i;
        for (int c = 0; c < 26; c++)
            rd_pgarr_init(&w->col[c]);
        w->done = zmq_socket(in->zctx, ZMQ_PUSH);
        int hwm = 0; /* never drop a finished batch */
        zmq_setsockopt(w->done, ZMQ_SNDHWM, &hwm, sizeof(hwm));
        if (zmq_connect(w->done, INTAKE_DONE_ENDPOINT) != 0) {
            snprintf(err, errlen, "inproc connect: %s", zmq_strerror(zmq_errno()));
            return false;
        }
        writerConnect(w); /* a first attempt now, so a healthy start answers at once */
    }
    for (int i = 0; i < nwriters; i++) {
        if (pthread_create(&writers[i].th, NULL, writerMain, &writers[i]) != 0) {
            snprintf(err, errlen, "cannot start writer thread");
            return false;
        }
    }
    return true;
}

void intake_writers_stop(intake *in)
{
    pthread_mutex_lock(&in->mu);
    in->stopping = true;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
    for (int i = 0; i < nwriters; i++) {
        pthread_join(writers[i].th, NULL);
        zmq_close(writers[i].done);
        for (int c = 0; c < 26; c++)
            rd_pgarr_free(&writers[i].col[c]);
    }
    nwriters = 0;
}
