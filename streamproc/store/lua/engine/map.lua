--[[ map.lua: a mapped task (TaskSpec.map) runs its agent once per item of one need's result.
  It registers no function; publish (common.lua) hands it a mapped task whose needs are done.

The first time, the task expands: the need's result must be a JSON list of at most the
workflow's max_map items, and each item becomes an instance `<task>[i]` (add_tasks in grow.lua)
with input {"item": <item>, ...the task's input...}, the task's agent, retries, timeout and
needs.  The task itself then waits for its instances, and once they are all done it is done
without running anything, its result the list of theirs, in order.  Items are cut out of the
result's text, never decoded, so numbers reach the instances exactly as written.
]]

local function trim(s)
  return string.match(s, '^%s*(.-)%s*$')
end

-- The items of a JSON array's text, each as its own text, or nil when it is not an array.
local function array_items(text)
  local open = string.find(text, '%S')
  if not open or string.sub(text, open, open) ~= '[' then return nil end
  local items, depth, start, i = {}, 0, open + 1, open + 1
  while true do
    i = string.find(text, '[%[%]{}",]', i)
    if not i then return nil end
    local c = string.sub(text, i, i)
    if c == '"' then  -- skip the string, escapes and all
      repeat
        i = string.find(text, '["\\]', i + 1)
        if not i then return nil end
        local escape = string.sub(text, i, i) == '\\'
        if escape then i = i + 1 end
      until not escape
    elseif c == '[' or c == '{' then
      depth = depth + 1
    elseif depth > 0 and (c == ']' or c == '}') then
      depth = depth - 1
    elseif c == ']' then
      local last = trim(string.sub(text, start, i - 1))
      if last ~= '' then items[#items + 1] = last end
      if trim(string.sub(text, i + 1)) ~= '' then return nil end
      return items
    elseif c == ',' and depth == 0 then
      items[#items + 1] = trim(string.sub(text, start, i - 1))
      start = i + 1
    end
    i = i + 1
  end
end

-- Whether publishing t may complete it at once: a mapped task (no items), or a declared wait
-- (a signal kept for it).  `read`: what read_to_publish() read of t, if it did.
local function completes_at_once(key, t, read)
  if read then return read[6] or (read[7] and not read[1]) end
  local f = redis.call('HMGET', key, TF.map .. t, TF.wait_for .. t, TF.agent .. t)
  return f[1] or (f[2] and not f[3])
end

-- The tasks that publishing `tasks` may publish in the same step: those, and the dependents
-- of one among them that may complete at once, and so on.  Its caller needs stream keys for
-- all their agents.  `known` (optional): what read_to_publish() read of some of them.
local function reachable(key, tasks, known)
  local out, seen = {}, {}
  for _, t in ipairs(tasks) do
    out[#out + 1], seen[t] = t, true
  end
  local i = 1
  while i <= #out do
    if completes_at_once(key, out[i], known and known[out[i]]) then
      for _, d in ipairs(split(redis.call('HGET', key, TF.dependents .. out[i]))) do
        if not seen[d] then out[#out + 1], seen[d] = d, true end
      end
    end
    i = i + 1
  end
  return out
end

-- The mapped task t is done once its `count` instances are: its result is their results.
local function collect(ctx, key, wf, t, att, count)
  local fields = {}
  for i = 1, count do fields[i] = TF.result .. t .. '[' .. (i - 1) .. ']' end
  local results = hmget(key, fields)
  for i = 1, count do results[i] = results[i] or 'null' end
  local f = redis.call('HMGET', key, WF.status, TF.dependents .. t, WF.left, WF.ttl)
  apply_done(ctx, key, wf, t, att, '[' .. table.concat(results, ',') .. ']', ctx.now, ctx.now,
             '', split(f[2]), f[1], f[3], f[4])
  return redis.call('HGET', key, WF.status) ~= WS.failed
end

-- `f` is what publish read of t: agent, input, needs, attempt, timeout, mapped need.
-- Returns false when the workflow failed.
run_map = function(ctx, key, wf, t, f)
  local g = redis.call('HMGET', key, TF.mapped .. t, TF.result .. f[6], TF.retries .. t,
                       WF.max_map)
  if g[1] then return collect(ctx, key, wf, t, f[4], tonumber(g[1])) end
  local items = array_items(g[2] or 'null')
  local limit = tonumber(g[4] or ABSENT.max_map)
  local refusal
  if not items then
    refusal = 'map over ' .. f[6] .. ': its result is not a list'
  elseif f[2] ~= 'null' and string.sub(f[2], 1, 1) ~= '{' then
    refusal = 'map over ' .. f[6] .. ': its input is not a mapping'
  elseif limit > 0 and #items > limit then
    refusal = string.format('map over %s: %d items, over the limit of %d', f[6], #items, limit)
  end
  if refusal then
    dead_letter(ctx, key, wf, t, f[1], f[4], refusal)
    return false
  end
  redis.call('HSET', key, TF.mapped .. t, #items)
  if #items == 0 then return collect(ctx, key, wf, t, f[4], 0) end
  local rest = '}'
  if f[2] ~= 'null' and f[2] ~= '{}' then rest = ',' .. string.sub(f[2], 2) end
  local tasks = {}
  for i, item in ipairs(items) do
    tasks[i] = {t .. '[' .. (i - 1) .. ']', f[1], '{"item":' .. item .. rest, split(f[3]),
                tonumber(g[3] or ABSENT.retries), f[5] or '', ''}
  end
  local ids = add_tasks(key, t, tasks, {t})
  emit(ctx, key, wf, EV.tasks_spawned, t, f[4], ctx.now, EF.tasks, table.concat(ids, ' '))
  for _, id in ipairs(ids) do
    if not publish(ctx, key, wf, id) then return false end
  end
  return true
end
