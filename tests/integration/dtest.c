/*
 * dtest.c -- see dtest.h.
 */
#include "dtest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "dispatcher.h"
#include "rd_redis.h"
#include "rd_time.h"

#ifndef REDRESS_DISPATCHER_BIN
#error "REDRESS_DISPATCHER_BIN must name the dispatcher binary"
#endif

/* ---- the service ----------------------------------------------------------------------------- */

int dtest_http_status(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    a.sin_port = htons((uint16_t)port);
    int status = -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        char req[256], buf[512];
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
        size_t got = 0;
        if (write(fd, req, (size_t)n) == n) {
            ssize_t k;
            while (got < sizeof(buf) - 1 && (k = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
                got += (size_t)k;
        }
        buf[got] = '\0';
        int code;
        if (sscanf(buf, "HTTP/%*d.%*d %d", &code) == 1)
            status = code;
    }
    close(fd);
    return status;
}

bool dtest_wait_health(const dtest_dispatcher *d, int status, int timeout_ms)
{
    int64_t deadline = rd_mono_us() + (int64_t)timeout_ms * 1000;
    int got = -1;
    while (rd_mono_us() < deadline) {
        if (d->pid > 0 && waitpid(d->pid, NULL, WNOHANG) == d->pid) {
            fprintf(stderr, "the dispatcher exited\n");
            return false;
        }
        if ((got = dtest_http_status(d->http_port, "/healthz")) == status)
            return true;
        rd_sleep_ms(50);
    }
    fprintf(stderr, "waited %d ms for /healthz %d (last: %d)\n", timeout_ms, status, got);
    return false;
}

void dtest_tail(const dtest_dispatcher *d, int lines)
{
    char cmd[400];
    fprintf(stderr, "--- last %d lines of %s:\n", lines, d->log_path);
    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", lines, d->log_path);
    if (itest_run(cmd) != 0)
        fprintf(stderr, "(no log)\n");
}

bool dtest_start(dtest_dispatcher *d, int events_port, const char *extra_env)
{
    memset(d, 0, sizeof(*d));
    d->http_port = itest_free_port();
    d->push_port = itest_free_port();
    d->pub_port = itest_free_port();
    int classifier = itest_free_port(); /* nobody binds it: tickets arrive by re-drive */
    if (events_port <= 0)
        events_port = itest_free_port();
    const char *dir = getenv("REDRESS_TEST_DIR");
    snprintf(d->log_path, sizeof(d->log_path), "%s/dispatcher-%d.log", dir ? dir : "/tmp", d->http_port);
    char env[2048];
    snprintf(env, sizeof(env),
             "REDRESS_DISPATCHER_CLASSIFIER_ENDPOINT=tcp://127.0.0.1:%d;"
             "REDRESS_DISPATCHER_EVENTS_ENDPOINT=tcp://127.0.0.1:%d;"
             "REDRESS_DISPATCHER_PUSH_BIND=tcp://127.0.0.1:%d;REDRESS_DISPATCHER_PUB_BIND=tcp://127.0.0.1:%d;"
             "REDRESS_DISPATCHER_HTTP_BIND=127.0.0.1;REDRESS_DISPATCHER_HTTP_PORT=%d;"
             "REDRESS_DISPATCHER_REDRIVE_MIN_AGE_MS=0;REDRESS_DISPATCHER_REDRIVE_INTERVAL_MS=200;"
             "REDRESS_DISPATCHER_QUEUE_INTERVAL_MS=250;REDRESS_DISPATCHER_EXPIRE_INTERVAL_MS=200;"
             "REDRESS_DISPATCHER_RECONCILE_INTERVAL_MS=500;REDRESS_LOG_LEVEL=debug;%s",
             classifier, events_port, d->push_port, d->pub_port, d->http_port, extra_env ? extra_env : "");
    d->pid = itest_spawn(REDRESS_DISPATCHER_BIN, env, d->log_path);
    if (d->pid <= 0)
        return false;
    if (dtest_wait_health(d, 200, 20000))
        return true;
    dtest_tail(d, 30);
    return false;
}

void dtest_stop(dtest_dispatcher *d)
{
    itest_reap(&d->pid, SIGTERM);
}

/* ---- PostgreSQL ------------------------------------------------------------------------------ */

static void vformat(char *out, size_t len, const char *fmt, va_list ap) DTEST_FMT(3, 0);

static void vformat(char *out, size_t len, const char *fmt, va_list ap)
{
    int n = vsnprintf(out, len, fmt, ap);
    if (n < 0 || (size_t)n >= len)
        fail_msg("SQL too long: %.200s", fmt);
}

void dtest_sql(PGconn *c, const char *fmt, ...)
{
    char sql[16384];
    va_list ap;
    va_start(ap, fmt);
    vformat(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("SQL failed: %s: %s", sql, PQerrorMessage(c));
}

int64_t dtest_num(PGconn *c, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    vformat(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return itest_count(c, sql);
}

const char *dtest_str(PGconn *c, const char *fmt, ...)
{
    static char bufs[8][1024];
    static int next;
    char *out = bufs[next++ % 8];
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    vformat(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    out[0] = '\0';
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        snprintf(out, sizeof(bufs[0]), "%s", PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "query failed: %s: %s\n", sql, PQerrorMessage(c));
    PQclear(r);
    return out;
}

bool dtest_wait(PGconn *c, int64_t want, int timeout_ms, const char *fmt, ...)
{
    char sql[8192];
    va_list ap;
    va_start(ap, fmt);
    vformat(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    int64_t deadline = rd_mono_us() + (int64_t)timeout_ms * 1000, got = -1;
    for (;;) {
        got = itest_count(c, sql);
        if (got == want)
            return true;
        if (rd_mono_us() >= deadline)
            break;
        rd_sleep_ms(20);
    }
    fprintf(stderr, "waited %d ms for %lld from: %s (last: %lld)\n", timeout_ms, (long long)want, sql, (long long)got);
    return false;
}

/* Departments whose default team does not exist yet (the foreign key is checked at commit, and
 * every statement here commits on its own): set when dtest_team adds that team. */
static struct {
    char dept[65], team[65];
} pendingDefault[32];
static int npending;

#define CUSTOMER "00000000-0000-4000-8000-00000000c001"

void dtest_reset(PGconn *c, redisContext *r)
{
    dtest_sql(c, "TRUNCATE ticket_assignments, dispatch_queue, ticket_classifications, ticket_history,"
                 " ticket_attachments, inbound_events, consumer_offsets, tickets, customers, agent_presence,"
                 " routing_rules, agents, teams, departments, accept_limits CASCADE");
    npending = 0;
    dtest_sql(c, "INSERT INTO accept_limits (business_type, seconds, transferred_s) VALUES"
                 " ('*', 1800, 1800), ('fault_repair', 300, 1800)");
    dtest_sql(c, "INSERT INTO customers (id, customer_ref, name) VALUES ('" CUSTOMER "', 'dtest-customer', '测试')");
    redisReply *x = redisCommand(r, "FLUSHALL");
    if (x == NULL || x->type == REDIS_REPLY_ERROR)
        fail_msg("FLUSHALL failed: %s", x ? x->str : r->errstr);
    freeReplyObject(x);
}

/* ---- the organisation ------------------------------------------------------------------------ */

/* A quoted SQL literal or NULL; ids in these tests never hold quotes. */
static const char *lit(char *buf, size_t len, const char *s)
{
    if (s == NULL)
        snprintf(buf, len, "NULL");
    else
        snprintf(buf, len, "'%s'", s);
    return buf;
}

void dtest_dept(PGconn *c, const char *id, const char *parent, bool centre, const char *default_team)
{
    char p[128];
    dtest_sql(c, "INSERT INTO departments (id, parent_id, name, dispatch_centre) VALUES ('%s', %s, '%s', %s)", id,
              lit(p, sizeof(p), parent), id, centre ? "true" : "false");
    if (default_team == NULL)
        return;
    if (npending == (int)(sizeof(pendingDefault) / sizeof(pendingDefault[0])))
        fail_msg("too many departments");
    snprintf(pendingDefault[npending].dept, sizeof(pendingDefault[0].dept), "%s", id);
    snprintf(pendingDefault[npending].team, sizeof(pendingDefault[0].team), "%s", default_team);
    npending++;
}

void dtest_team(PGconn *c, const char *id, const char *dept, const char *strategy, const char *overflow_team,
                int overflow_after_s, int major_weight)
{
    char o[128];
    dtest_sql(c,
              "INSERT INTO teams (id, department_id, name, strategy, overflow_team, overflow_after_s, major_weight)"
              " VALUES ('%s', '%s', '%s', '%s', %s, %d, %d)",
              id, dept, id, strategy ? strategy : "least_loaded", lit(o, sizeof(o), overflow_team), overflow_after_s,
              major_weight);
    for (int i = 0; i < npending; i++)
        if (strcmp(pendingDefault[i].team, id) == 0)
            dtest_sql(c, "UPDATE departments SET default_team = '%s' WHERE id = '%s'", id, pendingDefault[i].dept);
}

void dtest_agent(PGconn *c, const char *id, const char *team, int capacity)
{
    dtest_sql(c, "INSERT INTO agents (id, team_id, name, capacity) VALUES ('%s', '%s', '%s', %d)", id, team, id,
              capacity);
}

void dtest_skills(PGconn *c, const char *agent, const char *business_types, const char *categories,
                  const char *languages, const char *regions)
{
    char b[256], k[256], l[256], r[256];
    dtest_sql(c,
              "UPDATE agents SET business_types = COALESCE(%s::text[], business_types),"
              " categories = COALESCE(%s::text[], categories), languages = COALESCE(%s::text[], languages),"
              " regions = COALESCE(%s::text[], regions) WHERE id = '%s'",
              lit(b, sizeof(b), business_types), lit(k, sizeof(k), categories), lit(l, sizeof(l), languages),
              lit(r, sizeof(r), regions), agent);
}

void dtest_rule(PGconn *c, const char *name, int ord, const char *team, const char *cond)
{
    static const char *const cols[] = {"business_type", "category_prefix", "region_prefix", "severity", "channel"};
    const char *vals[5] = {0};
    char copy[512], lits[5][160];
    snprintf(copy, sizeof(copy), "%s", cond ? cond : "");
    char *save = NULL;
    for (char *kv = strtok_r(copy, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        if (eq == NULL)
            fail_msg("rule %s: bad condition '%s'", name, kv);
        *eq = '\0';
        bool known = false;
        for (size_t i = 0; i < 5; i++)
            if (strcmp(cols[i], kv) == 0) {
                vals[i] = eq + 1;
                known = true;
            }
        if (!known)
            fail_msg("rule %s: unknown column '%s'", name, kv);
    }
    for (int i = 0; i < 5; i++)
        lit(lits[i], sizeof(lits[i]), vals[i]);
    dtest_sql(c,
              "INSERT INTO routing_rules (name, ord, business_type, category_prefix, region_prefix, severity, channel,"
              " team_id) VALUES ('%s', %d, %s, %s, %s, %s, %s, '%s')",
              name, ord, lits[0], lits[1], lits[2], lits[3], lits[4], team);
}

void dtest_limit(PGconn *c, const char *business_type, int seconds, int transferred_s)
{
    dtest_sql(c,
              "INSERT INTO accept_limits (business_type, seconds, transferred_s) VALUES ('%s', %d, %d)"
              " ON CONFLICT (business_type) DO UPDATE SET seconds = EXCLUDED.seconds,"
              " transferred_s = EXCLUDED.transferred_s",
              business_type, seconds, transferred_s);
}

void dtest_presence(PGconn *c, redisContext *r, const char *agent, const char *status, int64_t ttl_ms)
{
    dtest_sql(c,
              "INSERT INTO agent_presence AS p (agent_id, status, expires_at, updated_at)"
              " VALUES ('%s', '%s', now() + make_interval(secs => %lld / 1000.0), now())"
              " ON CONFLICT (agent_id) DO UPDATE SET status = EXCLUDED.status, expires_at = EXCLUDED.expires_at,"
              " updated_at = now()",
              agent, status, (long long)ttl_ms);
    char err[256];
    if (dp_presence_set(r, agent, status, ttl_ms, err, sizeof(err)) < 0)
        fail_msg("presence of %s in Redis: %s", agent, err);
}

/* ---- tickets ---------------------------------------------------------------------------------- */

void dtest_tickets(PGconn *c, const dtest_ticket *t, int n, char (*ids)[37])
{
    static int batch;
    char bt[128], cat[256], sev[64], ch[64], reg[128], lang[64], prio[16];
    snprintf(prio, sizeof(prio), t->priority > 0 ? "%d" : "NULL", t->priority);
    char sql[4096];
    snprintf(sql, sizeof(sql),
             "INSERT INTO tickets (id, gateway_id, event_id, channel, customer_id, region, language, subject,"
             " state, business_type, category, severity, priority, occurred_at)"
             " SELECT gen_random_uuid(), 'dtest', 'dtest-%d-%d-' || g, COALESCE(%s, 'hotline'), '" CUSTOMER "',"
             " COALESCE(%s, ''), COALESCE(%s, ''), 'dtest ticket ' || g, 'classified', %s, %s, %s, %s, now()"
             "   FROM generate_series(1, %d) AS g ORDER BY g RETURNING id",
             (int)getpid(), ++batch, lit(ch, sizeof(ch), t->channel), lit(reg, sizeof(reg), t->region),
             lit(lang, sizeof(lang), t->language), lit(bt, sizeof(bt), t->business_type),
             lit(cat, sizeof(cat), t->category), lit(sev, sizeof(sev), t->severity), prio, n);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != n) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        PQclear(r);
        fail_msg("inserting tickets failed: %s: %s", sql, msg);
    }
    for (int i = 0; ids && i < n; i++)
        snprintf(ids[i], 37, "%s", PQgetvalue(r, i, 0));
    PQclear(r);
}

bool dtest_wait_assigned(PGconn *c, const char *tid, int timeout_ms)
{
    return dtest_wait(c, 1, timeout_ms,
                      "SELECT count(*) FROM tickets WHERE id = '%s' AND state = 'assigned' AND owner_agent IS NOT NULL",
                      tid);
}

const char *dtest_owner(PGconn *c, const char *tid)
{
    return dtest_str(c, "SELECT COALESCE(owner_agent, '') FROM tickets WHERE id = '%s'", tid);
}

int64_t dtest_overloaded(PGconn *c)
{
    return dtest_num(c, "SELECT count(*) FROM (SELECT agent_id, sum(weight) AS l FROM ticket_assignments"
                        " WHERE ended_at IS NULL GROUP BY agent_id) x JOIN agents a ON a.id = x.agent_id"
                        " WHERE x.l > a.capacity");
}

/* ---- Redis -------------------------------------------------------------------------------------- */

redisContext *dtest_redis(void)
{
    const char *url = getenv("REDRESS_REDIS_URL");
    rd_redis_addr a;
    char err[256];
    if (url == NULL)
        fail_msg("REDRESS_REDIS_URL is not set: run under tests/lib/with-stack.sh (with Redis)");
    if (!rd_redis_parse_url(url, &a, err, sizeof(err)))
        fail_msg("REDRESS_REDIS_URL: %s", err);
    redisContext *r = rd_redis_connect(&a, 2000, err, sizeof(err));
    if (r == NULL)
        fail_msg("Redis: %s", err);
    return r;
}

static int cmpStr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "k=v;..." sorted, from n strings (taken over and freed). */
static char *joinSorted(char **v, size_t n)
{
    qsort(v, n, sizeof(*v), cmpStr);
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(v[i]) + 1;
    char *out = calloc(1, len);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        strcat(out, v[i]);
        strcat(out, ";");
        free(v[i]);
    }
    free(v);
    return out;
}

static char *pgJoined(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "query failed: %s: %s\n", sql, PQerrorMessage(c));
        PQclear(r);
        return NULL;
    }
    size_t n = (size_t)PQntuples(r);
    char **v = calloc(n + 1, sizeof(*v));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = strdup(PQgetvalue(r, (int)i, 0));
    PQclear(r);
    return joinSorted(v, n);
}

/* HGETALL key as "field=value;..." sorted; open entries are cut to "agent|weight"; zero loads
 * are left out (an agent without load may have no field or a field of 0). */
static char *redisJoined(redisContext *r, const char *key, bool open)
{
    redisReply *x = redisCommand(r, "HGETALL %s", key);
    if (x == NULL || x->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "HGETALL %s failed: %s\n", key, x && x->type == REDIS_REPLY_ERROR ? x->str : r->errstr);
        freeReplyObject(x);
        return NULL;
    }
    char **v = calloc(x->elements / 2 + 1, sizeof(*v));
    assert_non_null(v);
    size_t n = 0;
    for (size_t i = 0; i + 1 < x->elements; i += 2) {
        const char *f = x->element[i]->str, *val = x->element[i + 1]->str;
        char buf[512];
        if (open) {
            const char *bar = strchr(val, '|');
            const char *bar2 = bar ? strchr(bar + 1, '|') : NULL;
            int keep = bar2 ? (int)(bar2 - val) : (int)strlen(val);
            snprintf(buf, sizeof(buf), "%s=%.*s", f, keep, val);
        } else {
            if (strcmp(val, "0") == 0)
                continue;
            snprintf(buf, sizeof(buf), "%s=%s", f, val);
        }
        v[n++] = strdup(buf);
    }
    freeReplyObject(x);
    return joinSorted(v, n);
}

