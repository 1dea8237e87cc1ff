/*
 * rd_lifecycle.h -- the one ticket state machine.
 *
 * Every service that changes a ticket's state asks this module first; nothing else in the code
 * base decides which transitions are legal. It is a pure function of (state, event) so it can be
 * unit-tested exhaustively and called under a row lock without any I/O.
 *
 *   new --classify--> classified --assign--> assigned --accept--> accepted --reply--> in_progress
 *   in_progress <--> waiting_customer (wait_customer / resume)
 *   accepted|in_progress --resolve--> resolved --close--> closed
 *   resolved|closed --reopen--> in_progress
 *   assigned|accepted|in_progress --transfer--> assigned  (to another unit)
 *   assigned|accepted|in_progress --return(退单)--> returned --assign--> assigned
 *   assigned --assign--> assigned (re-dispatch after an acceptance timeout)
 *   chase (催办) and return_visit (回访) record history and keep the state.
 *
 * States and events have stable lower-case names: they are stored as text in PostgreSQL
 * (tickets.state, ticket_history.kind) and must never be renamed.
 */
#ifndef RD_LIFECYCLE_H
#define RD_LIFECYCLE_H

#include <stdbool.h>

typedef enum {
    RD_STATE_INVALID = 0,
    RD_STATE_NEW,
    RD_STATE_CLASSIFIED,
    RD_STATE_ASSIGNED,
    RD_STATE_ACCEPTED,
    RD_STATE_IN_PROGRESS,
    RD_STATE_WAITING_CUSTOMER,
    RD_STATE_RESOLVED,
    RD_STATE_CLOSED,
    RD_STATE_RETURNED,
    RD_STATE__COUNT
} rd_state;

typedef enum {
    RD_EV_INVALID = 0,
    RD_EV_CLASSIFY, /* internal: classifier decided */
    RD_EV_ASSIGN,   /* internal: dispatcher assigned an owner */
    RD_EV_ACCEPT,
    RD_EV_REPLY,
    RD_EV_TRANSFER,
    RD_EV_RETURN,
    RD_EV_RESOLVE,
    RD_EV_CLOSE,
    RD_EV_REOPEN,
    RD_EV_WAIT_CUSTOMER,
    RD_EV_RESUME,
    RD_EV_CHASE,
    RD_EV_RETURN_VISIT,
    RD_EV__COUNT
} rd_event;

/* Stable text names ("in_progress", "return_visit"); "invalid" for out-of-range values. */
const char *rd_state_name(rd_state s);
const char *rd_event_name(rd_event e);

/* Parse a stored name back; RD_STATE_INVALID / RD_EV_INVALID when unknown. */
rd_state rd_state_parse(const char *name);
rd_event rd_event_parse(const char *name);

/*
 * The state after applying event e in state s, or RD_STATE_INVALID when the transition is not
 * allowed (including invalid inputs). Never has side effects.
 */
rd_state rd_lifecycle_next(rd_state s, rd_event e);

/* True when the ticket still needs work (every state but resolved and closed). */
bool rd_state_is_open(rd_state s);

#endif
