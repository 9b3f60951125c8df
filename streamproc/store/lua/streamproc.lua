#!lua name=streamproc
--[[
Every state change of a workflow, as Redis Functions (FUNCTION LOAD once, FCALL after), so
each one is atomic and no runtime role needs EVAL.  Key names are documented in keys.py; no
key is built here.

Calling convention shared by every function:
  KEYS[1] events stream   KEYS[2] delayed zset   KEYS[3] done stream
  KEYS[4] agents set      KEYS[5] dead-done stream
  KEYS[4+2i], KEYS[5+2i]  tasks stream and dead stream of agent i (i = 1..n)
  KEYS[6+2n ..]           per item, in item order: its workflow hash, then that workflow's
                          history stream (every event of the workflow, kept as long as it)
  ARGV[1] = n, ARGV[1+i] = name of agent i, ARGV[2+n ..] function-specific (see each header)

Idempotency: a task's completion or requeue applies only while the task is 'queued' with the
same attempt number the event carries, so redelivered, duplicated and superseded (zombie)
events change nothing.
]]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(s)
  local out = {}
  if s then
    for word in string.gmatch(s, '%S+') do out[#out + 1] = word end
  end
  return out
end

local function context(keys, args)
  local n = tonumber(args[1])
  local ctx = {events = keys[1], delayed = keys[2], done = keys[3], agents = keys[4],
               dead_done = keys[5], streams = {}, dead = {}, now = now_ms(), ended = {},
               wf_base = 5 + 2 * n, arg_base = 1 + n}
  for i = 1, n do
    ctx.streams[args[1 + i]] = keys[4 + 2 * i]
    ctx.dead[args[1 + i]] = keys[5 + 2 * i]
  end
  ctx.history = {}
  for i = ctx.wf_base + 1, #keys, 2 do ctx.history[keys[i]] = keys[i + 1] end
  return ctx
end

-- HMGET in chunks: Lua's unpack() has a small stack limit.
local function hmget(key, fields)
  local out = {}
  for first = 1, #fields, 1000 do
    local part = redis.call('HMGET', key, unpack(fields, first, math.min(first + 999, #fields)))
    for _, v in ipairs(part) do out[#out + 1] = v end
  end
  return out
end

-- A lifecycle event, on the shard's events stream and on the workflow's own history.
local function emit(ctx, key, wf, kind, task, att, at, ...)
  local fields
  if task then
    fields = {'v', '1', 'kind', kind, 'wf', wf, 'task', task, 'att', att, 'at', at, ...}
  else
    fields = {'v', '1', 'kind', kind, 'wf', wf, 'at', at, ...}
  end
  redis.call('XADD', ctx.events, '*', unpack(fields))
  redis.call('XADD', ctx.history[key], '*', unpack(fields))
end

-- Agents of the given tasks that this call has no stream keys for (the caller's agent list is
-- stale: it reloads the agents set and retries).
local function missing_agent(ctx, key, tasks)
  if #tasks == 0 then return nil end
  local fields = {}
  for i, t in ipairs(tasks) do fields[i] = 'g:' .. t end
  for _, agent in ipairs(hmget(key, fields)) do
    if agent and not ctx.streams[agent] then return agent end
  end
  return nil
end

-- XADD the task's current attempt to its agent's stream, with its input and its needs' results.
local function publish(ctx, key, wf, t)
  local f = redis.call('HMGET', key, 'g:' .. t, 'i:' .. t, 'n:' .. t, 'a:' .. t, 'T:' .. t)
  local deps = '{}'
  local needs = split(f[3])
  if #needs > 0 then
    local fields = {}
    for i, dep in ipairs(needs) do fields[i] = 'r:' .. dep end
    local results = hmget(key, fields)
    local parts = {}
    for i, dep in ipairs(needs) do parts[i] = '"' .. dep .. '":' .. (results[i] or 'null') end
    deps = '{' .. table.concat(parts, ',') .. '}'
  end
  local id = redis.call('XADD', ctx.streams[f[1]], '*', 'v', '1', 'wf', wf, 'task', t,
                        'agent', f[1], 'att', f[4], 'in', f[2], 'deps', deps, 'to', f[5])
  redis.call('HSET', key, 's:' .. t, 'queued', 'q:' .. t, ctx.now, 'm:' .. t, id)
end

local function append_history(key, t, record)
  local history = cjson.decode(redis.call('HGET', key, 'h:' .. t) or '[]')
  history[#history + 1] = record
  redis.call('HSET', key, 'h:' .. t, cjson.encode(history))
end

-- A finished workflow's hash and history expire after its ttl (ms, 0: never).
local function expire(ctx, key, ttl)
  ttl = tonumber(ttl or '0')
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
    redis.call('PEXPIRE', ctx.history[key], ttl)
  end
end

-- Counts the ending in ctx.ended, which the functions return for the caller's metrics.
local function finish(key, status, ctx, reason)
  ctx.ended[status] = (ctx.ended[status] or 0) + 1
  redis.call('HSET', key, 'status', status, 'ended', ctx.now, 'reason', reason or '')
  expire(ctx, key, redis.call('HGET', key, 'ttl'))
end

-- The workflow fails: tasks not yet published are skipped; queued ones may still finish, but
-- nothing new is published.
local function skip_unpublished(ctx, key, wf, order, states)
  for i, t in ipairs(order) do
    if states[i] == 'waiting' or states[i] == 'delayed' then
      redis.call('HSET', key, 's:' .. t, 'skipped')
      if states[i] == 'delayed' then redis.call('ZREM', ctx.delayed, wf .. ' ' .. t) end
    end
  end
end

local function task_states(key, order)
  local fields = {}
  for i, t in ipairs(order) do fields[i] = 's:' .. t end
  return hmget(key, fields)
end

local function fail_workflow(ctx, key, wf, reason)
  local order = split(redis.call('HGET', key, 'order'))
  skip_unpublished(ctx, key, wf, order, task_states(key, order))
  finish(key, 'failed', ctx, reason)
  emit(ctx, key, wf, 'failed', nil, nil, ctx.now, 'reason', reason)
end

local function dead_letter(ctx, key, wf, t, agent, att, reason)
  local f = redis.call('HMGET', key, 'e:' .. t, 'h:' .. t, 'm:' .. t, 'k:' .. t)
  redis.call('XADD', ctx.dead[agent], '*', 'v', '1', 'wf', wf, 'task', t, 'agent', agent,
             'att', att, 'deliveries', att, 'lost', f[4] or '0', 'reason', reason,
             'error', f[1] or '', 'history', f[2] or '[]', 'entry', f[3] or '', 'at', ctx.now)
  redis.call('HSET', key, 's:' .. t, 'failed')
  emit(ctx, key, wf, 'task_failed', t, att, ctx.now, 'error', reason, 'final', '1')
  fail_workflow(ctx, key, wf, 'task ' .. t .. ' dead-lettered: ' .. reason)
end

-- `left` and `ttl` are the hash's fields as read before this completion: the task's outcome,
-- the count of tasks left and, for the last one, the workflow's end go in one HSET.
local function apply_done(ctx, key, wf, t, att, out, began, ended, by, dependents, status, left,
                          ttl)
  left = tonumber(left or '0') - 1
  local completes = left == 0 and status == 'running'
  local fields = {'s:' .. t, 'done', 'r:' .. t, out, 'b:' .. t, began, 'z:' .. t, ended,
                  'w:' .. t, by, 'left', left}
  if completes then
    for _, v in ipairs({'status', 'completed', 'ended', ctx.now, 'reason', ''}) do
      fields[#fields + 1] = v
    end
  end
  redis.call('HSET', key, unpack(fields))
  emit(ctx, key, wf, 'task_started', t, att, began, 'by', by)
  emit(ctx, key, wf, 'task_done', t, att, ended)
  if status ~= 'running' then return end
  for _, child in ipairs(dependents) do
    if redis.call('HINCRBY', key, 'c:' .. child, -1) == 0 then publish(ctx, key, wf, child) end
  end
  if completes then
    ctx.ended.completed = (ctx.ended.completed or 0) + 1  -- finish()'s count, in the HSET above
    expire(ctx, key, ttl)
    emit(ctx, key, wf, 'completed', nil, nil, ctx.now)
  end
end

local function apply_error(ctx, key, wf, t, att, kind, err, began, ended, by, retry)
  local f = redis.call('HMGET', key, 'status', 'R:' .. t, 'g:' .. t)
  local failures = redis.call('HINCRBY', key, 'f:' .. t, 1)
  redis.call('HSET', key, 'e:' .. t, err, 'b:' .. t, began, 'z:' .. t, ended, 'w:' .. t, by)
  append_history(key, t, {attempt = tonumber(att), outcome = kind, error = err, at = ended, by = by})
  emit(ctx, key, wf, 'task_started', t, att, began, 'by', by)
  if f[1] ~= 'running' then
    redis.call('HSET', key, 's:' .. t, 'failed')
    emit(ctx, key, wf, 'task_failed', t, att, ended, 'error', err, 'final', '1')
  elseif kind == 'error' and failures <= tonumber(f[2]) then
    local delay = math.floor(math.min(retry.cap, retry.base * 2 ^ (failures - 1)) * retry.jitter)
    redis.call('HSET', key, 's:' .. t, 'delayed')
    redis.call('ZADD', ctx.delayed, ctx.now + delay, wf .. ' ' .. t)
    emit(ctx, key, wf, 'task_failed', t, att, ended, 'error', err, 'retry_ms', delay)
  else
    local why = err
    if kind == 'error' then why = 'failed ' .. failures .. ' times, last: ' .. err end
    dead_letter(ctx, key, wf, t, f[3], att, why)
  end
end

-- The task and every task downstream of it, each once, the task first.
local function downstream(key, root)
  local order, seen = {root}, {[root] = true}
  local i = 1
  while i <= #order do
    for _, child in ipairs(split(redis.call('HGET', key, 'd:' .. order[i]))) do
      if not seen[child] then
        seen[child] = true
        order[#order + 1] = child
      end
    end
    i = i + 1
  end
  return order, seen
end

-- Put a task back to waiting as a new attempt: a completion of the attempt in flight, if any,
-- is then refused as superseded.
local function reset(ctx, key, wf, d, cause, round)
  local f = redis.call('HMGET', key, 's:' .. d, 'a:' .. d)
  if f[1] == 'done' then redis.call('HINCRBY', key, 'left', 1) end
  if f[1] == 'delayed' then redis.call('ZREM', ctx.delayed, wf .. ' ' .. d) end
  if f[1] ~= 'waiting' then
    if d ~= cause then
      append_history(key, d, {attempt = tonumber(f[2]), outcome = 'reset', cause = cause,
                              round = round, at = ctx.now})
    end
    redis.call('HINCRBY', key, 'a:' .. d, 1)
  end
  redis.call('HSET', key, 's:' .. d, 'waiting')
  redis.call('HDEL', key, 'r:' .. d, 'b:' .. d, 'z:' .. d, 'w:' .. d)
end

-- Re-run `target` with a new input, and everything downstream of it (the requesting task `t`
-- among them), unless the round limit is reached or `target` is not upstream of `t`.
-- Returns false when refused, after recording why.
local function adjust(ctx, key, wf, t, att, status, target, why, input)
  local order, seen = downstream(key, target)
  local f = redis.call('HMGET', key, 'j:' .. target, 'rounds')
  local round, limit = tonumber(f[1] or '0') + 1, tonumber(f[2] or '0')
  local refusal
  if status ~= 'running' then refusal = 'workflow is ' .. status
  elseif not seen[t] then refusal = 'task ' .. target .. ' is not upstream of ' .. t
  elseif round > limit then refusal = 'round limit ' .. limit .. ' reached for ' .. target end
  if refusal then
    append_history(key, t, {attempt = tonumber(att), outcome = 'adjust refused',
                            target = target, reason = why, refusal = refusal, at = ctx.now})
    emit(ctx, key, wf, 'adjust_refused', t, att, ctx.now, 'target', target, 'reason', refusal)
    return false
  end
  redis.call('HSET', key, 'j:' .. target, round)
  local previous = redis.call('HGET', key, 'r:' .. target) or ''
  append_history(key, target, {attempt = tonumber(redis.call('HGET', key, 'a:' .. target)),
                               outcome = 'adjusted', reason = why, by = t, round = round,
                               previous = string.sub(previous, 1, 500), at = ctx.now})
  for _, d in ipairs(order) do reset(ctx, key, wf, d, target, round) end
  for i = 2, #order do
    local d = order[i]
    local needs = split(redis.call('HGET', key, 'n:' .. d))
    local unmet = 0
    for _, need in ipairs(needs) do
      if seen[need] or redis.call('HGET', key, 's:' .. need) ~= 'done' then unmet = unmet + 1 end
    end
    redis.call('HSET', key, 'c:' .. d, unmet)
  end
  redis.call('HSET', key, 'i:' .. target, input, 'c:' .. target, 0)
  local next_att = redis.call('HGET', key, 'a:' .. target)
  emit(ctx, key, wf, 'task_adjusted', target, next_att, ctx.now, 'by', t, 'reason', why,
       'round', round)
  publish(ctx, key, wf, target)
  return true
end

-- The agent cannot make progress yet: wait as a delayed retry that uses up no retry, until
-- the task has waited give_up_ms since its first wait.
local function apply_wait(ctx, key, wf, t, att, reason, began, ended, by, retry_ms, give_up_ms,
                          status, agent)
  redis.call('HSET', key, 'e:' .. t, reason, 'b:' .. t, began, 'z:' .. t, ended, 'w:' .. t, by)
  emit(ctx, key, wf, 'task_started', t, att, began, 'by', by)
  if status ~= 'running' then
    redis.call('HSET', key, 's:' .. t, 'failed')
    emit(ctx, key, wf, 'task_failed', t, att, ended, 'error', reason, 'final', '1')
    return
  end
  local first = tonumber(redis.call('HGET', key, 'W:' .. t) or '0')
  if first == 0 then
    first = ctx.now
    redis.call('HSET', key, 'W:' .. t, first)
  end
  local waited = ctx.now - first
  if waited + tonumber(retry_ms) > tonumber(give_up_ms) then
    dead_letter(ctx, key, wf, t, agent, att,
                'gave up after waiting ' .. math.floor(waited / 1000) .. 's: ' .. reason)
    return
  end
  redis.call('HSET', key, 's:' .. t, 'delayed')
  redis.call('ZADD', ctx.delayed, ctx.now + tonumber(retry_ms), wf .. ' ' .. t)
  emit(ctx, key, wf, 'task_waiting', t, att, ended, 'reason', reason, 'retry_ms', retry_ms)
end

local function reject_completion(ctx, wf, t, att, entry, reason, out)
  redis.call('XADD', ctx.dead_done, '*', 'v', '1', 'wf', wf, 'task', t, 'att', att,
             'entry', entry, 'reason', reason, 'output', out, 'at', ctx.now)
end

--[[ sp_submit: create workflows and publish their root tasks.
  ARGV: per workflow: its id, spec digest, root task ids (space separated), the number n of
        hash arguments, then n field/value arguments of its hash.  KEYS: each workflow's hash.
  Returns, per workflow: 1 created, 0 already there with this digest, -1 already there with
  another spec. ]]
local function submit(keys, args)
  local ctx = context(keys, args)
  redis.call('SADD', ctx.agents, unpack(args, 2, 1 + tonumber(args[1])))
  local outcomes, item, a = {}, 0, ctx.arg_base + 1
  while a <= #args do
    item = item + 1
    local key = keys[ctx.wf_base + 2 * item - 1]
    local wf, digest, roots, n = args[a], args[a + 1], args[a + 2], tonumber(args[a + 3])
    local existing = redis.call('HGET', key, 'digest')
    if existing then
      outcomes[item] = existing == digest and 0 or -1
    else
      local fields = {'digest', digest, 'status', 'running', 'created', ctx.now}
      for i = a + 4, a + 3 + n do fields[#fields + 1] = args[i] end
      for first = 1, #fields, 1000 do
        redis.call('HSET', key, unpack(fields, first, math.min(first + 999, #fields)))
      end
      emit(ctx, key, wf, 'submitted', nil, nil, ctx.now)
      for _, t in ipairs(split(roots)) do publish(ctx, key, wf, t) end
      outcomes[item] = 1
    end
    a = a + 4 + n
  end
  return outcomes
end

--[[ sp_resolve: apply a batch of completions from the done stream, then XACK them.
  ARGV: retry base ms, retry cap ms, jitter factor, then 10 per completion: kind ('ok' |
        'adjust' | 'error' | 'fatal'), workflow, task, attempt, output or error text, began
        ms, ended ms, consumer, done-stream entry id, the task entry it ran ('' when not
        known); 'adjust' adds 3: target task, reason, new input; 'wait' adds 2: retry in ms,
        give up after ms.  KEYS: the workflow hash of each completion.
  A completion applies only to the entry the task was last published as (m:<task>), not
  just to its attempt number: after Redis lost recent writes (a failover, a torn AOF tail)
  the same attempt can be published again as a new entry, and a completion of the lost one,
  computed from results that no longer exist, is then refused as stale.
  Returns {consumed, stale, missing agent or '', workflows completed, workflows failed}: it
  stops before a completion whose task or dependents use an agent it has no keys for, leaving
  that one and the rest unacknowledged. ]]
local function resolve(keys, args)
  local ctx = context(keys, args)
  local b = ctx.arg_base
  local retry = {base = tonumber(args[b + 1]), cap = tonumber(args[b + 2]),
                 jitter = tonumber(args[b + 3])}
  local stale, acked = 0, {}
  local item, a = 0, b + 4
  while a <= #args do
    item = item + 1
    local kind, wf, t, att = args[a], args[a + 1], args[a + 2], args[a + 3]
    local source = args[a + 9]
    local stride = 10
    if kind == 'adjust' then stride = 13 elseif kind == 'wait' then stride = 12 end
    local key = keys[ctx.wf_base + 2 * item - 1]
    local f = redis.call('HMGET', key, 'status', 's:' .. t, 'a:' .. t, 'g:' .. t, 'd:' .. t,
                         'm:' .. t, 'left', 'ttl')
    if not f[1] then
      reject_completion(ctx, wf, t, att, args[a + 8], 'unknown workflow', args[a + 4])
    elseif not f[4] then
      reject_completion(ctx, wf, t, att, args[a + 8], 'unknown task', args[a + 4])
    elseif f[2] ~= 'queued' or f[3] ~= att or (source ~= '' and f[6] ~= source) then
      stale = stale + 1
    else
      local dependents = split(f[5])
      local missing = missing_agent(ctx, key, dependents)
      if kind == 'adjust' then missing = missing or missing_agent(ctx, key, {args[a + 10]}) end
      if missing or not ctx.dead[f[4]] then
        if #acked > 0 then redis.call('XACK', ctx.done, 'resolver', unpack(acked)) end
        return {#acked, stale, missing or f[4], ctx.ended.completed or 0, ctx.ended.failed or 0}
      end
      if kind == 'adjust' and adjust(ctx, key, wf, t, att, f[1], args[a + 10], args[a + 11],
                                     args[a + 12]) then
        emit(ctx, key, wf, 'task_started', t, att, args[a + 5], 'by', args[a + 7])
        emit(ctx, key, wf, 'task_done', t, att, args[a + 6], 'adjusting', args[a + 10])
      elseif kind == 'wait' then
        apply_wait(ctx, key, wf, t, att, args[a + 4], args[a + 5], args[a + 6], args[a + 7],
                   args[a + 10], args[a + 11], f[1], f[4])
      elseif kind == 'ok' or kind == 'adjust' then
        apply_done(ctx, key, wf, t, att, args[a + 4], args[a + 5], args[a + 6], args[a + 7],
                   dependents, f[1], f[7], f[8])
      else
        apply_error(ctx, key, wf, t, att, kind, args[a + 4], args[a + 5], args[a + 6],
                    args[a + 7], retry)
      end
    end
    acked[#acked + 1] = args[a + 8]
    a = a + stride
  end
  if #acked > 0 then redis.call('XACK', ctx.done, 'resolver', unpack(acked)) end
  return {#acked, stale, '', ctx.ended.completed or 0, ctx.ended.failed or 0}
end

--[[ sp_requeue: take tasks back from a consumer (reclaimed after its visibility timeout, or
  handed back on shutdown) and publish them as a new attempt, so a late completion of the old
  attempt is refused.  Every entry is XACKed from its agent's group.
  ARGV: reason ('reclaimed' | 'handed back'), max lost deliveries, then 5 per entry: entry id,
        workflow, task, attempt, agent.  KEYS: the workflow hash of each entry.
  Returns {tasks requeued or dead-lettered, workflows failed by a dead letter}. ]]
local function requeue(keys, args)
  local ctx = context(keys, args)
  local b = ctx.arg_base
  local reason, max_lost = args[b + 1], tonumber(args[b + 2])
  local moved, item = 0, 0
  for a = b + 3, #args, 5 do
    item = item + 1
    local id, wf, t, att, agent = args[a], args[a + 1], args[a + 2], args[a + 3], args[a + 4]
    local key = keys[ctx.wf_base + 2 * item - 1]
    redis.call('XACK', ctx.streams[agent], agent, id)
    local f = redis.call('HMGET', key, 'status', 's:' .. t, 'a:' .. t)
    if f[1] == 'running' and f[2] == 'queued' and f[3] == att then
      moved = moved + 1
      local lost = 0
      if reason == 'reclaimed' then
        lost = redis.call('HINCRBY', key, 'k:' .. t, 1)
        append_history(key, t, {attempt = tonumber(att), outcome = 'lost', at = ctx.now})
      end
      if lost >= max_lost then
        dead_letter(ctx, key, wf, t, agent, att,
                    'lost ' .. lost .. ' deliveries: its worker died or stalled each time')
      else
        local next_att = redis.call('HINCRBY', key, 'a:' .. t, 1)
        publish(ctx, key, wf, t)
        emit(ctx, key, wf, 'task_requeued', t, next_att, ctx.now, 'reason', reason)
      end
    end
  end
  return {moved, ctx.ended.failed or 0}
end

--[[ sp_release: publish delayed retries that are due.
  ARGV: 2 per item: workflow, task.  KEYS: the workflow hash of each item.
  Returns {released, missing agent or ''}; an item whose agent has no keys stays delayed. ]]
local function release(keys, args)
  local ctx = context(keys, args)
  local released, item = 0, 0
  for a = ctx.arg_base + 1, #args, 2 do
    item = item + 1
    local wf, t = args[a], args[a + 1]
    local key = keys[ctx.wf_base + 2 * item - 1]
    local member = wf .. ' ' .. t
    local score = redis.call('ZSCORE', ctx.delayed, member)
    if score and tonumber(score) <= ctx.now then
      local f = redis.call('HMGET', key, 'status', 's:' .. t, 'g:' .. t)
      if f[3] and not ctx.streams[f[3]] then return {released, f[3]} end
      redis.call('ZREM', ctx.delayed, member)
      if f[1] == 'running' and f[2] == 'delayed' then
        local att = redis.call('HINCRBY', key, 'a:' .. t, 1)
        publish(ctx, key, wf, t)
        emit(ctx, key, wf, 'task_retried', t, att, ctx.now)
        released = released + 1
      end
    end
  end
  return {released, ''}
end

redis.register_function('sp_submit', submit)
redis.register_function('sp_resolve', resolve)
redis.register_function('sp_requeue', requeue)
redis.register_function('sp_release', release)

-- Tasks not yet published are skipped (and leave the delayed set); queued ones may finish.
--[[ sp_cancel: stop a running workflow.  Tasks not yet published are skipped; queued and
  running ones may finish, and their outcomes are recorded, but nothing downstream of them is
  published (sp_resolve publishes only for a running workflow).  Finished workflows expire
  after their ttl, as completed and failed ones do.
  ARGV: workflow id, reason.  KEYS: the workflow hash (the call names no agents).
  Returns 1 cancelled, 0 already finished (completed, failed or cancelled), -1 no such
  workflow. ]]
local function cancel(keys, args)
  local ctx = context(keys, args)
  local key, b = keys[ctx.wf_base + 1], ctx.arg_base
  local wf, reason = args[b + 1], args[b + 2]
  local status = redis.call('HGET', key, 'status')
  if not status then return -1 end
  if status ~= 'running' then return 0 end
  local order = split(redis.call('HGET', key, 'order'))
  skip_unpublished(ctx, key, wf, order, task_states(key, order))
  finish(key, 'cancelled', ctx, reason)
  emit(ctx, key, wf, 'cancelled', nil, nil, ctx.now, 'reason', reason)
  return 1
end

-- Why a dead entry cannot revive its workflow, or nil when it can.
local function revive_refusal(ctx, key, id, agent, wf, t)
  if not ctx.dead[agent] then return 'no dead-letter stream given for agent ' .. agent end
  local found = redis.call('XRANGE', ctx.dead[agent], id, id)
  if #found == 0 then return 'no dead letter ' .. id .. ' for agent ' .. agent end
  local entry = {}
  local flat = found[1][2]
  for i = 1, #flat, 2 do entry[flat[i]] = flat[i + 1] end
  if entry.wf ~= wf or entry.task ~= t then
    return 'dead letter ' .. id .. ' is not for task ' .. t .. ' of workflow ' .. wf
  end
  local f = redis.call('HMGET', key, 'status', 's:' .. t)
  if not f[1] then return 'workflow ' .. wf .. ' no longer exists (finished ones expire)' end
  if f[1] ~= 'failed' then return 'workflow ' .. wf .. ' is ' .. f[1] .. ', not failed' end
  if f[2] ~= 'failed' then
    return 'task ' .. t .. ' is ' .. tostring(f[2] or 'unknown') .. ', not failed'
  end
  return nil
end

local function unmet_needs(key, t)
  local unmet = 0
  for _, need in ipairs(split(redis.call('HGET', key, 'n:' .. t))) do
    if redis.call('HGET', key, 's:' .. need) ~= 'done' then unmet = unmet + 1 end
  end
  return unmet
end

-- Bring one failed or skipped task back: failed tasks start over with no failures counted;
-- a task whose attempt was ever published moves to a new attempt, so a stray completion of
-- the old one is refused.  Published at once when its needs are done, else it waits.
local function revive_task(ctx, key, wf, t, state)
  local f = redis.call('HMGET', key, 'a:' .. t, 'm:' .. t)
  local att = f[1]
  if state == 'failed' then
    redis.call('HSET', key, 'f:' .. t, 0, 'k:' .. t, 0)
    redis.call('HDEL', key, 'W:' .. t)
    append_history(key, t, {attempt = tonumber(att), outcome = 'requeued',
                            reason = 'from dead letters', at = ctx.now})
  end
  if f[2] then att = redis.call('HINCRBY', key, 'a:' .. t, 1) end
  local unmet = unmet_needs(key, t)
  redis.call('HSET', key, 'c:' .. t, unmet, 's:' .. t, 'waiting')
  if unmet > 0 then return end
  publish(ctx, key, wf, t)
  local why = 'workflow resumed'
  if state == 'failed' then why = 'from dead letters' end
  emit(ctx, key, wf, 'task_requeued', t, att, ctx.now, 'reason', why)
end

--[[ sp_revive: resume a workflow that failed when a task was dead-lettered, once the cause is
  fixed.  The workflow runs again (its expiry removed); every failed task starts over as a new
  attempt with its failure counters cleared; skipped tasks wait again, their unmet needs
  recounted, and those whose needs are all done are published.  The dead entry is deleted.
  All or nothing: a refused call changes nothing.
  ARGV: dead entry id, its agent, workflow, task.  KEYS: the workflow hash; the dead stream is
        that of the given agent, so the call's agents include it and every agent of the
        workflow.
  Returns {1, ''} revived, {0, why} refused, {-1, agent} an agent of the workflow has no keys
  in this call (the caller adds it and calls again). ]]
local function revive(keys, args)
  local ctx = context(keys, args)
  local key, b = keys[ctx.wf_base + 1], ctx.arg_base
  local id, agent, wf, t = args[b + 1], args[b + 2], args[b + 3], args[b + 4]
  local refusal = revive_refusal(ctx, key, id, agent, wf, t)
  if refusal then return {0, refusal} end
  local order = split(redis.call('HGET', key, 'order'))
  local missing = missing_agent(ctx, key, order)
  if missing then return {-1, missing} end
  local states = task_states(key, order)
  redis.call('HSET', key, 'status', 'running')
  redis.call('HDEL', key, 'reason', 'ended')
  redis.call('PERSIST', key)
  redis.call('PERSIST', ctx.history[key])
  emit(ctx, key, wf, 'resumed', nil, nil, ctx.now, 'reason',
       'task ' .. t .. ' requeued from dead letters')
  for i, d in ipairs(order) do
    if states[i] == 'failed' or states[i] == 'skipped' then
      revive_task(ctx, key, wf, d, states[i])
    end
  end
  redis.call('XDEL', ctx.dead[agent], id)
  return {1, ''}
end

redis.register_function('sp_cancel', cancel)
redis.register_function('sp_revive', revive)
