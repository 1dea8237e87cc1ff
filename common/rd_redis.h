/*
 * rd_redis.h -- the little hiredis glue the services share: connect from a redis:// URL with
 * timeouts, run Lua scripts by SHA (loading them again after a Redis restart or SCRIPT FLUSH),
 * and tell a lost link from an error reply.
 *
 * Redis holds only hot, rebuildable state in Redress (presence, open counts, SLA timers); every
 * caller must be ready for rd_redis_* to fail and for Redis to come back empty.
 */
#ifndef RD_REDIS_H
#define RD_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/hiredis.h>

typedef struct {
    char host[256];
    int port;
    int db;
} rd_redis_addr;

/* Parses "redis://host[:port][/db]" or "host:port"; false + err when malformed. */
bool rd_redis_parse_url(const char *url, rd_redis_addr *out, char *err, int errlen);

/* Connects (connect and command timeout timeout_ms), selects the database. NULL + err on failure. */
redisContext *rd_redis_connect(const rd_redis_addr *a, int timeout_ms, char *err, int errlen);

/* A Lua script known by its text; sha is filled by rd_redis_script_load (or on first use). */
typedef struct {
    const char *name, *text;
    char sha[41];
} rd_redis_script;

bool rd_redis_script_load(redisContext *c, rd_redis_script *s, char *err, int errlen);

/* EVALSHA with argv (keys first: nkeys of them); on NOSCRIPT loads the script and retries once.
 * Returns the reply (caller frees with freeReplyObject), or NULL + err when the link failed
 * (c->err set: reconnect) or Redis answered with an error (err holds it; c->err stays 0). */
redisReply *rd_redis_eval(redisContext *c, rd_redis_script *s, int nkeys, int argc, const char **argv,
                          const size_t *argvlen, char *err, int errlen);

/* True when the context can no longer be used (I/O error, EOF, protocol error). */
bool rd_redis_broken(const redisContext *c);

#endif
