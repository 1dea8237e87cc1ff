/*
 * ctl_customer.c -- personal data (docs/privacy.md): redressctl customer show|erase, for a data
 * subject's access and erasure requests, and redressctl retention show|run, which applies the
 * retention policies (deploy/sql/0008_privacy_audit.sql).
 *
 * Erasure and retention are SECURITY DEFINER functions in the database
 * (privacy_erase_customer, privacy_apply_retention) that only members of redress_admin may call;
 * this file only calls them and reports. Every command here writes one audit_log record (show
 * too: reading a customer's personal data is an action worth knowing about).
 */
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redressctl.h"

enum { OPT_CU_ID = OPT_LOCAL, OPT_CU_YES, OPT_CU_JSON, OPT_CU_DRY_RUN, OPT_CU_BATCH };

/* clang-format off */
const char help_customer[] =
    "usage: redressctl customer show REF|--id UUID [--json]\n"
    "       redressctl customer erase REF|--id UUID [--yes]\n"
    "\n"
    "A customer's personal data (docs/privacy.md).\n"
    "\n"
    "  show    everything stored about the customer: name, phone, e-mail, and every ticket with its\n"
    "          text, attachments and history notes (a data subject access request); --json for a file\n"
    "  erase   the right to erasure: blanks name, phone and e-mail, replaces the customer ref by an\n"
    "          'erased:' token and the customer id by a random one (in every table), and replaces the\n"
    "          free text of the customer's tickets by [erased]. Reports do not change. Cannot be undone.\n"
    "          Asks for confirmation on a terminal; elsewhere it needs --yes.\n"
    "  --id UUID   the customer by its id instead of its ref\n"
    "\n"
    "erase needs a database login in role redress_admin (docs/privacy.md). Both commands are recorded\n"
    "in the audit log (redressctl audit).\n"
    "\n"
    "Exit status: 0 done, 1 no such customer or refused, 2 usage, 3 no database.\n"
    "\n"
    "Examples:\n"
    "  redressctl customer show C-1001 --json > dsar-C-1001.json\n"
    "  redressctl customer erase C-1001 --yes\n";

const char help_retention[] =
    "usage: redressctl retention show\n"
    "       redressctl retention run [--dry-run] [--batch N]\n"
    "\n"
    "Retention of closed tickets (table retention_policy; docs/privacy.md). A policy anonymises\n"
    "(free text redacted; the customer erased once none of its tickets is open or younger) or\n"
    "purges (tickets and their history, assignments, clocks deleted; reports keep their numbers)\n"
    "the tickets closed more than older_than_days ago. No policy is active until an operator\n"
    "activates one:  UPDATE retention_policy SET active = true, older_than_days = 1095\n"
    "                 WHERE id = 'anonymise-closed';\n"
    "\n"
    "  show          the policies and how many tickets each would take now\n"
    "  run           apply every active policy, in transactions of at most --batch tickets each\n"
    "    --dry-run   count what would be done, change nothing\n"
    "    --batch N   tickets per policy and transaction [1000]\n"
    "\n"
    "run needs a database login in role redress_admin; each batch is recorded in the audit log.\n"
    "Run it daily (cron or a systemd timer).\n"
    "\n"
    "Exit status: 0 done, 1 refused, 2 usage, 3 no database.\n";
/* clang-format on */

static const struct option customer_opts[] = {{"id", required_argument, NULL, OPT_CU_ID},
                                              {"yes", no_argument, NULL, OPT_CU_YES},
                                              {"json", no_argument, NULL, OPT_CU_JSON},
                                              GLOBAL_OPTIONS};
static const struct option retention_opts[] = {
    {"dry-run", no_argument, NULL, OPT_CU_DRY_RUN}, {"batch", required_argument, NULL, OPT_CU_BATCH}, GLOBAL_OPTIONS};

/* Prints why the database refused; returns the exit status for it. */
static int refused(PGconn *conn, PGresult *r, const char *what)
{
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int rc = EXIT_UNREACHABLE;
    if (st != NULL && strcmp(st, "42501") == 0) {
        fprintf(stderr,
                "error: %s: permission denied: this needs a database login in role redress_admin"
                " (see 'Roles' in docs/privacy.md); --dsn or REDRESS_PG_DSN chooses the login\n",
                what);
        rc = EXIT_NACK;
    } else if (st != NULL && (strcmp(st, "P0002") == 0 || strncmp(st, "22", 2) == 0)) {
        fprintf(stderr, "error: %s: %s", what, PQresultErrorMessage(r));
        rc = EXIT_NACK;
    } else {
        fprintf(stderr, "error: %s: %s", what, PQerrorMessage(conn));
    }
    PQclear(r);
    return rc;
}

