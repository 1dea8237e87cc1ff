/*
 * test_auth.c -- gateway authentication pieces (common/rd_auth.c): permission lists, Z85 keys,
 * the secret key file (format and mode check), the allowlist snapshot and the per-envelope check.
 *
 * Key files are written with mkstemp under $TMPDIR (or /tmp) and removed by each test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "rd_auth.h"

#define K(x)  REDRESS__V1__ACTION_KIND__ACTION_##x
#define CH(x) REDRESS__V1__CHANNEL__CHANNEL_##x

static void test_events(void **state)
{
    (void)state;
    uint32_t m;
    char err[300], out[256];
    assert_true(rd_auth_parse_events("new_ticket, accept ,reply", &m, err, sizeof(err)));
    assert_int_equal(m, RD_AUTH_EV_NEW_TICKET | (1u << K(ACCEPT)) | (1u << K(REPLY)));
    rd_auth_format_events(m, out, sizeof(out));
    assert_string_equal(out, "new_ticket,accept,reply");
    assert_true(rd_auth_parse_events("*", &m, err, sizeof(err)));
    assert_int_equal(m, RD_AUTH_EV_ALL);
    rd_auth_format_events(m, out, sizeof(out));
    assert_string_equal(out, "*");
    assert_true(rd_auth_parse_events("return_visit,wait_customer,,", &m, err, sizeof(err)));
    assert_int_equal(m, (1u << K(RETURN_VISIT)) | (1u << K(WAIT_CUSTOMER)));
    assert_true(rd_auth_parse_events("", &m, err, sizeof(err)));
    assert_int_equal(m, 0);
    rd_auth_format_events(0, out, sizeof(out));
    assert_string_equal(out, "");
    assert_false(rd_auth_parse_events("new_ticket,explode", &m, err, sizeof(err)));
    assert_non_null(strstr(err, "'explode'"));
    assert_non_null(strstr(err, "return_visit"));
    assert_false(rd_auth_parse_events("NEW_TICKET", &m, err, sizeof(err))); /* names are lower case */
    assert_false(rd_auth_parse_events("a-name-far-too-long-to-be-any-event-kind-at-all", &m, err, sizeof(err)));
}

static void test_channels(void **state)
{
    (void)state;
    uint32_t m;
    char err[300], out[256];
    assert_true(rd_auth_parse_channels("hotline,mayor_hotline", &m, err, sizeof(err)));
    assert_int_equal(m, (1u << CH(HOTLINE)) | (1u << CH(MAYOR_HOTLINE)));
    rd_auth_format_channels(m, out, sizeof(out));
    assert_string_equal(out, "hotline,mayor_hotline");
    assert_true(rd_auth_parse_channels("web, *", &m, err, sizeof(err)));
    assert_int_equal(m, RD_AUTH_CH_ALL);
    assert_false(rd_auth_parse_channels("pigeon", &m, err, sizeof(err)));
    assert_non_null(strstr(err, "channel 'pigeon'"));
    assert_false(rd_auth_parse_channels("new_ticket", &m, err, sizeof(err))); /* an event, not a channel */
}

static void test_z85(void **state)
{
    (void)state;
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_true(rd_z85_key_valid(pub));
    assert_true(rd_z85_key_valid(sec));
    assert_false(rd_z85_key_valid(NULL));
    assert_false(rd_z85_key_valid(""));
    pub[39] = '\0';
    assert_false(rd_z85_key_valid(pub)); /* 39 characters */
    assert_false(rd_z85_key_valid("0123456789012345678901234567890123456789X"));
    assert_false(rd_z85_key_valid("012345678901234567890123456789012345678\"")); /* '"' is not Z85 */
    assert_false(rd_z85_key_valid("012345678901234567890123456789012345678 "));  /* nor a blank */
    assert_true(rd_z85_key_valid("0123456789abcdefghij.-:+=^!/*?&<>()[]{}@"));
}

