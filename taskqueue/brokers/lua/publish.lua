-- Store a message and make it ready (or delayed until its eta). A key already queued or in
-- flight is not queued twice, so re-sending a follow-up after a crash is harmless.
-- ARGV: prefix, queue, key, body, eta (epoch seconds, or "" for now)
-- Keys: {p}:msg hash key->body; {p}:q:{queue} ready list (LPUSH in, RPOP out = FIFO);
--       {p}:delayed zset "queue\nkey" by eta; {p}:wake:{queue} tokens that wake idle consumers;
--       {p}:queues set of queue names.
local p, queue, key, body, eta = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HSETNX', p .. ':msg', key, body) == 0 then return 0 end
redis.call('SADD', p .. ':queues', queue)
if eta ~= '' then
  redis.call('ZADD', p .. ':delayed', eta, queue .. '\n' .. key)
else
  redis.call('LPUSH', p .. ':q:' .. queue, key)
  redis.call('LPUSH', p .. ':wake:' .. queue, '1')
  redis.call('LTRIM', p .. ':wake:' .. queue, 0, 63)
end
return 1
