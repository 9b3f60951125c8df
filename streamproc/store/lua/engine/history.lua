--[[ history.lua: a workflow's history, kept in its archive and shown live to its followers;
  it registers sp_watch.  common.lua declares record_event, settle and unfold, since emit,
  folding and context need them before this file is joined.

A workflow's history is its archive (ctx.past, a string): each event emit() adds to the
shard's events stream is appended to it, in the same call and under the same id, as one line
(archive_line below).  So the history is whole whatever fails, and no stream is made per
workflow for it.  While the workflow runs the archive grows by APPEND; once it is over (the
call that ends it, and any later one that records a late event) the archive is written again
at its exact size (APPEND leaves room to grow) and expires with the hash (never, when the
hash is kept forever).

Followers read the events as they come from the workflow's history stream (ctx.history),
which exists only while someone follows: sp_watch makes it, empty, and gives it WATCH_MS to
live (a follower calls it again before that passes), and record_event() adds each event to
it while it exists (XADD NOMKSTREAM), under the events stream's id.  The stream outlives the
workflow's end by WATCH_MS at most.

sp_watch
  KEYS  the shared head, no agents, then the workflow's hash, history stream, output stream
        and archive
  ARGV  0
  Makes the history stream (empty) if the workflow runs and it has none, and gives it
  WATCH_MS to live.
  returns {the workflow's status (false: no such workflow), 1 if it made the stream else 0,
        the id of the workflow's last event (false: none)}
]]

-- The id of an archive's last entry (the first element of its last line), or nil.
local function last_archived(past)
  if not past then return nil end
  local i = #past - 1
  while i > 0 and string.byte(past, i) ~= 10 do i = i - 1 end
  return string.match(past, '^%["([^"]+)"', i + 1)
end

-- The archive expires with the hash (never, when the hash is kept forever); the hash's PTTL.
local function expire_past(ctx, key)
  local left = redis.call('PTTL', key)
  if left > 0 then
    redis.call('PEXPIRE', ctx.past[key], left)
  else
    redis.call('PERSIST', ctx.past[key])
  end
  return left
end

-- The times of an event (ms), archived as JSON numbers: their distance from the entry id's ms.
local LINE_TIMES = {[EF.at] = true, [EF.began] = true}

-- An entry (its id and field/value list) as a line of the archive: the JSON array [id, kind,
-- field, value, ...], without `v` (always VERSION) and `wf` (the archive's own), which the
-- reader adds back; a time (a number of ms, written without a leading zero) takes a digit or
-- two where it took thirteen (ops/history.py reads it).  Archives of 0.7 and before have
-- lines [id, 'v', '1', 'kind', kind, field, value, ...], every value a string: the reader
-- takes both.
local function archive_line(id, flat)
  local ms = tonumber(string.match(id, '^%d+'))
  local line = {id, ''}
  for j = 1, #flat, 2 do
    local field, value = flat[j], flat[j + 1]
    if field == EF.kind then
      line[2] = value
    elseif field ~= EF.v and field ~= EF.wf then
      if LINE_TIMES[field] and #value < 14 and string.match(value, '^[1-9]%d*$') then
        value = tonumber(value) - ms  -- exact: cjson writes 14 digits, these take 13 at most
      end
      line[#line + 1], line[#line + 2] = field, value
    end
  end
  return cjson.encode(line) .. '\n'
end

-- A workflow submitted before 0.8 kept its first events in its history stream only: when a
-- later event makes its archive (`line`, just appended), they go before it.
local function adopt_stream(ctx, key, line)
  local lines = {}
  for i, entry in ipairs(redis.call('XRANGE', ctx.history[key], '-', '+')) do
    lines[i] = archive_line(entry[1], entry[2])
  end
  if #lines == 0 then return end
  lines[#lines + 1] = line
  redis.call('SET', ctx.past[key], table.concat(lines))
  redis.call('PEXPIRE', ctx.history[key], WATCH_MS)  -- followers keep it as long as they need
end

-- The event of `kind` just added to the events stream as `id` (with `fields`) goes to the
-- workflow's history.
record_event = function(ctx, key, id, kind, fields)
  local line = archive_line(id, fields)
  if redis.call('APPEND', ctx.past[key], line) == #line and kind ~= EV.submitted then
    adopt_stream(ctx, key, line)  -- the archive was made just now
  end
  redis.pcall('XADD', ctx.history[key], 'NOMKSTREAM', id, unpack(fields))  -- when followed
  if is_over(redis.call('HGET', key, WF.status)) then refold(ctx, key) end
end

-- An ended workflow whose hash Redis keeps as a hashtable (more than 128 fields, or a value
-- over 64 bytes: an input or a result, mostly) costs about 50 bytes a field.  Folded, its
-- per-task and signal fields ("<letter>:<name>") move to one JSON object, the first line of
-- its archive, and the hash is written again with the rest and `folded` (that line's length),
-- small enough for the compact listpack encoding.  A smaller hash is left as it is: folding
-- it would save nothing.

local function hset_pairs(key, flat)
  in_chunks(flat, function(...) redis.call('HSET', key, ...) end)
end

-- The archive is written again (SET keeps no expiry: it gets the hash's).
local function set_past(ctx, key, text)
  if text == '' then
    redis.call('DEL', ctx.past[key])
    return
  end
  redis.call('SET', ctx.past[key], text)
  expire_past(ctx, key)
end

-- A task's times (ms) are folded as JSON numbers, their distance from the workflow's
-- creation: a few digits where the time takes thirteen.  Every other value stays a string.
local TIMES = {[TF.queued] = true, [TF.began] = true, [TF.ended] = true,
               [TF.waiting_since] = true}

local function folded_value(field, value, created)
  if created and TIMES[string.sub(field, 1, 2)] and string.match(value, '^%d+$') then
    return tonumber(value) - created
  end
  return value
end

-- Folds the workflow's hash into its archive; returns whether it did (it had task fields).
local function fold(ctx, key)
  local flat = redis.call('HGETALL', key)
  local kept, moved, created = {}, {}, nil
  for i = 1, #flat, 2 do
    if string.byte(flat[i], 2) == 58 then  -- "<letter>:"
      moved[flat[i]] = flat[i + 1]
    else
      kept[#kept + 1], kept[#kept + 2] = flat[i], flat[i + 1]
      if flat[i] == WF.created then created = tonumber(flat[i + 1]) end
    end
  end
  if next(moved) == nil then return false end
  for field, value in pairs(moved) do moved[field] = folded_value(field, value, created) end
  local line = cjson.encode(moved) .. '\n'
  kept[#kept + 1], kept[#kept + 2] = WF.folded, #line
  local left = redis.call('PTTL', key)
  redis.call('DEL', key)
  hset_pairs(key, kept)
  if left > 0 then redis.call('PEXPIRE', key, left) end
  set_past(ctx, key, line .. (redis.call('GET', ctx.past[key]) or ''))
  return true
end

-- A workflow over when a call ends (folding() calls this for each it ended, unfolded or
-- recorded an event of while over) is folded if its hash is a hashtable, and its archive is
-- written at its exact size, expiring with the hash, either way.
settle = function(ctx, key)
  if not is_over(redis.call('HGET', key, WF.status)) then return end
  if redis.call('OBJECT', 'ENCODING', key) == 'hashtable' and fold(ctx, key) then return end
  set_past(ctx, key, redis.call('GET', ctx.past[key]) or '')
end

-- A fold its archive no longer holds (the archive deleted by hand) is dropped: the workflow
-- keeps its own fields, and no function fails on it again and again.
unfold = function(ctx, key)
  local size = tonumber(redis.call('HGET', key, WF.folded))
  if not size then return end
  redis.call('HDEL', key, WF.folded)
  local past = redis.call('GET', ctx.past[key]) or ''
  local whole, moved = pcall(cjson.decode, string.sub(past, 1, size))
  if not whole or type(moved) ~= 'table' then return end
  local created = tonumber(redis.call('HGET', key, WF.created)) or 0
  local flat = {}
  for field, value in pairs(moved) do
    if type(value) == 'number' then value = string.format('%d', created + value) end
    flat[#flat + 1], flat[#flat + 2] = field, value
  end
  hset_pairs(key, flat)
  set_past(ctx, key, string.sub(past, size + 1))
  refold(ctx, key)
end

local function watch(keys, args)
  local ctx = keys_of(keys, args)  -- not context(): a watch reads the workflow, never unfolds it
  local key = ctx.workflows[1]
  local hist = ctx.history[key]
  local status, made = redis.call('HGET', key, WF.status), 0
  if status and not is_over(status) and redis.call('EXISTS', hist) == 0 then
    redis.call('XADD', hist, 'MAXLEN', 0, '0-1', EF.v, VERSION)
    made = 1
  end
  redis.call('PEXPIRE', hist, WATCH_MS)
  return {status, made, last_archived(redis.call('GET', ctx.past[key])) or false}
end

redis.register_function('sp_watch', watch)
