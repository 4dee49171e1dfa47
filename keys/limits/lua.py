"""The Redis side of the lease store: Lua scripts, each one atomic step on the server.

Keys:
* `mlapi:bucket:<subscription>`: the token bucket `{tokens, ts}` (Redis' own clock, `TIME`).
* `mlapi:pool:<run_id>:<subscription>:<period start>:<plan quota>`: the pool of quota units
  leased durably from the database and not yet used: `{units, out, gap, limit, size, at, busy,
  busy_until, seen}`. `out` is `QuotaCounter.used` after the highest lease deposited; `gap`
  counts the units below it that leases still in flight hold (committed, not yet deposited),
  so `out - gap - units` is what was delivered, and each admit moves it by its own units
  (the RateLimit headers). Only a pool begun while other leases were in flight reports early
  (by those leases' units) until they land; `seen`, the high-water mark of that count, keeps
  quota.threshold crossings (keys.events) exactly once anyway. `<run_id>` is read by the
  script itself from `INFO server` on the server that runs it, so a pool only ever exists in
  the Redis process that received its leases: after a restart (persistence off, or an older
  RDB/AOF restored) or a failover to a replica, the server has a new run_id and every older
  pool is ignored (its units are lost: under-admission, bounded, see docs/performance.md),
  never reused.
* `mlapi:lease:<run_id>:<lease id>`: marks a lease as deposited, so a deposit is applied once.

Replies are arrays `{code, tokens, units, out, limit, lease, size, at, now, before,
held_tokens, held_units}`; floats travel as strings (a Lua number in a reply is truncated to an
integer). `before` (-1 unless units were admitted) is the pool's high-water mark of `used`
before the admit (`seen`); `held_*` is a reservation the admit took for its process
(ADMIT's ARGV[7]), and `tokens` then still counts its tokens.
* `<pool>:held`: reservations not given back yet, a sorted set of deadlines.
"""

from __future__ import annotations

ADMITTED, RATE_LIMITED, NEED_UNITS, QUOTA_EXCEEDED = 1, 0, 2, 3

_PRELUDE = """
local function run_id()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function refilled(key, rate, burst, now)
  local s = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(s[1]), tonumber(s[2])
  if tokens == nil or ts == nil then return burst end
  return math.min(burst, tokens + math.max(0, now - ts) * rate)
end
local function save_bucket(key, tokens, now, rate, burst)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('EXPIRE', key, math.ceil((burst - tokens) / rate) + 1)
end
-- QuotaCounter.used as the pool knows it: its top minus the units leases in flight hold below
-- it (nil: never leased). Minus the pooled units, that is what was delivered.
local function counted(p)
  local out = tonumber(p[2])
  if out == nil then return nil end
  return out - (tonumber(p[7]) or 0)
end
local function reply(code, tokens, units, p, lease, now, before, held_tokens, held_units)
  return {code, tostring(tokens), units, tostring(counted(p) or -1), p[3] or '-1', lease,
          tonumber(p[4]) or 1, p[5] or '0', tostring(now), before or -1, held_tokens or 0,
          held_units or 0}
end
-- Holders of a reservation that has not come back (keys.limits.reservations): refusals for
-- quota wait for them as for leases in flight. Expired entries are holders that died.
local function holders(pool, now)
  local held = pool .. ':held'
  redis.call('ZREMRANGEBYSCORE', held, '-inf', now)
  return redis.call('ZCARD', held)
end
-- After `units` were taken (`avail` left): the pool's high-water mark of `used` before this
-- admit, raised to the count now. Crossings are (before, used]: disjoint and gapless even when
-- a count reported early (a lease still in flight when the pool began) is revised down.
local function served(pool, p, avail, units)
  local used = (counted(p) or 0) - avail
  local seen = tonumber(p[8]) or (used - units)
  if used > seen then redis.call('HSET', pool, 'seen', used) end
  return seen
end
local function claim(pool, p, token, ttl, now)
  if (tonumber(p[6]) or 0) > now then return 0 end
  redis.call('HSET', pool, 'busy', token, 'busy_until', tostring(now + ttl))
  if redis.call('TTL', pool) < 0 then redis.call('EXPIRE', pool, 3600) end
  return 1
end
local FIELDS = {'units', 'out', 'limit', 'size', 'at', 'busy_until', 'gap', 'seen'}
"""

