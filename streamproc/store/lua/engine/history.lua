--[[ history.lua: an ended workflow's history archive; it registers no function.  common.lua
  declares reopen and archive, since emit needs them before this file is joined.
]]

-- A workflow's history is its stream while it runs.  Whatever is emitted once it is over (its
-- final event, then any late one) is copied, in the same call, from the stream to its archive
-- (ctx.past: one line an entry, archive_line below): the entries after the archive's last.
-- The archive expires with the hash
-- (never, when the hash is kept forever); the stream only outlives its last event by
-- HISTORY_GRACE_MS, so followers blocked on it get the final event at once, and the finished
-- workflow keeps its history in a compact string.

-- The id of an archive's last entry (the first element of its last line), or nil.
local function last_archived(past)
  if not past then return nil end
  local i = #past - 1
  while i > 0 and string.byte(past, i) ~= 10 do i = i - 1 end
  return string.match(past, '^%["([^"]+)"', i + 1)
end

-- A stream that expired after an earlier end is made again with no entry and the archive's
-- last id as its last, so its new ids follow the archived ones whatever the clock did.
reopen = function(ctx, key, past)
  local hist = ctx.history[key]
  if past and redis.call('EXISTS', hist) == 0 then
    redis.call('XADD', hist, 'MAXLEN', 0, last_archived(past), EF.v, VERSION)
  end
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

-- An entry as a line of the archive: the JSON array [id, kind, field, value, ...], without
-- `v` (always VERSION) and `wf` (the archive's own), which the reader adds back; a time (a
-- number of ms, written without a leading zero) takes a digit or two where it took thirteen
-- (ops/history.py reads it).  Archives of 0.7 and before have lines [id, 'v', '1', 'kind',
-- kind, field, value, ...] with every value a string: the reader takes both.
local function archive_line(entry)
  local ms = tonumber(string.match(entry[1], '^%d+'))
  local line, flat = {entry[1], ''}, entry[2]
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

-- `past` is the archive as it was (false: none yet).
archive = function(ctx, key, past)
  refold(ctx, key)
  local hist = ctx.history[key]
  local last = last_archived(past)
  local entries = redis.call('XRANGE', hist, last and ('(' .. last) or '-', '+')
  if #entries > 0 then
    local lines = {}
    for i, entry in ipairs(entries) do lines[i] = archive_line(entry) end
    -- SET, not APPEND: a string APPEND grows is allocated twice its length
    redis.call('SET', ctx.past[key], (past or '') .. table.concat(lines))
  end
  local left = expire_past(ctx, key)
  redis.call('PEXPIRE', hist, math.min(tonumber(HISTORY_GRACE_MS), left > 0 and left or math.huge))
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

fold = function(ctx, key)
  if not is_over(redis.call('HGET', key, WF.status))
      or redis.call('OBJECT', 'ENCODING', key) ~= 'hashtable' then
    return
  end
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
  if next(moved) == nil then return end
  for field, value in pairs(moved) do moved[field] = folded_value(field, value, created) end
  local line = cjson.encode(moved) .. '\n'
  kept[#kept + 1], kept[#kept + 2] = WF.folded, #line
  local left = redis.call('PTTL', key)
  redis.call('DEL', key)
  hset_pairs(key, kept)
  if left > 0 then redis.call('PEXPIRE', key, left) end
  set_past(ctx, key, line .. (redis.call('GET', ctx.past[key]) or ''))
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
