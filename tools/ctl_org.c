/*
 * ctl_org.c -- redressctl org load|check|show and redressctl agent online|away|offline|list: the
 * organisation the dispatcher routes to (deploy/sql/0003_dispatcher.sql) and agents' presence.
 *
 * org load reads one JSON file (docs/dispatcher.md, deploy/config/org.demo.json), checks all of
 * it before touching the database, then makes the database say exactly what the file says in one
 * transaction: upserts that leave equal rows alone (so a second load of the same file changes
 * nothing), deletes the rules, limits, teams and departments the file no longer has, and
 * deactivates (never deletes: history names them) the agents it no longer has. The dispatchers
 * LISTEN on redress_org; the NOTIFY is delivered only if the transaction commits.
 *
 * agent online|away|offline stores presence in PostgreSQL first (the truth the dispatcher
 * reconciles Redis to), then sets it in Redis with the dispatcher's own script (dp_presence_set),
 * so that a desk's heartbeat takes effect at once.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher.h"
#include "rd_envelope.h"
#include "rd_pg.h"
#include "rd_redis.h"
#include "redressctl.h"

#define ORG_TS(col)          "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define ORG_ERRORS_SHOWN     20
#define ORG_MAX_NAME         256
#define ORG_MAX_CAPACITY     100000
#define DEFAULT_REDIS_URL    "redis://127.0.0.1:56379"
#define DEFAULT_PRESENCE_TTL 60
#define MAX_PRESENCE_TTL     86400
#define REDIS_TIMEOUT_MS     3000

enum { OPT_DRY_RUN_ORG = OPT_LOCAL, OPT_FORMAT, OPT_TTL, OPT_REDIS, OPT_TEAM };

/* ------------------------------------------------------------------------------------------------
 * Help
 * --------------------------------------------------------------------------------------------- */

/* clang-format off */
const char help_org[] =
    "usage: redressctl org load FILE [--dry-run]\n"
    "       redressctl org check FILE\n"
    "       redressctl org show [--format table|json]\n"
    "\n"
    "The organisation the dispatcher routes to: departments (a tree with one dispatch centre),\n"
    "their teams, the agents of each team with their skills and capacity, the routing rules and\n"
    "the acceptance limits. FILE is one JSON document (see deploy/config/org.demo.json and\n"
    "docs/dispatcher.md); it may be '-' (standard input).\n"
    "\n"
    "  check FILE   validate only, no database: prints the counts, or every mistake with its JSON\n"
    "               path ('agents[3].team: unknown team 'x'')\n"
    "  load FILE    validate, then in one transaction make the database hold exactly the file:\n"
    "               rows are added or updated (equal rows are left alone), routing rules,\n"
    "               acceptance limits, teams and departments missing from the file are deleted,\n"
    "               agents missing from it are deactivated (never deleted: history names them).\n"
    "               A team still referenced (by an agent, a queued ticket or an open assignment)\n"
    "               is not deleted: the load fails and lists them. Running dispatchers are\n"
    "               notified (NOTIFY redress_org). Prints the counts and the changes; loading the\n"
    "               same file again reports 0 changes.\n"
    "    --dry-run  do all of it, then roll back: nothing changes, nobody is notified\n"
    "  show         departments as a tree with their teams (agents active/all, online, the\n"
    "               active agents' capacity), the routing rules in order, the acceptance limits\n"
    "    --format table|json   [table]\n"
    "\n"
    "Exit status: 0 ok, 1 the file is refused (or a load conflicts with the database), 2 usage\n"
    "error or unreadable FILE, 3 PostgreSQL unreachable.\n"
    "\n"
    "Examples:\n"
    "  redressctl org check deploy/config/org.demo.json\n"
    "  redressctl org load deploy/config/org.demo.json --dry-run\n"
    "  redressctl --dsn 'host=db dbname=redress' org load org.json\n"
    "  redressctl org show --format json\n";

const char help_agent[] =
    "usage: redressctl agent online AGENT [--ttl SECONDS] [--redis URL]\n"
    "       redressctl agent away|offline AGENT [--redis URL]\n"
    "       redressctl agent list [--team TEAM] [--format table|json] [--redis URL]\n"
    "\n"
    "An agent's presence: the dispatcher assigns tickets only to agents who are online.\n"
    "\n"
    "  online AGENT    online for --ttl seconds [60]; repeat it before then (a heartbeat), or\n"
    "                  the agent is offline when it expires\n"
    "  away AGENT      gets no new tickets (Redis: \"0\")\n"
    "  offline AGENT   gets no new tickets\n"
    "                  Presence is stored in PostgreSQL (agent_presence), then set in Redis for\n"
    "                  the dispatchers. When Redis is unreachable it stays stored in PostgreSQL\n"
    "                  (the dispatcher copies it to Redis when it reconciles): the command says so\n"
    "                  and exits 3.\n"
    "  list            agents with their team, capacity and presence (from PostgreSQL) and, when\n"
    "                  Redis is reachable, their live load (open load units) out of their capacity\n"
    "    --team TEAM   only that team's agents\n"
    "    --format table|json   [table]\n"
    "  --redis URL     redis://HOST[:PORT][/DB]  [$REDRESS_REDIS_URL, " DEFAULT_REDIS_URL "]\n"
    "\n"
    "Exit status: 0 ok, 1 unknown agent or team, 2 usage error, 3 PostgreSQL or (online, away,\n"
    "offline) Redis unreachable.\n"
    "\n"
    "Examples:\n"
    "  redressctl agent online a-001 --ttl 120\n"
    "  while sleep 30; do redressctl agent online a-001; done     # a desk's heartbeat\n"
    "  redressctl agent offline a-001\n"
    "  redressctl agent list --team hq-dispatch --format json\n";
/* clang-format on */

/* ------------------------------------------------------------------------------------------------
 * Small helpers
 * --------------------------------------------------------------------------------------------- */

/* Runs one statement; NULL after printing PostgreSQL's message. */
static PGresult *org_exec(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    fprintf(stderr, "error: %s", PQresultErrorMessage(res));
    if (strstr(PQresultErrorMessage(res), "does not exist") != NULL)
        fprintf(stderr, "hint: the database lacks migration 0003_dispatcher.sql\n");
    PQclear(res);
    return NULL;
}

static bool org_exec_ok(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = org_exec(conn, sql, n, params);

    PQclear(res);
    return res != NULL;
}

static int org_fail_rc(PGconn *conn)
{
    return PQstatus(conn) == CONNECTION_OK ? EXIT_NACK : EXIT_UNREACHABLE;
}

static bool parse_format(const char *cmd, const char *arg, bool *as_json, int *rc)
{
    if (strcmp(arg, "table") == 0 || strcmp(arg, "json") == 0) {
        *as_json = arg[0] == 'j';
        return true;
    }
    *rc = usage_error(cmd, "--format wants table or json, not '%s'", arg);
    return false;
}

/* Ids as the SQL CHECKs want them: [A-Za-z0-9_.:-]{1,64}, agents may also use '@'. */
static bool id_valid(const char *s, bool agent)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == ':' || c == '-' || (agent && c == '@')))
            return false;
    }
    return true;
}