# KEYS: bucket. ARGV: rate, burst, units, pool suffix, leaser token, busy ttl.
# Token first (none: RATE_LIMITED, no quota touched); then `units` from the pool or, when the
# pool is short, NEED_UNITS with the token not taken, and lease=1 if the caller holds the
# claim to lease a whole lease size, 2 if it leases only what it lacks. Leases that find units
# in the database register in `<pool>:inflight` (GRANTING, a sorted set of deadlines).
# An admitted caller gets lease=1 when the pool ran below half a lease and nobody is leasing.
# ARGV[7..10]: reserve, held ttl, reserve below (percent), a used-up reservation of the
# caller's (or ''). An admitted caller may also take a
# reservation for its process: `reserve` more tokens and `reserve * units` more units, only
# while the bucket stays at least half full and the count stays below `reserve below` percent
# of the limit (so quota.threshold crossings and the period's last units are never served
# from a reservation); it is registered in `<pool>:held` until it comes back (UNRESERVE).
ADMIT = (
    _PRELUDE
    + """
-- After the caller's own units (`avail` left): may its process also hold `held_units` more,
-- `tokens` being what the bucket keeps then?
local function may_reserve(p, tokens, burst, avail, held_units, below_percent)
  if tokens < burst / 2 then return false end
  if held_units == 0 then return true end
  local count, limit = counted(p), tonumber(p[3])
  return count ~= nil and limit ~= nil and avail >= held_units
         and (count - avail + held_units) * 100 < limit * below_percent
end
local rate, burst, units = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = clock()
local pool = 'mlapi:pool:' .. run_id() .. ':' .. ARGV[4]
local p = redis.call('HMGET', pool, unpack(FIELDS))
local avail = tonumber(p[1]) or 0
local tokens = refilled(KEYS[1], rate, burst, now)
if tokens < 1 then return reply(0, tokens, avail, p, 0, now) end
if units > avail then
  local lease = claim(pool, p, ARGV[5], tonumber(ARGV[6]), now)
  return reply(2, tokens, avail, p, lease == 1 and 1 or 2, now)
end
tokens = tokens - 1
local lease, before, own = 0, nil, avail
if units > 0 then
  avail = redis.call('HINCRBY', pool, 'units', -units)
  own = avail
  before = served(pool, p, avail, units)
end
local reserve = tonumber(ARGV[7]) or 0
local held_units = reserve * units
if reserve == 0 or not may_reserve(p, tokens - reserve, burst, avail, held_units,
                                   tonumber(ARGV[9])) then
  reserve, held_units = 0, 0
end
if reserve > 0 then
  tokens = tokens - reserve
  if held_units > 0 then
    avail = redis.call('HINCRBY', pool, 'units', -held_units)
    served(pool, p, avail, held_units)  -- its counts are handed out: `seen` covers them
  end
  redis.call('ZREMRANGEBYSCORE', pool .. ':held', '-inf', now)  -- holders that died
  redis.call('ZADD', pool .. ':held', now + tonumber(ARGV[8]), ARGV[5])
  redis.call('EXPIRE', pool .. ':held', 3600)
end
if ARGV[10] ~= '' then  -- the caller's previous reservation, used up: no longer out
  redis.call('ZREM', pool .. ':held', ARGV[10])
end
save_bucket(KEYS[1], tokens, now, rate, burst)
if units > 0 then
  local size = tonumber(p[4]) or 1
  if size > 1 and avail * 2 < size then
    lease = claim(pool, p, ARGV[5], tonumber(ARGV[6]), now)
  end
end
return reply(1, tokens + reserve, own, p, lease, now, before, reserve, held_units)
"""
)

# KEYS: bucket. ARGV: rate, burst, units, pool suffix, leaser token, lease id, granted, out,
# limit, size, final, pool ttl. Adds a lease to the pool (once per lease id), releases the
# leaser's claim, then admits `units` as ADMIT does (units=0: deposit only). `final` says the
# database had no more: then a pool still short is QUOTA_EXCEEDED (token taken) unless other
# leases are still in flight (their units may arrive); otherwise NEED_UNITS (the caller tries
# again).
DEPOSIT = (
    _PRELUDE
    + """
local rate, burst, units = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local now = clock()
local run = run_id()
local pool = 'mlapi:pool:' .. run .. ':' .. ARGV[4]
local granted, used = tonumber(ARGV[7]), tonumber(ARGV[8])
if granted == 0 or redis.call('SET', 'mlapi:lease:' .. run .. ':' .. ARGV[6], '1', 'NX',
                              'EX', 86400) then
  if granted > 0 then redis.call('HINCRBY', pool, 'units', granted) end
  local out = tonumber(redis.call('HGET', pool, 'out'))
  if out == nil then  -- a new pool; leases in flight now make its first counts early
    redis.call('HSET', pool, 'out', used, 'limit', ARGV[9], 'gap', 0, 'seen', used - granted)
  elseif used > out then  -- units between the old top and this lease are still in flight
    redis.call('HINCRBY', pool, 'gap', used - granted - out)
    redis.call('HSET', pool, 'out', used, 'limit', ARGV[9])
  elseif granted > 0 then  -- a lease landing below the top: it fills the gap...
    local gap = tonumber(redis.call('HGET', pool, 'gap')) or 0
    if gap >= granted then
      redis.call('HINCRBY', pool, 'gap', 0 - granted)
    else  -- ...or was in flight when the pool began: counts reported early are now exact,
      redis.call('HSET', pool, 'gap', 0)  -- and crossings from its first unit happen again
      local seen = tonumber(redis.call('HGET', pool, 'seen'))
      if seen == nil or seen > used - granted then
        redis.call('HSET', pool, 'seen', used - granted)
      end
    end
  end
end
redis.call('HSET', pool, 'size', ARGV[10], 'at', tostring(now))
if redis.call('HGET', pool, 'busy') == ARGV[5] then
  redis.call('HDEL', pool, 'busy', 'busy_until')
end
redis.call('EXPIRE', pool, tonumber(ARGV[12]))
local inflight = pool .. ':inflight'
redis.call('ZREM', inflight, ARGV[5])
redis.call('ZREMRANGEBYSCORE', inflight, '-inf', now)
local others = redis.call('ZCARD', inflight)
if others == 0 then redis.call('HSET', pool, 'gap', 0) end
local p = redis.call('HMGET', pool, unpack(FIELDS))
local avail = tonumber(p[1]) or 0
if units == 0 then return reply(1, -1, avail, p, 0, now) end
local tokens = refilled(KEYS[1], rate, burst, now)
if tokens < 1 then return reply(0, tokens, avail, p, 0, now) end
if units > avail and (ARGV[11] ~= '1' or others > 0 or holders(pool, now) > 0) then
  return reply(2, tokens, avail, p, 0, now)
end
tokens = tokens - 1
save_bucket(KEYS[1], tokens, now, rate, burst)
if units > avail then return reply(3, tokens, avail, p, 0, now) end
avail = redis.call('HINCRBY', pool, 'units', -units)
return reply(1, tokens, avail, p, 0, now, served(pool, p, avail, units))
"""
)

