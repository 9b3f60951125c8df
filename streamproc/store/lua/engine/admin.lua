--[[ admin.lua: sp_cancel and sp_revive, what an operator asks of a workflow, and sp_expire,
  what its deadline does.

sp_cancel: stop a running workflow.  Tasks not yet published are skipped (and leave the
  delayed set); queued and running ones may finish, and their outcomes are recorded, but
  nothing downstream of them is published (sp_resolve publishes only for a running
  workflow).  Finished workflows expire after their ttl, as completed and failed ones do.
  KEYS  the shared head (common.lua), then the workflow's hash, history and output streams
        (the call names no agents)
  ARGV  0 (no agents), workflow id, reason
  returns 1 cancelled, 0 already finished (completed, failed or cancelled), -1 no such
        workflow

sp_revive: resume a workflow that failed when a task was dead-lettered, once the cause is
  fixed.  The workflow runs again (its expiry removed, its history going on; its deadline,
  if it has a timeout, watched again: one whose deadline passed is refused, as it would fail
  again at once); every failed task starts over as a new attempt with its failure counters
  cleared; skipped tasks wait again, their unmet needs recounted, and
  those whose needs are all done are published; it counts in the usage hash again
  (common.lua).  The dead entry is deleted.
  All or nothing: a refused call changes nothing.
  KEYS  the shared head, the streams of the call's agents (the dead entry's agent and every
        agent of the workflow), then the workflow's hash, history and output streams
  ARGV  n, agents, then the dead entry id, its agent, workflow, task
  returns {1, ''} revived, {0, why} refused, {-1, agent} an agent of the workflow has no keys
        in this call (the caller adds it and calls again)
]]

local function cancel(keys, args)
  local ctx = context(keys, args)
  local key, b = keys[ctx.wf_base + 1], ctx.arg_base
  local wf, reason = args[b + 1], args[b + 2]
  local status = redis.call('HGET', key, WF.status)
  if not status then return -1 end
  if status ~= WS.running then return 0 end
  local order = split(redis.call('HGET', key, WF.order))
  skip_unpublished(ctx, key, wf, order, task_states(key, order))
  finish(key, WS.cancelled, ctx, reason)
  emit(ctx, key, wf, EV.cancelled, nil, nil, ctx.now, EF.reason, reason)
  return 1
end

-- A workflow's deadline (ms, Redis clock) from its created and timeout fields, or nil when it
-- has no timeout.
local function deadline_of(created, timeout)
  if not timeout then return nil end
  return tonumber(created) + tonumber(timeout)
end

-- Why a dead entry cannot revive its workflow, or nil when it can (`deadline`: deadline_of).
local function revive_refusal(ctx, key, id, agent, wf, t, deadline)
  if not ctx.dead[agent] then return 'no dead-letter stream given for agent ' .. agent end
  local found = redis.call('XRANGE', ctx.dead[agent], id, id)
  if #found == 0 then return 'no dead letter ' .. id .. ' for agent ' .. agent end
  local entry = {}
  local flat = found[1][2]
  for i = 1, #flat, 2 do entry[flat[i]] = flat[i + 1] end
  if entry.wf ~= wf or entry.task ~= t then
    return 'dead letter ' .. id .. ' is not for task ' .. t .. ' of workflow ' .. wf
  end
  local f = redis.call('HMGET', key, WF.status, TF.state .. t)
  if not f[1] then return 'workflow ' .. wf .. ' no longer exists (finished ones expire)' end
  if f[1] ~= WS.failed then return 'workflow ' .. wf .. ' is ' .. f[1] .. ', not failed' end
  if f[2] ~= TS.failed then
    return 'task ' .. t .. ' is ' .. tostring(f[2] or 'unknown') .. ', not failed'
  end
  if deadline and deadline <= ctx.now then
    return 'workflow ' .. wf .. ' is past its deadline (its timeout ended ' ..
           math.floor((ctx.now - deadline) / 1000) .. 's ago): it would fail again at once'
  end
  return nil
end

local function unmet_needs(key, t)
  local unmet = 0
  for _, need in ipairs(split(redis.call('HGET', key, TF.needs .. t))) do
    if redis.call('HGET', key, TF.state .. need) ~= TS.done then unmet = unmet + 1 end
  end
  return unmet
