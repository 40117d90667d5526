-- Store a message (see `store_message` in common.lua).
-- ARGV: prefix, queue, key, body, eta (epoch seconds, or "" for now), "1" to (re)add the queue to
--       the set of known queues (each process does so now and then, not on every message), how
--       long (ms) to remember that it was published ("" unless kept in the outbox), and its rank
--       (see keys.py).
return store_message(ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8])