/* Business type codes as taxonomy_business_types wants them: [a-z0-9_]+. */
static bool code_valid(const char *s)
{
    if (s[0] == '\0' || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------------
 * The organisation file
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    const char *id, *name, *parent, *default_team; /* parent, default_team may be NULL */
    bool centre;
    int parent_ix;
} org_dept;

typedef struct {
    const char *id, *department, *name, *strategy, *overflow; /* overflow may be NULL */
    int overflow_after_s, major_weight;
} org_team;

enum { SKILL_BUSINESS_TYPES, SKILL_CATEGORIES, SKILL_LANGUAGES, SKILL_REGIONS, NSKILLS };
static const char *const skill_keys[NSKILLS] = {"business_types", "categories", "languages", "regions"};

typedef struct {
    const char *id, *name, *team, *calendar; /* calendar: a business_calendars id, NULL = none */
    int capacity;
    json_t *skills[NSKILLS]; /* arrays of strings, borrowed from the document; NULL = empty */
    bool active;
} org_agent;

typedef struct {
    const char *name, *business_type, *category, *region, *severity, *channel, *team; /* NULL = any */
} org_rule;

typedef struct {
    const char *business_type;
    int seconds, transferred_s;
} org_limit;

/* A name and where in the file it came from, for lookups and for messages. */
typedef struct {
    const char *key;
    int ix;
} org_key;

typedef struct {
    json_t *doc; /* every string below points into it */
    const char *path;
    org_dept *depts;
    org_team *teams;
    org_agent *agents;
    org_rule *rules;
    org_limit *limits;
    int ndepts, nteams, nagents, nrules, nlimits, nactive;
    org_key *dept_ix, *team_ix; /* sorted by key */
    int errors;
} org_file;

static void org_error(org_file *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void org_error(org_file *o, const char *fmt, ...)
{
    va_list ap;

    if (o->errors++ >= ORG_ERRORS_SHOWN)
        return;
    fprintf(stderr, "error: %s: ", o->path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int key_cmp(const void *a, const void *b)
{
    const org_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    return c != 0 ? c : (x->ix > y->ix) - (x->ix < y->ix);
}

/* A sorted index of n keys (NULL keys, from entries already reported, are left out), for
 * find_key(index + 1, ...): the first element holds the count. Duplicates are reported as
 * "what[i].id: duplicate id 'x' (also what[j])". Free the returned pointer. */
static org_key *index_keys(org_file *o, const char *what, const char *const *keys, int n, const char *field)
{
    org_key *base = calloc((size_t)n + 1, sizeof(*base)), *ix;
    int m = 0;

    if (base == NULL)
        abort();
    ix = base + 1;
    for (int i = 0; i < n; i++)
        if (keys[i] != NULL)
            ix[m++] = (org_key){keys[i], i};
    qsort(ix, (size_t)m, sizeof(*ix), key_cmp);
    for (int i = 1; i < m; i++)
        if (strcmp(ix[i].key, ix[i - 1].key) == 0)
            org_error(o, "%s[%d].%s: duplicate %s '%s' (also %s[%d])", what, ix[i].ix, field, field, ix[i].key, what,
                      ix[i - 1].ix);
    base->ix = m;
    return base;
}

static int find_key(const org_key *ix, const char *key)
{
    int n = ix[-1].ix; /* index_keys keeps the count before the first entry */
    org_key probe = {key, -1};
    const org_key *lo = ix, *hi = ix + n;
    /* lower bound: the first entry >= key (ix -1 sorts first among equal keys) */
    while (lo < hi) {
        const org_key *mid = lo + (hi - lo) / 2;
        if (key_cmp(mid, &probe) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ix + n && strcmp(lo->key, key) == 0 ? lo->ix : -1;
}

/* Reports the keys of object obj that are not in allowed (NULL-terminated). */
static void check_keys(org_file *o, const char *path, json_t *obj, const char *const *allowed)
{
    const char *k;
    json_t *v;

    json_object_foreach (obj, k, v) {
        bool known = false;
        for (const char *const *a = allowed; *a != NULL && !known; a++)
            known = strcmp(*a, k) == 0;
        if (!known) {
            char list[300] = "";
            size_t len = 0;
            for (const char *const *a = allowed; *a != NULL && len < sizeof(list); a++)
                len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", len ? ", " : "", *a);
            org_error(o, "%s%s%s: unknown key (there are: %s)", path, path[0] ? "." : "", k, list);
        }
    }
}

/* A string member: NULL when absent or null (an error when required), or when it is invalid
 * (reported). Single-line UTF-8 text, at most max bytes, not empty. */
static const char *get_str(org_file *o, const char *path, json_t *obj, const char *key, bool required, size_t max)
{
    json_t *v = json_object_get(obj, key);
    const char *s;

    if (v == NULL || json_is_null(v)) {
        if (required)
            org_error(o, "%s.%s: missing", path, key);
        return NULL;
    }
    if (!json_is_string(v)) {
        org_error(o, "%s.%s: wants a string", path, key);
        return NULL;
    }
    s = json_string_value(v);
    if (s[0] == '\0') {
        org_error(o, "%s.%s: empty (leave it out%s)", path, key, required ? " is not allowed either" : " or use null");
        return NULL;
    }
    if (json_string_length(v) > max) {
        org_error(o, "%s.%s: longer than %zu bytes", path, key, max);
        return NULL;
    }
    if (!rd_text_valid(s, json_string_length(v), false)) {
        org_error(o, "%s.%s: not single-line UTF-8 text", path, key);
        return NULL;
    }
    return s;
}

static const char *get_id(org_file *o, const char *path, json_t *obj, const char *key, bool required, bool agent)
{
    const char *s = get_str(o, path, obj, key, required, 64);

    if (s != NULL && !id_valid(s, agent)) {
        org_error(o, "%s.%s: '%s' is not an id (1 to 64 of A-Z a-z 0-9 _ . : -%s)", path, key, s, agent ? " @" : "");
        return NULL;
    }
    return s;
}

static int get_int(org_file *o, const char *path, json_t *obj, const char *key, bool required, int def, int min,
                   int max)
{
    json_t *v = json_object_get(obj, key);
    json_int_t x;

    if (v == NULL) {
        if (required)
            org_error(o, "%s.%s: missing", path, key);
        return def;
    }
    if (!json_is_integer(v)) {
        org_error(o, "%s.%s: wants a whole number from %d to %d", path, key, min, max);
        return def;
    }
    x = json_integer_value(v);
    if (x < min || x > max) {
        org_error(o, "%s.%s: %lld is out of range (%d to %d)", path, key, (long long)x, min, max);
        return def;
    }
    return (int)x;
}

static bool get_bool(org_file *o, const char *path, json_t *obj, const char *key, bool def)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL)
        return def;
    if (!json_is_boolean(v)) {
        org_error(o, "%s.%s: wants true or false", path, key);
        return def;
    }
    return json_is_true(v);
}

/* The array member key ([] when absent; an error when required); NULL when it is not an array. */
static json_t *get_array(org_file *o, const char *path, json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL) {
        org_error(o, "%s%s%s: missing (an empty array is fine)", path, path[0] ? "." : "", key);
        return NULL;
    }
    if (!json_is_array(v)) {
        org_error(o, "%s%s%s: wants an array", path, path[0] ? "." : "", key);
        return NULL;
    }
    return v;
}

/* A skill list: an array of distinct non-empty strings (business types as codes). */
static json_t *get_skills(org_file *o, const char *path, json_t *obj, int skill)
{
    json_t *v = json_object_get(obj, skill_keys[skill]), *e;
    size_t i;

    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_array(v)) {
        org_error(o, "%s.%s: wants an array of strings", path, skill_keys[skill]);
        return NULL;
    }
    json_array_foreach (v, i, e) {
        const char *s = json_string_value(e);
        if (s == NULL || s[0] == '\0' || json_string_length(e) > ORG_MAX_NAME ||
            !rd_text_valid(s, json_string_length(e), false)) {
            org_error(o, "%s.%s[%zu]: wants a non-empty single-line string of at most %d bytes", path,
                      skill_keys[skill], i, ORG_MAX_NAME);
            return NULL;
        }
        if (skill == SKILL_BUSINESS_TYPES && !code_valid(s)) {
            org_error(o, "%s.%s[%zu]: '%s' is not a business type code ([a-z0-9_]+)", path, skill_keys[skill], i, s);
            return NULL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(s, json_string_value(json_array_get(v, j))) == 0) {
                org_error(o, "%s.%s[%zu]: '%s' is listed twice", path, skill_keys[skill], i, s);
                return NULL;
            }
    }
    return json_array_size(v) > 0 ? v : NULL;
}

/* The object at arr[i], or NULL (reported). path gets "what[i]". */
static json_t *element(org_file *o, json_t *arr, size_t i, const char *what, char *path, size_t pathlen)
{
    json_t *e = json_array_get(arr, i);

    snprintf(path, pathlen, "%s[%zu]", what, i);
    if (!json_is_object(e)) {
        org_error(o, "%s: wants an object", path);
        return NULL;
    }
    return e;
}

static void parse_depts(org_file *o, json_t *arr)
{
    static const char *const keys[] = {"id", "name", "parent", "dispatch_centre", "default_team", NULL};
    char path[64];

    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *e = element(o, arr, i, "departments", path, sizeof(path));
        org_dept *d = &o->depts[o->ndepts++];
        d->parent_ix = -1;
        if (e == NULL)
            continue;
        check_keys(o, path, e, keys);
        d->id = get_id(o, path, e, "id", true, false);
        d->name = get_str(o, path, e, "name", true, ORG_MAX_NAME);
        d->parent = get_id(o, path, e, "parent", false, false);
        d->centre = get_bool(o, path, e, "dispatch_centre", false);
        d->default_team = get_id(o, path, e, "default_team", false, false);
    }
}

static void parse_teams(org_file *o, json_t *arr)
{
    static const char *const keys[] = {"id",       "department",       "name",         "strategy",
                                       "overflow", "overflow_after_s", "major_weight", NULL};
    char path[64];

    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *e = element(o, arr, i, "teams", path, sizeof(path));
        org_team *t = &o->teams[o->nteams++];
        t->strategy = "least_loaded";
        t->overflow_after_s = 300;
        t->major_weight = 1;
        if (e == NULL)
            continue;
        check_keys(o, path, e, keys);
        t->id = get_id(o, path, e, "id", true, false);
        t->department = get_id(o, path, e, "department", true, false);
        t->name = get_str(o, path, e, "name", true, ORG_MAX_NAME);
        const char *s = get_str(o, path, e, "strategy", false, 32);
        if (s != NULL && strcmp(s, "least_loaded") != 0 && strcmp(s, "round_robin") != 0)
            org_error(o, "%s.strategy: unknown strategy '%s' (there are: least_loaded, round_robin)", path, s);
        else if (s != NULL)
            t->strategy = s;
        t->overflow = get_id(o, path, e, "overflow", false, false);
        t->overflow_after_s = get_int(o, path, e, "overflow_after_s", false, 300, 0, INT_MAX);
        t->major_weight = get_int(o, path, e, "major_weight", false, 1, 1, 100);
    }
}

static void parse_agents(org_file *o, json_t *arr)
{
    static const char *const keys[] = {"id",         "name",      "team",    "capacity", "business_types",
                                       "categories", "languages", "regions", "active",   "calendar",
                                       NULL};
    char path[64];

    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *e = element(o, arr, i, "agents", path, sizeof(path));
        org_agent *a = &o->agents[o->nagents++];
        a->capacity = 5;
        a->active = true;
        if (e == NULL)
            continue;
        check_keys(o, path, e, keys);
        a->id = get_id(o, path, e, "id", true, true);
        a->name = get_str(o, path, e, "name", false, ORG_MAX_NAME);
        a->team = get_id(o, path, e, "team", true, false);
        a->capacity = get_int(o, path, e, "capacity", false, 5, 0, ORG_MAX_CAPACITY);
        for (int k = 0; k < NSKILLS; k++)
            a->skills[k] = get_skills(o, path, e, k);
        a->active = get_bool(o, path, e, "active", true);
        a->calendar = get_id(o, path, e, "calendar", false, false);
        o->nactive += a->active;
    }
}

