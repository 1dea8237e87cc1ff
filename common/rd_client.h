/*
 * rd_client.h -- the gateway side of the intake protocol.
 *
 * One DEALER socket connected to one or more intake endpoints. Each request is one Envelope frame;
 * each answer one Reply frame carrying the event id. Delivery is at-least-once from the client
 * and exactly-once in effect because intake de-duplicates by (gateway, event id): after a timeout
 * the client sends the very same bytes again; UNAVAILABLE and OVERLOADED answers are retried after
 * their retry_after hint. Everything else is final.
 *
 * Used by redressctl, the integration tests and the load generator.
 */
#ifndef RD_CLIENT_H
#define RD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redress.pb-c.h"

typedef struct rd_client rd_client;

/* endpoints: comma-separated ZeroMQ endpoints, e.g. "tcp://127.0.0.1:7401". */
rd_client *rd_client_new(const char *endpoints, char *err, int errlen);
/* The same over CURVE (docs/security.md): intake's public key and this gateway's key pair, all
 * Z85 text; client_public may be NULL (derived from client_secret). */
typedef struct {
    const char *server_public, *client_public, *client_secret;
} rd_client_curve;
rd_client *rd_client_new_curve(const char *endpoints, const rd_client_curve *curve, char *err, int errlen);
/* rd_client_new_curve() when the environment asks for CURVE -- REDRESS_CURVE_SERVER_KEY (intake's
 * public key) and REDRESS_CURVE_CLIENT_KEY_FILE (this gateway's secret key file, mode 600) --
 * else rd_client_new(). */
rd_client *rd_client_new_env(const char *endpoints, char *err, int errlen);
void rd_client_destroy(rd_client **c);

/* Low level: one raw frame out; one reply in (1 = got one, 0 = timeout, -1 = error / undecodable).
 * *reply must be freed with redress__v1__reply__free_unpacked(r, NULL). */
int rd_client_send_raw(rd_client *c, const void *buf, size_t len);
int rd_client_recv(rd_client *c, int timeout_ms, Redress__V1__Reply **reply);

/* Send one envelope and wait for its final answer, retrying as described above until
 * deadline_ms has passed. Returns 1 with *reply set, 0 when no final answer came in time. */
int rd_client_call(rd_client *c, const Redress__V1__Envelope *env, int attempt_timeout_ms, int deadline_ms,
                   Redress__V1__Reply **reply);

/* A pipelined stream of many envelopes with a bounded window of requests in flight. */
typedef struct {
    int window;             /* requests in flight at most (default 64) */
    int attempt_timeout_ms; /* resend after this long without an answer (default 5000) */
    int deadline_ms;        /* give up on one event after this long (default 120000) */
    double rate_per_s;      /* offered rate; 0 = as fast as the window allows */
} rd_stream_opts;

/* Produces the i-th envelope (packed bytes, malloc'd) and its event id; return false at the end. */
typedef bool (*rd_stream_next_fn)(void *arg, uint8_t **buf, size_t *len, char *event_id, size_t event_id_len);
/* Called once per event with its final reply (NULL when it gave up) and the latency from first
 * send to final answer in microseconds. */
typedef void (*rd_stream_done_fn)(void *arg, const char *event_id, const Redress__V1__Reply *reply, int64_t latency_us);

typedef struct {
    uint64_t sent, acked, replays, nacked, gave_up, resends, retried_busy;
    int64_t elapsed_us;
} rd_stream_stats;

/* Runs the stream to completion. Returns false only on a socket error. */
bool rd_client_stream(rd_client *c, const rd_stream_opts *opts, rd_stream_next_fn next, void *next_arg,
                      rd_stream_done_fn done, void *done_arg, rd_stream_stats *stats);

#endif
