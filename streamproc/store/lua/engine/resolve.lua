--[[ resolve.lua: sp_resolve applies completions; sp_release publishes the retries they
  scheduled once due.

sp_resolve: apply a batch of completions, then XACK what they answer: the resolver's
  done-stream entries, or the task entries a worker ran and reports itself (no done entry).
  KEYS  the shared head (common.lua), the streams of the shard's agents, then per completion
        its workflow's hash and history stream
  ARGV  n, agents, then retry base ms, retry cap ms, jitter factor, what to acknowledge
        (ACKS.done, or ACKS.tasks: the task entries, in the stream of the agent each names;
        that agent among the call's), then 10 per completion:
        kind (KIND), workflow, task, attempt, output or error text, began ms, ended ms,
        consumer, its done-stream entry id (acking ACKS.tasks: the agent whose stream holds
        the task entry), the task entry it ran ('' when not known); an
        adjust adds 3: target task, reason, new input; a wait adds 2: retry in ms, give up
        after ms; an error or fatal adds 1: its traceback ('' when none), kept in the
        attempt's history record; a spawn adds 1: its tasks (grow.lua); an await (its output
        the signal's name) adds 1: its timeout in ms, 0 for none (wait.lua)
  returns {consumed, stale, missing agent or '', workflows completed, workflows failed, the
        ids of the workflows it ended, whose hashes it left for the caller to stow (sp_stow,
        history.lua)}: it stops before a completion whose task or dependents use an agent it
        has no keys for, leaving that one and the rest unacknowledged
  A completion applies to a queued or running task (task_started is emitted by sp_started
  as the worker begins; a task whose start was not recorded, as a worker leaves out the
  start of a task that ended before its next flush, gets its start here: within its
  task_done event, as `began` and `by`, when it succeeded, else as a task_started event
  first), and only to the entry the
  task was last published as (its TF.entry field), not just to its attempt number: after
  Redis lost recent writes (a failover, a torn AOF tail) the same attempt can be published
  again as a new entry, and a completion of the lost one, computed from results that no
  longer exist, is then refused as stale.

sp_release: publish delayed retries that are due, and time out waits for signals whose
  timeout passed (wait.lua).
  KEYS  the shared head, the streams of the shard's agents, then per item its workflow's hash
        and history stream
  ARGV  n, agents, then 2 per item: workflow, task
  returns {released, missing agent or ''}; an item whose agent (or, for a wait that may end,
        an agent downstream) has no keys stays delayed
]]

local function apply_error(ctx, key, wf, t, att, kind, err, began, ended, by, retry, tb)
  local f = redis.call('HMGET', key, WF.status, TF.retries .. t, TF.agent .. t)
  local failures = redis.call('HINCRBY', key, TF.failures .. t, 1)
  record_attempt(key, t, err, began, ended, by)
  if tb == '' then tb = nil end  -- no traceback: no field
  append_history(key, t, {attempt = tonumber(att), outcome = kind, error = err, at = ended, by = by,
                          traceback = tb})
  if f[1] ~= WS.running then
    redis.call('HSET', key, TF.state .. t, TS.failed)
    emit(ctx, key, wf, EV.task_failed, t, att, ended, EF.error, err, EF.final, '1')
  elseif kind == KIND.error and failures <= tonumber(f[2] or ABSENT.retries) then
    local delay = math.floor(math.min(retry.cap, retry.base * 2 ^ (failures - 1)) * retry.jitter)
    redis.call('HSET', key, TF.state .. t, TS.delayed)
    redis.call('ZADD', ctx.delayed, ctx.now + delay, delayed_member(wf, t))
    emit(ctx, key, wf, EV.task_failed, t, att, ended, EF.error, err, EF.retry_ms, delay)
  else
    local why = err
    if kind == KIND.error then
      why = 'failed ' .. failures .. (failures == 1 and ' time' or ' times') .. ', last: ' .. err
    end
    dead_letter(ctx, key, wf, t, f[3], att, why)
  end
end

-- The agent cannot make progress yet: wait as a delayed retry that uses up no retry, until
-- the task has waited give_up_ms since its first wait.
local function apply_wait(ctx, key, wf, t, att, reason, began, ended, by, retry_ms, give_up_ms,
                          status, agent)
  record_attempt(key, t, reason, began, ended, by)
  if status ~= WS.running then
    redis.call('HSET', key, TF.state .. t, TS.failed)
    emit(ctx, key, wf, EV.task_failed, t, att, ended, EF.error, reason, EF.final, '1')
    return
  end
  local first = tonumber(redis.call('HGET', key, TF.waiting_since .. t) or '0')
  if first == 0 then
    first = ctx.now
    redis.call('HSET', key, TF.waiting_since .. t, first)
  end
  local waited = ctx.now - first
  if waited + tonumber(retry_ms) > tonumber(give_up_ms) then
    dead_letter(ctx, key, wf, t, agent, att,
                'gave up after waiting ' .. math.floor(waited / 1000) .. 's: ' .. reason)
    return
  end
  redis.call('HSET', key, TF.state .. t, TS.delayed)
  redis.call('ZADD', ctx.delayed, ctx.now + tonumber(retry_ms), delayed_member(wf, t))
  emit(ctx, key, wf, EV.task_waiting, t, att, ended, EF.reason, reason, EF.retry_ms, retry_ms)
end

-- The acknowledgements of one sp_resolve call: the done entries it applied, or (acking
-- ACKS.tasks) the task entries whose completions it applied, by stream.  add() takes the
-- completion's position in ARGV.
local function acknowledger(ctx, args, acking_tasks)
  local by_stream, count = {}, 0
  local acks = {}
  function acks.add(a)
    local stream, group, id = ctx.done, GROUP, args[a + 8]
    if acking_tasks then
      stream, group, id = ctx.streams[args[a + 8]], args[a + 8], args[a + 9]
    end
    local ids = by_stream[stream]
    if not ids then ids = {group = group}; by_stream[stream] = ids end
    ids[#ids + 1] = id
    count = count + 1
  end
  function acks.send()
    for stream, ids in pairs(by_stream) do redis.call('XACK', stream, ids.group, unpack(ids)) end
    return count
  end
  return acks
end

local function reject_completion(ctx, wf, t, att, entry, reason, out)
  redis.call('XADD', ctx.dead_done, '*', EF.v, VERSION, EF.wf, wf, EF.task, t, EF.att, att,
             EF.entry, entry, EF.reason, reason, EF.output, out, EF.at, ctx.now)
end

-- The reply: what was consumed, how much of it was stale, the missing agent or '', the
-- workflows this call completed and failed (for the caller's metrics), and those it ended,
-- for the caller to stow (ctx.ended_ids, filled as the call ends).
local function resolved(ctx, consumed, stale, missing)
  return {consumed, stale, missing, ctx.ended[WS.completed] or 0, ctx.ended[WS.failed] or 0,
          ctx.ended_ids}
end

-- What sp_resolve reads of a workflow for a completion of its task t, and whether 0.8 folded
-- it.  A workflow is unstowed when the call first reads it, and read again if that brought
-- its hash back (a late completion of a stowed or folded one), rather than every workflow
-- of the call being asked first whether it is stowed (one HMGET each).
local function read_for_completion(ctx, key, t)
  local f = redis.call('HMGET', key, WF.status, TF.state .. t, TF.attempt .. t,
                       TF.agent .. t, TF.dependents .. t, TF.entry .. t, WF.left, WF.ttl,
                       WF.tenant, WF.folded)
  if ctx.unstowed[key] then return f end
  ctx.unstowed[key] = true
  if f[1] and not f[10] and not is_over(f[1]) then return f end
  unstow(ctx, key)
  return read_for_completion(ctx, key, t)
end

local function resolve(keys, args)
  local ctx = context(keys, args, true)
  ctx.unstowed = {}
  ctx.ended_ids = {}  -- filled as the call ends (settle), before Redis reads the reply
  local b = ctx.arg_base
  local retry = {base = tonumber(args[b + 1]), cap = tonumber(args[b + 2]),
                 jitter = tonumber(args[b + 3])}
  local acking_tasks = args[b + 4] == ACKS.tasks
  local acks = acknowledger(ctx, args, acking_tasks)
  local stale = 0
  local item, a = 0, b + 5
  while a <= #args do
    item = item + 1
    local kind, wf, t, att = args[a], args[a + 1], args[a + 2], args[a + 3]
    local source = args[a + 9]
    local entry = acking_tasks and source or args[a + 8]
    local stride = 10
    if kind == KIND.adjust then stride = 13 elseif kind == KIND.wait then stride = 12
    elseif kind == KIND.error or kind == KIND.fatal or kind == KIND.spawn
        or kind == KIND.await then stride = 11 end
    local key = keys[ctx.wf_base + 2 * item - 1]
    local f = read_for_completion(ctx, key, t)
    if not f[1] then
      reject_completion(ctx, wf, t, att, entry, 'unknown workflow', args[a + 4])
    elseif not f[4] then
      reject_completion(ctx, wf, t, att, entry, 'unknown task', args[a + 4])
    elseif not published(f[2]) or (f[3] or ABSENT.attempt) ~= att
        or (source ~= '' and f[6] ~= source) then
      stale = stale + 1
    else
      local dependents = split(f[5])
      local ahead
      if kind == KIND.ok then
        ahead = {}
        for _, d in ipairs(dependents) do ahead[d] = read_to_publish(key, d) end
      end
      local missing = missing_agent(ctx, key, reachable(key, dependents, ahead), ahead)
      local spawned
      if kind == KIND.adjust then
        missing = missing or missing_agent(ctx, key, reachable(key, {args[a + 10]}))
      elseif kind == KIND.spawn then
        spawned = decode_spawn(args[a + 10])
        missing = missing or spawn_missing_agent(ctx, spawned)
      end
      if missing or not ctx.dead[f[4]] then
        return resolved(ctx, acks.send(), stale, missing or f[4])
      end
      local unstarted = f[2] == TS.queued  -- no start recorded (see the top of this file)
      if unstarted and kind ~= KIND.ok then
        emit(ctx, key, wf, EV.task_started, t, att, args[a + 5], EF.by, args[a + 7])
      end
      if kind == KIND.adjust and adjust(ctx, key, wf, t, att, f[1], args[a + 10],
                                        args[a + 11], args[a + 12]) then
        emit(ctx, key, wf, EV.task_done, t, att, args[a + 6], EF.adjusting, args[a + 10])
      elseif kind == KIND.wait then
        apply_wait(ctx, key, wf, t, att, args[a + 4], args[a + 5], args[a + 6], args[a + 7],
                   args[a + 10], args[a + 11], f[1], f[4])
      elseif kind == KIND.await then
        apply_await(ctx, key, wf, t, att, args[a + 4], args[a + 5], args[a + 6], args[a + 7],
                    args[a + 10], f[1])
      elseif kind == KIND.spawn then
        apply_spawn(ctx, key, wf, t, att, args[a + 4], args[a + 5], args[a + 6], args[a + 7], f,
                    spawned)
      elseif kind == KIND.ok or kind == KIND.adjust then
        apply_done(ctx, key, wf, t, att, args[a + 4], args[a + 5], args[a + 6], args[a + 7],
                   dependents, f[1], f[7], f[8], f[9], unstarted and kind == KIND.ok, ahead)
      else
        apply_error(ctx, key, wf, t, att, kind, args[a + 4], args[a + 5], args[a + 6],
                    args[a + 7], retry, args[a + 10])
      end
    end
    acks.add(a)
    a = a + stride
  end
  return resolved(ctx, acks.send(), stale, '')
end

local function release(keys, args)
  local ctx = context(keys, args)
  local released, item = 0, 0
  for a = ctx.arg_base + 1, #args, 2 do
    item = item + 1
    local wf, t = args[a], args[a + 1]
    local key = keys[ctx.wf_base + 2 * item - 1]
    local member = delayed_member(wf, t)
    local score = redis.call('ZSCORE', ctx.delayed, member)
    if score and tonumber(score) <= ctx.now then
      local f = redis.call('HMGET', key, WF.status, TF.state .. t)
      local missing = missing_agent(ctx, key, reachable(key, {t}))
      if missing then return {released, missing} end
      redis.call('ZREM', ctx.delayed, member)
      if f[1] == WS.running and f[2] == TS.delayed then
        local att = next_attempt(key, t)
        if publish(ctx, key, wf, t) then
          emit(ctx, key, wf, EV.task_retried, t, att, ctx.now)
          released = released + 1
        end
      elseif f[1] == WS.running and f[2] == TS.awaiting then
        time_out(ctx, key, wf, t)
        released = released + 1
      end
    end
  end
  return {released, ''}
end

redis.register_function('sp_resolve', stowing(resolve))
redis.register_function('sp_release', stowing(release))
