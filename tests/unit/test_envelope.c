/*
 * Unit tests for rd_envelope: decoding, every validation rule, the UTF-8 and text checks,
 * the canonical digest and the enum names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rd_envelope.h"

#define NOW  1795000000000LL /* 2026-11-19 */
#define E(x) REDRESS__V1__ERROR_CODE__ERROR_##x

static Redress__V1__Envelope env;
static Redress__V1__NewTicket nt;
static Redress__V1__TicketAction act;

static void newTicket(void)
{
    redress__v1__envelope__init(&env);
    redress__v1__new_ticket__init(&nt);
    env.schema_version = 1;
    env.gateway_id = "cti-01";
    env.event_id = "ev-1";
    env.occurred_at_ms = NOW - 1000;
    env.payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_NEW_TICKET;
    env.new_ticket = &nt;
    nt.channel = REDRESS__V1__CHANNEL__CHANNEL_HOTLINE;
    nt.customer_ref = "C-1";
    nt.subject = "电费异常";
    nt.body = "上月电费比平时高出三倍。\nMy bill tripled.";
}

static void action(Redress__V1__ActionKind k)
{
    redress__v1__envelope__init(&env);
    redress__v1__ticket_action__init(&act);
    env.schema_version = 1;
    env.gateway_id = "cti-01";
    env.event_id = "ev-2";
    env.occurred_at_ms = NOW;
    env.payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_ACTION;
    env.action = &act;
    act.ticket_id = "0190c3a2-1b2c-7d3e-8f40-123456789abc";
    act.kind = k;
    act.actor = "agent-1";
}

static Redress__V1__ErrorCode check(const char **field)
{
    rd_verdict v;
    bool ok = rd_envelope_validate(&env, NOW, &v);
    if (field)
        *field = v.field;
    if (ok)
        return E(NONE);
    assert_true(v.message[0] != '\0');
    return v.code;
}

static void test_roundtrip(void **state)
{
    newTicket();
    size_t len = redress__v1__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(len);
    redress__v1__envelope__pack(&env, buf);
    rd_verdict v;
    Redress__V1__Envelope *d = rd_envelope_decode(buf, len, RD_MAX_FRAME_BYTES, &v);
    assert_non_null(d);
    assert_true(rd_envelope_validate(d, NOW, &v));
    assert_string_equal(d->new_ticket->subject, "电费异常");
    assert_string_equal(d->new_ticket->body, nt.body);
    uint8_t a[32], b[32];
    rd_envelope_digest(&env, a);
    rd_envelope_digest(d, b);
    assert_memory_equal(a, b, 32);
    char *orig = d->new_ticket->body;
    d->new_ticket->body = "other";
    rd_envelope_digest(d, b);
    assert_memory_not_equal(a, b, 32);
    d->new_ticket->body = orig; /* free_unpacked frees what unpack allocated */
    redress__v1__envelope__free_unpacked(d, NULL);

    /* too large, empty, truncated, NUL inside a string */
    assert_null(rd_envelope_decode(buf, len, len - 1, &v));
    assert_int_equal(v.code, E(TOO_LARGE));
    assert_null(rd_envelope_decode(buf, 0, RD_MAX_FRAME_BYTES, &v));
    assert_int_equal(v.code, E(MALFORMED));
    assert_null(rd_envelope_decode(buf, len - 3, RD_MAX_FRAME_BYTES, &v));
    assert_int_equal(v.code, E(MALFORMED));
    uint8_t *p = memmem(buf, len, "C-1", 3);
    assert_non_null(p);
    p[1] = 0;
    assert_null(rd_envelope_decode(buf, len, RD_MAX_FRAME_BYTES, &v));
    assert_int_equal(v.code, E(MALFORMED));
    free(buf);
}

