-- enqueue: add one or many jobs, each with its job_queued event; honours idempotency keys.
-- KEYS[1]  <prefix>queued        (routes the call to the queue's slot)
-- ARGV[1]  prefix                 ARGV[2] events maxlen
-- ARGV[3]  events retention (ms)  ARGV[4] idempotency ttl (ms)
-- ARGV[5]  the jobs, one JSON array of [id, type, user, priority, delay_ms, max_attempts,
--          timeout_s, backoff_s, backoff_max_s, data (JSON text), idempotency key ('' for none),
--          request fingerprint (read only beside a key)], all strings
-- ARGV[6]  rate-limit window ('' for none: "<user>:<window index>")   ARGV[7] its allowance
-- ARGV[8]  the window counter's lifetime (ms)
-- ARGV[9]  precondition key suffix ('' for none; the key is <prefix><suffix>)
-- ARGV[10] the value that key must hold
-- Returns  one {jobId, outcome, status, created_at_ms} per job; outcome 1 = created (a replayed
--          call gets its own jobs as they are now),
--          0 = an earlier job with the same key and request, -1 = same key, other request (409);
--          or a single {'', -2, '', ''} when the caller's rate-limit window is spent (429),
--          or a single {'', -3, '', ''} when the precondition key does not hold its value
--          (checked first: a refused call counts nothing).
local maxlen, retention, idem_ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local jobs = cjson.decode(ARGV[5])
-- A precondition (e.g. "the connection is this user's", cached from the store) is checked in the
-- same call, so a request that passes it needs no other round trip.
if ARGV[9] and ARGV[9] ~= '' and redis.call('GET', P .. ARGV[9]) ~= ARGV[10] then
  return {{'', -3, '', ''}}
end
-- Job ids are new for each call (the caller's uuid4), and a call writes all its jobs or none: a
-- first job that exists already means this is the same call again, replayed by the client because
-- a dropped connection lost the first reply. It answers as the first did and writes nothing twice.
local replay = jobs[1] ~= nil and redis.call('EXISTS', P .. 'job:' .. jobs[1][1]) == 1
-- The rate limit counts in the same call as the enqueue: one round trip per request, not two.
-- A replayed call was counted the first time.
if ARGV[6] ~= '' and not replay then
  local rkey = P .. 'rate:' .. ARGV[6]
  local n = redis.call('INCR', rkey)
  if n == 1 then redis.call('PEXPIRE', rkey, ARGV[8]) end
  if n > tonumber(ARGV[7]) then return {{'', -2, '', ''}} end
end
local out = {}
local woke = false
local users = {}
for _, j in ipairs(jobs) do
  local id, jtype, user, priority = j[1], j[2], j[3], j[4]
  local delay, idem, fp = tonumber(j[5]), j[11], j[12]
  local existing = nil
  local replayed = replay and redis.call('HMGET', P .. 'job:' .. id, 'status', 'created_at') or {false}
  if replayed[1] then
    existing = id
    out[#out + 1] = {id, 1, replayed[1], replayed[2]}
  elseif idem ~= '' then
    -- The user's length first: user ids may hold ':' too, and ("a:b", key "c") must not
    -- share ("a", key "b:c")'s key.
    local ikey = P .. 'idem:' .. #user .. ':' .. user .. ':' .. idem
    local v = redis.call('GET', ikey)
    if v then
      local sep = string.find(v, '|', 1, true)
      local eid = string.sub(v, 1, sep - 1)
      if redis.call('EXISTS', P .. 'job:' .. eid) == 1 then
        existing = eid
        if string.sub(v, sep + 1) == fp then
          local f = redis.call('HMGET', P .. 'job:' .. eid, 'status', 'created_at')
          out[#out + 1] = {eid, 0, f[1], f[2]}
        else
          out[#out + 1] = {eid, -1, '', ''}
        end
      end
    end
    if not existing then redis.call('SET', ikey, id .. '|' .. fp, 'PX', idem_ttl) end
  end
  if not existing then
    local seq = redis.call('INCR', P .. 'seq')
    local status, run_at, set, score = 'queued', '', P .. 'queued', nil
    if delay > 0 then
      status, run_at, set = 'delayed', NOW + delay, P .. 'delayed'
      score = run_at
    else
      score = queued_score(priority, seq)
    end
    redis.call('HSET', P .. 'job:' .. id, 'id', id, 'type', jtype, 'user', user, 'status', status,
      'priority', priority, 'seq', seq, 'attempts', 0, 'max_attempts', j[6],
      'round_attempts', j[6], 'opts', j[7] .. '|' .. j[8] .. '|' .. j[9], 'data', j[10],
      'created_at', NOW, 'run_at', run_at)
    if #jobs == 1 then
      -- The batching of common.lua (zadd_later, move_count) pays off over many jobs; to a call
      -- of one, the usual kind, its tables cost about 2 µs of 24 (bench/enqueue_breakdown.py).
      redis.call('ZADD', set, score, id)
      redis.call('ZADD', P .. 'ujobs:' .. user, seq, id)
      local field = jtype .. '|' .. status
      redis.call('HINCRBY', P .. 'counts', field, 1)
      redis.call('HINCRBY', P .. 'ucounts:' .. user, field, 1)
    else
      zadd_later(set, score, id)
      zadd_later(P .. 'ujobs:' .. user, seq, id)
      move_count(user, jtype, nil, status)
    end
    emit(maxlen, user, 'job_queued', id, jtype, status, 0, nil, '')
    users[user] = true
    woke = true
    out[#out + 1] = {id, 1, status, NOW}
  end
end
if woke and redis.call('LLEN', P .. 'wake') == 0 then redis.call('LPUSH', P .. 'wake', '1') end
-- Age-trim the streams written here (length is trimmed on every append).
for user in pairs(users) do
  local skey = P .. 'events:' .. user
  redis.call('XTRIM', skey, 'MINID', '~', (NOW - retention) .. '-0')
  redis.call('PEXPIRE', skey, retention)
end
flush_counts()
return out
