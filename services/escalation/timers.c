/*
 * timers.c -- SLA timers in Redis (layout in es_store.h). Claiming is one Lua script, so each due
 * timer goes to exactly one escalation process; the lease in {esc}:inflight hands it to another
 * process if the claimer dies before it has committed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "es_store.h"

/* KEYS: due, inflight, ready. ARGV: now, limit, lease_until.
 * Returns -2 when not ready, else {ids..., next} where next is the earliest due score left ("" if none). */
static rd_redis_script claimScript = {
    "esc_claim",
    "if redis.call('EXISTS', KEYS[3]) == 0 then return -2 end\n"
    "local limit = tonumber(ARGV[2])\n"
    "local out = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, limit)\n"
    "if #out < limit then\n"
    "  local late = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, limit - #out)\n"
    "  for _, id in ipairs(late) do out[#out + 1] = id end\n"
    "end\n"
    "if #out > 0 then\n"
    "  local args = {}\n"
    "  for i, id in ipairs(out) do args[2 * i - 1] = ARGV[3]; args[2 * i] = id end\n"
    "  redis.call('ZADD', KEYS[2], unpack(args))\n"
    "  redis.call('ZREM', KEYS[1], unpack(out))\n"
    "end\n"
    "local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "out[#out + 1] = nxt[2] or ''\n"
    "return out\n",
    {0}};

int es_timers_claim(redisContext *r, int64_t now_ms, int limit, int64_t lease_ms, int64_t **out, int64_t *next_ms,
                    char *err, int errlen)
{
    char now[24], lim[16], until[24];
    snprintf(now, sizeof(now), "%lld", (long long)now_ms);
    snprintf(lim, sizeof(lim), "%d", limit);
    snprintf(until, sizeof(until), "%lld", (long long)(now_ms + lease_ms));
    const char *argv[] = {ES_KEY_DUE, ES_KEY_INFLIGHT, ES_KEY_READY, now, lim, until};
    *out = NULL;
    *next_ms = ESC_NONE;
    redisReply *rep = rd_redis_eval(r, &claimScript, 3, 6, argv, NULL, err, errlen);
    if (rep == NULL)
        return -1;
    if (rep->type == REDIS_REPLY_INTEGER) {
        freeReplyObject(rep);
        return -2;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1) {
        snprintf(err, errlen, "claim: unexpected reply");
        freeReplyObject(rep);
        return -1;
    }
    int n = (int)rep->elements - 1;
    *out = calloc((size_t)n + 1, sizeof(**out));
    for (int i = 0; i < n; i++)
        (*out)[i] = rep->element[i]->str ? strtoll(rep->element[i]->str, NULL, 10) : 0;
    const redisReply *nx = rep->element[n];
    if (nx->type == REDIS_REPLY_STRING && nx->len > 0)
        *next_ms = (int64_t)strtod(nx->str, NULL);
    freeReplyObject(rep);
    return n;
}

bool es_timers_put(redisContext *r, const es_timer *t, int n, bool only_earlier, const int64_t *release, int nrel,
                   char *err, int errlen)
{
    int sent = 0;
    for (int i = 0; i < n; i++) {
        if (t[i].next_ms == ESC_NONE)
            redisAppendCommand(r, "ZREM " ES_KEY_DUE " %lld", (long long)t[i].id);
        else if (only_earlier)
            redisAppendCommand(r, "ZADD " ES_KEY_DUE " LT %lld %lld", (long long)t[i].next_ms, (long long)t[i].id);
        else
            redisAppendCommand(r, "ZADD " ES_KEY_DUE " %lld %lld", (long long)t[i].next_ms, (long long)t[i].id);
        sent++;
    }
    for (int i = 0; i < nrel; i++) {
        redisAppendCommand(r, "ZREM " ES_KEY_INFLIGHT " %lld", (long long)release[i]);
        sent++;
    }
    bool ok = true;
    for (int i = 0; i < sent; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(r, (void **)&rep) != REDIS_OK) {
            snprintf(err, errlen, "%s", r->errstr);
            return false;
        }
        if (rep->type == REDIS_REPLY_ERROR && ok) {
            snprintf(err, errlen, "%s", rep->str);
            ok = false;
        }
        freeReplyObject(rep);
    }
    return ok;
}
