/*
 * store.c -- redress-escalation's PostgreSQL side: the policy catalog, applying queued history
 * rows to clocks, and firing due stages. Each batch is one transaction; the clocks it touches are
 * locked, recomputed by the pure engine (clock.c) and written back with one upsert, with their
 * SLA events, escalations and actions, so what is committed is always consistent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "es_store.h"
#include "rd_pg.h"

#define MS(x) "(extract(epoch FROM " x ") * 1000)::bigint"

/* ---- the catalog ------------------------------------------------------------------------------ */

static const char *const SQL_POLICIES =
    "SELECT id, clock, business_type, COALESCE(severity, ''), COALESCE(channel, ''), COALESCE(customer_tier, ''),"
    "       CASE WHEN transferred IS NULL THEN -1 WHEN transferred THEN 1 ELSE 0 END, target, unit,"
    "       COALESCE(calendar_id, ''), array_to_string(warn_pct, ','), active,"
    "       COALESCE((SELECT string_agg(level || ':' || after || ':' || role || ':' || action, ',' ORDER BY level)"
    "                   FROM sla_escalation_levels l WHERE l.policy_id = p.id), '')"
    "  FROM sla_policies p ORDER BY id COLLATE \"C\"";

static bool execOk(PGconn *c, const char *sql, char *err, int errlen)
{
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "%s", PQerrorMessage(c));
    PQclear(r);
    return ok;
}

static void policyFree(es_catalog *cat)
{
    for (int i = 0; i < cat->ncals; i++) {
        rd_calendar_free(cat->cals[i]);
        free(cat->cal_ids[i]);
    }
    free(cat->cals);
    free(cat->cal_ids);
    free(cat->all);
    free(cat->active);
}

void es_catalog_free(es_catalog **cat)
{
    if (*cat == NULL)
        return;
    policyFree(*cat);
    free(*cat);
    *cat = NULL;
}

const rd_calendar *es_catalog_calendar(const es_catalog *cat, const char *id)
{
    for (int i = 0; id && id[0] && i < cat->ncals; i++)
        if (strcmp(cat->cal_ids[i], id) == 0)
            return cat->cals[i];
    return NULL;
}

static bool parseLevels(const char *s, esc_policy *p)
{
    p->nlevels = 0;
    while (s && *s && p->nlevels < ESC_MAX_LEVELS) {
        char role[32], action[32];
        int level, after, used = 0;
        if (sscanf(s, "%d:%d:%31[a-z_]:%31[a-z_]%n", &level, &after, role, action, &used) != 4)
            return false;
        esc_level *l = &p->levels[p->nlevels++];
        l->level = level;
        l->after = after;
        l->role = (esc_role)esc_role_parse(role);
        l->action = (esc_action)esc_action_parse(action);
        if ((int)l->role < 0 || (int)l->action < 0)
            return false;
        s += used;
        if (*s == ',')
            s++;
    }
    return true;
}

es_catalog *es_catalog_load(PGconn *c, const char *default_calendar, char *err, int errlen)
{
    es_catalog *cat = calloc(1, sizeof(*cat));
    if (cat == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    PGresult *r = PQexec(c, "SELECT id, body::text FROM business_calendars ORDER BY id");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "business_calendars: %s", PQerrorMessage(c));
        goto fail;
    }
    int n = PQntuples(r);
    cat->cals = calloc((size_t)n + 1, sizeof(*cat->cals));
    cat->cal_ids = calloc((size_t)n + 1, sizeof(*cat->cal_ids));
    for (int i = 0; i < n; i++) {
        char cerr[256];
        rd_calendar *cal = rd_calendar_parse(PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), cerr, sizeof(cerr));
        if (cal == NULL) {
            snprintf(err, errlen, "calendar %s: %s", PQgetvalue(r, i, 0), cerr);
            goto fail;
        }
        cat->cals[cat->ncals] = cal;
        cat->cal_ids[cat->ncals++] = strdup(PQgetvalue(r, i, 0));
    }
    PQclear(r);
    cat->fallback = es_catalog_calendar(cat, default_calendar);
    if (default_calendar && default_calendar[0] && cat->fallback == NULL) {
        snprintf(err, errlen,
                 "escalation.calendar: no calendar \"%s\" in business_calendars (redressctl calendar load)",
                 default_calendar);
        r = NULL;
        goto fail;
    }
    r = PQexec(c, SQL_POLICIES);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "sla_policies: %s", PQerrorMessage(c));
        goto fail;
    }
    n = PQntuples(r);
    cat->all = calloc((size_t)n + 1, sizeof(*cat->all));
    cat->active = calloc((size_t)n + 1, sizeof(*cat->active));
    for (int i = 0; i < n; i++) {
        esc_policy *p = &cat->all[cat->nall];
        snprintf(p->id, sizeof(p->id), "%s", PQgetvalue(r, i, 0));
        int kind = esc_kind_parse(PQgetvalue(r, i, 1)), unit = esc_unit_parse(PQgetvalue(r, i, 8));
        if (kind < 0 || unit < 0) {
            snprintf(err, errlen, "policy %s: unknown clock or unit", p->id);
            goto fail;
        }
        p->kind = (esc_kind)kind;
        p->unit = (esc_unit)unit;
        snprintf(p->business_type, sizeof(p->business_type), "%s", PQgetvalue(r, i, 2));
        snprintf(p->severity, sizeof(p->severity), "%s", PQgetvalue(r, i, 3));
        snprintf(p->channel, sizeof(p->channel), "%s", PQgetvalue(r, i, 4));
        snprintf(p->tier, sizeof(p->tier), "%s", PQgetvalue(r, i, 5));
        p->transferred = atoi(PQgetvalue(r, i, 6));
        p->target = atoi(PQgetvalue(r, i, 7));
        const char *calId = PQgetvalue(r, i, 9);
        p->cal = calId[0] ? es_catalog_calendar(cat, calId) : cat->fallback;
        const char *w = PQgetvalue(r, i, 10);
        p->nwarn = 0;
        while (*w && p->nwarn < 4) {
            p->warn_pct[p->nwarn++] = atoi(w);
            const char *comma = strchr(w, ',');
            if (comma == NULL)
                break;
            w = comma + 1;
        }
        if (!parseLevels(PQgetvalue(r, i, 12), p)) {
            snprintf(err, errlen, "policy %s: bad escalation levels", p->id);
            goto fail;
        }
        cat->nall++;
        if (strcmp(PQgetvalue(r, i, 11), "t") == 0)
            cat->active[cat->nactive++] = *p;
    }
    PQclear(r);
    return cat;
