/*
 * itest.c -- see itest.h.
 */
#include "itest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rd_time.h"
#include <zmq.h>

#ifndef REDRESS_INTAKE_BIN
#error "REDRESS_INTAKE_BIN must name the intake binary"
#endif

/* Ports are picked below the kernel's ephemeral range (as tests/lib/servers.sh does): outgoing
 * connections take their local port from that range, so one of them could be sitting on a port
 * bind(0) handed us by the time a service binds it. Random, checked by binding (no SO_REUSEADDR),
 * and never the same twice in one test process. */
static bool bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

int itest_free_port(void)
{
    static int given[256], ngiven;
    static bool seeded;
    int lo = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != NULL) {
        if (fscanf(f, "%d", &lo) != 1)
            lo = 32768;
        fclose(f);
    }
    if (!seeded) {
        srand((unsigned)getpid() ^ (unsigned)time(NULL));
        seeded = true;
    }
    for (int i = 0; i < 200 && lo > 21024; i++) {
        int port = 20000 + rand() % (lo - 20000);
        bool dup = false;
        for (int j = 0; j < ngiven && !dup; j++)
            dup = given[j] == port;
        if (dup || !bindable(port))
            continue;
        if (ngiven < 256)
            given[ngiven++] = port;
        return port;
    }
    /* no room below the ephemeral range: let the kernel choose */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t l = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static char extraEnv[1024];

/* Every intake this test started, so a failing test (cmocka returns from main) leaves none behind. */
static pid_t children[16];

static void killChildren(void)
{
    for (int i = 0; i < 16; i++)
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
}

static void remember(pid_t pid, pid_t old)
{
    static bool registered;
    if (!registered) {
        atexit(killChildren);
        registered = true;
    }
    for (int i = 0; i < 16; i++)
        if (children[i] == old) {
            children[i] = pid;
            return;
        }
}

/* The test's own ports first; extra_env (set later) may override them. */
static pid_t spawnIntake(itest_intake *s)
{
    char env[2048];
    snprintf(env, sizeof(env),
             "REDRESS_INTAKE_BIND=tcp://127.0.0.1:%d;REDRESS_INTAKE_PUSH_BIND=tcp://127.0.0.1:%d;"
             "REDRESS_INTAKE_PUB_BIND=tcp://127.0.0.1:%d;REDRESS_INTAKE_HTTP_PORT=%d;%s",
             s->port, s->push_port, s->pub_port, s->http_port, extraEnv);
    return itest_spawn(REDRESS_INTAKE_BIN, env, s->log_path);
}

pid_t itest_spawn(const char *bin, const char *extra_env, const char *log_path)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid > 0)
        remember(pid, 0);
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(1);
    char env[2048];
    snprintf(env, sizeof(env), "%s", extra_env ? extra_env : "");
    char *save = NULL;
    for (char *kv = strtok_r(env, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (eq) {
            *eq = '\0';
            setenv(kv, eq + 1, 1);
        }
    }
    FILE *f = freopen(log_path, "a", stderr);
    (void)f;
    execl(bin, bin, (char *)NULL);
    _exit(127);
}

void itest_reap(pid_t *pid, int sig)
{
    if (*pid <= 0)
        return;
    kill(*pid, sig);
    waitpid(*pid, NULL, 0);
    remember(0, *pid);
    *pid = 0;
}

