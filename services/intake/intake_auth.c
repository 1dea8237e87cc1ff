/*
 * intake_auth.c -- who may talk to intake (intake.auth) and what each gateway may send.
 *
 * The allowlist (tables gateways and gateway_keys, deploy/sql/0007_gateway_auth.sql) is held in
 * memory as an immutable rd_auth_table snapshot. One thread of our own, the auth thread, owns:
 *   - a PostgreSQL connection that LISTENs on redress_gateways: every change to the tables is
 *     NOTIFYed and the snapshot rebuilt at once; it is also rebuilt every intake.auth_reload_ms
 *     (a notification lost with a broken connection, a key reaching its not_after);
 *   - with intake.auth = curve, the ZAP handler (a REP socket on inproc://zeromq.zap.01 in
 *     intake's ZeroMQ context): libzmq asks it about every CURVE handshake on the ROUTER; it
 *     admits only public keys of enabled gateways in the snapshot, and answers with User-Id =
 *     the gateway id and the metadata property Redress-Key = the public key, which libzmq then
 *     attaches to every frame of that connection;
 *   - a monitor of the ROUTER that counts and logs handshakes failing before ZAP is asked
 *     (plaintext clients, clients that expect another server key).
 *
 * The main thread checks every frame against the snapshot under a read lock (intake_auth_check):
 * the frame's Redress-Key must still be a valid key -- so revoking a key cuts off connections
 * made before the revocation at their next frame, not only new handshakes -- its gateway id must
 * be the envelope's, and the event kind and channel must be permitted. The auth thread swaps in
 * a new snapshot under the write lock; it reads the current one without a lock, being the only
 * thread that ever replaces it.
 *
 * With intake.auth = none the snapshot is still loaded: a gateway id that is registered gets its
 * permissions enforced (a well-behaved gateway cannot exceed them by mistake), an unregistered
 * one may send anything, as before. Without CURVE the gateway id is only a claim, so this is a
 * safety net, not security (docs/security.md).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "intake.h"
#include "rd_auth.h"
#include "rd_log.h"
#include "rd_service.h"
#include "rd_pg.h"
#include "rd_time.h"

#define ZAP_ENDPOINT     "inproc://zeromq.zap.01"
#define MONITOR_ENDPOINT "inproc://intake-router-monitor"
#define KEY_PROPERTY     "Redress-Key"
#define LOG_EVERY_US     1000000 /* refusals are logged at most once a second per kind */

static const char *const SQL_ALLOWLIST =
    "SELECT g.gateway_id, array_to_string(g.allowed_events, ','), array_to_string(g.allowed_channels, ','),"
    "       g.act_on_any_ticket, g.enabled, k.public_key"
    "  FROM gateways g LEFT JOIN gateway_keys k ON k.gateway_id = g.gateway_id AND k.revoked_at IS NULL"
    "   AND (k.not_after IS NULL OR k.not_after > now())";

typedef struct {
    int64_t last_us;
    uint64_t suppressed;
} logLimit;

struct intake_auth {
    intake *in;
    bool curve;
    char secret[RD_Z85_KEY_LEN + 1], public_key[RD_Z85_KEY_LEN + 1];
    void *zap, *monitor;
    rd_pglink pg;
    pthread_t th;
    bool started;
    atomic_bool stop;
    pthread_rwlock_t lock;
    rd_auth_table *table; /* replaced under lock (write) by the auth thread only */
    int64_t next_reload_us;
    logLimit refusedLog, mismatchLog, handshakeLog, internalLog; /* one per kind of refusal */
    rd_metric *accepted, *refusedUnknown, *refusedDisabled, *refusedHandshake, *keys, *gateways, *reloads,
        *reloadErrors;
};

/* ---- loading the allowlist ----------------------------------------------------------------- */

