--[[ submit.lua: sp_submit, create workflows and publish their root tasks; sp_usage, what a
  tenant uses on a shard; sp_unindex, drop expired workflows from the shard's index.

sp_submit
  KEYS  the shared head (common.lua), then per workflow its hash and history stream
  ARGV  n, the agents of every workflow (added to the agents set), then the tenant the
        workflows are counted for ('' for none: nothing is counted or checked), its limit of
        workflows in flight (0: none) and how many it has on other shards, its limit of bytes
        stored (0: none) and how many it stores on other shards, then per workflow: its id,
        spec digest, root task ids (space separated), the number m of hash arguments, then m
        field/value arguments of its hash (store/initial_hash.py)
  Each new workflow's id joins the shard's index, scored by its creation time (ms).
  returns, per workflow: 1 created, 0 already there with this digest, -1 already there with
        another spec, -2 refused: its tenant has its limit of workflows in flight, -3 refused:
        its bytes (those m arguments) would take its tenant past its limit of bytes stored

sp_usage
  KEYS  the shared head
  ARGV  0, the tenant
  returns {workflows in flight, bytes stored} of the tenant on this shard

sp_unindex
  KEYS  the shared head, no agents, then per workflow its hash and history stream
  ARGV  0, then the workflow ids in item order
  returns how many it dropped: only those whose hash is gone, checked here, so a workflow
        submitted again under an expired id since the caller looked stays listed
]]

-- The tenant and its limits, as sp_submit's ARGV gives them after the agents.
local function quota_of(args, b)
  return {tenant = args[b + 1], workflows = tonumber(args[b + 2]),
          workflows_elsewhere = tonumber(args[b + 3]), bytes = tonumber(args[b + 4]),
          bytes_elsewhere = tonumber(args[b + 5])}
end

local function tenant_usage(ctx, tenant)
  local f = redis.call('HMGET', ctx.usage, US.workflows .. tenant, US.bytes .. tenant)
  return tonumber(f[1] or '0'), tonumber(f[2] or '0')
end

-- -2 or -3 when a new workflow of `bytes` would pass one of the tenant's limits, else nil.
local function over_quota(ctx, quota, bytes)
  local workflows, stored = tenant_usage(ctx, quota.tenant)
  if quota.workflows > 0 and quota.workflows_elsewhere + workflows >= quota.workflows then
    return -2
  end
  if quota.bytes > 0 and quota.bytes_elsewhere + stored + bytes > quota.bytes then return -3 end
  return nil
end

-- A field name longer than hash-max-listpack-value (64 bytes unless configured otherwise):
-- written with a new hash and deleted at once, it leaves the hash in Redis's hashtable
-- encoding, which Redis does not convert back (a restart loads a small hash as a listpack
-- again: only slower).  65 characters.
local WIDE_FIELD = '_________________________________________________________________'

-- The hash arguments at submit (16 fields, some three tasks) from which a workflow's hash
-- is made a hashtable; a smaller one stays a listpack (see create()).
local HASHTABLE_ARGS = 32

-- The workflow's hash is its fields args[from..to] and its own: one HSET straight from ARGV
-- (copying them into a table first cost Redis as much as the HSET), in chunks when long.
-- It is made a hashtable (WIDE_FIELD): the engine looks up some 170 of its fields, one by
-- one, while a five-task workflow runs, and Redis scans a small hash's listpack for each:
-- with small inputs that was a sixth of what the workflow cost Redis (inputs or results
-- over 64 bytes convert it anyway).  A hash of a task or two is scanned quickly, and as a
-- hashtable would take half as much memory again while its workflow runs or waits.  An
-- ended workflow is stowed as one string.
local function create(ctx, key, wf, digest, roots, args, from, to, quota, bytes)
  local wide = to - from + 1 >= HASHTABLE_ARGS
  if wide then redis.call('HSET', key, WIDE_FIELD, '') end
  local last = math.min(from + 999, to)
  redis.call('HSET', key, WF.digest, digest, WF.status, WS.running, WF.created, ctx.now_text,
             unpack(args, from, last))
  if wide then redis.call('HDEL', key, WIDE_FIELD) end
  for first = last + 1, to, 1000 do
    redis.call('HSET', key, unpack(args, first, math.min(first + 999, to)))
  end
  if quota.tenant ~= '' then
    redis.call('HSET', key, WF.tenant, quota.tenant, WF.bytes, bytes)
    redis.call('HINCRBY', ctx.usage, US.bytes .. quota.tenant, bytes)
  end
  local timeout = count_usage(ctx, key, 1, 0)
  redis.call('ZADD', ctx.index, ctx.now_text, wf)
  if timeout > 0 then redis.call('ZADD', ctx.deadlines, ctx.now + timeout, key) end
  emit(ctx, key, wf, EV.submitted, nil, nil, ctx.now)
  for _, t in ipairs(split(roots)) do
    if not publish(ctx, key, wf, t) then break end  -- the workflow failed
  end
end

-- A workflow is new when it has neither a hash nor an archive (one EXISTS); else it is
-- unstowed, as context() would have, and its digest read.
local function submit(keys, args)
  local ctx = context(keys, args, true)
  if tonumber(args[1]) > 0 then  -- none when every task is a declared wait
    redis.call('SADD', ctx.agents, unpack(args, 2, 1 + tonumber(args[1])))
  end
  local quota = quota_of(args, ctx.arg_base)
  if quota.tenant ~= '' then release_retained(ctx) end
  local outcomes, item, a = {}, 0, ctx.arg_base + 6
  while a <= #args do
    item = item + 1
    local key = keys[ctx.wf_base + 2 * item - 1]
    local wf, digest, roots, n = args[a], args[a + 1], args[a + 2], tonumber(args[a + 3])
    local existing = false
    if redis.call('EXISTS', key, ctx.past[key]) > 0 then
      unstow(ctx, key)
      existing = redis.call('HGET', key, WF.digest)
    end
    if existing then
      outcomes[item] = existing == digest and 0 or -1
    else
      local bytes, refused = 0, nil
      if quota.tenant ~= '' then
        for i = a + 4, a + 3 + n do bytes = bytes + #args[i] end
        refused = over_quota(ctx, quota, bytes)
      end
      if refused then
        outcomes[item] = refused
      else
        create(ctx, key, wf, digest, roots, args, a + 4, a + 3 + n, quota, bytes)
        outcomes[item] = 1
      end
    end
    a = a + 4 + n
  end
  return outcomes
end

local function usage(keys, args)
  local ctx = context(keys, args)
  release_retained(ctx)
  return {tenant_usage(ctx, args[ctx.arg_base + 1])}
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

redis.register_function('sp_submit', stowing(submit))
redis.register_function('sp_usage', stowing(usage))
redis.register_function('sp_unindex', stowing(unindex))
