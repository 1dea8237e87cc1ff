/*
 * route.c -- where a ticket goes and who may take it. Pure functions of the organisation and the
 * ticket: no I/O, no clock (the ticket carries how long it has waited).
 */
#include <stdio.h>
#include <string.h>

#include "dispatcher.h"

static bool prefix(const char *p, const char *s)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* A team named by id, or a department's default team, or its first team. */
static int unitTeam(const dp_org *o, const char *unit)
{
    int t = dp_org_team(o, unit);
    if (t >= 0)
        return t;
    for (int d = 0; d < o->ndepts; d++) {
        if (strcmp(o->depts[d].id, unit) != 0)
            continue;
        t = dp_org_team(o, o->depts[d].default_team);
        for (int k = 0; k < o->nteams && t < 0; k++)
            if (o->teams[k].dept == d)
                t = k;
        return t;
    }
    return -1;
}

static bool ruleMatches(const dp_rule *r, const dp_ticket *t)
{
    return r->team >= 0 && (!set(r->business_type) || strcmp(r->business_type, t->business_type) == 0) &&
           (!set(r->category_prefix) || prefix(r->category_prefix, t->category)) &&
           (!set(r->region_prefix) || prefix(r->region_prefix, t->region)) &&
           (!set(r->severity) || strcmp(r->severity, t->severity) == 0) &&
           (!set(r->channel) || strcmp(r->channel, t->channel) == 0);
}

int dp_route(const dp_org *o, const dp_ticket *t, const char **why)
{
    static __thread char buf[192];
    if (set(t->route_to_unit)) {
        int team = unitTeam(o, t->route_to_unit);
        if (team >= 0) {
            snprintf(buf, sizeof(buf), "unit:%s", t->route_to_unit);
            *why = buf;
            return team;
        }
        *why = "unknown unit -> centre";
        return o->centre_team;
    }
    for (int i = 0; i < o->nrules; i++) {
        if (ruleMatches(&o->rules[i], t)) {
            snprintf(buf, sizeof(buf), "rule:%s", o->rules[i].name);
            *why = buf;
            return o->rules[i].team;
        }
    }
    *why = "centre";
    return o->centre_team;
}

static bool anyPrefix(char *const *v, const char *s)
{
    if (v == NULL || v[0] == NULL)
        return true;
    for (; *v; v++)
        if (prefix(*v, s))
            return true;
    return false;
}

static bool anyEqual(char *const *v, const char *s)
{
    if (v == NULL || v[0] == NULL)
        return true;
    for (; *v; v++)
        if (strcmp(*v, s) == 0)
            return true;
    return false;
}

bool dp_agent_skilled(const dp_agent *a, const dp_ticket *t)
{
    /* An unset ticket field asks for no skill. */
    return (!set(t->business_type) || anyEqual(a->business_types, t->business_type)) &&
           (!set(t->category) || anyPrefix(a->categories, t->category)) &&
           (!set(t->language) || anyPrefix(a->languages, t->language)) &&
           (!set(t->region) || anyPrefix(a->regions, t->region));
}

static bool excluded(const dp_ticket *t, const char *id)
{
    for (char **p = t->excluded; p && *p; p++)
        if (strcmp(*p, id) == 0)
            return true;
    return false;
}

static int addTeam(const dp_org *o, int team, const dp_ticket *t, int *out, int n, int max)
{
    const dp_team *tm = &o->teams[team];
    for (int i = 0; i < tm->nagents && n < max; i++) {
        const dp_agent *a = &o->agents[tm->agents[i]];
        if (a->active && a->capacity > 0 && dp_agent_skilled(a, t) && !excluded(t, a->id) &&
            (a->calendar == NULL || t->now_ms <= 0 || rd_calendar_is_working(a->calendar, t->now_ms)))
            out[n++] = tm->agents[i];
    }
    return n;
}

int dp_candidates(const dp_org *o, int team, const dp_ticket *t, int *out, int max)
{
    if (team < 0 || team >= o->nteams)
        return 0;
    int n = addTeam(o, team, t, out, 0, max);
    const dp_team *tm = &o->teams[team];
    if (tm->overflow >= 0 && tm->overflow != team && t->waiting_s >= tm->overflow_after_s)
        n = addTeam(o, tm->overflow, t, out, n, max);
    return n;
}

int dp_weight(const dp_org *o, int team, const dp_ticket *t)
{
    if (team < 0 || team >= o->nteams || strcmp(t->severity, "major") != 0)
        return 1;
    return o->teams[team].major_weight;
}

int dp_accept_limit(const dp_org *o, const dp_ticket *t)
{
    const dp_limit *def = NULL, *own = NULL;
    for (int i = 0; i < o->nlimits; i++) {
        if (strcmp(o->limits[i].business_type, "*") == 0)
            def = &o->limits[i];
        else if (strcmp(o->limits[i].business_type, t->business_type) == 0)
            own = &o->limits[i];
    }
    const dp_limit *l = own ? own : def;
    if (l == NULL)
        return 1800;
    return t->transferred ? l->transferred_s : l->seconds;
}