fail:
    PQclear(r);
    es_catalog_free(&cat);
    return NULL;
}

/* ---- statements ------------------------------------------------------------------------------- */

/* clang-format off */
#define CLOCK_COLS                                                                                       \
    "c.id, c.ticket_id, c.clock, c.cycle, c.policy_id, COALESCE(c.calendar_id, ''), c.target_ms,"        \
    " " MS("c.started_at") ", COALESCE(" MS("c.running_since") ", -1), c.elapsed_ms, c.state,"           \
    " COALESCE(c.outcome, ''), COALESCE(" MS("c.breached_at") ", -1),"                                   \
    " array_to_string(c.stage_code, ','), array_to_string(c.stage_at, ','), c.next_stage,"               \
    " COALESCE(" MS("c.stopped_at") ", -1), c.by_transfer"
#define NCLOCK_COLS 18

static const char *const SQL_TAKE =
    "WITH q AS (DELETE FROM sla_queue WHERE part = $3 AND seq IN (SELECT seq FROM sla_queue"
    "                                   WHERE part = $3 AND seq > $2 ORDER BY seq LIMIT $1)"
    "           RETURNING seq)"
    " SELECT h.seq, h.ticket_id, h.kind, COALESCE(h.from_state, ''), h.reason, " MS("h.at") ","
    "        COALESCE(t.business_type, ''), COALESCE(t.severity, ''), t.channel, t.vip, " MS("t.created_at")
    "   FROM ticket_history h JOIN tickets t ON t.id = h.ticket_id"
    /* = ANY(ARRAY(...)): index lookups whatever the statistics say (a join to the CTE may hash
     * the whole history) */
    "  WHERE h.seq = ANY (ARRAY(SELECT seq FROM q)) ORDER BY h.seq";

static const char *const SQL_CLOCKS_OF =
    "SELECT " CLOCK_COLS " FROM sla_clocks c"
    " WHERE c.ticket_id = ANY($1::uuid[]) ORDER BY c.ticket_id, c.id FOR UPDATE";

static const char *const SQL_CLOCKS_FIRE =
    "SELECT " CLOCK_COLS ", COALESCE(t.owner_team, ''), COALESCE(t.accountable_unit, t.owner_unit, '')"
    "  FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id"
    " WHERE c.id = ANY($1::bigint[]) ORDER BY c.id FOR UPDATE OF c SKIP LOCKED";

static const char *const SQL_IDS =
    "SELECT nextval(pg_get_serial_sequence('sla_clocks', 'id')) FROM generate_series(1, $1)";

/* ms since the epoch -> timestamptz; negative = NULL */
#define TS(x) "CASE WHEN " x " < 0 THEN NULL ELSE to_timestamp(" x " / 1000.0) END"

static const char *const SQL_PUT =
    "INSERT INTO sla_clocks (id, ticket_id, clock, cycle, policy_id, calendar_id, target_ms, started_at,"
    "                        running_since, elapsed_ms, state, outcome, due_at, breached_at, stage_code,"
    "                        stage_at, next_stage, next_fire_at, armed_at, stopped_at, by_transfer)"
    " SELECT x.id, x.tk, x.clock, x.cycle, x.pol, NULLIF(x.cal, ''), x.target, to_timestamp(x.started / 1000.0),"
    "        " TS("x.since") ", x.elapsed, x.state, NULLIF(x.outcome, ''), " TS("x.due") ", " TS("x.breached") ","
    "        x.sc::smallint[], x.sa::bigint[], x.next, " TS("x.fire") ", to_timestamp($19::bigint / 1000.0),"
    "        " TS("x.stopped") ", x.bt"
    "   FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::bigint[],"
    "               $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::bigint[],"
    "               $14::bigint[], $15::text[], $16::text[], $17::int[], $18::bigint[], $20::bigint[],"
    "               $21::boolean[])"
    "        AS x(id, tk, clock, cycle, pol, cal, target, started, since, elapsed, state, outcome, due, breached,"
    "             sc, sa, next, fire, stopped, bt)"
    " ON CONFLICT (id) DO UPDATE SET running_since = EXCLUDED.running_since, elapsed_ms = EXCLUDED.elapsed_ms,"
    "   state = EXCLUDED.state, outcome = EXCLUDED.outcome, due_at = EXCLUDED.due_at,"
    "   breached_at = EXCLUDED.breached_at, next_stage = EXCLUDED.next_stage,"
    "   next_fire_at = EXCLUDED.next_fire_at, stopped_at = EXCLUDED.stopped_at";
/* clang-format on */

/* What firing changes on a clock: how far it got and when to look next (not indexed: HOT updates). */
static const char *const SQL_ADVANCE =
    "UPDATE sla_clocks c SET next_stage = x.next,"
    "       next_fire_at = CASE WHEN x.fire < 0 THEN NULL ELSE to_timestamp(x.fire / 1000.0) END,"
    "       breached_at = CASE WHEN x.br < 0 THEN NULL ELSE to_timestamp(x.br / 1000.0) END"
    "  FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[]) AS x(id, next, fire, br)"
    " WHERE c.id = x.id";

static const char *const SQL_EVENTS =
    "INSERT INTO sla_events (clock_id, ticket_id, clock, kind, level, at, detail)"
    " SELECT x.id, x.tk, x.clock, x.kind, NULLIF(x.level, 0), to_timestamp(x.at / 1000.0), x.detail"
    "   FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::text[], $5::int[], $6::bigint[], $7::text[])"
    "        AS x(id, tk, clock, kind, level, at, detail)"
    " ON CONFLICT DO NOTHING";

