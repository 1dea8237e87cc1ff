/*
 * ctl_keys.c -- `redressctl keys`: gateway CURVE keys and permissions (docs/security.md).
 *
 *   generate [--out FILE]   a new key pair (zmq_curve_keypair); the secret goes to FILE (mode
 *                           600, never overwritten), the public key to stdout
 *   public FILE             the public key of a secret key file
 *   register GATEWAY KEY    allow KEY for GATEWAY, creating the gateway or changing its
 *                           permissions (--events, --channels, --any-ticket ...)
 *   revoke KEY | --gateway G
 *   list [--format ...]
 *
 * Writes go to the tables gateways and gateway_keys (deploy/sql/0007_gateway_auth.sql), whose
 * triggers NOTIFY intake: a registration or revocation takes effect within moments, without a
 * restart. Secret keys never touch the database.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "rd_auth.h"
#include "redressctl.h"

enum {
    OPT_K_OUT = OPT_LOCAL,
    OPT_K_EVENTS,
    OPT_K_CHANNELS,
    OPT_K_ANY,
    OPT_K_OWN,
    OPT_K_DESC,
    OPT_K_NOT_AFTER,
    OPT_K_FORMAT,
    OPT_K_ENABLE,
    OPT_K_DISABLE,
    OPT_K_NOTE
};

/* clang-format off */
const char help_keys[] =
    "usage: redressctl keys generate [--out FILE]\n"
    "       redressctl keys public FILE\n"
    "       redressctl keys register GATEWAY PUBLIC_KEY [--events LIST] [--channels LIST]\n"
    "                                [--any-ticket | --own-tickets] [--description TEXT]\n"
    "                                [--not-after WHEN] [--note TEXT] [--enable | --disable]\n"
    "       redressctl keys revoke PUBLIC_KEY | --gateway GATEWAY\n"
    "       redressctl keys list [--format table|csv|json]\n"
    "\n"
    "CURVE keys of the gateways that may reach intake (intake.auth = curve) and what each gateway\n"
    "may send. Changes reach every running intake within moments (NOTIFY), no restart needed.\n"
    "\n"
    "  generate      a new key pair: the secret key goes to FILE (created with mode 600, never\n"
    "                overwritten) and the public key is printed; without --out the key file's\n"
    "                text is printed instead (redirect it to a file nobody else can read)\n"
    "  public        print the public key of a secret key file\n"
    "  register      allow PUBLIC_KEY for GATEWAY. A new gateway gets --events '*' --channels '*'\n"
    "                and acts only on its own tickets unless told otherwise; for a known gateway\n"
    "                only the permissions given are changed. A gateway may hold several keys at\n"
    "                once: register the new key, switch the gateway over, revoke the old one.\n"
    "  revoke        stop accepting a key (or every key of --gateway): new connections with it\n"
    "                are refused, and so is every further frame on connections already open\n"
    "  list          gateways, their keys and permissions\n"
    "\n"
    "  --events LIST     comma-separated: new_ticket and action names (accept, reply, transfer,\n"
    "                    return, resolve, close, reopen, wait_customer, resume, chase,\n"
    "                    return_visit), or '*'\n"
    "  --channels LIST   channels new tickets may come in on (hotline, web, email, app, walk_in,\n"
    "                    regulator, mayor_hotline, social_media, postal, fax, referral), or '*'\n"
    "  --any-ticket      may act on tickets other gateways created (an agent desktop)\n"
    "  --own-tickets     may act only on tickets it created (the default for a new gateway)\n"
    "  --not-after WHEN  the key expires then (a timestamp, e.g. '2027-01-01 00:00+08')\n"
    "  --enable, --disable  let the gateway in, or refuse every key of it\n"
    "\n"
    "Exit status: 0 done, 1 refused (unknown or revoked key, key of another gateway), 2 usage,\n"
    "3 no database.\n"
    "\n"
    "Examples:\n"
    "  redressctl keys generate --out /etc/redress/cti-1.key\n"
    "  redressctl keys register cti-1 \"$(redressctl keys public /etc/redress/cti-1.key)\" \\\n"
    "      --events new_ticket,chase --channels hotline\n"
    "  redressctl keys register desk-1 KEY --events 'accept,reply,transfer,return,resolve,close' --any-ticket\n"
    "  redressctl keys revoke --gateway cti-1\n";
