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

-- Make a message ready: into its queue by rank, and wake an idle consumer (at most 64 tokens wait).
local function make_ready(queue, key, rank)
  redis.call('ZADD', queue_key(queue), rank, key)
  if redis.call('LPUSH', wake_key(queue), '1') > 64 then
    redis.call('LTRIM', wake_key(queue), 0, 63)
  end
end

-- What a consumer holds for a message: its queue, and the rank to give it back with.
local function held_place(value)
  local nl = string.find(value, '\n', 1, true)
  if not nl then return value, 0 end  -- written before ranks: back at the head
  return string.sub(value, 1, nl - 1), string.sub(value, nl + 1)
end
