-- retry: a user queues a failed or cancelled job again under the same id; attempts count on and
-- the job gets a fresh round of attempts.
-- KEYS[1]  <prefix>job:<id>
-- ARGV[1]  prefix   ARGV[2] events maxlen   ARGV[3] job id   ARGV[4] user id ('' = any owner)
-- Returns  {code, job hash as a flat list}; code 'queued' | 'conflict' | 'notfound'
local jkey = KEYS[1]
local id, user = ARGV[3], ARGV[4]
local f = redis.call('HMGET', jkey, 'user', 'status', 'type', 'attempts', 'round_attempts')
if not f[1] or (user ~= '' and f[1] ~= user) then return {'notfound', {}} end
if f[2] ~= 'failed' and f[2] ~= 'cancelled' then return {'conflict', redis.call('HGETALL', jkey)} end
redis.call('HSET', jkey, 'status', 'queued', 'max_attempts', tonumber(f[4]) + tonumber(f[5]),
  'progress', 0, 'message', 'retry requested', 'cancel', 0, 'stalls', 0, 'token', '')
redis.call('HDEL', jkey, 'error', 'result', 'finished_at', 'started_at')
redis.call('ZREM', P .. 'finished', id)
requeue(id, jkey, nil)
move_count(f[1], f[3], f[2], 'queued')
emit(ARGV[2], f[1], 'job_queued', id, f[3], 'queued', 0, 'retry requested', '')
pass_wake()
flush_counts()
return {'queued', redis.call('HGETALL', jkey)}
