-- Give a leased message back: ready again at once (at the head), or after `delay` seconds.
-- ARGV: prefix, consumer, key, queue, delay
local p, consumer, key, queue, delay = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
if redis.call('HDEL', p .. ':inflight:' .. consumer, key) == 0 then return 0 end
if delay > 0 then
  redis.call('ZADD', p .. ':delayed', now + delay, queue .. '\n' .. key)
else
  redis.call('RPUSH', p .. ':q:' .. queue, key)
  redis.call('LPUSH', p .. ':wake:' .. queue, '1')
end
return 1
