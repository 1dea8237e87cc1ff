/*
 * store.c -- the classifier's PostgreSQL side.
 *
 * Exactly-once without coordination: a classifier claims tickets with SELECT ... FOR UPDATE
 * SKIP LOCKED WHERE state = 'new', so two processes never hold the same ticket, and the write
 * moves it to 'classified' in the same transaction, so a ticket is never claimed again after
 * its decision committed. A process that dies mid-batch releases its locks with its connection;
 * the tickets are still 'new' and the next re-drive picks them up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "rd_pg.h"

#define TICKET_COLS                                                                                                    \
    "t.id, t.customer_id, (extract(epoch FROM t.created_at) * 1000000)::bigint, t.subject, t.body, t.channel,"         \
    " t.organisation, t.product, t.region, t.language, t.external_case_no, c.customer_ref, t.vip"

static const char *const SQL_CLAIM_IDS =
    "SELECT " TICKET_COLS " FROM tickets t JOIN customers c ON c.id = t.customer_id"
    " WHERE t.id = ANY($1::uuid[]) AND t.state = 'new'"
    " ORDER BY t.created_at, t.id LIMIT $2"
    " FOR UPDATE OF t SKIP LOCKED";

static const char *const SQL_CLAIM_OLD =
    "SELECT " TICKET_COLS " FROM tickets t JOIN customers c ON c.id = t.customer_id"
    " WHERE t.state = 'new' AND t.created_at < now() - $1 * interval '1 ms'"
    " ORDER BY t.created_at, t.id LIMIT $2"
    " FOR UPDATE OF t SKIP LOCKED";

/* Earlier tickets of each customer, from (first claimed - window) to the last claimed one. */
static const char *const SQL_HISTORY =
    "SELECT " TICKET_COLS ", k.category, k.ticket_id IS NOT NULL"
    " FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS q(cid, lo, hi)"
    " CROSS JOIN LATERAL (SELECT * FROM tickets x WHERE x.customer_id = q.cid"
    "      AND x.created_at >= to_timestamp(q.lo / 1000000.0) AND x.created_at <= to_timestamp(q.hi / 1000000.0)"
    "      ORDER BY x.created_at DESC LIMIT 200) t"
    " JOIN customers c ON c.id = t.customer_id"
    " LEFT JOIN ticket_classifications k ON k.ticket_id = t.id";

static const char *const SQL_WRITE =
    "WITH d AS ("
    "  SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::real[], $5::text[], $6::text[], $7::real[],"
    "                       $8::text[], $9::text[], $10::smallint[], $11::text[], $12::text[], $13::text[])"
    "    AS d(id, bt, bt_src, bt_conf, cat, cat_src, cat_conf, sev, reasons, pri, pri_src, rep, dup)"
    "), ins AS ("
    "  INSERT INTO ticket_classifications (ticket_id, business_type, business_type_source, business_type_confidence,"
    "      category, category_source, category_confidence, severity, severity_reasons, priority, priority_source,"
    "      repeat_of, duplicate_of, rules_version, classifier)"
    "  SELECT id, bt, bt_src, bt_conf, NULLIF(cat, ''), cat_src, cat_conf, sev,"
    "         CASE WHEN reasons = '' THEN '{}'::text[] ELSE string_to_array(reasons, E'\\x1f') END,"
    "         pri, pri_src, NULLIF(rep, '')::uuid, NULLIF(dup, '')::uuid, $14, $15 FROM d"
    "  ON CONFLICT (ticket_id) DO NOTHING RETURNING ticket_id"
    "), upd AS ("
    "  UPDATE tickets t SET state = 'classified', business_type = d.bt, category = NULLIF(d.cat, ''),"
    "         severity = d.sev, priority = d.pri, updated_at = now(), version = t.version + 1"
    "    FROM d WHERE t.id = d.id AND t.state = 'new' AND t.id IN (SELECT ticket_id FROM ins)"
    "  RETURNING t.id"
    ")"
    " INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, actor, note)"
    " SELECT d.id, 'classify', 'new', 'classified', 'classifier',"
    "        d.bt || ' / ' || coalesce(NULLIF(d.cat, ''), '-') || ' / ' || d.sev || ' / p' || d.pri"
    "   FROM d JOIN upd ON upd.id = d.id"
    " RETURNING ticket_id, seq";

