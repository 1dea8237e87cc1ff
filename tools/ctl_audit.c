/*
 * ctl_audit.c -- the audit log (audit_log, deploy/sql/0008_privacy_audit.sql; docs/privacy.md):
 * ctl_audit_record(), which every state-changing redressctl command calls once, and
 * `redressctl audit`, which reads the view audit_trail (operator actions and every ticket state
 * change: who, what, when, through which gateway).
 *
 * audit_log is append-only for the application role: the record is one INSERT, and the server
 * stamps the time and the database login itself.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redressctl.h"

enum { OPT_AUD_SINCE = OPT_LOCAL, OPT_AUD_FORMAT, OPT_AUD_LIMIT, OPT_AUD_OPS };

/* clang-format off */
const char help_audit[] =
    "usage: redressctl audit [--since WHEN] [--limit N] [--operator-only] [--format table|csv|json]\n"
    "\n"
    "The audit trail, oldest first: every operator action recorded in audit_log (customer erase,\n"
    "retention runs, org/rules/taxonomy/calendar loads, SLA acknowledgements, report rebuilds) and\n"
    "every ticket state change from ticket_history -- who, what, when, through which gateway.\n"
    "Notes and reasons (free text) are not shown; 'redressctl ticket show' has them.\n"
    "\n"
    "  --since WHEN       only entries at or after WHEN: a timestamp ('2026-11-01', '2026-11-01 08:00+08')\n"
    "                     or an interval back from now ('24 hours', '7 days') [24 hours]\n"
    "  --limit N          at most N entries, the most recent ones [1000]\n"
    "  --operator-only    only audit_log (operator and privileged actions), no ticket history\n"
    "  --format FMT       table (default), csv or json (one array)\n"
    "\n"
    "Exit status: 0 done, 2 usage, 3 no database.\n"
    "\n"
    "Examples:\n"
    "  redressctl audit --since '7 days' --operator-only\n"
    "  redressctl audit --since 2026-11-01 --format csv > audit.csv\n";
/* clang-format on */

static const struct option audit_opts[] = {{"since", required_argument, NULL, OPT_AUD_SINCE},
                                           {"format", required_argument, NULL, OPT_AUD_FORMAT},
                                           {"limit", required_argument, NULL, OPT_AUD_LIMIT},
                                           {"operator-only", no_argument, NULL, OPT_AUD_OPS},
                                           GLOBAL_OPTIONS};

const char *ctl_actor(void)
{
    const char *user = getenv("REDRESS_ACTOR");
    const struct passwd *pw;

    if (user == NULL || user[0] == '\0')
        user = getenv("USER");
    if (user != NULL && user[0] != '\0')
        return user;
    pw = getpwuid(getuid());
    return pw != NULL && pw->pw_name != NULL && pw->pw_name[0] != '\0' ? pw->pw_name : "redressctl";
}

bool ctl_audit_record(PGconn *conn, const globals *g, const char *action, const char *object_type,
                      const char *object_id, const char *details_json)
{
    const char *p[6] = {ctl_actor(),
                        action,
                        object_type != NULL ? object_type : "",
                        object_id != NULL ? object_id : "",
                        g->gateway != NULL ? g->gateway : "",
                        details_json != NULL ? details_json : "{}"};
    PGresult *r = PQexecParams(conn,
                               "INSERT INTO audit_log (actor, action, object_type, object_id, gateway_id, details)"
                               " VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
                               6, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "error: the audit log (audit_log, docs/privacy.md) refused the record of '%s': %s", action,
                PQerrorMessage(conn));
    PQclear(r);
    return ok;
}

static void csv_field(const char *s)
{
    if (strpbrk(s, ",\"\n\r") == NULL) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

int cmd_audit(globals *g, int argc, char **argv)
{
    cli p;
    const char *since = "24 hours", *format = "table", *limit = "1000";
    bool ops_only = false;
    int c, rc = EXIT_ACK;

    cli_init(&p, "audit", help_audit, audit_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c == OPT_AUD_SINCE)
            since = optarg;
        else if (c == OPT_AUD_FORMAT)
            format = optarg;
        else if (c == OPT_AUD_LIMIT)
            limit = optarg;
        else
            ops_only = true;
    }
    if (c == CLI_EXIT)
        return rc;
    if (optind < argc)
        return usage_error("audit", "takes no arguments ('%s')", argv[optind]);
    if (strcmp(format, "table") != 0 && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0)
        return usage_error("audit", "--format wants table, csv or json, not '%s'", format);
    char *end;
    long n = strtol(limit, &end, 10);
    if (*end != '\0' || n < 1 || n > 10000000)
        return usage_error("audit", "--limit wants a number from 1 to 10000000, not '%s'", limit);

    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    /* WHEN is a timestamp (it starts with a year), or else an interval back from now */
    bool stamp = strlen(since) >= 5 && strspn(since, "0123456789") == 4 && since[4] == '-';
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT to_char(x.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), x.actor, x.action,"
             "       x.object_type, x.object_id, x.gateway_id, x.details::text"
             "  FROM (SELECT * FROM audit_trail a"
             "         WHERE a.at >= %s AND (NOT $3::boolean OR a.source = 'audit_log')"
             "         ORDER BY a.at DESC, a.source, a.seq DESC LIMIT $2::bigint) x"
             " ORDER BY x.at, x.source, x.seq",
             stamp ? "$1::timestamptz" : "now() - $1::interval");
    const char *p3[3] = {since, limit, ops_only ? "t" : "f"};
    PGresult *r = PQexecParams(conn, sql, 3, NULL, p3, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool bad = st != NULL && strncmp(st, "22", 2) == 0;
        if (bad)
            rc = usage_error("audit", "--since wants a timestamp ('2026-11-01') or an interval ('7 days'), not '%s'",
                             since);
        else {
            fprintf(stderr, "error: reading the audit trail: %s", PQerrorMessage(conn));
            rc = EXIT_UNREACHABLE;
        }
        PQclear(r);
        PQfinish(conn);
        return rc;
    }
    static const char *const cols[] = {"at", "actor", "action", "object_type", "object_id", "gateway", "details"};
    int rows = PQntuples(r);
    if (strcmp(format, "json") == 0) {
        json_t *arr = json_array();
        for (int i = 0; i < rows; i++) {
            json_t *o = json_object();
            for (int k = 0; k < 6; k++)
                json_object_set_new(o, cols[k], json_string(PQgetvalue(r, i, k)));
            json_t *d = json_loads(PQgetvalue(r, i, 6), 0, NULL);
            json_object_set_new(o, "details", d != NULL ? d : json_object());
            json_array_append_new(arr, o);
        }
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s != NULL)
            puts(s);
        free(s);
        json_decref(arr);
    } else if (strcmp(format, "csv") == 0) {
        puts("at,actor,action,object_type,object_id,gateway,details");
        for (int i = 0; i < rows; i++) {
            for (int k = 0; k < 7; k++) {
                if (k > 0)
                    putchar(',');
                csv_field(PQgetvalue(r, i, k));
            }
            putchar('\n');
        }
    } else {
        if (rows == 0)
            printf("nothing in the audit trail since %s\n", since);
        else
            printf("%-24s %-16s %-24s %-8s %-36s %-12s %s\n", "AT (UTC)", "ACTOR", "ACTION", "OBJECT", "ID", "GATEWAY",
                   "DETAILS");
        for (int i = 0; i < rows; i++)
            printf("%-24s %-16s %-24s %-8s %-36s %-12s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
                   PQgetvalue(r, i, 6));
    }
    PQclear(r);
    PQfinish(conn);
    return EXIT_ACK;
}
