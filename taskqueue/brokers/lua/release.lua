-- Give leased messages back to the place they were taken from (so the first given is taken
-- first), at once or after `delay` seconds. Atomic, so no consumer can take the second before the
-- first is back.
-- ARGV: prefix, delay, then consumer, key, queue for each message. Returns how many were released.
local delay = tonumber(ARGV[2])
local released = 0
for i = 3, #ARGV, 3 do
  local consumer, key = ARGV[i], ARGV[i + 1]
  local value = redis.call('HGET', inflight_key(consumer), key)
  if value then
    redis.call('HDEL', inflight_key(consumer), key)
    local queue, rank = held_place(value)
    if delay > 0 then
      redis.call('HSET', ranks_key, key, rank)
      redis.call('ZADD', delayed_key, server_now() + delay, queue .. '\n' .. key)
    else
      make_ready(queue, key, rank)
    end
    released = released + 1
  end
end
return released
