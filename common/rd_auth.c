/*
 * rd_auth.c -- permission lists, CURVE key text and the allowlist snapshot (see rd_auth.h).
 *
 * The snapshot is two sorted arrays (gateways by id, keys by Z85 text) searched with bsearch:
 * an allowlist holds tens to a few thousand entries and is rebuilt wholesale on every reload,
 * so sorted arrays beat a hash table on simplicity and are as fast at this size. Keys point at
 * their gateway by index, fixed up after sorting.
 */
#include "rd_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

static const char z85Alphabet[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

#define NACTION_KINDS  12 /* ActionKind 0..11 */
#define NCHANNEL_KINDS 12 /* Channel 0..11 */

/* ---- permission lists ---------------------------------------------------------------------- */

static int eventBit(const char *name)
{
    if (strcmp(name, "new_ticket") == 0)
        return 0;
    Redress__V1__ActionKind k = rd_action_parse(name);
    return k == REDRESS__V1__ACTION_KIND__ACTION_UNSPECIFIED ? -1 : (int)k;
}

static int channelBit(const char *name)
{
    Redress__V1__Channel c = rd_channel_parse(name);
    return c == REDRESS__V1__CHANNEL__CHANNEL_UNSPECIFIED ? -1 : (int)c;
}

static bool parseList(const char *list, uint32_t all, int (*bit)(const char *), const char *what, const char *valid,
                      uint32_t *mask, char *err, int errlen)
{
    *mask = 0;
    const char *p = list ? list : "";
    while (*p) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m > 0) {
            char name[32];
            int b = -1;
            if (m < sizeof(name)) {
                memcpy(name, p, m);
                name[m] = '\0';
                b = strcmp(name, "*") == 0 ? 99 : bit(name);
            }
            if (b < 0) {
                snprintf(err, errlen, "unknown %s '%.*s' (valid: %s, or * for all)", what, (int)(m > 40 ? 40 : m), p,
                         valid);
                return false;
            }
            *mask |= b == 99 ? all : (1u << b);
        }
        p += n;
    }
    return true;
}

bool rd_auth_parse_events(const char *list, uint32_t *mask, char *err, int errlen)
{
    return parseList(list, RD_AUTH_EV_ALL, eventBit, "event kind",
                     "new_ticket, accept, reply, transfer, return, resolve, close, reopen, wait_customer, resume, "
                     "chase, return_visit",
                     mask, err, errlen);
}

bool rd_auth_parse_channels(const char *list, uint32_t *mask, char *err, int errlen)
{
    return parseList(list, RD_AUTH_CH_ALL, channelBit, "channel",
                     "hotline, web, email, app, walk_in, regulator, mayor_hotline, social_media, postal, fax, "
                     "referral",
                     mask, err, errlen);
}

static void formatList(uint32_t mask, uint32_t all, int first, int last, const char *(*name)(int), char *out,
                       size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if ((mask & all) == all) {
        snprintf(out, outlen, "*");
        return;
    }
    size_t used = 0;
    for (int b = first; b <= last; b++) {
        if (!(mask & (1u << b)))
            continue;
        int w = snprintf(out + used, outlen - used, "%s%s", used ? "," : "", name(b));
        if (w < 0 || (size_t)w >= outlen - used)
            return; /* truncated: the buffer was sized for every name */
        used += (size_t)w;
    }
}

static const char *eventName(int b)
{
    return b == 0 ? "new_ticket" : rd_event_name(rd_action_event((Redress__V1__ActionKind)b));
}

static const char *channelName(int b)
{
    return rd_channel_name((Redress__V1__Channel)b);
}

void rd_auth_format_events(uint32_t mask, char *out, size_t outlen)
{
    formatList(mask, RD_AUTH_EV_ALL, 0, NACTION_KINDS - 1, eventName, out, outlen);
}

void rd_auth_format_channels(uint32_t mask, char *out, size_t outlen)
{
    formatList(mask, RD_AUTH_CH_ALL, 1, NCHANNEL_KINDS - 1, channelName, out, outlen);
}

