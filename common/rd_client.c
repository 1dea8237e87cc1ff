/*
 * rd_client.c -- the gateway side of the intake protocol (see rd_client.h).
 *
 * Everything is built around one loop, rd_client_stream(): a window of requests in flight, kept
 * in a small open-addressing table keyed by event id. Each request has a timer that means "send
 * again" -- no answer within attempt_timeout, or a busy answer whose retry_after has passed -- and
 * a deadline after which we give up on it. rd_client_call() is a stream of one, so a single
 * request from redressctl and the load generator follow exactly the same retry rules.
 *
 * Why these socket options: LINGER 0 so a client that gives up exits at once instead of hanging
 * on unsent frames; IMMEDIATE so frames are only queued to intakes we are actually connected to
 * (otherwise they sit in a pipe to a dead peer and go out, stale, when it comes back -- a timeout
 * and a resend of the same bytes is the better answer); short reconnect intervals so a restarted
 * intake is found again within a couple of seconds; high water marks far above any window.
 */
#include "rd_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "rd_auth.h"
#include "rd_time.h"

#define CLIENT_HWM         100000
#define SEND_RAW_WAIT_MS   5000 /* how long rd_client_send_raw() waits for a connected intake */
#define MIN_RETRY_MS       50   /* floor for retry_after: never hammer a busy intake */
#define DRAIN_MAX          4096 /* replies handled per wake-up before we look at timers again */
#define EVENT_ID_MAX       256  /* twice the protocol limit: over-long ids still reach intake */
#define DEFAULT_WINDOW     64
#define DEFAULT_ATTEMPT_MS 5000
#define DEFAULT_DEADLINE   120000

struct rd_client {
    void *ctx;
    void *sock;
};

/* ------------------------------------------------------------------------------------------------
 * Connection and raw frames
 * --------------------------------------------------------------------------------------------- */

static bool set_int_opt(void *sock, int opt, int val)
{
    return zmq_setsockopt(sock, opt, &val, sizeof(val)) == 0;
}

static bool configure_socket(void *sock)
{
    return set_int_opt(sock, ZMQ_LINGER, 0) && set_int_opt(sock, ZMQ_RECONNECT_IVL, 100) &&
           set_int_opt(sock, ZMQ_RECONNECT_IVL_MAX, 2000) && set_int_opt(sock, ZMQ_IMMEDIATE, 1) &&
           set_int_opt(sock, ZMQ_SNDHWM, CLIENT_HWM) && set_int_opt(sock, ZMQ_RCVHWM, CLIENT_HWM);
}

/* CURVE client: must be set before connecting. */
static bool configure_curve(void *sock, const rd_client_curve *cv, char *err, int errlen)
{
    char pub[RD_Z85_KEY_LEN + 1];

    if (cv->client_public != NULL)
        snprintf(pub, sizeof(pub), "%s", cv->client_public);
    else if (zmq_curve_public(pub, cv->client_secret) != 0) {
        snprintf(err, errlen, "cannot derive the CURVE public key: %s", zmq_strerror(errno));
        return false;
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, cv->server_public, RD_Z85_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, RD_Z85_KEY_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, cv->client_secret, RD_Z85_KEY_LEN) != 0) {
        snprintf(err, errlen, "cannot enable CURVE: %s (is libzmq built with CURVE?)", zmq_strerror(errno));
        return false;
    }
    return true;
}

