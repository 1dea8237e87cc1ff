/*
 * rd_cfpb.h -- the CFPB consumer complaint database as a source of realistic tickets.
 *
 * The US Consumer Financial Protection Bureau publishes its complaints as CSV (one row per
 * complaint, narratives with embedded newlines and quotes). redressctl replays such a file into
 * intake, and the integration tests and the load generator use it for payloads that look like
 * production traffic: varied lengths, real company and product names, real dates.
 *
 * Columns are located by header name, so extracts with other column orders or extra columns load
 * as well. "Complaint ID" and "Date received" are required; every other column may be missing.
 *
 * Each row becomes a NewTicket envelope:
 *   event_id        <prefix><Complaint ID>             (prefix "cfpb-" unless the caller gives one)
 *   occurred_at_ms  Date received, UTC midnight          (2020/3/18, 2020-03-18 or 03/18/2020)
 *   channel         Submitted via: Web, Phone (hotline), Email, Postal mail, Fax, Referral; else web
 *   customer_ref    cfpb-<Complaint ID>                  (the same customer whatever the prefix)
 *   region          US-<State>-<ZIP code>, US-<State>, or US
 *   language        en
 *   subject         Issue [/ Sub-issue]                  (Product when there is no issue nor narrative)
 *   body            Consumer complaint narrative         (often empty)
 *   organisation    Company
 *   product         Product [/ Sub-product]
 *   external_case_no Complaint ID
 * Text is cut to the protocol limits at a UTF-8 character boundary; control characters intake
 * would refuse and invalid UTF-8 are replaced when the file is loaded.
 */
#ifndef RD_CFPB_H
#define RD_CFPB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rd_cfpb rd_cfpb;

/* Loads the whole file ("-" reads standard input). NULL with a reason in err on failure. */
rd_cfpb *rd_cfpb_load(const char *path, char *err, int errlen);
void rd_cfpb_destroy(rd_cfpb **d);

size_t rd_cfpb_count(const rd_cfpb *d);
/* The Complaint ID of row i ("" when i is out of range). */
const char *rd_cfpb_complaint_id(const rd_cfpb *d, size_t i);

/*
 * Packs row i as a NewTicket envelope into a malloc'd buffer (*buf, *len; the caller frees it) and
 * writes its event id into event_id. event_id_prefix NULL means "cfpb-"; a different prefix gives
 * distinct events from the same rows. Returns false when i is out of range, the event id would
 * exceed the protocol's limit or event_id_len, or memory runs out.
 */
bool rd_cfpb_pack(const rd_cfpb *d, size_t i, const char *gateway_id, const char *event_id_prefix, uint8_t **buf,
                  size_t *len, char *event_id, size_t event_id_len);

/* Rows [next, end) as an rd_stream_next_fn for rd_client_stream(): pass rd_cfpb_next and a cursor.
 * failed is set when a row could not be packed (the stream then ends early). */
typedef struct {
    const rd_cfpb *data;
    const char *gateway_id;
    const char *prefix; /* NULL: "cfpb-" */
    size_t next, end;
    bool failed;
} rd_cfpb_cursor;

bool rd_cfpb_next(void *cursor, uint8_t **buf, size_t *len, char *event_id, size_t event_id_len);

#endif
