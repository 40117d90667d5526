-- Lease up to `count` ready messages to a consumer, lowest rank first, after making due delayed
-- ones ready. ARGV: prefix, consumer, count, queue1, queue2, ...
-- Returns {next_eta or "", key1, body1, redeliveries1, queue1, key2, ...}.
-- Reserving renews the consumer's lease (its score in heartbeats_key); what it holds is in
-- inflight_key(consumer). A message of a cancelled task is dropped instead (revoked).
local consumer, count = ARGV[2], tonumber(ARGV[3])
local now = server_now()
local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'WITHSCORES', 'LIMIT', 0, 500)
for i = 1, #due, 2 do
  local member = due[i]
  local nl = string.find(member, '\n', 1, true)
  local key = string.sub(member, nl + 1)
  make_ready(string.sub(member, 1, nl - 1), key, redis.call('HGET', ranks_key, key) or rank_of(tonumber(due[i + 1])))
  redis.call('HDEL', ranks_key, key)
  redis.call('ZREM', delayed_key, member)
end
redis.call('ZADD', heartbeats_key, now, consumer)
local out = {''}
local taken = 0
for i = 4, #ARGV do
  local queue = ARGV[i]
  while taken < count do
    local popped = redis.call('ZPOPMIN', queue_key(queue), count - taken)
    if #popped == 0 then break end
    for j = 1, #popped, 2 do
      local key = popped[j]
      local body = redis.call('HGET', msg_key, key)
      if body and redis.call('EXISTS', cancelled_key(string.match(key, '^[^~]+'))) == 1 then
        redis.call('HDEL', msg_key, key)
        body = false
      end
      if body then
        redis.call('HSET', inflight_key(consumer), key, queue .. '\n' .. popped[j + 1])
        out[#out + 1] = key
        out[#out + 1] = body
        out[#out + 1] = redis.call('HGET', redeliveries_key, key) or '0'
        out[#out + 1] = queue
        taken = taken + 1
      end
    end
  end
  -- Keep no more wake tokens than ready messages, so idle consumers do not wake for nothing.
  local ready = redis.call('ZCARD', queue_key(queue))
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
