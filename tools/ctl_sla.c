/*
 * ctl_sla.c -- redressctl sla policies|escalations|ack|timeline: what supervisors and operators
 * see of the SLA clocks (deploy/sql/0005_escalation.sql; docs/escalation.md).
 *
 * Everything is read from PostgreSQL directly, like "ticket show". The only write is "ack": it
 * sets acknowledged_at and acknowledged_by on one escalation still unacknowledged, in a single
 * UPDATE whose WHERE clause makes two supervisors acknowledging at once safe (one wins, the other
 * is told who did it and when), with the supervisor's note.
 */
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "rd_envelope.h"
#include "redressctl.h"

enum { OPT_SLA_JSON = OPT_LOCAL, OPT_SLA_OPEN, OPT_SLA_ROLE, OPT_SLA_LIMIT, OPT_SLA_BY, OPT_SLA_NOTE };

/* Which options a subcommand takes: one bit per option, in the order of the enum above. */
#define SLA_BIT(opt) (1u << ((opt)-OPT_SLA_JSON))
static const char *const sla_opt_names[] = {"--json", "--open", "--role", "--limit", "--by", "--note"};

#define SLA_DEFAULT_LIMIT 50
#define SLA_MAX_LIMIT     100000
#define SLA_MAX_BY        256
#define SLA_MAX_NOTE      2000

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* clang-format off */
const char help_sla[] =
    "usage: redressctl sla policies [--json]\n"
    "       redressctl sla escalations [--open] [--role ROLE] [--limit N] [--json]\n"
    "       redressctl sla ack ESCALATION_ID --by WHO [--note TEXT]\n"
    "       redressctl sla timeline TICKET_ID [--json]\n"
    "\n"
    "SLA clocks and escalation, for supervisors and operators (docs/escalation.md). Read from\n"
    "PostgreSQL (--dsn); only ack writes.\n"
    "\n"
    "  policies        every SLA policy, active ones first: its clock, what it applies to, its\n"
    "                  target, calendar and warnings, and its escalation levels\n"
    "  escalations     escalations, newest first: ticket, clock, level, role, unit, action, when,\n"
    "                  and who acknowledged them\n"
    "    --open        only those nobody has acknowledged\n"
    "    --role ROLE   only those for team_lead, department_head or leadership\n"
    "    --limit N     at most N  [50]\n"
    "  ack ID          acknowledge escalation ID (the number escalations prints): sets\n"
    "                  acknowledged_at and acknowledged_by; refused if it does not exist or is\n"
    "                  already acknowledged\n"
    "    --by WHO      who acknowledges it (required; one line of at most 256 bytes)\n"
    "    --note TEXT   what was done (stored with the acknowledgement)\n"
    "  timeline TICKET_ID\n"
    "                  every SLA event of a ticket in time order: each clock's arming, then\n"
    "                  warnings, breaches, escalations, pauses, resumes, met and cancelled\n"
    "  --json          one JSON object instead of text (policies, escalations, timeline)\n"
    "\n"
    "Exit status: 0 done, 1 refused or not found, 2 usage, 3 no database.\n"
    "\n"
    "Examples:\n"
    "  redressctl sla policies\n"
    "  redressctl sla escalations --open --role leadership\n"
    "  redressctl sla ack 42 --by lead-wang --note '已电话督办'\n"
    "  redressctl sla timeline 0190f1d2-8a4e-7c41-9b1a-3c2d5e6f7a8b --json\n";
/* clang-format on */

static const struct option sla_opts[] = {
    {"json", no_argument, NULL, OPT_SLA_JSON},
    {"open", no_argument, NULL, OPT_SLA_OPEN},
    {"role", required_argument, NULL, OPT_SLA_ROLE},
    {"limit", required_argument, NULL, OPT_SLA_LIMIT},
    {"by", required_argument, NULL, OPT_SLA_BY},
    {"note", required_argument, NULL, OPT_SLA_NOTE},
    GLOBAL_OPTIONS,
};

typedef struct {
    unsigned seen; /* SLA_BIT of every option given */
    bool as_json, open;
    const char *role, *limit, *by, *note;
} sla_args;

