--[[ submit.lua: sp_submit, create workflows and publish their root tasks; sp_unindex, drop
expired workflows from the shard's index.

sp_submit
  KEYS  the shared head (common.lua), then per workflow its hash and history stream
  ARGV  n, the agents of every workflow (added to the agents set), then per workflow: its
        id, spec digest, root task ids (space separated), the number m of hash arguments,
        then m field/value arguments of its hash (store/fields.py initial_fields)
  Each new workflow's id joins the shard's index, scored by its creation time (ms).
  returns, per workflow: 1 created, 0 already there with this digest, -1 already there with
        another spec

sp_unindex
  KEYS  the shared head, no agents, then per workflow its hash and history stream
  ARGV  0, then the workflow ids in item order
  returns how many it dropped: only those whose hash is gone, checked here, so a workflow
        submitted again under an expired id since the caller looked stays listed
]]

local function submit(keys, args)
  local ctx = context(keys, args)
  redis.call('SADD', ctx.agents, unpack(args, 2, 1 + tonumber(args[1])))
  local outcomes, item, a = {}, 0, ctx.arg_base + 1
  while a <= #args do
    item = item + 1
    local key = keys[ctx.wf_base + 2 * item - 1]
    local wf, digest, roots, n = args[a], args[a + 1], args[a + 2], tonumber(args[a + 3])
    local existing = redis.call('HGET', key, WF.digest)
    if existing then
      outcomes[item] = existing == digest and 0 or -1
    else
      local fields = {WF.digest, digest, WF.status, WS.running, WF.created, ctx.now}
      for i = a + 4, a + 3 + n do fields[#fields + 1] = args[i] end
      for first = 1, #fields, 1000 do
        redis.call('HSET', key, unpack(fields, first, math.min(first + 999, #fields)))
      end
      local timeout = tonumber(redis.call('HGET', key, WF.timeout) or '0')
      if timeout > 0 then
        redis.call('HSET', key, WF.deadline, ctx.now + timeout)
        redis.call('ZADD', ctx.deadlines, ctx.now + timeout, key)
      end
      redis.call('ZADD', ctx.index, ctx.now, wf)
      emit(ctx, key, wf, EV.submitted, nil, nil, ctx.now)
      for _, t in ipairs(split(roots)) do
        if not publish(ctx, key, wf, t) then break end  -- the workflow failed
      end
      outcomes[item] = 1
    end
    a = a + 4 + n
  end
  return outcomes
end

local function unindex(keys, args)
  local ctx = context(keys, args)
  local dropped, item = 0, 0
  for a = ctx.arg_base + 1, #args do
    item = item + 1
    if redis.call('EXISTS', keys[ctx.wf_base + 2 * item - 1]) == 0 then
      dropped = dropped + redis.call('ZREM', ctx.index, args[a])
    end
  end
  return dropped
end

redis.register_function('sp_submit', submit)
redis.register_function('sp_unindex', unindex)