/* ---- keys ---------------------------------------------------------------------------------- */

bool rd_z85_key_valid(const char *s)
{
    if (s == NULL || strlen(s) != RD_Z85_KEY_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (strchr(z85Alphabet, *p) == NULL)
            return false;
    return true;
}

bool rd_curve_secret_load(const char *path, char secret[RD_Z85_KEY_LEN + 1], char public_key[RD_Z85_KEY_LEN + 1],
                          char *err, int errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open CURVE secret key file %s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "CURVE secret key file %s is not a regular file", path);
        fclose(f);
        return false;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen,
                 "CURVE secret key file %s is accessible by group or others (mode %03o); run: chmod 600 %s", path,
                 (unsigned)(st.st_mode & 0777), path);
        fclose(f);
        return false;
    }
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
            line[--n] = '\0';
        const char *s = line + strspn(line, " \t");
        if (*s == '\0' || *s == '#')
            continue;
        if (!rd_z85_key_valid(s)) {
            snprintf(err, errlen,
                     "CURVE secret key file %s: expected a 40-character Z85 key on its first line that is not a "
                     "comment (make one with: redressctl keys generate --out FILE)",
                     path);
            fclose(f);
            return false;
        }
        memcpy(secret, s, RD_Z85_KEY_LEN + 1);
        found = true;
    }
    fclose(f);
    if (!found) {
        snprintf(err, errlen,
                 "CURVE secret key file %s holds no key (make one with: redressctl keys generate --out FILE)", path);
        return false;
    }
    if (zmq_curve_public(public_key, secret) != 0) {
        snprintf(err, errlen, "cannot derive the public key from %s: %s (is libzmq built with CURVE?)", path,
                 zmq_strerror(zmq_errno()));
        return false;
    }
    return true;
}

/* ---- the snapshot -------------------------------------------------------------------------- */

typedef struct {
    char z85[RD_Z85_KEY_LEN + 1];
    char gateway_id[RD_MAX_GATEWAY_BYTES + 1];
    size_t gw; /* index into gateways, set by finish() */
} authKey;

struct rd_auth_table {
    rd_auth_gateway *gws;
    size_t ngws, capgws;
    authKey *keys;
    size_t nkeys, capkeys;
    bool finished;
};

rd_auth_table *rd_auth_table_new(void)
{
    return calloc(1, sizeof(rd_auth_table));
}

void rd_auth_table_free(rd_auth_table **tp)
{
    if (*tp == NULL)
        return;
    free((*tp)->gws);
    free((*tp)->keys);
    free(*tp);
    *tp = NULL;
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, nc * elem);
    if (p == NULL)
        return false;
    *arr = p;
    *cap = nc;
    return true;
}

bool rd_auth_table_add_gateway(rd_auth_table *t, const rd_auth_gateway *g)
{
    if (t->finished || g->gateway_id[0] == '\0' || !grow((void **)&t->gws, &t->capgws, t->ngws, sizeof(*t->gws)))
        return false;
    t->gws[t->ngws++] = *g;
    return true;
}

static int cmpGateway(const void *a, const void *b)
{
    return strcmp(((const rd_auth_gateway *)a)->gateway_id, ((const rd_auth_gateway *)b)->gateway_id);
}

static int cmpKey(const void *a, const void *b)
{
    return strcmp(((const authKey *)a)->z85, ((const authKey *)b)->z85);
}

bool rd_auth_table_add_key(rd_auth_table *t, const char *z85, const char *gateway_id)
{
    if (t->finished || !rd_z85_key_valid(z85) || gateway_id == NULL || strlen(gateway_id) > RD_MAX_GATEWAY_BYTES ||
        !grow((void **)&t->keys, &t->capkeys, t->nkeys, sizeof(*t->keys)))
        return false;
    bool known = false;
    for (size_t i = 0; i < t->ngws && !known; i++) /* building is rare; finding is what must be fast */
        known = strcmp(t->gws[i].gateway_id, gateway_id) == 0;
    if (!known)
        return false;
    authKey *k = &t->keys[t->nkeys++];
    memcpy(k->z85, z85, RD_Z85_KEY_LEN + 1);
    snprintf(k->gateway_id, sizeof(k->gateway_id), "%s", gateway_id);
    return true;
}