/* clang-format on */

static const struct option keys_opts[] = {{"out", required_argument, NULL, OPT_K_OUT},
                                          {"events", required_argument, NULL, OPT_K_EVENTS},
                                          {"channels", required_argument, NULL, OPT_K_CHANNELS},
                                          {"any-ticket", no_argument, NULL, OPT_K_ANY},
                                          {"own-tickets", no_argument, NULL, OPT_K_OWN},
                                          {"description", required_argument, NULL, OPT_K_DESC},
                                          {"not-after", required_argument, NULL, OPT_K_NOT_AFTER},
                                          {"format", required_argument, NULL, OPT_K_FORMAT},
                                          {"enable", no_argument, NULL, OPT_K_ENABLE},
                                          {"disable", no_argument, NULL, OPT_K_DISABLE},
                                          {"note", required_argument, NULL, OPT_K_NOTE},
                                          GLOBAL_OPTIONS};

typedef struct {
    const char *out, *events, *channels, *description, *not_after, *format, *note;
    int any; /* -1 unchanged, 0 own tickets only, 1 any ticket */
    int enabled;
    bool gateway_given;
} keys_args;

/* ---- generate, public ---------------------------------------------------------------------- */

static int keys_generate(const char *out)
{
    char pub[RD_Z85_KEY_LEN + 1], sec[RD_Z85_KEY_LEN + 1];

    if (zmq_curve_keypair(pub, sec) != 0) {
        fprintf(stderr, "error: cannot make a CURVE key pair: %s (is libzmq built with libsodium?)\n",
                zmq_strerror(errno));
        return EXIT_NACK;
    }
    char text[256];
    snprintf(text, sizeof(text),
             "# Redress CURVE secret key: keep it private (mode 600); give only the public key away.\n"
             "# public key: %s\n%s\n",
             pub, sec);
    if (out == NULL) {
        fputs(text, stdout);
        return EXIT_ACK;
    }
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        fprintf(stderr, "error: cannot create %s: %s%s\n", out, strerror(errno),
                errno == EEXIST ? " (a key file is never overwritten: choose another name or remove it first)" : "");
        return EXIT_NACK;
    }
    size_t len = strlen(text);
    bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "error: cannot write %s: %s\n", out, strerror(errno));
        unlink(out);
        return EXIT_NACK;
    }
    printf("%s\n", pub);
    return EXIT_ACK;
}

static int keys_public(const char *path)
{
    char sec[RD_Z85_KEY_LEN + 1], pub[RD_Z85_KEY_LEN + 1], err[512];

    if (!rd_curve_secret_load(path, sec, pub, err, sizeof(err))) {
        fprintf(stderr, "error: %s\n", err);
        return EXIT_NACK;
    }
    printf("%s\n", pub);
    return EXIT_ACK;
}

/* ---- register ------------------------------------------------------------------------------ */

static bool gateway_id_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > RD_MAX_GATEWAY_BYTES)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

/* A permission list as a PostgreSQL array literal of canonical names ("{new_ticket,accept}"). */
static bool perm_array(const char *list, bool events, char *out, size_t outlen, char *err, int errlen)
{
    uint32_t mask;
    char names[256];

    if (!(events ? rd_auth_parse_events(list, &mask, err, errlen) : rd_auth_parse_channels(list, &mask, err, errlen)))
        return false;
    if (events)
        rd_auth_format_events(mask, names, sizeof(names));
    else
        rd_auth_format_channels(mask, names, sizeof(names));
    snprintf(out, outlen, "{%s}", names);
    return true;
}

static PGresult *exec_params(PGconn *conn, const char *sql, int n, const char *const *p)
{
    return PQexecParams(conn, sql, n, NULL, p, NULL, NULL, 0);
}

