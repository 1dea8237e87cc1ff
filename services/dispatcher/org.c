/*
 * org.c -- the organisation, read from PostgreSQL into memory in one snapshot.
 *
 * Small (thousands of agents) and read on every decision, so it is held as plain arrays with
 * indexes instead of ids; reloaded whole on NOTIFY redress_org and periodically.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dispatcher.h"
#include "rd_pg.h"

static char *dupOrNull(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    char *s = strdup(PQgetvalue(r, row, col));
    if (s == NULL)
        abort();
    return s;
}

static char *dup(const PGresult *r, int row, int col)
{
    char *s = dupOrNull(r, row, col);
    if (s == NULL && (s = strdup("")) == NULL)
        abort();
    return s;
}

/* A text[] sent as a JSON array (array_to_json): any UTF-8 survives, no quoting rules of ours. */
static char **jsonStrings(const char *s)
{
    json_t *j = json_loads(s, JSON_DECODE_ANY, NULL);
    size_t n = json_is_array(j) ? json_array_size(j) : 0;
    char **v = calloc(n + 1, sizeof(*v));
    if (v == NULL)
        abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = json_string_value(json_array_get(j, i));
        if (e != NULL && (v[k++] = strdup(e)) == NULL)
            abort();
    }
    json_decref(j);
    return v;
}