static void test_header_rules(void **state)
{
    const char *f;
    newTicket();
    assert_int_equal(check(NULL), E(NONE));
    env.schema_version = 0;
    assert_int_equal(check(&f), E(MISSING_FIELD));
    assert_string_equal(f, "schema_version");
    env.schema_version = 7;
    assert_int_equal(check(NULL), E(UNSUPPORTED_VERSION));
    newTicket();
    env.gateway_id = "";
    assert_int_equal(check(&f), E(MISSING_FIELD));
    assert_string_equal(f, "gateway_id");
    env.gateway_id = "gw/1";
    assert_int_equal(check(NULL), E(INVALID_FIELD));
    newTicket();
    env.event_id = NULL;
    assert_int_equal(check(&f), E(MISSING_FIELD));
    assert_string_equal(f, "event_id");
    newTicket();
    env.occurred_at_ms = 0;
    assert_int_equal(check(NULL), E(MISSING_FIELD));
    env.occurred_at_ms = RD_MIN_OCCURRED_MS - 1;
    assert_int_equal(check(NULL), E(INVALID_FIELD));
    env.occurred_at_ms = RD_MIN_OCCURRED_MS;
    assert_int_equal(check(NULL), E(NONE));
    env.occurred_at_ms = NOW + RD_MAX_FUTURE_MS + 1;
    assert_int_equal(check(NULL), E(INVALID_FIELD));
    env.occurred_at_ms = NOW + RD_MAX_FUTURE_MS;
    assert_int_equal(check(NULL), E(NONE));
    env.payload_case = REDRESS__V1__ENVELOPE__PAYLOAD__NOT_SET;
    assert_int_equal(check(&f), E(MISSING_FIELD));
    assert_string_equal(f, "payload");
}

static void test_new_ticket_rules(void **state)
{
    const char *f;
    static char big[RD_MAX_TEXT_BYTES + 2];
    memset(big, 'a', sizeof(big) - 1);
    newTicket();
    nt.channel = 0;
    assert_int_equal(check(&f), E(MISSING_FIELD));
    assert_string_equal(f, "channel");
    nt.channel = 12;
    assert_int_equal(check(NULL), E(INVALID_FIELD));
    nt.channel = REDRESS__V1__CHANNEL__CHANNEL_REFERRAL;
    assert_int_equal(check(NULL), E(NONE));
    nt.customer_ref = "";
    assert_int_equal(check(&f), E(MISSING_FIELD));
    assert_string_equal(f, "customer_ref");
    newTicket();
    nt.subject = "";
    nt.body = "";
    assert_int_equal(check(NULL), E(MISSING_FIELD));
    nt.subject = "only a subject";
    assert_int_equal(check(NULL), E(NONE));
    nt.body = big;
    assert_int_equal(check(&f), E(TOO_LARGE));
    assert_string_equal(f, "body");
    big[RD_MAX_TEXT_BYTES] = '\0';
    assert_int_equal(check(NULL), E(NONE)); /* exactly the limit is fine */
    nt.body = "tab\tand\r\nnewlines are fine in a body";
    assert_int_equal(check(NULL), E(NONE));
    nt.subject = "but not\tin a subject";
    assert_int_equal(check(&f), E(INVALID_FIELD));
    assert_string_equal(f, "subject");
    newTicket();
    nt.customer_email = "a\x7f@b";
    assert_int_equal(check(NULL), E(INVALID_FIELD));
    newTicket();
    Redress__V1__Attachment a = REDRESS__V1__ATTACHMENT__INIT, *ap = &a;
    uint8_t sha[32] = {0};
    a.uri = "https://files/x.pdf";
    a.sha256.data = sha;
    a.sha256.len = 32;
    nt.attachments = &ap;
    nt.n_attachments = 1;
    assert_int_equal(check(NULL), E(NONE));
    a.sha256.len = 0;
    assert_int_equal(check(NULL), E(MISSING_FIELD));
    a.sha256.len = 33;
    assert_int_equal(check(NULL), E(INVALID_FIELD));
    a.sha256.len = 32;
    a.size = (uint64_t)INT64_MAX + 1;
    assert_int_equal(check(NULL), E(INVALID_FIELD));
}

