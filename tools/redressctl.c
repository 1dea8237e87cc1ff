/*
 * redressctl -- the operator's and the simple gateway's command line.
 *
 *   redressctl submit ...        send a NewTicket (flags, a JSON file, or a whole CFPB CSV)
 *   redressctl act ID KIND ...   send a TicketAction
 *   redressctl ticket show ID    read a ticket and its history straight from PostgreSQL
 *   redressctl rules load|show|check   the classifier's operator rules (rd_rules) in PostgreSQL
 *
 * Sending goes through rd_client, so the CLI retries exactly like a real gateway: the same bytes
 * are resent after a timeout and busy answers are retried after their hint, which is safe because
 * intake de-duplicates by (gateway, event id). Reading goes to PostgreSQL directly rather than
 * through a service: it is the operator's view of the truth, and it keeps working when intake is
 * down.
 *
 * Exit codes are part of the interface (scripts branch on them): 0 ACK / found, 1 NACK or not
 * found, 2 usage error, 3 no answer (intake or PostgreSQL unreachable).
 *
 * Text is passed through byte for byte: whatever UTF-8 goes in (Chinese included) is what intake
 * stores and what "ticket show" prints; JSON output is not ASCII-escaped.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "rd_cfpb.h"
#include "rd_client.h"
#include "rd_config.h"
#include "rd_envelope.h"
#include "rd_rules.h"
#include "rd_service.h"
#include "rd_time.h"
#include "redressctl.h"

/* Option codes above the char range; -h is the only short option. */
enum {
    OPT_CHANNEL = 1100,
    OPT_CUSTOMER,
    OPT_NAME,
    OPT_PHONE,
    OPT_EMAIL,
    OPT_REGION,
    OPT_LANGUAGE,
    OPT_SUBJECT,
    OPT_BODY,
    OPT_BODY_FILE,
    OPT_ORGANISATION,
    OPT_PRODUCT,
    OPT_VIP,
    OPT_CASE_NO,
    OPT_ATTACHMENT,
    OPT_EVENT_ID,
    OPT_OCCURRED_AT,
    OPT_JSON,
    OPT_CSV,
    OPT_LIMIT,
    OPT_WINDOW,
    OPT_RATE,
    OPT_PREFIX,
    OPT_ACTOR,
    OPT_NOTE,
    OPT_REASON,
    OPT_TARGET_UNIT,
    OPT_SATISFACTION,
    OPT_AS_JSON,
    OPT_WITH_CUSTOMER,
    OPT_DRY_RUN,
    OPT_BY,
};

/* ------------------------------------------------------------------------------------------------
 * Help
 * --------------------------------------------------------------------------------------------- */

static const char help_main[] =
    "usage: redressctl [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Commands:\n"
    "  submit        send a new complaint (from flags, a JSON file, or a CFPB CSV replay)\n"
    "  act           send an action on an existing ticket (accept, reply, transfer, ...)\n"
    "  ticket show   print a ticket and its history from PostgreSQL\n"
    "  rules         the classifier's rules: load FILE, show, check FILE\n"
    "  org           the organisation the dispatcher routes to: load FILE, check FILE, show\n"
    "  agent         agents' presence: online|away|offline AGENT, list\n"
    "  taxonomy      the category tree: load FILE.csv, show\n"
    "  calendar      business calendars (working hours, holidays): load FILE, show\n"
    "  sla           SLA policies, escalations (ack), a ticket's SLA timeline\n"
    "  report        KPIs: daily, monthly, agents, monthly-saved; rebuild, status\n"
    "  customer      a customer's personal data: show (access request), erase (right to erasure)\n"
    "  retention     retention policies of closed tickets: show, run\n"
    "  audit         the audit trail: operator actions and ticket state changes\n"
    "  keys          gateway CURVE keys: generate, register, revoke, list (docs/security.md)\n"
    "  help COMMAND  the help of one command (same as COMMAND --help)\n"
    "\n"
    "Global options (also accepted after the command):\n"
    "  --endpoint URL    intake endpoint(s), comma-separated  [$REDRESS_INTAKE_ENDPOINT,\n"
    "                    " DEFAULT_ENDPOINT "]\n"
    "  --gateway ID      gateway id events are sent as        [$REDRESS_GATEWAY_ID, " DEFAULT_GATEWAY "]\n"
    "  --dsn DSN         PostgreSQL connection string         [$REDRESS_PG_DSN,\n"
    "                    " DEFAULT_DSN "]\n"
    "  --timeout SECONDS give up waiting after this long      [10]\n"
    "  CURVE (intake.auth = curve): $REDRESS_CURVE_SERVER_KEY (intake's public key) and\n"
    "                    $REDRESS_CURVE_CLIENT_KEY_FILE (this gateway's secret key file)\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit status: 0 ACK or found, 1 NACK or not found, 2 usage error, 3 no answer / unreachable.\n"
    "\n"
    "Examples:\n"
    "  redressctl submit --channel web --customer C-1001 --subject 'Card blocked'\n"
    "  redressctl act 0190f1d2-8a4e-7c41-9b1a-3c2d5e6f7a8b accept --actor agent-7\n"
    "  redressctl ticket show 0190f1d2-8a4e-7c41-9b1a-3c2d5e6f7a8b\n"
    "  redressctl rules load deploy/config/rules.default.json\n";

static const char help_submit[] =
    "usage: redressctl submit --channel NAME --customer REF (--subject TEXT | --body TEXT) [FIELDS]\n"
    "       redressctl submit --json FILE\n"
    "       redressctl submit --csv FILE [--limit N] [--window N] [--rate R] [--prefix P]\n"
    "\n"
    "Sends a NewTicket and prints the ticket id (a note goes to stderr when intake already had\n"
    "the event: a replay). Intake checks the fields; a refusal prints 'error: CODE: message (field)'.\n"
    "\n"
    "Fields:\n"
    "  --channel NAME       hotline | web | email | app | walk_in | regulator | mayor_hotline |\n"
    "                       social_media | postal | fax | referral\n"
    "  --customer REF       the customer's account / phone / id at the source\n"
    "  --name, --phone, --email TEXT   personal data, stored apart from the ticket\n"
    "  --region TEXT        e.g. CN-44-03 or US-FL-330\n"
    "  --language TAG       BCP 47, e.g. zh-CN or en\n"
    "  --subject TEXT\n"
    "  --body TEXT          or --body-file PATH ('-' reads standard input)\n"
    "  --organisation TEXT, --product TEXT, --case-no TEXT\n"
    "  --vip\n"
    "  --attachment URI:SHA256HEX:SIZE   repeatable\n"
    "  --event-id ID        the idempotency key (default: a random UUID)\n"
    "  --occurred-at WHEN   when it happened: epoch ms, 2026-11-23 or 2026-11-23T09:12:01Z (default: now)\n"
    "\n"
    "Sending the same --event-id again is answered from the ledger (a replay) only when the event\n"
    "is the same in every field, --occurred-at included; otherwise intake says CONFLICT.\n"
    "\n"
    "--json FILE ('-' for standard input): an object with the NewTicket field names (channel,\n"
    "customer_ref, customer_name, customer_phone, customer_email, region, language, subject, body,\n"
    "organisation, product, vip, external_case_no, attachments: [{uri, sha256 (hex), size,\n"
    "media_type}]) plus optional event_id and occurred_at_ms; or an array of such objects, which\n"
    "prints one 'EVENT_ID TICKET_ID' line per ACK.\n"
    "\n"
    "--csv FILE replays a CFPB complaints CSV, pipelined, and prints a summary:\n"
    "  --limit N     the first N rows only\n"
    "  --window N    requests in flight at most [64]\n"
    "  --rate R      offer R events per second, latency counted from each scheduled time\n"
    "                [0: as fast as the window allows]\n"
    "  --prefix P    event id prefix, so the same rows can be sent again as new events [cfpb-]\n"
    "  --timeout is then how long each event may take.\n"
    "\n"
    "Examples:\n"
    "  redressctl submit --channel hotline --customer 13800138000 --name 张三 \\\n"
    "      --subject '停电投诉' --body '小区停电超过 8 小时' --region CN-44-03 --language zh-CN\n"
    "  echo 'long text' | redressctl submit --channel email --customer a@b.c --body-file -\n"
    "  redressctl submit --json ticket.json\n"
    "  redressctl submit --csv complaints.csv --limit 1000 --window 128 --rate 500 --prefix run2-\n";

static const char help_act[] =
    "usage: redressctl act TICKET_ID KIND --actor A [--note TEXT] [--reason TEXT] [--target-unit UNIT]\n"
    "                      [--satisfaction N] [--event-id ID] [--occurred-at WHEN]\n"
    "\n"
    "Sends a TicketAction and prints the ticket's state after it.\n"
    "\n"
    "KIND: accept | reply | transfer | return | resolve | close | reopen | wait_customer | resume |\n"
    "      chase | return_visit\n"
    "  transfer and return need --reason and --target-unit; reopen needs --reason;\n"
    "  return_visit needs --satisfaction 1..5; chase takes the customer ref as --actor.\n"
    "  --event-id ID        the idempotency key (default: a random UUID)\n"
    "  --occurred-at WHEN   epoch ms, 2026-11-23 or 2026-11-23T09:12:01Z (default: now)\n"
    "\n"
    "Examples:\n"
    "  redressctl act 0190f1d2-8a4e-7c41-9b1a-3c2d5e6f7a8b accept --actor agent-7\n"
    "  redressctl act 0190f1d2-8a4e-7c41-9b1a-3c2d5e6f7a8b transfer --actor agent-7 \\\n"
    "      --reason '属于计量问题' --target-unit metering\n"
    "  redressctl act 0190f1d2-8a4e-7c41-9b1a-3c2d5e6f7a8b return_visit --actor agent-9 --satisfaction 5\n";

static const char help_ticket[] =
    "usage: redressctl ticket show TICKET_ID [--json] [--with-customer]\n"
    "\n"
    "Prints a ticket (state, channel, classification, owner, times), its attachments and its full\n"
    "history in order, read from PostgreSQL (--dsn). The customer's personal data is left out\n"
    "unless --with-customer is given.\n"
    "\n"
    "  --json            one JSON object instead of text\n"
    "  --with-customer   include the customer's reference, name, phone and e-mail\n"
    "\n"
    "Examples:\n"
    "  redressctl ticket show 0190f1d2-8a4e-7c41-9b1a-3c2d5e6f7a8b\n"
    "  redressctl --dsn 'host=db dbname=redress' ticket show 0190f1d2-8a4e-7c41-9b1a-3c2d5e6f7a8b --json\n";