static bool tx_end(PGconn *conn, bool commit)
{
    PGresult *r = PQexec(conn, commit ? "COMMIT" : "ROLLBACK");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok && commit)
        fprintf(stderr, "error: %s", PQerrorMessage(conn));
    PQclear(r);
    return ok;
}

/* The key is already there: fine when it is a valid key of the same gateway, else say why not. */
static int key_exists(PGconn *conn, const char *gateway, const char *key)
{
    const char *p[1] = {key};
    PGresult *r =
        exec_params(conn, "SELECT gateway_id, revoked_at IS NOT NULL FROM gateway_keys WHERE public_key = $1", 1, p);
    int rc = EXIT_NACK;

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fprintf(stderr, "error: %s", PQerrorMessage(conn));
    else if (strcmp(PQgetvalue(r, 0, 0), gateway) != 0)
        fprintf(stderr, "error: this key is already registered to gateway %s; every gateway needs a key of its own\n",
                PQgetvalue(r, 0, 0));
    else if (PQgetvalue(r, 0, 1)[0] == 't')
        fprintf(stderr, "error: this key was revoked and cannot be used again; make a new one with "
                        "'redressctl keys generate'\n");
    else
        rc = EXIT_ACK;
    PQclear(r);
    return rc;
}

static int keys_register(const globals *g, const char *gateway, const char *key, const keys_args *a)
{
    char ev[600], ch[600], err[300];

    if (!gateway_id_valid(gateway))
        return usage_error("keys",
                           "GATEWAY must be 1 to %d letters, digits, '.', '_' or '-', as in the envelopes' "
                           "gateway_id",
                           RD_MAX_GATEWAY_BYTES);
    if (!rd_z85_key_valid(key))
        return usage_error("keys",
                           "PUBLIC_KEY must be a 40-character Z85 CURVE public key (redressctl keys public "
                           "FILE prints the one of a key file), not '%.60s'",
                           key);
    if (a->events != NULL && !perm_array(a->events, true, ev, sizeof(ev), err, sizeof(err)))
        return usage_error("keys", "--events: %s", err);
    if (a->channels != NULL && !perm_array(a->channels, false, ch, sizeof(ch), err, sizeof(err)))
        return usage_error("keys", "--channels: %s", err);

    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    const char *pg[6] = {gateway,
                         a->description,
                         a->events != NULL ? ev : NULL,
                         a->channels != NULL ? ch : NULL,
                         a->any < 0 ? NULL : (a->any ? "t" : "f"),
                         a->enabled < 0 ? NULL : (a->enabled ? "t" : "f")};
    const char *pk[4] = {key, gateway, a->not_after, a->note};
    int rc = EXIT_NACK;
    PGresult *r = PQexec(conn, "BEGIN");
    PQclear(r);
    r = exec_params(conn,
                    "INSERT INTO gateways AS g (gateway_id, description, allowed_events, allowed_channels,"
                    "                           act_on_any_ticket, enabled)"
                    " VALUES ($1, COALESCE($2, ''), COALESCE($3::text[], '{*}'), COALESCE($4::text[], '{*}'),"
                    "         COALESCE($5::boolean, false), COALESCE($6::boolean, true))"
                    " ON CONFLICT (gateway_id) DO UPDATE SET"
                    "   description = COALESCE($2, g.description),"
                    "   allowed_events = COALESCE($3::text[], g.allowed_events),"
                    "   allowed_channels = COALESCE($4::text[], g.allowed_channels),"
                    "   act_on_any_ticket = COALESCE($5::boolean, g.act_on_any_ticket),"
                    "   enabled = COALESCE($6::boolean, g.enabled), updated_at = now()"
                    " RETURNING array_to_string(allowed_events, ','), array_to_string(allowed_channels, ','),"
                    "           act_on_any_ticket, enabled",
                    6, pg);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "error: cannot store gateway %s: %s", gateway, PQerrorMessage(conn));
        PQclear(r);
        tx_end(conn, false);
        PQfinish(conn);
        return EXIT_NACK;
    }
    char shown[1200];
    snprintf(shown, sizeof(shown), "events %s; channels %s; %s%s", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
             PQgetvalue(r, 0, 2)[0] == 't' ? "acts on any ticket" : "acts on its own tickets only",
             PQgetvalue(r, 0, 3)[0] == 't' ? "" : "; DISABLED");
    PQclear(r);
    /* a valid key of the same gateway: --not-after and --note change it; anything else is
     * refused by key_exists() with the reason */
    r = exec_params(conn,
                    "INSERT INTO gateway_keys AS k (public_key, gateway_id, not_after, note)"
                    " VALUES ($1, $2, $3::timestamptz, COALESCE($4, ''))"
                    " ON CONFLICT (public_key) DO UPDATE SET not_after = COALESCE($3::timestamptz, k.not_after),"
                    "   note = COALESCE($4, k.note)"
                    " WHERE k.gateway_id = EXCLUDED.gateway_id AND k.revoked_at IS NULL"
                    " RETURNING xmax = 0",
                    4, pk);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "error: cannot store the key: %s", PQerrorMessage(conn));
    } else {
        bool inserted = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
        rc = PQntuples(r) == 1 ? EXIT_ACK : key_exists(conn, gateway, key);
        if (rc == EXIT_ACK)
            printf("%s key %.8s... for gateway %s (%s)\n", inserted ? "registered" : "already registered:", key,
                   gateway, shown);
    }
    PQclear(r);
    if (!tx_end(conn, rc == EXIT_ACK))
        rc = EXIT_NACK;
    if (rc == EXIT_ACK) {
        char details[200];
        snprintf(details, sizeof(details), "{\"key_prefix\": \"%.8s\"}", key);
        /* the audit record must never hold Z85 text that JSON would need escaped: the prefix is
         * the first 8 characters, and Z85 has no '"' or '\\' */
        ctl_audit_record(conn, g, "keys.register", "gateway", gateway, details);
    }
    PQfinish(conn);
    return rc;
}

