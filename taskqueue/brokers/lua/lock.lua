-- Take or give back a lock_key mutex owned by a consumer. A lock whose owner's lease
-- expired (the consumer died) is free, so a dead worker never blocks a key for good.
-- ARGV: prefix, lock name, consumer, stale_after ("" to give the lock back)
local name, consumer = ARGV[2], ARGV[3]
local now = server_now()
local owner = redis.call('GET', lock_key(name))
if ARGV[4] == '' then
  if owner == consumer then redis.call('DEL', lock_key(name)) end
  return 1
end
if owner and owner ~= consumer then
  local seen = redis.call('ZSCORE', heartbeats_key, owner)
  if seen and tonumber(seen) >= now - tonumber(ARGV[4]) then return 0 end
end
redis.call('SET', lock_key(name), consumer)
return 1