static const char *const SQL_ESCALATIONS =
    "INSERT INTO sla_escalations (clock_id, ticket_id, clock, level, role, target_unit, action, at)"
    " SELECT x.id, x.tk, x.clock, x.level, x.role, x.unit, x.action, to_timestamp(x.at / 1000.0)"
    "   FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::bigint[])"
    "        AS x(id, tk, clock, level, role, unit, action, at)"
    " ON CONFLICT DO NOTHING";

static const char *const SQL_RAISE =
    "UPDATE tickets SET priority = GREATEST(1, COALESCE(priority, 4) - 1), updated_at = now(), version = version + 1"
    " WHERE id = ANY($1::uuid[]) AND state NOT IN ('resolved', 'closed')";

static const char *const SQL_REROUTE =
    "UPDATE ticket_assignments a SET accept_due_at = LEAST(a.accept_due_at, to_timestamp(x.at / 1000.0))"
    "  FROM unnest($1::uuid[], $2::bigint[]) AS x(tk, at)"
    " WHERE a.ticket_id = x.tk AND a.ended_at IS NULL AND a.accepted_at IS NULL";

static const char *const SQL_LIVE =
    "SELECT id, " MS("next_fire_at") " FROM sla_clocks"
                                     " WHERE state <> 'stopped' AND next_fire_at IS NOT NULL AND id > $1"
                                     " ORDER BY id LIMIT $2";

static const char *const SQL_EXISTS =
    "SELECT id FROM sla_clocks WHERE id = ANY($1::bigint[]) AND next_fire_at IS NOT NULL";

bool es_store_prepare(PGconn *c, char *err, int errlen)
{
    static const rd_pg_statement st[] = {{"es_take", SQL_TAKE},
                                         {"es_clocks_of", SQL_CLOCKS_OF},
                                         {"es_clocks_fire", SQL_CLOCKS_FIRE},
                                         {"es_ids", SQL_IDS},
                                         {"es_put", SQL_PUT},
                                         {"es_events", SQL_EVENTS},
                                         {"es_escalations", SQL_ESCALATIONS},
                                         {"es_raise", SQL_RAISE},
                                         {"es_reroute", SQL_REROUTE},
                                         {"es_live", SQL_LIVE},
                                         {"es_exists", SQL_EXISTS},
                                         {"es_advance", SQL_ADVANCE}};
    return rd_pg_prepare(c, st, sizeof(st) / sizeof(st[0]), err, errlen);
}

/* ---- results ---------------------------------------------------------------------------------- */

void es_result_reset(es_result *r)
{
    r->ntimers = r->nnotes = 0;
    r->rows = r->armed = r->fired = r->breaches = r->escalations = 0;
    r->lateness_sum = 0;
}

void es_result_free(es_result *r)
{
    free(r->timers);
    free(r->notes);
    memset(r, 0, sizeof(*r));
}

static void addTimer(es_result *r, int64_t id, int64_t next)
{
    if (r->ntimers == r->captimers) {
        int cap = r->captimers ? 2 * r->captimers : 256;
        es_timer *t = realloc(r->timers, (size_t)cap * sizeof(*t));
        if (t == NULL)
            abort();
        r->timers = t;
        r->captimers = cap;
    }
    r->timers[r->ntimers++] = (es_timer){id, next};
}

static es_note *addNote(es_result *r)
{
    if (r->nnotes == r->capnotes) {
        int cap = r->capnotes ? 2 * r->capnotes : 64;
        es_note *n = realloc(r->notes, (size_t)cap * sizeof(*n));
        if (n == NULL)
            abort();
        r->notes = n;
        r->capnotes = cap;
    }
    es_note *n = &r->notes[r->nnotes++];
    memset(n, 0, sizeof(*n));
    return n;
}

/* ---- rows <-> clocks -------------------------------------------------------------------------- */

static int parseInts(const char *s, int64_t *out, int max)
{
    int n = 0;
    while (s && *s && n < max) {
        char *end;
        out[n++] = strtoll(s, &end, 10);
        if (*end != ',')
            break;
        s = end + 1;
    }
    return n;
}

static void rowClock(const es_catalog *cat, PGresult *r, int i, esc_clock *c, char ticket[37])
{
    memset(c, 0, sizeof(*c));
    c->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    snprintf(ticket, 37, "%s", PQgetvalue(r, i, 1));
    int k = esc_kind_parse(PQgetvalue(r, i, 2));
    c->kind = k < 0 ? ESC_RESOLUTION : (esc_kind)k;
    c->cycle = atoi(PQgetvalue(r, i, 3));
    snprintf(c->policy_id, sizeof(c->policy_id), "%s", PQgetvalue(r, i, 4));
    c->cal = es_catalog_calendar(cat, PQgetvalue(r, i, 5)); /* a deleted calendar: calendar time */
    c->target_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10);
    c->started_ms = strtoll(PQgetvalue(r, i, 7), NULL, 10);
    int64_t since = strtoll(PQgetvalue(r, i, 8), NULL, 10);
    c->running_since_ms = since < 0 ? ESC_NONE : since;
    c->elapsed_ms = strtoll(PQgetvalue(r, i, 9), NULL, 10);
    const char *st = PQgetvalue(r, i, 10);
    c->state = strcmp(st, "running") == 0 ? ESC_RUNNING : strcmp(st, "paused") == 0 ? ESC_PAUSED : ESC_STOPPED;
    const char *oc = PQgetvalue(r, i, 11);
    c->outcome = strcmp(oc, "met") == 0 ? 1 : strcmp(oc, "cancelled") == 0 ? 2 : 0;
    int64_t br = strtoll(PQgetvalue(r, i, 12), NULL, 10);
    c->breached_ms = br < 0 ? ESC_NONE : br;
    int64_t codes[ESC_MAX_STAGES];
    int nc = parseInts(PQgetvalue(r, i, 13), codes, ESC_MAX_STAGES);
    int na = parseInts(PQgetvalue(r, i, 14), c->stage_at, ESC_MAX_STAGES);
    c->nstages = nc < na ? nc : na;
    for (int j = 0; j < c->nstages; j++)
        c->stage_code[j] = (int)codes[j];
    c->next_stage = atoi(PQgetvalue(r, i, 15));
    int64_t sp = strtoll(PQgetvalue(r, i, 16), NULL, 10);
    c->stopped_ms = sp < 0 ? ESC_NONE : sp;
    c->by_transfer = strcmp(PQgetvalue(r, i, 17), "t") == 0;
    if (c->state == ESC_RUNNING && c->running_since_ms == ESC_NONE)
        c->state = ESC_PAUSED; /* cannot happen (CHECKed by construction); be safe */
}

