/*
 * Gateway authentication (docs/security.md): a real intake with intake.auth = curve against the
 * private PostgreSQL of tests/lib/with-stack.sh, gateways registered with `redressctl keys`.
 *
 *   - a registered gateway gets ACKs; an unknown key and a plaintext client get no answer, and
 *     both refusals are in intake's log and its metrics;
 *   - a gateway_id other than the one the key belongs to is UNAUTHORIZED; an event kind or a
 *     channel the gateway may not send is FORBIDDEN; acting on another gateway's ticket is
 *     FORBIDDEN unless the gateway may act on any ticket -- and none of these writes anything;
 *   - rotation without a restart: a second key works as soon as it is registered; after the
 *     first is revoked, new connections with it are refused and the connection opened before the
 *     revocation is answered UNAUTHORIZED;
 *   - redressctl keys generate / public / register / list / revoke, their errors and exit codes;
 *   - with intake.auth = none a registered gateway's permissions still hold.
 *
 * Waits are polls with a deadline (the allowlist reloads on NOTIFY), never fixed sleeps.
 */
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "itest.h"
#include "rd_auth.h"
#include "rd_time.h"

#define E(x) REDRESS__V1__ERROR_CODE__ERROR_##x
#define K(x) REDRESS__V1__ACTION_KIND__ACTION_##x

typedef struct {
    char pub[41], sec[41], file[512];
} keypair;

static char dir[200];
static keypair server, cti, cti2, desk, web, stranger;
static itest_intake in; /* only the ports, endpoint and log are used: we spawn it ourselves */
static pid_t intakePid;
static PGconn *pg;
static int evn;

/* ---- helpers ------------------------------------------------------------------------------- */

static void keypairNew(keypair *k, const char *name)
{
    assert_int_equal(zmq_curve_keypair(k->pub, k->sec), 0);
    snprintf(k->file, sizeof(k->file), "%s/%s.key", dir, name);
    FILE *f = fopen(k->file, "w");
    assert_non_null(f);
    fprintf(f, "# test key %s\n%s\n", name, k->sec);
    fclose(f);
    assert_int_equal(chmod(k->file, 0600), 0);
}