static void parse_rules(org_file *o, json_t *arr)
{
    static const char *const keys[] = {"name",     "business_type", "category", "region",
                                       "severity", "channel",       "team",     NULL};
    char path[64];

    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *e = element(o, arr, i, "routing", path, sizeof(path));
        org_rule *r = &o->rules[o->nrules++];
        if (e == NULL)
            continue;
        check_keys(o, path, e, keys);
        r->name = get_str(o, path, e, "name", true, 128);
        r->business_type = get_str(o, path, e, "business_type", false, 64);
        if (r->business_type != NULL && !code_valid(r->business_type))
            org_error(o, "%s.business_type: '%s' is not a business type code ([a-z0-9_]+)", path, r->business_type);
        r->category = get_str(o, path, e, "category", false, ORG_MAX_NAME);
        r->region = get_str(o, path, e, "region", false, 64);
        r->severity = get_str(o, path, e, "severity", false, 32);
        if (r->severity != NULL && strcmp(r->severity, "major") != 0 && strcmp(r->severity, "general") != 0)
            org_error(o, "%s.severity: unknown severity '%s' (there are: major, general)", path, r->severity);
        r->channel = get_str(o, path, e, "channel", false, 32);
        if (r->channel != NULL && rd_channel_parse(r->channel) == 0)
            org_error(o,
                      "%s.channel: unknown channel '%s' (there are: hotline, web, email, app, walk_in, regulator,"
                      " mayor_hotline, social_media, postal, fax, referral)",
                      path, r->channel);
        r->team = get_id(o, path, e, "team", true, false);
    }
}

static void parse_limits(org_file *o, json_t *obj)
{
    static const char *const keys[] = {"seconds", "transferred_s", NULL};
    const char *k;
    json_t *v;
    char path[128];
    bool dflt = false;

    if (obj == NULL) {
        org_error(o, "accept_limits: missing (an object with at least the default, \"*\")");
        return;
    }
    if (!json_is_object(obj)) {
        org_error(o, "accept_limits: wants an object (business type -> {seconds, transferred_s})");
        return;
    }
    json_object_foreach (obj, k, v) {
        snprintf(path, sizeof(path), "accept_limits.%s", k);
        if (strcmp(k, "*") != 0 && !code_valid(k)) {
            org_error(o, "%s: '%s' is not a business type code ([a-z0-9_]+) nor \"*\"", path, k);
            continue;
        }
        if (!json_is_object(v)) {
            org_error(o, "%s: wants an object {seconds, transferred_s}", path);
            continue;
        }
        check_keys(o, path, v, keys);
        org_limit *l = &o->limits[o->nlimits++];
        l->business_type = k;
        l->seconds = get_int(o, path, v, "seconds", true, 1, 1, INT_MAX);
        l->transferred_s = get_int(o, path, v, "transferred_s", true, 1, 1, INT_MAX);
        dflt |= strcmp(k, "*") == 0;
    }
    if (!dflt)
        org_error(o, "accept_limits: wants a \"*\" entry (the default for other business types)");
}

/* References, the one dispatch centre, cycles. */
static void check_refs(org_file *o)
{
    int most = o->ndepts > o->nteams ? o->ndepts : o->nteams, centres = 0, first_centre = -1;
    const char **keys;

    most = most > o->nagents ? most : o->nagents;
    most = most > o->nrules ? most : o->nrules;
    if ((keys = calloc((size_t)most + 1, sizeof(*keys))) == NULL)
        abort();
    for (int i = 0; i < o->ndepts; i++)
        keys[i] = o->depts[i].id;
    o->dept_ix = index_keys(o, "departments", keys, o->ndepts, "id");
    for (int i = 0; i < o->nteams; i++)
        keys[i] = o->teams[i].id;
    o->team_ix = index_keys(o, "teams", keys, o->nteams, "id");
    for (int i = 0; i < o->nagents; i++)
        keys[i] = o->agents[i].id;
    free(index_keys(o, "agents", keys, o->nagents, "id"));
    for (int i = 0; i < o->nrules; i++)
        keys[i] = o->rules[i].name;
    free(index_keys(o, "routing", keys, o->nrules, "name"));
    free(keys);

    for (int i = 0; i < o->ndepts; i++) {
        org_dept *d = &o->depts[i];
        if (d->parent != NULL && (d->parent_ix = find_key(o->dept_ix + 1, d->parent)) < 0)
            org_error(o, "departments[%d].parent: unknown department '%s'", i, d->parent);
        if (d->default_team != NULL && find_key(o->team_ix + 1, d->default_team) < 0)
            org_error(o, "departments[%d].default_team: unknown team '%s'", i, d->default_team);
        if (d->centre && centres++ == 0)
            first_centre = i;
        else if (d->centre)
            org_error(o,
                      "departments[%d].dispatch_centre: a second dispatch centre (departments[%d] is one);"
                      " there must be exactly one",
                      i, first_centre);
    }
    if (centres == 0 && o->ndepts > 0)
        org_error(o, "departments: no dispatch centre (\"dispatch_centre\": true on exactly one department)");
    if (o->ndepts == 0)
        org_error(o, "departments: empty (there must be at least the dispatch centre)");
    if (first_centre >= 0 && o->depts[first_centre].default_team == NULL && o->depts[first_centre].id != NULL)
        org_error(o,
                  "departments[%d].default_team: missing: the dispatch centre's default team takes the tickets"
                  " no rule routes",
                  first_centre);

    /* a department is on a cycle when following parents from it comes back to it; reported once,
     * at the cycle's first department in file order */
    for (int i = 0; i < o->ndepts; i++) {
        int j = o->depts[i].parent_ix, steps = 0, lowest = i;
        while (j >= 0 && j != i && steps++ < o->ndepts)
            j = o->depts[j].parent_ix;
        if (j != i)
            continue;
        for (j = o->depts[i].parent_ix; j != i; j = o->depts[j].parent_ix)
            lowest = j < lowest ? j : lowest;
        if (lowest != i)
            continue;
        char chain[512];
        size_t len = (size_t)snprintf(chain, sizeof(chain), "%s", o->depts[i].id);
        j = i;
        do {
            j = o->depts[j].parent_ix;
            if (len < sizeof(chain))
                len += (size_t)snprintf(chain + len, sizeof(chain) - len, " -> %s", o->depts[j].id);
        } while (j != i);
        org_error(o, "departments[%d].parent: the parents make a cycle: %s", i, chain);
    }

    for (int i = 0; i < o->nteams; i++) {
        const org_team *t = &o->teams[i];
        if (t->department != NULL && find_key(o->dept_ix + 1, t->department) < 0)
            org_error(o, "teams[%d].department: unknown department '%s'", i, t->department);
        if (t->overflow != NULL && find_key(o->team_ix + 1, t->overflow) < 0)
            org_error(o, "teams[%d].overflow: unknown team '%s'", i, t->overflow);
        else if (t->overflow != NULL && t->id != NULL && strcmp(t->overflow, t->id) == 0)
            org_error(o, "teams[%d].overflow: a team cannot overflow to itself", i);
    }
    for (int i = 0; i < o->nagents; i++)
        if (o->agents[i].team != NULL && find_key(o->team_ix + 1, o->agents[i].team) < 0)
            org_error(o, "agents[%d].team: unknown team '%s'", i, o->agents[i].team);
    for (int i = 0; i < o->nrules; i++)
        if (o->rules[i].team != NULL && find_key(o->team_ix + 1, o->rules[i].team) < 0)
            org_error(o, "routing[%d].team: unknown team '%s'", i, o->rules[i].team);
}

static void org_file_free(org_file *o)
{
    free(o->depts);
    free(o->teams);
    free(o->agents);
    free(o->rules);
    free(o->limits);
    free(o->dept_ix);
    free(o->team_ix);
    json_decref(o->doc);
    memset(o, 0, sizeof(*o));
}

