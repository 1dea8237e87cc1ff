/*
 * intake.h -- shared state of the intake service.
 *
 * Threads and ownership:
 *   main thread   owns the ROUTER socket (gateways), the PUSH/PUB hand-off sockets and the
 *                 batch being filled; it decodes and validates every frame, answers bad ones at
 *                 once, and hands full (or, when a writer is idle, partial) batches to the queue.
 *   writer threads (intake.writers of them) each own one PostgreSQL connection; they take a batch
 *                 from the queue, apply it in ONE transaction, fill in every item's answer and
 *                 post the batch back to the main thread over an inproc socket.
 *   The main thread sends the answers -- only after the writer has seen COMMIT succeed -- and then
 *   hands the committed events downstream.
 *
 * A batch belongs to exactly one thread at a time: main (filling), queue (mutex), a writer,
 * the done socket (in flight), main again (answering, freeing). No item is touched by two
 * threads at once, so items need no locks.
 */
#ifndef INTAKE_H
#define INTAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <zmq.h>

#include "rd_envelope.h"
#include "rd_metrics.h"
#include "redress.pb-c.h"

typedef struct intake_item {
    uint8_t rid[256]; /* ROUTER routing id of the gateway connection */
    uint8_t rid_len;
    bool req_style; /* the client sent an empty delimiter frame (REQ socket): echo it */
    bool own_only;  /* an action: the gateway may act only on tickets it created (intake_auth.c) */
    Redress__V1__Envelope *env;
    uint8_t digest[32];
    char ticket_id[37];   /* new tickets: generated here; actions: from the envelope */
    char customer_id[37]; /* new tickets: UUIDv5 of customer_ref */
    int64_t recv_us;
    /* the answer, filled by the writer */
    Redress__V1__ErrorCode code;
    const char *field;
    char message[160];
    bool replay;
    char state[20];
    const char *kind; /* history kind for the hand-off: "created", "accept", ... */
    int64_t seq;      /* ticket_history.seq when this event wrote history, else 0 */
} intake_item;

typedef struct intake_batch {
    struct intake_batch *next;
    int n, cap;
    intake_item *items;
    int64_t first_us;
    /* main thread only (writers never touch these): the list of batches handed to the writers and
     * not back yet, and whether their events were already answered UNAVAILABLE because the
     * database took longer than intake.answer_deadline_ms */
    struct intake_batch *inflight_next;
    bool answered;
} intake_batch;

typedef struct intake_cfg {
    const char *bind, *push_bind, *pub_bind, *pg_dsn, *http_bind;
    int64_t writers, max_batch, max_wait_us, max_frame_bytes, max_wire_bytes, max_pending, http_port;
    int64_t statement_timeout_ms;
    int64_t answer_deadline_ms;        /* answer UNAVAILABLE when the database holds events this long */
    bool auth_curve;                   /* intake.auth = curve (else none) */
    const char *curve_secret_key_file; /* intake.curve_secret_key_file */
    int64_t auth_reload_ms;
} intake_cfg;

typedef struct intake_metrics {
    rd_metric *received, *acked, *replays, *nacks[16], *batches, *batch_size, *commit_seconds, *ack_seconds, *pending,
        *db_up, *handoff_dropped, *writer_errors;
} intake_metrics;

typedef struct intake {
    intake_cfg cfg;
    void *zctx;
    /* batch queue: main -> writers */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    intake_batch *qhead, *qtail;
    bool stopping;
    atomic_int connected; /* writers holding a live PostgreSQL connection */
    intake_metrics m;
    struct intake_auth *auth; /* intake_auth.c */
} intake;

/* intake_writer.c */
bool intake_writers_start(intake *in, char *err, int errlen);
void intake_writers_stop(intake *in);
void intake_queue_push(intake *in, intake_batch *b);

/* intake_auth.c: the allowlist, the ZAP handler and the per-frame check (docs/security.md).
 * init before the ROUTER exists (loads the key, binds the ZAP handler, first allowlist load),
 * secure on the ROUTER before it binds, start after it bound; stop after the main loop ended. */
typedef struct intake_auth intake_auth;
bool intake_auth_init(intake *in, char *err, int errlen);
bool intake_auth_secure(intake *in, void *router, char *err, int errlen);
bool intake_auth_start(intake *in, void *router, char *err, int errlen);
void intake_auth_stop(intake *in, void *router);
/* Main thread, every frame: may this connection (key: its Redress-Key metadata, NULL without
 * CURVE) send env? false with v filled (UNAUTHORIZED or FORBIDDEN). *own_only: actions only on
 * tickets this gateway created (checked by the writer under the ticket's row lock). */
bool intake_auth_check(intake *in, const char *key, const Redress__V1__Envelope *env, bool *own_only, rd_verdict *v);
/* The Redress-Key metadata of a frame received on a CURVE connection, or NULL. */
const char *intake_auth_frame_key(zmq_msg_t *frame);

#define INTAKE_DONE_ENDPOINT "inproc://intake-done"

#endif
