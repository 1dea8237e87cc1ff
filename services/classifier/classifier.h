/*
 * classifier.h -- the classifier service: what each new ticket is, how serious, and whether the
 * customer has raised it before.
 *
 * The decision (decide.c) is a pure function of the ticket, the customer's earlier tickets, the
 * ruleset and the models: no I/O, no clock, so classifying twice gives the same answer and the
 * tests can call it directly. store.c moves tickets in and decisions out of PostgreSQL; main.c
 * wires sockets, re-drive and hot reload together.
 */
#ifndef CLASSIFIER_H
#define CLASSIFIER_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rd_rules.h"
#include "rd_textmodel.h"

typedef struct {
    char id[37];
    char customer_id[37];
    int64_t created_us; /* Unix microseconds */
    char *subject, *body, *channel, *organisation, *product, *region, *language, *external_case_no, *customer_ref;
    bool vip;
    char *category; /* earlier tickets only: the stored category, NULL when not classified yet */
    bool classified;
} cl_ticket;

typedef struct {
    const rd_ruleset *rules;             /* may be NULL: no rules */
    const rd_model *model_business_type; /* may be NULL */
    const rd_model *model_category;      /* may be NULL */
    int64_t repeat_window_us;            /* default 30 days */
    int64_t duplicate_window_us;         /* default 24 h */
    double duplicate_similarity;         /* Jaccard of character 3-grams, default 0.9 */
} cl_context;

typedef struct {
    char ticket_id[37];
    char business_type[64], business_type_source[128];
    double business_type_confidence;
    char category[256], category_source[128]; /* category "" = none */
    double category_confidence;
    bool major;
    char reasons[RD_RULES_MAX_REASONS][64];
    int nreasons;
    int priority;
    char priority_source[128];
    char repeat_of[37], duplicate_of[37]; /* "" = none */
} cl_decision;

/* decide.c */
void cl_decide(const cl_context *ctx, const cl_ticket *t, const cl_ticket *earlier, int nearlier, cl_decision *out);
/* Jaccard similarity of the two texts' character-3-gram sets, 0..1 (1 for two equal short texts). */
double cl_similarity(const char *a, const char *b);

/* store.c -- all in the caller's transaction unless said otherwise */
typedef struct {
    cl_ticket *v;
    int n, cap;
    char *arena; /* every string of every ticket */
} cl_batch;

void cl_batch_free(cl_batch *b);
/* BEGIN; locks up to limit unclassified tickets: the given ids (n > 0), or the oldest ones
 * created before min_age_ms (ids == NULL). Tickets another process holds are skipped. */
bool cl_store_claim(PGconn *c, const char *const *ids, int n, int limit, int64_t min_age_ms, cl_batch *out, char *err,
                    int errlen);
/* The customers' earlier tickets within window_us before the newest claimed ticket. */
bool cl_store_history(PGconn *c, const cl_batch *claimed, int64_t window_us, cl_batch *out, char *err, int errlen);
/* Writes decisions, moves the tickets to 'classified', appends history, COMMITs. seqs[i] gets the
 * history seq of decision i. */
bool cl_store_write(PGconn *c, const cl_decision *d, int n, const char *rules_version, const char *who, int64_t *seqs,
                    char *err, int errlen);
/* The active ruleset's JSON and version; *json NULL (and true) when none is active. Caller frees. */
bool cl_store_active_rules(PGconn *c, char **json, char **version, char *err, int errlen);

#endif
