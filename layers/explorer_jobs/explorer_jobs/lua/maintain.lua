-- maintain: housekeeping a worker runs every few seconds, so nothing depends on a claim arriving:
-- promote due delayed jobs, recover stalled leases, and sweep finished jobs past the retention.
-- KEYS[1]  <prefix>finished
-- ARGV[1]  prefix   ARGV[2] events maxlen   ARGV[3] max stalls   ARGV[4] retention (ms)
-- ARGV[5]  max jobs to sweep in one call
-- Returns  {promoted, recovered, swept}
local maxlen, max_stalls, retention, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local promoted = promote_due(maxlen, 1000)
local recovered = recover_stalled(maxlen, max_stalls, 1000)
local ids = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', NOW - retention, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local jkey = P .. 'job:' .. id
  local f = redis.call('HMGET', jkey, 'user', 'type', 'status')
  if f[1] then
    move_count(f[1], f[2], f[3], nil)
    redis.call('ZREM', P .. 'ujobs:' .. f[1], id)
    redis.call('DEL', jkey)
  end
  redis.call('ZREM', P .. 'finished', id)
end
pass_wake()
flush_counts()
return {promoted, recovered, #ids}
