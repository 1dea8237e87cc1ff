/*
 * scripts.c -- the dispatcher's Lua scripts. Redis runs each atomically, which is what makes
 * "pick an eligible agent and count the ticket against them" one step no matter how many
 * dispatcher processes run. Times come from the Redis clock (TIME), never the callers', so
 * presence expiry and reservation ages mean the same on every host. Redis 7 replicates script
 * effects, so TIME inside a script that writes is allowed.
 *
 * Entries of {rd}:open are "agent|weight|state|ms" (see dispatcher.h). Every script keeps the
 * invariant load[agent] == sum of the weights of the agent's open entries, and never stores a
 * negative load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatcher.h"

#define LUA_NOW                                                                                                        \
    "local t = redis.call('TIME')\n"                                                                                   \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/* Removes the entry of ticket tk (cur = its value), takes its weight off its agent and leaves a
 * tombstone: a PostgreSQL snapshot older than the tombstone must not bring the entry back. */
#define LUA_DROP                                                                                                       \
    "local function drop(kload, kopen, kgone, tk, cur, now)\n"                                                         \
    "  local a, w = string.match(cur, '^([^|]*)|(%d+)|')\n"                                                            \
    "  redis.call('HDEL', kopen, tk)\n"                                                                                \
    "  redis.call('HSET', kgone, tk, now)\n"                                                                           \
    "  if a then\n"                                                                                                    \
    "    local l = redis.call('HINCRBY', kload, a, -tonumber(w))\n"                                                    \
    "    if l <= 0 then redis.call('HDEL', kload, a) end\n"                                                            \
    "  end\n"                                                                                                          \
    "end\n"

/* KEYS load cap pres open rr ready gone; ARGV strategy ncand agent... (ticket weight)... */
rd_redis_script dp_script_assign = {"assign",
                                    LUA_NOW LUA_DROP
                                    "if redis.call('EXISTS', KEYS[6]) == 0 then return 0 end\n"
                                    "local strat, n = ARGV[1], tonumber(ARGV[2])\n"
                                    "local ids, at = {}, {}\n"
                                    "for i = 1, n do ids[i] = ARGV[i + 2]; at[ARGV[i + 2]] = i end\n"
                                    "local L, C, P = {}, {}, {}\n"
                                    "if n > 0 then\n"
                                    "  local load = redis.call('HMGET', KEYS[1], unpack(ids))\n"
                                    "  local cap = redis.call('HMGET', KEYS[2], unpack(ids))\n"
                                    "  local pres = redis.call('HMGET', KEYS[3], unpack(ids))\n"
                                    "  for i = 1, n do\n"
                                    "    L[i] = (load[i] and tonumber(load[i])) or 0\n"
                                    "    C[i] = (cap[i] and tonumber(cap[i])) or 0\n"
                                    "    P[i] = (pres[i] and tonumber(pres[i])) or 0\n"
                                    "  end\n"
                                    "end\n"
                                    "local rr = tonumber(redis.call('GET', KEYS[5]) or '0') or 0\n"
                                    "local out = {}\n"
                                    "for j = n + 3, #ARGV - 1, 2 do\n"
                                    "  local tk, w = ARGV[j], tonumber(ARGV[j + 1])\n"
                                    "  local cur = redis.call('HGET', KEYS[4], tk)\n"
                                    "  if cur then\n"
                                    "    local ca, cw = string.match(cur, '^([^|]*)|(%d+)|')\n"
                                    "    if ca and at[ca] then L[at[ca]] = L[at[ca]] - tonumber(cw) end\n"
                                    "    drop(KEYS[1], KEYS[4], KEYS[7], tk, cur, now)\n"
                                    "  end\n"
                                    "  local best, bl, bc = nil, 0, 1\n"
                                    "  for k = 0, n - 1 do\n"
                                    "    local i = (rr + k) % n + 1\n"
                                    "    local l, c = L[i], C[i]\n"
                                    "    if P[i] > now and l + w <= c then\n"
                                    "      if strat == 'rr' then best = i break end\n"
                                    "      if best == nil or l * bc < bl * c then best, bl, bc = i, l, c end\n"
                                    "    end\n"
                                    "  end\n"
                                    "  if best == nil then\n"
                                    "    out[#out + 1] = ''\n"
                                    "  else\n"
                                    "    local a = ids[best]\n"
                                    "    rr = best % n\n"
                                    "    L[best] = L[best] + w\n"
                                    "    redis.call('HINCRBY', KEYS[1], a, w)\n"
                                    "    redis.call('HSET', KEYS[4], tk, a .. '|' .. w .. '|p|' .. now)\n"
                                    "    out[#out + 1] = a\n"
                                    "  end\n"
                                    "end\n"
                                    "redis.call('SET', KEYS[5], rr)\n"
                                    "return out\n",
                                    ""};

