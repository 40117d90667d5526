-- Lease bookkeeping: renew the leases of live consumers (their score in heartbeats_key becomes
-- the server's time), then requeue what named consumers, and consumers silent for `stale_after`
-- seconds, hold and forget them. A requeued message counts a redelivery unless `redelivered` is "0"
-- (a live consumer giving back what it held through an outage).
-- ARGV: prefix, stale_after ("" for none), redelivered, number of live consumers, the live ones,
--       then the named ones. Returns how many messages were requeued.
local now = server_now()
local redelivered, alive = ARGV[3] == '1', tonumber(ARGV[4])
for i = 5, 4 + alive do
  redis.call('ZADD', heartbeats_key, now, ARGV[i])
end
local consumers = {}
for i = 5 + alive, #ARGV do consumers[#consumers + 1] = ARGV[i] end
if ARGV[2] ~= '' then
  for _, consumer in ipairs(redis.call('ZRANGEBYSCORE', heartbeats_key, '-inf', now - tonumber(ARGV[2]))) do
    consumers[#consumers + 1] = consumer
  end
end
local moved = 0
for _, consumer in ipairs(consumers) do
  local held = redis.call('HGETALL', inflight_key(consumer))
  for i = 1, #held, 2 do
    local key = held[i]
    if redis.call('HEXISTS', msg_key, key) == 1 then
      local queue, rank = held_place(held[i + 1])
      make_ready(queue, key, rank)
      if redelivered then redis.call('HINCRBY', redeliveries_key, key, 1) end
      moved = moved + 1
    end
  end
  redis.call('DEL', inflight_key(consumer))
  redis.call('ZREM', heartbeats_key, consumer)
end
return moved
