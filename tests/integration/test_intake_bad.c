/*
 * Bad events: every one gets its expected, typed error and changes nothing in PostgreSQL, and
 * intake keeps serving. Covers frame-level garbage, every validation rule, database-level
 * refusals (unknown ticket, invalid transition) and conflicting replays, huge repeated fields,
 * absurd timestamps and a 100 MB frame (connection dropped, not buffered).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "itest.h"
#include "rd_envelope.h"

typedef Redress__V1__ErrorCode ecode;
#define E(x) REDRESS__V1__ERROR_CODE__ERROR_##x

static char ticketId[40]; /* a real ticket, in state new, made before the snapshot */
static char bigText[70 * 1024];
static char longId[200];
static Redress__V1__Attachment att[40];
static Redress__V1__Attachment *attp[40];
#define MANY_ATT 20000 /* a huge repeated field that still fits in one 1 MiB frame */
static Redress__V1__Attachment *manyAttp[MANY_ATT];
static uint8_t sha[32];

typedef struct {
    const char *name;
    bool action; /* start from an action envelope instead of a new ticket */
    void (*mutate)(Redress__V1__Envelope *e);
    ecode want;
} bad_case;

/* ---- mutators: each makes one thing wrong ------------------------------------------------ */
#define T (e->new_ticket)
#define A (e->action)
static void vZero(Redress__V1__Envelope *e)
{
    e->schema_version = 0;
}
static void vTwo(Redress__V1__Envelope *e)
{
    e->schema_version = 2;
}
static void gwEmpty(Redress__V1__Envelope *e)
{
    e->gateway_id = "";
}
static void gwSpace(Redress__V1__Envelope *e)
{
    e->gateway_id = "bad gateway";
}
static void gwLong(Redress__V1__Envelope *e)
{
    e->gateway_id = longId + sizeof(longId) - 1 - 65;
}
static void evEmpty(Redress__V1__Envelope *e)
{
    e->event_id = "";
}
static void evLong(Redress__V1__Envelope *e)
{
    e->event_id = longId + sizeof(longId) - 1 - 129;
}
static void evNewline(Redress__V1__Envelope *e)
{
    e->event_id = "ev\nil";
}
static void tZero(Redress__V1__Envelope *e)
{
    e->occurred_at_ms = 0;
}
static void tOld(Redress__V1__Envelope *e)
{
    e->occurred_at_ms = 631152000000LL; /* 1990 */
}
static void tFuture(Redress__V1__Envelope *e)
{
    e->occurred_at_ms += 3LL * 86400 * 1000;
}
static void tNeg(Redress__V1__Envelope *e)
{
    e->occurred_at_ms = -5;
}
static void noPayload(Redress__V1__Envelope *e)
{
    e->payload_case = REDRESS__V1__ENVELOPE__PAYLOAD__NOT_SET;
}
static void chZero(Redress__V1__Envelope *e)
{
    T->channel = 0;
}
static void chUnknown(Redress__V1__Envelope *e)
{
    T->channel = (Redress__V1__Channel)99;
}
static void custEmpty(Redress__V1__Envelope *e)
{
    T->customer_ref = "";
}
static void noText(Redress__V1__Envelope *e)
{
    T->subject = "";
    T->body = "";
}
static void bodyBadUtf8(Redress__V1__Envelope *e)
{
    T->body = "bad \xff\xfe bytes";
}
static void bodyOverlong(Redress__V1__Envelope *e)
{
    T->body = "overlong \xc0\xaf slash";
}
static void bodySurrogate(Redress__V1__Envelope *e)
{
    T->body = "surrogate \xed\xa0\x80 half";
}
static void bodyTruncUtf8(Redress__V1__Envelope *e)
{
    T->body = "truncated \xe4\xb8";
}
static void bodyTooBig(Redress__V1__Envelope *e)
{
    T->body = bigText;
}
static void subjectNewline(Redress__V1__Envelope *e)
{
    T->subject = "two\nlines";
}
static void subjectC1(Redress__V1__Envelope *e)
{
    T->subject = "next line \xc2\x85 control";
}
static void nameControl(Redress__V1__Envelope *e)
{
    T->customer_name = "bell\x07";
}
static void bodyEscape(Redress__V1__Envelope *e)
{
    T->body = "escape \x1b[31m red";
}
static void langLong(Redress__V1__Envelope *e)
{
    T->language = "zh-Hans-CN-x-private-extension-long-tag";
}
static void attSha(Redress__V1__Envelope *e)
{
    att[0].sha256.len = 31;
    T->n_attachments = 1;
    T->attachments = attp;
}
static void attNoUri(Redress__V1__Envelope *e)
{
    att[0].uri = "";
    T->n_attachments = 1;
    T->attachments = attp;
}
static void attTooMany(Redress__V1__Envelope *e)
{
    T->n_attachments = 33;
    T->attachments = attp;
}
static void aBadUuid(Redress__V1__Envelope *e)
{
    A->ticket_id = "not-a-uuid-at-all-not-a-uuid-at-all!";
}
static void aNoTicket(Redress__V1__Envelope *e)
{
    A->ticket_id = "";
}
static void aKindZero(Redress__V1__Envelope *e)
{
    A->kind = 0;
}
static void aKindUnknown(Redress__V1__Envelope *e)
{
    A->kind = (Redress__V1__ActionKind)42;
}
static void aNoActor(Redress__V1__Envelope *e)
{
    A->actor = "";
}
static void aTransferNoReason(Redress__V1__Envelope *e)
{
    A->kind = REDRESS__V1__ACTION_KIND__ACTION_TRANSFER;
    A->target_unit = "repair-crew-2";
}
static void aReturnNoTarget(Redress__V1__Envelope *e)
{
    A->kind = REDRESS__V1__ACTION_KIND__ACTION_RETURN;
    A->reason = "不属于本单位";
}
static void aVisitNoScore(Redress__V1__Envelope *e)
{
    A->kind = REDRESS__V1__ACTION_KIND__ACTION_RETURN_VISIT;
}
static void aVisitSix(Redress__V1__Envelope *e)
{
    A->kind = REDRESS__V1__ACTION_KIND__ACTION_RETURN_VISIT;
    A->satisfaction = 6;
}
static void aScoreOnAccept(Redress__V1__Envelope *e)
{
    A->kind = REDRESS__V1__ACTION_KIND__ACTION_ACCEPT;
    A->satisfaction = 3;
}
static void aUnknownTicket(Redress__V1__Envelope *e)
{
    A->ticket_id = "0190c3a2-0000-7000-8000-00000000dead";
}
static void aAcceptNew(Redress__V1__Envelope *e)
{
    A->kind = REDRESS__V1__ACTION_KIND__ACTION_ACCEPT;
}
static void aCloseNew(Redress__V1__Envelope *e)
{
    A->kind = REDRESS__V1__ACTION_KIND__ACTION_CLOSE;
}
static void aResolveNew(Redress__V1__Envelope *e)
{
    A->kind = REDRESS__V1__ACTION_KIND__ACTION_RESOLVE;
}
static void aReopenNew(Redress__V1__Envelope *e)
{
    A->kind = REDRESS__V1__ACTION_KIND__ACTION_REOPEN;
    A->reason = "客户不满意";
}
static void tMax(Redress__V1__Envelope *e)
{
    e->occurred_at_ms = INT64_MAX;
}
static void tMin(Redress__V1__Envelope *e)
{
    e->occurred_at_ms = INT64_MIN;
}
static void gwCjk(Redress__V1__Envelope *e)
{
    e->gateway_id = "网关-1";
}
static void custRefLong(Redress__V1__Envelope *e)
{
    T->customer_ref = bigText + sizeof(bigText) - 1 - 10 * 1024;
}
static void regionTab(Redress__V1__Envelope *e)
{
    T->region = "CN-44\t03";
}
static void attMany(Redress__V1__Envelope *e)
{
    T->attachments = manyAttp;
    T->n_attachments = MANY_ATT;
}
static void aNoteTooBig(Redress__V1__Envelope *e)
{
    A->note = bigText;
}
static void aReasonBadUtf8(Redress__V1__Envelope *e)
{
    A->kind = REDRESS__V1__ACTION_KIND__ACTION_REOPEN;
    A->reason = "\xe4\xb8"; /* the first two bytes of 不 */
}
static void conflictBody(Redress__V1__Envelope *e)
{
    e->event_id = "setup-1"; /* the event that created ticketId, now with another text */
    T->body = "a different complaint under the same event id";
}
static void conflictKind(Redress__V1__Envelope *e)
{
    e->event_id = "setup-1";
    e->payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_ACTION;
    static Redress__V1__TicketAction a2 = REDRESS__V1__TICKET_ACTION__INIT;
    a2.ticket_id = ticketId;
    a2.kind = REDRESS__V1__ACTION_KIND__ACTION_CHASE;
    a2.actor = "C-1001";
    e->action = &a2;
}
#undef T
#undef A

