-- Store a message and make it ready (or delayed until its eta). A key already queued or in
-- flight is not queued twice, so re-sending a follow-up after a crash is harmless.
-- ARGV: prefix, queue, key, body, eta (epoch seconds, or "" for now), "1" to (re)add the queue to
--       the set of known queues (each process does so now and then, not on every message), how
--       long (ms) to remember that it was published ("" unless kept in the outbox), and its rank
--       (see keys.py).
local queue, key, eta, rank = ARGV[2], ARGV[3], ARGV[5], ARGV[8]
if ARGV[7] ~= '' then
  redis.call('SET', published_key(key), '1', 'PX', ARGV[7])
end
if redis.call('HSETNX', msg_key, key, ARGV[4]) == 0 then return 0 end
if ARGV[6] == '1' then
  redis.call('SADD', queues_key, queue)
end
if eta ~= '' then
  redis.call('HSET', ranks_key, key, rank)
  redis.call('ZADD', delayed_key, eta, queue .. '\n' .. key)
else
  make_ready(queue, key, rank)
end
return 1
