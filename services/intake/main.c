/*
 * redress-intake -- the only door into Redress.
 *
 * Gateways connect a DEALER (or REQ) socket to our ROUTER and send one Envelope per frame. Every
 * frame gets exactly one Reply: an immediate NACK when it is malformed or invalid, or -- after
 * the writer thread has committed the batch it rode in -- an ACK carrying the ticket id, or a
 * NACK from the database checks (NOT_FOUND, INVALID_TRANSITION, CONFLICT). When PostgreSQL is
 * unreachable or too much is pending we say UNAVAILABLE / OVERLOADED at once rather than hold
 * events we may not be able to store.
 *
 * Batching adapts to load: a batch is handed to the writers as soon as a writer is idle, so a
 * quiet system commits every event on its own (lowest latency) and a busy one fills batches
 * while the writers are committing (highest throughput); max_batch and max_wait_us bound both.
 *
 * After commit each event that changed a ticket is handed downstream: PUSH (one next-stage
 * worker gets it) and PUB (every listener gets it). Both are best effort by design -- the
 * ticket_history table is the durable stream, and consumers re-drive from it by seq.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <uuid/uuid.h>
#include <zmq.h>

#include "intake.h"
#include "rd_auth.h"
#include "rd_config.h"
#include "rd_envelope.h"
#include "rd_http.h"
#include "rd_log.h"
#include "rd_service.h"
#include "rd_time.h"

static volatile sig_atomic_t stopSignal;

static void onSignal(int sig)
{
    stopSignal = sig;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: redress-intake [--config FILE] [--check-config] [--help] [--version]\n"
                 "\n"
                 "The Redress intake service: authenticates gateways (CURVE, see docs/security.md), validates\n"
                 "every event from the gateways, stores it in PostgreSQL (group commit) and only then ACKs.\n"
                 "\n"
                 "Options:\n"
                 "  -c, --config FILE   configuration file (see deploy/config/redress.conf.example)\n"
                 "      --check-config  load and validate the configuration, print it, and exit\n"
                 "  -h, --help          this text\n"
                 "  -V, --version       print the version\n"
                 "\n"
                 "Configuration keys (environment REDRESS_<KEY> overrides, e.g. REDRESS_PG_DSN):\n"
                 "  pg.dsn                    libpq connection string\n"
                 "  intake.bind               ROUTER endpoint for gateways     [tcp://127.0.0.1:7401]\n"
                 "  intake.push_bind          PUSH hand-off to the next stage  [tcp://127.0.0.1:7402]\n"
                 "  intake.pub_bind           PUB of every committed event     [tcp://127.0.0.1:7403]\n"
                 "  intake.writers            PostgreSQL writer connections    [2]\n"
                 "  intake.max_batch          events per transaction at most   [512]\n"
                 "  intake.max_wait_us        queue a waiting batch early after [2000]\n"
                 "  intake.max_frame_bytes    larger frames get TOO_LARGE      [1048576]\n"
                 "  intake.max_wire_bytes     larger frames drop the connection [8388608]\n"
                 "  intake.max_pending        uncommitted events before OVERLOADED [20000]\n"
                 "  intake.statement_timeout_ms                                 [10000]\n"
                 "  intake.answer_deadline_ms answer UNAVAILABLE when PostgreSQL holds an event\n"
                 "                            this long (hung, not down); 0 = wait  [3000]\n"
                 "  intake.http_bind, intake.http_port  /healthz and /metrics  [127.0.0.1, 9401; 0 = off]\n"
                 "  intake.auth               none|curve: gateway authentication [none]\n"
                 "  intake.curve_secret_key_file  the server's CURVE secret key (mode 600) [required for curve]\n"
                 "  intake.auth_reload_ms     reload the gateway allowlist at least this often [5000]\n"
                 "  internal.curve_key_file   cluster key: CURVE on the internal links [\"\"]\n"
                 "  log.level                 debug|info|warn|error            [info]\n");
}

/* ---- configuration ------------------------------------------------------------------------- */