/* Reads and validates FILE; false after printing every mistake (*rc: usage or refused). */
static bool org_read(const char *path, org_file *o, int *rc)
{
    static const char *const keys[] = {"departments", "teams", "agents", "routing", "accept_limits", NULL};
    char err[600];
    size_t len;
    json_error_t jerr;
    char *text = read_all(path, &len, err, sizeof(err));
    json_t *d, *t, *a, *r;

    memset(o, 0, sizeof(*o));
    o->path = path;
    if (text == NULL) {
        fprintf(stderr, "error: %s\n", err);
        *rc = EXIT_USAGE;
        return false;
    }
    /* jansson refuses malformed UTF-8 and \u0000 */
    o->doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (o->doc == NULL) {
        fprintf(stderr, "error: %s: line %d column %d: %s%s\n", path, jerr.line, jerr.column, jerr.text,
                json_error_code(&jerr) == json_error_invalid_utf8 ? " (the file must be UTF-8)" : "");
        *rc = EXIT_NACK;
        return false;
    }
    if (!json_is_object(o->doc)) {
        fprintf(stderr, "error: %s: wants a JSON object {departments, teams, agents, routing, accept_limits}\n", path);
        org_file_free(o);
        *rc = EXIT_NACK;
        return false;
    }
    check_keys(o, "", o->doc, keys);
    d = get_array(o, "", o->doc, "departments");
    t = get_array(o, "", o->doc, "teams");
    a = get_array(o, "", o->doc, "agents");
    r = get_array(o, "", o->doc, "routing");
    o->depts = calloc(json_array_size(d) + 1, sizeof(*o->depts));
    o->teams = calloc(json_array_size(t) + 1, sizeof(*o->teams));
    o->agents = calloc(json_array_size(a) + 1, sizeof(*o->agents));
    o->rules = calloc(json_array_size(r) + 1, sizeof(*o->rules));
    o->limits = calloc(json_object_size(json_object_get(o->doc, "accept_limits")) + 1, sizeof(*o->limits));
    if (o->depts == NULL || o->teams == NULL || o->agents == NULL || o->rules == NULL || o->limits == NULL)
        abort();
    parse_depts(o, d);
    parse_teams(o, t);
    parse_agents(o, a);
    parse_rules(o, r);
    parse_limits(o, json_object_get(o->doc, "accept_limits"));
    if (d != NULL && t != NULL && a != NULL && r != NULL)
        check_refs(o);
    if (o->errors == 0)
        return true;
    if (o->errors > ORG_ERRORS_SHOWN)
        fprintf(stderr, "error: %s: ... and %d more\n", path, o->errors - ORG_ERRORS_SHOWN);
    fprintf(stderr, "%s: %d mistake%s, nothing loaded\n", path, o->errors, o->errors == 1 ? "" : "s");
    org_file_free(o);
    *rc = EXIT_NACK;
    return false;
}

/* ------------------------------------------------------------------------------------------------
 * org load
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    int added, updated, deleted;
} org_change;

typedef struct {
    org_change depts, teams, agents, rules, limits;
    int deactivated;
} org_changes;

/* Runs an upsert that RETURNs (xmax = 0) for each row it wrote: added or updated. */
static bool org_upsert(PGconn *conn, const char *sql, int n, const char *const *params, org_change *ch)
{
    PGresult *res = org_exec(conn, sql, n, params);

    if (res == NULL)
        return false;
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetvalue(res, i, 0)[0] == 't')
            ch->added++;
        else
            ch->updated++;
    }
    PQclear(res);
    return true;
}

/* Runs a DELETE or UPDATE; the number of rows in *count. */
static bool org_count(PGconn *conn, const char *sql, int n, const char *const *params, int *count)
{
    PGresult *res = org_exec(conn, sql, n, params);

    if (res == NULL)
        return false;
    *count = atoi(PQcmdTuples(res));
    PQclear(res);
    return true;
}

static void arr_opt(rd_pgarr *a, const char *s)
{
    rd_pgarr_str(a, s != NULL ? s : ""); /* NULLIF(x, '') in SQL: "" is never valid in the file */
}

static bool store_depts(PGconn *conn, const org_file *o, org_changes *ch)
{
    rd_pgarr a[5];
    const char *p[5];
    bool ok;

    for (int k = 0; k < 5; k++)
        rd_pgarr_init(&a[k]);
    for (int i = 0; i < o->ndepts; i++) {
        const org_dept *d = &o->depts[i];
        rd_pgarr_str(&a[0], d->id);
        arr_opt(&a[1], d->parent);
        rd_pgarr_str(&a[2], d->name);
        rd_pgarr_bool(&a[3], d->centre);
        arr_opt(&a[4], d->default_team);
    }
    for (int k = 0; k < 5; k++)
        p[k] = rd_pgarr_finish(&a[k]);
    ok = org_upsert(conn,
                    "INSERT INTO departments AS d (id, parent_id, name, dispatch_centre, default_team)"
                    " SELECT u.id, NULLIF(u.parent, ''), u.name, u.centre, NULLIF(u.dt, '')"
                    " FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[], $5::text[])"
                    " AS u(id, parent, name, centre, dt)"
                    " ON CONFLICT (id) DO UPDATE SET parent_id = EXCLUDED.parent_id, name = EXCLUDED.name,"
                    " dispatch_centre = EXCLUDED.dispatch_centre, default_team = EXCLUDED.default_team"
                    " WHERE (d.parent_id, d.name, d.dispatch_centre, d.default_team) IS DISTINCT FROM"
                    " (EXCLUDED.parent_id, EXCLUDED.name, EXCLUDED.dispatch_centre, EXCLUDED.default_team)"
                    " RETURNING (xmax = 0)",
                    5, p, &ch->depts) &&
         org_count(conn, "DELETE FROM departments WHERE id <> ALL($1::text[])", 1, p, &ch->depts.deleted);
    for (int k = 0; k < 5; k++)
        rd_pgarr_free(&a[k]);
    return ok;
}

/* Teams missing from the file that something still needs; false after listing them. */
static bool teams_removable(PGconn *conn, const char *ids)
{
    const char *p[] = {ids};
    PGresult *res = org_exec(conn,
                             "SELECT t.id, (SELECT count(*) FROM agents a WHERE a.team_id = t.id),"
                             " (SELECT count(*) FROM dispatch_queue q WHERE q.team_id = t.id),"
                             " (SELECT count(*) FROM ticket_assignments x WHERE x.team_id = t.id"
                             "  AND x.ended_at IS NULL)"
                             " FROM teams t WHERE t.id <> ALL($1::text[]) ORDER BY t.id",
                             1, p);
    int blocked = 0;

    if (res == NULL)
        return false;
    for (int i = 0; i < PQntuples(res); i++) {
        long agents = atol(PQgetvalue(res, i, 1)), queued = atol(PQgetvalue(res, i, 2)),
             open = atol(PQgetvalue(res, i, 3));
        if (agents + queued + open == 0)
            continue;
        if (blocked++ == 0)
            fprintf(stderr, "error: teams missing from the file are still referenced, so they cannot be deleted:\n");
        fprintf(stderr, "  team '%s': %ld agent%s, %ld queued ticket%s, %ld open assignment%s\n", PQgetvalue(res, i, 0),
                agents, agents == 1 ? "" : "s", queued, queued == 1 ? "" : "s", open, open == 1 ? "" : "s");
    }
    if (blocked > 0)
        fprintf(stderr,
                "hint: keep the team%s in the file, or move their agents (listed with \"active\": false"
                " if they left) to another team first\n",
                blocked == 1 ? "" : "s");
    PQclear(res);
    return blocked == 0;
}

static bool store_teams(PGconn *conn, const org_file *o, org_changes *ch, bool delete_phase)
{
    rd_pgarr a[7];
    const char *p[7];
    bool ok;

    for (int k = 0; k < 7; k++)
        rd_pgarr_init(&a[k]);
    for (int i = 0; i < o->nteams; i++) {
        const org_team *t = &o->teams[i];
        rd_pgarr_str(&a[0], t->id);
        rd_pgarr_str(&a[1], t->department);
        rd_pgarr_str(&a[2], t->name);
        rd_pgarr_str(&a[3], t->strategy);
        arr_opt(&a[4], t->overflow);
        rd_pgarr_int(&a[5], t->overflow_after_s);
        rd_pgarr_int(&a[6], t->major_weight);
    }
    for (int k = 0; k < 7; k++)
        p[k] = rd_pgarr_finish(&a[k]);
    if (delete_phase)
        ok = teams_removable(conn, p[0]) &&
             org_count(conn, "DELETE FROM teams WHERE id <> ALL($1::text[])", 1, p, &ch->teams.deleted);
    else
        ok = org_upsert(
            conn,
            "INSERT INTO teams AS t (id, department_id, name, strategy, overflow_team, overflow_after_s, major_weight)"
            " SELECT u.id, u.dept, u.name, u.strategy, NULLIF(u.overflow, ''), u.after_s, u.weight"
            " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::integer[], $7::integer[])"
            " AS u(id, dept, name, strategy, overflow, after_s, weight)"
            " ON CONFLICT (id) DO UPDATE SET department_id = EXCLUDED.department_id, name = EXCLUDED.name,"
            " strategy = EXCLUDED.strategy, overflow_team = EXCLUDED.overflow_team,"
            " overflow_after_s = EXCLUDED.overflow_after_s, major_weight = EXCLUDED.major_weight"
            " WHERE (t.department_id, t.name, t.strategy, t.overflow_team, t.overflow_after_s, t.major_weight)"
            " IS DISTINCT FROM (EXCLUDED.department_id, EXCLUDED.name, EXCLUDED.strategy, EXCLUDED.overflow_team,"
            " EXCLUDED.overflow_after_s, EXCLUDED.major_weight)"
            " RETURNING (xmax = 0)",
            7, p, &ch->teams);
    for (int k = 0; k < 7; k++)
        rd_pgarr_free(&a[k]);
    return ok;
}

