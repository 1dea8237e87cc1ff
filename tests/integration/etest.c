/*
 * etest.c -- see etest.h.
 */
#include "etest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "rd_time.h"
#include "redress.pb-c.h"

#ifndef REDRESS_ESCALATION_BIN
#error "REDRESS_ESCALATION_BIN must name the escalation binary"
#endif

/* ---- the service ----------------------------------------------------------------------------- */

void etest_set_clock(const etest_service *s, int64_t now_ms)
{
    if (s->clock_path[0] == '\0')
        fail_msg("etest_set_clock: the service runs on the real clock");
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->clock_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        fail_msg("cannot write %s", tmp);
    fprintf(f, "%lld\n", (long long)now_ms);
    if (fclose(f) != 0 || rename(tmp, s->clock_path) != 0)
        fail_msg("cannot write %s", s->clock_path);
}

bool etest_start(etest_service *s, int events_port, int64_t clock_ms, const char *extra_env)
{
    memset(s, 0, sizeof(*s));
    s->d.http_port = itest_free_port();
    s->d.pub_port = itest_free_port();
    s->events_port = events_port > 0 ? events_port : itest_free_port();
    const char *dir = getenv("REDRESS_TEST_DIR");
    if (dir == NULL)
        dir = "/tmp";
    snprintf(s->d.log_path, sizeof(s->d.log_path), "%s/escalation-%d.log", dir, s->d.http_port);
    if (clock_ms != ETEST_REAL) {
        snprintf(s->clock_path, sizeof(s->clock_path), "%s/escalation-clock-%d", dir, s->d.http_port);
        etest_set_clock(s, clock_ms);
    }
    char env[2048];
    snprintf(env, sizeof(env),
             "REDRESS_ESCALATION_EVENTS_ENDPOINT=tcp://127.0.0.1:%d;REDRESS_ESCALATION_PUB_BIND=tcp://127.0.0.1:%d;"
             "REDRESS_ESCALATION_HTTP_BIND=127.0.0.1;REDRESS_ESCALATION_HTTP_PORT=%d;"
             "REDRESS_ESCALATION_CLOCK_FILE=%s;REDRESS_ESCALATION_POLL_MS=20;REDRESS_ESCALATION_LEASE_MS=3000;"
             "REDRESS_LOG_LEVEL=debug;%s",
             s->events_port, s->d.pub_port, s->d.http_port, s->clock_path, extra_env ? extra_env : "");
    s->d.pid = itest_spawn(REDRESS_ESCALATION_BIN, env, s->d.log_path);
    if (s->d.pid <= 0)
        return false;
    if (dtest_wait_health(&s->d, 200, 20000))
        return true;
    dtest_tail(&s->d, 40);
    return false;
}

void etest_stop(etest_service *s)
{
    dtest_stop(&s->d);
}

void etest_kill(etest_service *s)
{
    itest_reap(&s->d.pid, SIGKILL);
}

void etest_tail(const etest_service *s, int lines)
{
    if (s->d.log_path[0])
        dtest_tail(&s->d, lines);
}

/* GET path on 127.0.0.1:port; the whole answer (malloc'd) or NULL. */
static char *httpGet(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    a.sin_port = htons((uint16_t)port);
    char *buf = NULL;
    size_t cap = 0, got = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        char req[256];
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
        if (write(fd, req, (size_t)n) == n) {
            for (;;) {
                if (cap - got < 4096) {
                    cap = cap ? cap * 2 : 65536;
                    char *nb = realloc(buf, cap);
                    if (nb == NULL)
                        break;
                    buf = nb;
                }
                ssize_t k = read(fd, buf + got, cap - got - 1);
                if (k <= 0)
                    break;
                got += (size_t)k;
            }
        }
    }
    close(fd);
    if (buf)
        buf[got] = '\0';
    return buf;
}

double etest_metric(const etest_service *s, const char *name)
{
    char *body = httpGet(s->d.http_port, "/metrics");
    double v = -1;
    size_t len = strlen(name);
    for (char *line = body; line && *line;) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, name, len) == 0 && line[len] == ' ') {
            v = strtod(line + len + 1, NULL);
            break;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(body);
    return v;
}

/* ---- PostgreSQL ------------------------------------------------------------------------------ */

