--[[ adjust.lua: re-running a task with a new input because a task downstream of it asked to
  (an 'adjust' completion, applied by sp_resolve in resolve.lua).  It registers no function.
  What a re-run task had spawned or mapped is taken back first (supersede, grow.lua): it
  spawns or maps anew when it runs again.
]]

-- The task and every task downstream of it, each once, the task first.
local function downstream(key, root)
  local order, seen = {root}, {[root] = true}
  local i = 1
  while i <= #order do
    for _, child in ipairs(split(redis.call('HGET', key, TF.dependents .. order[i]))) do
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
  local f = redis.call('HMGET', key, TF.state .. d, TF.attempt .. d)
  if f[1] == TS.done then redis.call('HINCRBY', key, WF.left, 1) end
  if f[1] == TS.delayed or f[1] == TS.awaiting then  -- a retry, or a wait's timeout
    redis.call('ZREM', ctx.delayed, delayed_member(wf, d))
  end
  if f[1] == TS.awaiting then count_awaiting(ctx, key, d, -1) end
  if f[1] ~= TS.waiting then
    if d ~= cause then
      append_history(key, d, {attempt = tonumber(f[2] or ABSENT.attempt), outcome = 'reset',
                              cause = cause, round = round, at = ctx.now})
    end
    next_attempt(key, d)
  end
  redis.call('HSET', key, TF.state .. d, TS.waiting)
  -- a mapped task maps its need's result again (supersede took its instances back), and a
  -- wait waits for a signal anew
  redis.call('HDEL', key, TF.result .. d, TF.began .. d, TF.ended .. d, TF.consumer .. d,
             TF.mapped .. d, TF.signal .. d)
end

-- Re-run `target` with a new input, and everything downstream of it (the requesting task `t`
-- among them), unless the round limit is reached or `target` is not upstream of `t`.
-- Returns false when refused, after recording why.
local function adjust(ctx, key, wf, t, att, status, target, why, input)
  local order, seen = downstream(key, target)
  local f = redis.call('HMGET', key, TF.adjusted .. target, WF.rounds)
  local round, limit = tonumber(f[1] or '0') + 1, tonumber(f[2] or ABSENT.rounds)
  local refusal
  local map_of = instance_of(key, target)
  if status ~= WS.running then refusal = 'workflow is ' .. status
  elseif not seen[t] then refusal = 'task ' .. target .. ' is not upstream of ' .. t
  elseif round > limit then refusal = 'round limit ' .. limit .. ' reached for ' .. target
  elseif map_of then
    refusal = 'task ' .. target .. ' is an instance of map ' .. map_of
              .. ': adjust the task it maps over instead'
  end
  if refusal then
    append_history(key, t, {attempt = tonumber(att), outcome = 'adjust refused',
                            target = target, reason = why, refusal = refusal, at = ctx.now})
    emit(ctx, key, wf, EV.adjust_refused, t, att, ctx.now, EF.target, target, EF.reason, refusal)
    return false
  end
  redis.call('HSET', key, TF.adjusted .. target, round)
  local previous = redis.call('HGET', key, TF.result .. target) or ''
  local adjusted = redis.call('HGET', key, TF.attempt .. target) or ABSENT.attempt
  append_history(key, target, {attempt = tonumber(adjusted),
                               outcome = 'adjusted', reason = why, by = t, round = round,
                               previous = string.sub(previous, 1, 500), at = ctx.now})
  local gone = supersede(ctx, key, wf, seen, target, round)
  local kept = {}
  for _, d in ipairs(order) do
    if not gone[d] then kept[#kept + 1] = d end
  end
  order = kept
  for _, d in ipairs(order) do reset(ctx, key, wf, d, target, round) end
  for i = 2, #order do
    local d = order[i]
    local needs = split(redis.call('HGET', key, TF.needs .. d))
    local unmet = 0
    for _, need in ipairs(needs) do
      if seen[need] or redis.call('HGET', key, TF.state .. need) ~= TS.done then
        unmet = unmet + 1
      end
    end
    redis.call('HSET', key, TF.unmet .. d, unmet)
  end
  redis.call('HSET', key, TF.input .. target, input, TF.unmet .. target, 0)
  local next_att = redis.call('HGET', key, TF.attempt .. target) or ABSENT.attempt
  emit(ctx, key, wf, EV.task_adjusted, target, next_att, ctx.now, EF.by, t, EF.reason, why,
       EF.round, round)
  publish(ctx, key, wf, target)
  return true
end
