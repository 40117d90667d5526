-- Shared by every script, after the key prelude (keys.py).

-- Epoch seconds on the server's clock.
local function server_now()
  local clock = redis.call('TIME')
  return tonumber(clock[1]) + tonumber(clock[2]) / 1000000
end

-- The rank of a message ready at `at` (epoch seconds), of priority 0: one delayed before ranks were kept.
local function rank_of(at)
  return at - rank_epoch
end

-- Make a message ready: into its queue by rank, and wake an idle consumer (at most 128 tokens wait,
-- cut to 64 when over: under a steady flow a publish trims one time in 64, not every time).
local function make_ready(queue, key, rank)
  redis.call('ZADD', queue_key(queue), rank, key)
  if redis.call('LPUSH', wake_key(queue), '1') > 128 then
    redis.call('LTRIM', wake_key(queue), 0, 63)
  end
end

-- What a consumer holds for a message: its queue, and the rank to give it back with.
local function held_place(value)
  local nl = string.find(value, '\n', 1, true)
  if not nl then return value, 0 end  -- written before ranks: back at the head
  return string.sub(value, 1, nl - 1), string.sub(value, nl + 1)
end

-- Store a message and make it ready (or delayed until its eta); 0 if its key is already queued,
-- delayed or in flight (so re-sending a follow-up after a crash is harmless). `announce` "1"
-- (re)adds the queue to the known queues; `remember_ms` (or "") how long to remember the publish.
local function store_message(queue, key, body, eta, announce, remember_ms, rank)
  if remember_ms ~= '' then
    redis.call('SET', published_key(key), '1', 'PX', remember_ms)
  end
  if redis.call('HSETNX', msg_key, key, body) == 0 then return 0 end
  if announce == '1' then
    redis.call('SADD', queues_key, queue)
  end
  if eta ~= '' then
    redis.call('HSET', ranks_key, key, rank)
    redis.call('ZADD', delayed_key, eta, queue .. '\n' .. key)
  else
    make_ready(queue, key, rank)
  end
  return 1
end

-- Lease up to `count` ready messages of `queues` (in order) to `consumer`, lowest rank first, after
-- making due delayed ones ready; renews the consumer's lease. A message of a cancelled task comes
-- with "revoked" for its redeliveries. Returns {next_eta or "", key1, body1, redeliveries1, queue1, key2, ...}.
local function lease(consumer, count, queues)
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
  for _, queue in ipairs(queues) do
    while taken < count do
      -- at most 512 a pop: each lookup below takes them all as arguments (unpack's limit is ~8,000)
      local popped = redis.call('ZPOPMIN', queue_key(queue), math.min(count - taken, 512))
      if #popped == 0 then break end
      -- One call a batch for each lookup, not one a message: a call from Lua costs more than its work.
      local keys = {}
      for j = 1, #popped, 2 do keys[#keys + 1] = popped[j] end
      local bodies = redis.call('HMGET', msg_key, unpack(keys))
      local counts = redis.call('HMGET', redeliveries_key, unpack(keys))
      local places, markers = {}, {}
      for j, key in ipairs(keys) do
        if bodies[j] then
          places[#places + 1] = key
          places[#places + 1] = queue .. '\n' .. popped[j * 2]
          markers[#markers + 1] = cancelled_key(string.match(key, '^[^~]+'))
        end
      end
      if #places > 0 then
        redis.call('HSET', inflight_key(consumer), unpack(places))
        local any_cancelled = redis.call('EXISTS', unpack(markers)) > 0
        for j, key in ipairs(keys) do
          if bodies[j] then
            out[#out + 1] = key
            out[#out + 1] = bodies[j]
            if any_cancelled and redis.call('EXISTS', cancelled_key(string.match(key, '^[^~]+'))) == 1 then
              out[#out + 1] = 'revoked'
            else
              out[#out + 1] = counts[j] or '0'
            end
            out[#out + 1] = queue
            taken = taken + 1
          end
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
end