bool dtest_redis_matches(PGconn *c, redisContext *r, char *detail, size_t len)
{
    char *pl = pgJoined(c, "SELECT agent_id || '=' || sum(weight) FROM ticket_assignments WHERE ended_at IS NULL"
                           " GROUP BY agent_id");
    char *po = pgJoined(c, "SELECT ticket_id || '=' || agent_id || '|' || weight FROM ticket_assignments"
                           " WHERE ended_at IS NULL");
    char *rl = redisJoined(r, DP_KEY_LOAD, false);
    char *ro = redisJoined(r, DP_KEY_OPEN, true);
    bool ok = pl && po && rl && ro && strcmp(pl, rl) == 0 && strcmp(po, ro) == 0;
    if (detail && len)
        snprintf(detail, len, "load pg   [%.600s]\nload redis[%.600s]\nopen pg   %zu bytes, redis %zu bytes%s",
                 pl ? pl : "?", rl ? rl : "?", po ? strlen(po) : 0, ro ? strlen(ro) : 0,
                 po && ro && strcmp(po, ro) != 0 ? " (differ)" : "");
    free(pl);
    free(po);
    free(rl);
    free(ro);
    return ok;
}

bool dtest_wait_redis_matches(PGconn *c, redisContext *r, int timeout_ms)
{
    int64_t deadline = rd_mono_us() + (int64_t)timeout_ms * 1000;
    char detail[2048];
    for (;;) {
        if (dtest_redis_matches(c, r, detail, sizeof(detail)))
            return true;
        if (rd_mono_us() >= deadline)
            break;
        rd_sleep_ms(50);
    }
    fprintf(stderr, "Redis still differs from PostgreSQL after %d ms:\n%s\n", timeout_ms, detail);
    return false;
}

