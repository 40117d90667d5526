-- Renew the leases of live consumers: their score in {p}:heartbeats becomes the server's time.
-- ARGV: prefix, consumer1, consumer2, ...
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
for i = 2, #ARGV do
  redis.call('ZADD', ARGV[1] .. ':heartbeats', now, ARGV[i])
end
return #ARGV - 1
