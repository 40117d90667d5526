-- Lease up to `count` ready messages to a consumer, after promoting due delayed ones.
-- ARGV: prefix, consumer, count, queue1, queue2, ...  (time is the server's: TIME)
-- Returns {next_eta or "", key1, body1, redeliveries1, queue1, key2, ...}.
-- The consumer's lease is its score in {p}:heartbeats; what it holds is {p}:inflight:{consumer}.
-- A message whose task id has a {p}:cancelled:{task id} marker is dropped instead (revoked).
local p, consumer, count = ARGV[1], ARGV[2], tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
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
for i = 4, #ARGV do
  local queue = ARGV[i]
  while taken < count do
    local key = redis.call('RPOP', p .. ':q:' .. queue)
    if not key then break end
    local body = redis.call('HGET', p .. ':msg', key)
    local task_id = string.match(key, '^[^~]+')
    if body and redis.call('EXISTS', p .. ':cancelled:' .. task_id) == 1 then
      redis.call('HDEL', p .. ':msg', key)
      body = false
    end
    if body then
      redis.call('HSET', p .. ':inflight:' .. consumer, key, queue)
      local redelivered = redis.call('HGET', p .. ':redeliveries', key) or '0'
      out[#out + 1] = key
      out[#out + 1] = body
      out[#out + 1] = redelivered
      out[#out + 1] = queue
      taken = taken + 1
    end
  end
  -- Keep no more wake tokens than ready messages, so idle consumers do not wake for nothing.
  local ready = redis.call('LLEN', p .. ':q:' .. queue)
  if ready == 0 then
    redis.call('DEL', p .. ':wake:' .. queue)
  else
    redis.call('LTRIM', p .. ':wake:' .. queue, 0, ready - 1)
  end
  if taken >= count then break end
end
if taken == 0 then
  local nxt = redis.call('ZRANGE', p .. ':delayed', 0, 0, 'WITHSCORES')
  if nxt[2] then out[1] = nxt[2] end
end
return out