/* Connects to every endpoint of a comma-separated list (blanks around the commas are ignored). */
static bool connect_all(void *sock, const char *endpoints, char *err, int errlen)
{
    char *list = strdup(endpoints);
    int connected = 0;

    if (list == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    for (char *save = NULL, *ep = strtok_r(list, ",", &save); ep != NULL; ep = strtok_r(NULL, ",", &save)) {
        ep += strspn(ep, " \t");
        size_t n = strlen(ep);
        while (n > 0 && (ep[n - 1] == ' ' || ep[n - 1] == '\t'))
            ep[--n] = '\0';
        if (n == 0)
            continue;
        if (zmq_connect(sock, ep) != 0) {
            snprintf(err, errlen, "cannot connect to '%s': %s", ep, zmq_strerror(errno));
            free(list);
            return false;
        }
        connected++;
    }
    free(list);
    if (connected == 0) {
        snprintf(err, errlen, "no intake endpoint given");
        return false;
    }
    return true;
}

static rd_client *client_open(const char *endpoints, const rd_client_curve *curve, char *err, int errlen);

rd_client *rd_client_new(const char *endpoints, char *err, int errlen)
{
    return client_open(endpoints, NULL, err, errlen);
}

rd_client *rd_client_new_curve(const char *endpoints, const rd_client_curve *curve, char *err, int errlen)
{
    if (curve == NULL || !rd_z85_key_valid(curve->server_public) || !rd_z85_key_valid(curve->client_secret) ||
        (curve->client_public != NULL && !rd_z85_key_valid(curve->client_public))) {
        snprintf(err, errlen, "CURVE keys must be 40-character Z85 text (see redressctl keys generate)");
        return NULL;
    }
    return client_open(endpoints, curve, err, errlen);
}

rd_client *rd_client_new_env(const char *endpoints, char *err, int errlen)
{
    const char *server = getenv("REDRESS_CURVE_SERVER_KEY");
    const char *file = getenv("REDRESS_CURVE_CLIENT_KEY_FILE");
    if ((server == NULL || server[0] == '\0') && (file == NULL || file[0] == '\0'))
        return rd_client_new(endpoints, err, errlen);
    if (server == NULL || server[0] == '\0' || file == NULL || file[0] == '\0') {
        snprintf(err, errlen,
                 "CURVE needs both REDRESS_CURVE_SERVER_KEY (intake's public key) and "
                 "REDRESS_CURVE_CLIENT_KEY_FILE (this gateway's secret key file)");
        return NULL;
    }
    if (!rd_z85_key_valid(server)) {
        snprintf(err, errlen,
                 "REDRESS_CURVE_SERVER_KEY must be intake's 40-character Z85 public key "
                 "(redress-intake --check-config prints it)");
        return NULL;
    }
    char secret[RD_Z85_KEY_LEN + 1], pub[RD_Z85_KEY_LEN + 1];
    if (!rd_curve_secret_load(file, secret, pub, err, errlen))
        return NULL;
    rd_client_curve cv = {.server_public = server, .client_public = pub, .client_secret = secret};
    rd_client *c = client_open(endpoints, &cv, err, errlen);
    memset(secret, 0, sizeof(secret));
    return c;
}

static rd_client *client_open(const char *endpoints, const rd_client_curve *curve, char *err, int errlen)
{
    rd_client *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->ctx = zmq_ctx_new();
    if (c->ctx != NULL)
        c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (c->sock == NULL) {
        snprintf(err, errlen, "cannot create ZeroMQ socket: %s", zmq_strerror(errno));
        rd_client_destroy(&c);
        return NULL;
    }
    if (!configure_socket(c->sock)) {
        snprintf(err, errlen, "cannot set socket options: %s", zmq_strerror(errno));
        rd_client_destroy(&c);
        return NULL;
    }
    if (curve != NULL && !configure_curve(c->sock, curve, err, errlen)) {
        rd_client_destroy(&c);
        return NULL;
    }
    if (!connect_all(c->sock, endpoints != NULL ? endpoints : "", err, errlen)) {
        rd_client_destroy(&c);
        return NULL;
    }
    return c;
}

void rd_client_destroy(rd_client **cp)
{
    rd_client *c = *cp;

    if (c == NULL)
        return;
    if (c->sock != NULL)
        zmq_close(c->sock);
    if (c->ctx != NULL)
        zmq_ctx_term(c->ctx);
    free(c);
    *cp = NULL;
}

/*
 * Queues one frame. Because of ZMQ_IMMEDIATE a send fails with EAGAIN while no intake is
 * connected -- right after rd_client_new() the TCP handshake may still be running -- so we wait
 * up to SEND_RAW_WAIT_MS for one. Returns 0 when queued, -1 with errno set otherwise.
 */
int rd_client_send_raw(rd_client *c, const void *buf, size_t len)
{
    int64_t until = rd_mono_us() + (int64_t)SEND_RAW_WAIT_MS * 1000;

    for (;;) {
        if (zmq_send(c->sock, buf, len, ZMQ_DONTWAIT) >= 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        int64_t left_us = until - rd_mono_us();
        if (left_us <= 0) {
            errno = EAGAIN;
            return -1;
        }
        zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLOUT, 0};
        if (zmq_poll(&it, 1, (long)((left_us + 999) / 1000)) < 0 && errno != EINTR)
            return -1;
    }
}

typedef enum { RECV_OK, RECV_NONE, RECV_BAD, RECV_ERR } recv_result;

/* Receives one reply. Intake sends one frame; should a peer prepend a delimiter or routing
 * frames anyway, the reply is the last frame of the message. */
static recv_result recv_reply(rd_client *c, int flags, Redress__V1__Reply **out)
{
    zmq_msg_t msg;

    *out = NULL;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, c->sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        errno = e;
        return (e == EAGAIN || e == EINTR) ? RECV_NONE : RECV_ERR;
    }
    while (zmq_msg_more(&msg)) {
        zmq_msg_close(&msg);
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, c->sock, 0) < 0) {
            int e = errno;
            zmq_msg_close(&msg);
            errno = e;
            return RECV_ERR;
        }
    }
    *out = redress__v1__reply__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
    zmq_msg_close(&msg);
    return *out != NULL ? RECV_OK : RECV_BAD;
}