/* ---- revoke -------------------------------------------------------------------------------- */

static int keys_revoke(const globals *g, const char *target, bool by_gateway)
{
    if (!by_gateway && !rd_z85_key_valid(target))
        return usage_error("keys", "revoke wants a 40-character Z85 public key, or --gateway GATEWAY");
    if (by_gateway && !gateway_id_valid(target))
        return usage_error("keys", "--gateway wants a gateway id");
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    const char *p[1] = {target};
    PGresult *r = exec_params(conn,
                              by_gateway ? "UPDATE gateway_keys SET revoked_at = now()"
                                           " WHERE gateway_id = $1 AND revoked_at IS NULL RETURNING public_key"
                                         : "UPDATE gateway_keys SET revoked_at = now()"
                                           " WHERE public_key = $1 AND revoked_at IS NULL RETURNING gateway_id",
                              1, p);
    int rc = EXIT_NACK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "error: %s", PQerrorMessage(conn));
    } else if (PQntuples(r) > 0) {
        rc = EXIT_ACK;
        if (by_gateway)
            printf("revoked %d key(s) of gateway %s\n", PQntuples(r), target);
        else
            printf("revoked key %.8s... of gateway %s\n", target, PQgetvalue(r, 0, 0));
    } else {
        PQclear(r);
        r = exec_params(conn,
                        by_gateway ? "SELECT count(*) FROM gateways WHERE gateway_id = $1"
                                   : "SELECT count(*) FROM gateway_keys WHERE public_key = $1",
                        1, p);
        bool known = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "0") != 0;
        if (known) {
            printf(by_gateway ? "gateway %s has no valid key left: nothing to revoke\n"
                              : "key %.8s... was already revoked\n",
                   target);
            rc = EXIT_ACK;
        } else {
            fprintf(stderr,
                    by_gateway ? "error: no gateway %s (redressctl keys list shows them)\n"
                               : "error: no key %.8s... is registered (redressctl keys list shows them)\n",
                    target);
        }
    }
    PQclear(r);
    if (rc == EXIT_ACK)
        ctl_audit_record(conn, g, "keys.revoke", by_gateway ? "gateway" : "gateway_key", by_gateway ? target : "",
                         NULL);
    PQfinish(conn);
    return rc;
}

