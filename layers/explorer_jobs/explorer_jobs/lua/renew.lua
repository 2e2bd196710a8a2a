-- renew: extend the leases of the jobs a worker still runs, and tell it which were cancelled.
-- KEYS[1]  <prefix>active
-- ARGV[1]  prefix   ARGV[2] lease (ms)   ARGV[3..] pairs of (job id, token)
-- Returns  per pair: 1 cancel requested, 0 carry on, -1 the lease is lost (token no longer owns it)
local lease = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local f = redis.call('HMGET', P .. 'job:' .. id, 'token', 'status', 'cancel')
  if f[1] == token and f[2] == 'active' then
    redis.call('ZADD', P .. 'active', 'XX', NOW + lease, id)
    out[#out + 1] = (f[3] == '1') and 1 or 0
  else
    out[#out + 1] = -1
  end
end
return out