static bool loadConfig(rd_config *c, intake_cfg *k, char *err, int errlen)
{
    k->bind = rd_config_str(c, "intake.bind", "tcp://127.0.0.1:7401");
    k->push_bind = rd_config_str(c, "intake.push_bind", "tcp://127.0.0.1:7402");
    k->pub_bind = rd_config_str(c, "intake.pub_bind", "tcp://127.0.0.1:7403");
    k->pg_dsn = rd_config_str(c, "pg.dsn", "host=127.0.0.1 port=55432 dbname=redress user=redress");
    k->http_bind = rd_config_str(c, "intake.http_bind", "127.0.0.1");
    const char *auth = rd_config_str(c, "intake.auth", "none");
    if (strcmp(auth, "none") != 0 && strcmp(auth, "curve") != 0) {
        snprintf(err, errlen, "intake.auth must be none or curve, not '%s'", auth);
        return false;
    }
    k->auth_curve = strcmp(auth, "curve") == 0;
    k->curve_secret_key_file = rd_config_str(c, "intake.curve_secret_key_file", "");
    return rd_config_int(c, "intake.auth_reload_ms", 5000, 200, 3600000, &k->auth_reload_ms, err, errlen) &&
           rd_config_int(c, "intake.writers", 2, 1, 64, &k->writers, err, errlen) &&
           rd_config_int(c, "intake.max_batch", 512, 1, 10000, &k->max_batch, err, errlen) &&
           rd_config_int(c, "intake.max_wait_us", 2000, 0, 1000000, &k->max_wait_us, err, errlen) &&
           rd_config_int(c, "intake.max_frame_bytes", RD_MAX_FRAME_BYTES, 1024, 64 << 20, &k->max_frame_bytes, err,
                         errlen) &&
           rd_config_int(c, "intake.max_wire_bytes", 8 << 20, 1024, 1 << 30, &k->max_wire_bytes, err, errlen) &&
           rd_config_int(c, "intake.max_pending", 20000, 1, 10000000, &k->max_pending, err, errlen) &&
           rd_config_int(c, "intake.answer_deadline_ms", 3000, 0, 3600000, &k->answer_deadline_ms, err, errlen) &&
           rd_config_int(c, "intake.statement_timeout_ms", 10000, 100, 3600000, &k->statement_timeout_ms, err,
                         errlen) &&
           rd_config_int(c, "intake.http_port", 9401, 0, 65535, &k->http_port, err, errlen);
}

static void metricsInit(intake_metrics *m)
{
    static const double batchBounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    static const double secBounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
    m->received = rd_metric_counter("redress_intake_events_received_total", "Frames received from gateways");
    m->acked = rd_metric_counter("redress_intake_events_acked_total", "Events ACKed after commit (incl. replays)");
    m->replays = rd_metric_counter("redress_intake_replays_total", "ACKs answered from the idempotency ledger");
    for (int c = 1; c <= 13; c++) {
        char name[96];
        snprintf(name, sizeof(name), "redress_intake_nacks_total{code=\"%s\"}",
                 rd_error_name((Redress__V1__ErrorCode)c));
        m->nacks[c] = rd_metric_counter(name, "Events refused, by error code");
    }
    m->batches = rd_metric_counter("redress_intake_batches_total", "Transactions committed by the writers");
    m->batch_size = rd_metric_histogram("redress_intake_batch_size", "Events per transaction", batchBounds, 11);
    m->commit_seconds =
        rd_metric_histogram("redress_intake_commit_seconds", "Time to apply and commit one batch", secBounds, 13);
    m->ack_seconds =
        rd_metric_histogram("redress_intake_ack_seconds", "From frame received to reply sent", secBounds, 13);
    m->pending = rd_metric_gauge("redress_intake_pending_events", "Events received but not yet answered");
    m->db_up = rd_metric_gauge("redress_intake_db_up", "1 when a writer holds a PostgreSQL connection");
    m->handoff_dropped = rd_metric_counter("redress_intake_handoff_dropped_total",
                                           "Downstream notifications dropped (consumers re-drive from PostgreSQL)");
    m->writer_errors = rd_metric_counter("redress_intake_writer_errors_total", "Batches PostgreSQL refused");
}

static bool healthCheck(void *arg, char *detail, size_t len)
{
    intake *in = arg;
    int c = atomic_load(&in->connected);
    snprintf(detail, len, c > 0 ? "ok: %d PostgreSQL connections" : "PostgreSQL unreachable (%d connections)", c);
    return c > 0;
}

/* ---- answers ------------------------------------------------------------------------------- */

typedef struct loop {
    intake *in;
    void *router, *push, *pub, *done;
    intake_batch *cur;      /* being filled */
    int busy;               /* batches handed to writers and not back yet */
    int64_t pending;        /* events received and not yet back from a writer */
    intake_batch *inflight; /* those batches (inflight_next), newest first */
    int64_t stuck_logged_us;
} loop;