static bool store_agents(PGconn *conn, const org_file *o, org_changes *ch)
{
    rd_pgarr a[6 + NSKILLS], skill;
    const char *p[6 + NSKILLS];
    bool ok;

    rd_pgarr_init(&skill);
    for (int k = 0; k < 6 + NSKILLS; k++)
        rd_pgarr_init(&a[k]);
    for (int i = 0; i < o->nagents; i++) {
        const org_agent *ag = &o->agents[i];
        rd_pgarr_str(&a[0], ag->id);
        rd_pgarr_str(&a[1], ag->team);
        rd_pgarr_str(&a[2], ag->name != NULL ? ag->name : "");
        rd_pgarr_int(&a[3], ag->capacity);
        rd_pgarr_bool(&a[4], ag->active);
        /* each agent's skill list travels as the text of an array literal, cast back in SQL */
        for (int k = 0; k < NSKILLS; k++) {
            size_t j;
            json_t *e;
            rd_pgarr_reset(&skill);
            json_array_foreach (ag->skills[k], j, e) {
                rd_pgarr_str(&skill, json_string_value(e));
            }
            rd_pgarr_str(&a[5 + k], rd_pgarr_finish(&skill));
        }
        arr_opt(&a[5 + NSKILLS], ag->calendar);
    }
    for (int k = 0; k < 6 + NSKILLS; k++)
        p[k] = rd_pgarr_finish(&a[k]);
    ok = org_upsert(conn,
                    "INSERT INTO agents AS a (id, team_id, name, capacity, active, business_types, categories,"
                    " languages, regions, calendar_id)"
                    " SELECT u.id, u.team, u.name, u.cap, u.active, u.bt::text[], u.cat::text[], u.lang::text[],"
                    " u.reg::text[], NULLIF(u.cal, '')"
                    " FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::boolean[], $6::text[],"
                    " $7::text[], $8::text[], $9::text[], $10::text[])"
                    " AS u(id, team, name, cap, active, bt, cat, lang, reg, cal)"
                    " ON CONFLICT (id) DO UPDATE SET team_id = EXCLUDED.team_id, name = EXCLUDED.name,"
                    " capacity = EXCLUDED.capacity, active = EXCLUDED.active,"
                    " business_types = EXCLUDED.business_types, categories = EXCLUDED.categories,"
                    " languages = EXCLUDED.languages, regions = EXCLUDED.regions, calendar_id = EXCLUDED.calendar_id"
                    " WHERE (a.team_id, a.name, a.capacity, a.active, a.business_types, a.categories, a.languages,"
                    " a.regions, a.calendar_id) IS DISTINCT FROM (EXCLUDED.team_id, EXCLUDED.name, EXCLUDED.capacity,"
                    " EXCLUDED.active, EXCLUDED.business_types, EXCLUDED.categories, EXCLUDED.languages,"
                    " EXCLUDED.regions, EXCLUDED.calendar_id)"
                    " RETURNING (xmax = 0)",
                    10, p, &ch->agents) &&
         org_count(conn, "UPDATE agents SET active = false WHERE active AND id <> ALL($1::text[])", 1, p,
                   &ch->deactivated);
    for (int k = 0; k < 6 + NSKILLS; k++)
        rd_pgarr_free(&a[k]);
    rd_pgarr_free(&skill);
    return ok;
}

static bool store_rules(PGconn *conn, const org_file *o, org_changes *ch)
{
    rd_pgarr a[8];
    const char *p[8];
    bool ok;

    for (int k = 0; k < 8; k++)
        rd_pgarr_init(&a[k]);
    for (int i = 0; i < o->nrules; i++) {
        const org_rule *r = &o->rules[i];
        rd_pgarr_str(&a[0], r->name);
        rd_pgarr_int(&a[1], i);
        arr_opt(&a[2], r->business_type);
        arr_opt(&a[3], r->category);
        arr_opt(&a[4], r->region);
        arr_opt(&a[5], r->severity);
        arr_opt(&a[6], r->channel);
        rd_pgarr_str(&a[7], r->team);
    }
    for (int k = 0; k < 8; k++)
        p[k] = rd_pgarr_finish(&a[k]);
    ok = org_count(conn, "DELETE FROM routing_rules WHERE name <> ALL($1::text[])", 1, p, &ch->rules.deleted) &&
         org_upsert(conn,
                    "INSERT INTO routing_rules AS r (name, ord, business_type, category_prefix, region_prefix,"
                    " severity, channel, team_id)"
                    " SELECT u.name, u.ord, NULLIF(u.bt, ''), NULLIF(u.cat, ''), NULLIF(u.reg, ''),"
                    " NULLIF(u.sev, ''), NULLIF(u.ch, ''), u.team"
                    " FROM unnest($1::text[], $2::integer[], $3::text[], $4::text[], $5::text[], $6::text[],"
                    " $7::text[], $8::text[]) AS u(name, ord, bt, cat, reg, sev, ch, team)"
                    " ON CONFLICT (name) DO UPDATE SET ord = EXCLUDED.ord, business_type = EXCLUDED.business_type,"
                    " category_prefix = EXCLUDED.category_prefix, region_prefix = EXCLUDED.region_prefix,"
                    " severity = EXCLUDED.severity, channel = EXCLUDED.channel, team_id = EXCLUDED.team_id"
                    " WHERE (r.ord, r.business_type, r.category_prefix, r.region_prefix, r.severity, r.channel,"
                    " r.team_id) IS DISTINCT FROM (EXCLUDED.ord, EXCLUDED.business_type, EXCLUDED.category_prefix,"
                    " EXCLUDED.region_prefix, EXCLUDED.severity, EXCLUDED.channel, EXCLUDED.team_id)"
                    " RETURNING (xmax = 0)",
                    8, p, &ch->rules);
    for (int k = 0; k < 8; k++)
        rd_pgarr_free(&a[k]);
    return ok;
}

static bool store_limits(PGconn *conn, const org_file *o, org_changes *ch)
{
    rd_pgarr a[3];
    const char *p[3];
    bool ok;

    for (int k = 0; k < 3; k++)
        rd_pgarr_init(&a[k]);
    for (int i = 0; i < o->nlimits; i++) {
        rd_pgarr_str(&a[0], o->limits[i].business_type);
        rd_pgarr_int(&a[1], o->limits[i].seconds);
        rd_pgarr_int(&a[2], o->limits[i].transferred_s);
    }
    for (int k = 0; k < 3; k++)
        p[k] = rd_pgarr_finish(&a[k]);
    ok = org_count(conn, "DELETE FROM accept_limits WHERE business_type <> ALL($1::text[])", 1, p,
                   &ch->limits.deleted) &&
         org_upsert(conn,
                    "INSERT INTO accept_limits AS l (business_type, seconds, transferred_s)"
                    " SELECT * FROM unnest($1::text[], $2::integer[], $3::integer[])"
                    " ON CONFLICT (business_type) DO UPDATE SET seconds = EXCLUDED.seconds,"
                    " transferred_s = EXCLUDED.transferred_s"
                    " WHERE (l.seconds, l.transferred_s) IS DISTINCT FROM (EXCLUDED.seconds, EXCLUDED.transferred_s)"
                    " RETURNING (xmax = 0)",
                    3, p, &ch->limits);
    for (int k = 0; k < 3; k++)
        rd_pgarr_free(&a[k]);
    return ok;
}

static bool column0_has(const PGresult *res, const char *code)
{
    for (int i = 0; i < PQntuples(res); i++)
        if (strcmp(PQgetvalue(res, i, 0), code) == 0)
            return true;
    return false;
}

/* Business types the file names must be in taxonomy_business_types (the classifier's). */
static bool check_business_types(PGconn *conn, const org_file *o)
{
    PGresult *res = org_exec(conn, "SELECT code FROM taxonomy_business_types", 0, NULL);
    int bad = 0;

    if (res == NULL)
        return false;
    for (int i = 0; i < o->nagents; i++) {
        size_t j;
        json_t *e;
        json_array_foreach (o->agents[i].skills[SKILL_BUSINESS_TYPES], j, e) {
            if (!column0_has(res, json_string_value(e)) && bad++ < ORG_ERRORS_SHOWN)
                fprintf(stderr, "error: %s: agents[%d].business_types[%zu]: unknown business type '%s'\n", o->path, i,
                        j, json_string_value(e));
        }
    }
    for (int i = 0; i < o->nrules; i++)
        if (o->rules[i].business_type != NULL && !column0_has(res, o->rules[i].business_type) &&
            bad++ < ORG_ERRORS_SHOWN)
            fprintf(stderr, "error: %s: routing[%d].business_type: unknown business type '%s'\n", o->path, i,
                    o->rules[i].business_type);
    for (int i = 0; i < o->nlimits; i++)
        if (strcmp(o->limits[i].business_type, "*") != 0 && !column0_has(res, o->limits[i].business_type) &&
            bad++ < ORG_ERRORS_SHOWN)
            fprintf(stderr, "error: %s: accept_limits.%s: unknown business type\n", o->path,
                    o->limits[i].business_type);
    if (bad > 0)
        fprintf(stderr, "hint: the business types are the codes of taxonomy_business_types\n");
    PQclear(res);
    return bad == 0;
}

/* Calendars the agents name must have been loaded (redressctl calendar load). */
static bool check_calendars(PGconn *conn, const org_file *o)
{
    PGresult *res = org_exec(conn, "SELECT id FROM business_calendars", 0, NULL);
    int bad = 0;

    if (res == NULL)
        return false;
    for (int i = 0; i < o->nagents; i++)
        if (o->agents[i].calendar != NULL && !column0_has(res, o->agents[i].calendar) && bad++ < ORG_ERRORS_SHOWN)
            fprintf(stderr, "error: %s: agents[%d].calendar: unknown calendar '%s'\n", o->path, i,
                    o->agents[i].calendar);
    if (bad > 0)
        fprintf(stderr, "hint: load calendars first: redressctl calendar load FILE\n");
    PQclear(res);
    return bad == 0;
}

static int changes_total(const org_changes *c)
{
    const org_change *all[] = {&c->depts, &c->teams, &c->agents, &c->rules, &c->limits};
    int n = c->deactivated;

    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        n += all[i]->added + all[i]->updated + all[i]->deleted;
    return n;
}

