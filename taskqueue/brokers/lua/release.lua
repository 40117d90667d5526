-- Give leased messages back: ready again at once (at the head, in the order given), or after
-- `delay` seconds. Atomic, so no consumer can take the second before the first is back.
-- ARGV: prefix, delay, then consumer, key, queue for each message. Returns how many were released.
local delay = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local released = 0
for i = #ARGV - 2, 3, -3 do  -- last given first: each goes to the head, so the first ends up first
  local consumer, key, queue = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HDEL', inflight_key(consumer), key) == 1 then
    if delay > 0 then
      redis.call('ZADD', delayed_key, now + delay, queue .. '\n' .. key)
    else
      redis.call('RPUSH', queue_key(queue), key)
      redis.call('LPUSH', wake_key(queue), '1')
    end
    released = released + 1
  end
end
return released