static char *write_temp(const char *text, mode_t mode)
{
    const char *dir = getenv("TMPDIR");
    char *path;
    assert_true(asprintf(&path, "%s/rd_auth_test_XXXXXX", dir && dir[0] ? dir : "/tmp") > 0);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void test_secret_file(void **state)
{
    (void)state;
    char pub[41], sec[41], gotSec[41], gotPub[41], err[512], text[256];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);

    snprintf(text, sizeof(text), "# a comment\n\n   # another\n%s  \r\n# trailing\n", sec);
    char *p = write_temp(text, 0600);
    assert_true(rd_curve_secret_load(p, gotSec, gotPub, err, sizeof(err)));
    assert_string_equal(gotSec, sec);
    assert_string_equal(gotPub, pub); /* derived from the secret */

    /* readable by the group: refused, and the message says how to fix it */
    assert_int_equal(chmod(p, 0640), 0);
    assert_false(rd_curve_secret_load(p, gotSec, gotPub, err, sizeof(err)));
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(p, 0604), 0);
    assert_false(rd_curve_secret_load(p, gotSec, gotPub, err, sizeof(err)));
    assert_int_equal(chmod(p, 0400), 0);
    assert_true(rd_curve_secret_load(p, gotSec, gotPub, err, sizeof(err)));
    unlink(p);
    free(p);

    p = write_temp("# only comments\n\n", 0600);
    assert_false(rd_curve_secret_load(p, gotSec, gotPub, err, sizeof(err)));
    assert_non_null(strstr(err, "holds no key"));
    unlink(p);
    free(p);

    p = write_temp("not-a-key\n", 0600);
    assert_false(rd_curve_secret_load(p, gotSec, gotPub, err, sizeof(err)));
    assert_non_null(strstr(err, "40-character Z85"));
    unlink(p);
    free(p);

    assert_false(rd_curve_secret_load("/nonexistent/rd_auth_test.key", gotSec, gotPub, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open"));
}

static rd_auth_gateway gw(const char *id, uint32_t events, uint32_t channels, bool any, bool enabled)
{
    rd_auth_gateway g;
    memset(&g, 0, sizeof(g));
    snprintf(g.gateway_id, sizeof(g.gateway_id), "%s", id);
    g.events = events;
    g.channels = channels;
    g.act_on_any = any;
    g.enabled = enabled;
    return g;
}

static void test_table(void **state)
{
    (void)state;
    char keys[50][41], sec[41];
    rd_auth_table *t = rd_auth_table_new();
    assert_non_null(t);
    /* added out of order, to exercise the sort */
    const char *ids[] = {"zeta", "cti-1", "desk.2", "alpha_9", "m"};
    for (int i = 0; i < 5; i++) {
        rd_auth_gateway g = gw(ids[i], RD_AUTH_EV_ALL, RD_AUTH_CH_ALL, i == 2, i != 4);
        assert_true(rd_auth_table_add_gateway(t, &g));
    }
    for (int i = 0; i < 50; i++) {
        assert_int_equal(zmq_curve_keypair(keys[i], sec), 0);
        assert_true(rd_auth_table_add_key(t, keys[i], ids[i % 5]));
    }
    assert_false(rd_auth_table_add_key(t, keys[0], "nobody")); /* unknown gateway */
    assert_false(rd_auth_table_add_key(t, "short", "zeta"));   /* not a key */
    rd_auth_table_finish(t);
    assert_int_equal(rd_auth_table_gateways(t), 5);
    assert_int_equal(rd_auth_table_keys(t), 50);
    for (int i = 0; i < 50; i++) {
        const rd_auth_gateway *g = rd_auth_key_find(t, keys[i]);
        assert_non_null(g);
        assert_string_equal(g->gateway_id, ids[i % 5]);
    }
    assert_int_equal(zmq_curve_keypair(keys[0], sec), 0);
    assert_null(rd_auth_key_find(t, keys[0])); /* a key never added */
    assert_null(rd_auth_key_find(t, NULL));
    assert_null(rd_auth_key_find(t, "short"));
    assert_true(rd_auth_gateway_find(t, "desk.2")->act_on_any);
    assert_false(rd_auth_gateway_find(t, "m")->enabled);
    assert_null(rd_auth_gateway_find(t, "desk"));
    assert_null(rd_auth_gateway_find(t, NULL));
    assert_false(rd_auth_table_add_gateway(t, &(rd_auth_gateway){.gateway_id = "late"})); /* finished */
    rd_auth_table_free(&t);
    assert_null(t);

    /* an empty table finds nothing */
    t = rd_auth_table_new();
    rd_auth_table_finish(t);
    assert_null(rd_auth_key_find(t, keys[1]));
    assert_null(rd_auth_gateway_find(t, "zeta"));
    rd_auth_table_free(&t);
    assert_null(rd_auth_gateway_find(NULL, "zeta"));
}

static void test_permits(void **state)
{
    (void)state;
    rd_verdict v;
    Redress__V1__Envelope e = REDRESS__V1__ENVELOPE__INIT;
    Redress__V1__NewTicket t = REDRESS__V1__NEW_TICKET__INIT;
    Redress__V1__TicketAction a = REDRESS__V1__TICKET_ACTION__INIT;
    rd_auth_gateway cti = gw("cti-1", RD_AUTH_EV_NEW_TICKET | (1u << K(CHASE)), 1u << CH(HOTLINE), false, true);

    e.payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_NEW_TICKET;
    e.new_ticket = &t;
    t.channel = CH(HOTLINE);
    assert_true(rd_auth_permits(&cti, &e, &v));
    t.channel = CH(WEB);
    assert_false(rd_auth_permits(&cti, &e, &v));
    assert_int_equal(v.code, REDRESS__V1__ERROR_CODE__ERROR_FORBIDDEN);
    assert_string_equal(v.field, "channel");
    assert_non_null(strstr(v.message, "channel web"));
    t.channel = (Redress__V1__Channel)40; /* out of any mask */
    assert_false(rd_auth_permits(&cti, &e, &v));

    e.payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_ACTION;
    e.action = &a;
    a.kind = K(CHASE);
    assert_true(rd_auth_permits(&cti, &e, &v));
    a.kind = K(CLOSE);
    assert_false(rd_auth_permits(&cti, &e, &v));
    assert_int_equal(v.code, REDRESS__V1__ERROR_CODE__ERROR_FORBIDDEN);
    assert_string_equal(v.field, "kind");
    assert_non_null(strstr(v.message, "close"));

    rd_auth_gateway desk = gw("desk-1", RD_AUTH_EV_ALL & ~RD_AUTH_EV_NEW_TICKET, RD_AUTH_CH_ALL, true, true);
    assert_true(rd_auth_permits(&desk, &e, &v));
    e.payload_case = REDRESS__V1__ENVELOPE__PAYLOAD_NEW_TICKET;
    t.channel = CH(WEB);
    assert_false(rd_auth_permits(&desk, &e, &v));
    assert_string_equal(v.field, "new_ticket");

    e.payload_case = REDRESS__V1__ENVELOPE__PAYLOAD__NOT_SET;
    assert_false(rd_auth_permits(&desk, &e, &v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events),      cmocka_unit_test(test_channels), cmocka_unit_test(test_z85),
        cmocka_unit_test(test_secret_file), cmocka_unit_test(test_table),    cmocka_unit_test(test_permits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
