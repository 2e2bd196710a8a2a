-- maintain: housekeeping a worker runs every few seconds, so nothing depends on a claim arriving:
-- promote due delayed jobs, recover stalled leases, and list finished jobs past the retention
-- (the worker archives them in the store, then `forget` deletes them: nothing is deleted before
-- it is kept somewhere).
-- KEYS[1]  <prefix>finished
-- ARGV[1]  prefix   ARGV[2] events maxlen   ARGV[3] max stalls   ARGV[4] retention (ms)
-- ARGV[5]  max expired jobs to list in one call
-- Returns  {promoted, recovered, expired job hashes as flat lists...}
local maxlen, max_stalls, retention, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local promoted = promote_due(maxlen, 1000)
local recovered = recover_stalled(maxlen, max_stalls, 1000)
pass_wake()
flush_counts()
local out = {promoted, recovered}
local ids = redis.call('ZRANGEBYSCORE', P .. 'finished', '-inf', NOW - retention, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  local job = redis.call('HGETALL', P .. 'job:' .. id)
  if #job == 0 then
    redis.call('ZREM', P .. 'finished', id)
  else
    out[#out + 1] = job
  end
end
return out
