--[[ history.lua: a workflow's history, kept in its archive and shown live to its followers;
  it registers sp_watch.  common.lua declares record_event, settle and unstow, since emit,
  stowing and context need them before this file is joined.

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

sp_stow
  KEYS  the shared head, no agents, then per workflow its hash, history stream, output stream
        and archive
  ARGV  0, then 3 per workflow: its hash's field count and its archive's length as the caller
        read them, and the stowed archive it made of them (store/stow.py; '': stow it here)
  Stows each workflow still as read (see stow_read below).
  returns how many it stowed
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

-- A time (ms, as text) in an archive line: its distance from the line's id's ms (a number).
local function line_time(value, ms)
  if #value < 14 and string.find(value, '^[1-9]%d*$') then return tonumber(value) - ms end
  return value
end

-- An entry (its id and field/value list) as a line of the archive: the JSON array [id, kind,
-- field, value, ...], without `v` (always VERSION) and `wf` (the archive's own), which the
-- reader adds back; a time (a number of ms, written without a leading zero) takes a digit or
-- two where it took thirteen, and `at` is left out when it is the id's own ms, as it mostly
-- is (ops/history.py reads it).  Archives of 0.7 and before have
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
      if LINE_TIMES[field] then value = line_time(value, ms) end
      if field ~= EF.at or value ~= 0 then line[#line + 1], line[#line + 2] = field, value end
    end
  end
  return cjson.encode(line) .. '\n'
end

-- archive_line() of an event as emit() lays its fields out (v, kind, wf, then task and att if
-- it has them, then at and the rest), taking the head by position rather than looping over it:
-- every event pays for its line, and that loop cost Redis about as much as the commands that
-- write the event.  Times take 13 digits at most, so cjson's 14 write them exactly.
local function event_line(id, fields)
  local ms = tonumber(string.match(id, '^%d+'))
  local line, at, rest
  if fields[7] == EF.task then
    line, at, rest = {id, fields[4], EF.task, fields[8], EF.att, fields[10]}, fields[12], 13
  else
    line, at, rest = {id, fields[4]}, fields[8], 9
  end
  at = line_time(at, ms)
  if at ~= 0 then line[#line + 1], line[#line + 2] = EF.at, at end
  for j = rest, #fields, 2 do
    local value = fields[j + 1]
    if fields[j] == EF.began then value = line_time(value, ms) end
    line[#line + 1], line[#line + 2] = fields[j], value
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
  local line = event_line(id, fields)
  if redis.call('APPEND', ctx.past[key], line) == #line and kind ~= EV.submitted then
    adopt_stream(ctx, key, line)  -- the archive was made just now
  end
  local followed = ctx.followed[key]
  if followed == nil then  -- asked once a call: none can start following before it ends
    followed = redis.call('EXISTS', ctx.history[key]) == 1
    ctx.followed[key] = followed
  end
  if followed then redis.pcall('XADD', ctx.history[key], 'NOMKSTREAM', id, unpack(fields)) end
end

--[[ An ended workflow is stowed: its hash, a key of its own beside the archive (about 170
bytes of bookkeeping a key, and 50 a field once Redis keeps it as a hashtable), goes, and
its fields become one JSON object, the archive's first line, which expires as the hash would
have.  Its own fields keep their names and values; its per-task and signal fields
("<letter>:<name>") are kept by letter: "<letter>:" holds each name's value (null: none),
or one value when all names have the same, the names being its tasks in order and then
any others, which "#" lists when there are any; `left`, 0 once it ended but for a late
task, is left out when 0.  Times (its end, its tasks' queued, began, ended, waiting since)
are JSON numbers, and the <ms> of entry ids "<ms>-<seq>" (its tasks' entries, and the ids
of the archive's lines after it) is a number too: their distance from the workflow's
creation, a few digits where a time takes thirteen.  When all its tasks had one consumer
(their "w:" is one value), an event's `by` naming it is 1 in the lines after it.
context() brings the hash back (unstow) before a function reads the workflow; the call's
end stows it again (settle).  A workflow sp_resolve ends is stowed by the process that called
it instead (store/stow.py makes the same line; sp_stow writes it).  Python readers go through
store/folded.py.

0.8 kept the hash of an ended workflow, and moved only the task fields of a large one to its
archive's first line ({"<letter>:<name>": value}, the hash's `folded` field that line's
length): unstow() reads that form too.
]]

local NAMES = '#'

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

-- An entry id "<ms>-<seq>" with its <ms> moved by `by` ms (anything else as it is).
local function shift_id(id, by)
  local ms, seq = string.match(id, '^(%-?%d+)%-(%d+)$')
  if not ms then return id end
  return string.format('%d-%s', tonumber(ms) + by, seq)
end

-- How a per-task or signal value is stowed, by its field's letter: a time as a JSON number, its
-- distance from the workflow's creation, and an entry id's <ms> the same way; any other as it is.
local OFFSET = {[TF.queued] = 'time', [TF.began] = 'time', [TF.ended] = 'time',
                [TF.waiting_since] = 'time', [TF.entry] = 'id'}

local function stowed_value(letter, value, created)
  local offset = OFFSET[letter]
  if offset == 'time' and string.find(value, '^%d+$') then return tonumber(value) - created end
  if offset == 'id' then return shift_id(value, -created) end
  return value
end

-- A stowed value back as the hash holds it.
local function unstowed_value(letter, value, created)
  if type(value) == 'number' then return string.format('%d', created + value) end
  if letter == TF.entry then return shift_id(value, created) end
  return value
end

-- The archive's lines with the <ms> of their ids moved by `by`.  Found with plain searches:
-- a pattern tried at every byte of the archive takes several times as long.
local function shift_lines(lines, by)
  local out, from, size = {}, 1, #lines
  while from <= size do
    local eol = string.find(lines, '\n', from, true) or size
    local ms, rest = string.match(lines, '^%["(%-?%d+)()%-', from)
    if ms then
      out[#out + 1] = string.format('["%d', tonumber(ms) + by)
      out[#out + 1] = string.sub(lines, rest, eol)
    else
      out[#out + 1] = string.sub(lines, from, eol)
    end
    from = eol + 1
  end
  return table.concat(out)
end

-- `text` with every `old` replaced by `new`, where the byte after it is one of `before` (any,
-- when nil).
local function replace_plain(text, old, new, before)
  local out, from = {}, 1
  while true do
    local at = string.find(text, old, from, true)
    if not at then break end
    local after = at + #old
    local next_byte = string.sub(text, after, after)
    local replaced = not before or (next_byte ~= '' and string.find(before, next_byte, 1, true))
    out[#out + 1] = string.sub(text, from, at - 1)
    out[#out + 1] = replaced and new or old
    from = after
  end
  if from == 1 then return text end
  out[#out + 1] = string.sub(text, from)
  return table.concat(out)
end

-- The archive's lines with each `by` that names `consumer` as 1 (`compact`), or back: when
-- every task of a workflow had the same consumer, the one a task's lines name, nearly always.
local function by_consumer(lines, consumer, compact)
  local named = ',"by","' .. consumer .. '"'
  if compact then return replace_plain(lines, named, ',"by",1') end
  return replace_plain(lines, ',"by",1', named, ',]')
end

-- The values of a letter, one a name (nil: none), as stowed.
local function column(values, count)
  local first, same = values[1], true
  for i = 1, count do
    if values[i] == nil then
      values[i], same = cjson.null, false
    elseif values[i] ~= first then
      same = false
    end
  end
  if same then return first end
  return values
end

-- The stowed archive `text` takes the hash's place, and expires as the hash would have: ended
-- in this call, after its ttl; else what is left of it, or all of its ttl (`ttl`, else the
-- hash's) when the hash has no expiry (an ending whose call failed after writing the end, as
-- a script error does).
local function write_stowed(ctx, key, text, ttl)
  local left = ctx.ttl[key] or redis.call('PTTL', key)
  if left < 0 then left = tonumber(ttl or redis.call('HGET', key, WF.ttl)) or 0 end
  redis.call('DEL', key)
  if left > 0 then
    redis.call('SET', ctx.past[key], text, 'PX', string.format('%d', left))
  else
    redis.call('SET', ctx.past[key], text)
  end
end

local function stow(ctx, key)
  local flat = redis.call('HGETALL', key)
  local created, order
  for i = 1, #flat, 2 do
    local field = flat[i]
    if field == WF.created then
      created = flat[i + 1]
    elseif field == WF.order then
      order = flat[i + 1]
    end
    if created and order then break end
  end
  created = tonumber(created) or 0
  local line, names, index, columns = {}, split(order), {}, {}
  for i, name in ipairs(names) do index[name] = i end
  local tasks = #names
  for i = 1, #flat, 2 do
    local field, value = flat[i], flat[i + 1]
    if string.byte(field, 2) == 58 then  -- "<letter>:<name>"
      local letter, name = string.sub(field, 1, 2), string.sub(field, 3)
      local at = index[name]
      if not at then
        at = #names + 1
        names[at], index[name] = name, at
      end
      local values = columns[letter]
      if not values then
        values = {}
        columns[letter] = values
      end
      values[at] = stowed_value(letter, value, created)
    elseif field == WF.ended then
      line[field] = stowed_value(TF.ended, value, created)
    elseif field ~= WF.left or value ~= '0' then
      line[field] = value
    end
  end
  if #names > tasks then
    local others = {}
    for i = tasks + 1, #names do others[#others + 1] = names[i] end
    line[NAMES] = others
  end
  for letter, values in pairs(columns) do line[letter] = column(values, #names) end
  local past = shift_lines(redis.call('GET', ctx.past[key]) or '', -created)
  if type(line[TF.consumer]) == 'string' then past = by_consumer(past, line[TF.consumer], true) end
  write_stowed(ctx, key, cjson.encode(line) .. '\n' .. past, line[WF.ttl])
end

-- The first line of a stowed archive, decoded, and its length; nil if `past` is not one.
local function stowed(past)
  if not past or string.byte(past, 1) ~= 123 then return nil end  -- "{"
  local size = string.find(past, '\n', 1, true)
  if not size then return nil end
  local whole, line = pcall(cjson.decode, string.sub(past, 1, size))
  if not whole or type(line) ~= 'table' or not line[WF.created] then return nil end
  return line, size
end

local function restore_hash(ctx, key)
  local past = redis.call('GET', ctx.past[key])
  local line, size = stowed(past)
  if not line then return end
  local created = tonumber(line[WF.created]) or 0
  local names, flat = split(line[WF.order]), {WF.left, line[WF.left] or '0'}
  for _, name in ipairs(line[NAMES] or {}) do names[#names + 1] = name end
  for field, value in pairs(line) do
    if string.byte(field, 2) == 58 then
      for i, name in ipairs(names) do
        local v = value
        if type(value) == 'table' then v = value[i] end
        if v ~= nil and v ~= cjson.null then
          flat[#flat + 1], flat[#flat + 2] = field .. name, unstowed_value(field, v, created)
        end
      end
    elseif field ~= NAMES and field ~= WF.left then
      flat[#flat + 1], flat[#flat + 2] = field, unstowed_value(field, value, created)
    end
  end
  local left = redis.call('PTTL', ctx.past[key])
  hset_pairs(key, flat)
  if left > 0 then redis.call('PEXPIRE', key, left) end
  local lines = shift_lines(string.sub(past, size + 1), created)
  if type(line[TF.consumer]) == 'string' then lines = by_consumer(lines, line[TF.consumer]) end
  set_past(ctx, key, lines)
  restow(ctx, key)
end

-- A workflow sp_resolve ended is left for its caller to stow (ctx.ended_ids: converting its
-- hash was a fifth of what a workflow cost Redis, whose one thread every client waits for;
-- sp_stow below writes what the caller made of it): its hash and archive expire meanwhile as
-- the stowed archive would have.
local function leave_ended(ctx, key, ttl)
  if ttl > 0 then
    local text = string.format('%d', ttl)
    redis.call('PEXPIRE', key, text)
    redis.call('PEXPIRE', ctx.past[key], text)
  end
  local _, at = string.find(key, ':wf:', 1, true)
  ctx.ended_ids[#ctx.ended_ids + 1] = string.sub(key, at + 1)
end

-- A workflow over when a call ends (stowing() calls this for each it ended or unstowed, or
-- found over as a hash) is stowed; one that ended in this call (expire() kept its ttl) is
-- over without asking.
settle = function(ctx, key)
  local ttl = ctx.ttl[key]
  if ttl and ctx.ended_ids then return leave_ended(ctx, key, ttl) end
  if ttl or is_over(redis.call('HGET', key, WF.status)) then stow(ctx, key) end
end

-- A stowed workflow gets its hash back; a 0.8 fold its archive no longer holds (the archive
-- deleted by hand) is dropped: the workflow keeps its own fields, and no function fails on it
-- again and again.
unstow = function(ctx, key)
  local f = redis.call('HMGET', key, WF.folded, WF.status)
  if not f[2] then return restore_hash(ctx, key) end  -- every hash has a status
  if is_over(f[2]) then restow(ctx, key) end  -- a hash 0.8 kept when it ended
  local size = tonumber(f[1])
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
  restow(ctx, key)
end

local function watch(keys, args)
  local ctx = keys_of(keys, args)  -- not context(): a watch reads the workflow, never unstows it
  local key = ctx.workflows[1]
  local hist = ctx.history[key]
  local past = redis.call('GET', ctx.past[key])
  local status, made = redis.call('HGET', key, WF.status), 0
  local last = last_archived(past)
  local line = not status and stowed(past)
  if line then
    status = line[WF.status]
    if last then last = shift_id(last, tonumber(line[WF.created]) or 0) end
  end
  if status and not is_over(status) and redis.call('EXISTS', hist) == 0 then
    redis.call('XADD', hist, 'MAXLEN', 0, '0-1', EF.v, VERSION)
    made = 1
  end
  redis.call('PEXPIRE', hist, WATCH_MS)
  return {status or false, made, last or false}
end

-- What the caller made of the hashes sp_resolve left ended (store/stow.py) is written where
-- each is as the caller read it: its hash over, with as many fields, and its archive
-- as long.  Any later change to an ended workflow goes through a function that stows it
-- (its hash gone) or adds an event to its archive, so a workflow changed since is left as it
-- is; its next call stows it.  An empty text has it stowed here.
local function stow_read(keys, args)
  local ctx = keys_of(keys, args)
  local stowed = 0
  for item, key in ipairs(ctx.workflows) do
    local a = ctx.arg_base + 3 * item - 2
    if redis.call('HLEN', key) == tonumber(args[a])
        and redis.call('STRLEN', ctx.past[key]) == tonumber(args[a + 1])
        and is_over(redis.call('HGET', key, WF.status)) then
      if args[a + 2] == '' then stow(ctx, key) else write_stowed(ctx, key, args[a + 2]) end
      stowed = stowed + 1
    end
  end
  return stowed
end

redis.register_function('sp_watch', watch)
redis.register_function('sp_stow', stow_read)