static void freeStrings(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

static PGresult *query(PGconn *c, const char *sql, char *err, int errlen)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Rows are read ORDER BY id COLLATE "C", so the arrays are sorted the way strcmp sorts. */
static int cmpTeam(const void *key, const void *elem)
{
    return strcmp(key, ((const dp_team *)elem)->id);
}

static int cmpAgent(const void *key, const void *elem)
{
    return strcmp(key, ((const dp_agent *)elem)->id);
}

int dp_org_team(const dp_org *o, const char *id)
{
    if (id == NULL || o->nteams == 0)
        return -1;
    const dp_team *t = bsearch(id, o->teams, (size_t)o->nteams, sizeof(*o->teams), cmpTeam);
    return t ? (int)(t - o->teams) : -1;
}

int dp_org_agent(const dp_org *o, const char *id)
{
    if (id == NULL || o->nagents == 0)
        return -1;
    const dp_agent *a = bsearch(id, o->agents, (size_t)o->nagents, sizeof(*o->agents), cmpAgent);
    return a ? (int)(a - o->agents) : -1;
}

static int deptIndex(const dp_org *o, const char *id)
{
    for (int i = 0; id && i < o->ndepts; i++)
        if (strcmp(o->depts[i].id, id) == 0)
            return i;
    return -1;
}

dp_org *dp_org_load(PGconn *c, char *err, int errlen)
{
    PGresult *r[6] = {0};
    static const char *const sql[6] = {
        "SELECT id, parent_id, name, dispatch_centre, default_team FROM departments ORDER BY id COLLATE \"C\"",
        "SELECT id, department_id, name, strategy, overflow_team, overflow_after_s, major_weight"
        "  FROM teams ORDER BY id COLLATE \"C\"",
        "SELECT id, team_id, name, capacity, array_to_json(business_types), array_to_json(categories),"
        "       array_to_json(languages), array_to_json(regions), active, calendar_id"
        "  FROM agents ORDER BY id COLLATE \"C\"",
        "SELECT name, business_type, category_prefix, region_prefix, severity, channel, team_id"
        "  FROM routing_rules ORDER BY ord, name",
        "SELECT business_type, seconds, transferred_s FROM accept_limits ORDER BY business_type",
        "SELECT id, body::text FROM business_calendars ORDER BY id COLLATE \"C\""};
    dp_org *o = NULL;
    if (!rd_pg_command(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen))
        return NULL;
    for (int i = 0; i < 6; i++)
        if ((r[i] = query(c, sql[i], err, errlen)) == NULL)
            goto done;
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        abort();
    o->ncalendars = PQntuples(r[5]);
    o->calendars = calloc((size_t)o->ncalendars + 1, sizeof(*o->calendars));
    for (int i = 0; i < o->ncalendars; i++) {
        char cerr[256];
        const char *body = PQgetvalue(r[5], i, 1);
        o->calendars[i] = rd_calendar_parse(body, strlen(body), cerr, sizeof(cerr));
        if (o->calendars[i] == NULL) {
            snprintf(err, errlen, "calendar %s: %s", PQgetvalue(r[5], i, 0), cerr);
            dp_org_free(&o);
            goto done;
        }
    }
    o->ndepts = PQntuples(r[0]);
    o->depts = calloc((size_t)o->ndepts + 1, sizeof(*o->depts));
    for (int i = 0; i < o->ndepts; i++) {
        dp_department *d = &o->depts[i];
        d->id = dup(r[0], i, 0);
        d->parent_id = dupOrNull(r[0], i, 1);
        d->name = dup(r[0], i, 2);
        d->dispatch_centre = PQgetvalue(r[0], i, 3)[0] == 't';
        d->default_team = dupOrNull(r[0], i, 4);
    }
    o->nteams = PQntuples(r[1]);
    o->teams = calloc((size_t)o->nteams + 1, sizeof(*o->teams));
    for (int i = 0; i < o->nteams; i++) {
        dp_team *t = &o->teams[i];
        t->id = dup(r[1], i, 0);
        t->department_id = dup(r[1], i, 1);
        t->name = dup(r[1], i, 2);
        t->strategy = strcmp(PQgetvalue(r[1], i, 3), "round_robin") == 0 ? DP_ROUND_ROBIN : DP_LEAST_LOADED;
        t->overflow_team = dupOrNull(r[1], i, 4);
        t->overflow_after_s = atoi(PQgetvalue(r[1], i, 5));
        t->major_weight = atoi(PQgetvalue(r[1], i, 6));
        t->dept = deptIndex(o, t->department_id);
        t->agents = calloc((size_t)PQntuples(r[2]) + 1, sizeof(int));
    }
    for (int i = 0; i < o->nteams; i++)
        o->teams[i].overflow = dp_org_team(o, o->teams[i].overflow_team);
    o->nagents = PQntuples(r[2]);
    o->agents = calloc((size_t)o->nagents + 1, sizeof(*o->agents));
    for (int i = 0; i < o->nagents; i++) {
        dp_agent *a = &o->agents[i];
        a->id = dup(r[2], i, 0);
        a->team_id = dup(r[2], i, 1);
        a->name = dup(r[2], i, 2);
        a->capacity = atoi(PQgetvalue(r[2], i, 3));
        a->business_types = jsonStrings(PQgetvalue(r[2], i, 4));
        a->categories = jsonStrings(PQgetvalue(r[2], i, 5));
        a->languages = jsonStrings(PQgetvalue(r[2], i, 6));
        a->regions = jsonStrings(PQgetvalue(r[2], i, 7));
        a->active = PQgetvalue(r[2], i, 8)[0] == 't';
        a->team = dp_org_team(o, a->team_id);
        for (int k = 0; !PQgetisnull(r[2], i, 9) && k < o->ncalendars; k++)
            if (strcmp(rd_calendar_id(o->calendars[k]), PQgetvalue(r[2], i, 9)) == 0)
                a->calendar = o->calendars[k];
        if (a->active && a->team >= 0) {
            dp_team *t = &o->teams[a->team];
            t->agents[t->nagents++] = i;
        }
    }
    o->nrules = PQntuples(r[3]);
    o->rules = calloc((size_t)o->nrules + 1, sizeof(*o->rules));
    for (int i = 0; i < o->nrules; i++) {
        dp_rule *u = &o->rules[i];
        u->name = dup(r[3], i, 0);
        u->business_type = dupOrNull(r[3], i, 1);
        u->category_prefix = dupOrNull(r[3], i, 2);
        u->region_prefix = dupOrNull(r[3], i, 3);
        u->severity = dupOrNull(r[3], i, 4);
        u->channel = dupOrNull(r[3], i, 5);
        u->team = dp_org_team(o, PQgetvalue(r[3], i, 6));
    }
    o->nlimits = PQntuples(r[4]);
    o->limits = calloc((size_t)o->nlimits + 1, sizeof(*o->limits));
    for (int i = 0; i < o->nlimits; i++) {
        o->limits[i].business_type = dup(r[4], i, 0);
        o->limits[i].seconds = atoi(PQgetvalue(r[4], i, 1));
        o->limits[i].transferred_s = atoi(PQgetvalue(r[4], i, 2));
    }
    o->centre_team = -1;
    for (int i = 0; i < o->ndepts && o->centre_team < 0; i++) {
        if (!o->depts[i].dispatch_centre)
            continue;
        o->centre_team = dp_org_team(o, o->depts[i].default_team);
        for (int k = 0; k < o->nteams && o->centre_team < 0; k++)
            if (o->teams[k].dept == i)
                o->centre_team = k;
    }
    if (o->centre_team < 0 && o->nteams > 0)
        o->centre_team = 0;
done:
    for (int i = 0; i < 6; i++)
        PQclear(r[i]);
    char ignored[256];
    rd_pg_command(c, o ? "COMMIT" : "ROLLBACK", ignored, sizeof(ignored));
    return o;
}

void dp_org_free(dp_org **op)
{
    dp_org *o = *op;
    if (o == NULL)
        return;
    for (int i = 0; i < o->ndepts; i++) {
        free(o->depts[i].id);
        free(o->depts[i].parent_id);
        free(o->depts[i].name);
        free(o->depts[i].default_team);
    }
    for (int i = 0; i < o->nteams; i++) {
        free(o->teams[i].id);
        free(o->teams[i].department_id);
        free(o->teams[i].name);
        free(o->teams[i].overflow_team);
        free(o->teams[i].agents);
    }
    for (int i = 0; i < o->nagents; i++) {
        dp_agent *a = &o->agents[i];
        free(a->id);
        free(a->team_id);
        free(a->name);
        freeStrings(a->business_types);
        freeStrings(a->categories);
        freeStrings(a->languages);
        freeStrings(a->regions);
    }
    for (int i = 0; i < o->nrules; i++) {
        dp_rule *u = &o->rules[i];
        free(u->name);
        free(u->business_type);
        free(u->category_prefix);
        free(u->region_prefix);
        free(u->severity);
        free(u->channel);
    }
    for (int i = 0; i < o->nlimits; i++)
        free(o->limits[i].business_type);
    for (int i = 0; i < o->ncalendars; i++)
        rd_calendar_free(o->calendars[i]);
    free(o->calendars);
    free(o->depts);
    free(o->teams);
    free(o->agents);
    free(o->rules);
    free(o->limits);
    free(o);
    *op = NULL;
}
