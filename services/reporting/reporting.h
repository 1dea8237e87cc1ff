/*
 * reporting.h -- redress-reporting's parts: the working intervals of the reporting calendar (a pure
 * function of the calendar, intervals.c) and the PostgreSQL side (store.c). Nearly all of the
 * reporting logic is SQL (deploy/sql/0006_reporting.sql); the service is the loop around it.
 *
 * Advisory locks (PostgreSQL, transaction scoped):
 *   7427000 + part  a queue partition being applied (taken inside reporting.apply_queue)
 *   7427100         reporting.settings and reporting.work_intervals being written
 *   7427101         the sweep for missed events (one process per interval)
 */
#ifndef REPORTING_H
#define REPORTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rd_calendar.h"

#define RP_QUEUE_PARTS    8
#define RP_SETTINGS_LOCK  7427100
#define RP_SWEEP_LOCK     7427101
#define RP_DAY_MS         INT64_C(86400000)
#define RP_MAX_INTERVAL   (7 * RP_DAY_MS)  /* a longer working stretch is cut (harmless) */
#define RP_HORIZON_DAYS   400              /* intervals are written up to now + this */
#define RP_HORIZON_MIN_MS (30 * RP_DAY_MS) /* extended when fewer than this are left */

/* ---- working intervals (intervals.c, pure) ------------------------------------------------------ */

/* One working interval [start_ms, end_ms); cum_ms = working ms before start_ms, counted from the
 * first interval of the series. */
typedef struct {
    int64_t start_ms, end_ms, cum_ms;
} rp_interval;

typedef struct {
    rp_interval *v;
    size_t n, cap;
} rp_intervals;

/* Appends to out the working intervals of c that start in [from_ms, to_ms), in order: each starts
 * at a working instant (rd_calendar_add(c, t, 0)) and ends at the first instant after it that is
 * not working time, or RP_MAX_INTERVAL later, whichever comes first. cum_ms of the first one
 * appended is cum0_ms. The business time between two instants a <= b of the covered range is then
 * work(b) - work(a) with work(t) = cum + min(t, end) - start of the last interval starting at or
 * before t -- exactly rd_calendar_between(c, a, b). Returns how many were appended, -1 when the
 * calendar library fails (out of memory). A calendar without working time appends nothing. */
long rp_intervals_build(const rd_calendar *c, int64_t from_ms, int64_t to_ms, int64_t cum0_ms, rp_intervals *out);
void rp_intervals_free(rp_intervals *iv);

/* Where the intervals of a calendar start: 2015-01-01 00:00 in its own time zone. */
int64_t rp_intervals_epoch(const rd_calendar *c);

/* Working ms of [a_ms, b_ms) as the intervals see it (what reporting.business_s computes in SQL). */
int64_t rp_intervals_between(const rp_intervals *iv, int64_t a_ms, int64_t b_ms);

/* ---- PostgreSQL (store.c) ----------------------------------------------------------------------- */

/* Session settings and prepared statements for a fresh connection. */
bool rp_store_prepare(PGconn *c, char *err, int errlen);

typedef enum {
    RP_SYNC_OK = 0,     /* settings match (intervals extended when due) or were brought in line */
    RP_SYNC_FAILED,     /* a database error: retry later (err says why) */
    RP_SYNC_BAD_CONFIG, /* unknown calendar, unreadable calendar, unknown time zone: err says why */
} rp_sync_status;

typedef struct {
    bool resynced;          /* settings differed: rewritten, intervals rebuilt, every ticket queued */
    bool rollups_reset;     /* the time zone changed: facts and rollups emptied, to be refilled */
    bool extended;          /* the intervals' horizon was extended */
    int64_t intervals;      /* intervals written */
    int64_t tickets_queued; /* tickets queued for a full recompute */
    char old_desc[256];     /* the settings before a resync (for the log) */
} rp_sync_result;

/* Brings reporting.settings and reporting.work_intervals in line with the configured time zone and
 * calendar ("" = 24/7) in one transaction under the settings lock: rewrites them and queues every
 * ticket when they differ (calendar_version = business_calendars.loaded_at::text) -- after a change
 * of time zone the facts and rollups are emptied first --, else extends the intervals when fewer
 * than RP_HORIZON_MIN_MS are left. now_ms: the present. */
rp_sync_status rp_settings_sync(PGconn *c, const char *time_zone, const char *calendar, int64_t now_ms,
                                rp_sync_result *res, char *err, int errlen);

typedef struct {
    int64_t events, tickets, rollup_rows;
} rp_applied;

/* reporting.apply_queue(part, max_events) in its own transaction (asynchronous commit). false +
 * err when it failed (rolled back). */
bool rp_apply(PGconn *c, int part, int max_events, rp_applied *out, char *err, int errlen);

/* The sweep for missed events under the sweep lock: nothing when another process holds the lock or
 * the last sweep (by anyone) is younger than min_age_ms. Returns the tickets queued, -2 when it did
 * not run, -1 + err on failure. */
int64_t rp_sweep(PGconn *c, int64_t min_age_ms, char *err, int errlen);

/* The report of the previous month (in reporting.settings.time_zone) when reporting.monthly_reports
 * has none and the rollups have data for it. month (YYYY-MM-DD) is always set on success. Returns
 * the rows written (0: nothing to do), -1 + err on failure. */
int64_t rp_monthly(PGconn *c, const char *who, char month[16], char *err, int errlen);

/* Rows in reporting.queue: counted up to a million, estimated above. -1 + err on failure. */
int64_t rp_queue_depth(PGconn *c, char *err, int errlen);

#endif
