-- Shared by every script, after the key prelude (keys.py).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000  -- epoch seconds, the server's clock

-- The rank of a message ready at `at` (epoch seconds) whose priority puts it `offset` seconds ahead;
-- counted from 2023-11-14, so a double still tells microseconds apart.
local function rank_of(at, offset)
  return at - 1700000000 - (tonumber(offset) or 0)
end

-- Make a message ready: into its queue by rank (a new `seq` unless given back with its own, so a
-- rank's messages keep their order), and wake an idle consumer (at most 64 tokens wait).
local function make_ready(queue, key, rank, seq)
  seq = seq or string.format('%016x', redis.call('INCR', seq_key))
  redis.call('ZADD', queue_key(queue), rank, seq .. key)
  if redis.call('LPUSH', wake_key(queue), '1') > 64 then
    redis.call('LTRIM', wake_key(queue), 0, 63)
  end
end

-- What a consumer holds for a message: its queue, and the rank and seq to give it back with.
local function held_place(value)
  local first = string.find(value, '\n', 1, true)
  if not first then return value, 0, nil end  -- written before ranks: back at the head
  local second = string.find(value, '\n', first + 1, true)
  return string.sub(value, 1, first - 1), tonumber(string.sub(value, first + 1, second - 1)),
    string.sub(value, second + 1)
end
