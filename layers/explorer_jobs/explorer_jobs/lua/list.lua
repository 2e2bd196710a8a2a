-- list: one page of a user's jobs, newest first, optionally filtered by status and job type.
-- KEYS[1]  <prefix>ujobs:<user>   (scored by the queue's enqueue sequence: unique, increasing)
-- ARGV[1]  prefix   ARGV[2] cursor: the sequence to continue below ('+inf' for the first page)
-- ARGV[3]  page size   ARGV[4] status filter ('' any)   ARGV[5] type filter ('' any)
-- ARGV[6]  scan budget (entries looked at before answering with a cursor)
-- Returns  {next cursor or '' on the last page, job hashes as flat lists...}
local ukey = KEYS[1]
local max, limit, status, jtype, budget = ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6])
if max ~= '+inf' then max = '(' .. max end
local jobs = {}
local seen = 0
while true do
  local batch = redis.call('ZREVRANGEBYSCORE', ukey, max, '-inf', 'WITHSCORES', 'LIMIT', 0, 100)
  if #batch == 0 then return {'', unpack(jobs)} end
  for i = 1, #batch, 2 do
    local id, seq = batch[i], batch[i + 1]
    seen = seen + 1
    local jkey = P .. 'job:' .. id
    local f = redis.call('HMGET', jkey, 'status', 'type')
    if not f[1] then
      redis.call('ZREM', ukey, id) -- swept by the retention
    elseif (status == '' or f[1] == status) and (jtype == '' or f[2] == jtype) then
      jobs[#jobs + 1] = redis.call('HGETALL', jkey)
    end
    if #jobs >= limit or seen >= budget then
      -- A cursor only when something older is left.
      if #redis.call('ZREVRANGEBYSCORE', ukey, '(' .. seq, '-inf', 'LIMIT', 0, 1) == 0 then seq = '' end
      return {seq, unpack(jobs)}
    end
  end
  max = '(' .. batch[#batch]
end
