/*
 * rd_auth.h -- who may talk to intake and what they may send (docs/security.md).
 *
 * Three small pieces, kept together because intake, redressctl and the tests all need them:
 *   - parsers for the permission lists stored in the gateways table ("new_ticket,accept", "*")
 *     and for CURVE keys in Z85 text, including the secret key file (refused when other users
 *     could read it);
 *   - rd_auth_table, an immutable snapshot of the allowlist (gateways and their valid public
 *     keys) built once per reload and then only read: lookups are binary searches, so the per
 *     frame check on intake's hot path costs no SQL and no allocation;
 *   - rd_auth_permits(), the check of one envelope against one gateway's permissions.
 *
 * A table is not thread safe while it is being built; once rd_auth_table_finish() has run it
 * may be read from any number of threads.
 */
#ifndef RD_AUTH_H
#define RD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rd_envelope.h"

#define RD_Z85_KEY_LEN 40 /* a 32-byte CURVE key as Z85 text */

/* Event bits: bit 0 is new_ticket, bit k is ActionKind k (1..11). Channel bits: bit c is Channel c. */
#define RD_AUTH_EV_NEW_TICKET 1u
#define RD_AUTH_EV_ALL        0xFFFu /* new_ticket and actions 1..11 */
#define RD_AUTH_CH_ALL        0xFFEu /* channels 1..11 */

typedef struct {
    char gateway_id[RD_MAX_GATEWAY_BYTES + 1];
    uint32_t events;   /* RD_AUTH_EV_* bits */
    uint32_t channels; /* 1u << channel */
    bool act_on_any;   /* may act on tickets other gateways created */
    bool enabled;
} rd_auth_gateway;

/* Comma-separated names ("new_ticket,accept,reply" or "*"; blanks around names ignored; an empty
 * list allows nothing). false + err naming the bad entry and the valid names. */
bool rd_auth_parse_events(const char *list, uint32_t *mask, char *err, int errlen);
bool rd_auth_parse_channels(const char *list, uint32_t *mask, char *err, int errlen);
/* The inverse, for listings: "*" when all are set, else names joined by ','. */
void rd_auth_format_events(uint32_t mask, char *out, size_t outlen);
void rd_auth_format_channels(uint32_t mask, char *out, size_t outlen);

/* True when s is exactly 40 characters of the Z85 alphabet. */
bool rd_z85_key_valid(const char *s);

/* Reads a CURVE secret key file: the first line that is neither empty nor a '#' comment holds the
 * 40-character Z85 secret key. Refuses a file group or others may access (chmod 600 fixes it).
 * Fills secret and the matching public key (both NUL-terminated Z85). */
bool rd_curve_secret_load(const char *path, char secret[RD_Z85_KEY_LEN + 1], char public_key[RD_Z85_KEY_LEN + 1],
                          char *err, int errlen);

/* ---- the allowlist snapshot ---------------------------------------------------------------- */

typedef struct rd_auth_table rd_auth_table;

rd_auth_table *rd_auth_table_new(void);
void rd_auth_table_free(rd_auth_table **t);
/* Building: gateways first, then keys (a key naming a gateway not added is refused: false). */
bool rd_auth_table_add_gateway(rd_auth_table *t, const rd_auth_gateway *g);
bool rd_auth_table_add_key(rd_auth_table *t, const char *z85, const char *gateway_id);
void rd_auth_table_finish(rd_auth_table *t); /* sorts; no more adds after this */
size_t rd_auth_table_gateways(const rd_auth_table *t);
size_t rd_auth_table_keys(const rd_auth_table *t);

/* Lookups on a finished table; NULL when absent. A key's gateway may be disabled: check enabled. */
const rd_auth_gateway *rd_auth_gateway_find(const rd_auth_table *t, const char *gateway_id);
const rd_auth_gateway *rd_auth_key_find(const rd_auth_table *t, const char *z85);

/* Whether g may send env (event kind, and for new tickets the channel). On refusal fills v with
 * FORBIDDEN, the field ("kind", "channel" or "payload") and a message. The check that an action
 * targets one of g's own tickets needs the ticket and is made where the ticket is locked. */
bool rd_auth_permits(const rd_auth_gateway *g, const Redress__V1__Envelope *env, rd_verdict *v);

#endif