end

-- Bring one failed or skipped task back: failed tasks start over with no failures counted;
-- a task whose attempt was ever published moves to a new attempt, so a stray completion of
-- the old one is refused.  Published at once when its needs are done, else it waits.
-- False when publishing it failed the workflow (its inputs are too large).
local function revive_task(ctx, key, wf, t, state)
  local f = redis.call('HMGET', key, TF.attempt .. t, TF.entry .. t)
  local att = f[1] or ABSENT.attempt
  if state == TS.failed then
    redis.call('HDEL', key, TF.failures .. t, TF.lost .. t, TF.waiting_since .. t)
    append_history(key, t, {attempt = tonumber(att), outcome = 'requeued',
                            reason = 'from dead letters', at = ctx.now})
  end
  if f[2] then att = next_attempt(key, t) end
  local unmet = unmet_needs(key, t)
  redis.call('HSET', key, TF.unmet .. t, unmet, TF.state .. t, TS.waiting)
  if unmet > 0 then return true end
  if not publish(ctx, key, wf, t) then return false end  -- the workflow failed again
  local why = 'workflow resumed'
  if state == TS.failed then why = 'from dead letters' end
  emit(ctx, key, wf, EV.task_requeued, t, att, ctx.now, EF.reason, why)
  return true
end

local function revive(keys, args)
  local ctx = context(keys, args)
  local key, b = keys[ctx.wf_base + 1], ctx.arg_base
  local id, agent, wf, t = args[b + 1], args[b + 2], args[b + 3], args[b + 4]
  local deadline = deadline_of(unpack(redis.call('HMGET', key, WF.created, WF.timeout)))
  local refusal = revive_refusal(ctx, key, id, agent, wf, t, deadline)
  if refusal then return {0, refusal} end
  local order = split(redis.call('HGET', key, WF.order))
  local missing = missing_agent(ctx, key, order)
  if missing then return {-1, missing} end
  local states = task_states(key, order)
  redis.call('HSET', key, WF.status, WS.running)
  redis.call('HDEL', key, WF.reason, WF.ended)
  redis.call('PERSIST', key)
  redis.call('PERSIST', ctx.output[key])
  redis.call('PERSIST', ctx.past[key])  -- its history goes on
  count_usage(ctx, key, 1, 0)
  if deadline then redis.call('ZADD', ctx.deadlines, deadline, key) end
  emit(ctx, key, wf, EV.resumed, nil, nil, ctx.now, EF.reason,
       'task ' .. t .. ' requeued from dead letters')
  for i, d in ipairs(order) do
    if states[i] == TS.failed or states[i] == TS.skipped then
      if not revive_task(ctx, key, wf, d, states[i]) then break end
    end
  end
  redis.call('XDEL', ctx.dead[agent], id)
  return {1, ''}
end

redis.register_function('sp_cancel', stowing(cancel))
redis.register_function('sp_revive', stowing(revive))

--[[ sp_expire: fail the running workflows whose deadline (workflow-level timeout) passed, as a
  dead letter would: tasks not yet published are skipped, the failed event carries the reason.
  Fenced and idempotent: one no longer running, or whose deadline is still ahead by the Redis
  clock, is left as it is (an ended one also leaves the deadlines set).
  KEYS  the shared head, then per workflow its hash and history stream, then their output
        streams and history archives
  ARGV  n = 0 agents, then per workflow its id and the reason
  returns the number of workflows it failed
]]
local function expire_overdue(keys, args)
  local ctx = context(keys, args)
  local failed, item = 0, 0
  for a = ctx.arg_base + 1, #args, 2 do
    item = item + 1
    local key = keys[ctx.wf_base + 2 * item - 1]
    local f = redis.call('HMGET', key, WF.status, WF.created, WF.timeout)
    local deadline = deadline_of(f[2], f[3])
    if f[1] ~= WS.running or not deadline then
      redis.call('ZREM', ctx.deadlines, key)
    elseif deadline <= ctx.now then
      fail_workflow(ctx, key, args[a], args[a + 1])
      failed = failed + 1
    end
  end
  return failed
end

redis.register_function('sp_expire', stowing(expire_overdue))
