--[[ started.lua: sp_started, recording that workers began tasks.

sp_started: mark each task running on its worker, with its start time, and emit
  task_started on the shard's events stream and the workflow's history, as it happens.
  Workers send the starts of one read in the same MULTI/EXEC as their other reports
  (engine/outbox.py), so recording a start costs no round trip of its own.
  KEYS  the shared head (common.lua), no agent streams, then per start its workflow's hash
        and history stream
  ARGV  0 (no agents), then 6 per start: workflow, task, attempt, the task entry it runs,
        began ms, consumer
  returns the number of starts recorded
  A start applies only while the task is queued as that attempt and entry, the fence
  sp_resolve puts on completions: a duplicate start, one of a superseded attempt, and one
  that comes after its completion was applied change nothing.
]]

local function started(keys, args)
  local ctx = context(keys, args)
  local recorded, item = 0, 0
  for a = ctx.arg_base + 1, #args, 6 do
    item = item + 1
    local wf, t, att, entry, began, by = args[a], args[a + 1], args[a + 2], args[a + 3],
                                         args[a + 4], args[a + 5]
    local key = keys[ctx.wf_base + 2 * item - 1]
    local f = redis.call('HMGET', key, TF.state .. t, TF.attempt .. t, TF.entry .. t)
    if f[1] == TS.queued and (f[2] or ABSENT.attempt) == att and f[3] == entry then
      redis.call('HSET', key, TF.state .. t, TS.running, TF.began .. t, began,
                 TF.consumer .. t, by)
      emit(ctx, key, wf, EV.task_started, t, att, began, EF.by, by)
      recorded = recorded + 1
    end
  end
  return recorded
end

redis.register_function('sp_started', stowing(started))