/* KEYS load open gone; ARGV since_ms grace_ms (ticket agent weight)... */
rd_redis_script dp_script_sync = {
    "sync",
    LUA_NOW LUA_DROP "local since, grace = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
                     "local added, removed, confirmed = 0, 0, 0\n"
                     "for i = 3, #ARGV - 2, 3 do\n"
                     "  local tk, a, w = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])\n"
                     "  local cur = redis.call('HGET', KEYS[2], tk)\n"
                     "  local ca, cw, cs, cms\n"
                     "  if cur then\n"
                     "    ca, cw, cs, cms = string.match(cur, '^([^|]*)|(%d+)|(%a)|(%d+)$')\n"
                     "    cms = tonumber(cms) or 0\n"
                     "  end\n"
                     "  if cur and ca == a and a ~= '' then\n"
                     "    if cs == 'p' then\n"
                     "      redis.call('HSET', KEYS[2], tk, a .. '|' .. cw .. '|c|' .. now)\n"
                     "      confirmed = confirmed + 1\n"
                     "    end\n"
                     "  else\n"
                     "    if cur and ((cs == 'c' and cms < since) or (cs ~= 'c' and cms < since - grace)) then\n"
                     "      drop(KEYS[1], KEYS[2], KEYS[3], tk, cur, now)\n"
                     "      removed = removed + 1\n"
                     "      cur = nil\n"
                     "    end\n"
                     "    local gone = tonumber(redis.call('HGET', KEYS[3], tk) or '-1')\n"
                     "    if not cur and a ~= '' and gone < since then\n"
                     "      redis.call('HSET', KEYS[2], tk, a .. '|' .. w .. '|c|' .. now)\n"
                     "      redis.call('HINCRBY', KEYS[1], a, w)\n"
                     "      added = added + 1\n"
                     "    end\n"
                     "  end\n"
                     "end\n"
                     "return {added, removed, confirmed}\n",
    ""};

/* KEYS load open gone; ARGV agent ticket... */
rd_redis_script dp_script_cancel = {"cancel",
                                    LUA_NOW LUA_DROP "local n = 0\n"
                                                     "for i = 2, #ARGV do\n"
                                                     "  local cur = redis.call('HGET', KEYS[2], ARGV[i])\n"
                                                     "  if cur and string.match(cur, '^([^|]*)|') == ARGV[1]"
                                                     " and string.match(cur, '|p|') then\n"
                                                     "    drop(KEYS[1], KEYS[2], KEYS[3], ARGV[i], cur, now)\n"
                                                     "    n = n + 1\n"
                                                     "  end\n"
                                                     "end\n"
                                                     "return n\n",
                                    ""};

/* KEYS pres; ARGV agent status ttl_ms */
rd_redis_script dp_script_presence = {"presence",
                                      LUA_NOW "if ARGV[2] == 'online' then\n"
                                              "  local exp = now + tonumber(ARGV[3])\n"
                                              "  redis.call('HSET', KEYS[1], ARGV[1], exp)\n"
                                              "  return exp\n"
                                              "elseif ARGV[2] == 'away' then\n"
                                              "  redis.call('HSET', KEYS[1], ARGV[1], 0)\n"
                                              "else\n"
                                              "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
                                              "end\n"
                                              "return 0\n",
                                      ""};

/* KEYS load open gone; ARGV keep_ms (tombstones younger than this are kept) */
rd_redis_script dp_script_rebuild = {"rebuild",
                                     LUA_NOW
                                     "local all = redis.call('HGETALL', KEYS[2])\n"
                                     "local sums = {}\n"
                                     "for i = 1, #all, 2 do\n"
                                     "  local a, w = string.match(all[i + 1], '^([^|]*)|(%d+)|')\n"
                                     "  if a then sums[a] = (sums[a] or 0) + tonumber(w) end\n"
                                     "end\n"
                                     "local loads = redis.call('HGETALL', KEYS[1])\n"
                                     "local diff = 0\n"
                                     "for i = 1, #loads, 2 do\n"
                                     "  local a = loads[i]\n"
                                     "  local want = sums[a] or 0\n"
                                     "  if tonumber(loads[i + 1]) ~= want then\n"
                                     "    diff = diff + 1\n"
                                     "    if want == 0 then redis.call('HDEL', KEYS[1], a)"
                                     " else redis.call('HSET', KEYS[1], a, want) end\n"
                                     "  end\n"
                                     "  sums[a] = nil\n"
                                     "end\n"
                                     "for a, w in pairs(sums) do\n"
                                     "  redis.call('HSET', KEYS[1], a, w)\n"
                                     "  diff = diff + 1\n"
                                     "end\n"
                                     "local gone = redis.call('HGETALL', KEYS[3])\n"
                                     "local old = now - tonumber(ARGV[1])\n"
                                     "for i = 1, #gone, 2 do\n"
                                     "  if tonumber(gone[i + 1]) < old then redis.call('HDEL', KEYS[3], gone[i]) end\n"
                                     "end\n"
                                     "return diff\n",
                                     ""};

rd_redis_script dp_script_now = {"now", LUA_NOW "return now\n", ""};

int64_t dp_presence_set(redisContext *c, const char *agent, const char *status, int64_t ttl_ms, char *err, int errlen)
{
    if (strcmp(status, "online") != 0 && strcmp(status, "away") != 0 && strcmp(status, "offline") != 0) {
        snprintf(err, errlen, "unknown presence '%s' (online, away, offline)", status);
        return -1;
    }
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(ttl_ms > 0 ? ttl_ms : 1));
    const char *argv[] = {DP_KEY_PRES, agent, status, ttl};
    redisReply *r = rd_redis_eval(c, &dp_script_presence, 1, 4, argv, NULL, err, errlen);
    if (r == NULL)
        return -1;
    int64_t v = r->type == REDIS_REPLY_INTEGER ? (int64_t)r->integer : -1;
    if (v < 0)
        snprintf(err, errlen, "presence: unexpected reply");
    freeReplyObject(r);
    return v;
}