static rd_auth_table *tableFromResult(const PGresult *r, int *bad)
{
    rd_auth_table *t = rd_auth_table_new();
    if (t == NULL)
        return NULL;
    *bad = 0;
    /* pass 1: gateways (one row per key, so a gateway may repeat) */
    for (int i = 0; i < PQntuples(r); i++) {
        if (i > 0 && strcmp(PQgetvalue(r, i, 0), PQgetvalue(r, i - 1, 0)) == 0)
            continue;
        rd_auth_gateway g;
        memset(&g, 0, sizeof(g));
        char err[200];
        snprintf(g.gateway_id, sizeof(g.gateway_id), "%s", PQgetvalue(r, i, 0));
        if (!rd_auth_parse_events(PQgetvalue(r, i, 1), &g.events, err, sizeof(err)) ||
            !rd_auth_parse_channels(PQgetvalue(r, i, 2), &g.channels, err, sizeof(err))) {
            /* the table's CHECKs make this impossible; fail closed for this gateway if it happens */
            rd_log(RD_LOG_ERROR, "gateway permissions unreadable; gateway refused", "gateway", g.gateway_id, "error",
                   err, NULL);
            g.events = g.channels = 0;
            g.enabled = false;
            (*bad)++;
        } else {
            g.enabled = PQgetvalue(r, i, 4)[0] == 't';
        }
        g.act_on_any = PQgetvalue(r, i, 3)[0] == 't';
        if (!rd_auth_table_add_gateway(t, &g)) {
            rd_auth_table_free(&t);
            return NULL;
        }
    }
    for (int i = 0; i < PQntuples(r); i++)
        if (!PQgetisnull(r, i, 5) && !rd_auth_table_add_key(t, PQgetvalue(r, i, 5), PQgetvalue(r, i, 0)))
            (*bad)++;
    rd_auth_table_finish(t);
    return t;
}

/* Rebuilds the snapshot from PostgreSQL. On failure the old one stays in force. */
static bool authReload(intake_auth *a)
{
    a->next_reload_us = rd_mono_us() + a->in->cfg.auth_reload_ms * 1000;
    if (!rd_pglink_ensure(&a->pg, NULL))
        return false;
    PGresult *r = PQexec(a->pg.conn, SQL_ALLOWLIST);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rd_metric_inc(a->reloadErrors, 1);
        rd_log(RD_LOG_ERROR, "cannot load the gateway allowlist; keeping the previous one", "error",
               PQresultErrorMessage(r), "hint", "apply the migrations: deploy/sql/migrate.sh", NULL);
        bool transient = rd_pg_is_transient(a->pg.conn, r);
        PQclear(r);
        if (transient)
            rd_pglink_drop(&a->pg, "allowlist query failed");
        return false;
    }
    int bad = 0;
    rd_auth_table *t = tableFromResult(r, &bad);
    PQclear(r);
    if (t == NULL) {
        rd_metric_inc(a->reloadErrors, 1);
        return false;
    }
    size_t nk = rd_auth_table_keys(t), ng = rd_auth_table_gateways(t);
    pthread_rwlock_wrlock(&a->lock);
    rd_auth_table *old = a->table;
    a->table = t;
    pthread_rwlock_unlock(&a->lock);
    bool changed = old == NULL || rd_auth_table_keys(old) != nk || rd_auth_table_gateways(old) != ng;
    rd_auth_table_free(&old);
    rd_metric_inc(a->reloads, 1);
    rd_metric_set(a->keys, (int64_t)nk);
    rd_metric_set(a->gateways, (int64_t)ng);
    if (changed || bad) {
        char nks[24], ngs[24];
        snprintf(nks, sizeof(nks), "%zu", nk);
        snprintf(ngs, sizeof(ngs), "%zu", ng);
        rd_log(RD_LOG_INFO, "gateway allowlist loaded", "gateways", ngs, "keys", nks, NULL);
    }
    return true;
}

/* ---- ZAP ----------------------------------------------------------------------------------- */

static bool limited(logLimit *l, char *suppressed, size_t len)
{
    int64_t now = rd_mono_us();
    if (now - l->last_us < LOG_EVERY_US) {
        l->suppressed++;
        return true;
    }
    snprintf(suppressed, len, "%llu", (unsigned long long)l->suppressed);
    l->last_us = now;
    l->suppressed = 0;
    return false;
}

static void zapSend(void *s, const char *text, size_t len, bool more)
{
    zmq_send(s, text, len, more ? ZMQ_SNDMORE : 0);
}

