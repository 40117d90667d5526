-- Requeue what stale (or named) consumers hold, counting a redelivery per message unless
-- `redelivered` is "0" (a live consumer giving back what it held through an outage).
-- ARGV: prefix, stale_after, redelivered, consumer1, consumer2, ... (named ones are recovered at once)
local p, stale_after, redelivered = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local consumers = {}
for i = 4, #ARGV do consumers[#consumers + 1] = ARGV[i] end
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
      if redelivered then redis.call('HINCRBY', p .. ':redeliveries', key, 1) end
      moved = moved + 1
    end
  end
  redis.call('DEL', p .. ':inflight:' .. consumer)
  redis.call('ZREM', p .. ':heartbeats', consumer)
end
return moved