static const bad_case cases[] = {
    {"schema_version 0", false, vZero, E(MISSING_FIELD)},
    {"schema_version 2", false, vTwo, E(UNSUPPORTED_VERSION)},
    {"gateway_id empty", false, gwEmpty, E(MISSING_FIELD)},
    {"gateway_id with a space", false, gwSpace, E(INVALID_FIELD)},
    {"gateway_id 65 bytes", false, gwLong, E(TOO_LARGE)},
    {"event_id empty", false, evEmpty, E(MISSING_FIELD)},
    {"event_id 129 bytes", false, evLong, E(TOO_LARGE)},
    {"event_id with newline", false, evNewline, E(INVALID_FIELD)},
    {"occurred_at 0", false, tZero, E(MISSING_FIELD)},
    {"occurred_at 1990", false, tOld, E(INVALID_FIELD)},
    {"occurred_at in 3 days", false, tFuture, E(INVALID_FIELD)},
    {"occurred_at negative", false, tNeg, E(INVALID_FIELD)},
    {"no payload", false, noPayload, E(MISSING_FIELD)},
    {"channel unspecified", false, chZero, E(MISSING_FIELD)},
    {"channel unknown enum", false, chUnknown, E(INVALID_FIELD)},
    {"customer_ref empty", false, custEmpty, E(MISSING_FIELD)},
    {"no subject nor body", false, noText, E(MISSING_FIELD)},
    {"body invalid UTF-8", false, bodyBadUtf8, E(INVALID_FIELD)},
    {"body overlong UTF-8", false, bodyOverlong, E(INVALID_FIELD)},
    {"body UTF-16 surrogate", false, bodySurrogate, E(INVALID_FIELD)},
    {"body truncated UTF-8", false, bodyTruncUtf8, E(INVALID_FIELD)},
    {"body over 64 KiB", false, bodyTooBig, E(TOO_LARGE)},
    {"subject with newline", false, subjectNewline, E(INVALID_FIELD)},
    {"subject with C1 control", false, subjectC1, E(INVALID_FIELD)},
    {"customer_name with BEL", false, nameControl, E(INVALID_FIELD)},
    {"body with ESC", false, bodyEscape, E(INVALID_FIELD)},
    {"language over 35 bytes", false, langLong, E(TOO_LARGE)},
    {"attachment sha256 31 bytes", false, attSha, E(INVALID_FIELD)},
    {"attachment without uri", false, attNoUri, E(MISSING_FIELD)},
    {"33 attachments", false, attTooMany, E(TOO_LARGE)},
    {"20,000 attachments in one frame", false, attMany, E(TOO_LARGE)},
    {"occurred_at INT64_MAX", false, tMax, E(INVALID_FIELD)},
    {"occurred_at INT64_MIN", false, tMin, E(INVALID_FIELD)},
    {"gateway_id in Chinese", false, gwCjk, E(INVALID_FIELD)},
    {"customer_ref 10 KiB", false, custRefLong, E(TOO_LARGE)},
    {"region with a tab", false, regionTab, E(INVALID_FIELD)},
    {"conflicting replay (other text)", false, conflictBody, E(CONFLICT)},
    {"conflicting replay (other kind)", false, conflictKind, E(CONFLICT)},
    {"action: ticket_id not a UUID", true, aBadUuid, E(INVALID_FIELD)},
    {"action: ticket_id empty", true, aNoTicket, E(MISSING_FIELD)},
    {"action: kind unspecified", true, aKindZero, E(MISSING_FIELD)},
    {"action: kind unknown enum", true, aKindUnknown, E(INVALID_FIELD)},
    {"action: actor empty", true, aNoActor, E(MISSING_FIELD)},
    {"action: transfer without reason", true, aTransferNoReason, E(MISSING_FIELD)},
    {"action: return without target unit", true, aReturnNoTarget, E(MISSING_FIELD)},
    {"action: return visit without score", true, aVisitNoScore, E(MISSING_FIELD)},
    {"action: return visit score 6", true, aVisitSix, E(INVALID_FIELD)},
    {"action: score on accept", true, aScoreOnAccept, E(INVALID_FIELD)},
    {"action: note over 64 KiB", true, aNoteTooBig, E(TOO_LARGE)},
    {"action: reason with truncated UTF-8", true, aReasonBadUtf8, E(INVALID_FIELD)},
    {"action: unknown ticket", true, aUnknownTicket, E(NOT_FOUND)},
    {"action: accept a new ticket", true, aAcceptNew, E(INVALID_TRANSITION)},
    {"action: close a new ticket", true, aCloseNew, E(INVALID_TRANSITION)},
    {"action: resolve a new ticket", true, aResolveNew, E(INVALID_TRANSITION)},
    {"action: reopen a new ticket", true, aReopenNew, E(INVALID_TRANSITION)},
};

