-- Shared by every script (prepended by scripts.py). Every script receives the queue's key prefix
-- as ARGV[1] (e.g. "ej:{default}:") and builds the job and user keys from it: they all carry the
-- queue's hash tag, so they live in the slot of KEYS[1] on Redis Cluster.

local P = ARGV[1]
local NOW do
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Score of a queued job: most urgent priority first, then FIFO by enqueue sequence.
local function queued_score(priority, seq)
  return string.format('%.0f', tonumber(priority) * 1e14 + tonumber(seq))
end

-- ISO 8601 UTC with milliseconds and a Z, from epoch ms (days-to-civil, H. Hinnant).
local function iso(ms)
  local s = math.floor(ms / 1000)
  local days = math.floor(s / 86400)
  local rem = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60, ms % 1000)
end

-- Move one job between two states in the per-type counters (every user's and the owner's).
-- Deltas add up in memory and are written once by flush_counts(): a batch of jobs of one type
-- costs a few HINCRBYs per script call, not four per job.
-- DELTAS[user][jtype][status] = n: nested tables, so no field name is built per job.
local DELTAS = {}
local function add_delta(user, jtype, status, n)
  local u = DELTAS[user]
  if not u then u = {}; DELTAS[user] = u end
  local t = u[jtype]
  if not t then t = {}; u[jtype] = t end
  t[status] = (t[status] or 0) + n
end

local function move_count(user, jtype, from, to)
  if from then add_delta(user, jtype, from, -1) end
  if to then add_delta(user, jtype, to, 1) end
end