static void sendReply(loop *l, const uint8_t *rid, size_t rid_len, bool req, const Redress__V1__Reply *r)
{
    size_t len;
    uint8_t *buf = rd_reply_pack(r, &len);
    /* ROUTER drops replies to peers that are gone or over their HWM; the client will retry */
    if (zmq_send(l->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0) {
        if (req)
            zmq_send(l->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(l->router, buf, len, ZMQ_DONTWAIT);
    }
    free(buf);
    if (r->error == REDRESS__V1__ERROR_CODE__ERROR_NONE) {
        rd_metric_inc(l->in->m.acked, 1);
        if (r->replay)
            rd_metric_inc(l->in->m.replays, 1);
    } else if ((unsigned)r->error < 16 && l->in->m.nacks[r->error]) {
        rd_metric_inc(l->in->m.nacks[r->error], 1);
    }
}

static void nackNow(loop *l, const uint8_t *rid, size_t rid_len, bool req, const char *event_id,
                    Redress__V1__ErrorCode code, const char *field, const char *msg, uint32_t retry_ms)
{
    Redress__V1__Reply r = REDRESS__V1__REPLY__INIT;
    r.event_id = (char *)(event_id ? event_id : "");
    r.error = code;
    r.message = (char *)msg;
    r.field = (char *)(field ? field : "");
    r.retry_after_ms = retry_ms;
    sendReply(l, rid, rid_len, req, &r);
}

static void handOff(loop *l, const intake_item *it)
{
    Redress__V1__TicketEvent ev = REDRESS__V1__TICKET_EVENT__INIT;
    ev.seq = it->seq;
    ev.ticket_id = (char *)it->ticket_id;
    ev.kind = (char *)it->kind;
    ev.state = (char *)it->state;
    ev.at_ms = rd_now_ms();
    uint8_t buf[256];
    size_t len = redress__v1__ticket_event__get_packed_size(&ev);
    if (len > sizeof(buf))
        return;
    redress__v1__ticket_event__pack(&ev, buf);
    if (zmq_send(l->push, buf, len, ZMQ_DONTWAIT) < 0)
        rd_metric_inc(l->in->m.handoff_dropped, 1);
    zmq_send(l->pub, buf, len, ZMQ_DONTWAIT); /* PUB never blocks; slow subscribers drop */
}

static void batchFree(intake_batch *b)
{
    for (int i = 0; i < b->n; i++)
        redress__v1__envelope__free_unpacked(b->items[i].env, NULL);
    free(b->items);
    free(b);
}

/* A batch came back from a writer: answer every event in it (unless expireStuck did), then hand
 * the changes on. */
static void batchAnswer(loop *l, intake_batch *b)
{
    int64_t now = rd_mono_us();
    for (intake_batch **pp = &l->inflight; *pp; pp = &(*pp)->inflight_next)
        if (*pp == b) {
            *pp = b->inflight_next;
            break;
        }
    for (int i = 0; i < b->n && !b->answered; i++) {
        intake_item *it = &b->items[i];
        Redress__V1__Reply r = REDRESS__V1__REPLY__INIT;
        r.event_id = it->env->event_id;
        r.error = it->code;
        if (it->code == REDRESS__V1__ERROR_CODE__ERROR_NONE) {
            r.ticket_id = it->ticket_id;
            r.state = it->state;
            r.replay = it->replay;
        } else {
            r.message = it->message;
            r.field = (char *)(it->field ? it->field : "");
            if (it->code == REDRESS__V1__ERROR_CODE__ERROR_UNAVAILABLE)
                r.retry_after_ms = 500;
            if (it->code == REDRESS__V1__ERROR_CODE__ERROR_INVALID_TRANSITION)
                r.state = it->state;
        }
        sendReply(l, it->rid, it->rid_len, it->req_style, &r);
        rd_metric_observe(l->in->m.ack_seconds, (double)(now - it->recv_us) / 1e6);
    }
    for (int i = 0; i < b->n; i++)
        if (b->items[i].code == REDRESS__V1__ERROR_CODE__ERROR_NONE && !b->items[i].replay && b->items[i].seq > 0)
            handOff(l, &b->items[i]);
    rd_metric_inc(l->in->m.batches, 1);
    rd_metric_observe(l->in->m.batch_size, b->n);
    l->pending -= b->n;
    l->busy--;
    batchFree(b);
}

static void drainDone(loop *l)
{
    intake_batch *b;
    while (zmq_recv(l->done, &b, sizeof(b), ZMQ_DONTWAIT) == (int)sizeof(b))
        batchAnswer(l, b);
    rd_metric_set(l->in->m.pending, l->pending);
}

static void flushBatch(loop *l)
{
    if (l->cur == NULL || l->cur->n == 0)
        return;
    intake_batch *b = l->cur;
    l->cur = NULL;
    b->inflight_next = l->inflight;
    l->inflight = b;
    l->busy++;
    intake_queue_push(l->in, b); /* from here a writer may own it: only the main-thread fields */
}

/* PostgreSQL hung (not down: a frozen server, a stuck lock, storage that stopped answering): a
 * writer waits inside its transaction and cannot tell. Events that have waited longer than
 * intake.answer_deadline_ms are answered UNAVAILABLE now, so gateways hear something promptly;
 * their batch stays with its writer. If its COMMIT lands after all, the gateway's retry with the
 * same event id is answered from the ledger as a replay -- the same rule as for a connection
 * that broke during COMMIT. Only immutable parts of the items (routing id, event id) are read
 * here; the writer only writes the answer fields. */
static void expireStuck(loop *l)
{
    int64_t deadline = l->in->cfg.answer_deadline_ms * 1000, now = rd_mono_us(), n = 0;
    if (deadline <= 0)
        return;
    if (l->cur && l->cur->n > 0 && now - l->cur->first_us > deadline)
        flushBatch(l); /* answered below; new events start a new batch */
    for (intake_batch *b = l->inflight; b; b = b->inflight_next) {
        if (b->answered || now - b->first_us <= deadline)
            continue;
        for (int i = 0; i < b->n; i++) {
            intake_item *it = &b->items[i];
            nackNow(l, it->rid, it->rid_len, it->req_style, it->env->event_id,
                    REDRESS__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
                    "storage is not answering; retry later with the same event id", 1000);
        }
        b->answered = true;
        n += b->n;
    }
    if (n > 0 && now - l->stuck_logged_us > 10 * 1000000LL) {
        char ms[24], cnt[24];
        snprintf(ms, sizeof(ms), "%lld", (long long)l->in->cfg.answer_deadline_ms);
        snprintf(cnt, sizeof(cnt), "%lld", (long long)n);
        rd_log(RD_LOG_WARN, "PostgreSQL holds events past the answer deadline; answered UNAVAILABLE", "events", cnt,
               "deadline_ms", ms, NULL);
        l->stuck_logged_us = now;
    }
}

/* ---- receiving ----------------------------------------------------------------------------- */

/* Reads one whole multipart message from the ROUTER. Returns false when nothing is waiting. */
static bool recvOne(loop *l, uint8_t *rid, size_t *rid_len, bool *req, zmq_msg_t *payload, int *parts,
                    char key[RD_Z85_KEY_LEN + 1])
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, l->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        return false;
    }
    *rid_len = zmq_msg_size(&part) > 255 ? 255 : zmq_msg_size(&part);
    memcpy(rid, zmq_msg_data(&part), *rid_len);
    *parts = 0;
    *req = false;
    while (zmq_msg_more(&part)) {
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, l->router, 0) < 0)
            break;
        (*parts)++;
        if (*parts == 1 && zmq_msg_size(&part) == 0 && zmq_msg_more(&part)) {
            *req = true; /* REQ envelope delimiter */
            (*parts)--;
            continue;
        }
        if (*parts == 1) {
            const char *k = intake_auth_frame_key(&part);
            if (k != NULL)
                snprintf(key, RD_Z85_KEY_LEN + 1, "%s", k);
            zmq_msg_copy(payload, &part);
        }
    }
    zmq_msg_close(&part);
    return true;
}