typedef struct {
    rd_pgarr a[20];
    int n;
} putBuf; /* a[0..17] = $1..$18, a[18] = $20, a[19] = $21 */

static void putInit(putBuf *b)
{
    for (int i = 0; i < 20; i++)
        rd_pgarr_init(&b->a[i]);
    b->n = 0;
}

static void putFree(putBuf *b)
{
    for (int i = 0; i < 20; i++)
        rd_pgarr_free(&b->a[i]);
}

static int64_t orNeg(int64_t v)
{
    return v == ESC_NONE ? -1 : v;
}

static const char *calIdOf(const es_catalog *cat, const rd_calendar *cal)
{
    for (int i = 0; cal && i < cat->ncals; i++)
        if (cat->cals[i] == cal)
            return cat->cal_ids[i];
    return "";
}

static void putClock(putBuf *b, const esc_clock *c, const char *ticket, const es_catalog *cat)
{
    char sc[ESC_MAX_STAGES * 8 + 4], sa[ESC_MAX_STAGES * 24 + 4];
    size_t lc = 0, la = 0;
    sc[lc++] = '{';
    sa[la++] = '{';
    for (int j = 0; j < c->nstages; j++) {
        lc += (size_t)snprintf(sc + lc, sizeof(sc) - lc, "%s%d", j ? "," : "", c->stage_code[j]);
        la += (size_t)snprintf(sa + la, sizeof(sa) - la, "%s%lld", j ? "," : "", (long long)c->stage_at[j]);
    }
    snprintf(sc + lc, sizeof(sc) - lc, "}");
    snprintf(sa + la, sizeof(sa) - la, "}");
    const char *calId = calIdOf(cat, c->cal);
    static const char *const states[] = {"running", "paused", "stopped"};
    static const char *const outcomes[] = {"", "met", "cancelled"};
    rd_pgarr_int(&b->a[0], c->id);
    rd_pgarr_str(&b->a[1], ticket);
    rd_pgarr_str(&b->a[2], esc_kind_name(c->kind));
    rd_pgarr_int(&b->a[3], c->cycle);
    rd_pgarr_str(&b->a[4], c->policy_id);
    rd_pgarr_str(&b->a[5], calId);
    rd_pgarr_int(&b->a[6], c->target_ms);
    rd_pgarr_int(&b->a[7], c->started_ms);
    rd_pgarr_int(&b->a[8], orNeg(c->running_since_ms));
    rd_pgarr_int(&b->a[9], c->elapsed_ms);
    rd_pgarr_str(&b->a[10], states[c->state]);
    rd_pgarr_str(&b->a[11], outcomes[c->outcome >= 0 && c->outcome <= 2 ? c->outcome : 0]);
    rd_pgarr_int(&b->a[12], orNeg(esc_due(c)));
    rd_pgarr_int(&b->a[13], orNeg(c->breached_ms));
    rd_pgarr_str(&b->a[14], sc);
    rd_pgarr_str(&b->a[15], sa);
    rd_pgarr_int(&b->a[16], c->next_stage);
    rd_pgarr_int(&b->a[17], orNeg(esc_next_fire(c)));
    rd_pgarr_int(&b->a[18], orNeg(c->stopped_ms));
    rd_pgarr_bool(&b->a[19], c->by_transfer);
    b->n++;
}

static bool putRun(PGconn *c, putBuf *b, int64_t now_ms, char *err, int errlen)
{
    if (b->n == 0)
        return true;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    const char *p[21];
    for (int i = 0; i < 18; i++)
        p[i] = rd_pgarr_finish(&b->a[i]);
    p[18] = now;
    p[19] = rd_pgarr_finish(&b->a[18]);
    p[20] = rd_pgarr_finish(&b->a[19]);
    PGresult *r = PQexecPrepared(c, "es_put", 21, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "sla_clocks: %s", PQerrorMessage(c));
    PQclear(r);
    return ok;
}

typedef struct {
    rd_pgarr a[8];
    int n;
} evBuf;

static void evInit(evBuf *b, int k)
{
    for (int i = 0; i < k; i++)
        rd_pgarr_init(&b->a[i]);
    b->n = 0;
}

static void evFree(evBuf *b, int k)
{
    for (int i = 0; i < k; i++)
        rd_pgarr_free(&b->a[i]);
}

static void evAdd(evBuf *b, int64_t clock, const char *ticket, esc_kind kind, esc_evkind ev, int level, int64_t at,
                  const char *detail)
{
    rd_pgarr_int(&b->a[0], clock);
    rd_pgarr_str(&b->a[1], ticket);
    rd_pgarr_str(&b->a[2], esc_kind_name(kind));
    rd_pgarr_str(&b->a[3], esc_evkind_name(ev));
    rd_pgarr_int(&b->a[4], level);
    rd_pgarr_int(&b->a[5], at);
    rd_pgarr_str(&b->a[6], detail ? detail : "");
    b->n++;
}