int itest_run(const char *cmdline)
{
    int rc = system(cmdline);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

bool itest_wait_count(PGconn *c, const char *sql, int64_t want, int timeout_ms)
{
    int64_t deadline = rd_mono_us() + (int64_t)timeout_ms * 1000, got = -1;
    while (rd_mono_us() < deadline) {
        got = itest_count(c, sql);
        if (got == want)
            return true;
        rd_sleep_ms(100);
    }
    fprintf(stderr, "waited %d ms for %lld from: %s (last: %lld)\n", timeout_ms, (long long)want, sql, (long long)got);
    return false;
}

bool itest_intake_start(itest_intake *s, const char *extra_env)
{
    memset(s, 0, sizeof(*s));
    s->port = itest_free_port();
    s->push_port = itest_free_port();
    s->pub_port = itest_free_port();
    s->http_port = itest_free_port();
    snprintf(s->endpoint, sizeof(s->endpoint), "tcp://127.0.0.1:%d", s->port);
    const char *dir = getenv("REDRESS_TEST_DIR");
    snprintf(s->log_path, sizeof(s->log_path), "%s/intake-%d.log", dir ? dir : "/tmp", s->port);
    snprintf(extraEnv, sizeof(extraEnv), "%s", extra_env ? extra_env : "");
    return itest_intake_restart(s);
}

bool itest_intake_restart(itest_intake *s)
{
    s->pid = spawnIntake(s);
    if (s->pid < 0)
        return false;
    bool ok = itest_intake_ready(s, 20000);
    if (!ok) {
        fprintf(stderr, "intake did not become ready; its log (%s):\n", s->log_path);
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "tail -n 30 '%s' >&2", s->log_path);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
    }
    return ok;
}

bool itest_intake_ready(itest_intake *s, int timeout_ms)
{
    char err[256];
    rd_client *c = rd_client_new(s->endpoint, err, sizeof(err));
    if (c == NULL)
        return false;
    Redress__V1__Envelope e;
    Redress__V1__TicketAction a;
    itest_action(&e, &a, "itest-probe", "00000000-0000-7000-8000-000000000000", REDRESS__V1__ACTION_KIND__ACTION_CHASE);
    size_t len;
    uint8_t *buf = itest_pack(&e, &len);
    int64_t deadline = rd_mono_us() + (int64_t)timeout_ms * 1000;
    bool ready = false;
    while (!ready && rd_mono_us() < deadline) {
        if (s->pid > 0 && waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            remember(0, s->pid);
            s->pid = 0;
            break; /* it died */
        }
        rd_client_send_raw(c, buf, len);
        Redress__V1__Reply *r = NULL;
        if (rd_client_recv(c, 300, &r) == 1) {
            ready = r->error == REDRESS__V1__ERROR_CODE__ERROR_NOT_FOUND;
            redress__v1__reply__free_unpacked(r, NULL);
        }
        if (!ready)
            rd_sleep_ms(100);
    }
    free(buf);
    rd_client_destroy(&c);
    return ready;
}

void itest_intake_kill(itest_intake *s, int sig)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, sig);
    waitpid(s->pid, NULL, 0);
    remember(0, s->pid);
    s->pid = 0;
}

void itest_intake_stop(itest_intake *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            remember(0, s->pid);
            s->pid = 0;
            return;
        }
        rd_sleep_ms(100);
    }
    itest_intake_kill(s, SIGKILL);
}

PGconn *itest_pg(void)
{
    const char *dsn = getenv("REDRESS_PG_DSN");
    if (dsn == NULL) {
        fprintf(stderr, "REDRESS_PG_DSN is not set: run under tests/lib/with-stack.sh\n");
        exit(1);
    }
    PGconn *c = PQconnectdb(dsn);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "PostgreSQL: %s\n", PQerrorMessage(c));
        exit(1);
    }
    return c;
}

int64_t itest_count(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int64_t v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else
        fprintf(stderr, "query failed: %s: %s\n", sql, PQerrorMessage(c));
    PQclear(r);
    return v;
}

char *itest_db_fingerprint(PGconn *c)
{
    /* every table of every migration: "nothing changed" must mean nothing anywhere */
    static const char *const tables[] = {"customers",
                                         "tickets",
                                         "ticket_attachments",
                                         "ticket_history",
                                         "inbound_events",
                                         "consumer_offsets",
                                         "taxonomy_business_types",
                                         "taxonomy_categories",
                                         "classifier_rulesets",
                                         "ticket_classifications",
                                         "departments",
                                         "teams",
                                         "agents",
                                         "agent_presence",
                                         "routing_rules",
                                         "accept_limits",
                                         "ticket_assignments",
                                         "dispatch_queue",
                                         "business_calendars",
                                         "sla_policies",
                                         "sla_escalation_levels",
                                         "sla_clocks",
                                         "sla_events",
                                         "sla_escalations",
                                         "sla_queue"};
    size_t cap = 4096, len = 0;
    char *out = calloc(1, cap);
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '')"
                 " FROM %s t",
                 tables[i]);
        PGresult *r = PQexec(c, sql);
        const char *v = PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "error";
        len += (size_t)snprintf(out + len, cap - len, "%s=%s;", tables[i], v);
        PQclear(r);
    }
    return out;
}