void cl_batch_free(cl_batch *b)
{
    free(b->v);
    free(b->arena);
    memset(b, 0, sizeof(*b));
}

/* Copies rows into the batch; every string goes into one arena freed with the batch. */
static bool readTickets(const PGresult *r, bool withClass, cl_batch *out)
{
    int n = PQntuples(r);
    out->v = calloc((size_t)(n ? n : 1), sizeof(cl_ticket));
    if (out->v == NULL)
        return false;
    /* one arena for all strings of the batch */
    size_t total = 0;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < PQnfields(r); c++)
            total += (size_t)PQgetlength(r, i, c) + 1;
    out->arena = malloc(total + 1);
    if (out->arena == NULL)
        return false;
    char *p = out->arena;
    for (int i = 0; i < n; i++) {
        cl_ticket *t = &out->v[i];
        char **fields[] = {&t->subject, &t->body,     &t->channel,          &t->organisation, &t->product,
                           &t->region,  &t->language, &t->external_case_no, &t->customer_ref};
        snprintf(t->id, sizeof(t->id), "%s", PQgetvalue(r, i, 0));
        snprintf(t->customer_id, sizeof(t->customer_id), "%s", PQgetvalue(r, i, 1));
        t->created_us = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        for (int f = 0; f < 9; f++) {
            size_t l = (size_t)PQgetlength(r, i, 3 + f);
            memcpy(p, PQgetvalue(r, i, 3 + f), l + 1);
            *fields[f] = p;
            p += l + 1;
        }
        t->vip = PQgetvalue(r, i, 12)[0] == 't';
        if (withClass) {
            t->classified = PQgetvalue(r, i, 14)[0] == 't';
            size_t l = (size_t)PQgetlength(r, i, 13);
            memcpy(p, PQgetvalue(r, i, 13), l + 1);
            t->category = PQgetisnull(r, i, 13) ? NULL : p;
            p += l + 1;
        }
    }
    out->n = n;
    return true;
}

static bool fail(PGconn *c, PGresult *r, char *err, int errlen)
{
    snprintf(err, errlen, "%s", PQerrorMessage(c));
    PQclear(r);
    return false;
}

