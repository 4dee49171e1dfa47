"""The token bucket in Redis (used when REDIS_URL is set): one Lua script, atomic by design.

The script reads Redis' own clock (`TIME`), so web nodes with skewed clocks still share one
consistent bucket. The key expires once the bucket would be full again, so idle subscriptions
cost no memory. The quota never lives here (see keys.limits).
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings

from keys.limits_db import BucketResult
from mlapi.exceptions import ServiceUnavailable

KEY_FORMAT = "mlapi:bucket:{}"
TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if cost > 0 and tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
if cost > 0 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1)
end
return {allowed, tostring(tokens)}
"""

_lock = threading.Lock()
_clients: dict[str, tuple[redis.Redis, object]] = {}


def _script():
    url = settings.REDIS_URL
    entry = _clients.get(url)
    if entry is None:
        with _lock:
            entry = _clients.get(url)
            if entry is None:
                client = redis.Redis.from_url(
                    url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=30
                )
                entry = (client, client.register_script(TAKE_SCRIPT))
                _clients[url] = entry
    return entry[1]


def _run(subscription_id: int, rate: float, burst: int, cost: int) -> BucketResult:
    try:
        allowed, tokens = _script()(
            keys=[KEY_FORMAT.format(subscription_id)], args=[rate, burst, cost]
        )
    except redis.RedisError as exc:
        raise ServiceUnavailable(
            "The rate limiter is unavailable; try again shortly.", headers={"Retry-After": "1"}
        ) from exc
    return BucketResult(bool(int(allowed)), float(tokens))


def take_token(*, subscription_id: int, rate: float, burst: int) -> BucketResult:
    """Take one token (refilled at `rate` up to `burst`) from the subscription's bucket."""
    return _run(subscription_id, rate, burst, 1)


def peek_tokens(*, subscription_id: int, rate: float, burst: int) -> float:
    """Tokens in the bucket now, without taking any."""
    return _run(subscription_id, rate, burst, 0).tokens