static const char help_rules[] =
    "usage: redressctl rules load FILE [--dry-run] [--by WHO]\n"
    "       redressctl rules show [--json]\n"
    "       redressctl rules check FILE\n"
    "\n"
    "The classifier's operator rules: a JSON document (see deploy/config/rules.default.json and\n"
    "docs/classifier.md) whose rules override the trained model. FILE may be '-' (standard input).\n"
    "\n"
    "  check FILE   validate only, no database: prints 'ok N rules version V', or the first\n"
    "               mistake with the rule's number and name ('rule 3 'media': ...')\n"
    "  load FILE    validate, then in one transaction store the document in PostgreSQL\n"
    "               (classifier_rulesets), make it the only active ruleset and notify the running\n"
    "               classifiers (NOTIFY redress_rules), which reload it without a restart; prints\n"
    "               the version and the number of rules. Loading a version that is already stored\n"
    "               makes it active again (a rollback is loading the old file).\n"
    "    --dry-run  do all of it, then roll back: nothing changes, nobody is notified\n"
    "    --by WHO   recorded as loaded_by  [$USER]\n"
    "  show         the active ruleset: version, when and by whom it was loaded, and its rules in\n"
    "               evaluation order (higher priority first, then file order)\n"
    "    --json     one JSON object instead of text\n"
    "\n"
    "The version is 'rules-' and 12 hex digits of the SHA-256 of the document's content (key\n"
    "order and whitespace do not count), so the same rules always have the same version.\n"
    "Exit status: 0 ok, 1 the rules are refused (or none is active), 2 usage error or unreadable\n"
    "FILE, 3 PostgreSQL unreachable.\n"
    "\n"
    "Examples:\n"
    "  redressctl rules check my-rules.json\n"
    "  redressctl rules load my-rules.json --dry-run\n"
    "  redressctl --dsn 'host=db dbname=redress' rules load my-rules.json --by ops-alice\n"
    "  redressctl rules show --json\n";

/* ------------------------------------------------------------------------------------------------
 * Small helpers
 * --------------------------------------------------------------------------------------------- */

int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "redressctl%s%s: ", cmd[0] ? " " : "", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'redressctl%s%s --help'.\n", cmd[0] ? " " : "", cmd);
    return EXIT_USAGE;
}