/* Resident memory of a process in kB (VmRSS), -1 when it cannot be read. */
static long itestRssKb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void expectCode(rd_client *c, const void *buf, size_t len, ecode want, const char *what)
{
    Redress__V1__Reply *r = itest_call_raw(c, buf, len);
    if (r == NULL)
        fail_msg("%s: no reply", what);
    if (r->error != want)
        fail_msg("%s: got %s (%s), want %s", what, rd_error_name(r->error), r->message, rd_error_name(want));
    assert_true(r->error == E(NONE) || (r->message && r->message[0]));
    redress__v1__reply__free_unpacked(r, NULL);
}

static void test_bad_events(void **state)
{
    memset(bigText, 'x', sizeof(bigText) - 1);
    memset(longId, 'g', sizeof(longId) - 1);
    for (int i = 0; i < 40; i++) {
        redress__v1__attachment__init(&att[i]);
        att[i].uri = "s3://evidence/photo.jpg";
        att[i].sha256.data = sha;
        att[i].sha256.len = 32;
        att[i].size = 1234;
        attp[i] = &att[i];
    }
    static Redress__V1__Attachment small = REDRESS__V1__ATTACHMENT__INIT;
    small.uri = "a";
    small.sha256.data = sha;
    small.sha256.len = 32;
    small.size = 1;
    for (int i = 0; i < MANY_ATT; i++)
        manyAttp[i] = &small;
    itest_intake s;
    assert_true(itest_intake_start(&s, NULL));
    char err[256];
    rd_client *c = rd_client_new(s.endpoint, err, sizeof(err));
    assert_non_null(c);
    PGconn *pg = itest_pg();

    Redress__V1__Envelope e;
    Redress__V1__NewTicket t;
    Redress__V1__TicketAction a;
    itest_new_ticket(&e, &t, "setup-1");
    Redress__V1__Reply *r = itest_call(c, &e);
    assert_non_null(r);
    assert_int_equal(r->error, E(NONE));
    snprintf(ticketId, sizeof(ticketId), "%s", r->ticket_id);
    redress__v1__reply__free_unpacked(r, NULL);

    char *before = itest_db_fingerprint(pg);
    int n = 0;

    /* frame-level garbage */
    expectCode(c, "", 0, E(MALFORMED), "empty frame");
    n++;
    expectCode(c, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11, E(MALFORMED), "garbage bytes");
    n++;
    itest_new_ticket(&e, &t, "frame-1");
    size_t len;
    uint8_t *buf = itest_pack(&e, &len);
    expectCode(c, buf, len / 2, E(MALFORMED), "truncated protobuf");
    n++;
    uint8_t lenLie[] = {0x1a, 0x7f, 'a', 'b'}; /* event_id claims 127 bytes, has 2 */
    expectCode(c, lenLie, sizeof(lenLie), E(MALFORMED), "length beyond the frame");
    n++;
    uint8_t wrongType[] = {0x08, 0x01, 0x18, 0x05}; /* event_id (field 3) sent as a varint */
    expectCode(c, wrongType, sizeof(wrongType), E(MALFORMED), "wrong wire type");
    n++;
    /* a NUL inside a string would silently cut it short in C: refused, not truncated */
    uint8_t *nul = malloc(len + 16);
    memcpy(nul, buf, len);
    uint8_t *p = memmem(nul, len, "C-1001", 6);
    assert_non_null(p);
    p[2] = 0;
    expectCode(c, nul, len, E(MALFORMED), "NUL byte inside a string");
    n++;
    free(nul);
    size_t huge = 1024 * 1024 + 1;
    uint8_t *hugeBuf = calloc(1, huge);
    expectCode(c, hugeBuf, huge, E(TOO_LARGE), "frame over 1 MiB");
    n++;
    free(hugeBuf);
    /* a 100 MB frame: over intake.max_wire_bytes (8 MiB by default), so libzmq drops the
     * connection as soon as the frame's size is read; there is no reply to give, and intake must
     * not have held the frame in memory */
    {
        long rssBefore = itestRssKb(s.pid);
        size_t giant = (size_t)100 * 1024 * 1024;
        uint8_t *g = malloc(giant);
        assert_non_null(g);
        memset(g, 0x5a, giant);
        const void *frames[1] = {g};
        size_t lens[1] = {giant};
        r = itest_call_frames(s.endpoint, frames, lens, 1);
        free(g);
        if (r != NULL)
            fail_msg("100 MB frame: got a reply (%s), want the connection dropped", rd_error_name(r->error));
        long rssAfter = itestRssKb(s.pid);
        print_message("100 MB frame: no reply; intake RSS %ld kB before, %ld kB after\n", rssBefore, rssAfter);
        assert_true(rssBefore > 0 && rssAfter > 0);
        assert_true(rssAfter < rssBefore + 16 * 1024);
        n++;
    }
    /* two frames in one message */
    {
        const void *frames[2] = {buf, buf};
        size_t lens[2] = {len, len};
        r = itest_call_frames(s.endpoint, frames, lens, 2);
        assert_non_null(r);
        assert_int_equal(r->error, E(MALFORMED));
        redress__v1__reply__free_unpacked(r, NULL);
        n++;
    }
    free(buf);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char id[64];
        snprintf(id, sizeof(id), "bad-%zu", i);
        if (cases[i].action)
            itest_action(&e, &a, id, ticketId, REDRESS__V1__ACTION_KIND__ACTION_CHASE);
        else
            itest_new_ticket(&e, &t, id);
        att[0].sha256.len = 32;
        att[0].uri = "s3://evidence/photo.jpg";
        cases[i].mutate(&e);
        buf = itest_pack(&e, &len);
        expectCode(c, buf, len, cases[i].want, cases[i].name);
        free(buf);
        n++;
    }
    print_message("%d bad events each got their expected error\n", n);
    assert_true(n >= 60);

    char *after = itest_db_fingerprint(pg);
    assert_string_equal(before, after);

    /* still serving, and hostile-looking but valid text is stored verbatim */
    itest_new_ticket(&e, &t, "after-1");
    t.body = "Robert'); DROP TABLE tickets;-- \\x00 \"quoted\" {a,b} 100% _under_";
    r = itest_call(c, &e);
    assert_non_null(r);
    assert_int_equal(r->error, E(NONE));
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM tickets WHERE id = '%s' AND body = "
             "'Robert''); DROP TABLE tickets;-- \\x00 \"quoted\" {a,b} 100%% _under_'",
             r->ticket_id);
    assert_int_equal(itest_count(pg, sql), 1);
    redress__v1__reply__free_unpacked(r, NULL);

    free(before);
    free(after);
    PQfinish(pg);
    rd_client_destroy(&c);
    itest_intake_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bad_events)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
