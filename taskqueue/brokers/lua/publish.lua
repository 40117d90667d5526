-- Store a message and make it ready (or delayed until its eta). A key already queued or in
-- flight is not queued twice, so re-sending a follow-up after a crash is harmless.
-- ARGV: prefix, queue, key, body, eta (epoch seconds, or "" for now), then "1" to (re)add the
--       queue to the set of known queues (each process does so now and then, not on every message),
--       then, for a message kept in the outbox, how long (ms) to remember that it was published.
-- Keys: {p}:msg hash key->body; {p}:q:{queue} ready list (LPUSH in, RPOP out = FIFO);
--       {p}:delayed zset "queue\nkey" by eta; {p}:wake:{queue} tokens that wake idle consumers
--       (at most 64: a reserve trims them to the ready count); {p}:queues set of queue names.
local p, queue, key, body, eta = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if ARGV[7] and ARGV[7] ~= '' then
  redis.call('SET', p .. ':published:' .. key, '1', 'PX', ARGV[7])
end
if redis.call('HSETNX', p .. ':msg', key, body) == 0 then return 0 end
if ARGV[6] == '1' then
  redis.call('SADD', p .. ':queues', queue)
end
if eta ~= '' then
  redis.call('ZADD', p .. ':delayed', eta, queue .. '\n' .. key)
else
  redis.call('LPUSH', p .. ':q:' .. queue, key)
  if redis.call('LPUSH', p .. ':wake:' .. queue, '1') > 64 then
    redis.call('LTRIM', p .. ':wake:' .. queue, 0, 63)
  end
end
return 1
