-- Requeue what stale (or named) consumers hold, counting a redelivery per message.
-- ARGV: prefix, stale_after, consumer1, consumer2, ... (named consumers are recovered at once)
local p, stale_after = ARGV[1], tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local consumers = {}
for i = 3, #ARGV do consumers[#consumers + 1] = ARGV[i] end
if #consumers == 0 then
  consumers = redis.call('ZRANGEBYSCORE', p .. ':heartbeats', '-inf', now - stale_after)
end
local moved = 0
for _, consumer in ipairs(consumers) do
  local held = redis.call('HGETALL', p .. ':inflight:' .. consumer)
  for i = 1, #held, 2 do
    local key, queue = held[i], held[i + 1]
    if redis.call('HEXISTS', p .. ':msg', key) == 1 then
      redis.call('RPUSH', p .. ':q:' .. queue, key)
      redis.call('LPUSH', p .. ':wake:' .. queue, '1')
      redis.call('HINCRBY', p .. ':redeliveries', key, 1)
      moved = moved + 1
    end
  end
  redis.call('DEL', p .. ':inflight:' .. consumer)
  redis.call('ZREM', p .. ':heartbeats', consumer)
end
return moved
