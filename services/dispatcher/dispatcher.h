/*
 * dispatcher.h -- who owns each ticket.
 *
 * The organisation (org.c) is read from PostgreSQL into memory; routing and candidate selection
 * (route.c) are pure functions of it and a ticket, so they are unit-tested without servers. The
 * one decision that must be exact under concurrency -- pick an eligible agent and count the ticket
 * against them -- is a Lua script run atomically by Redis (scripts.c). store.c claims tickets and
 * records decisions in PostgreSQL, which stays the truth: Redis is reconciled to it.
 *
 * Redis layout (one hash tag, so every script's keys live in one Redis Cluster slot):
 *   {rd}:load   hash  agent -> open load units (sum of weights of the agent's open tickets)
 *   {rd}:cap    hash  agent -> capacity in load units
 *   {rd}:pres   hash  agent -> online until (ms, Redis clock); "0" = away; absent = offline
 *   {rd}:open   hash  ticket -> "agent|weight|state|ms"; state p = reserved, not yet committed
 *                     to PostgreSQL (ms = when reserved); c = committed (ms = when confirmed)
 *   {rd}:rr:<team>    string  round-robin cursor of a team
 *   {rd}:gone   hash  ticket -> ms an entry was dropped (tombstone, kept a few minutes): a
 *                     PostgreSQL snapshot taken before that must not bring the entry back
 *   {rd}:ready  string  set by a reconciliation once loads are rebuilt; while it is missing (a
 *                       flushed or new Redis) nothing is assigned, so a ticket is never given to
 *                       an agent whose open tickets Redis has forgotten
 * An agent's load always equals the sum of the weights of its {rd}:open entries: only the scripts
 * change either, and each changes both.
 */
#ifndef DISPATCHER_H
#define DISPATCHER_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "rd_calendar.h"
#include "rd_redis.h"

#define DP_KEY_LOAD  "{rd}:load"
#define DP_KEY_CAP   "{rd}:cap"
#define DP_KEY_PRES  "{rd}:pres"
#define DP_KEY_OPEN  "{rd}:open"
#define DP_KEY_RR    "{rd}:rr:" /* + team id */
#define DP_KEY_READY "{rd}:ready"
#define DP_KEY_GONE  "{rd}:gone"
#define DP_KEY_LEASE "{rd}:reconcile" /* who reconciles this interval (SET NX PX) */

/* ---- organisation (org.c) ------------------------------------------------------------------ */

typedef enum { DP_LEAST_LOADED = 0, DP_ROUND_ROBIN = 1 } dp_strategy;

typedef struct {
    char *id, *parent_id, *name, *default_team; /* parent_id, default_team may be NULL */
    bool dispatch_centre;
} dp_department;

typedef struct {
    char *id, *department_id, *name, *overflow_team; /* overflow_team may be NULL */
    dp_strategy strategy;
    int overflow_after_s, major_weight;
    int *agents, nagents; /* indexes into org->agents, active agents only, ordered by id */
    int dept;             /* index of department_id */
    int overflow;         /* index of overflow_team, -1 = none */
} dp_team;

typedef struct {
    char *id, *team_id, *name;
    int capacity;
    char **business_types, **categories, **languages, **regions; /* NULL-terminated; empty = any */
    bool active;
    int team;
    const rd_calendar *calendar; /* working hours (owned by the org); NULL = whenever online */
} dp_agent;

typedef struct {
    char *name, *business_type, *category_prefix, *region_prefix, *severity, *channel; /* NULL = any */
    int team;
} dp_rule;

typedef struct {
    char *business_type; /* "*" = default */
    int seconds, transferred_s;
} dp_limit;

/* teams and agents are sorted by id as strcmp orders them (lookups are binary searches). */
typedef struct {
    dp_department *depts;
    int ndepts;
    dp_team *teams;
    int nteams;
    dp_agent *agents;
    int nagents;
    dp_rule *rules; /* in ord order */
    int nrules;
    dp_limit *limits;
    int nlimits;
    rd_calendar **calendars; /* every stored calendar, parsed */
    int ncalendars;
    int centre_team; /* the dispatch centre's default team: where unroutable tickets go; -1 = none */
} dp_org;

/* Reads the whole organisation in one snapshot; NULL + err on failure. */
dp_org *dp_org_load(PGconn *c, char *err, int errlen);
void dp_org_free(dp_org **o);
int dp_org_team(const dp_org *o, const char *id); /* -1 when unknown */
int dp_org_agent(const dp_org *o, const char *id);

