-- Publish messages, then lease ready ones to a consumer, in one call: a batch whose task sent the
-- next step of a chain takes it (or whatever is due before it) without a second round trip, and
-- the wake token each publish pushed is trimmed by the lease before an idle consumer pops it.
-- ARGV: prefix, n, then for each of the n messages the 7 arguments of publish.lua after the
--       prefix, then those of reserve.lua after it (consumer, count, queue1, queue2, ...).
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local at = 3 + i * 7
  store_message(ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], ARGV[at + 5], ARGV[at + 6])
end
local after = 3 + n * 7
local queues = {}
for i = after + 2, #ARGV do queues[#queues + 1] = ARGV[i] end
return lease(ARGV[after], tonumber(ARGV[after + 1]), queues)
