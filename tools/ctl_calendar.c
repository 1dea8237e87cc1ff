/*
 * ctl_calendar.c -- redressctl calendar load|show: business calendars (business_calendars,
 * deploy/sql/0004_calendars.sql; format in docs/calendars.md).
 *
 * calendar load reads a file {"calendars": [...]} (deploy/config/calendars.example.json), checks
 * every calendar with the same parser the services use (common/rd_calendar: time zones, dates,
 * intervals), and stores each one in one transaction: new ones inserted, changed ones replaced,
 * equal ones left alone (loading a file twice changes nothing). Calendars the file does not have
 * are kept: agents (and, later, SLA policies) may name them. NOTIFY redress_org tells running
 * dispatchers.
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rd_calendar.h"
#include "redressctl.h"

enum { OPT_CAL_DRY_RUN = OPT_LOCAL };

/* clang-format off */
const char help_calendar[] =
    "usage: redressctl calendar load FILE [--dry-run]\n"
    "       redressctl calendar show\n"
    "\n"
    "Business calendars: working hours per weekday (split shifts), a time zone, public holidays and\n"
    "make-up working days (table business_calendars; the format is in docs/calendars.md).\n"
    "\n"
    "  load FILE     read {\"calendars\": [...]}, check every calendar (time zone, dates, hours),\n"
    "                then store them in one transaction; loading a file twice changes nothing.\n"
    "                Calendars the file does not have are kept. Running dispatchers reload.\n"
    "    --dry-run   check and compare, change nothing\n"
    "  show          every stored calendar, its time zone and how many agents work by it\n"
    "\n"
    "Agents follow a calendar when the organisation file names it (\"calendar\": \"ID\"): they are\n"
    "offered tickets only during its working hours (and while online).\n"
    "\n"
    "Exit status: 0 done, 1 refused (a bad file), 2 usage or unreadable file, 3 no database.\n"
    "\n"
    "Examples:\n"
    "  redressctl calendar load deploy/config/calendars.example.json\n"
    "  redressctl calendar show\n";
/* clang-format on */

static const struct option calendar_opts[] = {{"dry-run", no_argument, NULL, OPT_CAL_DRY_RUN}, GLOBAL_OPTIONS};

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

static int cal_load(const globals *g, const char *path, bool dry_run)
{
    char err[512];
    size_t len;
    char *text = read_all(path, &len, err, sizeof(err));
    if (text == NULL) {
        fprintf(stderr, "error: %s\n", err);
        return EXIT_USAGE;
    }
    rd_calendar_set *set = rd_calendar_set_parse(text, len, err, sizeof(err));
    json_t *doc = set ? json_loadb(text, len, 0, NULL) : NULL;
    free(text);
    if (set == NULL || doc == NULL) {
        fprintf(stderr, "error: %s: %s\n", path, set ? "not JSON" : err);
        rd_calendar_set_free(set);
        json_decref(doc);
        return EXIT_NACK;
    }
    PGconn *conn = db_connect(g);
    if (conn == NULL) {
        rd_calendar_set_free(set);
        json_decref(doc);
        return EXIT_UNREACHABLE;
    }
    int added = 0, changed = 0, kept = 0, rc = EXIT_ACK;
    PGresult *r = exec(conn, "BEGIN", 0, NULL, PGRES_COMMAND_OK);
    PQclear(r);
    json_t *arr = json_object_get(doc, "calendars");
    for (size_t i = 0; r != NULL && i < json_array_size(arr); i++) {
        const rd_calendar *c = rd_calendar_set_at(set, (int)i);
        char *body = json_dumps(json_array_get(arr, i), JSON_COMPACT);
        const char *p[4] = {rd_calendar_id(c), rd_calendar_name(c), rd_calendar_time_zone(c), body};
        r = exec(conn,
                 "INSERT INTO business_calendars AS b (id, name, time_zone, body) VALUES ($1, $2, $3, $4::jsonb)"
                 " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, time_zone = EXCLUDED.time_zone,"
                 "   body = EXCLUDED.body, loaded_at = now()"
                 " WHERE (b.name, b.time_zone, b.body) IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.time_zone,"
                 "   EXCLUDED.body)"
                 " RETURNING (xmax = 0)",
                 4, p, PGRES_TUPLES_OK);
        free(body);
        if (r == NULL)
            break;
        if (PQntuples(r) == 0)
            kept++;
        else if (PQgetvalue(r, 0, 0)[0] == 't')
            added++;
        else
            changed++;
        PQclear(r);
    }
    if (r == NULL) {
        rc = EXIT_NACK;
        PQclear(exec(conn, "ROLLBACK", 0, NULL, PGRES_COMMAND_OK));
    } else {
        if (!dry_run && added + changed > 0)
            PQclear(exec(conn, "NOTIFY redress_org", 0, NULL, PGRES_COMMAND_OK));
        bool logged = dry_run || ctl_audit_record(conn, g, "calendar.load", "calendar", path, NULL);
        r = exec(conn, dry_run || !logged ? "ROLLBACK" : "COMMIT", 0, NULL, PGRES_COMMAND_OK);
        rc = r == NULL ? EXIT_UNREACHABLE : logged ? EXIT_ACK : EXIT_NACK;
        PQclear(r);
        if (rc == EXIT_ACK)
            printf("%s%d calendars: %d added, %d changed, %d unchanged\n", dry_run ? "dry run, nothing stored: " : "",
                   rd_calendar_set_count(set), added, changed, kept);
    }
    PQfinish(conn);
    rd_calendar_set_free(set);
    json_decref(doc);
    return rc;
}

static int cal_show(const globals *g)
{
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    PGresult *r = exec(
        conn,
        "SELECT b.id, b.time_zone, b.name, to_char(b.loaded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        "       (SELECT count(*) FROM agents a WHERE a.calendar_id = b.id AND a.active)"
        "  FROM business_calendars b ORDER BY b.id",
        0, NULL, PGRES_TUPLES_OK);
    if (r == NULL) {
        PQfinish(conn);
        return EXIT_UNREACHABLE;
    }
    if (PQntuples(r) == 0)
        printf("no calendars (redressctl calendar load FILE)\n");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%-24s %-22s agents %-4s loaded %s  %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 4),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 2));
    PQclear(r);
    PQfinish(conn);
    return EXIT_ACK;
}

int cmd_calendar(globals *g, int argc, char **argv)
{
    cli p;
    bool dry_run = false;
    int c, rc = EXIT_ACK;

    cli_init(&p, "calendar", help_calendar, calendar_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0)
        dry_run = true; /* the only option of our own */
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("calendar", "wants a subcommand: load FILE, or show");
    const char *sub = argv[optind];
    int nargs = argc - optind - 1;
    if (strcmp(sub, "show") == 0)
        return nargs == 0 && !dry_run ? cal_show(g) : usage_error("calendar", "show takes no arguments");
    if (strcmp(sub, "load") != 0)
        return usage_error("calendar", "unknown subcommand '%s' (there are: load, show)", sub);
    if (nargs != 1)
        return usage_error("calendar", "load wants exactly one FILE");
    return cal_load(g, argv[optind + 1], dry_run);
}