static PGresult *query(PGconn *conn, const char *sql, int n, const char *const *params)
{
    return PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
}

/* ---- customer show ------------------------------------------------------------------------- */

#define CUSTOMER_SQL                                                                                                   \
    "SELECT c.id, c.customer_ref, COALESCE(c.name, ''), COALESCE(c.phone, ''), COALESCE(c.email, ''),"                 \
    "       c.created_at, COALESCE(c.erased_at::text, '')"                                                             \
    "  FROM customers c WHERE ($1::text IS NOT NULL AND c.customer_ref = $1) OR c.id = $2::uuid"

static int customer_show(const globals *g, const char *ref, const char *id, bool as_json)
{
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    const char *p2[2] = {ref, id};
    PGresult *c = query(conn, CUSTOMER_SQL, 2, p2);
    if (PQresultStatus(c) != PGRES_TUPLES_OK) {
        int rc = refused(conn, c, "customer show");
        PQfinish(conn);
        return rc;
    }
    if (PQntuples(c) == 0) {
        fprintf(stderr, "error: no customer %s %s\n", ref ? "with ref" : "with id", ref ? ref : id);
        PQclear(c);
        PQfinish(conn);
        return EXIT_NACK;
    }
    const char *cid[1] = {PQgetvalue(c, 0, 0)};
    /* every ticket with its texts, attachments and history as one JSON document per ticket */
    PGresult *t = query(
        conn,
        "SELECT jsonb_build_object('id', t.id, 'created_at', t.created_at, 'state', t.state, 'channel', t.channel,"
        "         'subject', t.subject, 'body', t.body, 'external_case_no', t.external_case_no,"
        "         'attachments', COALESCE((SELECT jsonb_agg(jsonb_build_object('uri', a.uri, 'media_type',"
        "              a.media_type, 'size_bytes', a.size_bytes) ORDER BY a.ord)"
        "              FROM ticket_attachments a WHERE a.ticket_id = t.id), '[]'),"
        "         'history', COALESCE((SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object('at', h.at, 'kind',"
        "              h.kind, 'actor', h.actor, 'to_state', h.to_state, 'note', NULLIF(h.note, ''), 'reason',"
        "              NULLIF(h.reason, ''))) ORDER BY h.seq) FROM ticket_history h WHERE h.ticket_id = t.id), '[]'))"
        "  FROM tickets t WHERE t.customer_id = $1::uuid ORDER BY t.created_at, t.id",
        1, cid);
    if (PQresultStatus(t) != PGRES_TUPLES_OK) {
        PQclear(c);
        int rc = refused(conn, t, "customer show");
        PQfinish(conn);
        return rc;
    }
    json_t *doc = json_object(), *tickets = json_array();
    static const char *const keys[] = {"id", "customer_ref", "name", "phone", "email", "created_at", "erased_at"};
    for (int k = 0; k < 7; k++)
        json_object_set_new(doc, keys[k], json_string(PQgetvalue(c, 0, k)));
    for (int i = 0; i < PQntuples(t); i++) {
        json_t *o = json_loads(PQgetvalue(t, i, 0), 0, NULL);
        if (o != NULL)
            json_array_append_new(tickets, o);
    }
    json_object_set_new(doc, "tickets", tickets);
    if (as_json) {
        char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s != NULL)
            puts(s);
        free(s);
    } else {
        printf("customer   %s\nref        %s\nname       %s\nphone      %s\ne-mail     %s\ncreated    %s\n",
               PQgetvalue(c, 0, 0), PQgetvalue(c, 0, 1), PQgetvalue(c, 0, 2), PQgetvalue(c, 0, 3), PQgetvalue(c, 0, 4),
               PQgetvalue(c, 0, 5));
        if (PQgetvalue(c, 0, 6)[0] != '\0')
            printf("erased     %s\n", PQgetvalue(c, 0, 6));
        printf("tickets    %zu\n", json_array_size(tickets));
        size_t i;
        json_t *o;
        json_array_foreach (tickets, i, o) {
            printf("\n%s  %s  %s  %s\n  subject: %s\n  body:    %s\n", json_string_value(json_object_get(o, "id")),
                   json_string_value(json_object_get(o, "created_at")), json_string_value(json_object_get(o, "state")),
                   json_string_value(json_object_get(o, "channel")), json_string_value(json_object_get(o, "subject")),
                   json_string_value(json_object_get(o, "body")));
            size_t j;
            json_t *h;
            json_array_foreach (json_object_get(o, "history"), j, h) {
                const char *note = json_string_value(json_object_get(h, "note"));
                const char *reason = json_string_value(json_object_get(h, "reason"));
                printf("  %s %-16s %-12s%s%s%s%s\n", json_string_value(json_object_get(h, "at")),
                       json_string_value(json_object_get(h, "kind")), json_string_value(json_object_get(h, "actor")),
                       note ? " note: " : "", note ? note : "", reason ? " reason: " : "", reason ? reason : "");
            }
        }
    }
    char details[64];
    snprintf(details, sizeof(details), "{\"tickets\": %zu}", json_array_size(tickets));
    ctl_audit_record(conn, g, "customer.show", "customer", PQgetvalue(c, 0, 0), details);
    json_decref(doc);
    PQclear(t);
    PQclear(c);
    PQfinish(conn);
    return EXIT_ACK;
}

