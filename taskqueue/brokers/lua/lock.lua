-- Take or give back a lock_key mutex owned by a consumer. A lock whose owner's lease
-- expired (the consumer died) is free, so a dead worker never blocks a key for good.
-- ARGV: prefix, lock name, consumer, stale_after, "acquire" | "release"
local p, name, consumer, stale_after, op = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local key = p .. ':lock:' .. name
local owner = redis.call('GET', key)
if op == 'release' then
  if owner == consumer then redis.call('DEL', key) end
  return 1
end
if owner and owner ~= consumer then
  local seen = redis.call('ZSCORE', p .. ':heartbeats', owner)
  if seen and tonumber(seen) >= now - stale_after then return 0 end
end
redis.call('SET', key, consumer)
return 1