static void ticketIdNew(char out[37])
{
    /* UUIDv7 layout: 48-bit Unix ms, then random. Time-ordered ids keep the primary-key index
     * appending at its right edge instead of touching random pages. */
    /* libuuid makes six system calls per random id; on a busy intake that was a third of the
     * main thread's time. One getrandom() per 409 ids instead. */
    static uint8_t pool[4096];
    static size_t left;
    if (left < 10) {
        size_t got = 0;
        while (got < sizeof(pool)) {
            ssize_t n = getrandom(pool + got, sizeof(pool) - got, 0);
            if (n > 0)
                got += (size_t)n;
            else if (errno != EINTR)
                abort(); /* no entropy source at all: ids would collide */
        }
        left = sizeof(pool);
    }
    uuid_t u = {0};
    memcpy(u + 6, pool + sizeof(pool) - left, 10);
    left -= 10;
    uint64_t ms = (uint64_t)rd_now_ms();
    for (int i = 0; i < 6; i++)
        u[i] = (uint8_t)(ms >> (40 - 8 * i));
    u[6] = (uint8_t)((u[6] & 0x0F) | 0x70);
    u[8] = (uint8_t)((u[8] & 0x3F) | 0x80);
    uuid_unparse_lower(u, out);
}

static void customerId(const char *ref, char out[37])
{
    /* UUIDv5 in a namespace of our own: the same customer_ref is the same customer everywhere */
    static const uuid_t ns = {0x6b, 0x1e, 0x0f, 0x52, 0x3c, 0x1a, 0x4d, 0x7e,
                              0x9a, 0x55, 0x2f, 0x10, 0x7d, 0x88, 0x41, 0x03};
    uuid_t u;
    uuid_generate_sha1(u, (unsigned char *)ns, ref, strlen(ref));
    uuid_unparse_lower(u, out);
}

