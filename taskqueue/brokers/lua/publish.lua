-- Store a message and make it ready (or delayed until its eta). A key already queued or in
-- flight is not queued twice, so re-sending a follow-up after a crash is harmless.
-- ARGV: prefix, queue, key, body, eta (epoch seconds, or "" for now), then "1" to (re)add the
--       queue to the set of known queues (each process does so now and then, not on every message),
--       then, for a message kept in the outbox, how long (ms) to remember that it was published.
-- Ready lists are FIFO (LPUSH in, RPOP out); wake tokens are capped at 64 here, and a reserve
-- trims them to the ready count.
local queue, key, body, eta = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if ARGV[7] and ARGV[7] ~= '' then
  redis.call('SET', published_key(key), '1', 'PX', ARGV[7])
end
if redis.call('HSETNX', msg_key, key, body) == 0 then return 0 end
if ARGV[6] == '1' then
  redis.call('SADD', queues_key, queue)
end
if eta ~= '' then
  redis.call('ZADD', delayed_key, eta, queue .. '\n' .. key)
else
  redis.call('LPUSH', queue_key(queue), key)
  if redis.call('LPUSH', wake_key(queue), '1') > 64 then
    redis.call('LTRIM', wake_key(queue), 0, 63)
  end
end
return 1
