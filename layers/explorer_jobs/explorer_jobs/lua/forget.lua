-- forget: delete finished jobs past the retention once the worker has archived them.
-- KEYS[1]  <prefix>finished
-- ARGV[1]  prefix   ARGV[2] retention (ms)   ARGV[3..] job ids
-- Returns  how many were deleted (a job retried since it was listed is kept)
local retention = tonumber(ARGV[2])
local n = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local finished = redis.call('ZSCORE', P .. 'finished', id)
  if finished and tonumber(finished) <= NOW - retention then
    local jkey = P .. 'job:' .. id
    local f = redis.call('HMGET', jkey, 'user', 'type', 'status')
    if f[1] then
      move_count(f[1], f[2], f[3], nil)
      redis.call('ZREM', P .. 'ujobs:' .. f[1], id)
      redis.call('DEL', jkey)
    end
    redis.call('ZREM', P .. 'finished', id)
    n = n + 1
  end
end
flush_counts()
return n