/* Every step of a load inside the open transaction; false after printing why. Deletions that
 * the foreign keys would refuse come after the rows that replace the references. */
static bool org_store(PGconn *conn, const org_file *o, org_changes *ch)
{
    char payload[32];
    const char *p[1] = {payload};

    if (!org_exec_ok(conn,
                     "LOCK TABLE departments, teams, agents, routing_rules, accept_limits IN SHARE ROW EXCLUSIVE MODE",
                     0, NULL) ||
        !check_business_types(conn, o) || !check_calendars(conn, o) || !store_teams(conn, o, ch, false) ||
        !store_agents(conn, o, ch) || !store_rules(conn, o, ch) || !store_limits(conn, o, ch) ||
        !store_teams(conn, o, ch, true) || !store_depts(conn, o, ch) ||
        !org_exec_ok(conn, "SET CONSTRAINTS ALL IMMEDIATE", 0, NULL))
        return false;
    snprintf(payload, sizeof(payload), "%d", changes_total(ch));
    return org_exec_ok(conn, "SELECT pg_notify('redress_org', $1)", 1, p);
}

static void print_change(const char *what, int n, const org_change *c, int deactivated, int active)
{
    printf("  %-14s %5d  ", what, n);
    if (active >= 0)
        printf("(%d active; %d added, %d updated, %d deactivated)\n", active, c->added, c->updated, deactivated);
    else
        printf("(%d added, %d updated, %d deleted)\n", c->added, c->updated, c->deleted);
}

static void org_print_summary(const org_file *o, const org_changes *ch, const char *verb)
{
    printf("%s %s:\n", verb, o->path);
    print_change("departments", o->ndepts, &ch->depts, 0, -1);
    print_change("teams", o->nteams, &ch->teams, 0, -1);
    print_change("agents", o->nagents, &ch->agents, ch->deactivated, o->nactive);
    print_change("routing rules", o->nrules, &ch->rules, 0, -1);
    print_change("accept limits", o->nlimits, &ch->limits, 0, -1);
}

static int org_load(const globals *g, const char *path, bool dry_run)
{
    org_file o;
    org_changes ch;
    int rc = EXIT_ACK;
    PGconn *conn;

    if (!org_read(path, &o, &rc))
        return rc;
    memset(&ch, 0, sizeof(ch));
    conn = db_connect(g);
    if (conn == NULL) {
        rc = EXIT_UNREACHABLE;
    } else if (!org_exec_ok(conn, "BEGIN", 0, NULL)) {
        rc = org_fail_rc(conn);
    } else {
        bool ok = org_store(conn, &o, &ch) && ctl_audit_record(conn, g, "org.load", "org", path, NULL) &&
                  org_exec_ok(conn, dry_run ? "ROLLBACK" : "COMMIT", 0, NULL);
        if (ok) {
            int n = changes_total(&ch);
            org_print_summary(&o, &ch, dry_run ? "dry run: would load" : "loaded");
            if (dry_run)
                printf("dry run: %d change%s; rolled back: nothing changed and no dispatcher was notified\n", n,
                       n == 1 ? "" : "s");
            else
                printf("%d change%s; dispatchers notified (redress_org)\n", n, n == 1 ? "" : "s");
        } else {
            org_exec_ok(conn, "ROLLBACK", 0, NULL);
            fprintf(stderr, "%s: nothing loaded\n", path);
        }
        rc = ok ? EXIT_ACK : org_fail_rc(conn);
    }
    PQfinish(conn);
    org_file_free(&o);
    return rc;
}

static int org_check(const char *path)
{
    org_file o;
    int rc = EXIT_ACK;

    if (!org_read(path, &o, &rc))
        return rc;
    printf("ok %d departments, %d teams, %d agents (%d active), %d routing rules, %d accept limits\n", o.ndepts,
           o.nteams, o.nagents, o.nactive, o.nrules, o.nlimits);
    org_file_free(&o);
    return EXIT_ACK;
}

/* ------------------------------------------------------------------------------------------------
 * org show
 * --------------------------------------------------------------------------------------------- */

enum { D_ID, D_PARENT, D_NAME, D_CENTRE, D_DEFAULT };
enum { T_ID, T_DEPT, T_NAME, T_STRATEGY, T_OVERFLOW, T_AFTER, T_WEIGHT, T_ACTIVE, T_ALL, T_ONLINE, T_CAPACITY };
enum { R_ORD, R_NAME, R_BT, R_CAT, R_REGION, R_SEVERITY, R_CHANNEL, R_TEAM };

typedef struct {
    PGresult *depts, *teams, *rules, *limits;
    bool *shown; /* departments printed so far (a tree edited into a cycle by SQL still ends) */
} org_view;

static const char *nullable(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static json_t *json_nullable(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

static json_t *team_json(const PGresult *t, int i)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(PQgetvalue(t, i, T_ID)));
    json_object_set_new(o, "name", json_string(PQgetvalue(t, i, T_NAME)));
    json_object_set_new(o, "strategy", json_string(PQgetvalue(t, i, T_STRATEGY)));
    json_object_set_new(o, "overflow", json_nullable(t, i, T_OVERFLOW));
    json_object_set_new(o, "overflow_after_s", json_integer(atoi(PQgetvalue(t, i, T_AFTER))));
    json_object_set_new(o, "major_weight", json_integer(atoi(PQgetvalue(t, i, T_WEIGHT))));
    json_object_set_new(o, "agents_active", json_integer(atoi(PQgetvalue(t, i, T_ACTIVE))));
    json_object_set_new(o, "agents_all", json_integer(atoi(PQgetvalue(t, i, T_ALL))));
    json_object_set_new(o, "agents_online", json_integer(atoi(PQgetvalue(t, i, T_ONLINE))));
    json_object_set_new(o, "capacity", json_integer(atoll(PQgetvalue(t, i, T_CAPACITY))));
    return o;
}

/* Department i and, below it, its teams and sub-departments: printed (table) or as JSON. */
static json_t *show_dept(org_view *v, int i, int depth, bool as_json)
{
    const PGresult *d = v->depts, *t = v->teams;
    const char *id = PQgetvalue(d, i, D_ID), *dt = nullable(d, i, D_DEFAULT);
    json_t *o = NULL, *teams = NULL, *subs = NULL;

    v->shown[i] = true;
    if (as_json) {
        o = json_object();
        teams = json_array();
        subs = json_array();
        json_object_set_new(o, "id", json_string(id));
        json_object_set_new(o, "name", json_string(PQgetvalue(d, i, D_NAME)));
        json_object_set_new(o, "parent", json_nullable(d, i, D_PARENT));
        json_object_set_new(o, "dispatch_centre", json_boolean(PQgetvalue(d, i, D_CENTRE)[0] == 't'));
        json_object_set_new(o, "default_team", json_nullable(d, i, D_DEFAULT));
    } else {
        printf("%*s%s  %s%s%s%s\n", depth * 4, "", id, PQgetvalue(d, i, D_NAME),
               PQgetvalue(d, i, D_CENTRE)[0] == 't' ? "  [dispatch centre]" : "", dt ? "  default team " : "",
               dt ? dt : "");
    }
    for (int k = 0; k < PQntuples(t); k++) {
        if (strcmp(PQgetvalue(t, k, T_DEPT), id) != 0)
            continue;
        if (as_json) {
            json_array_append_new(teams, team_json(t, k));
            continue;
        }
        const char *of = nullable(t, k, T_OVERFLOW);
        char overflow[128] = "";
        if (of != NULL)
            snprintf(overflow, sizeof(overflow), ", overflow to %s after %s s", of, PQgetvalue(t, k, T_AFTER));
        printf("%*s  team %s  %s  (%s, major weight %s%s)  agents %s/%s, online %s, capacity %s\n", depth * 4, "",
               PQgetvalue(t, k, T_ID), PQgetvalue(t, k, T_NAME), PQgetvalue(t, k, T_STRATEGY),
               PQgetvalue(t, k, T_WEIGHT), overflow, PQgetvalue(t, k, T_ACTIVE), PQgetvalue(t, k, T_ALL),
               PQgetvalue(t, k, T_ONLINE), PQgetvalue(t, k, T_CAPACITY));
    }
    for (int k = 0; k < PQntuples(d); k++) {
        if (v->shown[k] || PQgetisnull(d, k, D_PARENT) || strcmp(PQgetvalue(d, k, D_PARENT), id) != 0)
            continue;
        json_t *sub = show_dept(v, k, depth + 1, as_json);
        if (as_json)
            json_array_append_new(subs, sub);
    }
    if (as_json) {
        json_object_set_new(o, "teams", teams);
        json_object_set_new(o, "departments", subs);
    }
    return o;
}

static bool parent_known(const PGresult *d, int i)
{
    if (PQgetisnull(d, i, D_PARENT))
        return false;
    for (int k = 0; k < PQntuples(d); k++)
        if (strcmp(PQgetvalue(d, k, D_ID), PQgetvalue(d, i, D_PARENT)) == 0)
            return true;
    return false;
}

