--[[ dead.lua: a task's dead letter, which fails its workflow; it registers no function.
  common.lua declares dead_letter, since publish needs it before its helpers are defined.
]]

-- A value kept in a dead letter: cut past PARKED_BYTES, its whole size noted (codec.parked).
local function parked(value)
  local cap = tonumber(PARKED_BYTES)
  if #value <= cap then return value end
  return string.sub(value, 1, cap) .. '... (' .. #value .. ' bytes in all)'
end

-- The task's dead letter holds its input, so it can be understood (and tried) later.
dead_letter = function(ctx, key, wf, t, agent, att, reason)
  local f = redis.call('HMGET', key, TF.error .. t, TF.history .. t, TF.entry .. t, TF.lost .. t,
                       TF.input .. t)
  redis.call('XADD', ctx.dead[agent], '*', EF.v, VERSION, EF.wf, wf, EF.task, t, EF.agent, agent,
             EF.att, att, EF.deliveries, att, EF.lost, f[4] or '0', EF.reason, reason,
             EF.error, f[1] or '', EF.history, f[2] or '[]', EF.entry, f[3] or '',
             EF.input, parked(f[5] or 'null'), EF.at, ctx.now)
  redis.call('HSET', key, TF.state .. t, TS.failed)
  emit(ctx, key, wf, EV.task_failed, t, att, ctx.now, EF.error, reason, EF.final, '1')
  fail_workflow(ctx, key, wf, 'task ' .. t .. ' dead-lettered: ' .. reason)
end
