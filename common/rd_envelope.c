/*
 * rd_envelope.c -- the gate every inbound byte passes.
 *
 * Order of checks: frame size, protobuf decoding, envelope header (version, gateway, event id,
 * time), then the payload field by field. The first failure wins and names its field, so a
 * gateway developer sees exactly what to fix. Nothing here allocates beyond the decoded message.
 */
#include "rd_envelope.h"
#include "rd_utf8.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

typedef Redress__V1__ErrorCode ecode;

static bool fail(rd_verdict *v, ecode code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool fail(rd_verdict *v, ecode code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    v->code = code;
    v->field = field;
    vsnprintf(v->message, sizeof(v->message), fmt, ap);
    va_end(ap);
    return false;
}

Redress__V1__Envelope *rd_envelope_decode(const uint8_t *buf, size_t len, size_t max_len, rd_verdict *v)
{
    memset(v, 0, sizeof(*v));
    if (len > max_len) {
        char lim[32];
        snprintf(lim, sizeof(lim), "%zu", max_len);
        fail(v, REDRESS__V1__ERROR_CODE__ERROR_TOO_LARGE, NULL, "frame larger than %s bytes", lim);
        return NULL;
    }
    if (len == 0) {
        fail(v, REDRESS__V1__ERROR_CODE__ERROR_MALFORMED, NULL, "empty frame");
        return NULL;
    }
    Redress__V1__Envelope *env = redress__v1__envelope__unpack(NULL, len, buf);
    if (env == NULL) {
        fail(v, REDRESS__V1__ERROR_CODE__ERROR_MALFORMED, NULL, "not a valid redress.v1.Envelope");
        return NULL;
    }
    /*
     * protobuf-c hands strings over NUL-terminated, so a NUL inside one would silently cut the
     * text short. Re-encoding tells: every field survives a round trip except a string cut at a
     * NUL (or a field sent twice, which canonical encoders never do). Refuse rather than store
     * something other than what was sent.
     */
    if (redress__v1__envelope__get_packed_size(env) != len) {
        redress__v1__envelope__free_unpacked(env, NULL);
        fail(v, REDRESS__V1__ERROR_CODE__ERROR_MALFORMED, NULL,
             "not a canonical encoding (a NUL byte inside a string, or a repeated field)");
        return NULL;
    }
    return env;
}

/* ---- text ---------------------------------------------------------------------------------- */

bool rd_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n)
        if ((n = rd_utf8_decode(s + i, len - i, &cp)) == 0)
            return false;
    return true;
}

bool rd_text_valid(const char *str, size_t len, bool multiline)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (c < 0x20 || c == 0x7F) {
            if (!(multiline && (c == '\n' || c == '\r' || c == '\t')))
                return false;
        }
        /* C1 controls U+0080..U+009F are encoded C2 80..C2 9F */
        if (c == 0xC2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9F)
            return false;
    }
    return rd_utf8_valid(str, len);
}

/* A string field: required?, max bytes, multiline? */
static bool checkText(rd_verdict *v, const char *field, const char *s, bool required, size_t max, bool multiline)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0)
        return required ? fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, field, "%s is required", field) : true;
    if (len > max) {
        char m[64];
        snprintf(m, sizeof(m), "%s is longer than %zu bytes", field, max);
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_TOO_LARGE, field, "%s", m);
    }
    if (!rd_text_valid(s, len, multiline))
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_INVALID_FIELD, field, "%s is not valid %s", field,
                    multiline ? "UTF-8 text (or holds control characters)" : "single-line UTF-8 text");
    return true;
}

static bool checkGateway(rd_verdict *v, const char *g)
{
    if (!checkText(v, "gateway_id", g, true, RD_MAX_GATEWAY_BYTES, false))
        return false;
    for (const char *p = g; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return fail(v, REDRESS__V1__ERROR_CODE__ERROR_INVALID_FIELD, "gateway_id",
                        "gateway_id may only hold letters, digits, '.', '_' and '-'");
    }
    return true;
}

/* ---- payloads ------------------------------------------------------------------------------ */

static bool checkAttachment(rd_verdict *v, const Redress__V1__Attachment *a)
{
    if (a == NULL)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_MALFORMED, "attachments", "empty attachment");
    if (!checkText(v, "attachments.uri", a->uri, true, RD_MAX_URI_BYTES, false))
        return false;
    if (a->sha256.len == 0)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, "attachments.sha256",
                    "attachments.sha256 is required");
    if (a->sha256.len != 32)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_INVALID_FIELD, "attachments.sha256",
                    "attachments.sha256 must be exactly 32 bytes");
    if (a->size > (uint64_t)INT64_MAX)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_INVALID_FIELD, "attachments.size",
                    "attachments.size is out of range");
    return checkText(v, "attachments.media_type", a->media_type, false, RD_MAX_SHORT_BYTES, false);
}

