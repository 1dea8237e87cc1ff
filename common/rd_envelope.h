/*
 * rd_envelope.h -- decoding and validating what gateways send, encoding what intake answers.
 *
 * Validation is complete and side-effect free: an envelope that passes can be stored without
 * the database ever refusing it (no NUL bytes, valid UTF-8, lengths within column and protocol
 * limits, enums in range, timestamps sane). Checks that need the database (ticket exists, state
 * allows the action, replay conflicts) are the caller's.
 */
#ifndef RD_ENVELOPE_H
#define RD_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rd_lifecycle.h"
#include "redress.pb-c.h"

#define RD_SCHEMA_VERSION    1
#define RD_MAX_FRAME_BYTES   (1024 * 1024) /* default; intake.max_frame_bytes may lower it */
#define RD_MAX_TEXT_BYTES    (64 * 1024)   /* body, note */
#define RD_MAX_SUBJECT_BYTES 1024
#define RD_MAX_SHORT_BYTES   256 /* names, refs, regions, reasons... */
#define RD_MAX_ID_BYTES      128 /* event ids */
#define RD_MAX_GATEWAY_BYTES 64
#define RD_MAX_URI_BYTES     2048
#define RD_MAX_ATTACHMENTS   32
#define RD_MIN_OCCURRED_MS   946684800000LL       /* 2000-01-01T00:00:00Z */
#define RD_MAX_FUTURE_MS     (24LL * 3600 * 1000) /* clocks drift; a day ahead is absurd */

/* Why an envelope was refused. field is a static string naming the proto field, or NULL. */
typedef struct {
    Redress__V1__ErrorCode code;
    const char *field;
    char message[200];
} rd_verdict;

/*
 * Decodes one frame. Returns NULL and fills v (TOO_LARGE or MALFORMED) when it cannot.
 * Free the result with redress__v1__envelope__free_unpacked(env, NULL).
 */
Redress__V1__Envelope *rd_envelope_decode(const uint8_t *buf, size_t len, size_t max_len, rd_verdict *v);

/* Every check that needs no database; now_ms bounds occurred_at. */
bool rd_envelope_validate(const Redress__V1__Envelope *env, int64_t now_ms, rd_verdict *v);

/* The canonical digest of an envelope (SHA-256 of its re-encoding, which protobuf-c emits in
 * field order and so does not depend on how the sender ordered or padded its bytes). Two
 * envelopes with the same digest carry the same event. */
void rd_envelope_digest(const Redress__V1__Envelope *env, uint8_t out[32]);

/* Text helpers, exposed for tests and other parsers. */
bool rd_utf8_valid(const char *s, size_t len);
/* UTF-8, no NUL, no C0/C1 control characters except \t \n \r when multiline. */
bool rd_text_valid(const char *s, size_t len, bool multiline);

/* Enum names as stored in PostgreSQL ("web", "mayor_hotline"); NULL when out of range. */
const char *rd_channel_name(Redress__V1__Channel c);
Redress__V1__Channel rd_channel_parse(const char *name); /* 0 when unknown */
rd_event rd_action_event(Redress__V1__ActionKind k);     /* RD_EV_INVALID when unknown */
Redress__V1__ActionKind rd_action_parse(const char *name);
const char *rd_error_name(Redress__V1__ErrorCode c); /* "CONFLICT", ... */

/* An internal TicketEvent frame (intake's PUSH and PUB, the classifier's PUSH), decoded for the
 * services that act on it: kind (history kind, "" when absent; longer ones are refused) and the
 * ticket id as canonical lower-case UUID text. false when the frame is not a TicketEvent, or its
 * ticket id is not a UUID: such a frame must be dropped, because an id that is not a UUID would
 * make a whole batch's SQL fail. */
typedef struct {
    char kind[32];
    char ticket_id[37];
    int64_t seq;
} rd_ticket_event;
bool rd_ticket_event_decode(const void *buf, size_t len, rd_ticket_event *out);

/* Packs a reply into a malloc'd buffer. */
uint8_t *rd_reply_pack(const Redress__V1__Reply *r, size_t *len);

#endif