/* ---- list ---------------------------------------------------------------------------------- */

static const char *const list_cols[] = {"gateway", "enabled",    "events",     "channels",  "any_ticket",
                                        "key",     "key_status", "created_at", "not_after", "revoked_at"};
#define LIST_NCOLS (sizeof(list_cols) / sizeof(list_cols[0]))

static void csv_cell(const char *s)
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

static int keys_list(const globals *g, const char *format)
{
    bool csv = strcmp(format, "csv") == 0, json = strcmp(format, "json") == 0;

    if (!csv && !json && strcmp(format, "table") != 0)
        return usage_error("keys", "--format wants table, csv or json, not '%s'", format);
    PGconn *conn = db_connect(g);
    if (conn == NULL)
        return EXIT_UNREACHABLE;
    PGresult *r = PQexec(
        conn, "SELECT g.gateway_id, g.enabled::text, array_to_string(g.allowed_events, ','),"
              "       array_to_string(g.allowed_channels, ','), g.act_on_any_ticket::text, COALESCE(k.public_key, ''),"
              "       CASE WHEN k.public_key IS NULL THEN 'none' WHEN k.revoked_at IS NOT NULL THEN 'revoked'"
              "            WHEN k.not_after <= now() THEN 'expired' WHEN NOT g.enabled THEN 'gateway_disabled'"
              "            ELSE 'valid' END,"
              "       COALESCE(to_char(k.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
              "       COALESCE(to_char(k.not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
              "       COALESCE(to_char(k.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
              "  FROM gateways g LEFT JOIN gateway_keys k ON k.gateway_id = g.gateway_id"
              " ORDER BY g.gateway_id, k.created_at, k.public_key");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "error: %s", PQerrorMessage(conn));
        PQclear(r);
        PQfinish(conn);
        return EXIT_NACK;
    }
    int n = PQntuples(r);
    if (json) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) {
            json_t *o = json_object();
            for (size_t c = 0; c < LIST_NCOLS; c++) {
                const char *v = PQgetvalue(r, i, (int)c);
                json_t *jv = (c == 1 || c == 4) ? json_boolean(v[0] == 't') : v[0] ? json_string(v) : json_null();
                json_object_set_new(o, list_cols[c], jv);
            }
            json_array_append_new(arr, o);
        }
        char *s = json_dumps(arr, JSON_INDENT(2));
        puts(s ? s : "[]");
        free(s);
        json_decref(arr);
    } else if (csv) {
        for (size_t c = 0; c < LIST_NCOLS; c++)
            printf("%s%s", c ? "," : "", list_cols[c]);
        putchar('\n');
        for (int i = 0; i < n; i++) {
            for (size_t c = 0; c < LIST_NCOLS; c++) {
                if (c)
                    putchar(',');
                csv_cell(PQgetvalue(r, i, (int)c));
            }
            putchar('\n');
        }
    } else {
        printf("%-20s %-8s %-40s %-16s %-24s %-24s %s\n", "GATEWAY", "ANY", "KEY", "STATUS", "EVENTS", "CHANNELS",
               "CREATED");
        for (int i = 0; i < n; i++)
            printf("%-20s %-8s %-40s %-16s %-24s %-24s %s\n", PQgetvalue(r, i, 0),
                   PQgetvalue(r, i, 4)[0] == 't' ? "yes" : "no", PQgetvalue(r, i, 5)[0] ? PQgetvalue(r, i, 5) : "-",
                   PQgetvalue(r, i, 6), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 7));
        if (n == 0)
            printf("(no gateways registered: redressctl keys register GATEWAY KEY)\n");
    }
    PQclear(r);
    PQfinish(conn);
    return EXIT_ACK;
}

