-- Forget messages whose outcome is stored: out of the consumer's lease, the bodies and the counts.
-- ARGV: prefix, then consumer, key for each message.
for i = 2, #ARGV, 2 do
  local key = ARGV[i + 1]
  redis.call('HDEL', inflight_key(ARGV[i]), key)
  redis.call('HDEL', msg_key, key)
  redis.call('HDEL', redeliveries_key, key)
end
return (#ARGV - 1) / 2
