--[[ prune.lua: sp_prune_agents, forgetting agent names nothing needs any more.

sp_prune_agents: an agent is removed from the agents set, with its task and dead-letter
  streams (and so its groups), when no running workflow of the shard names it (the usage
  hash's count, common.lua), its dead-letter stream is empty, and its task stream is gone or
  has no group with a consumer (no worker serves it), no pending entry and no unread one.
  Atomic with sp_submit: a submit before it counts the agent as used, one after it adds the
  name back (its stream is made again by the first task published to it).
  KEYS  the shared head, the streams of the candidate agents
  ARGV  n, the candidate agents
  returns the agents removed
]]

-- A group's XINFO reply as a table.
local function group_info(flat)
  local info = {}
  for i = 1, #flat, 2 do info[flat[i]] = flat[i + 1] end
  return info
end

-- The task stream holds something: a consumer (a worker serves it), a pending entry, or an
-- entry its agent's group has not read (nor any entry, when it has no group).
local function holds_work(stream, agent)
  if redis.call('EXISTS', stream) == 0 then return false end
  local length, read = redis.call('XLEN', stream), false
  for _, flat in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local g = group_info(flat)
    if g.consumers > 0 or g.pending > 0 then return true end
    if g.name == agent then
      local after = '(' .. g['last-delivered-id']
      read = #redis.call('XRANGE', stream, after, '+', 'COUNT', 1) == 0
    end
  end
  return length > 0 and not read
end

local function prune_agents(keys, args)
  local ctx = context(keys, args)
  local pruned = {}
  for i = 1, tonumber(args[1]) do
    local agent = args[1 + i]
    local tasks, dead = ctx.streams[agent], ctx.dead[agent]
    local used = tonumber(redis.call('HGET', ctx.usage, US.agent .. agent) or '0')
    if used <= 0 and redis.call('XLEN', dead) == 0 and not holds_work(tasks, agent) then
      redis.call('SREM', ctx.agents, agent)
      redis.call('DEL', tasks, dead)
      redis.call('HDEL', ctx.usage, US.agent .. agent)
      pruned[#pruned + 1] = agent
    end
  end
  return pruned
end

redis.register_function('sp_prune_agents', stowing(prune_agents))