bool cl_store_claim(PGconn *c, const char *const *ids, int n, int limit, int64_t min_age_ms, cl_batch *out, char *err,
                    int errlen)
{
    memset(out, 0, sizeof(*out));
    if (!rd_pg_command(c, "BEGIN", err, errlen))
        return false;
    char lim[16], age[24];
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(age, sizeof(age), "%lld", (long long)min_age_ms);
    PGresult *r;
    if (ids) {
        rd_pgarr a;
        rd_pgarr_init(&a);
        for (int i = 0; i < n; i++)
            rd_pgarr_str(&a, ids[i]);
        const char *p[2] = {rd_pgarr_finish(&a), lim};
        r = PQexecParams(c, SQL_CLAIM_IDS, 2, NULL, p, NULL, NULL, 0);
        rd_pgarr_free(&a);
    } else {
        const char *p[2] = {age, lim};
        r = PQexecParams(c, SQL_CLAIM_OLD, 2, NULL, p, NULL, NULL, 0);
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(c, r, err, errlen);
    bool ok = readTickets(r, false, out);
    PQclear(r);
    if (!ok)
        snprintf(err, errlen, "out of memory");
    return ok;
}

bool cl_store_history(PGconn *c, const cl_batch *claimed, int64_t window_us, cl_batch *out, char *err, int errlen)
{
    memset(out, 0, sizeof(*out));
    rd_pgarr cid, lo, hi;
    rd_pgarr_init(&cid);
    rd_pgarr_init(&lo);
    rd_pgarr_init(&hi);
    for (int i = 0; i < claimed->n; i++) {
        const cl_ticket *t = &claimed->v[i];
        bool seen = false;
        for (int j = 0; j < i && !seen; j++)
            seen = strcmp(claimed->v[j].customer_id, t->customer_id) == 0;
        if (seen)
            continue;
        int64_t first = t->created_us;
        int64_t last = first;
        for (int j = i + 1; j < claimed->n; j++) {
            if (strcmp(claimed->v[j].customer_id, t->customer_id) != 0)
                continue;
            if (claimed->v[j].created_us < first)
                first = claimed->v[j].created_us;
            if (claimed->v[j].created_us > last)
                last = claimed->v[j].created_us;
        }
        rd_pgarr_str(&cid, t->customer_id);
        rd_pgarr_int(&lo, first - window_us);
        rd_pgarr_int(&hi, last + 1);
    }
    const char *p[3] = {rd_pgarr_finish(&cid), rd_pgarr_finish(&lo), rd_pgarr_finish(&hi)};
    PGresult *r = PQexecParams(c, SQL_HISTORY, 3, NULL, p, NULL, NULL, 0);
    rd_pgarr_free(&cid);
    rd_pgarr_free(&lo);
    rd_pgarr_free(&hi);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(c, r, err, errlen);
    bool ok = readTickets(r, true, out);
    PQclear(r);
    if (!ok)
        snprintf(err, errlen, "out of memory");
    return ok;
}

bool cl_store_write(PGconn *c, const cl_decision *d, int n, const char *rules_version, const char *who, int64_t *seqs,
                    char *err, int errlen)
{
    rd_pgarr col[13];
    for (int k = 0; k < 13; k++)
        rd_pgarr_init(&col[k]);
    for (int i = 0; i < n; i++) {
        char num[32], reasons[RD_RULES_MAX_REASONS * 65] = "";
        size_t rl = 0;
        for (int k = 0; k < d[i].nreasons; k++)
            rl += (size_t)snprintf(reasons + rl, sizeof(reasons) - rl, "%s%s", k ? "\x1f" : "", d[i].reasons[k]);
        rd_pgarr_str(&col[0], d[i].ticket_id);
        rd_pgarr_str(&col[1], d[i].business_type);
        rd_pgarr_str(&col[2], d[i].business_type_source);
        snprintf(num, sizeof(num), "%.4f", d[i].business_type_confidence);
        rd_pgarr_str(&col[3], num);
        rd_pgarr_str(&col[4], d[i].category);
        rd_pgarr_str(&col[5], d[i].category_source);
        snprintf(num, sizeof(num), "%.4f", d[i].category_confidence);
        rd_pgarr_str(&col[6], num);
        rd_pgarr_str(&col[7], d[i].major ? "major" : "general");
        rd_pgarr_str(&col[8], reasons);
        rd_pgarr_int(&col[9], d[i].priority);
        rd_pgarr_str(&col[10], d[i].priority_source);
        rd_pgarr_str(&col[11], d[i].repeat_of);
        rd_pgarr_str(&col[12], d[i].duplicate_of);
        seqs[i] = 0;
    }
    const char *p[15];
    for (int k = 0; k < 13; k++)
        p[k] = rd_pgarr_finish(&col[k]);
    p[13] = rules_version ? rules_version : "";
    p[14] = who;
    PGresult *r = PQexecParams(c, SQL_WRITE, 15, NULL, p, NULL, NULL, 0);
    for (int k = 0; k < 13; k++)
        rd_pgarr_free(&col[k]);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(c, r, err, errlen);
    for (int k = 0; k < PQntuples(r); k++)
        for (int i = 0; i < n; i++)
            if (strcmp(PQgetvalue(r, k, 0), d[i].ticket_id) == 0)
                seqs[i] = strtoll(PQgetvalue(r, k, 1), NULL, 10);
    PQclear(r);
    return rd_pg_command(c, "COMMIT", err, errlen);
}

bool cl_store_active_rules(PGconn *c, char **json, char **version, char *err, int errlen)
{
    *json = *version = NULL;
    PGresult *r = PQexec(c, "SELECT body::text, version FROM classifier_rulesets WHERE active");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return fail(c, r, err, errlen);
    if (PQntuples(r) > 0) {
        *json = strdup(PQgetvalue(r, 0, 0));
        *version = strdup(PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return true;
}