int rd_client_recv(rd_client *c, int timeout_ms, Redress__V1__Reply **reply)
{
    zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&it, 1, timeout_ms);

    *reply = NULL;
    if (rc < 0)
        return errno == EINTR ? 0 : -1;
    if (rc == 0)
        return 0;
    switch (recv_reply(c, ZMQ_DONTWAIT, reply)) {
    case RECV_OK:
        return 1;
    case RECV_NONE:
        return 0;
    default:
        return -1;
    }
}

/* ------------------------------------------------------------------------------------------------
 * The window: slots for requests in flight plus an open-addressing index on their event ids
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    bool live;
    bool pending; /* must be (re)sent as soon as the socket takes it */
    bool ever_sent;
    bool busy; /* the timer was set by a busy answer, not by a send */
    uint64_t hash;
    char event_id[EVENT_ID_MAX];
    uint8_t *buf;
    size_t len;
    int64_t first_us; /* scheduled or first send: latency and deadline count from here */
    int64_t timer_us; /* when to send again if no final answer has come */
} flight;

typedef struct {
    rd_client *c;
    int window;
    int64_t attempt_us, deadline_us;
    double rate; /* offered events per second; 0: no pacing */
    rd_stream_next_fn next;
    void *next_arg;
    rd_stream_done_fn done;
    void *done_arg;
    rd_stream_stats *st;

    flight *slots;
    int *free_slots;
    int nfree;
    int live;
    int32_t *index; /* slot number or -1; size mask + 1, a power of two at least twice the window */
    size_t mask;

    flight held; /* pulled, but its event id is still in flight: waits for that one to end */
    bool have_held;
    bool ended;      /* next() said there is no more */
    bool blocked;    /* the socket refused a send: wait for POLLOUT */
    bool scan_now;   /* look at every slot on the next turn */
    bool failed;     /* socket error: finish everything and return false */
    uint64_t pulled; /* events taken from next(), for the pacing schedule */
    int64_t start_us, next_timer_us;
} stream;

/* FNV-1a: short keys, no adversary -- the simplest hash that spreads well. */
static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Position in the index holding the slot for id, or the empty position where it would go. */
static size_t index_find(const stream *s, const char *id, uint64_t h)
{
    size_t i = h & s->mask;

    while (s->index[i] >= 0) {
        const flight *f = &s->slots[s->index[i]];
        if (f->hash == h && strcmp(f->event_id, id) == 0)
            break;
        i = (i + 1) & s->mask;
    }
    return i;
}

static flight *stream_lookup(const stream *s, const char *id)
{
    size_t i = index_find(s, id, hash_id(id));

    return s->index[i] >= 0 ? &s->slots[s->index[i]] : NULL;
}

/* Linear-probing deletion without tombstones: later members of the same probe run move back into
 * the hole unless their home position lies cyclically within (hole, their position]. */
static void index_delete(stream *s, size_t hole)
{
    size_t j = hole;

    s->index[hole] = -1;
    for (;;) {
        j = (j + 1) & s->mask;
        if (s->index[j] < 0)
            return;
        size_t home = s->slots[s->index[j]].hash & s->mask;
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays)
            continue;
        s->index[hole] = s->index[j];
        s->index[j] = -1;
        hole = j;
    }
}

