/*
 * dp_store.h -- the dispatcher's PostgreSQL side (store.c). Everything runs in the caller's
 * transaction; claims lock the tickets they return (FOR UPDATE SKIP LOCKED) until it ends.
 */
#ifndef DP_STORE_H
#define DP_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "dispatcher.h"

typedef struct {
    dp_ticket *v;
    bool *queued; /* v[i] has a dispatch_queue row */
    int n;
} dp_batch;

typedef struct {
    bool skip;        /* nothing to write (e.g. no team at all) */
    char agent[65];   /* "" = queued */
    const char *team; /* team id (org-owned string) */
    const char *dept; /* department id */
    const char *kind; /* assign | redispatch | transfer | return */
    int weight, accept_s;
    char why[192]; /* routing reason, or why it is queued */
} dp_decision;

typedef struct {
    char ticket[37];
    char agent[65]; /* "" = no open assignment */
    int weight;
} dp_open;

typedef struct {
    char agent[65];
    char status[16];
    int64_t ttl_ms;
} dp_presence;

void dp_batch_free(dp_batch *b);
/* Prepares the statements below on a new connection; false + err when PostgreSQL refuses. */
bool dp_store_prepare(PGconn *c, char *err, int errlen);
/* Tickets among ids that need dispatching (classified, returned, or assigned without an agent). */
bool dp_store_claim_ids(PGconn *c, const char *const *ids, int n, dp_batch *out, char *err, int errlen);
/* The oldest such tickets not in the queue, unchanged for min_age_ms (missed notifications). */
bool dp_store_claim_redrive(PGconn *c, int limit, int64_t min_age_ms, dp_batch *out, char *err, int errlen);
/* The head of the dispatch queue: at most per_team tickets of each team (by priority, then age),
 * at most limit in all. */
bool dp_store_claim_queue(PGconn *c, int limit, int per_team, dp_batch *out, char *err, int errlen);
/* Ends assignments whose acceptance limit passed (outcome missed, history row), clears the owner
 * agent and returns the tickets' ids (locked; caller frees each and the array), -1 on error. */
int dp_store_expire(PGconn *c, int limit, const char *who, char ***ids, char *err, int errlen);
/* Records decision d[i] for b->v[i]: assignments (tickets, ticket_assignments, history, queue row
 * removed) and queue rows. seqs[i] = the history seq of an assignment, 0 otherwise. */
bool dp_store_write(PGconn *c, const dp_batch *b, const dp_decision *d, const char *who, int64_t *seqs, char *err,
                    int errlen);
/* The open assignment of each ticket (agent "" = none). Caller frees *out. */
int dp_store_open_of(PGconn *c, const char *const *ids, int n, dp_open **out, char *err, int errlen);
/* Every open assignment. */
int dp_store_open_all(PGconn *c, dp_open **out, char *err, int errlen);
/* Stored presence of active agents (ttl_ms = what is left of online). */
int dp_store_presence(PGconn *c, dp_presence **out, char *err, int errlen);

#endif
