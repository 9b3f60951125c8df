--[[ recovery.lua: sp_requeue, taking tasks back from consumers.

sp_requeue: take tasks back from a consumer (reclaimed after its visibility timeout, handed
  back on shutdown, or found stranded by the reconciler) and publish them as a new attempt,
  so a late completion of the old attempt is refused.  Every entry is XACKed from its agent's
  group.
  KEYS  the shared head (common.lua), the streams of the entries' agents, then per entry its
        workflow's hash and history stream
  ARGV  n, agents, then the reason (recorded on the task_requeued event), 1 when each entry
        is a lost delivery (counted; the task is dead-lettered at the max) or 0, the max lost
        deliveries, then 5 per entry: entry id, workflow, task, attempt, agent
  returns {tasks requeued or dead-lettered, workflows failed by a dead letter}
]]

local function requeue(keys, args)
  local ctx = context(keys, args)
  local b = ctx.arg_base
  local reason, lost_delivery, max_lost = args[b + 1], args[b + 2] == '1', tonumber(args[b + 3])
  local moved, item = 0, 0
  for a = b + 4, #args, 5 do
    item = item + 1
    local id, wf, t, att, agent = args[a], args[a + 1], args[a + 2], args[a + 3], args[a + 4]
    local key = keys[ctx.wf_base + 2 * item - 1]
    redis.call('XACK', ctx.streams[agent], agent, id)
    local f = redis.call('HMGET', key, WF.status, TF.state .. t, TF.attempt .. t)
    if f[1] == WS.running and published(f[2]) and (f[3] or ABSENT.attempt) == att then
      moved = moved + 1
      local lost = 0
      if lost_delivery then
        lost = redis.call('HINCRBY', key, TF.lost .. t, 1)
        append_history(key, t, {attempt = tonumber(att), outcome = 'lost', at = ctx.now})
      end
      if lost >= max_lost then
        dead_letter(ctx, key, wf, t, agent, att,
                    'lost ' .. lost .. ' deliveries: its worker died or stalled each time')
      else
        local next_att = next_attempt(key, t)
        if publish(ctx, key, wf, t) then
          emit(ctx, key, wf, EV.task_requeued, t, next_att, ctx.now, EF.reason, reason)
        end
      end
    end
  end
  return {moved, ctx.ended[WS.failed] or 0}
end

redis.register_function('sp_requeue', stowing(requeue))