/* One ZAP request (RFC 27): version, request id, domain, address, identity, mechanism, credentials. */
static void zapServe(intake_auth *a)
{
    zmq_msg_t part[8];
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, a->zap, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < 8)
            part[n++] = m;
        else
            zmq_msg_close(&m);
    }
    if (n < 2) { /* cannot even answer; libzmq never sends this */
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
        return;
    }
    /* the internal links' peers (PUSH/PUB with internal.curve_key_file), not gateways */
    if (n >= 3 && zmq_msg_size(&part[2]) == sizeof(RD_INTERNAL_ZAP_DOMAIN) - 1 &&
        memcmp(zmq_msg_data(&part[2]), RD_INTERNAL_ZAP_DOMAIN, sizeof(RD_INTERNAL_ZAP_DOMAIN) - 1) == 0) {
        bool ok = n >= 7 && rd_internal_zap_ok(zmq_msg_data(&part[2]), zmq_msg_size(&part[2]), zmq_msg_data(&part[5]),
                                               zmq_msg_size(&part[5]), zmq_msg_data(&part[6]), zmq_msg_size(&part[6]));
        char sup[24];
        if (!ok && !limited(&a->internalLog, sup, sizeof(sup)))
            rd_log(RD_LOG_WARN, "internal peer refused: not the cluster key", "suppressed_since_last", sup, NULL);
        zapSend(a->zap, "1.0", 3, true);
        zmq_msg_send(&part[1], a->zap, ZMQ_SNDMORE);
        zapSend(a->zap, ok ? "200" : "400", 3, true);
        zapSend(a->zap, ok ? "OK" : "not the cluster key", ok ? 2 : 19, true);
        zapSend(a->zap, ok ? "internal" : "", ok ? 8 : 0, true);
        zapSend(a->zap, "", 0, false);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
        return;
    }
    char address[64] = "", key[RD_Z85_KEY_LEN + 1] = "";
    if (n >= 4) {
        size_t l = zmq_msg_size(&part[3]) < sizeof(address) - 1 ? zmq_msg_size(&part[3]) : sizeof(address) - 1;
        memcpy(address, zmq_msg_data(&part[3]), l);
        address[l] = '\0';
    }
    bool curve = n >= 7 && zmq_msg_size(&part[5]) == 5 && memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
                 zmq_msg_size(&part[6]) == 32;
    if (curve)
        zmq_z85_encode(key, zmq_msg_data(&part[6]), 32);
    const rd_auth_gateway *g = curve ? rd_auth_key_find(a->table, key) : NULL;
    const char *status = "200", *text = "OK";
    if (g == NULL || !g->enabled) {
        status = "400";
        text = g == NULL ? "unknown key" : "gateway disabled";
        rd_metric_inc(g == NULL ? a->refusedUnknown : a->refusedDisabled, 1);
        char prefix[12], sup[24];
        snprintf(prefix, sizeof(prefix), "%.8s", curve ? key : "(none)");
        if (!limited(&a->refusedLog, sup, sizeof(sup)))
            rd_log(RD_LOG_WARN, "gateway refused", "reason", text, "key_prefix", prefix, "peer", address, "gateway",
                   g ? g->gateway_id : "", "suppressed_since_last", sup, NULL);
    } else {
        rd_metric_inc(a->accepted, 1);
        rd_log(RD_LOG_DEBUG, "gateway authenticated", "gateway", g->gateway_id, "peer", address, NULL);
    }
    zapSend(a->zap, "1.0", 3, true);
    zmq_msg_send(&part[1], a->zap, ZMQ_SNDMORE); /* request id, echoed */
    zapSend(a->zap, status, 3, true);
    zapSend(a->zap, text, strlen(text), true);
    if (status[0] == '2') {
        zapSend(a->zap, g->gateway_id, strlen(g->gateway_id), true);
        /* metadata: name length (1 byte), name, value length (4 bytes, network order), value */
        uint8_t md[1 + sizeof(KEY_PROPERTY) - 1 + 4 + RD_Z85_KEY_LEN];
        size_t nl = sizeof(KEY_PROPERTY) - 1;
        md[0] = (uint8_t)nl;
        memcpy(md + 1, KEY_PROPERTY, nl);
        md[1 + nl] = 0;
        md[2 + nl] = 0;
        md[3 + nl] = 0;
        md[4 + nl] = RD_Z85_KEY_LEN;
        memcpy(md + 5 + nl, key, RD_Z85_KEY_LEN);
        zmq_send(a->zap, md, sizeof(md), 0);
    } else {
        zapSend(a->zap, "", 0, true);
        zapSend(a->zap, "", 0, false);
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]); /* part[1] was sent (and so emptied) unless the send failed */
}