static void acceptOne(loop *l)
{
    intake *in = l->in;
    uint8_t rid[256];
    size_t rid_len;
    bool req;
    int parts;
    zmq_msg_t payload;
    char key[RD_Z85_KEY_LEN + 1] = "";
    zmq_msg_init(&payload);
    if (!recvOne(l, rid, &rid_len, &req, &payload, &parts, key)) {
        zmq_msg_close(&payload);
        return;
    }
    rd_metric_inc(in->m.received, 1);
    if (parts != 1) {
        nackNow(l, rid, rid_len, req, NULL, REDRESS__V1__ERROR_CODE__ERROR_MALFORMED, NULL,
                "send exactly one frame holding an Envelope", 0);
        zmq_msg_close(&payload);
        return;
    }
    rd_verdict v;
    Redress__V1__Envelope *env =
        rd_envelope_decode(zmq_msg_data(&payload), zmq_msg_size(&payload), (size_t)in->cfg.max_frame_bytes, &v);
    zmq_msg_close(&payload);
    if (env == NULL) {
        nackNow(l, rid, rid_len, req, NULL, v.code, v.field, v.message, 0);
        return;
    }
    if (!rd_envelope_validate(env, rd_now_ms(), &v)) {
        nackNow(l, rid, rid_len, req, env->event_id, v.code, v.field, v.message, 0);
        redress__v1__envelope__free_unpacked(env, NULL);
        return;
    }
    bool own_only;
    if (!intake_auth_check(in, key[0] ? key : NULL, env, &own_only, &v)) {
        nackNow(l, rid, rid_len, req, env->event_id, v.code, v.field, v.message, 0);
        redress__v1__envelope__free_unpacked(env, NULL);
        return;
    }
    if (atomic_load(&in->connected) == 0) {
        nackNow(l, rid, rid_len, req, env->event_id, REDRESS__V1__ERROR_CODE__ERROR_UNAVAILABLE, NULL,
                "storage unavailable; retry later with the same event id", 1000);
        redress__v1__envelope__free_unpacked(env, NULL);
        return;
    }
    if (l->pending >= in->cfg.max_pending) {
        nackNow(l, rid, rid_len, req, env->event_id, REDRESS__V1__ERROR_CODE__ERROR_OVERLOADED, NULL,
                "too many events in flight; retry later with the same event id", 100);
        redress__v1__envelope__free_unpacked(env, NULL);
        return;
    }
    if (l->cur == NULL) {
        l->cur = calloc(1, sizeof(*l->cur));
        l->cur->cap = (int)in->cfg.max_batch;
        l->cur->items = malloc(sizeof(intake_item) * (size_t)l->cur->cap);
        if (l->cur->items == NULL)
            abort();
        l->cur->first_us = rd_mono_us();
    }
    intake_item *it = &l->cur->items[l->cur->n++];
    memset(it, 0, offsetof(intake_item, env));
    memcpy(it->rid, rid, rid_len);
    it->rid_len = (uint8_t)rid_len;
    it->req_style = req;
    it->own_only = own_only;
    it->env = env;
    it->recv_us = rd_mono_us();
    rd_envelope_digest(env, it->digest);
    if (env->payload_case == REDRESS__V1__ENVELOPE__PAYLOAD_NEW_TICKET) {
        ticketIdNew(it->ticket_id);
        customerId(env->new_ticket->customer_ref, it->customer_id);
    } else {
        snprintf(it->ticket_id, sizeof(it->ticket_id), "%s", env->action->ticket_id);
        /* canonical lower case so replies and hand-offs match what PostgreSQL prints */
        for (char *p = it->ticket_id; *p; p++)
            if (*p >= 'A' && *p <= 'F')
                *p = (char)(*p - 'A' + 'a');
    }
    l->pending++;
    if (l->cur->n >= l->cur->cap)
        flushBatch(l);
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void *socketBind(intake *in, int type, const char *ep, int64_t maxmsg)
{
    void *s = zmq_socket(in->zctx, type);
    int linger = 0, hwm = 100000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    if (maxmsg > 0)
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    char err[256];
    if (type == ZMQ_ROUTER && !intake_auth_secure(in, s, err, sizeof(err))) {
        rd_log(RD_LOG_ERROR, "cannot secure the gateway endpoint", "error", err, NULL);
        zmq_close(s);
        return NULL;
    }
    if (type != ZMQ_ROUTER && !rd_internal_curve_apply(in->zctx, s, true)) { /* the internal links */
        zmq_close(s);
        return NULL;
    }
    if (zmq_bind(s, ep) != 0) {
        rd_log(RD_LOG_ERROR, "cannot bind", "endpoint", ep, "error", zmq_strerror(zmq_errno()), NULL);
        zmq_close(s);
        return NULL;
    }
    return s;
}

static int runLoop(loop *l)
{
    intake *in = l->in;
    int64_t drainDeadline = 0;
    for (;;) {
        if (stopSignal && drainDeadline == 0) {
            rd_log(RD_LOG_INFO, "stopping: finishing events in flight", NULL);
            flushBatch(l);
            drainDeadline = rd_mono_us() + 15 * 1000000LL;
        }
        if (drainDeadline && (l->busy == 0 || rd_mono_us() > drainDeadline))
            break;
        long timeout = 200;
        if (l->cur && l->cur->n > 0) {
            int64_t left = l->cur->first_us + in->cfg.max_wait_us - rd_mono_us();
            timeout = left <= 0 ? 0 : (long)(left / 1000) + 1;
        }
        zmq_pollitem_t items[2] = {{l->done, 0, ZMQ_POLLIN, 0}, {l->router, 0, ZMQ_POLLIN, 0}};
        int nitems = drainDeadline ? 1 : 2; /* while stopping, take no new work */
        int rc = zmq_poll(items, nitems, timeout);
        if (rc < 0 && zmq_errno() != EINTR) {
            rd_log(RD_LOG_ERROR, "poll failed", "error", zmq_strerror(zmq_errno()), NULL);
            return 1;
        }
        drainDone(l);
        expireStuck(l);
        if (nitems == 2 && (items[1].revents & ZMQ_POLLIN)) {
            /* take a bounded gulp so finished batches are answered promptly */
            for (int k = 0; k < 2048; k++) {
                int ev = 0;
                size_t evl = sizeof(ev);
                zmq_getsockopt(l->router, ZMQ_EVENTS, &ev, &evl);
                if (!(ev & ZMQ_POLLIN))
                    break;
                acceptOne(l);
                if (l->busy < in->cfg.writers && l->cur && l->cur->n > 0 && (k & 15) == 15)
                    flushBatch(l); /* a writer is idle: do not make it wait for the gulp */
            }
        }
        /* Only an idle writer takes a partial batch: while every writer is busy the batch keeps
         * growing (a queued batch could not), up to max_batch -- unless it has waited max_wait_us
         * and the queue is empty, the one case where queueing it early loses nothing. */
        if (l->cur && l->cur->n > 0 &&
            (l->busy < in->cfg.writers ||
             (l->busy == in->cfg.writers && rd_mono_us() - l->cur->first_us >= in->cfg.max_wait_us)))
            flushBatch(l);
        rd_metric_set(in->m.pending, l->pending);
    }
    drainDone(l);
    return 0;
}

int main(int argc, char **argv)
{
    static rd_service svc = {.name = "intake", .usage = usage};
    int rc0 = rd_service_init(&svc, argc, argv);
    if (rc0 >= 0)
        return rc0;
    char err[512];
    static intake in;
    if (!loadConfig(svc.cfg, &in.cfg, err, sizeof(err))) {
        fprintf(stderr, "redress-intake: configuration: %s\n", err);
        return 2;
    }
    if (svc.check_only) {
        printf("intake.bind=%s\nintake.push_bind=%s\nintake.pub_bind=%s\nintake.writers=%lld\n"
               "intake.max_batch=%lld\nintake.max_pending=%lld\nintake.http_port=%lld\n",
               in.cfg.bind, in.cfg.push_bind, in.cfg.pub_bind, (long long)in.cfg.writers, (long long)in.cfg.max_batch,
               (long long)in.cfg.max_pending, (long long)in.cfg.http_port);
        printf("intake.auth=%s\nintake.curve_secret_key_file=%s\nintake.auth_reload_ms=%lld\n",
               in.cfg.auth_curve ? "curve" : "none", in.cfg.curve_secret_key_file, (long long)in.cfg.auth_reload_ms);
        if (in.cfg.auth_curve) {
            char sec[RD_Z85_KEY_LEN + 1], pub[RD_Z85_KEY_LEN + 1];
            if (!rd_curve_secret_load(in.cfg.curve_secret_key_file, sec, pub, err, sizeof(err))) {
                fprintf(stderr, "redress-intake: configuration: %s\n", err);
                rd_service_done(&svc);
                return 2;
            }
            printf("server_public_key=%s\n", pub); /* what gateways put in REDRESS_CURVE_SERVER_KEY */
        }
        rd_service_done(&svc);
        return 0;
    }

    /* Writers must not take SIGTERM: block it everywhere, then unblock in this thread only. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    pthread_mutex_init(&in.mu, NULL);
    pthread_cond_init(&in.cv, NULL);
    metricsInit(&in.m);
    in.zctx = zmq_ctx_new();
    loop l = {.in = &in};
    l.done = zmq_socket(in.zctx, ZMQ_PULL);
    int hwm = 0;
    zmq_setsockopt(l.done, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_bind(l.done, INTAKE_DONE_ENDPOINT);
    if (!intake_auth_init(&in, err, sizeof(err))) {
        rd_log(RD_LOG_ERROR, "cannot set up gateway authentication", "error", err, NULL);
        return 1;
    }
    l.router = socketBind(&in, ZMQ_ROUTER, in.cfg.bind, in.cfg.max_wire_bytes);
    l.push = socketBind(&in, ZMQ_PUSH, in.cfg.push_bind, 0);
    l.pub = socketBind(&in, ZMQ_PUB, in.cfg.pub_bind, 0);
    if (!l.router || !l.push || !l.pub)
        return 1;
    if (!intake_auth_start(&in, l.router, err, sizeof(err))) {
        rd_log(RD_LOG_ERROR, "cannot start gateway authentication", "error", err, NULL);
        return 1;
    }
    if (!intake_writers_start(&in, err, sizeof(err))) {
        rd_log(RD_LOG_ERROR, "cannot start writers", "error", err, NULL);
        return 1;
    }
    rd_http *http = rd_http_start(in.cfg.http_bind, (int)in.cfg.http_port, healthCheck, &in, err, sizeof(err));
    if (http == NULL) {
        rd_log(RD_LOG_ERROR, "cannot start HTTP endpoint", "error", err, NULL);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = onSignal; /* no SA_RESTART: zmq_poll returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    char writersStr[16];
    snprintf(writersStr, sizeof(writersStr), "%lld", (long long)in.cfg.writers);
    rd_log(RD_LOG_INFO, "intake ready", "bind", in.cfg.bind, "push", in.cfg.push_bind, "pub", in.cfg.pub_bind,
           "writers", writersStr, NULL);
    int rc = runLoop(&l);

    intake_writers_stop(&in);
    intake_auth_stop(&in, l.router);
    drainDone(&l); /* anything a writer finished while we were stopping it */
    if (l.cur) {
        batchFree(l.cur); /* never handed over, never answered: clients will retry */
        l.cur = NULL;
    }
    rd_http_stop(&http);
    zmq_close(l.router);
    zmq_close(l.push);
    zmq_close(l.pub);
    zmq_close(l.done);
    zmq_ctx_term(in.zctx);
    rd_service_done(&svc);
    rd_log(RD_LOG_INFO, "intake stopped", NULL);
    return rc;
}
