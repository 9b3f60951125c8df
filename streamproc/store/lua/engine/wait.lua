--[[ wait.lua: tasks that wait for a signal, and sp_signal, which sends one.

A task waits in one of two ways: declared in its spec (TF.wait_for and no agent: publish hands
it to run_wait once its needs are done), or asked for by its agent (a completion of kind
await, its output the signal's name: sp_resolve calls apply_await).  While it waits it is
`awaiting`: in no stream, held by no worker.  Its timeout, if any, is its member's score in
the delayed set, so sp_release hands it to time_out once due, as it publishes due retries:
a declared wait then takes its default (TF.default) as its result, or fails, as does a wait
an agent asked for (dead-lettered, with its input).

A signal resumes the first task, in the workflow's order, that awaits its name.  When none
does, it is kept in the workflow hash (its payload in SG.payload, its id in WF.pending) until
a wait for its name begins, which takes it at once; it expires with the workflow.  Resumed, a
declared wait is done with the payload as its result, and an agent's task runs again as a new
attempt, the payload in its entry (TF.signal, EF.signal_payload).  Each signal id applies
once: SG.seen keeps the name it was applied under.  A signal and a timeout are each one call,
so whichever comes first wins; the other finds the task no longer awaiting.

sp_signal: send one signal to one workflow.
  KEYS  the shared head (common.lua), the streams of the workflow's agents, then its hash,
        history and output streams
  ARGV  n, agents, then workflow, signal name, signal id, payload (JSON), the most signals
        kept at once, the most signals one workflow takes
  returns {outcome, detail}: applied (detail: the task it resumed), kept, duplicate (the name
        the id was applied under), unknown (no such workflow), finished (its status), full
        (why), or missing (an agent the call has no keys for: the caller adds it, calls again)
]]

-- t, which waits, goes on with `payload`: a declared wait is done with it as its result, an
-- agent's task is published again.  Returns false when the workflow failed.
local function resume(ctx, key, wf, t, payload)
  redis.call('ZREM', ctx.delayed, delayed_member(wf, t))
  count_awaiting(ctx, key, t, -1)
  local f = redis.call('HMGET', key, TF.agent .. t, TF.attempt .. t, WF.status,
                       TF.dependents .. t, WF.left, WF.ttl, WF.tenant, TF.began .. t)
  if not f[1] then
    apply_done(ctx, key, wf, t, f[2] or ABSENT.attempt, payload, f[8] or ctx.now, ctx.now, '',
               split(f[4]), f[3], f[5], f[6], f[7])
    return redis.call('HGET', key, WF.status) ~= WS.failed
  end
  local att = next_attempt(key, t)
  redis.call('HSET', key, TF.signal .. t, payload)
  if not publish(ctx, key, wf, t) then return false end
  emit(ctx, key, wf, EV.task_resumed, t, att, ctx.now)
  return true
end

-- The id and payload of the first signal kept for `name`, no longer kept; nil when none.
local function take_kept(key, name)
  local ids = split(redis.call('HGET', key, WF.pending))
  for i, id in ipairs(ids) do
    if redis.call('HGET', key, SG.seen .. id) == name then
      local payload = redis.call('HGET', key, SG.payload .. id)
      table.remove(ids, i)
      redis.call('HDEL', key, SG.payload .. id)
      redis.call('HSET', key, WF.pending, table.concat(ids, ' '))
      return id, payload
    end
  end
  return nil
end

-- t begins to wait for the signal `name` for timeout_ms (0: no limit); a signal kept for it
-- resumes it at once.  Returns false when the workflow failed.
run_wait = function(ctx, key, wf, t, name, timeout_ms)
  local f = redis.call('HMGET', key, TF.attempt .. t, TF.agent .. t)
  f[1] = f[1] or ABSENT.attempt
  local id, payload = take_kept(key, name)
  redis.call('HSET', key, TF.state .. t, TS.awaiting, TF.wait_for .. t, name)
  count_awaiting(ctx, key, t, 1)
  if not f[2] then redis.call('HSET', key, TF.began .. t, ctx.now) end
  if id then
    emit(ctx, key, wf, EV.task_awaiting, t, f[1], ctx.now, EF.signal, name, EF.signal_id, id)
    return resume(ctx, key, wf, t, payload)
  end
  emit(ctx, key, wf, EV.task_awaiting, t, f[1], ctx.now, EF.signal, name)
  if timeout_ms > 0 then
    redis.call('ZADD', ctx.delayed, ctx.now + timeout_ms, delayed_member(wf, t))
  end
  return true
end

-- The agent of t asked to wait for the signal `name` (WaitFor).
local function apply_await(ctx, key, wf, t, att, name, began, ended, by, timeout_ms, status)
  record_attempt(key, t, '', began, ended, by)
  append_history(key, t, {attempt = tonumber(att), outcome = 'await', signal = name, at = ended,
                          by = by})
  if status ~= WS.running then  -- it ended meanwhile: nothing will resume this task
    redis.call('HSET', key, TF.state .. t, TS.skipped)
    return
  end
  run_wait(ctx, key, wf, t, name, tonumber(timeout_ms))
end

-- t waited past its timeout: it takes its default, or fails.
local function time_out(ctx, key, wf, t)
  local f = redis.call('HMGET', key, TF.wait_for .. t, TF.default .. t, TF.agent .. t,
                       TF.attempt .. t)
  f[4] = f[4] or ABSENT.attempt
  local reason = "timed out waiting for signal '" .. f[1] .. "'"
  emit(ctx, key, wf, EV.wait_timed_out, t, f[4], ctx.now, EF.signal, f[1])
  if f[2] then return resume(ctx, key, wf, t, f[2]) end
  count_awaiting(ctx, key, t, -1)
  redis.call('HSET', key, TF.error .. t, reason, TF.ended .. t, ctx.now)
  if f[3] then
    dead_letter(ctx, key, wf, t, f[3], f[4], reason)
  else
    redis.call('HSET', key, TF.state .. t, TS.failed)
    emit(ctx, key, wf, EV.task_failed, t, f[4], ctx.now, EF.error, reason, EF.final, '1')
    fail_workflow(ctx, key, wf, 'task ' .. t .. ' failed: ' .. reason)
  end
  return false
end

-- The first task, in the workflow's order, that awaits the signal `name`, or nil.
local function waiter_of(key, order, name)
  local states = task_states(key, order)
  for i, t in ipairs(order) do
    if states[i] == TS.awaiting and redis.call('HGET', key, TF.wait_for .. t) == name then
      return t
    end
  end
  return nil
end

local function signal(keys, args)
  local ctx = context(keys, args)
  local key, b = keys[ctx.wf_base + 1], ctx.arg_base
  local wf, name, id, payload = args[b + 1], args[b + 2], args[b + 3], args[b + 4]
  local most_kept, most_signals = tonumber(args[b + 5]), tonumber(args[b + 6])
  local f = redis.call('HMGET', key, WF.status, WF.order, SG.seen .. id, WF.pending, WF.signals)
  if not f[1] then return {'unknown', ''} end
  if f[3] then return {'duplicate', f[3]} end
  if f[1] ~= WS.running then return {'finished', f[1]} end
  if tonumber(f[5] or '0') >= most_signals then
    return {'full', 'it has taken ' .. most_signals .. ' signals, the most one workflow takes'}
  end
  local waiter = waiter_of(key, split(f[2]), name)
  if waiter then
    local missing = missing_agent(ctx, key, reachable(key, {waiter}))
    if missing then return {'missing', missing} end
  elseif #split(f[4]) >= most_kept then
    return {'full', most_kept .. ' signals are kept already, waiting for a wait to take them'}
  end
  redis.call('HSET', key, SG.seen .. id, name)
  redis.call('HINCRBY', key, WF.signals, 1)
  local att = waiter and (redis.call('HGET', key, TF.attempt .. waiter) or ABSENT.attempt)
  emit(ctx, key, wf, EV.signalled, waiter, att, ctx.now, EF.signal, name, EF.signal_id, id,
       EF.size, #payload)
  if waiter then
    resume(ctx, key, wf, waiter, payload)
    return {'applied', waiter}
  end
  local kept = id
  if f[4] and f[4] ~= '' then kept = f[4] .. ' ' .. id end
  redis.call('HSET', key, WF.pending, kept, SG.payload .. id, payload)
  return {'kept', ''}
end

redis.register_function('sp_signal', stowing(signal))
