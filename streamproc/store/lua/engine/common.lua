--[[ common.lua: the engine library's calling convention and the helpers its functions share;
  it registers no function.  The engine library is this file, then history.lua, dead.lua,
  submit.lua, grow.lua, map.lua, wait.lua, adjust.lua, resolve.lua, started.lua, recovery.lua,
  admin.lua and prune.lua, joined in that order under the prelude of constants shared with Python
  (streamproc/store/functions.py): WF workflow fields, TF per-task field prefixes (TF.state ..
  task), TS task states, WS workflow statuses, KIND completion kinds, SG the field prefixes
  of signals, EF the fields of stream entries and EV lifecycle event kinds (entries.py),
  ABSENT what hash fields left out read as (fields.py), GROUP the resolver's group, VERSION
  the entry format version, DELAYED_SEPARATOR between workflow and task in a delayed set
  member, PARKED_BYTES the longest value a dead letter keeps whole, ENTRY_BYTES the largest
  task entry (codec.py), US the counter prefixes of the usage hash, WATCH_MS how long a
  workflow's history stream lives after a follower last asked for it (keys.py).

Usage: while a workflow runs, the shard's usage hash counts it for each of its agents (so
sp_prune_agents never removes an agent a running workflow names) and, when it was submitted
for a tenant, in that tenant's workflows in flight; its tenant's bytes count its inputs and
the results recorded while it runs, until its retention passes (a workflow kept forever
counts forever).  Every ending passes through expire() below, and sp_revive counts again.
It also counts, per agent ('' for declared waits), the tasks awaiting a signal: run_wait counts
one in, and every way out of `awaiting` (resume, time_out, skip_unpublished, adjust's reset,
supersede) counts it out through count_awaiting.

Every state change of a workflow, as Redis Functions (FUNCTION LOAD once, FCALL after), so
each one is atomic and no runtime role needs EVAL.  Key names are documented in keys.py; no
key is built here.

Calling convention shared by every function (laid out by streamproc/store/layout.py):
  KEYS[1] events stream   KEYS[2] delayed zset   KEYS[3] done stream
  KEYS[4] agents set      KEYS[5] dead-done stream   KEYS[6] deadlines zset
  KEYS[7] usage hash      KEYS[8] retained zset   KEYS[9] index zset (workflow ids by creation ms)
  KEYS[8+2i], KEYS[9+2i]  tasks stream and dead stream of agent i (i = 1..n)
  KEYS[10+2n ..]          per item, in item order: its workflow hash, then that workflow's
                          history stream (its followers' live view; see history.lua)
  then, per item again    its output stream (chunks its agents emit, kept as long as it):
                          after the pairs, so a function indexing items by pair needs no change
  then, per item again    its history archive (ctx.past), after the output streams
  ARGV[1] = n, ARGV[1+i] = name of agent i, ARGV[2+n ..] function-specific (see each file)

Idempotency: a task's start, completion or requeue applies only while the task is queued
(or, but for a start, running) with the same attempt number the event carries, so
redelivered, duplicated and superseded (zombie) events change nothing.
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

-- Defined in history.lua: an ended workflow is settled as a call ends (stowed in its archive,
-- its hash deleted), and its hash is brought back by context() below (unstow) before a
-- function reads it; each event is recorded in the workflow's history.
local settle, unstow, record_event
-- The context of the function call under way (context() sets it, stowing() reads it).
local called

-- The call's keys by role, as the calling convention above lays them out (ctx.workflows:
-- each workflow's hash key, in item order), without reading any workflow.  Numbers go to
-- redis.call as text where it is cheap to have (ctx.now_text): Redis formats a number
-- argument with "%.17g", which costs several times what "%d" does.
local function keys_of(keys, args)
  local n, now = tonumber(args[1]), now_ms()
  local ctx = {events = keys[1], delayed = keys[2], done = keys[3], agents = keys[4],
               dead_done = keys[5], deadlines = keys[6], usage = keys[7], retained = keys[8],
               index = keys[9], streams = {}, dead = {}, now = now, ended = {},
               now_text = string.format('%d', now), wf_base = 9 + 2 * n, arg_base = 1 + n}
  for i = 1, n do
    ctx.streams[args[1 + i]] = keys[8 + 2 * i]
    ctx.dead[args[1 + i]] = keys[9 + 2 * i]
  end
  ctx.history, ctx.output, ctx.past, ctx.restow, ctx.workflows = {}, {}, {}, {}, {}
  ctx.ttl, ctx.followed = {}, {}
  local items = (#keys - ctx.wf_base) / 4
  for item = 1, items do
    local key = keys[ctx.wf_base + 2 * item - 1]
    ctx.workflows[item] = key
    ctx.history[key] = keys[ctx.wf_base + 2 * item]
    ctx.output[key] = keys[ctx.wf_base + 2 * items + item]
    ctx.past[key] = keys[ctx.wf_base + 3 * items + item]
  end
  return ctx
end

-- The call's keys, each of its workflows unstowed (once, though several items name it), and
-- the call marked as under way.  `lazily`: the function unstows those it reads itself
-- (sp_submit, whose workflows are mostly new).
local function context(keys, args, lazily)
  local ctx = keys_of(keys, args)
  if not lazily then
    local seen = {}
    for _, key in ipairs(ctx.workflows) do
      if not seen[key] then
        seen[key] = true
        unstow(ctx, key)
      end
    end
  end
  called = ctx
  return ctx
end

-- Every function is registered as stowing(itself): once it returned, each workflow that
-- ended or was unstowed during the call, or was an ended hash when it began, is settled (if
-- over then).
local function stowing(fn)
  return function(keys, args)
    called = nil
    local out = fn(keys, args)
    if called then
      for _, key in ipairs(called.restow) do settle(called, key) end
    end
    called = nil
    return out
  end
end

-- The workflow is to be stowed when the call ends (stowing() above), if it is over then.
local function restow(ctx, key)
  if not ctx.restow[key] then
    ctx.restow[key] = true
    ctx.restow[#ctx.restow + 1] = key
  end
end

-- The member of the delayed set that stands for a task.
local function delayed_member(wf, t)
  return wf .. DELAYED_SEPARATOR .. t
end

-- each(...) with the elements of list, 1000 at a time (an even count, so field/value pairs
-- stay whole): Lua's unpack() has a small stack limit.
local function in_chunks(list, each)
  for first = 1, #list, 1000 do each(unpack(list, first, math.min(first + 999, #list))) end
end

-- HMGET of any number of fields: one call when they fit in one (nearly always).
local function hmget(key, fields)
  local count = #fields
  if count == 0 then return {} end
  if count <= 1000 then return redis.call('HMGET', key, unpack(fields)) end
  local out = {}
  in_chunks(fields, function(...)
    for _, v in ipairs(redis.call('HMGET', key, ...)) do out[#out + 1] = v end
  end)
  return out
end

local function is_over(status)
  return status == WS.completed or status == WS.failed or status == WS.cancelled
end

-- A number as text, as an entry holds it (every number an event carries is whole).
local function number_text(value)
  if value == math.floor(value) then return string.format('%d', value) end
  return tostring(value)
end

-- A lifecycle event, on the shard's events stream and in the workflow's history.  Its fields
-- are v, kind, wf, then task and att if it has them, at, and `...` (field/value pairs):
-- event_line() (history.lua) reads them in this order.
local function emit(ctx, key, wf, kind, task, att, at, ...)
  local fields
  if task then
    fields = {EF.v, VERSION, EF.kind, kind, EF.wf, wf, EF.task, task, EF.att, att, EF.at, at, ...}
  else
    fields = {EF.v, VERSION, EF.kind, kind, EF.wf, wf, EF.at, at, ...}
  end
  for i = 2, #fields, 2 do
    if type(fields[i]) == 'number' then fields[i] = number_text(fields[i]) end
  end
  record_event(ctx, key, redis.call('XADD', ctx.events, '*', unpack(fields)), kind, fields)
end

-- What publish() reads of task t (its agent first), and its unmet needs: a completion reads
-- its dependents once, for its checks, its counts and to publish them.  Written out: a loop
-- over field names cost Redis more than the two HMGETs a dependent this saves.
local function read_to_publish(key, t)
  return redis.call('HMGET', key, TF.agent .. t, TF.input .. t, TF.needs .. t, TF.attempt .. t,
                    TF.timeout .. t, TF.map .. t, TF.wait_for .. t, TF.signal .. t,
                    TF.unmet .. t)
end

-- Agents of the given tasks that this call has no stream keys for (the caller's agent list is
-- stale: it reloads the agents set and retries); `known` (optional) holds what
-- read_to_publish() read of some of them, by task.
local function missing_agent(ctx, key, tasks, known)
  local fields = {}
  for _, t in ipairs(tasks) do
    local read = known and known[t]
    if not read then
      fields[#fields + 1] = TF.agent .. t
    elseif read[1] and not ctx.streams[read[1]] then
      return read[1]
    end
  end
  if #fields == 0 then return nil end
  for _, agent in ipairs(hmget(key, fields)) do
    if agent and not ctx.streams[agent] then return agent end
  end
  return nil
end

-- Defined in dead.lua: a task's dead letter, which fails its workflow.
local dead_letter
-- Defined in map.lua: what a mapped task does once its needs are done (it runs no agent).
local run_map
-- Defined in wait.lua: a task begins to wait for a signal (a declared wait runs no agent).
local run_wait

-- The bytes an entry of these field/value pairs takes, counted as the worker's codec counts
-- them (codec._check_envelope), so no entry the worker would refuse is ever written.
local ENTRY_LIMIT = ENTRY_BYTES + 0  -- a number: tonumber() cannot run as the library loads

local function entry_bytes(fields)
  local n = 0
  for i = 1, #fields do n = n + #fields[i] end  -- not ipairs(): a C call per element
  return n
end

-- XADD the task's current attempt to its agent's stream, with its input, its needs' results
-- and the payload of the signal that resumed it, if any (a mapped task runs its map instead,
-- and a declared wait waits).
-- A fan-in can join results far larger than any one of them: past ENTRY_BYTES the task is not
-- published but dead-lettered, and its workflow fails.  Returns whether it was published.
-- `f`: what read_to_publish() read of t in this call, if it did; `done`, `result`: a task
-- this call just completed and the result it wrote, which t's needs may spare reading.
local function publish(ctx, key, wf, t, f, done, result)
  f = f or read_to_publish(key, t)
  f[4] = f[4] or ABSENT.attempt
  if f[6] then return run_map(ctx, key, wf, t, f) end
  if f[7] and not f[1] then
    return run_wait(ctx, key, wf, t, f[7], math.floor((tonumber(f[5] or '') or 0) * 1000))
  end
  local deps = '{}'
  local needs = split(f[3])
  if #needs == 1 and needs[1] == done then
    deps = '{"' .. done .. '":' .. result .. '}'
  elseif #needs > 0 then
    local fields = {}
    for i = 1, #needs do fields[i] = TF.result .. needs[i] end
    local results = hmget(key, fields)
    local parts = {}
    for i = 1, #needs do parts[i] = '"' .. needs[i] .. '":' .. (results[i] or 'null') end
    deps = '{' .. table.concat(parts, ',') .. '}'
  end
  local entry = {EF.v, VERSION, EF.wf, wf, EF.task, t, EF.agent, f[1], EF.att, f[4],
                 EF.payload, f[2], EF.deps, deps, EF.timeout, f[5] or ''}
  if f[8] then
    entry[#entry + 1], entry[#entry + 2] = EF.signal_payload, f[8]
  end
  if entry_bytes(entry) > ENTRY_LIMIT then
    dead_letter(ctx, key, wf, t, f[1], f[4], string.format(
      "inputs too large: %.1f MiB of input and needs' results, over the %d MiB bound",
      (#f[2] + #deps) / 1048576, ENTRY_LIMIT / 1048576))
    return false
  end
  local id = redis.call('XADD', ctx.streams[f[1]], '*', unpack(entry))
  redis.call('HSET', key, TF.state .. t, TS.queued, TF.queued .. t, ctx.now_text, TF.entry .. t,
             id)
  return true
end

-- A task whose current attempt is published: queued, or running once its worker began it.
local function published(state)
  return state == TS.queued or state == TS.running
end

-- Record t's next attempt and return it: its field is absent while it is the first (fields.py),
-- and an increment from absent gives 1, so that one increments again.
local function next_attempt(key, t)
  local att = redis.call('HINCRBY', key, TF.attempt .. t, 1)
  if att == 1 then att = redis.call('HINCRBY', key, TF.attempt .. t, 1) end
  return att
end

local function append_history(key, t, record)
  local history = cjson.decode(redis.call('HGET', key, TF.history .. t) or '[]')
  history[#history + 1] = record
  redis.call('HSET', key, TF.history .. t, cjson.encode(history))
end

-- The workflow counts (delta 1: it runs again) or stops counting (-1: it ended, kept ttl ms)
-- in the usage hash; an ended tenant workflow's bytes are released once its ttl passes.
-- Returns its timeout (ms, 0: none), read with the rest: its callers need it too.
local function count_usage(ctx, key, delta, ttl)
  local f = redis.call('HMGET', key, WF.agents, WF.tenant, WF.bytes, WF.timeout)
  local by = delta > 0 and '1' or '-1'
  for _, agent in ipairs(split(f[1])) do
    redis.call('HINCRBY', ctx.usage, US.agent .. agent, by)
  end
  local timeout = tonumber(f[4] or '0') or 0
  if not f[2] then return timeout end
  redis.call('HINCRBY', ctx.usage, US.workflows .. f[2], by)
  local member = f[2] .. ' ' .. (f[3] or '0') .. ' ' .. key
  if delta > 0 then
    redis.call('ZREM', ctx.retained, member)
  elseif ttl > 0 then
    redis.call('ZADD', ctx.retained, ctx.now + ttl, member)
  end
  return timeout
end

-- t begins (1) or stops (-1) awaiting a signal: the usage hash counts awaiting tasks per agent
-- ('' for declared waits), so status shows them without reading any workflow.
local function count_awaiting(ctx, key, t, delta)
  local agent = redis.call('HGET', key, TF.agent .. t) or ''
  redis.call('HINCRBY', ctx.usage, US.awaiting .. agent, delta)
end

-- Ended tenant workflows whose retention passed no longer count their bytes (at most 1000 a
-- call; the next call goes on).
local function release_retained(ctx)
  local due = redis.call('ZRANGE', ctx.retained, '-inf', ctx.now, 'BYSCORE', 'LIMIT', 0, 1000)
  for _, member in ipairs(due) do
    local part = split(member)
    redis.call('HINCRBY', ctx.usage, US.bytes .. part[1], -tonumber(part[2]))
  end
  if #due > 0 then redis.call('ZREM', ctx.retained, unpack(due)) end
end

-- A finished workflow's output expires after its ttl (ms, 0: never), and so does its stowed
-- archive (settle(), once the call is over: ctx.ttl; its hash is gone by then).
-- Every ending passes here (finish(), and a completion), so the workflow leaves the
-- deadlines set (only one with a timeout is in it) and stops counting in the usage hash here
-- too: its member is its hash key, which every caller has.
local function expire(ctx, key, ttl_text)
  restow(ctx, key)
  local ttl = tonumber(ttl_text or '0')
  ctx.ttl[key] = ttl
  if count_usage(ctx, key, -1, ttl) > 0 then redis.call('ZREM', ctx.deadlines, key) end
  if ttl > 0 then redis.call('PEXPIRE', ctx.output[key], ttl_text) end
end

-- Counts the ending in ctx.ended, which the functions return for the caller's metrics.
local function finish(key, status, ctx, reason)
  ctx.ended[status] = (ctx.ended[status] or 0) + 1
  local fields = {WF.status, status, WF.ended, ctx.now_text}
  if reason and reason ~= '' then fields[5], fields[6] = WF.reason, reason end  -- none: absent
  redis.call('HSET', key, unpack(fields))
  expire(ctx, key, redis.call('HGET', key, WF.ttl))
end

-- The workflow fails: tasks not yet published are skipped, waits for signals too; queued ones
-- may still finish, but nothing new is published.
local function skip_unpublished(ctx, key, wf, order, states)
  for i, t in ipairs(order) do
    local s = states[i]
    if s == TS.waiting or s == TS.delayed or s == TS.awaiting then
      redis.call('HSET', key, TF.state .. t, TS.skipped)
      if s == TS.awaiting then count_awaiting(ctx, key, t, -1) end
      if s ~= TS.waiting then redis.call('ZREM', ctx.delayed, delayed_member(wf, t)) end
    end
  end
end

local function task_states(key, order)
  local fields = {}
  for i, t in ipairs(order) do fields[i] = TF.state .. t end
  return hmget(key, fields)
end

-- A finished workflow's last event is named after its status.
local function fail_workflow(ctx, key, wf, reason)
  local order = split(redis.call('HGET', key, WF.order))
  skip_unpublished(ctx, key, wf, order, task_states(key, order))
  finish(key, WS.failed, ctx, reason)
  emit(ctx, key, wf, EV.failed, nil, nil, ctx.now, EF.reason, reason)
end

-- `left` and `ttl` are the hash's fields as read before this completion: the task's outcome,
-- the count of tasks left and, for the last one, the workflow's end go in one HSET.  The
-- result's bytes count for the workflow's `tenant`, if any, while it runs.  `with_start`: no
-- start of this attempt was recorded, so the event carries it (`began`, `by`), one event
-- where a task_started would be a second.  `ahead` (optional): what read_to_publish() read of
-- the dependents.
local function apply_done(ctx, key, wf, t, att, out, began, ended, by, dependents, status, left,
                          ttl, tenant, with_start, ahead)
  left = tonumber(left or '0') - 1
  local completes = left == 0 and status == WS.running
  local fields = {TF.state .. t, TS.done, TF.result .. t, out, TF.began .. t, began,
                  TF.ended .. t, ended, TF.consumer .. t, by, WF.left, string.format('%d', left)}
  if completes then
    for _, v in ipairs({WF.status, WS.completed, WF.ended, ctx.now_text}) do
      fields[#fields + 1] = v
    end
  end
  if with_start then
    emit(ctx, key, wf, EV.task_done, t, att, ended, EF.began, began, EF.by, by)
  else
    emit(ctx, key, wf, EV.task_done, t, att, ended)
  end
  redis.call('HSET', key, unpack(fields))
  if status ~= WS.running then return end  -- an ended workflow's bytes are counted already
  if tenant then
    redis.call('HINCRBY', key, WF.bytes, #out)
    redis.call('HINCRBY', ctx.usage, US.bytes .. tenant, #out)
  end
  for _, child in ipairs(dependents) do
    local read = ahead and ahead[child]
    -- A count read as 1 waits for t alone, so no completion nested in this loop (a map done
    -- at once) can have changed it; any other count is decremented where it is.
    if (read and read[9] == '1') or redis.call('HINCRBY', key, TF.unmet .. child, -1) == 0 then
      redis.call('HDEL', key, TF.unmet .. child)  -- absent reads as 0 (fields.py)
      if not publish(ctx, key, wf, child, read, t, out) then return end  -- the workflow failed
    end
  end
  if completes then
    ctx.ended[WS.completed] = (ctx.ended[WS.completed] or 0) + 1  -- finish()'s count, done above
    expire(ctx, key, ttl)
    emit(ctx, key, wf, EV.completed, nil, nil, ctx.now)
  end
end

local function record_attempt(key, t, err, began, ended, by)
  redis.call('HSET', key, TF.error .. t, err, TF.began .. t, began, TF.ended .. t, ended,
             TF.consumer .. t, by)
end