static bool checkNewTicket(rd_verdict *v, const Redress__V1__NewTicket *t)
{
    if (t->channel == REDRESS__V1__CHANNEL__CHANNEL_UNSPECIFIED)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, "channel", "channel is required");
    if (rd_channel_name(t->channel) == NULL)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_INVALID_FIELD, "channel", "unknown channel");
    if (!checkText(v, "customer_ref", t->customer_ref, true, RD_MAX_SHORT_BYTES, false) ||
        !checkText(v, "customer_name", t->customer_name, false, RD_MAX_SHORT_BYTES, false) ||
        !checkText(v, "customer_phone", t->customer_phone, false, RD_MAX_SHORT_BYTES, false) ||
        !checkText(v, "customer_email", t->customer_email, false, RD_MAX_SHORT_BYTES, false) ||
        !checkText(v, "region", t->region, false, RD_MAX_SHORT_BYTES, false) ||
        !checkText(v, "language", t->language, false, 35, false) ||
        !checkText(v, "subject", t->subject, false, RD_MAX_SUBJECT_BYTES, false) ||
        !checkText(v, "body", t->body, false, RD_MAX_TEXT_BYTES, true) ||
        !checkText(v, "organisation", t->organisation, false, RD_MAX_SHORT_BYTES, false) ||
        !checkText(v, "product", t->product, false, RD_MAX_SHORT_BYTES, false) ||
        !checkText(v, "external_case_no", t->external_case_no, false, RD_MAX_SHORT_BYTES, false))
        return false;
    if ((t->subject == NULL || t->subject[0] == '\0') && (t->body == NULL || t->body[0] == '\0'))
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, "body", "subject or body is required");
    if (t->n_attachments > RD_MAX_ATTACHMENTS)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_TOO_LARGE, "attachments", "more than 32 attachments");
    for (size_t i = 0; i < t->n_attachments; i++)
        if (!checkAttachment(v, t->attachments[i]))
            return false;
    return true;
}

static bool checkAction(rd_verdict *v, const Redress__V1__TicketAction *a)
{
    if (!checkText(v, "ticket_id", a->ticket_id, true, 36, false))
        return false;
    uuid_t u;
    if (strlen(a->ticket_id) != 36 || uuid_parse(a->ticket_id, u) != 0)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_INVALID_FIELD, "ticket_id", "ticket_id is not a UUID");
    if (a->kind == REDRESS__V1__ACTION_KIND__ACTION_UNSPECIFIED)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, "kind", "kind is required");
    rd_event ev = rd_action_event(a->kind);
    if (ev == RD_EV_INVALID)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_INVALID_FIELD, "kind", "unknown action kind");
    if (!checkText(v, "actor", a->actor, true, RD_MAX_SHORT_BYTES, false) ||
        !checkText(v, "note", a->note, false, RD_MAX_TEXT_BYTES, true))
        return false;
    bool needReason = ev == RD_EV_TRANSFER || ev == RD_EV_RETURN || ev == RD_EV_REOPEN;
    bool needTarget = ev == RD_EV_TRANSFER || ev == RD_EV_RETURN;
    if (!checkText(v, "reason", a->reason, needReason, RD_MAX_SUBJECT_BYTES, true) ||
        !checkText(v, "target_unit", a->target_unit, needTarget, RD_MAX_SHORT_BYTES, false))
        return false;
    if (ev == RD_EV_RETURN_VISIT) {
        if (a->satisfaction == 0)
            return fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, "satisfaction",
                        "satisfaction (1-5) is required for a return visit");
        if (a->satisfaction > 5)
            return fail(v, REDRESS__V1__ERROR_CODE__ERROR_INVALID_FIELD, "satisfaction", "satisfaction must be 1-5");
    } else if (a->satisfaction != 0) {
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_INVALID_FIELD, "satisfaction",
                    "satisfaction only belongs to a return visit");
    }
    return true;
}

bool rd_envelope_validate(const Redress__V1__Envelope *env, int64_t now_ms, rd_verdict *v)
{
    memset(v, 0, sizeof(*v));
    if (env->schema_version == 0)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, "schema_version", "schema_version is required");
    if (env->schema_version != RD_SCHEMA_VERSION)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_UNSUPPORTED_VERSION, "schema_version",
                    "schema_version must be 1");
    if (!checkGateway(v, env->gateway_id) || !checkText(v, "event_id", env->event_id, true, RD_MAX_ID_BYTES, false))
        return false;
    if (env->occurred_at_ms == 0)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, "occurred_at_ms", "occurred_at_ms is required");
    if (env->occurred_at_ms < RD_MIN_OCCURRED_MS || env->occurred_at_ms > now_ms + RD_MAX_FUTURE_MS)
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_INVALID_FIELD, "occurred_at_ms",
                    "occurred_at_ms is before 2000 or more than a day in the future");
    switch (env->payload_case) {
    case REDRESS__V1__ENVELOPE__PAYLOAD_NEW_TICKET:
        return env->new_ticket ? checkNewTicket(v, env->new_ticket)
                               : fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, "new_ticket", "empty");
    case REDRESS__V1__ENVELOPE__PAYLOAD_ACTION:
        return env->action ? checkAction(v, env->action)
                           : fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, "action", "empty");
    default:
        return fail(v, REDRESS__V1__ERROR_CODE__ERROR_MISSING_FIELD, "payload",
                    "payload (new_ticket or action) is required");
    }
}

