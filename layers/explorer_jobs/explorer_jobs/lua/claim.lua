-- claim: settle the jobs a worker finished, promote due delayed jobs, recover stalled leases, then
-- claim up to N queued jobs for the worker, each with a fresh token and a job_started event. A
-- worker holding no suspect may get one suspect among them (in score order); one holding a
-- suspect gets none.
-- KEYS[1]  <prefix>queued
-- ARGV[1]  prefix          ARGV[2] events maxlen   ARGV[3] worker id   ARGV[4] lease (ms)
-- ARGV[5]  max jobs to claim                      ARGV[6] max stalls before a job fails
-- ARGV[7]  settlements, one JSON array (one argument: packing thousands of arguments costs the
--          client more than decoding one string costs Redis), each [id, token, user, type,
--          attempts, max_attempts (as the claim gave them: they cannot change while the job is
--          active), outcome, a, b] where outcome is
--          'c' completed (a = result JSON)
--          'f' failed    (a = error text, b = retry delay ms, or -1 when not retryable)
--          'x' cancelled at a checkpoint (a = message)
--          'r' released by a stopping worker
-- ARGV[8]  '1' when the worker holds a suspect it does not settle in this call (running, or
--          claimed ahead and not started), else '0'
-- ARGV[9]  claim id: new for each call (no '|'), the same when the client sends the call again
--          after a dropped connection lost its reply
-- Returns  {settled, claimed, next_due_ms}: settled[i] = 1 when settlement i was accepted, 0 when
--          the token no longer owns the job; claimed = {id, type, user, data, attempts,
--          max_attempts, opts ("timeout|backoff|backoff_max", seconds), token, stalls} per job,
--          stalls > 0 only for the suspect (its stalls so far), 0 for the others;
--          next_due_ms = -1 if nothing is delayed or leased. A replay of the worker's last call
--          (same claim id) gets that call's reply again and writes nothing.
local maxlen, worker, lease, want, max_stalls = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local claim_id = ARGV[9]