void etest_reset(PGconn *c, redisContext *r)
{
    /* the policies as migrated, once per connection (a test may change them) */
    dtest_sql(c, "CREATE TEMP TABLE IF NOT EXISTS etest_policies AS SELECT * FROM sla_policies");
    dtest_sql(c, "CREATE TEMP TABLE IF NOT EXISTS etest_levels AS SELECT * FROM sla_escalation_levels");
    dtest_reset(c, r); /* tickets CASCADE: sla_clocks, sla_events, sla_escalations */
    dtest_sql(c, "TRUNCATE sla_queue, sla_events, sla_escalations, sla_clocks");
    dtest_sql(c, "DELETE FROM sla_policies");
    dtest_sql(c, "INSERT INTO sla_policies SELECT * FROM etest_policies");
    dtest_sql(c, "INSERT INTO sla_escalation_levels SELECT * FROM etest_levels");
}

bool etest_settle(PGconn *c, int timeout_ms)
{
    return dtest_wait(c, 0, timeout_ms, "SELECT count(*) FROM sla_queue");
}

bool etest_stays(PGconn *c, int64_t want, int ms, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(sql))
        fail_msg("SQL too long: %.200s", fmt);
    int64_t deadline = rd_mono_us() + (int64_t)ms * 1000;
    do {
        int64_t got = itest_count(c, sql);
        if (got != want) {
            fprintf(stderr, "expected %lld to stay for %d ms, got %lld from: %s\n", (long long)want, ms, (long long)got,
                    sql);
            return false;
        }
        rd_sleep_ms(20);
    } while (rd_mono_us() < deadline);
    return true;
}

void etest_ticket(PGconn *c, const dtest_ticket *t, int64_t received_ms, char id[37])
{
    char ids[1][37];
    dtest_tickets(c, t, 1, ids);
    dtest_sql(c,
              "UPDATE tickets SET state = 'new', created_at = to_timestamp(%lld / 1000.0),"
              " occurred_at = to_timestamp(%lld / 1000.0), updated_at = to_timestamp(%lld / 1000.0) WHERE id = '%s'",
              (long long)received_ms, (long long)received_ms, (long long)received_ms, ids[0]);
    snprintf(id, 37, "%s", ids[0]);
}

int64_t etest_hist(PGconn *c, const char *tid, const char *kind, const char *from_state, const char *to_state,
                   int64_t at_ms, const char *reason)
{
    char from[64];
    if (from_state)
        snprintf(from, sizeof(from), "'%s'", from_state);
    else
        snprintf(from, sizeof(from), "NULL");
    int64_t seq = dtest_num(c,
                            "WITH u AS (UPDATE tickets SET state = '%s', version = version + 1 WHERE id = '%s'"
                            " RETURNING id)"
                            " INSERT INTO ticket_history (ticket_id, kind, from_state, to_state, at, actor, reason)"
                            " SELECT id, '%s', %s, '%s', to_timestamp(%lld / 1000.0), 'etest', '%s' FROM u"
                            " RETURNING seq",
                            to_state, tid, kind, from, to_state, (long long)at_ms, reason ? reason : "");
    if (seq <= 0)
        fail_msg("history row %s on %s failed", kind, tid);
    return seq;
}

void etest_assign(PGconn *c, const char *tid, const char *agent, const char *team, const char *dept, int64_t at_ms,
                  int64_t accept_due_ms)
{
    dtest_sql(c,
              "INSERT INTO ticket_assignments (ticket_id, agent_id, team_id, department_id, kind, weight,"
              " assigned_at, accept_due_at, dispatcher) VALUES ('%s', '%s', '%s', '%s', 'assign', 1,"
              " to_timestamp(%lld / 1000.0), to_timestamp(%lld / 1000.0), 'etest')",
              tid, agent, team, dept, (long long)at_ms, (long long)accept_due_ms);
    dtest_sql(c,
              "UPDATE tickets SET owner_agent = '%s', owner_team = '%s', owner_unit = '%s',"
              " first_owner_unit = COALESCE(first_owner_unit, '%s'), accountable_unit = COALESCE(accountable_unit,"
              " '%s') WHERE id = '%s'",
              agent, team, dept, dept, dept, tid);
    etest_hist(c, tid, "assign", dtest_str(c, "SELECT state FROM tickets WHERE id = '%s'", tid), "assigned", at_ms,
               "etest");
}

/* ---- SlaNotification frames ------------------------------------------------------------------ */

