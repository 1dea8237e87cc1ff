/*
 * rd_redis.c -- hiredis glue: URLs, connections, scripts by SHA.
 */
#include "rd_redis.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

bool rd_redis_parse_url(const char *url, rd_redis_addr *out, char *err, int errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    const char *p = url;
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    const char *end = p + strcspn(p, ":/");
    size_t hl = (size_t)(end - p);
    if (hl == 0 || hl >= sizeof(out->host)) {
        snprintf(err, errlen, "redis URL '%s': no host", url);
        return false;
    }
    memcpy(out->host, p, hl);
    p = end;
    if (*p == ':') {
        char *e;
        long port = strtol(p + 1, &e, 10);
        if (e == p + 1 || port < 1 || port > 65535 || (*e != '\0' && *e != '/')) {
            snprintf(err, errlen, "redis URL '%s': bad port", url);
            return false;
        }
        out->port = (int)port;
        p = e;
    }
    if (*p == '/' && p[1] != '\0') {
        char *e;
        long db = strtol(p + 1, &e, 10);
        if (e == p + 1 || *e != '\0' || db < 0 || db > 1000000) {
            snprintf(err, errlen, "redis URL '%s': bad database number", url);
            return false;
        }
        out->db = (int)db;
    } else if (*p != '\0' && strcmp(p, "/") != 0) {
        snprintf(err, errlen, "redis URL '%s': unexpected '%s'", url, p);
        return false;
    }
    return true;
}

redisContext *rd_redis_connect(const rd_redis_addr *a, int timeout_ms, char *err, int errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "%s:%d: %s", a->host, a->port, c->errstr);
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (a->db != 0) {
        redisReply *r = redisCommand(c, "SELECT %d", a->db);
        bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
        if (!ok)
            snprintf(err, errlen, "SELECT %d: %s", a->db, r ? r->str : c->errstr);
        freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}

bool rd_redis_script_load(redisContext *c, rd_redis_script *s, char *err, int errlen)
{
    redisReply *r = redisCommand(c, "SCRIPT LOAD %s", s->text);
    bool ok = r != NULL && r->type == REDIS_REPLY_STRING && r->len == 40;
    if (ok)
        memcpy(s->sha, r->str, 41);
    else
        snprintf(err, errlen, "SCRIPT LOAD %s: %s", s->name,
                 r ? (r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply") : c->errstr);
    freeReplyObject(r);
    return ok;
}

redisReply *rd_redis_eval(redisContext *c, rd_redis_script *s, int nkeys, int argc, const char **argv,
                          const size_t *argvlen, char *err, int errlen)
{
    if (s->sha[0] == '\0' && !rd_redis_script_load(c, s, err, errlen))
        return NULL;
    /* EVALSHA sha nkeys args... */
    const char **v = malloc(sizeof(*v) * (size_t)(argc + 3));
    size_t *l = malloc(sizeof(*l) * (size_t)(argc + 3));
    if (v == NULL || l == NULL)
        abort();
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    v[0] = "EVALSHA";
    l[0] = 7;
    v[2] = nk;
    l[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        v[i + 3] = argv[i];
        l[i + 3] = argvlen ? argvlen[i] : strlen(argv[i]);
    }
    redisReply *r = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        v[1] = s->sha;
        l[1] = 40;
        r = redisCommandArgv(c, argc + 3, v, l);
        if (r == NULL) {
            snprintf(err, errlen, "%s: %s", s->name, c->errstr[0] ? c->errstr : "no reply");
            break;
        }
        if (r->type != REDIS_REPLY_ERROR)
            break;
        bool noscript = strncmp(r->str, "NOSCRIPT", 8) == 0;
        snprintf(err, errlen, "%s: %s", s->name, r->str);
        freeReplyObject(r);
        r = NULL;
        if (!noscript || attempt == 1 || !rd_redis_script_load(c, s, err, errlen))
            break;
    }
    free(v);
    free(l);
    return r;
}

bool rd_redis_broken(const redisContext *c)
{
    return c == NULL || c->err != 0;
}