static PGresult *exec(PGconn *conn, const char *sql, int n, const char *const *params, ExecStatusType want)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != want) {
        fprintf(stderr, "error: %s", PQerrorMessage(conn));
        PQclear(r);
        return NULL;
    }
    return r;
}

static const char *val(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col);
}

static json_t *json_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

static json_t *json_int(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_integer(strtoll(PQgetvalue(r, row, col), NULL, 10));
}

static json_t *json_bool(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_boolean(PQgetvalue(r, row, col)[0] == 't');
}

static void print_json(json_t *doc)
{
    json_dumpf(doc, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(doc);
}

/* A positive integer of at most max; false for anything else ("0", "-1", "1x", "", overflow). */
static bool parse_positive(const char *s, long long max, long long *out)
{
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

/* ---- policies ------------------------------------------------------------------------------ */

static const char *filter_text(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? "any" : val(r, row, col);
}

static const char *transferred_text(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return "any";
    return val(r, row, col)[0] == 't' ? "yes" : "no";
}

/* warn_pct as "50,80" -> [50, 80] */
static json_t *warn_json(const char *csv)
{
    json_t *a = json_array();
    for (const char *s = csv; *s != '\0';) {
        char *end;
        json_array_append_new(a, json_integer(strtol(s, &end, 10)));
        s = *end == ',' ? end + 1 : end + strlen(end);
    }
    return a;
}

/* The levels of policy id (lv is every level of every policy), as text or appended to arr. */
static int policy_levels(const PGresult *lv, const char *id, const char *unit, json_t *arr)
{
    int n = 0;
    for (int i = 0; i < PQntuples(lv); i++) {
        if (strcmp(val(lv, i, 0), id) != 0)
            continue;
        n++;
        if (arr != NULL) {
            json_t *o = json_object();
            json_object_set_new(o, "level", json_int(lv, i, 1));
            json_object_set_new(o, "after", json_int(lv, i, 2));
            json_object_set_new(o, "role", json_text(lv, i, 3));
            json_object_set_new(o, "action", json_text(lv, i, 4));
            json_array_append_new(arr, o);
        } else {
            printf("  level %s: after %s %s -> %s, %s\n", val(lv, i, 1), val(lv, i, 2), unit, val(lv, i, 3),
                   val(lv, i, 4));
        }
    }
    return n;
}

static void policies_text(const PGresult *p, const PGresult *lv)
{
    int n = PQntuples(p), active = 0;

    for (int i = 0; i < n; i++)
        active += val(p, i, 13)[0] == 't';
    if (n == 0) {
        printf("no SLA policies (they are rows of sla_policies: docs/escalation.md)\n");
        return;
    }
    printf("%d policies (%d active)\n", n, active);
    for (int i = 0; i < n; i++) {
        const char *unit = val(p, i, 9);
        printf("\n%s  %s%s\n", val(p, i, 0), val(p, i, 2), val(p, i, 13)[0] == 't' ? "" : "  [inactive]");
        if (val(p, i, 1)[0] != '\0')
            printf("  %s\n", val(p, i, 1));
        printf("  applies to: business_type %s, severity %s, channel %s, customer_tier %s, transferred %s\n",
               val(p, i, 3), filter_text(p, i, 4), filter_text(p, i, 5), filter_text(p, i, 6),
               transferred_text(p, i, 7));
        printf("  target %s %s, calendar %s", val(p, i, 8), unit,
               !PQgetisnull(p, i, 10)         ? val(p, i, 10)
               : strcmp(unit, "minutes") == 0 ? "none (calendar time)"
                                              : "escalation.calendar (the service's default)");
        if (val(p, i, 11)[0] == '\0')
            printf(", no warnings\n");
        else
            printf(", warnings at %s%%\n", val(p, i, 12));
        if (policy_levels(lv, val(p, i, 0), unit, NULL) == 0)
            printf("  no escalation levels\n");
    }
}

static void policies_json(const PGresult *p, const PGresult *lv)
{
    json_t *doc = json_object(), *arr = json_array();

    for (int i = 0; i < PQntuples(p); i++) {
        json_t *o = json_object(), *levels = json_array();
        json_object_set_new(o, "id", json_text(p, i, 0));
        json_object_set_new(o, "description", json_text(p, i, 1));
        json_object_set_new(o, "active", json_bool(p, i, 13));
        json_object_set_new(o, "clock", json_text(p, i, 2));
        json_object_set_new(o, "business_type", json_text(p, i, 3));
        json_object_set_new(o, "severity", json_text(p, i, 4));
        json_object_set_new(o, "channel", json_text(p, i, 5));
        json_object_set_new(o, "customer_tier", json_text(p, i, 6));
        json_object_set_new(o, "transferred", json_bool(p, i, 7));
        json_object_set_new(o, "target", json_int(p, i, 8));
        json_object_set_new(o, "unit", json_text(p, i, 9));
        json_object_set_new(o, "calendar", json_text(p, i, 10));
        json_object_set_new(o, "warn_pct", warn_json(val(p, i, 11)));
        json_object_set_new(o, "updated_at", json_text(p, i, 14));
        policy_levels(lv, val(p, i, 0), val(p, i, 9), levels);
        json_object_set_new(o, "levels", levels);
        json_array_append_new(arr, o);
    }
    json_object_set_new(doc, "count", json_integer(PQntuples(p)));
    json_object_set_new(doc, "policies", arr);
    print_json(doc);
}

static int sla_policies(const globals *g, bool as_json)
{
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    /* 0 id, 1 description, 2 clock, 3 business_type, 4 severity, 5 channel, 6 customer_tier,
     * 7 transferred, 8 target, 9 unit, 10 calendar_id, 11 warn_pct as "50,80", 12 warn_pct as
     * "50%, 80", 13 active, 14 updated_at */
    PGresult *p = exec(
        conn,
        "SELECT id, description, clock, business_type, severity, channel, customer_tier, transferred,"
        "       target, unit, calendar_id, array_to_string(warn_pct, ','),"
        "       array_to_string(warn_pct, '%, '), active, " TS("updated_at") " FROM sla_policies"
                                                                             " ORDER BY active DESC, id COLLATE \"C\"",
        0, NULL, PGRES_TUPLES_OK);
    PGresult *lv = p == NULL ? NULL
                             : exec(conn,
                                    "SELECT policy_id, level, after, role, action FROM sla_escalation_levels"
                                    " ORDER BY policy_id COLLATE \"C\", level",
                                    0, NULL, PGRES_TUPLES_OK);
    int rc = EXIT_UNREACHABLE;
    if (lv != NULL) {
        if (as_json)
            policies_json(p, lv);
        else
            policies_text(p, lv);
        rc = EXIT_ACK;
    }
    PQclear(p);
    PQclear(lv);
    PQfinish(conn);
    return rc;
}

/* ---- escalations --------------------------------------------------------------------------- */

static int sla_escalations(const globals *g, const sla_args *a, long long limit)
{
    char lim[24];
    snprintf(lim, sizeof(lim), "%lld", limit + 1); /* one more: says whether there are more */
    const char *params[3] = {a->open ? "t" : "f", a->role, lim};

    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    /* 0 id, 1 ticket_id, 2 clock, 3 level, 4 role, 5 target_unit, 6 action, 7 at, 8 acknowledged_at,
     * 9 acknowledged_by, 10 clock_id */
    PGresult *r = exec(conn,
                       "SELECT e.id, e.ticket_id, e.clock, e.level, e.role, e.target_unit, e.action, " TS(
                           "e.at") ","
                                   "       " TS("e.acknowledged_at") ", e.acknowledged_by, e.clock_id"
                                                                     "  FROM sla_escalations e"
                                                                     " WHERE (NOT $1::boolean OR e.acknowledged_at IS "
                                                                     "NULL) AND ($2::text IS NULL OR e.role = $2)"
                                                                     " ORDER BY e.at DESC, e.id DESC LIMIT $3::bigint",
                       3, params, PGRES_TUPLES_OK);
    if (r == NULL) {
        PQfinish(conn);
        return EXIT_UNREACHABLE;
    }
    int n = PQntuples(r);
    bool more = n > limit;
    if (more)
        n = (int)limit;
    if (a->as_json) {
        json_t *doc = json_object(), *arr = json_array();
        for (int i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "id", json_int(r, i, 0));
            json_object_set_new(o, "ticket_id", json_text(r, i, 1));
            json_object_set_new(o, "clock_id", json_int(r, i, 10));
            json_object_set_new(o, "clock", json_text(r, i, 2));
            json_object_set_new(o, "level", json_int(r, i, 3));
            json_object_set_new(o, "role", json_text(r, i, 4));
            json_object_set_new(o, "target_unit", json_text(r, i, 5));
            json_object_set_new(o, "action", json_text(r, i, 6));
            json_object_set_new(o, "at", json_text(r, i, 7));
            json_object_set_new(o, "acknowledged_at", json_text(r, i, 8));
            json_object_set_new(o, "acknowledged_by", json_text(r, i, 9));
            json_array_append_new(arr, o);
        }
        json_object_set_new(doc, "count", json_integer(n));
        json_object_set_new(doc, "more", json_boolean(more));
        json_object_set_new(doc, "escalations", arr);
        print_json(doc);
    } else {
        if (n == 0)
            printf("no %sescalations%s%s\n", a->open ? "open " : "", a->role ? " for " : "", a->role ? a->role : "");
        for (int i = 0; i < n; i++) {
            printf("#%s  %s  ticket %s  %s level %s -> %s%s%s (%s)", val(r, i, 0), val(r, i, 7), val(r, i, 1),
                   val(r, i, 2), val(r, i, 3), val(r, i, 4), val(r, i, 5)[0] ? " of " : "", val(r, i, 5), val(r, i, 6));
            if (PQgetisnull(r, i, 8))
                printf("  OPEN\n");
            else
                printf("  acknowledged %s by %s\n", val(r, i, 8), PQgetisnull(r, i, 9) ? "?" : val(r, i, 9));
        }
        if (more)
            printf("(the newest %lld; there are more: --limit N)\n", limit);
    }
    PQclear(r);
    PQfinish(conn);
    return EXIT_ACK;
}

/* ---- ack ----------------------------------------------------------------------------------- */

static int sla_ack(const globals *g, const char *id, const char *by, const char *note)
{
    const char *params[3] = {id, by, note ? note : ""};
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    /* One statement: of two supervisors acknowledging at once, exactly one updates the row. */
    PGresult *r = exec(conn,
                       "UPDATE sla_escalations SET acknowledged_at = now(), acknowledged_by = $2,"
                       "       acknowledged_note = $3"
                       " WHERE id = $1::bigint AND acknowledged_at IS NULL"
                       " RETURNING ticket_id, clock, level, role, target_unit, " TS("acknowledged_at"),
                       3, params, PGRES_TUPLES_OK);
    int rc = EXIT_UNREACHABLE;
    if (r != NULL && PQntuples(r) == 1) {
        printf("escalation %s acknowledged by %s at %s (ticket %s, %s level %s -> %s%s%s)\n", id, by, val(r, 0, 5),
               val(r, 0, 0), val(r, 0, 1), val(r, 0, 2), val(r, 0, 3), val(r, 0, 4)[0] ? " of " : "", val(r, 0, 4));
        if (note != NULL && note[0])
            printf("note: %s\n", note);
        ctl_audit_record(conn, g, "sla.ack", "escalation", id, NULL);
        rc = EXIT_ACK;
    } else if (r != NULL) {
        PQclear(r);
        r = exec(conn,
                 "SELECT coalesce(acknowledged_by, '?'), " TS("acknowledged_at") " FROM sla_escalations"
                                                                                 " WHERE id = $1::bigint",
                 1, params, PGRES_TUPLES_OK);
        if (r != NULL && PQntuples(r) == 0)
            fprintf(stderr, "error: there is no escalation %s (redressctl sla escalations lists them)\n", id);
        else if (r != NULL)
            fprintf(stderr, "error: escalation %s was already acknowledged by %s at %s; nothing changed\n", id,
                    val(r, 0, 0), val(r, 0, 1));
        rc = r != NULL ? EXIT_NACK : EXIT_UNREACHABLE;
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

/* ---- timeline ------------------------------------------------------------------------------ */

static int sla_timeline(const globals *g, const char *ticket, bool as_json)
{
    const char *params[1] = {ticket};
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    PGresult *t = exec(conn, "SELECT 1 FROM tickets WHERE id = $1::uuid", 1, params, PGRES_TUPLES_OK);
    /* In time order; at the same instant a clock's arming comes before its events. 0 clock_id,
     * 1 clock, 2 cycle, 3 kind, 4 level, 5 at, 6 recorded_at, 7 detail */
    PGresult *r = t == NULL || PQntuples(t) == 0
                      ? NULL
                      : exec(conn,
                             "SELECT clock_id, clock, cycle, kind, level, " TS("at") ", " TS(
                                 "recorded_at") ", detail"
                                                "  FROM sla_timeline WHERE ticket_id = $1::uuid"
                                                " ORDER BY at, kind <> 'armed', recorded_at, clock_id",
                             1, params, PGRES_TUPLES_OK);
    int rc = t == NULL ? EXIT_UNREACHABLE : EXIT_NACK;
    if (t != NULL && PQntuples(t) == 0)
        fprintf(stderr, "error: ticket %s not found\n", ticket);
    if (r != NULL) {
        rc = EXIT_ACK;
        int n = PQntuples(r);
        if (as_json) {
            json_t *doc = json_object(), *arr = json_array();
            for (int i = 0; i < n; i++) {
                json_t *o = json_object();
                json_object_set_new(o, "clock_id", json_int(r, i, 0));
                json_object_set_new(o, "clock", json_text(r, i, 1));
                json_object_set_new(o, "cycle", json_int(r, i, 2));
                json_object_set_new(o, "kind", json_text(r, i, 3));
                json_object_set_new(o, "level", json_int(r, i, 4));
                json_object_set_new(o, "at", json_text(r, i, 5));
                json_object_set_new(o, "recorded_at", json_text(r, i, 6));
                json_object_set_new(o, "detail", json_text(r, i, 7));
                json_array_append_new(arr, o);
            }
            json_object_set_new(doc, "ticket_id", json_string(ticket));
            json_object_set_new(doc, "count", json_integer(n));
            json_object_set_new(doc, "timeline", arr);
            print_json(doc);
        } else if (n == 0) {
            printf("ticket %s has no SLA clocks\n", ticket);
        }
        for (int i = 0; i < n && !as_json; i++) {
            char level[32] = "";
            const char *kind = val(r, i, 3);
            if (!PQgetisnull(r, i, 4))
                snprintf(level, sizeof(level), strcmp(kind, "warned") == 0 ? "%s%%" : "level %s", val(r, i, 4));
            const char *detail = val(r, i, 7);
            printf("%s  %-14s #%-3s ", val(r, i, 5), val(r, i, 1), val(r, i, 2));
            if (detail[0] != '\0')
                printf("%-10s %-8s %s\n", kind, level, detail);
            else if (level[0] != '\0')
                printf("%-10s %s\n", kind, level);
            else
                printf("%s\n", kind);
        }
    }
    PQclear(t);
    PQclear(r);
    PQfinish(conn);
    return rc;
}

/* ---- the command --------------------------------------------------------------------------- */

/* A usage error when an option was given that sub does not take. */
static int check_options(const char *sub, unsigned seen, unsigned allowed)
{
    for (size_t i = 0; i < sizeof(sla_opt_names) / sizeof(sla_opt_names[0]); i++)
        if ((seen & ~allowed) & (1u << i))
            return usage_error("sla", "%s does not take %s", sub, sla_opt_names[i]);
    return EXIT_ACK;
}

static int sla_run(globals *g, const char *sub, int nargs, char **args, const sla_args *a)
{
    if (strcmp(sub, "policies") == 0) {
        if (check_options(sub, a->seen, SLA_BIT(OPT_SLA_JSON)) != EXIT_ACK)
            return EXIT_USAGE;
        return nargs == 0 ? sla_policies(g, a->as_json) : usage_error("sla", "policies takes no arguments");
    }
    if (strcmp(sub, "escalations") == 0) {
        long long limit = SLA_DEFAULT_LIMIT;
        if (check_options(sub, a->seen,
                          SLA_BIT(OPT_SLA_JSON) | SLA_BIT(OPT_SLA_OPEN) | SLA_BIT(OPT_SLA_ROLE) |
                              SLA_BIT(OPT_SLA_LIMIT)) != EXIT_ACK)
            return EXIT_USAGE;
        if (nargs != 0)
            return usage_error("sla", "escalations takes no arguments");
        if (a->role != NULL && strcmp(a->role, "team_lead") != 0 && strcmp(a->role, "department_head") != 0 &&
            strcmp(a->role, "leadership") != 0)
            return usage_error("sla", "--role wants team_lead, department_head or leadership, not '%s'", a->role);
        if (a->limit != NULL && !parse_positive(a->limit, SLA_MAX_LIMIT, &limit))
            return usage_error("sla", "--limit wants a number from 1 to %d, not '%s'", SLA_MAX_LIMIT, a->limit);
        return sla_escalations(g, a, limit);
    }
    if (strcmp(sub, "ack") == 0) {
        long long id;
        if (check_options(sub, a->seen, SLA_BIT(OPT_SLA_BY) | SLA_BIT(OPT_SLA_NOTE)) != EXIT_ACK)
            return EXIT_USAGE;
        if (nargs != 1)
            return usage_error("sla", "ack wants exactly one ESCALATION_ID");
        if (!parse_positive(args[0], INT64_MAX, &id))
            return usage_error("sla", "'%s' is not an escalation id (a positive integer)", args[0]);
        if (a->by == NULL)
            return usage_error("sla", "ack wants --by WHO");
        if (a->by[0] == '\0' || strlen(a->by) > SLA_MAX_BY || !rd_text_valid(a->by, strlen(a->by), false))
            return usage_error("sla", "--by wants a name (one line of at most %d bytes)", SLA_MAX_BY);
        if (a->note != NULL && (strlen(a->note) > SLA_MAX_NOTE || !rd_text_valid(a->note, strlen(a->note), true)))
            return usage_error("sla", "--note wants text (UTF-8, at most %d bytes)", SLA_MAX_NOTE);
        char idbuf[24];
        snprintf(idbuf, sizeof(idbuf), "%lld", id);
        return sla_ack(g, idbuf, a->by, a->note);
    }
    if (strcmp(sub, "timeline") == 0) {
        uuid_t u;
        if (check_options(sub, a->seen, SLA_BIT(OPT_SLA_JSON)) != EXIT_ACK)
            return EXIT_USAGE;
        if (nargs != 1)
            return usage_error("sla", "timeline wants exactly one TICKET_ID");
        if (uuid_parse(args[0], u) != 0)
            return usage_error("sla", "'%s' is not a ticket id (a UUID)", args[0]);
        return sla_timeline(g, args[0], a->as_json);
    }
    return usage_error("sla", "unknown subcommand '%s' (there are: policies, escalations, ack, timeline)", sub);
}

int cmd_sla(globals *g, int argc, char **argv)
{
    cli p;
    sla_args a = {0};
    int c, rc = EXIT_ACK;

    cli_init(&p, "sla", help_sla, sla_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c < OPT_SLA_JSON || c > OPT_SLA_NOTE)
            continue; /* cli_next returns no other codes */
        a.seen |= SLA_BIT(c);
        if (c == OPT_SLA_JSON)
            a.as_json = true;
        else if (c == OPT_SLA_OPEN)
            a.open = true;
        else if (c == OPT_SLA_ROLE)
            a.role = optarg;
        else if (c == OPT_SLA_LIMIT)
            a.limit = optarg;
        else if (c == OPT_SLA_BY)
            a.by = optarg;
        else
            a.note = optarg;
    }
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("sla",
                           "wants a subcommand: policies, escalations, ack ESCALATION_ID, or timeline TICKET_ID");
    return sla_run(g, argv[optind], argc - optind - 1, argv + optind + 1, &a);
}