/* ---- handshake failures seen by the ROUTER's monitor --------------------------------------- */

static void monitorServe(intake_auth *a)
{
    zmq_msg_t ev, addr;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    if (zmq_msg_recv(&ev, a->monitor, 0) < 0 || !zmq_msg_more(&ev) || zmq_msg_recv(&addr, a->monitor, 0) < 0 ||
        zmq_msg_size(&ev) < 6) {
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        return;
    }
    uint16_t event;
    uint32_t value;
    memcpy(&event, zmq_msg_data(&ev), 2);
    memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        rd_metric_inc(a->refusedHandshake, 1);
        char endpoint[128], code[16], sup[24];
        size_t l = zmq_msg_size(&addr) < sizeof(endpoint) - 1 ? zmq_msg_size(&addr) : sizeof(endpoint) - 1;
        memcpy(endpoint, zmq_msg_data(&addr), l);
        endpoint[l] = '\0';
        snprintf(code, sizeof(code), "0x%08x", (unsigned)value);
        bool mismatch = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH;
        if (!limited(mismatch ? &a->mismatchLog : &a->handshakeLog, sup, sizeof(sup)))
            rd_log(RD_LOG_WARN, "gateway handshake failed", "reason",
                   mismatch ? "not CURVE (plaintext client?)"
                            : "handshake error before authentication (plaintext client, or wrong server key?)",
                   "protocol_error", code, "endpoint", endpoint, "suppressed_since_last", sup, NULL);
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
}

/* ---- the thread ---------------------------------------------------------------------------- */

static void *authMain(void *arg)
{
    intake_auth *a = arg;
    while (!atomic_load(&a->stop)) {
        bool fresh = false;
        if (rd_pglink_ensure(&a->pg, &fresh) && fresh)
            authReload(a); /* notifications may have been missed while disconnected */
        zmq_pollitem_t it[3];
        int n = 0, zi = -1, mi = -1, pi = -1;
        if (a->zap) {
            zi = n;
            it[n++] = (zmq_pollitem_t){a->zap, 0, ZMQ_POLLIN, 0};
        }
        if (a->monitor) {
            mi = n;
            it[n++] = (zmq_pollitem_t){a->monitor, 0, ZMQ_POLLIN, 0};
        }
        if (a->pg.conn) {
            pi = n;
            it[n++] = (zmq_pollitem_t){NULL, PQsocket(a->pg.conn), ZMQ_POLLIN, 0};
        }
        int64_t left = (a->next_reload_us - rd_mono_us()) / 1000;
        long timeout = left < 0 ? 0 : left > 200 ? 200 : (long)left; /* 200 ms: how soon we notice stop */
        if (zmq_poll(it, n, timeout) < 0 && zmq_errno() != EINTR) {
            rd_log(RD_LOG_ERROR, "auth poll failed", "error", zmq_strerror(zmq_errno()), NULL);
            rd_sleep_ms(100);
            continue;
        }
        /* reload before answering ZAP, so a key registered a moment ago is already known */
        bool reload = rd_mono_us() >= a->next_reload_us;
        if (pi >= 0 && (it[pi].revents & ZMQ_POLLIN) && rd_pglink_notified(&a->pg))
            reload = true;
        if (reload)
            authReload(a);
        for (int k = 0; zi >= 0 && (it[zi].revents & ZMQ_POLLIN) && k < 64; k++) {
            int ev = 0;
            size_t evl = sizeof(ev);
            zapServe(a);
            zmq_getsockopt(a->zap, ZMQ_EVENTS, &ev, &evl);
            if (!(ev & ZMQ_POLLIN))
                break;
        }
        for (int k = 0; mi >= 0 && (it[mi].revents & ZMQ_POLLIN) && k < 64; k++) {
            int ev = 0;
            size_t evl = sizeof(ev);
            monitorServe(a);
            zmq_getsockopt(a->monitor, ZMQ_EVENTS, &ev, &evl);
            if (!(ev & ZMQ_POLLIN))
                break;
        }
    }
    return NULL;
}

