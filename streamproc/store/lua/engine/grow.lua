--[[ grow.lua: tasks that join a running workflow, and leave it.  A spawn completion (an
  agent returned Spawn) adds its tasks in the sp_resolve step that records it (apply_spawn),
  and a mapped task adds its instances (map.lua) through the same helper, add_tasks.  When an
  adjustment re-runs a task (adjust.lua), what it added is superseded (supersede), and its
  ids may be added again.  It registers no function.

A spawn arrives as JSON (engine/spawning.py): one entry per task, each after the tasks of the
spawn it needs: id, agent, input as JSON text, needs, retries, timeout ('' none), map ('' none),
and for a declared wait (agent '', no map) two more: its signal's name and its default as JSON
text ('' none).  A spawned wait is written as submit writes a declared one (TF.wait_for,
TF.default, no TF.agent), so publish starts it once its needs are done (wait.lua).
The worker checked what it could without the workflow; what needs the workflow is checked
here, before anything is written: a refused spawn adds nothing and fails its spawner.
]]

local function is_name(v)
  return type(v) == 'string' and #v >= 1 and #v <= 128 and not string.find(v, '[^%w_.-]')
end

local function is_text_list(v)
  if type(v) ~= 'table' then return false end
  for _, item in ipairs(v) do
    if type(item) ~= 'string' then return false end
  end
  return true
end