/* ---- customer erase ------------------------------------------------------------------------ */

static bool confirm(const char *what)
{
    char line[16];
    fprintf(stderr, "erase customer %s and redact the text of its tickets? This cannot be undone. [y/N] ", what);
    fflush(stderr);
    if (fgets(line, sizeof(line), stdin) == NULL)
        return false;
    return line[0] == 'y' || line[0] == 'Y';
}

static int customer_erase(const globals *g, const char *ref, const char *id, bool yes)
{
    if (!yes) {
        if (!isatty(STDIN_FILENO))
            return usage_error("customer", "erase cannot be undone: pass --yes to confirm (no terminal to ask on)");
        if (!confirm(ref ? ref : id)) {
            fprintf(stderr, "nothing erased\n");
            return EXIT_NACK;
        }
    }
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    const char *p[4] = {ref, id, ctl_actor(), g->gateway};
    PGresult *r = query(conn,
                        "SELECT new_id, tickets, history_rows, already_erased"
                        "  FROM privacy_erase_customer($1::text, $2::uuid, $3::text, $4::text)",
                        4, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = refused(conn, r, "customer erase");
        PQfinish(conn);
        return rc;
    }
    if (PQgetvalue(r, 0, 3)[0] == 't')
        printf("customer %s was erased before; nothing to do\n", PQgetvalue(r, 0, 0));
    else
        printf("erased: customer is now %s; %s ticket%s and %s history row%s redacted\n", PQgetvalue(r, 0, 0),
               PQgetvalue(r, 0, 1), strcmp(PQgetvalue(r, 0, 1), "1") == 0 ? "" : "s", PQgetvalue(r, 0, 2),
               strcmp(PQgetvalue(r, 0, 2), "1") == 0 ? "" : "s");
    PQclear(r);
    PQfinish(conn);
    return EXIT_ACK;
}

int cmd_customer(globals *g, int argc, char **argv)
{
    cli p;
    const char *id = NULL;
    bool yes = false, as_json = false;
    int c, rc = EXIT_ACK;

    cli_init(&p, "customer", help_customer, customer_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c == OPT_CU_ID)
            id = optarg;
        else if (c == OPT_CU_YES)
            yes = true;
        else
            as_json = true;
    }
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("customer", "wants a subcommand: show or erase");
    const char *sub = argv[optind];
    int nargs = argc - optind - 1;
    const char *ref = nargs == 1 ? argv[optind + 1] : NULL;
    if (strcmp(sub, "show") != 0 && strcmp(sub, "erase") != 0)
        return usage_error("customer", "unknown subcommand '%s' (there are: show, erase)", sub);
    if (nargs > 1 || (ref == NULL) == (id == NULL))
        return usage_error("customer", "%s wants one customer: a REF or --id UUID", sub);
    if (ref != NULL && (ref[0] == '\0' || strlen(ref) > 256))
        return usage_error("customer", "a customer ref is 1 to 256 bytes");
    if (id != NULL && (strlen(id) != 36 || strspn(id, "0123456789abcdefABCDEF-") != 36))
        return usage_error("customer", "--id wants a UUID (36 characters), not '%s'", id);
    if (strcmp(sub, "show") == 0)
        return yes ? usage_error("customer", "--yes is for erase") : customer_show(g, ref, id, as_json);
    return as_json ? usage_error("customer", "--json is for show") : customer_erase(g, ref, id, yes);
}

/* ---- retention ----------------------------------------------------------------------------- */

