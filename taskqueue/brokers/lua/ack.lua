-- Forget messages whose outcome is stored: out of the consumer's lease, the bodies and the counts.
-- ARGV: prefix, then consumer, key for each message. One HDEL a hash for a run of one consumer's
-- messages (a batch is one consumer's): a call from Lua costs more than its work.
local function forget(consumer, keys)
  redis.call('HDEL', inflight_key(consumer), unpack(keys))
  redis.call('HDEL', msg_key, unpack(keys))
  redis.call('HDEL', redeliveries_key, unpack(keys))
end
local consumer, keys = nil, {}
for i = 2, #ARGV, 2 do
  if ARGV[i] ~= consumer or #keys == 512 then
    if consumer then forget(consumer, keys) end
    consumer, keys = ARGV[i], {}
  end
  keys[#keys + 1] = ARGV[i + 1]
end
if consumer then forget(consumer, keys) end
return (#ARGV - 1) / 2