-- The tasks of a spawn as decoded, or nil when its text is not a well-formed spawn.
local function decode_spawn(text)
  local ok, tasks = pcall(cjson.decode, text or '')
  if not ok or type(tasks) ~= 'table' or (#tasks == 0 and next(tasks) ~= nil) then
    return nil  -- not an array
  end
  for _, task in ipairs(tasks) do
    if type(task) ~= 'table' or not is_name(task[1]) or type(task[3]) ~= 'string'
        or not is_text_list(task[4]) or type(task[5]) ~= 'number'
        or type(task[6]) ~= 'string' or type(task[7]) ~= 'string' then
      return nil
    end
    if task[8] == nil then  -- an agent's task
      if not is_name(task[2]) or task[9] ~= nil then return nil end
    elseif task[2] ~= '' or task[7] ~= '' or not is_name(task[8])
        or type(task[9]) ~= 'string' or task[10] ~= nil then
      return nil
    end
  end
  return tasks
end

-- Whether a decoded spawned task is a declared wait (it runs no agent).
local function is_wait(task) return task[8] ~= nil end

-- An agent of a spawn this call has no stream keys for (the caller reloads and retries).
local function spawn_missing_agent(ctx, tasks)
  for _, task in ipairs(tasks or {}) do
    if not is_wait(task) and not ctx.streams[task[2]] then return task[2] end
  end
  return nil
end

-- The dependencies `tasks` add, as needs of theirs and of their `waiters`.
local function new_edges(tasks, waiters)
  local n = #waiters * #tasks
  for _, task in ipairs(tasks) do n = n + #task[4] end
  return n
end

-- Why the spawn of `parent`, for whose `waiters` to wait, cannot join the workflow, or nil
-- when it can.
local function spawn_refusal(key, parent, tasks, waiters)
  if not tasks then return 'malformed spawn' end
  local order = split(redis.call('HGET', key, WF.order))
  local limits = redis.call('HMGET', key, WF.max_tasks, WF.max_input, WF.max_edges, WF.edges)
  local max_tasks = tonumber(limits[1] or ABSENT.max_tasks)
  local max_input = tonumber(limits[2] or ABSENT.max_input)
  local existing, joining, count = {}, {}, #order
  for _, id in ipairs(order) do existing[id] = true end
  for _, task in ipairs(tasks) do
    local id = task[1]
    if existing[id] then  -- taken, unless superseded: then it is added again
      if redis.call('HGET', key, TF.state .. id) ~= TS.superseded then
        return "task id '" .. id .. "' already exists"
      end
    else
      count = count + 1
    end
    if joining[id] then return "task id '" .. id .. "' appears twice" end
    if max_input > 0 and #task[3] > max_input then
      return string.format("task '%s': input is %d bytes, over the %d limit", id, #task[3],
                           max_input)
    end
    for _, need in ipairs(task[4]) do
      if not joining[need] and need ~= parent then
        if not existing[need] then
          return "task '" .. id .. "' needs unknown task '" .. need .. "'"
        end
        if redis.call('HGET', key, TF.state .. need) ~= TS.done then
          return "task '" .. id .. "' needs '" .. need .. "', which is not done"
        end
      end
    end
    joining[id] = true
  end
  if max_tasks > 0 and count > max_tasks then
    return string.format('%d tasks would take the workflow past its limit of %d', count,
                         max_tasks)
  end
  local max_edges, edges = tonumber(limits[3] or ABSENT.max_edges), tonumber(limits[4] or '0')
  edges = edges + new_edges(tasks, waiters)
  if max_edges > 0 and edges > max_edges then
    return string.format('%d dependencies would take the workflow past its limit of %d',
                         edges, max_edges)
  end
  return nil
end

-- Append `field` and `value` to the HSET arguments `fields`, unless `value` is what the field
-- reads as when absent (fields.py): such a field is left out.
local function unless_absent(fields, field, value, absent)
  if value ~= absent then
    fields[#fields + 1] = field
    fields[#fields + 1] = value
  end
end

-- Write `tasks` (validated) into the workflow as added by `parent`.  Each waits for its needs
-- not yet done, and every task of `waiters` also waits for all of them.  Their ids are
-- appended to the workflow's order (but for superseded ones added again, which are there,
-- and move on to a new attempt) and counted as left.  Returns their ids; none is published.
local function add_tasks(key, parent, tasks, waiters)
  local ids, added, new = {}, {}, {}  -- added[need]: the new tasks that are dependents of need
  for i, task in ipairs(tasks) do ids[i] = task[1] end
  local waiting_for = table.concat(waiters, ' ')
  for _, task in ipairs(tasks) do
    local id, unmet = task[1], 0
    local was = redis.call('HMGET', key, TF.state .. id, TF.attempt .. id)
    local attempt = was[1] and tonumber(was[2] or ABSENT.attempt) + 1 or 1
    if attempt == 1 then
      new[#new + 1] = id
    else
      redis.call('HDEL', key, TF.result .. id, TF.began .. id, TF.ended .. id, TF.error .. id,
                 TF.consumer .. id, TF.waiting_since .. id, TF.mapped .. id, TF.map .. id,
                 TF.adjusted .. id, TF.needs .. id, TF.dependents .. id, TF.unmet .. id,
                 TF.failures .. id, TF.lost .. id, TF.retries .. id, TF.timeout .. id,
                 TF.agent .. id, TF.wait_for .. id, TF.default .. id, TF.signal .. id)
    end
    for _, need in ipairs(task[4]) do
      if redis.call('HGET', key, TF.state .. need) ~= TS.done then unmet = unmet + 1 end
      added[need] = added[need] or {}
      added[need][#added[need] + 1] = id
    end
    local fields = {TF.input .. id, task[3], TF.state .. id, TS.waiting, TF.spawner .. id, parent}
    if is_wait(task) then
      fields[#fields + 1], fields[#fields + 2] = TF.wait_for .. id, task[8]
      unless_absent(fields, TF.default .. id, task[9], '')
    else
      fields[#fields + 1], fields[#fields + 2] = TF.agent .. id, task[2]
    end
    unless_absent(fields, TF.attempt .. id, attempt, tonumber(ABSENT.attempt))
    unless_absent(fields, TF.needs .. id, table.concat(task[4], ' '), '')
    unless_absent(fields, TF.dependents .. id, waiting_for, '')
    unless_absent(fields, TF.unmet .. id, unmet, 0)
    unless_absent(fields, TF.retries .. id, task[5], tonumber(ABSENT.retries))
    unless_absent(fields, TF.timeout .. id, task[6], '')
    unless_absent(fields, TF.map .. id, task[7], '')
    redis.call('HSET', key, unpack(fields))
  end
  for need, children in pairs(added) do
    local before = redis.call('HGET', key, TF.dependents .. need) or ''
    local joined = table.concat(children, ' ')
    if before ~= '' then joined = before .. ' ' .. joined end
    redis.call('HSET', key, TF.dependents .. need, joined)
  end
  local joined = table.concat(ids, ' ')
  for _, waiter in ipairs(waiters) do
    local needs = redis.call('HGET', key, TF.needs .. waiter) or ''
    redis.call('HSET', key, TF.needs .. waiter, needs == '' and joined or needs .. ' ' .. joined)
    redis.call('HINCRBY', key, TF.unmet .. waiter, #ids)
  end
  if #new > 0 then
    redis.call('HSET', key, WF.order,
               redis.call('HGET', key, WF.order) .. ' ' .. table.concat(new, ' '))
  end
  redis.call('HINCRBY', key, WF.left, #ids)
  redis.call('HINCRBY', key, WF.edges, new_edges(tasks, waiters))
  return ids
end

-- The mapped task whose instance t is, or nil.
local function instance_of(key, t)
  local spawner = redis.call('HGET', key, TF.spawner .. t)
  if spawner and redis.call('HGET', key, TF.map .. spawner) then return spawner end
  return nil
end

-- Remove the word `id` from a space-separated field.
local function drop(key, field, id)
  local kept = {}
  for _, word in ipairs(split(redis.call('HGET', key, field))) do
    if word ~= id then kept[#kept + 1] = word end
  end
  redis.call('HSET', key, field, table.concat(kept, ' '))
end

-- Take back what the tasks an adjustment re-runs (`seen`) added at run time, and what those
-- added in turn: each becomes superseded, leaves the graph (its needs' dependents, its
-- dependents' needs), is no longer counted as left, and its history says why (a mapped task
-- whose instances go expands again as it is reset).  Returns the superseded tasks as a set.
local function supersede(ctx, key, wf, seen, cause, round)
  local order = split(redis.call('HGET', key, WF.order))
  local fields = {}
  for i, d in ipairs(order) do fields[2 * i - 1], fields[2 * i] = TF.spawner .. d, TF.state .. d end
  local got = hmget(key, fields)
  local gone, ids = {}, {}
  for i, d in ipairs(order) do
    local by, state = got[2 * i - 1], got[2 * i]
    if by and (seen[by] or gone[by]) and state ~= TS.superseded then
      gone[d] = true
      ids[#ids + 1] = d
    end
  end
  for _, d in ipairs(ids) do
    local f = redis.call('HMGET', key, TF.state .. d, TF.attempt .. d, TF.needs .. d,
                         TF.dependents .. d)
    if f[1] ~= TS.done then redis.call('HINCRBY', key, WF.left, -1) end
    if f[1] == TS.delayed or f[1] == TS.awaiting then
      redis.call('ZREM', ctx.delayed, delayed_member(wf, d))
    end
    if f[1] == TS.awaiting then count_awaiting(ctx, key, d, -1) end
    redis.call('HSET', key, TF.state .. d, TS.superseded)
    append_history(key, d, {attempt = tonumber(f[2] or ABSENT.attempt), outcome = 'superseded',
                            cause = cause, round = round, at = ctx.now})
    local needs, edges = split(f[3]), 0
    for _, need in ipairs(needs) do
      if not gone[need] then drop(key, TF.dependents .. need, d) end
    end
    for _, child in ipairs(split(f[4])) do
      if not gone[child] then
        drop(key, TF.needs .. child, d)
        edges = edges + 1
      end
    end
    redis.call('HINCRBY', key, WF.edges, -(#needs + edges))
  end
  if #ids > 0 then
    emit(ctx, key, wf, EV.tasks_superseded, nil, nil, ctx.now, EF.target, cause, EF.tasks,
         table.concat(ids, ' '))
  end
  return gone
end

-- The spawn's agents join the shard's agents set, as submit's do, and those new to the
-- workflow join its agents and count in the shard's usage while it runs (so a prune keeps
-- them; its ending uncounts every agent of the workflow).
local function count_new_agents(ctx, key, tasks)
  local known, fresh = {}, {}
  local agents = split(redis.call('HGET', key, WF.agents))
  for _, agent in ipairs(agents) do known[agent] = true end
  for _, task in ipairs(tasks) do
    if not is_wait(task) and not known[task[2]] then
      known[task[2]] = true
      fresh[#fresh + 1] = task[2]
      agents[#agents + 1] = task[2]
      redis.call('HINCRBY', ctx.usage, US.agent .. task[2], 1)
    end
  end
  if #fresh == 0 then return end
  redis.call('SADD', ctx.agents, unpack(fresh))
  redis.call('HSET', key, WF.agents, table.concat(agents, ' '))
end

-- Apply a spawn completion of task t.  `f` is what sp_resolve read of the workflow (status,
-- state, attempt, agent, dependents, entry, left, ttl, tenant).  The spawned tasks need t, so
-- they are published by t's own completion (apply_done), together with nothing that now
-- waits for them.
local function apply_spawn(ctx, key, wf, t, att, out, began, ended, by, f, tasks)
  if f[1] ~= WS.running or (tasks and #tasks == 0) then
    apply_done(ctx, key, wf, t, att, out, began, ended, by, split(f[5]), f[1], f[7], f[8], f[9])
    return
  end
  for _, task in ipairs(tasks or {}) do
    local needs_parent = false
    for _, need in ipairs(task[4]) do needs_parent = needs_parent or need == t end
    if not needs_parent then table.insert(task[4], 1, t) end
  end
  local waiters = split(f[5])
  local refusal = spawn_refusal(key, t, tasks, waiters)
  if refusal then
    local why = 'spawn from ' .. t .. ' refused: ' .. refusal
    record_attempt(key, t, why, began, ended, by)
    append_history(key, t, {attempt = tonumber(att), outcome = 'spawn refused', error = why,
                            at = ended, by = by})
    dead_letter(ctx, key, wf, t, f[4], att, why)
    return
  end
  count_new_agents(ctx, key, tasks)
  local ids = add_tasks(key, t, tasks, waiters)
  emit(ctx, key, wf, EV.tasks_spawned, t, att, ended, EF.tasks, table.concat(ids, ' '))
  local dependents = split(redis.call('HGET', key, TF.dependents .. t))
  apply_done(ctx, key, wf, t, att, out, began, ended, by, dependents, f[1],
             tonumber(f[7]) + #ids, f[8], f[9])
end