/* ---- the command --------------------------------------------------------------------------- */

static bool keys_option(keys_args *a, int c)
{
    switch (c) {
    case OPT_K_OUT:
        a->out = optarg;
        return true;
    case OPT_K_EVENTS:
        a->events = optarg;
        return true;
    case OPT_K_CHANNELS:
        a->channels = optarg;
        return true;
    case OPT_K_ANY:
    case OPT_K_OWN:
        a->any = c == OPT_K_ANY;
        return true;
    case OPT_K_DESC:
        a->description = optarg;
        return true;
    case OPT_K_NOT_AFTER:
        a->not_after = optarg;
        return true;
    case OPT_K_FORMAT:
        a->format = optarg;
        return true;
    case OPT_K_ENABLE:
    case OPT_K_DISABLE:
        a->enabled = c == OPT_K_ENABLE;
        return true;
    case OPT_K_NOTE:
        a->note = optarg;
        return true;
    default:
        return false;
    }
}

/* A CURVE key that getopt would take for options: Z85 text starting with '-' that is not one of
 * our long options (those are shorter, or hold '=' after an option name). */
static bool looks_like_dash_key(const char *s)
{
    if (s[0] != '-' || !rd_z85_key_valid(s))
        return false;
    if (s[1] != '-')
        return true;
    size_t n = strcspn(s + 2, "=");
    for (const struct option *o = keys_opts; o->name != NULL; o++)
        if (strlen(o->name) == n && strncmp(o->name, s + 2, n) == 0)
            return false;
    return true;
}

int cmd_keys(globals *g, int argc, char **argv)
{
    cli p;
    keys_args a = {.any = -1, .enabled = -1, .format = "table"};
    const char *gateway_before = g->gateway;
    int c, rc = EXIT_ACK;

    /* a Z85 key may begin with '-': move keys behind "--" so getopt never takes one for options */
    char *av[argc + 2];
    int n = 0, nkeys = 0;
    for (int i = 0; i < argc; i++)
        if (i == 0 || !looks_like_dash_key(argv[i]))
            av[n++] = argv[i];
    av[n++] = "--";
    for (int i = 1; i < argc; i++)
        if (looks_like_dash_key(argv[i])) {
            av[n++] = argv[i];
            nkeys++;
        }
    if (nkeys == 0)
        n--; /* no "--" needed */
    argc = n;
    argv = av;
    cli_init(&p, "keys", help_keys, keys_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0)
        if (!keys_option(&a, c))
            return usage_error("keys", "unexpected option");
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("keys", "wants a subcommand: generate, public, register, revoke or list");
    const char *sub = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    if (strcmp(sub, "generate") == 0)
        return nargs == 0 ? keys_generate(a.out) : usage_error("keys", "generate takes no arguments (see --out)");
    if (strcmp(sub, "public") == 0)
        return nargs == 1 ? keys_public(args[0]) : usage_error("keys", "public wants exactly one key FILE");
    if (strcmp(sub, "register") == 0)
        return nargs == 2 ? keys_register(g, args[0], args[1], &a)
                          : usage_error("keys", "register wants GATEWAY and PUBLIC_KEY");
    if (strcmp(sub, "revoke") == 0) {
        /* --gateway is also the global option (the gateway id events are sent as): for revoke it
         * names the gateway whose keys go, when given on the command line */
        bool by_gateway = g->gateway != gateway_before;
        if (by_gateway && nargs == 0)
            return keys_revoke(g, g->gateway, true);
        if (!by_gateway && nargs == 1)
            return keys_revoke(g, args[0], false);
        return usage_error("keys", "revoke wants PUBLIC_KEY or --gateway GATEWAY (one of them)");
    }
    if (strcmp(sub, "list") == 0)
        return nargs == 0 ? keys_list(g, a.format) : usage_error("keys", "list takes no arguments");
    return usage_error("keys", "unknown subcommand '%s' (there are: generate, public, register, revoke, list)", sub);
}
