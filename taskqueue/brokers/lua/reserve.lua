-- Lease up to `count` ready messages to a consumer, after promoting due delayed ones.
-- ARGV: prefix, consumer, now, count, queue1, queue2, ...
-- Returns {next_eta or "", key1, body1, redeliveries1, queue1, key2, ...}.
-- The consumer's lease is its score in {p}:heartbeats; what it holds is {p}:inflight:{consumer}.
local p, consumer, now, count = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local due = redis.call('ZRANGEBYSCORE', p .. ':delayed', '-inf', now, 'LIMIT', 0, 500)
for _, member in ipairs(due) do
  local nl = string.find(member, '\n', 1, true)
  local queue = string.sub(member, 1, nl - 1)
  redis.call('LPUSH', p .. ':q:' .. queue, string.sub(member, nl + 1))
  redis.call('LPUSH', p .. ':wake:' .. queue, '1')
  redis.call('ZREM', p .. ':delayed', member)
end
redis.call('ZADD', p .. ':heartbeats', now, consumer)
local out = {''}
local taken = 0
for i = 5, #ARGV do
  local queue = ARGV[i]
  while taken < count do
    local key = redis.call('RPOP', p .. ':q:' .. queue)
    if not key then break end
    local body = redis.call('HGET', p .. ':msg', key)
    if body then
      redis.call('HSET', p .. ':inflight:' .. consumer, key, queue)
      redis.call('RPOP', p .. ':wake:' .. queue)
      local redelivered = redis.call('HGET', p .. ':redeliveries', key) or '0'
      out[#out + 1] = key
      out[#out + 1] = body
      out[#out + 1] = redelivered
      out[#out + 1] = queue
      taken = taken + 1
    end
  end
  if taken >= count then break end
end
if taken == 0 then
  local nxt = redis.call('ZRANGE', p .. ':delayed', 0, 0, 'WITHSCORES')
  if nxt[2] then out[1] = nxt[2] end
end
return out