static void show_rules_table(const PGresult *r)
{
    printf("\nrouting rules (first match wins; '-' matches anything)\n");
    if (PQntuples(r) == 0)
        printf("  none: every ticket goes to the dispatch centre's default team\n");
    else
        printf("  %4s  %-24s %-14s %-20s %-8s %-8s %-14s %s\n", "ORD", "NAME", "BUSINESS_TYPE", "CATEGORY^", "REGION^",
               "SEVERITY", "CHANNEL", "TEAM");
    for (int i = 0; i < PQntuples(r); i++) {
        const char *c[8];
        for (int k = 0; k < 8; k++)
            c[k] = PQgetisnull(r, i, k) ? "-" : PQgetvalue(r, i, k);
        printf("  %4s  %-24s %-14s %-20s %-8s %-8s %-14s %s\n", c[R_ORD], c[R_NAME], c[R_BT], c[R_CAT], c[R_REGION],
               c[R_SEVERITY], c[R_CHANNEL], c[R_TEAM]);
    }
}

static int org_show(const globals *g, bool as_json)
{
    PGconn *conn = db_connect(g);
    org_view v = {0};
    int rc = EXIT_ACK;

    if (conn == NULL)
        return EXIT_UNREACHABLE;
    v.depts = org_exec(conn,
                       "SELECT id, parent_id, name, dispatch_centre, default_team FROM departments"
                       " ORDER BY dispatch_centre DESC, id",
                       0, NULL);
    v.teams = v.depts == NULL ? NULL
                              : org_exec(conn,
                                         "SELECT t.id, t.department_id, t.name, t.strategy, t.overflow_team,"
                                         " t.overflow_after_s, t.major_weight,"
                                         " count(a.id) FILTER (WHERE a.active), count(a.id),"
                                         " count(a.id) FILTER (WHERE a.active AND p.status = 'online'"
                                         "  AND p.expires_at > now()),"
                                         " coalesce(sum(a.capacity) FILTER (WHERE a.active), 0)"
                                         " FROM teams t LEFT JOIN agents a ON a.team_id = t.id"
                                         " LEFT JOIN agent_presence p ON p.agent_id = a.id"
                                         " GROUP BY t.id ORDER BY t.id",
                                         0, NULL);
    v.rules = v.teams == NULL ? NULL
                              : org_exec(conn,
                                         "SELECT ord, name, business_type, category_prefix, region_prefix, severity,"
                                         " channel, team_id FROM routing_rules ORDER BY ord, name",
                                         0, NULL);
    v.limits = v.rules == NULL ? NULL
                               : org_exec(conn,
                                          "SELECT business_type, seconds, transferred_s FROM accept_limits"
                                          " ORDER BY business_type <> '*', business_type",
                                          0, NULL);
    if (v.limits == NULL) {
        rc = org_fail_rc(conn);
    } else {
        int nd = PQntuples(v.depts);
        json_t *out = as_json ? json_object() : NULL, *tree = as_json ? json_array() : NULL;
        v.shown = calloc((size_t)nd + 1, sizeof(bool));
        if (v.shown == NULL)
            abort();
        if (!as_json)
            printf("departments and teams (agents active/all, online now, capacity of the active ones)\n");
        if (nd == 0 && !as_json)
            printf("  none: load an organisation with 'redressctl org load FILE'\n");
        /* roots first, then whatever a cycle or a dangling parent left unprinted */
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < nd; i++) {
                if (v.shown[i] || (pass == 0 && parent_known(v.depts, i)))
                    continue;
                json_t *d = show_dept(&v, i, 0, as_json);
                if (as_json)
                    json_array_append_new(tree, d);
            }
        if (as_json) {
            json_t *rules = json_array(), *limits = json_object();
            for (int i = 0; i < PQntuples(v.rules); i++) {
                json_t *r = json_object();
                json_object_set_new(r, "ord", json_integer(atoi(PQgetvalue(v.rules, i, R_ORD))));
                json_object_set_new(r, "name", json_string(PQgetvalue(v.rules, i, R_NAME)));
                json_object_set_new(r, "business_type", json_nullable(v.rules, i, R_BT));
                json_object_set_new(r, "category", json_nullable(v.rules, i, R_CAT));
                json_object_set_new(r, "region", json_nullable(v.rules, i, R_REGION));
                json_object_set_new(r, "severity", json_nullable(v.rules, i, R_SEVERITY));
                json_object_set_new(r, "channel", json_nullable(v.rules, i, R_CHANNEL));
                json_object_set_new(r, "team", json_string(PQgetvalue(v.rules, i, R_TEAM)));
                json_array_append_new(rules, r);
            }
            for (int i = 0; i < PQntuples(v.limits); i++)
                json_object_set_new(limits, PQgetvalue(v.limits, i, 0),
                                    json_pack("{s:i, s:i}", "seconds", atoi(PQgetvalue(v.limits, i, 1)),
                                              "transferred_s", atoi(PQgetvalue(v.limits, i, 2))));
            json_object_set_new(out, "departments", tree);
            json_object_set_new(out, "routing", rules);
            json_object_set_new(out, "accept_limits", limits);
            json_dumpf(out, stdout, JSON_INDENT(2));
            putchar('\n');
            json_decref(out);
        } else {
            show_rules_table(v.rules);
            printf("\naccept limits (seconds to accept an assigned ticket; '*' is the default)\n");
            printf("  %-20s %8s %14s\n", "BUSINESS_TYPE", "SECONDS", "TRANSFERRED_S");
            for (int i = 0; i < PQntuples(v.limits); i++)
                printf("  %-20s %8s %14s\n", PQgetvalue(v.limits, i, 0), PQgetvalue(v.limits, i, 1),
                       PQgetvalue(v.limits, i, 2));
        }
        free(v.shown);
    }
    PQclear(v.depts);
    PQclear(v.teams);
    PQclear(v.rules);
    PQclear(v.limits);
    PQfinish(conn);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * org command
 * --------------------------------------------------------------------------------------------- */

static const struct option org_opts[] = {
    {"dry-run", no_argument, NULL, OPT_DRY_RUN_ORG},
    {"format", required_argument, NULL, OPT_FORMAT},
    GLOBAL_OPTIONS,
};

int cmd_org(globals *g, int argc, char **argv)
{
    cli p;
    bool dry_run = false, as_json = false, format = false;
    int c, rc = EXIT_ACK;

    cli_init(&p, "org", help_org, org_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c == OPT_DRY_RUN_ORG)
            dry_run = true;
        else if (!(format = parse_format("org", optarg, &as_json, &rc)))
            return rc;
    }
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("org", "wants a subcommand: load FILE, check FILE, or show");
    const char *sub = argv[optind];
    int nargs = argc - optind - 1;
    if (strcmp(sub, "load") != 0 && strcmp(sub, "check") != 0 && strcmp(sub, "show") != 0)
        return usage_error("org", "unknown subcommand '%s' (there are: load, check, show)", sub);
    if (dry_run && strcmp(sub, "load") != 0)
        return usage_error("org", "--dry-run is for 'org load'");
    if (format && strcmp(sub, "show") != 0)
        return usage_error("org", "--format is for 'org show'");
    if (strcmp(sub, "show") == 0)
        return nargs == 0 ? org_show(g, as_json) : usage_error("org", "show takes no arguments");
    if (nargs != 1)
        return usage_error("org", "%s wants exactly one FILE", sub);
    return strcmp(sub, "check") == 0 ? org_check(argv[optind + 1]) : org_load(g, argv[optind + 1], dry_run);
}

/* ------------------------------------------------------------------------------------------------
 * agent online|away|offline|list
 * --------------------------------------------------------------------------------------------- */

/* --redis, else $REDRESS_REDIS_URL, else the default; false after a usage error. */
static bool redis_addr(const char *cmd, const char *url, rd_redis_addr *a, int *rc)
{
    char err[300];
    const char *env = getenv("REDRESS_REDIS_URL");

    if (url == NULL)
        url = env != NULL && env[0] != '\0' ? env : DEFAULT_REDIS_URL;
    if (rd_redis_parse_url(url, a, err, sizeof(err)))
        return true;
    *rc = usage_error(cmd, "%s", err);
    return false;
}

static int redis_timeout(const globals *g)
{
    return g->timeout_ms < REDIS_TIMEOUT_MS ? g->timeout_ms : REDIS_TIMEOUT_MS;
}

static int agent_presence(const globals *g, const char *agent, const char *status, int ttl, const rd_redis_addr *ra)
{
    char ttl_s[16], err[300];
    const char *p[] = {agent, status, ttl_s};
    PGconn *conn = db_connect(g);
    PGresult *res;
    int rc;

    if (conn == NULL)
        return EXIT_UNREACHABLE;
    snprintf(ttl_s, sizeof(ttl_s), "%d", strcmp(status, "online") == 0 ? ttl : 0);
    /* one statement: the agent must exist, and presence is whatever we said last */
    res = org_exec(conn,
                   "INSERT INTO agent_presence AS p (agent_id, status, expires_at, updated_at)"
                   " SELECT a.id, $2, now() + make_interval(secs => $3::integer), now() FROM agents a"
                   " WHERE a.id = $1"
                   " ON CONFLICT (agent_id) DO UPDATE SET status = EXCLUDED.status, expires_at = EXCLUDED.expires_at,"
                   " updated_at = EXCLUDED.updated_at"
                   " RETURNING " ORG_TS("p.expires_at") ", (SELECT active FROM agents WHERE id = $1)",
                   3, p);
    if (res == NULL) {
        rc = org_fail_rc(conn);
        PQfinish(conn);
        return rc;
    }
    if (PQntuples(res) == 0) {
        fprintf(stderr, "error: unknown agent '%s' (agents come from 'redressctl org load')\n", agent);
        PQclear(res);
        PQfinish(conn);
        return EXIT_NACK;
    }
    if (PQgetvalue(res, 0, 1)[0] != 't')
        fprintf(stderr, "warning: agent '%s' is inactive: the dispatcher assigns it nothing whatever its presence\n",
                agent);
    if (strcmp(status, "online") == 0)
        printf("%s online until %s (send it again within %d s to stay online)\n", agent, PQgetvalue(res, 0, 0), ttl);
    else
        printf("%s %s\n", agent, status);
    PQclear(res);
    PQfinish(conn);

    rc = EXIT_ACK;
    redisContext *rc_ctx = rd_redis_connect(ra, redis_timeout(g), err, sizeof(err));
    if (rc_ctx == NULL || dp_presence_set(rc_ctx, agent, status, (int64_t)ttl * 1000, err, (int)sizeof(err)) < 0) {
        fprintf(stderr,
                "error: Redis: %s\nthe presence is stored in PostgreSQL only; the dispatcher copies it to Redis"
                " when it reconciles\n",
                err);
        rc = EXIT_UNREACHABLE;
    }
    if (rc_ctx != NULL)
        redisFree(rc_ctx);
    return rc;
}