/* ---- intake actions ----------------------------------------------------------------------------- */

int dtest_act(rd_client *cli, const char *tid, Redress__V1__ActionKind kind, const char *reason,
              const char *target_unit, char *state, size_t statelen)
{
    static int seq;
    char eid[64];
    snprintf(eid, sizeof(eid), "dtest-act-%d-%lld-%d", (int)getpid(), (long long)rd_now_ms(), ++seq);
    Redress__V1__Envelope e;
    Redress__V1__TicketAction a;
    itest_action(&e, &a, eid, tid, kind);
    a.actor = "dtest-agent";
    a.reason = (char *)(reason ? reason : "");
    a.target_unit = (char *)(target_unit ? target_unit : "");
    Redress__V1__Reply *r = itest_call(cli, &e);
    if (r == NULL)
        fail_msg("no reply from intake to action %d on %s", (int)kind, tid);
    int code = (int)r->error;
    if (state && statelen)
        snprintf(state, statelen, "%s", r->state ? r->state : "");
    if (code != REDRESS__V1__ERROR_CODE__ERROR_NONE)
        fprintf(stderr, "action %d on %s: error %d: %s\n", (int)kind, tid, code, r->message ? r->message : "");
    redress__v1__reply__free_unpacked(r, NULL);
    return code;
}