static bool runArrays(PGconn *c, const char *stmt, rd_pgarr *a, int k, const char *what, char *err, int errlen)
{
    const char *p[8];
    for (int i = 0; i < k; i++)
        p[i] = rd_pgarr_finish(&a[i]);
    PGresult *r = PQexecPrepared(c, stmt, k, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "%s: %s", what, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

static bool commit(PGconn *c, char *err, int errlen)
{
    return execOk(c, "COMMIT", err, errlen);
}

static void rollback(PGconn *c)
{
    PGresult *r = PQexec(c, "ROLLBACK");
    PQclear(r);
}

/* ---- COPY: new clocks and the applier's events go in as COPY text, the fastest way in -------- */

typedef struct {
    char *buf;
    size_t len, cap;
    int rows;
} copyBuf;

static void cbReserve(copyBuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *nb = realloc(b->buf, cap);
    if (nb == NULL)
        abort();
    b->buf = nb;
    b->cap = cap;
}

static void cbRaw(copyBuf *b, const char *s, size_t n)
{
    cbReserve(b, n);
    memcpy(b->buf + b->len, s, n);
    b->len += n;
}

/* a text field, escaped for COPY's text format */
static void cbText(copyBuf *b, const char *s)
{
    cbReserve(b, 2 * strlen(s) + 1);
    for (; *s; s++) {
        char e = *s == '\\' ? '\\' : *s == '\t' ? 't' : *s == '\n' ? 'n' : *s == '\r' ? 'r' : 0;
        if (e) {
            b->buf[b->len++] = '\\';
            b->buf[b->len++] = e;
        } else {
            b->buf[b->len++] = *s;
        }
    }
}

static void cbInt(copyBuf *b, int64_t v)
{
    char t[24];
    cbRaw(b, t, (size_t)snprintf(t, sizeof(t), "%lld", (long long)v));
}

/* ms since the epoch as a UTC timestamp; ESC_NONE (or negative) as NULL */
static void cbTime(copyBuf *b, int64_t ms)
{
    if (ms == ESC_NONE || ms < 0) {
        cbRaw(b, "\\N", 2);
        return;
    }
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char t[48];
    cbRaw(b, t,
          (size_t)snprintf(t, sizeof(t), "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1,
                           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000)));
}

static void cbTab(copyBuf *b)
{
    cbRaw(b, "\t", 1);
}
static void cbEnd(copyBuf *b)
{
    cbRaw(b, "\n", 1);
    b->rows++;
}

#define COPY_CLOCKS                                                                                                    \
    "COPY sla_clocks (id, ticket_id, clock, cycle, policy_id, calendar_id, target_ms, started_at, running_since,"      \
    " elapsed_ms, state, outcome, due_at, breached_at, stage_code, stage_at, next_stage, next_fire_at, armed_at,"      \
    " stopped_at, by_transfer) FROM STDIN"

static void copyClock(copyBuf *b, const esc_clock *c, const char *ticket, const es_catalog *cat, int64_t now_ms)
{
    static const char *const states[] = {"running", "paused", "stopped"};
    static const char *const outcomes[] = {"\\N", "met", "cancelled"};
    const char *cal = calIdOf(cat, c->cal);
    cbInt(b, c->id), cbTab(b);
    cbText(b, ticket), cbTab(b);
    cbText(b, esc_kind_name(c->kind)), cbTab(b);
    cbInt(b, c->cycle), cbTab(b);
    cbText(b, c->policy_id), cbTab(b);
    if (cal[0])
        cbText(b, cal);
    else
        cbRaw(b, "\\N", 2);
    cbTab(b);
    cbInt(b, c->target_ms), cbTab(b);
    cbTime(b, c->started_ms), cbTab(b);
    cbTime(b, c->running_since_ms), cbTab(b);
    cbInt(b, c->elapsed_ms), cbTab(b);
    cbText(b, states[c->state]), cbTab(b);
    cbRaw(b, outcomes[c->outcome >= 0 && c->outcome <= 2 ? c->outcome : 0],
          strlen(outcomes[c->outcome >= 0 && c->outcome <= 2 ? c->outcome : 0])),
        cbTab(b);
    cbTime(b, esc_due(c)), cbTab(b);
    cbTime(b, c->breached_ms), cbTab(b);
    cbRaw(b, "{", 1);
    for (int j = 0; j < c->nstages; j++) {
        if (j)
            cbRaw(b, ",", 1);
        cbInt(b, c->stage_code[j]);
    }
    cbRaw(b, "}\t{", 3);
    for (int j = 0; j < c->nstages; j++) {
        if (j)
            cbRaw(b, ",", 1);
        cbInt(b, c->stage_at[j]);
    }
    cbRaw(b, "}\t", 2);
    cbInt(b, c->next_stage), cbTab(b);
    cbTime(b, esc_next_fire(c)), cbTab(b);
    cbTime(b, now_ms), cbTab(b);
    cbTime(b, c->stopped_ms), cbTab(b);
    cbRaw(b, c->by_transfer ? "t" : "f", 1);
    cbEnd(b);
}

#define COPY_EVENTS "COPY sla_events (clock_id, ticket_id, clock, kind, level, at, detail) FROM STDIN"

static void copyEvent(copyBuf *b, int64_t clock, const char *ticket, esc_kind kind, esc_evkind ev, int level,
                      int64_t at, const char *detail)
{
    cbInt(b, clock), cbTab(b);
    cbText(b, ticket), cbTab(b);
    cbText(b, esc_kind_name(kind)), cbTab(b);
    cbText(b, esc_evkind_name(ev)), cbTab(b);
    if (level)
        cbInt(b, level);
    else
        cbRaw(b, "\\N", 2);
    cbTab(b);
    cbTime(b, at), cbTab(b);
    cbText(b, detail ? detail : "");
    cbEnd(b);
}

static bool copyRun(PGconn *c, const char *sql, copyBuf *b, char *err, int errlen)
{
    if (b->rows == 0)
        return true;
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        PQclear(r);
        return false;
    }
    PQclear(r);
    bool ok = PQputCopyData(c, b->buf, (int)b->len) == 1 && PQputCopyEnd(c, NULL) == 1;
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            ok = false;
            snprintf(err, errlen, "%s", PQerrorMessage(c));
        }
        PQclear(r);
    }
    if (!ok && err[0] == '\0')
        snprintf(err, errlen, "COPY: %s", PQerrorMessage(c));
    return ok;
}

