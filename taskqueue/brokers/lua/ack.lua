-- Forget messages whose outcome is stored: out of the consumer's lease, the bodies and the counts.
-- ARGV: prefix, then consumer, key for each message.
local p = ARGV[1]
for i = 2, #ARGV, 2 do
  local key = ARGV[i + 1]
  redis.call('HDEL', p .. ':inflight:' .. ARGV[i], key)
  redis.call('HDEL', p .. ':msg', key)
  redis.call('HDEL', p .. ':redeliveries', key)
end
return (#ARGV - 1) / 2