void rd_auth_table_finish(rd_auth_table *t)
{
    if (t->ngws > 1)
        qsort(t->gws, t->ngws, sizeof(*t->gws), cmpGateway);
    if (t->nkeys > 1)
        qsort(t->keys, t->nkeys, sizeof(*t->keys), cmpKey);
    t->finished = true;
    for (size_t i = 0; i < t->nkeys; i++) {
        const rd_auth_gateway *g = rd_auth_gateway_find(t, t->keys[i].gateway_id);
        t->keys[i].gw = (size_t)(g - t->gws); /* add_key made sure the gateway exists */
    }
}

size_t rd_auth_table_gateways(const rd_auth_table *t)
{
    return t ? t->ngws : 0;
}

size_t rd_auth_table_keys(const rd_auth_table *t)
{
    return t ? t->nkeys : 0;
}

const rd_auth_gateway *rd_auth_gateway_find(const rd_auth_table *t, const char *gateway_id)
{
    if (t == NULL || !t->finished || gateway_id == NULL || t->ngws == 0)
        return NULL;
    rd_auth_gateway probe;
    memset(&probe, 0, sizeof(probe));
    snprintf(probe.gateway_id, sizeof(probe.gateway_id), "%s", gateway_id);
    if (strlen(gateway_id) > RD_MAX_GATEWAY_BYTES)
        return NULL;
    return bsearch(&probe, t->gws, t->ngws, sizeof(*t->gws), cmpGateway);
}

const rd_auth_gateway *rd_auth_key_find(const rd_auth_table *t, const char *z85)
{
    if (t == NULL || !t->finished || z85 == NULL || strlen(z85) != RD_Z85_KEY_LEN || t->nkeys == 0)
        return NULL;
    authKey probe;
    memset(&probe, 0, sizeof(probe));
    memcpy(probe.z85, z85, RD_Z85_KEY_LEN + 1);
    const authKey *k = bsearch(&probe, t->keys, t->nkeys, sizeof(*t->keys), cmpKey);
    return k ? &t->gws[k->gw] : NULL;
}

/* ---- the per-frame check ------------------------------------------------------------------- */

static bool forbid(rd_verdict *v, const char *field)
{
    v->code = REDRESS__V1__ERROR_CODE__ERROR_FORBIDDEN;
    v->field = field;
    return false;
}

bool rd_auth_permits(const rd_auth_gateway *g, const Redress__V1__Envelope *env, rd_verdict *v)
{
    if (env->payload_case == REDRESS__V1__ENVELOPE__PAYLOAD_NEW_TICKET) {
        if (!(g->events & RD_AUTH_EV_NEW_TICKET)) {
            snprintf(v->message, sizeof(v->message), "gateway %s may not create tickets", g->gateway_id);
            return forbid(v, "new_ticket");
        }
        unsigned c = (unsigned)env->new_ticket->channel;
        if (c >= 32 || !(g->channels & (1u << c))) {
            const char *name = rd_channel_name(env->new_ticket->channel);
            snprintf(v->message, sizeof(v->message), "gateway %s may not create tickets on channel %s", g->gateway_id,
                     name ? name : "?");
            return forbid(v, "channel");
        }
        return true;
    }
    if (env->payload_case == REDRESS__V1__ENVELOPE__PAYLOAD_ACTION) {
        unsigned k = (unsigned)env->action->kind;
        if (k >= 32 || !(g->events & (1u << k))) {
            const char *name = rd_event_name(rd_action_event(env->action->kind));
            snprintf(v->message, sizeof(v->message), "gateway %s may not send %s actions", g->gateway_id,
                     name ? name : "?");
            return forbid(v, "kind");
        }
        return true;
    }
    snprintf(v->message, sizeof(v->message), "gateway %s sent an event kind it may not send", g->gateway_id);
    return forbid(v, "payload");
}
