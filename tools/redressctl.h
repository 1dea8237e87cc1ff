/*
 * redressctl.h -- what the command files of redressctl share: exit codes, global options, option
 * parsing and the PostgreSQL connection. redressctl.c has main() and the ticket commands; each
 * further command family lives in a file of its own (ctl_org.c, ctl_taxonomy.c, ctl_report.c).
 */
#ifndef REDRESSCTL_H
#define REDRESSCTL_H

#include <getopt.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#define EXIT_ACK         0
#define EXIT_NACK        1
#define EXIT_USAGE       2
#define EXIT_UNREACHABLE 3

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:7401"
#define DEFAULT_GATEWAY  "redressctl"
#define DEFAULT_DSN      "host=127.0.0.1 port=55432 dbname=redress user=redress"
#define MAX_ATTEMPT_MS   3000 /* resend a single request after this long without an answer */
#define CSV_ERRORS_SHOWN 10   /* a CSV replay prints its first NACKs, then only counts them */

typedef struct {
    const char *endpoint, *gateway, *dsn;
    int timeout_ms;
} globals;

/* Global option codes; command files number their own options from OPT_LOCAL upwards. */
enum { OPT_ENDPOINT = 1000, OPT_GATEWAY, OPT_DSN, OPT_TIMEOUT, OPT_LOCAL = 3000 };

/* Every command accepts the global options too, before or after its own. Ends an option table. */
/* clang-format off */
#define GLOBAL_OPTIONS                                  \
    {"endpoint", required_argument, NULL, OPT_ENDPOINT}, \
    {"gateway", required_argument, NULL, OPT_GATEWAY},   \
    {"dsn", required_argument, NULL, OPT_DSN},           \
    {"timeout", required_argument, NULL, OPT_TIMEOUT},   \
    {"help", no_argument, NULL, 'h'},                    \
    {NULL, 0, NULL, 0}
/* clang-format on */

#define CLI_END  (-1)
#define CLI_EXIT (-2)

typedef struct {
    const char *cmd;  /* for messages: "submit", "ticket show" */
    const char *help; /* printed for -h / --help */
    const char *optstring;
    const struct option *opts;
    int argc;
    char **argv;
    globals *g;
} cli;

int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads a whole file ('-' = standard input) into a NUL-terminated buffer; NULL + err on failure. */
char *read_all(const char *path, size_t *len, char *err, size_t errlen);
/* Starts parsing argv (argv[0] is the command's name). */
void cli_init(cli *p, const char *cmd, const char *help, const struct option *opts, int argc, char **argv, globals *g);
/* The next option of the command: CLI_END after the last, CLI_EXIT with *rc set to stop. */
int cli_next(cli *p, int *rc);
/* Connects with the global --timeout and UTF-8 client encoding; NULL after printing the error. */
PGconn *db_connect(const globals *g);

/* Command families in their own files. */
extern const char help_org[], help_agent[], help_taxonomy[], help_calendar[], help_sla[], help_report[];
int cmd_org(globals *g, int argc, char **argv);
int cmd_agent(globals *g, int argc, char **argv);
int cmd_taxonomy(globals *g, int argc, char **argv);
int cmd_calendar(globals *g, int argc, char **argv);
int cmd_sla(globals *g, int argc, char **argv);
int cmd_report(globals *g, int argc, char **argv);
/* Gateway CURVE keys and permissions (ctl_keys.c; docs/security.md). */
extern const char help_keys[];
int cmd_keys(globals *g, int argc, char **argv);
/* Personal data and the audit log (ctl_customer.c, ctl_audit.c; docs/privacy.md). */
extern const char help_customer[], help_retention[], help_audit[];
int cmd_customer(globals *g, int argc, char **argv);
int cmd_retention(globals *g, int argc, char **argv);
int cmd_audit(globals *g, int argc, char **argv);
/* Who runs redressctl: $REDRESS_ACTOR, else $USER, else the account's name. */
const char *ctl_actor(void);
/* One audit_log row for a state-changing command (action 'org.load', object, details: a JSON
 * object); prints why and returns false if the database refused it. Loads call it inside their
 * transaction, so a load and its record commit together. */
bool ctl_audit_record(PGconn *conn, const globals *g, const char *action, const char *object_type,
                      const char *object_id, const char *details_json);

#endif