static bool stream_init(stream *s, const rd_stream_opts *o)
{
    s->window = o != NULL && o->window > 0 ? o->window : DEFAULT_WINDOW;
    s->attempt_us =
        (int64_t)(o != NULL && o->attempt_timeout_ms > 0 ? o->attempt_timeout_ms : DEFAULT_ATTEMPT_MS) * 1000;
    s->deadline_us = (int64_t)(o != NULL && o->deadline_ms > 0 ? o->deadline_ms : DEFAULT_DEADLINE) * 1000;
    s->rate = o != NULL && o->rate_per_s > 0 ? o->rate_per_s : 0;

    size_t cap = 16;
    while (cap < (size_t)s->window * 2)
        cap <<= 1;
    s->mask = cap - 1;
    s->slots = calloc((size_t)s->window, sizeof(*s->slots));
    s->free_slots = malloc((size_t)s->window * sizeof(*s->free_slots));
    s->index = malloc(cap * sizeof(*s->index));
    if (s->slots == NULL || s->free_slots == NULL || s->index == NULL)
        return false;
    for (size_t i = 0; i < cap; i++)
        s->index[i] = -1;
    for (int i = 0; i < s->window; i++)
        s->free_slots[i] = s->window - 1 - i;
    s->nfree = s->window;
    return true;
}

static void stream_free(stream *s)
{
    free(s->slots);
    free(s->free_slots);
    free(s->index);
}

/* ------------------------------------------------------------------------------------------------
 * Sending, finishing, timers
 * --------------------------------------------------------------------------------------------- */

static void note_timer(stream *s, int64_t at_us)
{
    if (at_us < s->next_timer_us)
        s->next_timer_us = at_us;
}

/* Tries to put f's bytes on the wire now; on EAGAIN it stays pending until the socket is writable. */
static void flight_send(stream *s, flight *f, int64_t now)
{
    if (s->blocked) {
        f->pending = true;
        return;
    }
    if (zmq_send(s->c->sock, f->buf, f->len, ZMQ_DONTWAIT) < 0) {
        f->pending = true;
        if (errno == EAGAIN)
            s->blocked = true;
        else if (errno == EINTR)
            s->scan_now = true;
        else
            s->failed = true;
        return;
    }
    if (!f->ever_sent)
        s->st->sent++;
    else if (f->busy)
        s->st->retried_busy++;
    else
        s->st->resends++;
    f->ever_sent = true;
    f->pending = false;
    f->busy = false;
    f->timer_us = now + s->attempt_us;
    note_timer(s, f->timer_us);
}

/* Final answer (or NULL: gave up): report it once, then forget the event. */
static void flight_finish(stream *s, flight *f, const Redress__V1__Reply *reply, int64_t now)
{
    if (s->done != NULL)
        s->done(s->done_arg, f->event_id, reply, now - f->first_us);
    free(f->buf);
    f->buf = NULL;
    f->live = false;
    index_delete(s, index_find(s, f->event_id, f->hash));
    s->free_slots[s->nfree++] = (int)(f - s->slots);
    s->live--;
}

/* Takes a pulled event into a free slot (the caller checked there is one and its id is not live). */
static void stream_admit(stream *s, const flight *src, int64_t now)
{
    int n = s->free_slots[--s->nfree];
    flight *f = &s->slots[n];

    *f = *src;
    f->live = true;
    f->hash = hash_id(f->event_id);
    s->index[index_find(s, f->event_id, f->hash)] = n;
    s->live++;
    note_timer(s, f->first_us + s->deadline_us);
    flight_send(s, f, now);
}

/* When the n-th event is due: at fixed intervals from the start, however far behind we are. */
static int64_t stream_due(const stream *s, uint64_t n)
{
    return s->rate > 0 ? s->start_us + (int64_t)((double)n * 1e6 / s->rate) : s->start_us;
}

/* Pulls events from next() while the window and the pacing schedule allow. */
static void stream_fill(stream *s, int64_t now)
{
    if (s->have_held) {
        if (stream_lookup(s, s->held.event_id) != NULL)
            return;
        s->have_held = false;
        stream_admit(s, &s->held, now);
    }
    while (!s->ended && !s->failed && s->nfree > 0) {
        int64_t due = stream_due(s, s->pulled);
        if (s->rate > 0 && due > now)
            return;
        flight f;
        memset(&f, 0, sizeof(f));
        if (!s->next(s->next_arg, &f.buf, &f.len, f.event_id, sizeof(f.event_id))) {
            s->ended = true;
            return;
        }
        f.event_id[sizeof(f.event_id) - 1] = '\0';
        s->pulled++;
        /* With pacing, latency counts from the scheduled time: falling behind is the system's fault. */
        f.first_us = s->rate > 0 ? due : now;
        if (stream_lookup(s, f.event_id) != NULL) {
            s->held = f;
            s->have_held = true;
            return;
        }
        stream_admit(s, &f, now);
    }
}