uint8_t *itest_pack(const Redress__V1__Envelope *e, size_t *len)
{
    *len = redress__v1__envelope__get_packed_size(e);
    uint8_t *buf = malloc(*len + 1);
    redress__v1__envelope__pack(e, buf);
    return buf;
}

void itest_new_ticket(Redress__V1__Envelope *e, Redress__V1__NewTicket *t, const char *event_id)
{
    redress__v1__envelope__init(e);
    redress__v1__new_ticket__init(t);
    e->schema_version = 1;
    e->gateway_id = "itest-gw";
    e->event_id = (char *)event_id;
    e->occurred_at_ms = rd_now_ms() - 60000;
    e->payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_NEW_TICKET;
    e->new_ticket = t;
    t->channel = REDRESS__V1__CHANNEL__CHANNEL_HOTLINE;
    t->customer_ref = "C-1001";
    t->customer_name = "张三";
    t->customer_phone = "+86 138 0000 0000";
    t->region = "CN-44-03";
    t->language = "zh-CN";
    t->subject = "停电三天无人处理";
    t->body = "我家从周一开始停电，打了三次95598都没有人来修。\n请尽快处理！";
    t->organisation = "供电公司";
    t->product = "居民用电";
}

void itest_action(Redress__V1__Envelope *e, Redress__V1__TicketAction *a, const char *event_id, const char *ticket_id,
                  Redress__V1__ActionKind kind)
{
    redress__v1__envelope__init(e);
    redress__v1__ticket_action__init(a);
    e->schema_version = 1;
    e->gateway_id = "itest-gw";
    e->event_id = (char *)event_id;
    e->occurred_at_ms = rd_now_ms();
    e->payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_ACTION;
    e->action = a;
    a->ticket_id = (char *)ticket_id;
    a->kind = kind;
    a->actor = "agent-007";
}

Redress__V1__Reply *itest_call_raw(rd_client *c, const void *buf, size_t len)
{
    if (rd_client_send_raw(c, buf, len) < 0)
        return NULL;
    Redress__V1__Reply *r = NULL;
    return rd_client_recv(c, 10000, &r) == 1 ? r : NULL;
}

Redress__V1__Reply *itest_call(rd_client *c, const Redress__V1__Envelope *e)
{
    size_t len;
    uint8_t *buf = itest_pack(e, &len);
    Redress__V1__Reply *r = itest_call_raw(c, buf, len);
    free(buf);
    return r;
}

const char *itest_cfpb_path(void)
{
    static char path[1024];
    struct stat st;
    snprintf(path, sizeof(path), "%s/../shared/datasets/cfpb/complaints_sample.csv", REDRESS_SOURCE_DIR);
    return stat(path, &st) == 0 ? path : NULL;
}

Redress__V1__Reply *itest_call_frames(const char *endpoint, const void **frames, const size_t *lens, int n)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = 10000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    Redress__V1__Reply *r = NULL;
    if (zmq_connect(s, endpoint) == 0) {
        for (int i = 0; i < n; i++)
            zmq_send(s, frames[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0);
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, 0) >= 0)
            r = redress__v1__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
        zmq_msg_close(&m);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return r;
}

int itest_ctl(const char *dir, const char *fmt, ...)
{
    char args[2048], line[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s %s >%s/out.txt 2>%s/err.txt", REDRESS_REDRESSCTL_BIN, args, dir, dir);
    int rc = itest_run(line);
    snprintf(line, sizeof(line), "echo '--- redressctl %.1000s: %d'; head -c 3000 %s/out.txt; cat %s/err.txt", args, rc,
             dir, dir);
    itest_run(line);
    return rc;
}

bool itest_ctl_printed(const char *dir, const char *which, const char *needle)
{
    char path[600];
    static char buf[1 << 20];
    snprintf(path, sizeof(path), "%s/%s.txt", dir, which);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}