/* Live load and capacity of each listed agent from Redis into load/cap ("" when absent); false
 * (with a note on stderr) when Redis cannot be asked. */
static bool agent_live(const globals *g, const rd_redis_addr *ra, const PGresult *res, char (*load)[24],
                       char (*cap)[24])
{
    char err[300];
    redisContext *c = rd_redis_connect(ra, redis_timeout(g), err, sizeof(err));
    bool ok = c != NULL;
    int n = PQntuples(res);

    for (int i = 0; ok && i < n; i++)
        ok = redisAppendCommand(c, "HGET %s %s", DP_KEY_LOAD, PQgetvalue(res, i, 0)) == REDIS_OK &&
             redisAppendCommand(c, "HGET %s %s", DP_KEY_CAP, PQgetvalue(res, i, 0)) == REDIS_OK;
    for (int i = 0; ok && i < 2 * n; i++) {
        redisReply *r = NULL;
        ok = redisGetReply(c, (void **)&r) == REDIS_OK && r != NULL &&
             (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL);
        if (ok)
            snprintf(i % 2 == 0 ? load[i / 2] : cap[i / 2], 24, "%.*s", r->type == REDIS_REPLY_STRING ? (int)r->len : 0,
                     r->type == REDIS_REPLY_STRING ? r->str : "");
        else
            snprintf(err, sizeof(err), "%s", r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        freeReplyObject(r);
    }
    if (!ok)
        fprintf(stderr, "note: Redis: %s: live load not shown\n", err);
    if (c != NULL)
        redisFree(c);
    return ok;
}

enum { L_ID, L_TEAM, L_NAME, L_ACTIVE, L_CAPACITY, L_PRESENCE, L_UNTIL };

static int agent_list(const globals *g, const char *team, bool as_json, const rd_redis_addr *ra)
{
    const char *p[] = {team != NULL ? team : ""};
    PGconn *conn = db_connect(g);
    PGresult *res = NULL;
    int rc = EXIT_ACK;

    if (conn == NULL)
        return EXIT_UNREACHABLE;
    if (team != NULL) {
        res = org_exec(conn, "SELECT 1 FROM teams WHERE id = $1", 1, p);
        if (res == NULL || PQntuples(res) == 0) {
            if (res != NULL)
                fprintf(stderr, "error: unknown team '%s'\n", team);
            rc = res == NULL ? org_fail_rc(conn) : EXIT_NACK;
            PQclear(res);
            PQfinish(conn);
            return rc;
        }
        PQclear(res);
    }
    res = org_exec(conn,
                   "SELECT a.id, a.team_id, a.name, a.active, a.capacity,"
                   " CASE WHEN p.agent_id IS NULL THEN 'offline'"
                   "  WHEN p.status = 'online' AND p.expires_at <= now() THEN 'expired' ELSE p.status END,"
                   " to_char(CASE WHEN p.status = 'online' AND p.expires_at > now() THEN p.expires_at END"
                   " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                   " FROM agents a LEFT JOIN agent_presence p ON p.agent_id = a.id"
                   " WHERE $1 = '' OR a.team_id = $1 ORDER BY a.team_id, a.id",
                   1, p);
    if (res == NULL) {
        rc = org_fail_rc(conn);
        PQfinish(conn);
        return rc;
    }
    PQfinish(conn);

    int n = PQntuples(res);
    char(*load)[24] = calloc((size_t)n + 1, sizeof(*load)), (*cap)[24] = calloc((size_t)n + 1, sizeof(*cap));
    if (load == NULL || cap == NULL)
        abort();
    bool live = n > 0 && agent_live(g, ra, res, load, cap);
    json_t *arr = as_json ? json_array() : NULL;

    if (!as_json)
        printf("%-20s %-16s %-6s %8s %10s  %-8s %-20s %s\n", "AGENT", "TEAM", "ACTIVE", "CAPACITY",
               live ? "LOAD/CAP" : "", "PRESENCE", "UNTIL", "NAME");
    for (int i = 0; i < n; i++) {
        const char *until = nullable(res, i, L_UNTIL);
        char lc[56] = "";
        if (live)
            snprintf(lc, sizeof(lc), "%s/%s", load[i][0] ? load[i] : "0", cap[i][0] ? cap[i] : "-");
        if (as_json) {
            json_t *o = json_object();
            json_object_set_new(o, "id", json_string(PQgetvalue(res, i, L_ID)));
            json_object_set_new(o, "team", json_string(PQgetvalue(res, i, L_TEAM)));
            json_object_set_new(o, "name", json_string(PQgetvalue(res, i, L_NAME)));
            json_object_set_new(o, "active", json_boolean(PQgetvalue(res, i, L_ACTIVE)[0] == 't'));
            json_object_set_new(o, "capacity", json_integer(atoi(PQgetvalue(res, i, L_CAPACITY))));
            json_object_set_new(o, "presence", json_string(PQgetvalue(res, i, L_PRESENCE)));
            json_object_set_new(o, "online_until", until ? json_string(until) : json_null());
            if (live) {
                json_object_set_new(o, "load", load[i][0] ? json_integer(atoll(load[i])) : json_integer(0));
                json_object_set_new(o, "redis_capacity", cap[i][0] ? json_integer(atoll(cap[i])) : json_null());
            }
            json_array_append_new(arr, o);
        } else {
            printf("%-20s %-16s %-6s %8s %10s  %-8s %-20s %s\n", PQgetvalue(res, i, L_ID), PQgetvalue(res, i, L_TEAM),
                   PQgetvalue(res, i, L_ACTIVE)[0] == 't' ? "yes" : "no", PQgetvalue(res, i, L_CAPACITY), lc,
                   PQgetvalue(res, i, L_PRESENCE), until ? until : "-", PQgetvalue(res, i, L_NAME));
        }
    }
    if (as_json) {
        json_dumpf(arr, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(arr);
    }
    free(load);
    free(cap);
    PQclear(res);
    return rc;
}

static const struct option agent_opts[] = {
    {"ttl", required_argument, NULL, OPT_TTL},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"team", required_argument, NULL, OPT_TEAM},
    {"format", required_argument, NULL, OPT_FORMAT},
    GLOBAL_OPTIONS,
};

int cmd_agent(globals *g, int argc, char **argv)
{
    cli p;
    const char *redis = NULL, *team = NULL, *ttl_arg = NULL;
    bool as_json = false, format = false;
    int c, rc = EXIT_ACK, ttl = DEFAULT_PRESENCE_TTL;
    rd_redis_addr ra;

    cli_init(&p, "agent", help_agent, agent_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c == OPT_TTL)
            ttl_arg = optarg;
        else if (c == OPT_REDIS)
            redis = optarg;
        else if (c == OPT_TEAM)
            team = optarg;
        else if (!(format = parse_format("agent", optarg, &as_json, &rc)))
            return rc;
    }
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("agent", "wants a subcommand: online|away|offline AGENT, or list");
    const char *sub = argv[optind];
    int nargs = argc - optind - 1;
    bool list = strcmp(sub, "list") == 0;
    if (!list && strcmp(sub, "online") != 0 && strcmp(sub, "away") != 0 && strcmp(sub, "offline") != 0)
        return usage_error("agent", "unknown subcommand '%s' (there are: online, away, offline, list)", sub);
    if (ttl_arg != NULL && strcmp(sub, "online") != 0)
        return usage_error("agent", "--ttl is for 'agent online'");
    if ((team != NULL || format) && !list)
        return usage_error("agent", "%s is for 'agent list'", team != NULL ? "--team" : "--format");
    if (ttl_arg != NULL) {
        char *end;
        errno = 0;
        long v = strtol(ttl_arg, &end, 10);
        if (errno != 0 || end == ttl_arg || *end != '\0' || v < 1 || v > MAX_PRESENCE_TTL)
            return usage_error("agent", "--ttl wants whole seconds from 1 to %d, not '%s'", MAX_PRESENCE_TTL, ttl_arg);
        ttl = (int)v;
    }
    if (!redis_addr("agent", redis, &ra, &rc))
        return rc;
    if (list)
        return nargs == 0 ? agent_list(g, team, as_json, &ra) : usage_error("agent", "list takes no arguments");
    if (nargs != 1)
        return usage_error("agent", "%s wants exactly one AGENT", sub);
    if (!id_valid(argv[optind + 1], true))
        return usage_error("agent", "'%s' is not an agent id (1 to 64 of A-Z a-z 0-9 _ . : - @)", argv[optind + 1]);
    return agent_presence(g, argv[optind + 1], sub, ttl, &ra);
}