-- Sorted-set writes wait here too and go out as one variadic ZREM and one ZADD per key: at a
-- batch of jobs a call, a redis.call per job and set is most of a script's cost. Removals are
-- written before additions, which is the order any one job's moves happen in within a call.
local ZREMS, ZADDS = {}, {}
local function zrem_later(key, member)
  local t = ZREMS[key]
  if not t then t = {}; ZREMS[key] = t end
  t[#t + 1] = member
end

local function zadd_later(key, score, member)
  local t = ZADDS[key]
  if not t then t = {}; ZADDS[key] = t end
  t[#t + 1] = score
  t[#t + 1] = member
end

-- unpack() is bounded by Lua's C stack: write in slices.
local function call_sliced(cmd, key, items)
  for i = 1, #items, 4000 do
    redis.call(cmd, key, unpack(items, i, math.min(i + 3999, #items)))
  end
end

-- Every script that moves jobs calls this once, before it reads the sets back or returns.
local function flush_counts()
  for user, types in pairs(DELTAS) do
    for jtype, statuses in pairs(types) do
      for status, n in pairs(statuses) do
        if n ~= 0 then
          local field = jtype .. '|' .. status
          redis.call('HINCRBY', P .. 'counts', field, n)
          redis.call('HINCRBY', P .. 'ucounts:' .. user, field, n)
        end
      end
    end
  end
  DELTAS = {}
  for key, members in pairs(ZREMS) do call_sliced('ZREM', key, members) end
  for key, pairs_ in pairs(ZADDS) do call_sliced('ZADD', key, pairs_) end
  ZREMS, ZADDS = {}, {}
end

-- The time of this call as ISO text, computed once: every event of one call carries it.
local NOW_ISO = nil

-- Append a notification to the owner's stream. `extra` is '' or pre-encoded JSON members that
-- start with a comma (',"result":{...}'): results are stored as JSON already, never re-encoded.
-- Job ids and job type names are plain tokens (checked by the Python side), so they are quoted
-- without a JSON encoder; messages are free text and go through cjson.
local function emit(maxlen, user, etype, id, jtype, status, progress, message, extra)
  if not NOW_ISO then NOW_ISO = iso(NOW) end
  local msg = 'null'
  if message and message ~= '' then msg = cjson.encode(message) end
  local data = '{"type":"' .. etype .. '","jobId":"' .. id .. '","jobType":"' .. jtype
    .. '","status":"' .. status .. '","progress":' .. tostring(progress) .. ',"message":' .. msg
    .. (extra or '') .. ',"timestamp":"' .. NOW_ISO .. '"}'
  return redis.call('XADD', P .. 'events:' .. user, 'MAXLEN', '~', maxlen, '*', 'd', data)
end

-- Hand the wake batons on: while due work waits, keep one marker for the next idle worker. Suspects
-- have a baton of their own, which only a worker holding no suspect waits on: one holding a suspect
-- would be woken for work it may not take, claim nothing, put the marker back, and spin.
local function pass_wake()
  for _, set in ipairs({'queued', 'suspect'}) do
    local wake = (set == 'queued') and P .. 'wake' or P .. 'suspect_wake'
    if redis.call('ZCARD', P .. set) > 0 then
      if redis.call('LLEN', wake) == 0 then redis.call('LPUSH', wake, '1') end
    else
      redis.call('DEL', wake)
    end
  end
end

-- A finished job leaves the live sets and waits in `finished` for the retention sweep.
local function finish(id, jkey, user, jtype, from, to, fields)
  redis.call('HSET', jkey, 'status', to, 'finished_at', NOW, 'token', '', unpack(fields))
  if from == 'active' then zrem_later(P .. 'active', id)
  elseif from == 'queued' then
    redis.call('ZREM', P .. 'queued', id)
    redis.call('ZREM', P .. 'suspect', id)
  elseif from == 'delayed' then redis.call('ZREM', P .. 'delayed', id) end
  zadd_later(P .. 'finished', NOW, id)
  move_count(user, jtype, from, to)
end

-- Put a job (back) at its original place in its priority class: in `queued`, or in `suspect` when
-- its lease ever ran out (stalls > 0: it may be what killed its worker). A worker holds at most
-- one suspect, so a job that kills its worker is never run beside another suspect, and its
-- innocent neighbours, suspects after one stall, are not made to stall with it again.
local function requeue(id, jkey, from)
  local f = redis.call('HMGET', jkey, 'priority', 'seq', 'stalls')
  local set = tonumber(f[3] or 0) > 0 and 'suspect' or 'queued'
  redis.call('ZADD', P .. set, queued_score(f[1], f[2]), id)
  if from == 'active' then redis.call('ZREM', P .. 'active', id)
  elseif from == 'delayed' then redis.call('ZREM', P .. 'delayed', id) end
end

-- An active job goes back to the queue (its worker stopped or died) at its old place, unless
-- its cancellation was requested meanwhile: then it ends cancelled.
local function back_to_queue(id, jkey, user, jtype, progress, message, etype)
  if redis.call('HGET', jkey, 'cancel') == '1' then
    finish(id, jkey, user, jtype, 'active', 'cancelled', {'message', 'cancelled'})
    emit(ARGV[2], user, 'job_cancelled', id, jtype, 'cancelled', progress, 'cancelled', '')
    return
  end
  redis.call('HSET', jkey, 'status', 'queued', 'token', '', 'progress', 0, 'message', message)
  requeue(id, jkey, 'active')
  move_count(user, jtype, 'active', 'queued')
  emit(ARGV[2], user, etype, id, jtype, 'queued', 0, message, '')
end

-- Jobs whose lease ran out (their worker died): back to the queue, counted; failed after too many.
local function recover_stalled(maxlen, max_stalls, limit)
  local ids = redis.call('ZRANGEBYSCORE', P .. 'active', '-inf', NOW, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local jkey = P .. 'job:' .. id
    local f = redis.call('HMGET', jkey, 'user', 'type', 'progress', 'status')
    if not f[1] or f[4] ~= 'active' then
      redis.call('ZREM', P .. 'active', id) -- gone, or it moved on and its set entry is stale
    else
      local stalls = redis.call('HINCRBY', jkey, 'stalls', 1)
      if stalls > max_stalls then
        local err = 'job stalled ' .. stalls .. ' times: its worker stopped renewing the lease'
        finish(id, jkey, f[1], f[2], 'active', 'failed', {'error', err, 'message', 'failed'})
        emit(maxlen, f[1], 'job_failed', id, f[2], 'failed', f[3] or 0, 'failed', ',"error":' .. cjson.encode(err))
      else
        back_to_queue(id, jkey, f[1], f[2], f[3] or 0, 'worker lost; requeued (stall ' .. stalls .. ')', 'job_retrying')
      end
    end
  end
  return #ids
end

-- Delayed jobs whose time has come join the queued set.
local function promote_due(maxlen, limit)
  local ids = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', NOW, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    local jkey = P .. 'job:' .. id
    local f = redis.call('HMGET', jkey, 'user', 'type')
    if not f[1] then
      redis.call('ZREM', P .. 'delayed', id)
    else
      redis.call('HSET', jkey, 'status', 'queued', 'run_at', '')
      requeue(id, jkey, 'delayed')
      move_count(f[1], f[2], 'delayed', 'queued')
      emit(maxlen, f[1], 'job_queued', id, f[2], 'queued', 0, 'due', '')
    end
  end
  return #ids
end

-- Milliseconds until the next delayed job is due or the next lease runs out (-1: nothing pending).
local function next_due_in()
  local best = -1
  for _, set in ipairs({'delayed', 'active'}) do
    local head = redis.call('ZRANGE', P .. set, 0, 0, 'WITHSCORES')
    if head[2] then
      local wait = math.max(0, tonumber(head[2]) - NOW)
      if best < 0 or wait < best then best = wait end
    end
  end
  return best
end
