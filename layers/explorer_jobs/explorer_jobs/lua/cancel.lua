-- cancel: a user cancels a job. Queued or delayed: cancelled at once. Active: flagged, and the
-- processor stops at its next checkpoint. Finished: refused.
-- KEYS[1]  <prefix>job:<id>
-- ARGV[1]  prefix   ARGV[2] events maxlen   ARGV[3] job id   ARGV[4] user id ('' = any owner)
-- ARGV[5]  message
-- Returns  {code, job hash as a flat list}; code 'cancelled' | 'flagged' | 'conflict' | 'notfound'
local jkey = KEYS[1]
local id, user, message = ARGV[3], ARGV[4], ARGV[5]
local f = redis.call('HMGET', jkey, 'user', 'status', 'type', 'progress')
if not f[1] or (user ~= '' and f[1] ~= user) then return {'notfound', {}} end
local code
if f[2] == 'queued' or f[2] == 'delayed' then
  finish(id, jkey, f[1], f[3], f[2], 'cancelled', {'message', message})
  emit(ARGV[2], f[1], 'job_cancelled', id, f[3], 'cancelled', f[4] or 0, message, '')
  code = 'cancelled'
elseif f[2] == 'active' then
  redis.call('HSET', jkey, 'cancel', 1)
  code = 'flagged'
else
  code = 'conflict'
end
pass_wake()
flush_counts()
return {code, redis.call('HGETALL', jkey)}