/* ---- applying history ------------------------------------------------------------------------- */

typedef struct {
    char id[37];
    esc_ticket t;
    int loaded; /* t.v[0..loaded) came from sla_clocks; the rest were armed by this batch */
} tkClocks;

static int cmpTk(const void *a, const void *b)
{
    return strcmp(((const tkClocks *)a)->id, ((const tkClocks *)b)->id);
}

int es_apply_batch(PGconn *c, const es_catalog *cat, int part, int limit, int64_t *cursor, int64_t now_ms,
                   es_result *out, char *err, int errlen)
{
    /* Asynchronous commit: a crash loses whole transactions, and with them their queue deletions,
     * so the rows are applied again -- never half. No sequential scans: every statement here looks
     * up a batch of keys, and statistics of tables that grew from nothing a minute ago would have
     * the planner scan them whole for every batch. */
    if (!execOk(c, "BEGIN; SET LOCAL synchronous_commit = off; SET LOCAL enable_seqscan = off", err, errlen))
        return -1;
    char lockq[96];
    snprintf(lockq, sizeof(lockq), "SELECT pg_try_advisory_xact_lock(%d)", ES_APPLY_LOCK + part);
    PGresult *r = PQexec(c, lockq);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "advisory lock: %s", PQerrorMessage(c));
        PQclear(r);
        rollback(c);
        return -1;
    }
    bool mine = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!mine) {
        rollback(c);
        return 0;
    }
    char lim[16], from[24], pt[8];
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(from, sizeof(from), "%lld", (long long)*cursor);
    snprintf(pt, sizeof(pt), "%d", part);
    const char *p1[3] = {lim, from, pt};
    PGresult *h = PQexecPrepared(c, "es_take", 3, p1, NULL, NULL, 0);
    if (PQresultStatus(h) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "sla_queue: %s", PQerrorMessage(c));
        PQclear(h);
        rollback(c);
        return -1;
    }
    int nh = PQntuples(h);
    /* next time start after this batch: deleted rows stay in the index until vacuumed, and a scan
     * from the start would step over all of them. A short batch sends the next one back to the
     * start, for rows of transactions that committed after later ones. */
    *cursor = nh < limit ? 0 : strtoll(PQgetvalue(h, nh - 1, 0), NULL, 10);
    if (nh == 0) {
        PQclear(h);
        return commit(c, err, errlen) ? 0 : -1; /* the queue may have held rows of deleted tickets */
    }
    /* the distinct tickets, sorted, with their clocks locked */
    tkClocks *tks = calloc((size_t)nh, sizeof(*tks));
    int ntk = 0;
    rd_pgarr ids;
    rd_pgarr_init(&ids);
    for (int i = 0; i < nh; i++) {
        snprintf(tks[ntk].id, sizeof(tks[ntk].id), "%s", PQgetvalue(h, i, 1));
        ntk++;
    }
    qsort(tks, (size_t)ntk, sizeof(*tks), cmpTk);
    int u = 0;
    for (int i = 0; i < ntk; i++)
        if (u == 0 || strcmp(tks[u - 1].id, tks[i].id) != 0)
            tks[u++] = tks[i];
    ntk = u;
    for (int i = 0; i < ntk; i++)
        rd_pgarr_str(&ids, tks[i].id);
    const char *p2[1] = {rd_pgarr_finish(&ids)};
    PGresult *cr = PQexecPrepared(c, "es_clocks_of", 1, p2, NULL, NULL, 0);
    rd_pgarr_free(&ids);
    int rc = -1;
    putBuf pb;
    putInit(&pb);
    esc_record *rec = calloc(64, sizeof(*rec));
    copyBuf cc = {0}, ce = {0};
    if (PQresultStatus(cr) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "sla_clocks: %s", PQerrorMessage(c));
        goto done;
    }
    for (int i = 0; i < PQntuples(cr); i++) {
        tkClocks key = {0};
        esc_clock ck;
        rowClock(cat, cr, i, &ck, key.id);
        tkClocks *t = bsearch(&key, tks, (size_t)ntk, sizeof(*tks), cmpTk);
        if (t == NULL)
            continue;
        esc_clock *slot = esc_ticket_push(&t->t);
        if (slot == NULL)
            abort();
        *slot = ck;
        t->t.dirty[t->t.n - 1] = false;
    }
    for (int i = 0; i < ntk; i++)
        tks[i].loaded = tks[i].t.n;
    /* apply in seq order */
    typedef struct {
        int tk, clock;
        esc_record r;
    } pending;
    pending *evs = NULL;
    int nev = 0, capev = 0;
    for (int i = 0; i < nh; i++) {
        tkClocks key = {0};
        snprintf(key.id, sizeof(key.id), "%s", PQgetvalue(h, i, 1));
        tkClocks *t = bsearch(&key, tks, (size_t)ntk, sizeof(*tks), cmpTk);
        esc_event ev = {.seq = strtoll(PQgetvalue(h, i, 0), NULL, 10),
                        .kind = PQgetvalue(h, i, 2),
                        .from_state = PQgetvalue(h, i, 3),
                        .reason = PQgetvalue(h, i, 4),
                        .at_ms = strtoll(PQgetvalue(h, i, 5), NULL, 10),
                        .received_ms = strtoll(PQgetvalue(h, i, 10), NULL, 10),
                        .facts = {.business_type = PQgetvalue(h, i, 6),
                                  .severity = PQgetvalue(h, i, 7),
                                  .channel = PQgetvalue(h, i, 8),
                                  .vip = strcmp(PQgetvalue(h, i, 9), "t") == 0}};
        int k = esc_apply(&t->t, &ev, cat->active, cat->nactive, rec, 64);
        if (k < 0) {
            snprintf(err, errlen, "history seq %lld: too many clock changes", (long long)ev.seq);
            free(evs);
            goto done;
        }
        for (int j = 0; j < k; j++) {
            if (nev == capev) {
                capev = capev ? 2 * capev : 256;
                pending *nv = realloc(evs, (size_t)capev * sizeof(*nv));
                if (nv == NULL)
                    abort();
                evs = nv;
            }
            evs[nev++] = (pending){(int)(t - tks), rec[j].clock, rec[j]};
            if (rec[j].kind == ESC_EV_ARMED)
                out->armed++;
        }
    }
    out->rows += nh;
    /* ids for the new clocks */
    int nnew = 0;
    for (int i = 0; i < ntk; i++)
        for (int j = 0; j < tks[i].t.n; j++)
            nnew += tks[i].t.v[j].id == 0;
    if (nnew > 0) {
        char nn[16];
        snprintf(nn, sizeof(nn), "%d", nnew);
        const char *p3[1] = {nn};
        PGresult *ir = PQexecPrepared(c, "es_ids", 1, p3, NULL, NULL, 0);
        if (PQresultStatus(ir) != PGRES_TUPLES_OK || PQntuples(ir) != nnew) {
            snprintf(err, errlen, "clock ids: %s", PQerrorMessage(c));
            PQclear(ir);
            free(evs);
            goto done;
        }
        int k = 0;
        for (int i = 0; i < ntk; i++)
            for (int j = 0; j < tks[i].t.n; j++)
                if (tks[i].t.v[j].id == 0)
                    tks[i].t.v[j].id = strtoll(PQgetvalue(ir, k++, 0), NULL, 10);
        PQclear(ir);
    }
    /* new clocks are copied in; changed ones are updated by the upsert */
    for (int i = 0; i < ntk; i++)
        for (int j = 0; j < tks[i].t.n; j++)
            if (tks[i].t.dirty[j]) {
                if (j >= tks[i].loaded)
                    copyClock(&cc, &tks[i].t.v[j], tks[i].id, cat, now_ms);
                else
                    putClock(&pb, &tks[i].t.v[j], tks[i].id, cat);
                addTimer(out, tks[i].t.v[j].id, esc_next_fire(&tks[i].t.v[j]));
            }
    for (int i = 0; i < nev; i++) {
        const esc_clock *ck = &tks[evs[i].tk].t.v[evs[i].clock];
        if (evs[i].r.kind == ESC_EV_ARMED)
            continue; /* the clock's row is the record of its arming (sla_timeline) */
        copyEvent(&ce, ck->id, tks[evs[i].tk].id, ck->kind, evs[i].r.kind, evs[i].r.level, evs[i].r.at_ms,
                  evs[i].r.detail);
    }
    free(evs);
    if (!copyRun(c, COPY_CLOCKS, &cc, err, errlen) || !putRun(c, &pb, now_ms, err, errlen) ||
        !copyRun(c, COPY_EVENTS, &ce, err, errlen))
        goto done;
    if (!commit(c, err, errlen)) {
        out->ntimers = 0;
        goto done;
    }
    rc = nh;