void rd_envelope_digest(const Redress__V1__Envelope *env, uint8_t out[32])
{
    size_t n = redress__v1__envelope__get_packed_size(env);
    uint8_t stackbuf[4096];
    uint8_t *buf = n <= sizeof(stackbuf) ? stackbuf : malloc(n);
    if (buf == NULL)
        abort();
    redress__v1__envelope__pack(env, buf);
    crypto_hash_sha256(out, buf, n);
    if (buf != stackbuf)
        free(buf);
}

/* ---- names --------------------------------------------------------------------------------- */

static const char *const channelNames[] = {
    NULL,        "hotline",       "web",          "email",  "app", "walk_in",
    "regulator", "mayor_hotline", "social_media", "postal", "fax", "referral",
};
#define NCHANNELS (sizeof(channelNames) / sizeof(channelNames[0]))

const char *rd_channel_name(Redress__V1__Channel c)
{
    return ((unsigned)c < NCHANNELS) ? channelNames[c] : NULL;
}

Redress__V1__Channel rd_channel_parse(const char *name)
{
    for (unsigned i = 1; name && i < NCHANNELS; i++)
        if (strcmp(name, channelNames[i]) == 0)
            return (Redress__V1__Channel)i;
    return REDRESS__V1__CHANNEL__CHANNEL_UNSPECIFIED;
}

static const rd_event actionEvents[] = {
    RD_EV_INVALID, RD_EV_ACCEPT, RD_EV_REPLY,         RD_EV_TRANSFER, RD_EV_RETURN, RD_EV_RESOLVE,
    RD_EV_CLOSE,   RD_EV_REOPEN, RD_EV_WAIT_CUSTOMER, RD_EV_RESUME,   RD_EV_CHASE,  RD_EV_RETURN_VISIT,
};
#define NACTIONS (sizeof(actionEvents) / sizeof(actionEvents[0]))

rd_event rd_action_event(Redress__V1__ActionKind k)
{
    return ((unsigned)k < NACTIONS) ? actionEvents[k] : RD_EV_INVALID;
}

Redress__V1__ActionKind rd_action_parse(const char *name)
{
    rd_event e = rd_event_parse(name);
    for (unsigned i = 1; e != RD_EV_INVALID && i < NACTIONS; i++)
        if (actionEvents[i] == e)
            return (Redress__V1__ActionKind)i;
    return REDRESS__V1__ACTION_KIND__ACTION_UNSPECIFIED;
}

const char *rd_error_name(Redress__V1__ErrorCode c)
{
    static const char *const names[] = {
        "NONE",       "MALFORMED",          "TOO_LARGE", "UNSUPPORTED_VERSION", "MISSING_FIELD", "INVALID_FIELD",
        "NOT_FOUND",  "INVALID_TRANSITION", "CONFLICT",  "UNAUTHORIZED",        "FORBIDDEN",     "UNAVAILABLE",
        "OVERLOADED", "INTERNAL",
    };
    return ((unsigned)c < sizeof(names) / sizeof(names[0])) ? names[c] : "UNKNOWN";
}

uint8_t *rd_reply_pack(const Redress__V1__Reply *r, size_t *len)
{
    *len = redress__v1__reply__get_packed_size(r);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf == NULL)
        abort();
    redress__v1__reply__pack(r, buf);
    return buf;
}

bool rd_ticket_event_decode(const void *buf, size_t len, rd_ticket_event *out)
{
    memset(out, 0, sizeof(*out));
    Redress__V1__TicketEvent *ev = redress__v1__ticket_event__unpack(NULL, len, buf);
    if (ev == NULL)
        return false;
    uuid_t u;
    bool ok = ev->ticket_id != NULL && strlen(ev->ticket_id) == 36 && uuid_parse(ev->ticket_id, u) == 0 &&
              (ev->kind == NULL || strlen(ev->kind) < sizeof(out->kind));
    if (ok) {
        uuid_unparse_lower(u, out->ticket_id);
        snprintf(out->kind, sizeof(out->kind), "%s", ev->kind ? ev->kind : "");
        out->seq = ev->seq;
    }
    redress__v1__ticket_event__free_unpacked(ev, NULL);
    return ok;
}