/* Visits every live slot: gives up on those past their deadline, (re)sends those that are due,
 * and recomputes the earliest timer. Runs only when a timer is due or the socket became writable. */
static void stream_scan(stream *s, int64_t now)
{
    s->scan_now = false;
    s->next_timer_us = INT64_MAX;
    for (int i = 0; i < s->window && !s->failed; i++) {
        flight *f = &s->slots[i];
        if (!f->live)
            continue;
        if (now >= f->first_us + s->deadline_us) {
            s->st->gave_up++;
            flight_finish(s, f, NULL, now);
            continue;
        }
        if (f->pending || now >= f->timer_us)
            flight_send(s, f, now);
        if (!f->pending)
            note_timer(s, f->timer_us);
        note_timer(s, f->first_us + s->deadline_us);
    }
}

/* The slot a reply belongs to. A reply with an empty event id answers an envelope intake could not
 * decode; it can only be matched when a single request is in flight. */
static flight *match_reply(stream *s, const Redress__V1__Reply *r)
{
    if (r->event_id != NULL && r->event_id[0] != '\0')
        return stream_lookup(s, r->event_id);
    if (s->live != 1)
        return NULL;
    for (int i = 0; i < s->window; i++)
        if (s->slots[i].live)
            return &s->slots[i];
    return NULL;
}

static void stream_on_reply(stream *s, const Redress__V1__Reply *r, int64_t now)
{
    flight *f = match_reply(s, r);

    if (f == NULL)
        return; /* late or duplicate answer for an event already finished */
    if (r->error == REDRESS__V1__ERROR_CODE__ERROR_UNAVAILABLE ||
        r->error == REDRESS__V1__ERROR_CODE__ERROR_OVERLOADED) {
        uint32_t ms = r->retry_after_ms > MIN_RETRY_MS ? r->retry_after_ms : MIN_RETRY_MS;
        f->busy = true;
        f->pending = false;
        f->timer_us = now + (int64_t)ms * 1000;
        note_timer(s, f->timer_us);
        return;
    }
    if (r->error == REDRESS__V1__ERROR_CODE__ERROR_NONE) {
        s->st->acked++;
        if (r->replay)
            s->st->replays++;
    } else {
        s->st->nacked++;
    }
    flight_finish(s, f, r, now);
}

static void stream_drain(stream *s)
{
    for (int n = 0; n < DRAIN_MAX; n++) {
        Redress__V1__Reply *r;
        recv_result rr = recv_reply(s->c, ZMQ_DONTWAIT, &r);
        if (rr == RECV_NONE)
            return;
        if (rr == RECV_ERR) {
            s->failed = true;
            return;
        }
        if (rr == RECV_OK) {
            stream_on_reply(s, r, rd_mono_us());
            redress__v1__reply__free_unpacked(r, NULL);
        }
    }
}

/* How long zmq_poll may sleep: until the next timer or the next paced send, in whole ms. */
static long stream_poll_ms(const stream *s, int64_t now)
{
    int64_t wake = INT64_MAX;

    if (s->live > 0 || s->have_held)
        wake = s->next_timer_us;
    if (s->scan_now)
        wake = now;
    if (!s->ended && !s->have_held && s->nfree > 0 && s->rate > 0) {
        int64_t due = stream_due(s, s->pulled);
        if (due < wake)
            wake = due;
    }
    if (wake == INT64_MAX)
        return 1000;
    if (wake <= now)
        return 0;
    int64_t ms = (wake - now + 999) / 1000;
    return ms > 1000 ? 1000 : (long)ms;
}

/* A socket error: everything still in flight is given up, so done() still runs once per event. */
static void stream_abandon(stream *s, int64_t now)
{
    for (int i = 0; i < s->window; i++) {
        if (s->slots[i].live) {
            s->st->gave_up++;
            flight_finish(s, &s->slots[i], NULL, now);
        }
    }
    if (s->have_held) {
        s->st->gave_up++;
        if (s->done != NULL)
            s->done(s->done_arg, s->held.event_id, NULL, now - s->held.first_us);
        free(s->held.buf);
        s->have_held = false;
    }
}