done:
    if (rc < 0) {
        rollback(c);
        out->ntimers = 0;
    }
    for (int i = 0; i < ntk; i++)
        esc_ticket_free(&tks[i].t);
    free(tks);
    free(rec);
    free(cc.buf);
    free(ce.buf);
    putFree(&pb);
    PQclear(cr);
    PQclear(h);
    return rc;
}

/* ---- firing ----------------------------------------------------------------------------------- */

static const esc_level *levelOf(const es_catalog *cat, const char *policy, int level)
{
    for (int i = 0; i < cat->nall; i++)
        if (strcmp(cat->all[i].id, policy) == 0) {
            for (int j = 0; j < cat->all[i].nlevels; j++)
                if (cat->all[i].levels[j].level == level)
                    return &cat->all[i].levels[j];
            return NULL;
        }
    return NULL;
}

int es_fire_batch(PGconn *c, const es_catalog *cat, const int64_t *ids, int n, int64_t now_ms, es_result *out,
                  char *err, int errlen)
{
    if (n == 0)
        return 0;
    rd_pgarr a;
    rd_pgarr_init(&a);
    for (int i = 0; i < n; i++)
        rd_pgarr_int(&a, ids[i]);
    if (!execOk(c, "BEGIN; SET LOCAL enable_seqscan = off", err, errlen)) { /* see es_apply_batch */
        rd_pgarr_free(&a);
        return -1;
    }
    const char *p1[1] = {rd_pgarr_finish(&a)};
    PGresult *r = PQexecPrepared(c, "es_clocks_fire", 1, p1, NULL, NULL, 0);
    int rc = -1;
    evBuf eb, xb;
    rd_pgarr raise, rr_tk, rr_at;
    evInit(&eb, 7);
    evInit(&xb, 8);
    rd_pgarr_init(&raise);
    rd_pgarr_init(&rr_tk);
    rd_pgarr_init(&rr_at);
    int nraise = 0, nrr = 0, nadv = 0;
    rd_pgarr adv[4];
    for (int i = 0; i < 4; i++)
        rd_pgarr_init(&adv[i]);
    int64_t *seen = calloc((size_t)n, sizeof(*seen));
    int nseen = 0;
    int notesBefore = out->nnotes, timersBefore = out->ntimers;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "sla_clocks: %s", PQerrorMessage(c));
        goto done;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        esc_clock ck;
        char ticket[37];
        rowClock(cat, r, i, &ck, ticket);
        seen[nseen++] = ck.id;
        const char *team = PQgetvalue(r, i, NCLOCK_COLS), *unit = PQgetvalue(r, i, NCLOCK_COLS + 1);
        esc_fired f[ESC_MAX_STAGES];
        int nf = esc_fire(&ck, now_ms, f);
        int64_t due = esc_due(&ck);
        for (int j = 0; j < nf; j++) {
            es_note *no = addNote(out);
            snprintf(no->ticket, sizeof(no->ticket), "%s", ticket);
            snprintf(no->policy, sizeof(no->policy), "%s", ck.policy_id);
            no->clock = ck.kind;
            no->at_ms = f[j].at_ms;
            no->due_ms = due;
            out->fired++;
            out->lateness_sum += (double)(now_ms - f[j].at_ms);
            if (f[j].code < ESC_BREACH) {
                no->kind = ESC_EV_WARNED;
                no->level = f[j].code;
                evAdd(&eb, ck.id, ticket, ck.kind, ESC_EV_WARNED, f[j].code, f[j].at_ms, "");
            } else if (f[j].code == ESC_BREACH) {
                no->kind = ESC_EV_BREACHED;
                out->breaches++;
                evAdd(&eb, ck.id, ticket, ck.kind, ESC_EV_BREACHED, 0, f[j].at_ms, "");
            } else {
                int level = f[j].code - ESC_BREACH;
                const esc_level *lv = levelOf(cat, ck.policy_id, level);
                no->kind = ESC_EV_ESCALATED;
                no->level = level;
                no->role = lv ? lv->role : ESC_TEAM_LEAD;
                no->action = lv ? lv->action : ESC_NOTIFY;
                snprintf(no->target_unit, sizeof(no->target_unit), "%s", no->role == ESC_TEAM_LEAD ? team : unit);
                out->escalations++;
                evAdd(&eb, ck.id, ticket, ck.kind, ESC_EV_ESCALATED, level, f[j].at_ms, esc_role_name(no->role));
                rd_pgarr_int(&xb.a[0], ck.id);
                rd_pgarr_str(&xb.a[1], ticket);
                rd_pgarr_str(&xb.a[2], esc_kind_name(ck.kind));
                rd_pgarr_int(&xb.a[3], level);
                rd_pgarr_str(&xb.a[4], esc_role_name(no->role));
                rd_pgarr_str(&xb.a[5], no->target_unit);
                rd_pgarr_str(&xb.a[6], esc_action_name(no->action));
                rd_pgarr_int(&xb.a[7], f[j].at_ms);
                xb.n++;
                if (no->action == ESC_RAISE_PRIORITY) {
                    rd_pgarr_str(&raise, ticket);
                    nraise++;
                } else if (no->action == ESC_REROUTE && ck.kind == ESC_ACCEPT) {
                    rd_pgarr_str(&rr_tk, ticket);
                    rd_pgarr_int(&rr_at, f[j].at_ms);
                    nrr++;
                }
            }
        }
        if (nf > 0) {
            rd_pgarr_int(&adv[0], ck.id);
            rd_pgarr_int(&adv[1], ck.next_stage);
            rd_pgarr_int(&adv[2], orNeg(esc_next_fire(&ck)));
            rd_pgarr_int(&adv[3], orNeg(ck.breached_ms));
            nadv++;
        }
        addTimer(out, ck.id, esc_next_fire(&ck));
    }
    if (nseen < n) {
        /* not returned: locked by another process (look again soon) or gone (forget it) */
        rd_pgarr m;
        rd_pgarr_init(&m);
        for (int i = 0; i < n; i++) {
            bool got = false;
            for (int j = 0; j < nseen && !got; j++)
                got = seen[j] == ids[i];
            if (!got)
                rd_pgarr_int(&m, ids[i]);
        }
        const char *p2[1] = {rd_pgarr_finish(&m)};
        PGresult *e = PQexecPrepared(c, "es_exists", 1, p2, NULL, NULL, 0);
        rd_pgarr_free(&m);
        if (PQresultStatus(e) != PGRES_TUPLES_OK) {
            snprintf(err, errlen, "sla_clocks: %s", PQerrorMessage(c));
            PQclear(e);
            goto done;
        }
        for (int i = 0; i < PQntuples(e); i++)
            addTimer(out, strtoll(PQgetvalue(e, i, 0), NULL, 10), now_ms + 100);
        PQclear(e);
    }
    if (nadv > 0 && !runArrays(c, "es_advance", adv, 4, "sla_clocks", err, errlen))
        goto done;
    if (eb.n > 0 && !runArrays(c, "es_events", eb.a, 7, "sla_events", err, errlen))
        goto done;
    if (xb.n > 0 && !runArrays(c, "es_escalations", xb.a, 8, "sla_escalations", err, errlen))
        goto done;
    if (nraise > 0 && !runArrays(c, "es_raise", &raise, 1, "raise priority", err, errlen))
        goto done;
    if (nrr > 0) {
        rd_pgarr two[2] = {rr_tk, rr_at};
        bool ok = runArrays(c, "es_reroute", two, 2, "reroute", err, errlen);
        rr_tk = two[0];
        rr_at = two[1];
        if (!ok)
            goto done;
    }
    if (!commit(c, err, errlen))
        goto done;
    rc = nseen;
