-- Lease up to `count` ready messages to a consumer, after promoting due delayed ones.
-- ARGV: prefix, consumer, count, queue1, queue2, ...  (time is the server's: TIME)
-- Returns {next_eta or "", key1, body1, redeliveries1, queue1, key2, ...}.
-- Reserving renews the consumer's lease (its score in heartbeats_key); what it holds is in
-- inflight_key(consumer). A message of a cancelled task is dropped instead (revoked).
local consumer, count = ARGV[2], tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, 500)
for _, member in ipairs(due) do
  local nl = string.find(member, '\n', 1, true)
  local queue = string.sub(member, 1, nl - 1)
  redis.call('LPUSH', queue_key(queue), string.sub(member, nl + 1))
  redis.call('LPUSH', wake_key(queue), '1')
  redis.call('ZREM', delayed_key, member)
end
redis.call('ZADD', heartbeats_key, now, consumer)
local out = {''}
local taken = 0
for i = 4, #ARGV do
  local queue = ARGV[i]
  while taken < count do
    local key = redis.call('RPOP', queue_key(queue))
    if not key then break end
    local body = redis.call('HGET', msg_key, key)
    local task_id = string.match(key, '^[^~]+')
    if body and redis.call('EXISTS', cancelled_key(task_id)) == 1 then
      redis.call('HDEL', msg_key, key)
      body = false
    end
    if body then
      redis.call('HSET', inflight_key(consumer), key, queue)
      local redelivered = redis.call('HGET', redeliveries_key, key) or '0'
      out[#out + 1] = key
      out[#out + 1] = body
      out[#out + 1] = redelivered
      out[#out + 1] = queue
      taken = taken + 1
    end
  end
  -- Keep no more wake tokens than ready messages, so idle consumers do not wake for nothing.
  local ready = redis.call('LLEN', queue_key(queue))
  if ready == 0 then
    redis.call('DEL', wake_key(queue))
  else
    redis.call('LTRIM', wake_key(queue), 0, ready - 1)
  end
  if taken >= count then break end
end
if taken == 0 then
  local nxt = redis.call('ZRANGE', delayed_key, 0, 0, 'WITHSCORES')
  if nxt[2] then out[1] = nxt[2] end
end
return out