static int retention_show(const globals *g)
{
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    PGresult *r = query(conn,
                        "SELECT p.id, p.action, p.older_than_days, p.active,"
                        "       (SELECT count(*) FROM tickets t WHERE t.state = 'closed'"
                        "           AND t.closed_at < now() - make_interval(days => p.older_than_days)"
                        "           AND (p.action = 'purge' OR t.redacted_at IS NULL))"
                        "  FROM retention_policy p ORDER BY p.id",
                        0, NULL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = refused(conn, r, "retention show");
        PQfinish(conn);
        return rc;
    }
    if (PQntuples(r) == 0)
        printf("no retention policies\n");
    for (int i = 0; i < PQntuples(r); i++)
        printf("%-24s %-9s closed more than %s days ago  %-8s %s ticket%s due\n", PQgetvalue(r, i, 0),
               PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3)[0] == 't' ? "ACTIVE" : "inactive",
               PQgetvalue(r, i, 4), strcmp(PQgetvalue(r, i, 4), "1") == 0 ? "" : "s");
    PQclear(r);
    PQfinish(conn);
    return EXIT_ACK;
}

#define MAX_POLICIES 64

static int retention_run(const globals *g, bool dry_run, const char *batch)
{
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    struct {
        char id[72], action[16];
        long long tickets, customers, skipped;
    } tot[MAX_POLICIES];
    memset(tot, 0, sizeof(tot));
    int npol = 0, rounds = 0;
    const char *p[4] = {batch, dry_run ? "t" : "f", ctl_actor(), g->gateway};
    for (;;) {
        PGresult *r = query(conn,
                            "SELECT policy, action, tickets, customers, skipped"
                            "  FROM privacy_apply_retention($1::integer, $2::boolean, $3::text, $4::text)",
                            4, p);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            int rc = refused(conn, r, "retention run");
            PQfinish(conn);
            return rc;
        }
        long long done = 0;
        for (int i = 0; i < PQntuples(r); i++) {
            int k;
            for (k = 0; k < npol && strcmp(tot[k].id, PQgetvalue(r, i, 0)) != 0; k++)
                ;
            if (k == npol && npol < MAX_POLICIES) {
                snprintf(tot[k].id, sizeof(tot[k].id), "%s", PQgetvalue(r, i, 0));
                snprintf(tot[k].action, sizeof(tot[k].action), "%s", PQgetvalue(r, i, 1));
                tot[k].tickets = tot[k].customers = tot[k].skipped = 0;
                npol++;
            }
            if (k == MAX_POLICIES)
                continue;
            long long n = atoll(PQgetvalue(r, i, 2));
            tot[k].tickets += n;
            tot[k].customers += atoll(PQgetvalue(r, i, 3));
            tot[k].skipped = atoll(PQgetvalue(r, i, 4)); /* the same tickets are looked at again */
            done += n;
        }
        PQclear(r);
        rounds++;
        if (dry_run || done == 0)
            break;
    }
    if (npol == 0)
        printf("no active retention policy (redressctl retention show; docs/privacy.md)\n");
    for (int k = 0; k < npol; k++) {
        printf("%s%-24s %-9s %lld ticket%s, %lld customer%s %s", dry_run ? "dry run: " : "", tot[k].id, tot[k].action,
               tot[k].tickets, tot[k].tickets == 1 ? "" : "s", tot[k].customers, tot[k].customers == 1 ? "" : "s",
               strcmp(tot[k].action, "purge") == 0 ? "deleted" : "erased");
        if (tot[k].skipped > 0)
            printf(" (%lld kept: referred to as the earlier ticket of a repeat or duplicate)", tot[k].skipped);
        putchar('\n');
    }
    if (!dry_run && npol > 0)
        printf("%d round%s\n", rounds, rounds == 1 ? "" : "s");
    PQfinish(conn);
    return EXIT_ACK;
}

int cmd_retention(globals *g, int argc, char **argv)
{
    cli p;
    const char *batch = "1000";
    bool dry_run = false;
    int c, rc = EXIT_ACK;

    cli_init(&p, "retention", help_retention, retention_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c == OPT_CU_DRY_RUN)
            dry_run = true;
        else
            batch = optarg;
    }
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("retention", "wants a subcommand: show or run");
    const char *sub = argv[optind];
    if (optind + 1 < argc)
        return usage_error("retention", "%s takes no arguments", sub);
    char *end;
    long b = strtol(batch, &end, 10);
    if (*end != '\0' || b < 1 || b > 1000000)
        return usage_error("retention", "--batch wants a number from 1 to 1000000, not '%s'", batch);
    if (strcmp(sub, "show") == 0)
        return dry_run ? usage_error("retention", "--dry-run is for run") : retention_show(g);
    if (strcmp(sub, "run") == 0)
        return retention_run(g, dry_run, batch);
    return usage_error("retention", "unknown subcommand '%s' (there are: show, run)", sub);
}