void etest_sub_open(etest_sub *s, const etest_service *svc)
{
    memset(s, 0, sizeof(*s));
    s->ctx = zmq_ctx_new();
    s->sock = zmq_socket(s->ctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s->sock, ZMQ_SUBSCRIBE, "", 0);
    char ep[64];
    snprintf(ep, sizeof(ep), "tcp://127.0.0.1:%d", svc->d.pub_port);
    if (zmq_connect(s->sock, ep) != 0)
        fail_msg("SUB connect %s: %s", ep, zmq_strerror(zmq_errno()));
    etest_sub_drain(s, 300); /* the subscription reaches the PUB (slow joiner) */
}

void etest_sub_close(etest_sub *s)
{
    if (s->sock)
        zmq_close(s->sock);
    if (s->ctx)
        zmq_ctx_term(s->ctx);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static void copyStr(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

/* One message (the last frame is the notification); false when none came within timeout_ms. */
static bool receiveOne(etest_sub *s, int timeout_ms)
{
    zmq_pollitem_t it = {.socket = s->sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return false;
    zmq_msg_t m;
    zmq_msg_init(&m);
    Redress__V1__SlaNotification *x = NULL;
    for (;;) {
        if (zmq_msg_recv(&m, s->sock, 0) < 0)
            break;
        if (!zmq_msg_more(&m)) {
            x = redress__v1__sla_notification__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
            break;
        }
    }
    zmq_msg_close(&m);
    if (x == NULL) {
        s->bad++;
        return true;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = realloc(s->v, (size_t)s->cap * sizeof(*s->v));
        assert_non_null(s->v);
    }
    etest_note *o = &s->v[s->n++];
    memset(o, 0, sizeof(*o));
    copyStr(o->ticket_id, sizeof(o->ticket_id), x->ticket_id);
    copyStr(o->clock, sizeof(o->clock), x->clock);
    copyStr(o->kind, sizeof(o->kind), x->kind);
    copyStr(o->role, sizeof(o->role), x->role);
    copyStr(o->target_unit, sizeof(o->target_unit), x->target_unit);
    copyStr(o->action, sizeof(o->action), x->action);
    copyStr(o->policy_id, sizeof(o->policy_id), x->policy_id);
    o->level = x->level;
    o->at_ms = x->at_ms;
    o->due_at_ms = x->due_at_ms;
    redress__v1__sla_notification__free_unpacked(x, NULL);
    return true;
}

void etest_sub_drain(etest_sub *s, int ms)
{
    int64_t deadline = rd_mono_us() + (int64_t)ms * 1000;
    for (;;) {
        int64_t left = (deadline - rd_mono_us()) / 1000;
        if (left <= 0)
            break;
        receiveOne(s, (int)left);
    }
}

static bool matches(const etest_note *n, const char *ticket_id, const char *clock, const char *kind, int level)
{
    return (ticket_id == NULL || strcmp(n->ticket_id, ticket_id) == 0) &&
           (clock == NULL || strcmp(n->clock, clock) == 0) && (kind == NULL || strcmp(n->kind, kind) == 0) &&
           (level < 0 || n->level == (unsigned)level);
}

int etest_sub_count(const etest_sub *s, const char *ticket_id, const char *clock, const char *kind, int level)
{
    int k = 0;
    for (int i = 0; i < s->n; i++)
        k += matches(&s->v[i], ticket_id, clock, kind, level);
    return k;
}

const etest_note *etest_sub_wait(etest_sub *s, const char *ticket_id, const char *clock, const char *kind, int level,
                                 int timeout_ms)
{
    int64_t deadline = rd_mono_us() + (int64_t)timeout_ms * 1000;
    int seen = 0;
    for (;;) {
        for (; seen < s->n; seen++)
            if (matches(&s->v[seen], ticket_id, clock, kind, level))
                return &s->v[seen];
        int64_t left = (deadline - rd_mono_us()) / 1000;
        if (left <= 0)
            break;
        receiveOne(s, (int)left);
    }
    fprintf(stderr, "no SlaNotification %s/%s/%s/%d within %d ms (%d received, %d not decodable)\n",
            ticket_id ? ticket_id : "*", clock ? clock : "*", kind ? kind : "*", level, timeout_ms, s->n, s->bad);
    for (int i = 0; i < s->n; i++)
        fprintf(stderr, "  got %s %s %s level %u role %s at %lld\n", s->v[i].ticket_id, s->v[i].clock, s->v[i].kind,
                s->v[i].level, s->v[i].role, (long long)s->v[i].at_ms);
    return NULL;
}