static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;

    if (s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double min, double max, double *out)
{
    char *end;

    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Epoch milliseconds, or UTC in ISO 8601: 2026-11-23, 2026-11-23T09:12:01Z, 2026-11-23T09:12:01.250Z. */
static bool parse_when(const char *s, int64_t *ms)
{
    uint64_t v;
    struct tm tm;
    const char *p;
    int64_t frac = 0;

    if (parse_u64(s, INT64_MAX, &v)) {
        *ms = (int64_t)v;
        return true;
    }
    memset(&tm, 0, sizeof(tm));
    p = strptime(s, "%Y-%m-%d", &tm);
    if (p != NULL && *p == 'T') {
        p = strptime(p + 1, "%H:%M:%S", &tm);
        if (p != NULL && *p == '.') {
            int scale = 100;
            for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                frac += (*p - '0') * scale; /* digits past milliseconds add 0 */
        }
        p = p != NULL && *p == 'Z' ? p + 1 : NULL; /* a time without a zone would be a guess */
    }
    if (p == NULL || *p != '\0')
        return false;
    *ms = (int64_t)timegm(&tm) * 1000 + frac;
    return true;
}

static void new_event_id(char out[37])
{
    uuid_t u;

    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

/* Reads a whole file ('-' = standard input) into a NUL-terminated buffer. */
char *read_all(const char *path, size_t *len, char *err, size_t errlen)
{
    errno = 0;
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    char *buf = f != NULL ? rd_read_stream(f, len) : NULL;

    if (buf == NULL)
        snprintf(err, errlen, "%s: %s", path, errno ? strerror(errno) : "out of memory");
    if (f != NULL && f != stdin)
        fclose(f);
    return buf;
}

/* Edit distance, to suggest a command for a typo. */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[32];

    if (la >= 31 || lb >= 31)
        return 99;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* ------------------------------------------------------------------------------------------------
 * Option parsing shared by every command
 * --------------------------------------------------------------------------------------------- */

static bool set_global(globals *g, int code, const char *arg)
{
    double secs;

    switch (code) {
    case OPT_ENDPOINT:
        g->endpoint = arg;
        return true;
    case OPT_GATEWAY:
        g->gateway = arg;
        return true;
    case OPT_DSN:
        g->dsn = arg;
        return true;
    default: /* OPT_TIMEOUT */
        if (!parse_double(arg, 0.001, 86400, &secs))
            return false;
        g->timeout_ms = (int)(secs * 1000);
        return true;
    }
}

/*
 * The next option of the command; -h, global options and errors are dealt with here. Returns the
 * option code, CLI_END after the last one (positional arguments are then argv[optind..]), or
 * CLI_EXIT with *rc set when the command must stop (help printed, or a usage error).
 */
int cli_next(cli *p, int *rc)
{
    for (;;) {
        int c = getopt_long(p->argc, p->argv, p->optstring, p->opts, NULL);
        switch (c) {
        case -1:
            return CLI_END;
        case 'h':
            fputs(p->help, stdout);
            *rc = EXIT_ACK;
            return CLI_EXIT;
        case ':':
            *rc = usage_error(p->cmd, "option '%s' needs a value", p->argv[optind - 1]);
            return CLI_EXIT;
        case '?':
            if (optopt != 0)
                *rc = usage_error(p->cmd, "unknown option '-%c'", optopt);
            else
                *rc = usage_error(p->cmd, "unknown or ambiguous option '%s'", p->argv[optind - 1]);
            return CLI_EXIT;
        case OPT_ENDPOINT:
        case OPT_GATEWAY:
        case OPT_DSN:
        case OPT_TIMEOUT:
            if (!set_global(p->g, c, optarg)) {
                *rc = usage_error(p->cmd, "--timeout wants a number of seconds, not '%s'", optarg);
                return CLI_EXIT;
            }
            continue;
        default:
            return c;
        }
    }
}

/* Starts parsing argv (argv[0] is the command's name). glibc re-initialises getopt on optind 0. */
void cli_init(cli *p, const char *cmd, const char *help, const struct option *opts, int argc, char **argv, globals *g)
{
    p->cmd = cmd;
    p->help = help;
    p->optstring = ":h";
    p->opts = opts;
    p->argc = argc;
    p->argv = argv;
    p->g = g;
    optind = 0;
    opterr = 0;
}

/* ------------------------------------------------------------------------------------------------
 * Talking to intake
 * --------------------------------------------------------------------------------------------- */

static void print_nack(const char *prefix, const Redress__V1__Reply *r)
{
    fprintf(stderr, "error: %s%s: %s", prefix, rd_error_name(r->error), r->message[0] ? r->message : "refused");
    if (r->field[0] != '\0')
        fprintf(stderr, " (%s)", r->field);
    fputc('\n', stderr);
}

/* occurred_at_ms 0 means now. */
static void envelope_init(Redress__V1__Envelope *env, const globals *g, const char *event_id, int64_t occurred_at_ms,
                          char idbuf[37])
{
    redress__v1__envelope__init(env);
    if (event_id == NULL) {
        new_event_id(idbuf);
        event_id = idbuf;
    }
    env->schema_version = RD_SCHEMA_VERSION;
    env->gateway_id = (char *)g->gateway;
    env->event_id = (char *)event_id;
    env->occurred_at_ms = occurred_at_ms != 0 ? occurred_at_ms : rd_now_ms();
}

static rd_client *open_client(const globals *g, int *rc)
{
    char err[256];
    rd_client *c = rd_client_new_env(g->endpoint, err, sizeof(err));

    if (c == NULL) {
        fprintf(stderr, "error: %s\n", err);
        *rc = EXIT_USAGE;
    }
    return c;
}

static int attempt_ms(const globals *g)
{
    return g->timeout_ms < MAX_ATTEMPT_MS ? g->timeout_ms : MAX_ATTEMPT_MS;
}

static void print_no_answer(const globals *g)
{
    fprintf(stderr, "error: no answer from intake at %s within %.3g s (is redress-intake running and reachable?)\n",
            g->endpoint, g->timeout_ms / 1000.0);
    /* a refused CURVE handshake looks exactly like silence: say what to check (docs/security.md) */
    const char *curve = getenv("REDRESS_CURVE_SERVER_KEY");
    fprintf(stderr, curve != NULL && curve[0] != '\0'
                        ? "hint: with CURVE, check that this gateway's key is registered and valid (redressctl keys "
                          "list) and that REDRESS_CURVE_SERVER_KEY is intake's public key\n"
                        : "hint: if intake runs with intake.auth = curve, set REDRESS_CURVE_SERVER_KEY and "
                          "REDRESS_CURVE_CLIENT_KEY_FILE\n");
}

/* Sends one envelope and reports the outcome: on ACK prints the ticket id (or the state). */
static int send_one(rd_client *c, const globals *g, const Redress__V1__Envelope *env, bool print_state)
{
    Redress__V1__Reply *r;
    int rc;

    if (rd_client_call(c, env, attempt_ms(g), g->timeout_ms, &r) != 1) {
        print_no_answer(g);
        return EXIT_UNREACHABLE;
    }
    if (r->error == REDRESS__V1__ERROR_CODE__ERROR_NONE) {
        printf("%s\n", print_state ? r->state : r->ticket_id);
        if (r->replay)
            fprintf(stderr, "note: replay: event %s was already stored; this is the original answer\n", r->event_id);
        rc = EXIT_ACK;
    } else {
        print_nack("", r);
        rc = EXIT_NACK;
    }
    redress__v1__reply__free_unpacked(r, NULL);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * submit: building a NewTicket from flags or JSON
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    const char *uri, *media_type;
    uint8_t sha256[32];
    uint64_t size;
} att_spec;

/* A NewTicket under construction plus the memory its pointers refer to. */
typedef struct {
    Redress__V1__NewTicket t;
    att_spec *specs;
    size_t nspecs;
    Redress__V1__Attachment *atts;
    Redress__V1__Attachment **att_ptrs;
    char *body; /* owned: read from --body-file */
    const char *event_id;
    int64_t occurred_at_ms; /* 0: now */
} ticket_draft;

static void draft_init(ticket_draft *d)
{
    memset(d, 0, sizeof(*d));
    redress__v1__new_ticket__init(&d->t);
}

static void draft_free(ticket_draft *d)
{
    free(d->specs);
    free(d->atts);
    free(d->att_ptrs);
    free(d->body);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly 64 hex digits -> 32 bytes. */
static bool parse_hex32(const char *s, size_t len, uint8_t out[32])
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool draft_add_attachment(ticket_draft *d, const att_spec *a)
{
    att_spec *s = realloc(d->specs, (d->nspecs + 1) * sizeof(*s));

    if (s == NULL)
        return false;
    d->specs = s;
    d->specs[d->nspecs++] = *a;
    return true;
}

/* URI:SHA256HEX:SIZE, split from the right because URIs contain colons themselves. The URI is
 * cut off in place (arg is an argv string, ours to modify). */
static bool parse_attachment_flag(char *arg, att_spec *a)
{
    char *size_sep = strrchr(arg, ':');
    char *hash_sep;

    memset(a, 0, sizeof(*a));
    if (size_sep == NULL || size_sep == arg)
        return false;
    *size_sep = '\0';
    hash_sep = strrchr(arg, ':');
    if (hash_sep == NULL || hash_sep == arg || !parse_u64(size_sep + 1, UINT64_MAX, &a->size) ||
        !parse_hex32(hash_sep + 1, strlen(hash_sep + 1), a->sha256))
        return false;
    *hash_sep = '\0';
    a->uri = arg;
    a->media_type = "";
    return true;
}

/* Points the ticket's attachment list at the collected specs (once they will not move again). */
static bool draft_finish(ticket_draft *d)
{
    if (d->nspecs == 0)
        return true;
    d->atts = calloc(d->nspecs, sizeof(*d->atts));
    d->att_ptrs = calloc(d->nspecs, sizeof(*d->att_ptrs));
    if (d->atts == NULL || d->att_ptrs == NULL)
        return false;
    for (size_t i = 0; i < d->nspecs; i++) {
        Redress__V1__Attachment *a = &d->atts[i];
        redress__v1__attachment__init(a);
        a->uri = (char *)d->specs[i].uri;
        a->sha256.data = d->specs[i].sha256;
        a->sha256.len = 32;
        a->size = d->specs[i].size;
        a->media_type = (char *)d->specs[i].media_type;
        d->att_ptrs[i] = a;
    }
    d->t.n_attachments = d->nspecs;
    d->t.attachments = d->att_ptrs;
    return true;
}

/* Accepts the stored names ("mayor_hotline") and the proto names ("CHANNEL_MAYOR_HOTLINE"). */
static Redress__V1__Channel channel_parse(const char *name)
{
    char low[64];
    size_t i;

    if (strncasecmp(name, "CHANNEL_", 8) == 0)
        name += 8;
    for (i = 0; name[i] != '\0' && i + 1 < sizeof(low); i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    low[i] = '\0';
    return rd_channel_parse(low);
}

/* The NewTicket string field a flag sets, or NULL. */
static char **flag_string_field(Redress__V1__NewTicket *t, int code)
{
    static const struct {
        int code;
        size_t off;
    } fields[] = {
        {OPT_CUSTOMER, offsetof(Redress__V1__NewTicket, customer_ref)},
        {OPT_NAME, offsetof(Redress__V1__NewTicket, customer_name)},
        {OPT_PHONE, offsetof(Redress__V1__NewTicket, customer_phone)},
        {OPT_EMAIL, offsetof(Redress__V1__NewTicket, customer_email)},
        {OPT_REGION, offsetof(Redress__V1__NewTicket, region)},
        {OPT_LANGUAGE, offsetof(Redress__V1__NewTicket, language)},
        {OPT_SUBJECT, offsetof(Redress__V1__NewTicket, subject)},
        {OPT_BODY, offsetof(Redress__V1__NewTicket, body)},
        {OPT_ORGANISATION, offsetof(Redress__V1__NewTicket, organisation)},
        {OPT_PRODUCT, offsetof(Redress__V1__NewTicket, product)},
        {OPT_CASE_NO, offsetof(Redress__V1__NewTicket, external_case_no)},
    };

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (fields[i].code == code)
            return (char **)((char *)t + fields[i].off);
    return NULL;
}

/* Applies one ticket flag; false (with a message printed) on a bad value. */
static bool apply_ticket_flag(ticket_draft *d, int code, char *arg)
{
    char err[256];
    size_t len;
    att_spec a;
    Redress__V1__NewTicket *t = &d->t;
    char **field = flag_string_field(t, code);

    if (field != NULL) {
        *field = arg;
        return true;
    }
    switch (code) {
    case OPT_CHANNEL:
        t->channel = channel_parse(arg);
        if (t->channel == REDRESS__V1__CHANNEL__CHANNEL_UNSPECIFIED) {
            usage_error("submit",
                        "unknown channel '%s' (hotline, web, email, app, walk_in, regulator, "
                        "mayor_hotline, social_media, postal, fax, referral)",
                        arg);
            return false;
        }
        return true;
    case OPT_VIP:
        t->vip = true;
        return true;
    case OPT_EVENT_ID:
        d->event_id = arg;
        return true;
    case OPT_OCCURRED_AT:
        if (!parse_when(arg, &d->occurred_at_ms)) {
            usage_error("submit", "--occurred-at wants epoch ms or a UTC time like 2026-11-23T09:12:01Z, not '%s'",
                        arg);
            return false;
        }
        return true;
    case OPT_BODY_FILE:
        free(d->body);
        d->body = read_all(arg, &len, err, sizeof(err));
        if (d->body == NULL) {
            fprintf(stderr, "error: --body-file %s\n", err);
            return false;
        }
        if (strlen(d->body) != len) {
            usage_error("submit", "--body-file %s contains a NUL byte: text only", arg);
            return false;
        }
        t->body = d->body;
        return true;
    default: /* OPT_ATTACHMENT */
        if (!parse_attachment_flag(arg, &a)) {
            usage_error("submit", "--attachment wants URI:SHA256HEX:SIZE (64 hex digits, size in bytes)");
            return false;
        }
        return draft_add_attachment(d, &a);
    }
}

/* JSON: the string fields of NewTicket, by name. */
static char **ticket_string_field(Redress__V1__NewTicket *t, const char *key)
{
    static const struct {
        const char *name;
        size_t off;
    } fields[] = {
        {"customer_ref", offsetof(Redress__V1__NewTicket, customer_ref)},
        {"customer_name", offsetof(Redress__V1__NewTicket, customer_name)},
        {"customer_phone", offsetof(Redress__V1__NewTicket, customer_phone)},
        {"customer_email", offsetof(Redress__V1__NewTicket, customer_email)},
        {"region", offsetof(Redress__V1__NewTicket, region)},
        {"language", offsetof(Redress__V1__NewTicket, language)},
        {"subject", offsetof(Redress__V1__NewTicket, subject)},
        {"body", offsetof(Redress__V1__NewTicket, body)},
        {"organisation", offsetof(Redress__V1__NewTicket, organisation)},
        {"product", offsetof(Redress__V1__NewTicket, product)},
        {"external_case_no", offsetof(Redress__V1__NewTicket, external_case_no)},
    };

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (strcmp(key, fields[i].name) == 0)
            return (char **)((char *)t + fields[i].off);
    return NULL;
}

static bool json_attachment(ticket_draft *d, json_t *o, char *err, size_t errlen)
{
    att_spec a;
    const char *key;
    json_t *v;

    memset(&a, 0, sizeof(a));
    a.uri = a.media_type = "";
    if (!json_is_object(o)) {
        snprintf(err, errlen, "attachments: each one must be an object");
        return false;
    }
    json_object_foreach (o, key, v) {
        bool ok = false;
        if (strcmp(key, "uri") == 0 && json_is_string(v))
            a.uri = json_string_value(v), ok = true;
        else if (strcmp(key, "media_type") == 0 && json_is_string(v))
            a.media_type = json_string_value(v), ok = true;
        else if (strcmp(key, "sha256") == 0 && json_is_string(v))
            ok = parse_hex32(json_string_value(v), json_string_length(v), a.sha256);
        else if (strcmp(key, "size") == 0 && json_is_integer(v) && json_integer_value(v) >= 0)
            a.size = (uint64_t)json_integer_value(v), ok = true;
        if (!ok) {
            snprintf(err, errlen,
                     "attachments.%s: not an attachment field of the right type (uri, sha256 as 64 hex "
                     "digits, size, media_type)",
                     key);
            return false;
        }
    }
    if (!draft_add_attachment(d, &a)) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

/* One JSON value of a NewTicket object; false with a reason in err. */
static bool json_ticket_field(ticket_draft *d, const char *key, json_t *v, char *err, size_t errlen)
{
    char **s = ticket_string_field(&d->t, key);
    size_t i;
    json_t *a;

    if (s != NULL && json_is_string(v)) {
        *s = (char *)json_string_value(v);
    } else if (strcmp(key, "event_id") == 0 && json_is_string(v)) {
        d->event_id = json_string_value(v);
    } else if (strcmp(key, "channel") == 0 && json_is_string(v)) {
        d->t.channel = channel_parse(json_string_value(v));
        if (d->t.channel == REDRESS__V1__CHANNEL__CHANNEL_UNSPECIFIED) {
            snprintf(err, errlen, "channel: unknown channel \"%s\"", json_string_value(v));
            return false;
        }
    } else if (strcmp(key, "channel") == 0 && json_is_integer(v)) {
        d->t.channel = (Redress__V1__Channel)json_integer_value(v); /* intake judges the range */
    } else if (strcmp(key, "vip") == 0 && json_is_boolean(v)) {
        d->t.vip = json_is_true(v);
    } else if (strcmp(key, "occurred_at_ms") == 0 && json_is_integer(v)) {
        d->occurred_at_ms = json_integer_value(v);
    } else if (strcmp(key, "attachments") == 0 && json_is_array(v)) {
        json_array_foreach (v, i, a) {
            if (!json_attachment(d, a, err, errlen))
                return false;
        }
    } else if (s != NULL || strcmp(key, "event_id") == 0 || strcmp(key, "channel") == 0 || strcmp(key, "vip") == 0 ||
               strcmp(key, "occurred_at_ms") == 0 || strcmp(key, "attachments") == 0) {
        snprintf(err, errlen, "%s: wrong type", key);
        return false;
    } else {
        snprintf(err, errlen, "\"%s\" is not a NewTicket field", key);
        return false;
    }
    return true;
}

static bool json_to_draft(json_t *o, ticket_draft *d, char *err, size_t errlen)
{
    const char *key;
    json_t *v;

    if (!json_is_object(o)) {
        snprintf(err, errlen, "expected an object or an array of objects");
        return false;
    }
    json_object_foreach (o, key, v) {
        if (!json_ticket_field(d, key, v, err, errlen))
            return false;
    }
    return draft_finish(d);
}

static void draft_envelope(ticket_draft *d, const globals *g, Redress__V1__Envelope *env, char idbuf[37])
{
    envelope_init(env, g, d->event_id, d->occurred_at_ms, idbuf);
    env->payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_NEW_TICKET;
    env->new_ticket = &d->t;
}

/* One element of a JSON array: prints "EVENT_ID TICKET_ID" on ACK. */
static int send_json_element(rd_client *c, const globals *g, json_t *o, size_t i)
{
    ticket_draft d;
    Redress__V1__Envelope env;
    Redress__V1__Reply *r;
    char err[300], idbuf[37], prefix[200];
    int rc;

    draft_init(&d);
    if (!json_to_draft(o, &d, err, sizeof(err))) {
        fprintf(stderr, "error: element %zu: %s\n", i, err);
        draft_free(&d);
        return EXIT_USAGE;
    }
    draft_envelope(&d, g, &env, idbuf);
    if (rd_client_call(c, &env, attempt_ms(g), g->timeout_ms, &r) != 1) {
        print_no_answer(g);
        draft_free(&d);
        return EXIT_UNREACHABLE;
    }
    if (r->error == REDRESS__V1__ERROR_CODE__ERROR_NONE) {
        printf("%s %s\n", env.event_id, r->ticket_id);
        fflush(stdout); /* keep it in step with the error lines on stderr */
        if (r->replay)
            fprintf(stderr, "note: replay: event %s was already stored; this is the original answer\n", env.event_id);
        rc = EXIT_ACK;
    } else {
        snprintf(prefix, sizeof(prefix), "event %s: ", env.event_id);
        print_nack(prefix, r);
        rc = EXIT_NACK;
    }
    redress__v1__reply__free_unpacked(r, NULL);
    draft_free(&d);
    return rc;
}

/* Every element is checked before anything is sent: a file with a mistake sends nothing. */
static bool json_array_valid(json_t *root, const char *path)
{
    size_t i;
    json_t *o;
    bool ok = true;

    json_array_foreach (root, i, o) {
        ticket_draft d;
        char err[300];
        draft_init(&d);
        if (!json_to_draft(o, &d, err, sizeof(err))) {
            fprintf(stderr, "error: %s: element %zu: %s\n", path, i, err);
            ok = false;
        }
        draft_free(&d);
    }
    return ok;
}

/* Arrays go element by element, in order; the first element nobody answers stops the run. */
static int submit_json(const globals *g, const char *path)
{
    json_error_t jerr;
    json_t *root = strcmp(path, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
                                          : json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    int rc = EXIT_ACK;

    if (root == NULL) {
        fprintf(stderr, "error: %s:%d:%d: %s\n", path, jerr.line, jerr.column, jerr.text);
        return EXIT_USAGE;
    }
    if (json_is_array(root) && !json_array_valid(root, path)) {
        json_decref(root);
        return EXIT_USAGE;
    }
    rd_client *c = open_client(g, &rc);
    if (c != NULL && json_is_array(root)) {
        size_t i;
        json_t *o;
        if (json_array_size(root) == 0)
            fprintf(stderr, "note: %s: empty array, nothing sent\n", path);
        json_array_foreach (root, i, o) {
            int one = send_json_element(c, g, o, i);
            if (one > rc)
                rc = one;
            if (one == EXIT_UNREACHABLE)
                break;
        }
    } else if (c != NULL) {
        ticket_draft d;
        Redress__V1__Envelope env;
        char err[300], idbuf[37];
        draft_init(&d);
        if (json_to_draft(root, &d, err, sizeof(err))) {
            draft_envelope(&d, g, &env, idbuf);
            rc = send_one(c, g, &env, false);
        } else {
            fprintf(stderr, "error: %s: %s\n", path, err);
            rc = EXIT_USAGE;
        }
        draft_free(&d);
    }
    rd_client_destroy(&c);
    json_decref(root);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * submit --csv: a pipelined replay with progress and a summary
 * --------------------------------------------------------------------------------------------- */

#define NCODES 14 /* ErrorCode values 0..13 */

typedef struct {
    size_t total, finished, errors_shown;
    int64_t *latencies; /* of answered events, microseconds */
    size_t nlat;
    uint64_t nacks[NCODES + 1]; /* the last counts codes we do not know */
    bool tty;
    int64_t start_us, last_draw_us;
    size_t next_mark; /* non-tty: the next 10% step to report */
} replay;

static void progress_draw(replay *p, bool final)
{
    int64_t now = rd_mono_us();
    double secs = (now - p->start_us) / 1e6, pct = p->total ? 100.0 * p->finished / p->total : 100;
    double rate = secs > 0 ? p->finished / secs : 0;

    if (p->tty) {
        if (!final && now - p->last_draw_us < 100000)
            return;
        char bar[31];
        int fill = (int)(pct * 30 / 100);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %3.0f%%  %zu/%zu  %.0f events/s\033[K%s", bar, pct, p->finished, p->total, rate,
                final ? "\n" : "");
        p->last_draw_us = now;
        return;
    }
    if (p->finished >= p->next_mark && p->total > 0) {
        fprintf(stderr, "progress: %3.0f%%  %zu/%zu  %.0f events/s\n", pct, p->finished, p->total, rate);
        while (p->next_mark <= p->finished)
            p->next_mark += p->total / 10 > 0 ? p->total / 10 : 1;
    }
}

static void replay_done(void *arg, const char *event_id, const Redress__V1__Reply *r, int64_t latency_us)
{
    replay *p = arg;

    p->finished++;
    if (r != NULL)
        p->latencies[p->nlat++] = latency_us;
    if (r != NULL && r->error != REDRESS__V1__ERROR_CODE__ERROR_NONE) {
        p->nacks[(unsigned)r->error < NCODES ? (unsigned)r->error : NCODES]++;
        if (p->errors_shown++ < CSV_ERRORS_SHOWN) {
            char prefix[200];
            snprintf(prefix, sizeof(prefix), "event %s: ", event_id);
            if (p->tty)
                fputs("\r\033[K", stderr);
            print_nack(prefix, r);
        }
    }
    progress_draw(p, false);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array, in milliseconds. */
static double percentile_ms(const int64_t *v, size_t n, double pct)
{
    size_t rank = (size_t)ceil(pct / 100.0 * (double)n);

    return n == 0 ? 0 : v[rank > 0 ? rank - 1 : 0] / 1000.0;
}

static void replay_summary(replay *p, const rd_stream_stats *st)
{
    double secs = st->elapsed_us / 1e6;

    qsort(p->latencies, p->nlat, sizeof(*p->latencies), cmp_i64);
    printf("sent        %llu\n", (unsigned long long)st->sent);
    printf("acked       %llu (replays %llu)\n", (unsigned long long)st->acked, (unsigned long long)st->replays);
    printf("nacked      %llu", (unsigned long long)st->nacked);
    for (int i = 0; i <= NCODES; i++)
        if (p->nacks[i] > 0)
            printf(" %s=%llu", i < NCODES ? rd_error_name((Redress__V1__ErrorCode)i) : "OTHER",
                   (unsigned long long)p->nacks[i]);
    printf("\ngave up     %llu\n", (unsigned long long)st->gave_up);
    printf("retries     %llu after timeout, %llu after busy answers\n", (unsigned long long)st->resends,
           (unsigned long long)st->retried_busy);
    printf("elapsed     %.3f s\n", secs);
    printf("throughput  %.1f events/s\n", secs > 0 ? (st->acked + st->nacked) / secs : 0);
    printf("latency     p50 %.2f ms  p99 %.2f ms  max %.2f ms\n", percentile_ms(p->latencies, p->nlat, 50),
           percentile_ms(p->latencies, p->nlat, 99), percentile_ms(p->latencies, p->nlat, 100));
}

typedef struct {
    const char *path, *prefix;
    uint64_t limit;
    int window;
    double rate;
} csv_args;

static int submit_csv(const globals *g, const csv_args *a)
{
    char err[300];
    rd_cfpb *data = rd_cfpb_load(a->path, err, sizeof(err));
    rd_stream_stats st;
    replay p;
    int rc = EXIT_ACK;

    if (data == NULL) {
        fprintf(stderr, "error: %s\n", err);
        return EXIT_USAGE;
    }
    rd_client *c = open_client(g, &rc);
    rd_cfpb_cursor cur = {.data = data, .gateway_id = g->gateway, .prefix = a->prefix, .next = 0};
    cur.end = a->limit < rd_cfpb_count(data) ? (size_t)a->limit : rd_cfpb_count(data);
    memset(&p, 0, sizeof(p));
    p.total = cur.end;
    p.tty = isatty(STDERR_FILENO);
    p.latencies = malloc((p.total > 0 ? p.total : 1) * sizeof(*p.latencies));
    p.start_us = rd_mono_us();
    p.next_mark = p.total / 10 > 0 ? p.total / 10 : 1;
    if (c != NULL && p.latencies != NULL) {
        rd_stream_opts o = {.window = a->window,
                            .attempt_timeout_ms = g->timeout_ms < 5000 ? g->timeout_ms : 5000,
                            .deadline_ms = g->timeout_ms,
                            .rate_per_s = a->rate};
        bool ok = rd_client_stream(c, &o, rd_cfpb_next, &cur, replay_done, &p, &st);
        progress_draw(&p, true);
        replay_summary(&p, &st);
        if (!ok)
            fprintf(stderr, "error: socket error talking to intake: %s\n", strerror(errno));
        if (cur.failed)
            fprintf(stderr, "error: row %zu could not be sent (event id longer than %d bytes with this --prefix?)\n",
                    cur.next + 1, RD_MAX_ID_BYTES);
        rc = !ok || st.gave_up > 0 ? EXIT_UNREACHABLE : cur.failed ? EXIT_USAGE : st.nacked > 0 ? EXIT_NACK : EXIT_ACK;
        if (st.gave_up > 0 && st.acked + st.nacked == 0)
            print_no_answer(g);
    } else if (c != NULL) {
        fprintf(stderr, "error: out of memory\n");
        rc = EXIT_NACK;
    }
    free(p.latencies);
    rd_client_destroy(&c);
    rd_cfpb_destroy(&data);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * submit: the command
 * --------------------------------------------------------------------------------------------- */

static const struct option submit_opts[] = {
    {"channel", required_argument, NULL, OPT_CHANNEL},
    {"customer", required_argument, NULL, OPT_CUSTOMER},
    {"name", required_argument, NULL, OPT_NAME},
    {"phone", required_argument, NULL, OPT_PHONE},
    {"email", required_argument, NULL, OPT_EMAIL},
    {"region", required_argument, NULL, OPT_REGION},
    {"language", required_argument, NULL, OPT_LANGUAGE},
    {"subject", required_argument, NULL, OPT_SUBJECT},
    {"body", required_argument, NULL, OPT_BODY},
    {"body-file", required_argument, NULL, OPT_BODY_FILE},
    {"organisation", required_argument, NULL, OPT_ORGANISATION},
    {"product", required_argument, NULL, OPT_PRODUCT},
    {"vip", no_argument, NULL, OPT_VIP},
    {"case-no", required_argument, NULL, OPT_CASE_NO},
    {"attachment", required_argument, NULL, OPT_ATTACHMENT},
    {"event-id", required_argument, NULL, OPT_EVENT_ID},
    {"occurred-at", required_argument, NULL, OPT_OCCURRED_AT},
    {"json", required_argument, NULL, OPT_JSON},
    {"csv", required_argument, NULL, OPT_CSV},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"rate", required_argument, NULL, OPT_RATE},
    {"prefix", required_argument, NULL, OPT_PREFIX},
    GLOBAL_OPTIONS,
};

/* Which submit mode a set of flags asks for, and whether they make sense together. */
static int submit_check_mode(const char *json, const csv_args *ca, int nticket_flags, int ncsv_flags, bool event_flags)
{
    if (json != NULL && ca->path != NULL)
        return usage_error("submit", "--json and --csv cannot be combined");
    if ((json != NULL || ca->path != NULL) && nticket_flags > 0)
        return usage_error("submit", "ticket fields cannot be combined with --%s: put them in the file",
                           json != NULL ? "json" : "csv");
    if (ca->path == NULL && ncsv_flags > 0)
        return usage_error("submit", "--limit, --window, --rate and --prefix only apply to --csv");
    if (event_flags && (json != NULL || ca->path != NULL))
        return usage_error("submit", "--event-id and --occurred-at only apply to a ticket given by flags (%s)",
                           json != NULL ? "put event_id and occurred_at_ms in the JSON" : "use --prefix");
    if (json == NULL && ca->path == NULL && nticket_flags == 0)
        return usage_error("submit", "nothing to submit: give ticket fields (--channel, --customer, --subject...), "
                                     "--json FILE or --csv FILE");
    return EXIT_ACK;
}

static int cmd_submit(globals *g, int argc, char **argv)
{
    cli p;
    ticket_draft d;
    csv_args ca = {.limit = UINT64_MAX, .window = 64};
    const char *json = NULL;
    int c, rc = EXIT_ACK, nticket = 0, ncsv = 0;
    uint64_t n;

    draft_init(&d);
    cli_init(&p, "submit", help_submit, submit_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c == OPT_JSON) {
            json = optarg;
        } else if (c == OPT_CSV) {
            ca.path = optarg;
        } else if (c == OPT_PREFIX) {
            ca.prefix = optarg;
            ncsv++;
        } else if (c == OPT_LIMIT || c == OPT_WINDOW) {
            if (!parse_u64(optarg, c == OPT_LIMIT ? UINT64_MAX : 100000, &n) || (c == OPT_WINDOW && n == 0)) {
                rc = usage_error("submit", "--%s wants a %s number, not '%s'", c == OPT_LIMIT ? "limit" : "window",
                                 c == OPT_LIMIT ? "whole" : "whole, 1..100000,", optarg);
                break;
            }
            if (c == OPT_LIMIT)
                ca.limit = n;
            else
                ca.window = (int)n;
            ncsv++;
        } else if (c == OPT_RATE) {
            if (!parse_double(optarg, 0, 1e7, &ca.rate)) {
                rc = usage_error("submit", "--rate wants events per second, not '%s'", optarg);
                break;
            }
            ncsv++;
        } else {
            if (!apply_ticket_flag(&d, c, optarg)) {
                rc = EXIT_USAGE;
                break;
            }
            nticket += c != OPT_EVENT_ID && c != OPT_OCCURRED_AT;
        }
    }
    if (c == CLI_END && optind < argc)
        rc = usage_error("submit", "unexpected argument '%s'", argv[optind]);
    else if (c == CLI_END)
        rc = submit_check_mode(json, &ca, nticket, ncsv, d.event_id != NULL || d.occurred_at_ms != 0);
    if (c == CLI_END && rc == EXIT_ACK) {
        if (json != NULL) {
            rc = submit_json(g, json);
        } else if (ca.path != NULL) {
            rc = submit_csv(g, &ca);
        } else {
            Redress__V1__Envelope env;
            char idbuf[37];
            rd_client *cl = open_client(g, &rc);
            if (cl != NULL && draft_finish(&d)) {
                draft_envelope(&d, g, &env, idbuf);
                rc = send_one(cl, g, &env, false);
            }
            rd_client_destroy(&cl);
        }
    }
    draft_free(&d);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * act
 * --------------------------------------------------------------------------------------------- */

static const struct option act_opts[] = {
    {"actor", required_argument, NULL, OPT_ACTOR},
    {"note", required_argument, NULL, OPT_NOTE},
    {"reason", required_argument, NULL, OPT_REASON},
    {"target-unit", required_argument, NULL, OPT_TARGET_UNIT},
    {"satisfaction", required_argument, NULL, OPT_SATISFACTION},
    {"event-id", required_argument, NULL, OPT_EVENT_ID},
    {"occurred-at", required_argument, NULL, OPT_OCCURRED_AT},
    GLOBAL_OPTIONS,
};

static const char *const action_kinds = "accept, reply, transfer, return, resolve, close, reopen, wait_customer, "
                                        "resume, chase, return_visit";

/* Applies one act flag; false after printing a usage error. */
static bool apply_act_flag(Redress__V1__TicketAction *a, const char **event_id, int64_t *when, int code, char *arg)
{
    uint64_t n;

    switch (code) {
    case OPT_ACTOR:
        a->actor = arg;
        return true;
    case OPT_NOTE:
        a->note = arg;
        return true;
    case OPT_REASON:
        a->reason = arg;
        return true;
    case OPT_TARGET_UNIT:
        a->target_unit = arg;
        return true;
    case OPT_EVENT_ID:
        *event_id = arg;
        return true;
    case OPT_OCCURRED_AT:
        if (!parse_when(arg, when)) {
            usage_error("act", "--occurred-at wants epoch ms or a UTC time like 2026-11-23T09:12:01Z, not '%s'", arg);
            return false;
        }
        return true;
    default: /* OPT_SATISFACTION: the range is intake's to judge */
        if (!parse_u64(arg, UINT32_MAX, &n)) {
            usage_error("act", "--satisfaction wants a number (1..5), not '%s'", arg);
            return false;
        }
        a->satisfaction = (uint32_t)n;
        return true;
    }
}

static int cmd_act(globals *g, int argc, char **argv)
{
    cli p;
    Redress__V1__TicketAction a = REDRESS__V1__TICKET_ACTION__INIT;
    Redress__V1__Envelope env;
    const char *event_id = NULL;
    int64_t when = 0;
    char idbuf[37];
    int c, rc = EXIT_ACK;

    cli_init(&p, "act", help_act, act_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0)
        if (!apply_act_flag(&a, &event_id, &when, c, optarg))
            return EXIT_USAGE;
    if (c == CLI_EXIT)
        return rc;
    if (argc - optind != 2)
        return usage_error("act", "wants TICKET_ID and KIND (got %d argument%s)", argc - optind,
                           argc - optind == 1 ? "" : "s");
    a.ticket_id = argv[optind];
    a.kind = rd_action_parse(argv[optind + 1]);
    if (a.kind == REDRESS__V1__ACTION_KIND__ACTION_UNSPECIFIED)
        return usage_error("act", "unknown action '%s' (%s)", argv[optind + 1], action_kinds);
    if (a.actor[0] == '\0')
        return usage_error("act", "--actor is required (the agent id, or the customer ref for chase)");

    rd_client *cl = open_client(g, &rc);
    if (cl == NULL)
        return rc;
    envelope_init(&env, g, event_id, when, idbuf);
    env.payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_ACTION;
    env.action = &a;
    rc = send_one(cl, g, &env, true);
    rd_client_destroy(&cl);
    return rc;
}

/* ------------------------------------------------------------------------------------------------
 * ticket show: PostgreSQL
 * --------------------------------------------------------------------------------------------- */

/* Timestamps as ISO 8601 UTC with milliseconds, whatever the session's time zone. */
#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* A column to show: its label (also the JSON key), SQL expression and kind:
 * 's' text, 'i' integer, 'b' boolean, 'x' long text printed as an indented block. */
typedef struct {
    const char *label, *sql;
    char kind;
} show_col;

static const show_col ticket_cols[] = {
    {"id", "t.id", 's'},
    {"state", "t.state", 's'},
    {"channel", "t.channel", 's'},
    {"business_type", "t.business_type", 's'},
    {"category", "t.category", 's'},
    {"severity", "t.severity", 's'},
    {"priority", "t.priority", 'i'},
    {"first_owner_unit", "t.first_owner_unit", 's'},
    {"owner_unit", "t.owner_unit", 's'},
    {"owner_team", "t.owner_team", 's'},
    {"owner_agent", "t.owner_agent", 's'},
    {"accountable_unit", "t.accountable_unit", 's'},
    {"missed_accepts", "t.missed_accepts", 'i'},
    {"vip", "t.vip", 'b'},
    {"region", "t.region", 's'},
    {"language", "t.language", 's'},
    {"organisation", "t.organisation", 's'},
    {"product", "t.product", 's'},
    {"external_case_no", "t.external_case_no", 's'},
    {"customer_id", "t.customer_id", 's'},
    {"gateway_id", "t.gateway_id", 's'},
    {"event_id", "t.event_id", 's'},
    {"chase_count", "t.chase_count", 'i'},
    {"reopen_count", "t.reopen_count", 'i'},
    {"satisfaction", "t.satisfaction", 'i'},
    {"version", "t.version", 'i'},
    {"occurred_at", TS("t.occurred_at"), 's'},
    {"created_at", TS("t.created_at"), 's'},
    {"updated_at", TS("t.updated_at"), 's'},
    {"first_response_at", TS("t.first_response_at"), 's'},
    {"resolved_at", TS("t.resolved_at"), 's'},
    {"closed_at", TS("t.closed_at"), 's'},
    {"subject", "t.subject", 's'},
    {"body", "t.body", 'x'},
};

static const show_col customer_cols[] = {
    {"customer_ref", "c.customer_ref", 's'},
    {"name", "c.name", 's'},
    {"phone", "c.phone", 's'},
    {"email", "c.email", 's'},
    {"erased_at", TS("c.erased_at"), 's'},
};

static const show_col attachment_cols[] = {
    {"ord", "a.ord", 'i'},
    {"uri", "a.uri", 's'},
    {"sha256", "encode(a.sha256, 'hex')", 's'},
    {"size", "a.size_bytes", 'i'},
    {"media_type", "a.media_type", 's'},
};

static const show_col classification_cols[] = {
    {"business_type_source", "k.business_type_source", 's'},
    {"business_type_confidence", "round(k.business_type_confidence::numeric, 3)", 's'},
    {"category_source", "k.category_source", 's'},
    {"category_confidence", "round(k.category_confidence::numeric, 3)", 's'},
    {"severity_reasons", "array_to_string(k.severity_reasons, ', ')", 's'},
    {"priority_source", "k.priority_source", 's'},
    {"repeat_of", "k.repeat_of", 's'},
    {"duplicate_of", "k.duplicate_of", 's'},
    {"rules_version", "k.rules_version", 's'},
    {"classified_at", TS("k.classified_at"), 's'},
};

static const show_col assignment_cols[] = {
    {"kind", "a.kind", 's'},
    {"agent", "a.agent_id", 's'},
    {"team", "a.team_id", 's'},
    {"unit", "a.department_id", 's'},
    {"weight", "a.weight", 'i'},
    {"assigned_at", TS("a.assigned_at"), 's'},
    {"accept_due_at", TS("a.accept_due_at"), 's'},
    {"accepted_at", TS("a.accepted_at"), 's'},
    {"ended_at", TS("a.ended_at"), 's'},
    {"outcome", "a.outcome", 's'},
};

/* SLA clocks (redress-escalation) and what they escalated. */
static const show_col clock_cols[] = {
    {"clock", "c.clock", 's'},
    {"cycle", "c.cycle", 'i'},
    {"policy", "c.policy_id", 's'},
    {"state", "c.state", 's'},
    {"outcome", "c.outcome", 's'},
    {"started_at", TS("c.started_at"), 's'},
    {"due_at", TS("c.due_at"), 's'},
    {"breached_at", TS("c.breached_at"), 's'},
    {"stopped_at", TS("c.stopped_at"), 's'},
    {"calendar", "c.calendar_id", 's'},
};

static const show_col escalation_cols[] = {
    {"clock", "e.clock", 's'},
    {"level", "e.level", 'i'},
    {"role", "e.role", 's'},
    {"target_unit", "e.target_unit", 's'},
    {"action", "e.action", 's'},
    {"at", TS("e.at"), 's'},
    {"acknowledged_at", TS("e.acknowledged_at"), 's'},
};

static const show_col queue_cols[] = {
    {"team", "q.team_id", 's'},
    {"enqueued_at", TS("q.enqueued_at"), 's'},
    {"attempts", "q.attempts", 'i'},
    {"reason", "q.reason", 's'},
};

static const show_col history_cols[] = {
    {"seq", "h.seq", 'i'},
    {"at", TS("h.at"), 's'},
    {"kind", "h.kind", 's'},
    {"from_state", "h.from_state", 's'},
    {"to_state", "h.to_state", 's'},
    {"actor", "h.actor", 's'},
    {"reason", "h.reason", 's'},
    {"target_unit", "h.target_unit", 's'},
    {"satisfaction", "h.satisfaction", 'i'},
    {"gateway_id", "h.gateway_id", 's'},
    {"event_id", "h.event_id", 's'},
    {"note", "h.note", 'x'},
};

#define NCOLS(a) (sizeof(a) / sizeof((a)[0]))

/* Connects with the global --timeout and UTF-8 client encoding (placed after the DSN so that it
 * wins: text must come back exactly as stored, whatever the locale). */
PGconn *db_connect(const globals *g)
{
    char timeout[16];
    int secs = (g->timeout_ms + 999) / 1000;
    snprintf(timeout, sizeof(timeout), "%d", secs < 2 ? 2 : secs);
    const char *keys[] = {"connect_timeout", "application_name", "dbname", "client_encoding", NULL};
    const char *vals[] = {timeout, "redressctl", g->dsn, "UTF8", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);

    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "error: cannot connect to PostgreSQL: %s", conn ? PQerrorMessage(conn) : "out of memory\n");
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

/* SELECT <cols> <rest> with the ticket id as $1; NULL after printing the error. */
static PGresult *db_select(PGconn *conn, const show_col *cols, size_t n, const char *rest, const char *id)
{
    size_t cap = strlen(rest) + 16;
    for (size_t i = 0; i < n; i++)
        cap += strlen(cols[i].sql) + 2;
    char *sql = malloc(cap);
    PGresult *res;

    if (sql == NULL)
        return NULL;
    strcpy(sql, "SELECT ");
    for (size_t i = 0; i < n; i++) {
        strcat(sql, cols[i].sql);
        strcat(sql, i + 1 < n ? ", " : " ");
    }
    strcat(sql, rest);
    res = PQexecParams(conn, sql, 1, NULL, &id, NULL, NULL, 0);
    free(sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        fprintf(stderr, "error: query failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

static json_t *cell_json(const PGresult *res, int row, int col, char kind)
{
    const char *v = PQgetvalue(res, row, col);

    if (PQgetisnull(res, row, col))
        return json_null();
    if (kind == 'i')
        return json_integer(strtoll(v, NULL, 10));
    if (kind == 'b')
        return json_boolean(v[0] == 't');
    json_t *s = json_string(v);
    return s != NULL ? s : json_null();
}

static json_t *row_json(const PGresult *res, int row, const show_col *cols, size_t n)
{
    json_t *o = json_object();

    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, cols[i].label, cell_json(res, row, (int)i, cols[i].kind));
    return o;
}

static json_t *rows_json(const PGresult *res, const show_col *cols, size_t n)
{
    json_t *a = json_array();

    for (int r = 0; r < PQntuples(res); r++)
        json_array_append_new(a, row_json(res, r, cols, n));
    return a;
}

/* Prints multi-line text with every line indented. */
static void print_block(const char *indent, const char *text)
{
    while (*text) {
        size_t n = strcspn(text, "\n");
        printf("%s%.*s\n", indent, (int)n, text);
        text += n + (text[n] == '\n');
    }
}

/* "label  value" lines for the non-empty columns [first, n) of one row. */
static void print_fields(const PGresult *res, int row, const show_col *cols, size_t first, size_t n, const char *indent)
{
    for (size_t i = first; i < n; i++) {
        const char *v = PQgetvalue(res, row, (int)i);
        if (PQgetisnull(res, row, (int)i) || v[0] == '\0' || (cols[i].kind == 'b' && v[0] == 'f'))
            continue;
        if (cols[i].kind == 'x') {
            char deeper[64];
            snprintf(deeper, sizeof(deeper), "%s    ", indent);
            printf("%s%s:\n", indent, cols[i].label);
            print_block(deeper, v);
        } else {
            printf("%s%-18s %s\n", indent, cols[i].label, cols[i].kind == 'b' ? "yes" : v);
        }
    }
}

/* One history entry: "#seq  at  kind  from -> to  actor", details indented below. */
static void print_history(const PGresult *h)
{
    printf("\nhistory (%d)\n", PQntuples(h));
    for (int r = 0; r < PQntuples(h); r++) {
        printf("  #%s  %s  %-14s %s -> %s", PQgetvalue(h, r, 0), PQgetvalue(h, r, 1), PQgetvalue(h, r, 2),
               PQgetisnull(h, r, 3) ? "" : PQgetvalue(h, r, 3), PQgetvalue(h, r, 4));
        if (PQgetvalue(h, r, 5)[0] != '\0')
            printf("  by %s", PQgetvalue(h, r, 5));
        putchar('\n');
        print_fields(h, r, history_cols, 6, NCOLS(history_cols), "      ");
    }
}

typedef struct {
    PGresult *t, *cust, *att, *h, *cls, *asg, *q, *clk, *esc;
} ticket_rows;

static int ticket_show_text(const ticket_rows *x)
{
    const PGresult *t = x->t, *cust = x->cust, *att = x->att, *h = x->h;
    print_fields(t, 0, ticket_cols, 0, NCOLS(ticket_cols), "");
    if (PQntuples(x->cls) == 1) {
        printf("\nclassification\n");
        print_fields(x->cls, 0, classification_cols, 0, NCOLS(classification_cols), "  ");
    }
    if (PQntuples(x->q) == 1) {
        printf("\nwaiting in the dispatch queue\n");
        print_fields(x->q, 0, queue_cols, 0, NCOLS(queue_cols), "  ");
    }
    if (PQntuples(x->asg) > 0) {
        printf("\nassignments (%d)\n", PQntuples(x->asg));
        for (int r = 0; r < PQntuples(x->asg); r++) {
            printf("  %s -> %s (team %s, unit %s) at %s", PQgetvalue(x->asg, r, 0), PQgetvalue(x->asg, r, 1),
                   PQgetvalue(x->asg, r, 2), PQgetvalue(x->asg, r, 3), PQgetvalue(x->asg, r, 5));
            if (!PQgetisnull(x->asg, r, 7))
                printf(", accepted %s", PQgetvalue(x->asg, r, 7));
            else if (PQgetisnull(x->asg, r, 8))
                printf(", accept by %s", PQgetvalue(x->asg, r, 6));
            if (!PQgetisnull(x->asg, r, 8))
                printf(", ended %s (%s)", PQgetvalue(x->asg, r, 8), PQgetvalue(x->asg, r, 9));
            putchar('\n');
        }
    }
    if (PQntuples(x->clk) > 0) {
        printf("\nSLA clocks (%d)\n", PQntuples(x->clk));
        for (int r = 0; r < PQntuples(x->clk); r++) {
            const PGresult *k = x->clk;
            printf("  %s #%s (%s): %s", PQgetvalue(k, r, 0), PQgetvalue(k, r, 1), PQgetvalue(k, r, 2),
                   PQgetvalue(k, r, 3));
            if (!PQgetisnull(k, r, 4))
                printf(" %s", PQgetvalue(k, r, 4));
            printf(", started %s", PQgetvalue(k, r, 5));
            if (!PQgetisnull(k, r, 6))
                printf(", due %s", PQgetvalue(k, r, 6));
            if (!PQgetisnull(k, r, 7))
                printf(", BREACHED %s", PQgetvalue(k, r, 7));
            if (!PQgetisnull(k, r, 8))
                printf(", stopped %s", PQgetvalue(k, r, 8));
            printf(PQgetisnull(k, r, 9) ? " [calendar time]\n" : " [business time: %s]\n", PQgetvalue(k, r, 9));
        }
    }
    if (PQntuples(x->esc) > 0) {
        printf("\nescalations (%d)\n", PQntuples(x->esc));
        for (int r = 0; r < PQntuples(x->esc); r++) {
            const PGresult *e = x->esc;
            printf("  %s level %s -> %s%s%s (%s) at %s%s%s\n", PQgetvalue(e, r, 0), PQgetvalue(e, r, 1),
                   PQgetvalue(e, r, 2), PQgetvalue(e, r, 3)[0] ? " of " : "", PQgetvalue(e, r, 3), PQgetvalue(e, r, 4),
                   PQgetvalue(e, r, 5), PQgetisnull(e, r, 6) ? "" : ", acknowledged ", PQgetvalue(e, r, 6));
        }
    }
    if (cust != NULL && PQntuples(cust) == 1) {
        printf("\ncustomer\n");
        print_fields(cust, 0, customer_cols, 0, NCOLS(customer_cols), "  ");
    }
    if (PQntuples(att) > 0) {
        printf("\nattachments (%d)\n", PQntuples(att));
        for (int r = 0; r < PQntuples(att); r++)
            printf("  %s  %s  sha256:%s  %s bytes%s%s\n", PQgetvalue(att, r, 0), PQgetvalue(att, r, 1),
                   PQgetvalue(att, r, 2), PQgetvalue(att, r, 3), PQgetvalue(att, r, 4)[0] ? "  " : "",
                   PQgetvalue(att, r, 4));
    }
    print_history(h);
    return EXIT_ACK;
}

static int ticket_show_json(const ticket_rows *x)
{
    const PGresult *t = x->t, *cust = x->cust, *att = x->att, *h = x->h;
    json_t *o = row_json(t, 0, ticket_cols, NCOLS(ticket_cols));
    json_object_set_new(o, "classification",
                        PQntuples(x->cls) == 1 ? row_json(x->cls, 0, classification_cols, NCOLS(classification_cols))
                                               : json_null());
    json_object_set_new(o, "queued",
                        PQntuples(x->q) == 1 ? row_json(x->q, 0, queue_cols, NCOLS(queue_cols)) : json_null());
    json_object_set_new(o, "assignments", rows_json(x->asg, assignment_cols, NCOLS(assignment_cols)));
    json_object_set_new(o, "sla_clocks", rows_json(x->clk, clock_cols, NCOLS(clock_cols)));
    json_object_set_new(o, "escalations", rows_json(x->esc, escalation_cols, NCOLS(escalation_cols)));

    if (cust != NULL)
        json_object_set_new(
            o, "customer", PQntuples(cust) == 1 ? row_json(cust, 0, customer_cols, NCOLS(customer_cols)) : json_null());
    json_object_set_new(o, "attachments", rows_json(att, attachment_cols, NCOLS(attachment_cols)));
    json_object_set_new(o, "history", rows_json(h, history_cols, NCOLS(history_cols)));
    json_dumpf(o, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(o);
    return EXIT_ACK;
}

static int ticket_show(const globals *g, const char *id, bool as_json, bool with_customer)
{
    ticket_rows x = {0};
    int rc = EXIT_NACK;
    PGconn *conn = db_connect(g);

    if (conn == NULL)
        return EXIT_UNREACHABLE;
    x.t = db_select(conn, ticket_cols, NCOLS(ticket_cols), "FROM tickets t WHERE t.id = $1::uuid", id);
    if (x.t != NULL && PQntuples(x.t) == 0)
        fprintf(stderr, "error: ticket %s not found\n", id);
    if (x.t != NULL && PQntuples(x.t) == 1) {
        if (with_customer)
            x.cust = db_select(conn, customer_cols, NCOLS(customer_cols),
                               "FROM tickets t JOIN customers c ON c.id = t.customer_id WHERE t.id = $1::uuid", id);
        x.att = db_select(conn, attachment_cols, NCOLS(attachment_cols),
                          "FROM ticket_attachments a WHERE a.ticket_id = $1::uuid ORDER BY a.ord", id);
        x.h = db_select(conn, history_cols, NCOLS(history_cols),
                        "FROM ticket_history h WHERE h.ticket_id = $1::uuid ORDER BY h.seq", id);
        x.cls = db_select(conn, classification_cols, NCOLS(classification_cols),
                          "FROM ticket_classifications k WHERE k.ticket_id = $1::uuid", id);
        x.asg = db_select(conn, assignment_cols, NCOLS(assignment_cols),
                          "FROM ticket_assignments a WHERE a.ticket_id = $1::uuid ORDER BY a.id", id);
        x.q = db_select(conn, queue_cols, NCOLS(queue_cols), "FROM dispatch_queue q WHERE q.ticket_id = $1::uuid", id);
        x.clk = db_select(conn, clock_cols, NCOLS(clock_cols),
                          "FROM sla_clocks c WHERE c.ticket_id = $1::uuid ORDER BY c.id", id);
        x.esc = db_select(conn, escalation_cols, NCOLS(escalation_cols),
                          "FROM sla_escalations e WHERE e.ticket_id = $1::uuid ORDER BY e.id", id);
        if (x.att != NULL && x.h != NULL && x.cls != NULL && x.asg != NULL && x.q != NULL && x.clk != NULL &&
            x.esc != NULL && (x.cust != NULL || !with_customer))
            rc = as_json ? ticket_show_json(&x) : ticket_show_text(&x);
    }
    PQclear(x.t);
    PQclear(x.cust);
    PQclear(x.att);
    PQclear(x.h);
    PQclear(x.cls);
    PQclear(x.asg);
    PQclear(x.q);
    PQclear(x.clk);
    PQclear(x.esc);
    PQfinish(conn);
    return rc;
}

static const struct option ticket_opts[] = {
    {"json", no_argument, NULL, OPT_AS_JSON},
    {"with-customer", no_argument, NULL, OPT_WITH_CUSTOMER},
    GLOBAL_OPTIONS,
};

static int cmd_ticket(globals *g, int argc, char **argv)
{
    cli p;
    bool as_json = false, with_customer = false;
    int c, rc = EXIT_ACK;
    uuid_t u;

    cli_init(&p, "ticket", help_ticket, ticket_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c == OPT_AS_JSON)
            as_json = true;
        else
            with_customer = true;
    }
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("ticket", "wants a subcommand: show TICKET_ID");
    if (strcmp(argv[optind], "show") != 0)
        return usage_error("ticket", "unknown subcommand '%s' (there is: show)", argv[optind]);
    if (argc - optind != 2)
        return usage_error("ticket", "show wants exactly one TICKET_ID");
    if (uuid_parse(argv[optind + 1], u) != 0)
        return usage_error("ticket", "'%s' is not a ticket id (a UUID)", argv[optind + 1]);
    return ticket_show(g, argv[optind + 1], as_json, with_customer);
}

/* ------------------------------------------------------------------------------------------------
 * rules: the classifier's operator rules in PostgreSQL
 *
 * Table classifier_rulesets (deploy/sql/0002_classifier.sql): version (the content hash, the
 * key), body (jsonb), loaded_at, loaded_by, active (a partial unique index allows one active row).
 * A load locks the table against other loads (readers are not blocked), so two operators loading
 * at once are serialised instead of one failing on the unique index. Classifiers LISTEN on
 * redress_rules; the NOTIFY is delivered only if the transaction commits.
 * --------------------------------------------------------------------------------------------- */

/* A parsed rules file, or NULL with the reason printed; *rc says why (usage or refused). */
static rd_ruleset *rules_read(const char *path, char **text, size_t *len, int *rc)
{
    char err[600];
    rd_ruleset *rs;

    *text = read_all(path, len, err, sizeof(err));
    if (*text == NULL) {
        fprintf(stderr, "error: %s\n", err);
        *rc = EXIT_USAGE;
        return NULL;
    }
    rs = rd_rules_parse(*text, *len, err, sizeof(err));
    if (rs == NULL) {
        fprintf(stderr, "error: %s: %s\n", path, err);
        free(*text);
        *text = NULL;
        *rc = EXIT_NACK;
    }
    return rs;
}

static int rules_check(const char *path)
{
    char *text;
    size_t len;
    int rc = EXIT_ACK;
    rd_ruleset *rs = rules_read(path, &text, &len, &rc);

    if (rs == NULL)
        return rc;
    printf("ok %d rule%s version %s\n", rd_rules_count(rs), rd_rules_count(rs) == 1 ? "" : "s", rd_rules_version(rs));
    rd_rules_destroy(&rs);
    free(text);
    return EXIT_ACK;
}

/* Runs one statement; NULL after printing PostgreSQL's message. */
static PGresult *rules_exec(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    fprintf(stderr, "error: %s", PQresultErrorMessage(res));
    if (strstr(PQresultErrorMessage(res), "classifier_rulesets") != NULL &&
        strstr(PQresultErrorMessage(res), "does not exist") != NULL)
        fprintf(stderr, "hint: the database lacks migration 0002_classifier.sql\n");
    PQclear(res);
    return NULL;
}

static bool rules_exec_ok(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *res = rules_exec(conn, sql, n, params);

    PQclear(res);
    return res != NULL;
}

/*
 * The classifiers will parse body::text as PostgreSQL returns it (jsonb re-orders keys and
 * drops whitespace), and compare the version they compute with the stored one. Check here, in the
 * same transaction, that they will agree; otherwise they would re-parse on every refresh.
 */
static bool rules_verify_stored(PGconn *conn, const char *version)
{
    const char *params[] = {version};
    PGresult *res = rules_exec(conn, "SELECT body::text FROM classifier_rulesets WHERE version = $1", 1, params);
    char err[600];
    bool ok = false;

    if (res == NULL)
        return false;
    if (PQntuples(res) == 1) {
        const char *body = PQgetvalue(res, 0, 0);
        rd_ruleset *rs = rd_rules_parse(body, strlen(body), err, sizeof(err));
        ok = rs != NULL && strcmp(rd_rules_version(rs), version) == 0;
        if (!ok)
            fprintf(stderr, "error: the stored document reads back as %s, not %s%s%s\n",
                    rs ? rd_rules_version(rs) : "invalid", version, rs ? "" : ": ", rs ? "" : err);
        rd_rules_destroy(&rs);
    }
    PQclear(res);
    return ok;
}

/* The active version before the load ("" when none), into prev. */
static bool rules_active_version(PGconn *conn, char *prev, size_t prevlen)
{
    PGresult *res = rules_exec(conn, "SELECT version FROM classifier_rulesets WHERE active", 0, NULL);

    if (res == NULL)
        return false;
    snprintf(prev, prevlen, "%s", PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return true;
}

/* Every step of a load inside the open transaction; false after printing why. */
static bool rules_store(PGconn *conn, const char *version, const char *body, const char *by, char *prev, size_t prevlen)
{
    const char *p_ins[] = {version, body, by};
    const char *p_one[] = {version};

    return rules_exec_ok(conn, "LOCK TABLE classifier_rulesets IN EXCLUSIVE MODE", 0, NULL) &&
           rules_active_version(conn, prev, prevlen) &&
           rules_exec_ok(conn,
                         "INSERT INTO classifier_rulesets (version, body, loaded_by, active)"
                         " VALUES ($1, $2::jsonb, $3, false)"
                         " ON CONFLICT (version) DO UPDATE SET loaded_at = now(), loaded_by = EXCLUDED.loaded_by",
                         3, p_ins) &&
           /* two statements: the unique index is checked row by row, so the old one goes first */
           rules_exec_ok(conn, "UPDATE classifier_rulesets SET active = false WHERE active AND version <> $1", 1,
                         p_one) &&
           rules_exec_ok(conn, "UPDATE classifier_rulesets SET active = true WHERE version = $1", 1, p_one) &&
           rules_verify_stored(conn, version) && rules_exec_ok(conn, "SELECT pg_notify('redress_rules', $1)", 1, p_one);
}

static void rules_print_loaded(const char *version, int n, const char *prev, bool dry_run)
{
    const char *verb = dry_run ? "dry run: would load" : "loaded", *s = n == 1 ? "" : "s";

    if (strcmp(prev, version) == 0)
        printf("%s %s (%d rule%s); it %s already the active ruleset\n", verb, version, n, s, dry_run ? "is" : "was");
    else if (prev[0] != '\0')
        printf("%s %s (%d rule%s), active, replacing %s\n", verb, version, n, s, prev);
    else
        printf("%s %s (%d rule%s), active (none was before)\n", verb, version, n, s);
    if (dry_run)
        printf("dry run: rolled back; nothing changed and no classifier was notified\n");
}

static int rules_load(const globals *g, const char *path, bool dry_run, const char *by)
{
    char *text, prev[128] = "";
    size_t len;
    int rc = EXIT_ACK;
    rd_ruleset *rs = rules_read(path, &text, &len, &rc);

    if (rs == NULL)
        return rc;
    PGconn *conn = db_connect(g);
    if (conn == NULL) {
        rc = EXIT_UNREACHABLE;
    } else if (!rules_exec_ok(conn, "BEGIN", 0, NULL)) {
        rc = PQstatus(conn) == CONNECTION_OK ? EXIT_NACK : EXIT_UNREACHABLE;
    } else {
        bool ok = rules_store(conn, rd_rules_version(rs), text, by, prev, sizeof(prev)) &&
                  ctl_audit_record(conn, g, "rules.load", "ruleset", rd_rules_version(rs), NULL) &&
                  rules_exec_ok(conn, dry_run ? "ROLLBACK" : "COMMIT", 0, NULL);
        if (ok)
            rules_print_loaded(rd_rules_version(rs), rd_rules_count(rs), prev, dry_run);
        else
            rules_exec_ok(conn, "ROLLBACK", 0, NULL);
        rc = ok ? EXIT_ACK : PQstatus(conn) == CONNECTION_OK ? EXIT_NACK : EXIT_UNREACHABLE;
    }
    PQfinish(conn);
    rd_rules_destroy(&rs);
    free(text);
    return rc;
}

/* One rule as show prints it; value may be a string or (priority target) a number. */
typedef struct {
    const char *name, *target, *description;
    char value[300];
    long long priority;
    size_t index;
} shown_rule;

static int shown_rule_order(const void *a, const void *b)
{
    const shown_rule *x = a, *y = b;

    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* The rules of a stored document in evaluation order; the strings point into doc. */
static shown_rule *rules_list(json_t *doc, size_t *n)
{
    json_t *arr = json_object_get(doc, "rules"), *r;
    size_t i;
    shown_rule *out = calloc(json_array_size(arr) + 1, sizeof(*out));

    *n = 0;
    if (out == NULL)
        return NULL;
    json_array_foreach (arr, i, r) {
        shown_rule *s = &out[(*n)++];
        json_t *v = json_object_get(r, "value");
        s->name = json_string_value(json_object_get(r, "name"));
        s->target = json_string_value(json_object_get(r, "target"));
        s->description = json_string_value(json_object_get(r, "description"));
        if (json_is_integer(v))
            snprintf(s->value, sizeof(s->value), "%lld", (long long)json_integer_value(v));
        else
            snprintf(s->value, sizeof(s->value), "%s", json_is_string(v) ? json_string_value(v) : "");
        s->priority = json_integer_value(json_object_get(r, "priority"));
        s->index = i;
    }
    qsort(out, *n, sizeof(*out), shown_rule_order);
    return out;
}

static void rules_show_text(const PGresult *res, const shown_rule *rules, size_t n)
{
    printf("version    %s\nloaded_at  %s\nloaded_by  %s\n", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
           PQgetvalue(res, 0, 2));
    printf("rules      %zu, in evaluation order (higher priority first, then file order)\n", n);
    if (n > 0)
        printf("\n  %8s  %-14s %-20s %s\n", "PRIORITY", "TARGET", "VALUE", "NAME");
    for (size_t i = 0; i < n; i++)
        printf("  %8lld  %-14s %-20s %s\n", rules[i].priority, rules[i].target ? rules[i].target : "", rules[i].value,
               rules[i].name ? rules[i].name : "");
}

static void rules_show_json(const PGresult *res, const shown_rule *rules, size_t n)
{
    json_t *o = json_object(), *arr = json_array();

    json_object_set_new(o, "version", json_string(PQgetvalue(res, 0, 0)));
    json_object_set_new(o, "loaded_at", json_string(PQgetvalue(res, 0, 1)));
    json_object_set_new(o, "loaded_by", json_string(PQgetvalue(res, 0, 2)));
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_object();
        json_object_set_new(r, "name", json_string(rules[i].name ? rules[i].name : ""));
        json_object_set_new(r, "target", json_string(rules[i].target ? rules[i].target : ""));
        json_object_set_new(r, "value", json_string(rules[i].value));
        json_object_set_new(r, "priority", json_integer(rules[i].priority));
        if (rules[i].description != NULL)
            json_object_set_new(r, "description", json_string(rules[i].description));
        json_array_append_new(arr, r);
    }
    json_object_set_new(o, "rules", arr);
    json_dumpf(o, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(o);
}

/* Warns when the stored document would not load in a classifier (edited by hand, say). */
static void rules_warn_invalid(const char *version, const char *body)
{
    char err[600];
    rd_ruleset *rs = rd_rules_parse(body, strlen(body), err, sizeof(err));

    if (rs == NULL)
        fprintf(stderr, "warning: the active ruleset does not parse, classifiers keep their previous one: %s\n", err);
    else if (strcmp(rd_rules_version(rs), version) != 0)
        fprintf(stderr, "warning: the active ruleset's content is %s, not %s as stored\n", rd_rules_version(rs),
                version);
    rd_rules_destroy(&rs);
}

static int rules_show(const globals *g, bool as_json)
{
    PGconn *conn = db_connect(g);
    PGresult *res;
    int rc = EXIT_NACK;

    if (conn == NULL)
        return EXIT_UNREACHABLE;
    res = rules_exec(conn,
                     "SELECT version, " TS("loaded_at") ", loaded_by, body::text FROM classifier_rulesets"
                                                        " WHERE active",
                     0, NULL);
    if (res == NULL && PQstatus(conn) != CONNECTION_OK)
        rc = EXIT_UNREACHABLE;
    if (res != NULL && PQntuples(res) == 0)
        fprintf(stderr, "error: no ruleset is active (load one with 'redressctl rules load FILE')\n");
    if (res != NULL && PQntuples(res) > 0) {
        json_error_t jerr;
        json_t *doc = json_loads(PQgetvalue(res, 0, 3), 0, &jerr);
        size_t n = 0;
        shown_rule *rules = doc ? rules_list(doc, &n) : NULL;
        rules_warn_invalid(PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 3));
        if (rules != NULL) {
            if (as_json)
                rules_show_json(res, rules, n);
            else
                rules_show_text(res, rules, n);
            rc = EXIT_ACK;
        }
        free(rules);
        json_decref(doc);
    }
    PQclear(res);
    PQfinish(conn);
    return rc;
}

/* Who is loading: $USER, else the account's name, else "redressctl". */
static const char *login_name(void)
{
    const char *user = getenv("USER");
    const struct passwd *pw;

    if (user != NULL && user[0] != '\0')
        return user;
    pw = getpwuid(getuid());
    return pw != NULL && pw->pw_name != NULL && pw->pw_name[0] != '\0' ? pw->pw_name : "redressctl";
}

static const struct option rules_opts[] = {
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"by", required_argument, NULL, OPT_BY},
    {"json", no_argument, NULL, OPT_AS_JSON},
    GLOBAL_OPTIONS,
};

/* Which options each subcommand takes, so that a misplaced one is an error, not ignored. */
static int rules_check_flags(const char *sub, bool dry_run, const char *by, bool as_json)
{
    bool load = strcmp(sub, "load") == 0, show = strcmp(sub, "show") == 0;

    if ((dry_run || by != NULL) && !load)
        return usage_error("rules", "%s is for 'rules load'", dry_run ? "--dry-run" : "--by");
    if (as_json && !show)
        return usage_error("rules", "--json is for 'rules show'");
    if (!load && !show && strcmp(sub, "check") != 0)
        return usage_error("rules", "unknown subcommand '%s' (there are: load, show, check)", sub);
    return EXIT_ACK;
}

static int cmd_rules(globals *g, int argc, char **argv)
{
    cli p;
    bool dry_run = false, as_json = false;
    const char *by = NULL;
    int c, rc = EXIT_ACK;

    cli_init(&p, "rules", help_rules, rules_opts, argc, argv, g);
    while ((c = cli_next(&p, &rc)) >= 0) {
        if (c == OPT_DRY_RUN)
            dry_run = true;
        else if (c == OPT_BY)
            by = optarg;
        else
            as_json = true;
    }
    if (c == CLI_EXIT)
        return rc;
    if (optind >= argc)
        return usage_error("rules", "wants a subcommand: load FILE, show, or check FILE");
    const char *sub = argv[optind];
    int nargs = argc - optind - 1;
    if ((rc = rules_check_flags(sub, dry_run, by, as_json)) != EXIT_ACK)
        return rc;
    if (strcmp(sub, "show") == 0)
        return nargs == 0 ? rules_show(g, as_json) : usage_error("rules", "show takes no arguments");
    if (nargs != 1)
        return usage_error("rules", "%s wants exactly one FILE", sub);
    if (strcmp(sub, "check") == 0)
        return rules_check(argv[optind + 1]);
    if (by == NULL)
        by = login_name();
    if (by[0] == '\0' || strlen(by) > 256 || !rd_text_valid(by, strlen(by), false))
        return usage_error("rules", "--by wants a name (one line of at most 256 bytes)");
    return rules_load(g, argv[optind + 1], dry_run, by);
}

/* ------------------------------------------------------------------------------------------------
 * main
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int (*run)(globals *g, int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"submit", cmd_submit, help_submit},
    {"act", cmd_act, help_act},
    {"ticket", cmd_ticket, help_ticket},
    {"rules", cmd_rules, help_rules},
    {"org", cmd_org, help_org},
    {"agent", cmd_agent, help_agent},
    {"taxonomy", cmd_taxonomy, help_taxonomy},
    {"calendar", cmd_calendar, help_calendar},
    {"sla", cmd_sla, help_sla},
    {"report", cmd_report, help_report},
    {"keys", cmd_keys, help_keys},
    {"customer", cmd_customer, help_customer},
    {"retention", cmd_retention, help_retention},
    {"audit", cmd_audit, help_audit},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOLS(commands); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int unknown_command(const char *name)
{
    for (size_t i = 0; i < NCOLS(commands); i++)
        if (distance(name, commands[i].name) <= 2)
            return usage_error("", "unknown command '%s'; did you mean '%s'?", name, commands[i].name);
    return usage_error("",
                       "unknown command '%s' (commands: submit, act, ticket, rules, org, agent, taxonomy, calendar,"
                       " sla, report, customer, retention, audit, keys)",
                       name);
}

/* "help [COMMAND]" */
static int cmd_help(int argc, char **argv)
{
    const command *cmd = argc > 1 ? find_command(argv[1]) : NULL;

    if (argc > 1 && cmd == NULL)
        return unknown_command(argv[1]);
    fputs(cmd != NULL ? cmd->help : help_main, stdout);
    return EXIT_ACK;
}

/* Defaults from the environment (REDRESS_INTAKE_ENDPOINT, REDRESS_GATEWAY_ID, REDRESS_PG_DSN). */
static rd_config *load_defaults(globals *g)
{
    char err[256];
    rd_config *cfg = rd_config_load(NULL, err, sizeof(err));

    if (cfg == NULL) {
        fprintf(stderr, "error: %s\n", err);
        return NULL;
    }
    g->endpoint = rd_config_str(cfg, "intake.endpoint", DEFAULT_ENDPOINT);
    g->gateway = rd_config_str(cfg, "gateway.id", DEFAULT_GATEWAY);
    g->dsn = rd_config_str(cfg, "pg.dsn", DEFAULT_DSN);
    g->timeout_ms = 10000;
    return cfg;
}

int main(int argc, char **argv)
{
    static const struct option global_opts[] = {GLOBAL_OPTIONS};
    globals g;
    cli p;
    int c, rc = EXIT_ACK;
    rd_config *cfg = load_defaults(&g);

    if (cfg == NULL)
        return EXIT_USAGE;
    cli_init(&p, "", help_main, global_opts, argc, argv, &g);
    p.optstring = "+:h"; /* stop at the command: what follows is its business */
    while ((c = cli_next(&p, &rc)) >= 0)
        ;
    if (c == CLI_EXIT) {
        /* nothing */
    } else if (optind >= argc) {
        rc = usage_error("", "no command given (commands: submit, act, ticket, rules, org, agent, taxonomy, calendar,"
                             " sla, report, customer, retention, audit, keys)");
    } else if (strcmp(argv[optind], "help") == 0) {
        rc = cmd_help(argc - optind, argv + optind);
    } else {
        const command *cmd = find_command(argv[optind]);
        rc = cmd != NULL ? cmd->run(&g, argc - optind, argv + optind) : unknown_command(argv[optind]);
    }
    fflush(stdout);
    rd_config_destroy(&cfg);
    return rc;
}