/* ---- routing (route.c): pure -------------------------------------------------------------- */

typedef struct {
    char id[37];
    char *business_type, *category, *severity, *channel, *region, *language, *state; /* "" when unset */
    char *owner_agent, *route_to_unit;                                               /* "" when none */
    int priority;                                                                    /* 1..4, 4 when unset */
    int64_t waiting_s; /* how long it has waited in the queue (0 when not queued) */
    char **excluded;   /* agents who missed accepting it (NULL-terminated, may be NULL) */
    bool transferred;  /* reached us by a transfer or return (the transfer acceptance limit) */
    int64_t now_ms;    /* Unix ms, for agents' calendars; 0 = ignore calendars */
} dp_ticket;

/* The team a ticket goes to: the unit a transfer or return named (a team, or a department's
 * default team, or the first team of that department), else the first matching routing rule,
 * else the dispatch centre's default team. -1 when the organisation has no team at all. *why gets
 * a static description ("rule:<name>", "unit:<id>", "centre", "unknown unit -> centre"). */
int dp_route(const dp_org *o, const dp_ticket *t, const char **why);

/* Agents of team (and, when the ticket has waited overflow_after_s, of its overflow team) who
 * are active, have the skills the ticket needs, are within their calendar's working hours at
 * t->now_ms (when both are set) and are not excluded, in team order. Returns how
 * many were written to out (at most max). */
int dp_candidates(const dp_org *o, int team, const dp_ticket *t, int *out, int max);

/* Whether agent a has the skills for ticket t (business type, category / language / region prefix). */
bool dp_agent_skilled(const dp_agent *a, const dp_ticket *t);

/* Load units of the ticket for team: major_weight for major tickets, else 1. */
int dp_weight(const dp_org *o, int team, const dp_ticket *t);

/* Acceptance limit in seconds for the ticket. */
int dp_accept_limit(const dp_org *o, const dp_ticket *t);

/* ---- Redis scripts (scripts.c) -------------------------------------------------------------- */

/*
 * assign: KEYS load cap pres open rr ready gone; ARGV strategy(ll|rr) ncand agent... then pairs
 *   ticket weight -- one call decides every ticket of a batch that has the same candidates (same
 *   team, same skills), reading the candidates' load, capacity and presence once. The caller holds
 *   each ticket's row lock and PostgreSQL shows no open assignment for it, so an entry of the
 *   ticket in {rd}:open is stale and is dropped first (a retried call never counts twice). Returns
 *   an array with the chosen agent of each ticket, "" when no candidate is online with room; or
 *   the integer 0 when Redis is not reconciled yet ({rd}:ready missing) and nothing was decided.
 * sync: KEYS load open gone; ARGV since_ms grace_ms then triples ticket agent weight (agent "" =
 *   the ticket has no open assignment in PostgreSQL); since_ms is the Redis clock read before the
 *   caller's PostgreSQL snapshot. Makes {rd}:open agree with PostgreSQL for those tickets: confirms
 *   reserved entries; removes entries PostgreSQL no longer has -- but only entries confirmed before
 *   since_ms, or reserved before since_ms - grace_ms, because a younger one may belong to a
 *   transaction the snapshot could not see; adds missing entries -- unless one was dropped after
 *   since_ms (the snapshot may predate what dropped it). Returns {added, removed, confirmed}.
 * cancel: KEYS load open gone; ARGV agent ticket... -- drops reserved (never committed) entries
 *   the caller made for that agent; returns how many.
 * presence: KEYS pres; ARGV agent status(online|away|offline) ttl_ms -- returns the expiry (ms).
 * rebuild: KEYS load open gone; ARGV keep_ms -- recomputes every agent's load from {rd}:open
 *   and forgets tombstones older than keep_ms; returns the number of agents whose load differed.
 * now: no keys -- the Redis clock in ms (every expiry and reservation uses it, never ours).
 */
extern rd_redis_script dp_script_assign, dp_script_sync, dp_script_cancel, dp_script_presence, dp_script_rebuild,
    dp_script_now;

/* Sets an agent's presence in Redis (status "online" with ttl_ms, "away", "offline"); the expiry
 * in ms of the Redis clock, or -1 + err. Used by the dispatcher's reconciliation and by redressctl. */
int64_t dp_presence_set(redisContext *c, const char *agent, const char *status, int64_t ttl_ms, char *err, int errlen);

#endif