static void test_action_rules(void **state)
{
    const char *f;
    action(REDRESS__V1__ACTION_KIND__ACTION_ACCEPT);
    assert_int_equal(check(NULL), E(NONE));
    act.ticket_id = "0190C3A2-1B2C-7D3E-8F40-123456789ABC"; /* upper case is still a UUID */
    assert_int_equal(check(NULL), E(NONE));
    act.ticket_id = "0190c3a2-1b2c-7d3e-8f40-123456789ab";
    assert_int_equal(check(&f), E(INVALID_FIELD));
    assert_string_equal(f, "ticket_id");
    action(0);
    assert_int_equal(check(NULL), E(MISSING_FIELD));
    action(12);
    assert_int_equal(check(NULL), E(INVALID_FIELD));
    action(REDRESS__V1__ACTION_KIND__ACTION_TRANSFER);
    assert_int_equal(check(&f), E(MISSING_FIELD));
    assert_string_equal(f, "reason");
    act.reason = "wrong district";
    assert_int_equal(check(&f), E(MISSING_FIELD));
    assert_string_equal(f, "target_unit");
    act.target_unit = "crew-2";
    assert_int_equal(check(NULL), E(NONE));
    action(REDRESS__V1__ACTION_KIND__ACTION_REOPEN);
    assert_int_equal(check(NULL), E(MISSING_FIELD));
    act.reason = "问题复发";
    assert_int_equal(check(NULL), E(NONE));
    action(REDRESS__V1__ACTION_KIND__ACTION_RETURN_VISIT);
    assert_int_equal(check(&f), E(MISSING_FIELD));
    assert_string_equal(f, "satisfaction");
    for (uint32_t s = 1; s <= 5; s++) {
        act.satisfaction = s;
        assert_int_equal(check(NULL), E(NONE));
    }
    act.satisfaction = 6;
    assert_int_equal(check(NULL), E(INVALID_FIELD));
    action(REDRESS__V1__ACTION_KIND__ACTION_RESOLVE);
    act.satisfaction = 5;
    assert_int_equal(check(NULL), E(INVALID_FIELD));
    action(REDRESS__V1__ACTION_KIND__ACTION_CHASE);
    act.actor = NULL;
    assert_int_equal(check(NULL), E(MISSING_FIELD));
}

static void test_utf8(void **state)
{
    struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"", true},
        {"plain ascii", true},
        {"中文投诉 and English", true},
        {"emoji \xf0\x9f\x98\xa0", true},
        {"\xc3\xa9", true},          /* é */
        {"\xef\xbf\xbf", true},      /* U+FFFF */
        {"\xf4\x8f\xbf\xbf", true},  /* U+10FFFF */
        {"\xf4\x90\x80\x80", false}, /* above U+10FFFF */
        {"\xc0\x80", false},         /* overlong NUL */
        {"\xe0\x80\xaf", false},     /* overlong / */
        {"\xf0\x80\x80\xaf", false}, /* overlong / */
        {"\xed\xa0\x80", false},     /* surrogate */
        {"\x80", false},             /* lone continuation */
        {"\xe4\xb8", false},         /* truncated */
        {"\xe4\x41\xad", false},     /* bad continuation */
        {"\xff", false},
        {"\xf8\x88\x80\x80\x80", false}, /* 5-byte form */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (rd_utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
            fail_msg("case %zu", i);
    }
    assert_false(rd_text_valid("a\0b", 3, true));
    assert_false(rd_text_valid("a\nb", 3, false));
    assert_true(rd_text_valid("a\nb", 3, true));
    assert_false(rd_text_valid("c1 \xc2\x85", 5, true));
    assert_true(rd_text_valid("nbsp \xc2\xa0", 7, false));
}

static void test_names(void **state)
{
    for (int c = 1; c <= 11; c++) {
        const char *n = rd_channel_name((Redress__V1__Channel)c);
        assert_non_null(n);
        assert_int_equal(rd_channel_parse(n), c);
    }
    assert_null(rd_channel_name((Redress__V1__Channel)0));
    assert_null(rd_channel_name((Redress__V1__Channel)12));
    assert_null(rd_channel_name((Redress__V1__Channel)-1));
    assert_int_equal(rd_channel_parse("nope"), 0);
    for (int k = 1; k <= 11; k++) {
        rd_event ev = rd_action_event((Redress__V1__ActionKind)k);
        assert_int_not_equal(ev, RD_EV_INVALID);
        assert_int_equal(rd_action_parse(rd_event_name(ev)), k);
    }
    assert_int_equal(rd_action_parse("classify"), 0); /* internal events are not gateway actions */
    assert_string_equal(rd_error_name(E(CONFLICT)), "CONFLICT");
    assert_string_equal(rd_error_name((Redress__V1__ErrorCode)99), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_new_ticket_rules),
        cmocka_unit_test(test_action_rules),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