/* ---- the interface to main.c --------------------------------------------------------------- */

static void authMetrics(intake_auth *a)
{
    a->accepted = rd_metric_counter("redress_intake_auth_handshakes_total{result=\"accepted\"}",
                                    "CURVE handshakes answered by the ZAP handler");
    a->refusedUnknown = rd_metric_counter("redress_intake_auth_refused_total{reason=\"unknown_key\"}",
                                          "Gateway connections refused, by reason");
    a->refusedDisabled = rd_metric_counter("redress_intake_auth_refused_total{reason=\"gateway_disabled\"}",
                                           "Gateway connections refused, by reason");
    a->refusedHandshake = rd_metric_counter("redress_intake_auth_refused_total{reason=\"handshake\"}",
                                            "Gateway connections refused, by reason");
    a->keys = rd_metric_gauge("redress_intake_auth_keys", "Valid gateway keys in the allowlist");
    a->gateways = rd_metric_gauge("redress_intake_auth_gateways", "Gateways in the allowlist");
    a->reloads = rd_metric_counter("redress_intake_auth_reloads_total", "Allowlist reloads from PostgreSQL");
    a->reloadErrors =
        rd_metric_counter("redress_intake_auth_reload_errors_total", "Allowlist reloads that failed (old one kept)");
}

bool intake_auth_init(intake *in, char *err, int errlen)
{
    intake_auth *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    in->auth = a;
    a->in = in;
    a->curve = in->cfg.auth_curve;
    pthread_rwlock_init(&a->lock, NULL);
    a->pg = (rd_pglink){.dsn = in->cfg.pg_dsn, .app = "redress-intake-auth", .listen = "redress_gateways"};
    authMetrics(a);
    if (a->curve) {
        if (!zmq_has("curve")) {
            snprintf(err, errlen,
                     "intake.auth = curve, but this libzmq has no CURVE support (build it with libsodium)");
            return false;
        }
        if (in->cfg.curve_secret_key_file[0] == '\0') {
            snprintf(err, errlen,
                     "intake.auth = curve needs intake.curve_secret_key_file (make one with: redressctl keys generate "
                     "--out FILE)");
            return false;
        }
        if (!rd_curve_secret_load(in->cfg.curve_secret_key_file, a->secret, a->public_key, err, errlen))
            return false;
        /* ZAP handler before the ROUTER binds: no handshake may happen without it */
        a->zap = zmq_socket(in->zctx, ZMQ_REP);
        int linger = 0;
        zmq_setsockopt(a->zap, ZMQ_LINGER, &linger, sizeof(linger));
        if (zmq_bind(a->zap, ZAP_ENDPOINT) != 0) {
            snprintf(err, errlen, "cannot bind the ZAP handler: %s", zmq_strerror(zmq_errno()));
            return false;
        }
    }
    /* a first load now, so the first gateways are answered from the real allowlist */
    if (!authReload(a))
        rd_log(RD_LOG_WARN,
               a->curve ? "gateway allowlist not loaded yet: every gateway is refused until it is"
                        : "gateway allowlist not loaded yet: registered gateways' permissions not enforced until it is",
               NULL);
    return true;
}