static bool stream_turn(stream *s)
{
    int64_t now = rd_mono_us();

    /* Scan first: slots it frees (events given up) are filled again before we sleep. */
    if (s->scan_now || now >= s->next_timer_us)
        stream_scan(s, now);
    stream_fill(s, now);
    if (s->failed)
        return false;
    if (s->ended && s->live == 0 && !s->have_held)
        return false;

    zmq_pollitem_t it = {s->c->sock, 0, (short)(ZMQ_POLLIN | (s->blocked ? ZMQ_POLLOUT : 0)), 0};
    if (zmq_poll(&it, 1, stream_poll_ms(s, now)) < 0) {
        if (errno != EINTR)
            s->failed = true;
        return !s->failed;
    }
    if (it.revents & ZMQ_POLLOUT) {
        s->blocked = false;
        s->scan_now = true;
    }
    if (it.revents & ZMQ_POLLIN)
        stream_drain(s);
    return !s->failed;
}

bool rd_client_stream(rd_client *c, const rd_stream_opts *opts, rd_stream_next_fn next, void *next_arg,
                      rd_stream_done_fn done, void *done_arg, rd_stream_stats *stats)
{
    rd_stream_stats local = {0};
    stream s;

    memset(&s, 0, sizeof(s));
    memset(&local, 0, sizeof(local));
    s.st = stats != NULL ? stats : &local;
    memset(s.st, 0, sizeof(*s.st));
    s.c = c;
    s.next = next;
    s.next_arg = next_arg;
    s.done = done;
    s.done_arg = done_arg;
    if (!stream_init(&s, opts)) {
        stream_free(&s);
        errno = ENOMEM;
        return false;
    }
    s.start_us = rd_mono_us();
    s.next_timer_us = INT64_MAX;
    while (stream_turn(&s))
        ;
    int64_t end = rd_mono_us();
    if (s.failed)
        stream_abandon(&s, end);
    s.st->elapsed_us = end - s.start_us;
    stream_free(&s);
    return !s.failed;
}

/* ------------------------------------------------------------------------------------------------
 * One request: a stream of one
 * --------------------------------------------------------------------------------------------- */

typedef struct {
    const Redress__V1__Envelope *env;
    bool given;
    bool answered;
    Redress__V1__Reply *reply;
} call_state;

static bool call_next(void *arg, uint8_t **buf, size_t *len, char *event_id, size_t event_id_len)
{
    call_state *cs = arg;

    if (cs->given)
        return false;
    cs->given = true;
    *len = redress__v1__envelope__get_packed_size(cs->env);
    *buf = malloc(*len > 0 ? *len : 1);
    if (*buf == NULL)
        return false;
    redress__v1__envelope__pack(cs->env, *buf);
    snprintf(event_id, event_id_len, "%s", cs->env->event_id != NULL ? cs->env->event_id : "");
    return true;
}

/* The stream frees its reply after done(); the caller of rd_client_call owns a copy. */
static void call_done(void *arg, const char *event_id, const Redress__V1__Reply *reply, int64_t latency_us)
{
    call_state *cs = arg;
    size_t len;
    uint8_t *tmp;

    (void)event_id; /* one event only */
    (void)latency_us;
    if (reply == NULL)
        return;
    len = redress__v1__reply__get_packed_size(reply);
    tmp = malloc(len > 0 ? len : 1);
    if (tmp == NULL)
        return;
    redress__v1__reply__pack(reply, tmp);
    cs->reply = redress__v1__reply__unpack(NULL, len, tmp);
    cs->answered = cs->reply != NULL;
    free(tmp);
}

int rd_client_call(rd_client *c, const Redress__V1__Envelope *env, int attempt_timeout_ms, int deadline_ms,
                   Redress__V1__Reply **reply)
{
    rd_stream_opts o = {.window = 1, .attempt_timeout_ms = attempt_timeout_ms, .deadline_ms = deadline_ms};
    call_state cs = {.env = env};

    *reply = NULL;
    rd_client_stream(c, &o, call_next, &cs, call_done, &cs, NULL);
    if (!cs.answered)
        return 0;
    *reply = cs.reply;
    return 1;
}