done:
    if (rc < 0) {
        rollback(c);
        out->nnotes = notesBefore;
        out->ntimers = timersBefore;
    }
    free(seen);
    for (int i = 0; i < 4; i++)
        rd_pgarr_free(&adv[i]);
    evFree(&eb, 7);
    evFree(&xb, 8);
    rd_pgarr_free(&raise);
    rd_pgarr_free(&rr_tk);
    rd_pgarr_free(&rr_at);
    rd_pgarr_free(&a);
    PQclear(r);
    return rc;
}

int es_live_page(PGconn *c, int64_t after, int limit, es_timer **out, char *err, int errlen)
{
    char a[24], l[16];
    snprintf(a, sizeof(a), "%lld", (long long)after);
    snprintf(l, sizeof(l), "%d", limit);
    const char *p[2] = {a, l};
    PGresult *r = PQexecPrepared(c, "es_live", 2, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "sla_clocks: %s", PQerrorMessage(c));
        PQclear(r);
        return -1;
    }
    int n = PQntuples(r);
    *out = calloc((size_t)n + 1, sizeof(**out));
    for (int i = 0; i < n; i++)
        (*out)[i] = (es_timer){strtoll(PQgetvalue(r, i, 0), NULL, 10), strtoll(PQgetvalue(r, i, 1), NULL, 10)};
    PQclear(r);
    return n;
}