bool intake_auth_secure(intake *in, void *router, char *err, int errlen)
{
    intake_auth *a = in->auth;
    if (!a->curve)
        return true;
    int on = 1;
    const char *domain = "redress-intake";
    if (zmq_setsockopt(router, ZMQ_CURVE_SERVER, &on, sizeof(on)) != 0 ||
        zmq_setsockopt(router, ZMQ_CURVE_SECRETKEY, a->secret, RD_Z85_KEY_LEN) != 0 ||
        zmq_setsockopt(router, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0) {
        snprintf(err, errlen, "cannot enable CURVE on the gateway socket: %s", zmq_strerror(zmq_errno()));
        return false;
    }
    return true;
}

bool intake_auth_start(intake *in, void *router, char *err, int errlen)
{
    intake_auth *a = in->auth;
    if (a->curve) {
        if (zmq_socket_monitor(router, MONITOR_ENDPOINT,
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0) {
            snprintf(err, errlen, "cannot monitor the gateway socket: %s", zmq_strerror(zmq_errno()));
            return false;
        }
        a->monitor = zmq_socket(in->zctx, ZMQ_PAIR);
        int linger = 0;
        zmq_setsockopt(a->monitor, ZMQ_LINGER, &linger, sizeof(linger));
        if (zmq_connect(a->monitor, MONITOR_ENDPOINT) != 0) {
            snprintf(err, errlen, "cannot connect the socket monitor: %s", zmq_strerror(zmq_errno()));
            return false;
        }
        rd_log(RD_LOG_INFO, "gateways must authenticate with CURVE", "server_public_key", a->public_key, NULL);
    } else {
        rd_log(RD_LOG_WARN,
               "gateways are NOT authenticated (intake.auth = none): any client that reaches the "
               "gateway endpoint may send events as any gateway id; see docs/security.md",
               NULL);
    }
    if (pthread_create(&a->th, NULL, authMain, a) != 0) {
        snprintf(err, errlen, "cannot start the auth thread");
        return false;
    }
    a->started = true;
    return true;
}

void intake_auth_stop(intake *in, void *router)
{
    intake_auth *a = in->auth;
    if (a == NULL)
        return;
    atomic_store(&a->stop, true);
    if (a->started)
        pthread_join(a->th, NULL);
    if (a->monitor) {
        if (router)
            zmq_socket_monitor(router, NULL, 0);
        zmq_close(a->monitor);
    }
    if (a->zap)
        zmq_close(a->zap);
    if (a->pg.conn)
        PQfinish(a->pg.conn);
    rd_auth_table_free(&a->table);
    pthread_rwlock_destroy(&a->lock);
    free(a);
    in->auth = NULL;
}

static bool refuse(rd_verdict *v, Redress__V1__ErrorCode code, const char *field)
{
    v->code = code;
    v->field = field;
    return false;
}

bool intake_auth_check(intake *in, const char *key, const Redress__V1__Envelope *env, bool *own_only, rd_verdict *v)
{
    intake_auth *a = in->auth;
    *own_only = false;
    pthread_rwlock_rdlock(&a->lock);
    bool ok = true;
    const rd_auth_gateway *g;
    if (a->curve) {
        g = rd_auth_key_find(a->table, key);
        if (g == NULL || !g->enabled) {
            snprintf(v->message, sizeof(v->message),
                     "this connection's key is no longer valid (revoked, expired, or its gateway disabled); "
                     "reconnect with a registered key");
            ok = refuse(v, REDRESS__V1__ERROR_CODE__ERROR_UNAUTHORIZED, NULL);
        } else if (strcmp(g->gateway_id, env->gateway_id) != 0) {
            snprintf(v->message, sizeof(v->message),
                     "this connection is authenticated as gateway %s; gateway_id must be %s", g->gateway_id,
                     g->gateway_id);
            ok = refuse(v, REDRESS__V1__ERROR_CODE__ERROR_UNAUTHORIZED, "gateway_id");
        }
    } else {
        g = rd_auth_gateway_find(a->table, env->gateway_id);
        if (g != NULL && !g->enabled) {
            snprintf(v->message, sizeof(v->message), "gateway %s is disabled", g->gateway_id);
            ok = refuse(v, REDRESS__V1__ERROR_CODE__ERROR_UNAUTHORIZED, "gateway_id");
        }
    }
    if (ok && g != NULL) {
        ok = rd_auth_permits(g, env, v);
        *own_only = !g->act_on_any;
    }
    pthread_rwlock_unlock(&a->lock);
    return ok;
}

const char *intake_auth_frame_key(zmq_msg_t *frame)
{
    return zmq_msg_gets(frame, KEY_PROPERTY);
}
