-- progress: record an active job's progress and message, with a job_progress event.
-- KEYS[1]  <prefix>job:<id>
-- ARGV[1]  prefix   ARGV[2] events maxlen   ARGV[3] job id   ARGV[4] token
-- ARGV[5]  progress 0-100                   ARGV[6] message ('' for none)
-- Returns  1 cancel requested, 0 carry on, -1 the token no longer owns the job (nothing written)
local id, token, progress, message = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local jkey = KEYS[1]
local f = redis.call('HMGET', jkey, 'token', 'status', 'user', 'type', 'cancel')
if f[1] ~= token or f[2] ~= 'active' then return -1 end
redis.call('HSET', jkey, 'progress', progress, 'message', message)
emit(ARGV[2], f[3], 'job_progress', id, f[4], 'active', progress, message, '')
if f[5] == '1' then return 1 end
return 0
