-- Lease up to `count` ready messages to a consumer (see `lease` in common.lua); what it holds is in
-- inflight_key(consumer). ARGV: prefix, consumer, count, queue1, queue2, ...
local queues = {}
for i = 4, #ARGV do queues[#queues + 1] = ARGV[i] end
return lease(ARGV[2], tonumber(ARGV[3]), queues)