-- A call whose reply a dropped connection lost is sent again by the client. Run twice, it would
-- find its settlements applied (refused: their tokens are spent) and claim other jobs, leaving
-- the first run's to stall. Each call's reply is kept under the worker's key until the next.
local last_key = P .. 'lastclaim:' .. worker
local last = redis.call('GET', last_key)
if last and string.sub(last, 1, #claim_id + 1) == claim_id .. '|' then
  return cjson.decode(string.sub(last, #claim_id + 2))
end
local settlements = cjson.decode(ARGV[7])
local holds_suspect = ARGV[8] == '1'

-- Every move out of `active` clears the token, so a matching token means "still active and ours".
local function settle(id, token, user, jtype, attempts, max_attempts, outcome, a, b)
  local jkey = P .. 'job:' .. id
  local f = redis.call('HMGET', jkey, 'token', 'progress', 'cancel')
  if f[1] ~= token then return 0 end
  local progress = f[2] or 0
  if outcome == 'c' then
    finish(id, jkey, user, jtype, 'active', 'completed', {'result', a, 'progress', 100, 'message', 'completed'})
    emit(maxlen, user, 'job_completed', id, jtype, 'completed', 100, 'completed', ',"result":' .. a)
  elseif outcome == 'f' then
    local delay = tonumber(b)
    if delay < 0 or tonumber(attempts) >= tonumber(max_attempts) then
      finish(id, jkey, user, jtype, 'active', 'failed', {'error', a, 'message', 'failed'})
      emit(maxlen, user, 'job_failed', id, jtype, 'failed', progress, 'failed', ',"error":' .. cjson.encode(a))
    elseif f[3] == '1' then
      -- Cancelled while it ran: a retry would run again what the user cancelled. It ends
      -- cancelled, as a flagged job that stalls or is released does (back_to_queue).
      finish(id, jkey, user, jtype, 'active', 'cancelled', {'message', 'cancelled'})
      emit(maxlen, user, 'job_cancelled', id, jtype, 'cancelled', progress, 'cancelled', '')
    else
      local msg = 'attempt ' .. attempts .. ' of ' .. max_attempts .. ' failed; retrying in '
        .. string.format('%.1f', delay / 1000) .. ' s'
      redis.call('HSET', jkey, 'status', 'delayed', 'error', a, 'message', msg, 'token', '',
        'run_at', NOW + delay, 'progress', 0)
      zrem_later(P .. 'active', id)
      zadd_later(P .. 'delayed', NOW + delay, id)
      move_count(user, jtype, 'active', 'delayed')
      emit(maxlen, user, 'job_retrying', id, jtype, 'delayed', 0, msg, ',"error":' .. cjson.encode(a))
    end
  elseif outcome == 'x' then
    finish(id, jkey, user, jtype, 'active', 'cancelled', {'message', a})
    emit(maxlen, user, 'job_cancelled', id, jtype, 'cancelled', progress, a, '')
  else -- 'r'
    back_to_queue(id, jkey, user, jtype, progress, 'released by a stopping worker', 'job_queued')
  end
  return 1
end

local settled = {}
for i, s in ipairs(settlements) do
  settled[i] = settle(s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9])
end
flush_counts() -- the settled jobs must be out of `active` before stalled leases are looked for

promote_due(maxlen, 1000)
recover_stalled(maxlen, max_stalls, 100)

-- The jobs to claim, most urgent first: up to `want` from `queued` and, for a worker that holds no
-- suspect, the head of `suspect` too when it is among the `want` most urgent (it takes the place
-- of the last queued one). Each pick is {id, from the suspect set}.
local function pick(n)
  local suspect, suspect_score = nil, nil
  if not holds_suspect then
    local head = redis.call('ZRANGE', P .. 'suspect', 0, 0, 'WITHSCORES')
    if head[1] then
      local last = redis.call('ZRANGE', P .. 'queued', n - 1, n - 1, 'WITHSCORES')
      if not last[1] or tonumber(head[2]) < tonumber(last[2]) then
        suspect, suspect_score = head[1], tonumber(head[2])
        redis.call('ZREM', P .. 'suspect', suspect)
        n = n - 1
      end
    end
  end
  local picks = {}
  local popped = n > 0 and redis.call('ZPOPMIN', P .. 'queued', n) or {}
  for i = 1, #popped, 2 do
    if suspect and suspect_score < tonumber(popped[i + 1]) then
      picks[#picks + 1] = {suspect, true}
      suspect = nil
    end
    picks[#picks + 1] = {popped[i], false}
  end
  if suspect then picks[#picks + 1] = {suspect, true} end
  return picks
end

local claimed = {}
if want > 0 then
  for _, p in ipairs(pick(want)) do
    local id = p[1]
    local jkey = P .. 'job:' .. id
    local f = redis.call('HMGET', jkey, 'type', 'user', 'data', 'attempts', 'max_attempts', 'opts', 'stalls')
    if f[1] then
      local attempts = tonumber(f[4] or 0) + 1
      -- attempts grows on every claim, so worker id + attempt is a fencing token no other claim has
      local token = worker .. ':' .. attempts
      local msg = 'attempt ' .. attempts .. ' of ' .. f[5]
      redis.call('HSET', jkey, 'status', 'active', 'attempts', attempts, 'token', token, 'started_at', NOW,
        'message', msg)
      zadd_later(P .. 'active', NOW + lease, id)
      move_count(f[2], f[1], 'queued', 'active')
      emit(maxlen, f[2], 'job_started', id, f[1], 'active', 0, msg, '')
      local stalls = p[2] and math.max(1, tonumber(f[7] or 0)) or 0
      claimed[#claimed + 1] = {id, f[1], f[2], f[3], attempts, f[5], f[6], token, stalls}
    end
  end
end
pass_wake()
flush_counts()
local reply = {settled, claimed, next_due_in()}
-- Kept for two leases (a second at least): a replay comes within the client's retries.
redis.call('SET', last_key, claim_id .. '|' .. cjson.encode(reply), 'PX', math.max(1000, 2 * lease))
return reply