static rd_client *curveClient(const keypair *k)
{
    char err[256];
    rd_client_curve cv = {.server_public = server.pub, .client_public = k->pub, .client_secret = k->sec};
    rd_client *c = rd_client_new_curve(in.endpoint, &cv, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    return c;
}

/* One call with a short deadline: NULL when no answer came (a refused handshake). */
static Redress__V1__Reply *callWithin(rd_client *c, const Redress__V1__Envelope *e, int deadline_ms)
{
    Redress__V1__Reply *r = NULL;
    if (rd_client_call(c, e, deadline_ms, deadline_ms, &r) != 1)
        return NULL;
    return r;
}

static void newTicket(Redress__V1__Envelope *e, Redress__V1__NewTicket *t, const char *gateway, Redress__V1__Channel ch,
                      char *idbuf)
{
    snprintf(idbuf, 40, "auth-%d-%d", (int)getpid(), ++evn);
    itest_new_ticket(e, t, idbuf);
    e->gateway_id = (char *)gateway;
    t->channel = ch;
}

static void action(Redress__V1__Envelope *e, Redress__V1__TicketAction *a, const char *gateway, const char *ticket,
                   Redress__V1__ActionKind kind, char *idbuf)
{
    snprintf(idbuf, 40, "auth-%d-%d", (int)getpid(), ++evn);
    itest_action(e, a, idbuf, ticket, kind);
    e->gateway_id = (char *)gateway;
}

static void expectCode(Redress__V1__Reply *r, Redress__V1__ErrorCode code, const char *field)
{
    assert_non_null(r);
    if (r->error != code)
        fail_msg("expected %d, got %d: %s", (int)code, (int)r->error, r->message);
    if (field != NULL)
        assert_string_equal(r->field, field);
    redress__v1__reply__free_unpacked(r, NULL);
}

/* Creates a ticket as gateway g (key k) and copies its id to out. */
static void createTicket(const keypair *k, const char *g, Redress__V1__Channel ch, char out[40])
{
    rd_client *c = curveClient(k);
    Redress__V1__Envelope e;
    Redress__V1__NewTicket t;
    char id[40];
    newTicket(&e, &t, g, ch, id);
    Redress__V1__Reply *r = callWithin(c, &e, 10000);
    assert_non_null(r);
    if (r->error != E(NONE))
        fail_msg("create as %s: %s", g, r->message);
    snprintf(out, 40, "%s", r->ticket_id);
    redress__v1__reply__free_unpacked(r, NULL);
    rd_client_destroy(&c);
}

static bool fileHas(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static bool waitLog(const char *needle, int timeout_ms)
{
    int64_t until = rd_mono_us() + (int64_t)timeout_ms * 1000;
    while (rd_mono_us() < until) {
        if (fileHas(in.log_path, needle))
            return true;
        rd_sleep_ms(100);
    }
    fprintf(stderr, "intake log %s never said: %s; its end:\n", in.log_path, needle);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "tail -n 20 %s >&2", in.log_path);
    itest_run(cmd);
    return false;
}

/* The value of one metric line from intake's /metrics (-1 when absent or unreachable). */
static double metric(const char *name)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons((uint16_t)in.http_port)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    const char *req = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (write(fd, req, strlen(req)) < 0) {
        close(fd);
        return -1;
    }
    static char buf[1 << 18];
    size_t n = 0;
    ssize_t got;
    while (n < sizeof(buf) - 1 && (got = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
        n += (size_t)got;
    close(fd);
    buf[n] = '\0';
    char needle[200];
    snprintf(needle, sizeof(needle), "\n%s ", name);
    const char *p = strstr(buf, needle);
    return p ? strtod(p + strlen(needle), NULL) : -1;
}

static bool waitMetricAtLeast(const char *name, double want, int timeout_ms)
{
    int64_t until = rd_mono_us() + (int64_t)timeout_ms * 1000;
    double v = -1;
    while (rd_mono_us() < until) {
        v = metric(name);
        if (v >= want)
            return true;
        rd_sleep_ms(100);
    }
    fprintf(stderr, "metric %s stayed at %g (wanted >= %g)\n", name, v, want);
    return false;
}

static int ctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ctl(const char *fmt, ...)
{
    char args[1800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    return itest_ctl(dir, "%s", args);
}

/* Z85 holds shell metacharacters: every one is escaped with a backslash (itest_ctl echoes the
 * command line inside single quotes, so the arguments themselves must not hold any). */
static const char *sh(const char *s)
{
    static char buf[4][200];
    static int next;
    char *o = buf[next++ & 3];
    size_t n = 0;
    for (; *s && n < 196; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '/' ||
              *s == '.' || *s == '-' || *s == '_'))
            o[n++] = '\\';
        o[n++] = *s;
    }
    o[n] = '\0';
    return o;
}

static int registerKey(const char *gateway, const keypair *k, const char *flags)
{
    return ctl("keys register %s %s %s", gateway, sh(k->pub), flags);
}

/* Polls until a NEW connection with key k gets an answer (want_answer) or stays unanswered. */
static bool waitConnection(const keypair *k, const char *gateway, bool want_answer, int timeout_ms)
{
    int64_t until = rd_mono_us() + (int64_t)timeout_ms * 1000;
    do {
        rd_client *c = curveClient(k);
        Redress__V1__Envelope e;
        Redress__V1__TicketAction a;
        char id[40];
        action(&e, &a, gateway, "00000000-0000-7000-8000-000000000000", K(CHASE), id);
        Redress__V1__Reply *r = callWithin(c, &e, 1000);
        bool answered = r != NULL && r->error == E(NOT_FOUND);
        if (r)
            redress__v1__reply__free_unpacked(r, NULL);
        rd_client_destroy(&c);
        if (answered == want_answer)
            return true;
    } while (rd_mono_us() < until);
    return false;
}

static pid_t startIntake(const char *auth)
{
    char env[1500];
    snprintf(env, sizeof(env),
             "REDRESS_INTAKE_BIND=%s;REDRESS_INTAKE_PUSH_BIND=tcp://127.0.0.1:%d;"
             "REDRESS_INTAKE_PUB_BIND=tcp://127.0.0.1:%d;REDRESS_INTAKE_HTTP_PORT=%d;REDRESS_INTAKE_AUTH=%s;"
             "REDRESS_INTAKE_CURVE_SECRET_KEY_FILE=%s;REDRESS_INTAKE_AUTH_RELOAD_MS=1000",
             in.endpoint, in.push_port, in.pub_port, in.http_port, auth, server.file);
    return itest_spawn(REDRESS_INTAKE_BIN, env, in.log_path);
}

static void newPorts(void)
{
    in.port = itest_free_port();
    in.push_port = itest_free_port();
    in.pub_port = itest_free_port();
    in.http_port = itest_free_port();
    snprintf(in.endpoint, sizeof(in.endpoint), "tcp://127.0.0.1:%d", in.port);
    snprintf(in.log_path, sizeof(in.log_path), "%s/intake-%d.log", dir, in.port);
}

/* ---- setup --------------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("REDRESS_TEST_DIR");
    snprintf(dir, sizeof(dir), "%s/auth", base ? base : "/tmp");
    mkdir(dir, 0700);
    keypairNew(&server, "server");
    keypairNew(&cti, "cti");
    keypairNew(&cti2, "cti2");
    keypairNew(&desk, "desk");
    keypairNew(&web, "web");
    keypairNew(&stranger, "stranger");
    pg = itest_pg();
    if (pg == NULL)
        return -1;
    /* cti-1 may create hotline tickets and chase its own; desk-1 may act on any ticket; web-1 on
     * its own only */
    if (registerKey("cti-1", &cti, "--events new_ticket,chase --channels hotline") != 0 ||
        registerKey("desk-1", &desk, "--events accept,reply,chase --any-ticket") != 0 ||
        registerKey("web-1", &web, "--events \\* --channels web") != 0)
        return -1;
    newPorts();
    intakePid = startIntake("curve");
    if (intakePid <= 0 || !waitConnection(&cti, "cti-1", true, 20000)) {
        fprintf(stderr, "intake with auth=curve did not become ready; log: %s\n", in.log_path);
        itest_run("tail -n 30 \"$REDRESS_TEST_DIR\"/auth/intake-*.log >&2");
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    itest_reap(&intakePid, SIGTERM);
    if (pg)
        PQfinish(pg);
    return 0;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void test_registered_gateway_acked(void **state)
{
    (void)state;
    char tid[40], sql[200];
    createTicket(&cti, "cti-1", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, tid);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM tickets WHERE id = '%s' AND gateway_id = 'cti-1'", tid);
    assert_int_equal(itest_count(pg, sql), 1);
    assert_true(waitMetricAtLeast("redress_intake_auth_handshakes_total{result=\"accepted\"}", 1, 5000));
    assert_true(fileHas(in.log_path, "gateways must authenticate with CURVE"));
}

static void test_unknown_key_refused(void **state)
{
    (void)state;
    char *before = itest_db_fingerprint(pg);
    rd_client *c = curveClient(&stranger);
    Redress__V1__Envelope e;
    Redress__V1__NewTicket t;
    char id[40];
    newTicket(&e, &t, "cti-1", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, id);
    assert_null(callWithin(c, &e, 2000));
    rd_client_destroy(&c);
    char prefix[16];
    snprintf(prefix, sizeof(prefix), "%.8s", stranger.pub); /* logged, perhaps quoted: only 8 characters */
    assert_true(waitLog("reason=\"unknown key\"", 5000));
    assert_true(waitLog(prefix, 5000));
    assert_true(waitMetricAtLeast("redress_intake_auth_refused_total{reason=\"unknown_key\"}", 1, 5000));
    char *after = itest_db_fingerprint(pg);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_plaintext_refused(void **state)
{
    (void)state;
    char err[256];
    rd_client *c = rd_client_new(in.endpoint, err, sizeof(err));
    assert_non_null(c);
    Redress__V1__Envelope e;
    Redress__V1__NewTicket t;
    char id[40];
    newTicket(&e, &t, "cti-1", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, id);
    assert_null(callWithin(c, &e, 2000));
    rd_client_destroy(&c);
    /* usually "not CURVE (plaintext client?)"; when the client hangs up first libzmq gives no detail */
    assert_true(waitLog("msg=\"gateway handshake failed\"", 5000));
    assert_true(waitMetricAtLeast("redress_intake_auth_refused_total{reason=\"handshake\"}", 1, 5000));
}

static void test_spoofed_gateway_id(void **state)
{
    (void)state;
    char *before = itest_db_fingerprint(pg);
    rd_client *c = curveClient(&cti);
    Redress__V1__Envelope e;
    Redress__V1__NewTicket t;
    char id[40];
    newTicket(&e, &t, "web-1", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, id);
    expectCode(callWithin(c, &e, 10000), E(UNAUTHORIZED), "gateway_id");
    rd_client_destroy(&c);
    char *after = itest_db_fingerprint(pg);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_forbidden_kind_and_channel(void **state)
{
    (void)state;
    char tid[40];
    createTicket(&cti, "cti-1", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, tid);
    char *before = itest_db_fingerprint(pg);
    rd_client *c = curveClient(&cti);
    Redress__V1__Envelope e;
    Redress__V1__NewTicket t;
    Redress__V1__TicketAction a;
    char id[40];
    newTicket(&e, &t, "cti-1", REDRESS__V1__CHANNEL__CHANNEL_WEB, id); /* channel not allowed */
    expectCode(callWithin(c, &e, 10000), E(FORBIDDEN), "channel");
    action(&e, &a, "cti-1", tid, K(CLOSE), id); /* its own ticket, but close is not allowed */
    expectCode(callWithin(c, &e, 10000), E(FORBIDDEN), "kind");
    rd_client_destroy(&c);
    c = curveClient(&desk); /* desk-1 may not create tickets at all */
    newTicket(&e, &t, "desk-1", REDRESS__V1__CHANNEL__CHANNEL_WEB, id);
    expectCode(callWithin(c, &e, 10000), E(FORBIDDEN), "new_ticket");
    rd_client_destroy(&c);
    char *after = itest_db_fingerprint(pg);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_true(waitMetricAtLeast("redress_intake_nacks_total{code=\"FORBIDDEN\"}", 3, 5000));
}

static void test_other_gateways_ticket(void **state)
{
    (void)state;
    char tid[40], sql[300];
    createTicket(&web, "web-1", REDRESS__V1__CHANNEL__CHANNEL_WEB, tid);
    char *before = itest_db_fingerprint(pg);

    /* cti-1 may chase, but only its own tickets */
    rd_client *c = curveClient(&cti);
    Redress__V1__Envelope e;
    Redress__V1__TicketAction a;
    char id[40];
    action(&e, &a, "cti-1", tid, K(CHASE), id);
    expectCode(callWithin(c, &e, 10000), E(FORBIDDEN), "ticket_id");
    expectCode(callWithin(c, &e, 10000), E(FORBIDDEN), "ticket_id"); /* the same again: still refused */
    rd_client_destroy(&c);
    char *after = itest_db_fingerprint(pg);
    assert_string_equal(before, after);
    free(before);
    free(after);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM inbound_events WHERE gateway_id = 'cti-1' AND event_id = '%s'",
             id);
    assert_int_equal(itest_count(pg, sql), 0);

    /* desk-1 may act on any ticket; web-1 on its own */
    c = curveClient(&desk);
    action(&e, &a, "desk-1", tid, K(CHASE), id);
    expectCode(callWithin(c, &e, 10000), E(NONE), NULL);
    rd_client_destroy(&c);
    c = curveClient(&web);
    action(&e, &a, "web-1", tid, K(CHASE), id);
    expectCode(callWithin(c, &e, 10000), E(NONE), NULL);
    rd_client_destroy(&c);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM ticket_history WHERE ticket_id = '%s' AND kind = 'chase'", tid);
    assert_int_equal(itest_count(pg, sql), 2);
}

static void test_rotation_and_revocation(void **state)
{
    (void)state;
    /* a connection made with the first key before anything changes */
    rd_client *old = curveClient(&cti);
    Redress__V1__Envelope e;
    Redress__V1__TicketAction a;
    char id[40];
    action(&e, &a, "cti-1", "00000000-0000-7000-8000-000000000000", K(CHASE), id);
    expectCode(callWithin(old, &e, 10000), E(NOT_FOUND), NULL);

    /* the new key is refused until registered, then works without a restart */
    assert_true(waitConnection(&cti2, "cti-1", false, 1));
    assert_int_equal(registerKey("cti-1", &cti2, ""), 0);
    assert_true(waitConnection(&cti2, "cti-1", true, 10000));
    assert_true(waitConnection(&cti, "cti-1", true, 1)); /* both keys valid during the rotation */

    /* revoke the first: new connections with it are refused, the old connection's next frame
     * is UNAUTHORIZED, the new key goes on working */
    assert_int_equal(ctl("keys revoke %s", sh(cti.pub)), 0);
    assert_true(waitConnection(&cti, "cti-1", false, 10000));
    int64_t until = rd_mono_us() + 10000000;
    bool refused = false;
    while (!refused && rd_mono_us() < until) {
        action(&e, &a, "cti-1", "00000000-0000-7000-8000-000000000000", K(CHASE), id);
        Redress__V1__Reply *r = callWithin(old, &e, 2000);
        refused = r != NULL && r->error == E(UNAUTHORIZED);
        if (r)
            redress__v1__reply__free_unpacked(r, NULL);
    }
    assert_true(refused);
    rd_client_destroy(&old);
    char tid[40];
    createTicket(&cti2, "cti-1", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, tid);
    assert_true(strlen(tid) == 36);

    /* a disabled gateway is refused altogether; enabling it lets it in again */
    assert_int_equal(ctl("keys register cti-1 %s --disable", sh(cti2.pub)), 0);
    assert_true(waitConnection(&cti2, "cti-1", false, 10000));
    assert_int_equal(ctl("keys register cti-1 %s --enable", sh(cti2.pub)), 0);
    assert_true(waitConnection(&cti2, "cti-1", true, 10000));
}

static void test_ctl_round_trip(void **state)
{
    (void)state;
    char path[600], pub[64] = "", out[700];
    struct stat st;
    snprintf(path, sizeof(path), "%s/gen.key", dir);
    assert_int_equal(ctl("keys generate --out %s", sh(path)), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    assert_non_null(fgets(pub, sizeof(pub), f));
    fclose(f);
    pub[strcspn(pub, "\n")] = '\0';
    assert_true(rd_z85_key_valid(pub));
    assert_int_equal(ctl("keys generate --out %s", sh(path)), 1); /* never overwritten */
    assert_true(itest_ctl_printed(dir, "err", "never overwritten"));
    assert_int_equal(ctl("keys public %s", sh(path)), 0);
    assert_true(itest_ctl_printed(dir, "out", pub));
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(ctl("keys public %s", sh(path)), 1);
    assert_true(itest_ctl_printed(dir, "err", "chmod 600"));

    assert_int_equal(
        ctl("keys register app-1 %s --events new_ticket --channels app,web --description the\\ app", sh(pub)), 0);
    assert_true(itest_ctl_printed(dir, "out", "channels web,app"));
    assert_int_equal(ctl("keys list --format json"), 0);
    assert_true(itest_ctl_printed(dir, "out", "\"gateway\": \"app-1\""));
    assert_true(itest_ctl_printed(dir, "out", pub));
    assert_int_equal(ctl("keys list --format csv"), 0);
    assert_true(itest_ctl_printed(dir, "out", "gateway,enabled,events,channels"));
    assert_true(itest_ctl_printed(dir, "out", "app-1,true,new_ticket,\"web,app\",false"));
    assert_int_equal(ctl("keys list"), 0);
    assert_true(itest_ctl_printed(dir, "out", "app-1"));

    /* errors: bad key, bad permission, key of another gateway, unknown key, unknown gateway */
    assert_int_equal(ctl("keys register app-1 not-a-key"), 2);
    assert_int_equal(ctl("keys register bad\\ gw %s", sh(pub)), 2);
    assert_int_equal(ctl("keys register app-1 %s --channels pigeon", sh(pub)), 2);
    assert_true(itest_ctl_printed(dir, "err", "unknown channel 'pigeon'"));
    assert_int_equal(ctl("keys register app-2 %s", sh(pub)), 1);
    assert_true(itest_ctl_printed(dir, "err", "already registered to gateway app-1"));
    assert_int_equal(itest_count(pg, "SELECT count(*) FROM gateways WHERE gateway_id = 'app-2'"), 0);
    assert_int_equal(ctl("keys revoke %s", sh(stranger.pub)), 1);
    assert_int_equal(ctl("keys revoke --gateway no-such-gw"), 1);
    assert_int_equal(ctl("keys revoke"), 2);

    /* revoke, twice; a revoked key cannot come back */
    assert_int_equal(ctl("keys revoke --gateway app-1"), 0);
    assert_true(itest_ctl_printed(dir, "out", "revoked 1 key(s) of gateway app-1"));
    assert_int_equal(ctl("keys revoke %s", sh(pub)), 0);
    assert_true(itest_ctl_printed(dir, "out", "already revoked"));
    assert_int_equal(ctl("keys register app-1 %s", sh(pub)), 1);
    assert_true(itest_ctl_printed(dir, "err", "revoked"));
    assert_int_equal(ctl("keys list --format csv"), 0);
    assert_true(itest_ctl_printed(dir, "out", ",revoked,"));
    assert_int_equal(ctl("keys frobnicate"), 2);

    /* a key that begins with '-' is a key, not an option (1 key in 85 does) */
    char dashPub[41] = "", sec[41];
    for (int i = 0; i < 20000 && dashPub[0] != '-'; i++)
        assert_int_equal(zmq_curve_keypair(dashPub, sec), 0);
    assert_true(dashPub[0] == '-');
    assert_int_equal(ctl("keys register app-1 %s", sh(dashPub)), 0);
    assert_int_equal(ctl("keys revoke %s", sh(dashPub)), 0);
    assert_true(itest_ctl_printed(dir, "out", "revoked key"));
}

/* A key given a --not-after stops working by itself once that time has passed. */
static void test_key_expiry(void **state)
{
    (void)state;
    keypair exp;
    keypairNew(&exp, "expiring");
    char when[64];
    time_t at = time(NULL) + 4;
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&at));
    assert_int_equal(registerKey("exp-1", &exp, "--events chase"), 0);
    assert_true(waitConnection(&exp, "exp-1", true, 10000));
    assert_int_equal(ctl("keys register exp-1 %s --not-after %s", sh(exp.pub), when), 0); /* a known key */
    assert_true(waitConnection(&exp, "exp-1", false, 20000)); /* the periodic reload drops it */
    assert_int_equal(ctl("keys list --format csv"), 0);
    assert_true(itest_ctl_printed(dir, "out", ",expired,"));
}

/* redressctl submit over CURVE, configured from the environment. */
static void test_ctl_submit_curve(void **state)
{
    (void)state;
    /* no CURVE settings: plaintext, refused, no answer */
    assert_int_equal(
        ctl("--timeout 2 --endpoint %s --gateway cti-1 submit --channel hotline --customer C-77 --subject hi",
            in.endpoint),
        3);
    char env[1200];
    snprintf(env, sizeof(env), "REDRESS_CURVE_SERVER_KEY='%s' REDRESS_CURVE_CLIENT_KEY_FILE='%s'", server.pub,
             cti2.file);
    /* itest_ctl runs through the shell: an environment prefix works as in a terminal */
    char line[2000];
    snprintf(line, sizeof(line),
             "%s %s --endpoint %s --gateway cti-1 submit --channel hotline --customer C-77 --subject hi >%s/sub.txt "
             "2>&1",
             env, REDRESS_REDRESSCTL_BIN, in.endpoint, dir);
    assert_int_equal(itest_run(line), 0);
    snprintf(line, sizeof(line),
             "REDRESS_CURVE_SERVER_KEY='%s' %s --endpoint %s --gateway cti-1 submit --channel hotline --customer C-77 "
             "--subject hi >%s/sub.txt 2>&1",
             server.pub, REDRESS_REDRESSCTL_BIN, in.endpoint, dir);
    assert_int_equal(itest_run(line), 2); /* half a configuration is a usage error */
    char path[600];
    snprintf(path, sizeof(path), "%s/sub.txt", dir);
    assert_true(fileHas(path, "REDRESS_CURVE_CLIENT_KEY_FILE"));
}

/* intake.auth = none: anyone may connect, but a registered gateway id keeps its permissions. */
static void test_auth_none_permissions(void **state)
{
    (void)state;
    itest_reap(&intakePid, SIGTERM);
    newPorts();
    intakePid = startIntake("none");
    assert_true(intakePid > 0);
    char err[256];
    rd_client *c = rd_client_new(in.endpoint, err, sizeof(err));
    assert_non_null(c);
    Redress__V1__Envelope e;
    Redress__V1__NewTicket t;
    Redress__V1__TicketAction a;
    char id[40];
    /* wait for it: an unregistered gateway may send anything, as before */
    int64_t until = rd_mono_us() + 20000000;
    bool up = false;
    while (!up && rd_mono_us() < until) {
        action(&e, &a, "free-gw", "00000000-0000-7000-8000-000000000000", K(CLOSE), id);
        Redress__V1__Reply *r = callWithin(c, &e, 500);
        up = r != NULL && r->error == E(NOT_FOUND);
        if (r)
            redress__v1__reply__free_unpacked(r, NULL);
    }
    assert_true(up);
    assert_true(waitLog("gateways are NOT authenticated", 5000));
    newTicket(&e, &t, "cti-1", REDRESS__V1__CHANNEL__CHANNEL_WEB, id);
    expectCode(callWithin(c, &e, 10000), E(FORBIDDEN), "channel");
    newTicket(&e, &t, "cti-1", REDRESS__V1__CHANNEL__CHANNEL_HOTLINE, id);
    expectCode(callWithin(c, &e, 10000), E(NONE), NULL);
    rd_client_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registered_gateway_acked),
        cmocka_unit_test(test_unknown_key_refused),
        cmocka_unit_test(test_plaintext_refused),
        cmocka_unit_test(test_spoofed_gateway_id),
        cmocka_unit_test(test_forbidden_kind_and_channel),
        cmocka_unit_test(test_other_gateways_ticket),
        cmocka_unit_test(test_rotation_and_revocation),
        cmocka_unit_test(test_ctl_round_trip),
        cmocka_unit_test(test_key_expiry),
        cmocka_unit_test(test_ctl_submit_curve),
        cmocka_unit_test(test_auth_none_permissions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