# KEYS: bucket. ARGV: rate, burst, pool suffix, leaser token. Gives up a claim to lease
# (the lease failed) and reports the state, consuming nothing.
RELEASE = (
    _PRELUDE
    + """
local now = clock()
local pool = 'mlapi:pool:' .. run_id() .. ':' .. ARGV[3]
if redis.call('HGET', pool, 'busy') == ARGV[4] then
  redis.call('HDEL', pool, 'busy', 'busy_until')
end
redis.call('ZREM', pool .. ':inflight', ARGV[4])
local p = redis.call('HMGET', pool, unpack(FIELDS))
local tokens = refilled(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
return reply(1, tokens, tonumber(p[1]) or 0, p, 0, now)
"""
)

# KEYS: bucket. ARGV: rate, burst, pool suffix, reservation id, tokens, units, used. A process
# gives back what it did not use of a reservation: the tokens to the bucket (up to the burst),
# the units to the pool if this server has it (1), else the caller gives them to the database
# (0). Their counts were in `seen` but never reported: `seen` goes back to `used` (the count of
# the reservation's last unit handed out), so every count is still crossed by some admit (a
# second crossing of counts others reported meanwhile is deduplicated by the outbox).
UNRESERVE = (
    _PRELUDE
    + """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = clock()
local pool = 'mlapi:pool:' .. run_id() .. ':' .. ARGV[3]
redis.call('ZREM', pool .. ':held', ARGV[4])
local tokens, units = tonumber(ARGV[5]), tonumber(ARGV[6])
if tokens > 0 then
  save_bucket(KEYS[1], math.min(burst, refilled(KEYS[1], rate, burst, now) + tokens), now, rate,
              burst)
end
if units == 0 then return 1 end
if redis.call('EXISTS', pool) == 0 then return 0 end
redis.call('HINCRBY', pool, 'units', units)
local used, seen = tonumber(ARGV[7]), tonumber(redis.call('HGET', pool, 'seen'))
if seen ~= nil and seen > used then redis.call('HSET', pool, 'seen', used) end
return 1
"""
)

# ARGV: pool suffix, units. A refund goes back into the pool if this server has one (1), else
# the caller gives it back to the database (0).
REFUND = """
local pool = 'mlapi:pool:' .. string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
             .. ':' .. ARGV[1]
if redis.call('EXISTS', pool) == 0 then return 0 end
redis.call('HINCRBY', pool, 'units', tonumber(ARGV[2]))
return 1
"""

# ARGV: pool suffix. Takes every unit out of the pool (they go back to the database); replies
# {units taken, reservations still out} (those may come back: the caller can wait for them).
DRAIN = (
    _PRELUDE
    + """
local pool = 'mlapi:pool:' .. run_id() .. ':' .. ARGV[1]
local n = tonumber(redis.call('HGET', pool, 'units')) or 0
if n > 0 then
  redis.call('HINCRBY', pool, 'units', -n)
  if redis.call('HEXISTS', pool, 'out') == 1 then redis.call('HINCRBY', pool, 'out', -n) end
end
return {n, holders(pool, clock())}
"""
)

# ARGV: pool suffix, leaser token, ttl. Registers a lease that found units in the database
# (before its transaction): until its deposit, a refusal for quota waits for its units.
GRANTING = """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
local t = redis.call('TIME')
local key = 'mlapi:pool:' .. run .. ':' .. ARGV[1] .. ':inflight'
redis.call('ZADD', key, tonumber(t[1]) + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', key, 3600)
return 1
"""
