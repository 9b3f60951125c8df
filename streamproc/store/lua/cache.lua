--[[ cache.lua: the search cache's read-and-touch step (see streamproc/outbound/cache.py), as
a Redis Function so that a hit counts on, and stretches the expiry of, only an entry that still
exists: touching an entry that had just expired would otherwise recreate it as a hash with no
reply and no expiry.  The prelude names the entry's fields: CF (streamproc/store/fields.py).

sp_cache_touch (called by streamproc/store/cache.py)
  KEYS[1]  the entry hash <ns>:cache:<provider>:<digest>
  ARGV[1]  base ttl (ms)   ARGV[2] min ttl (ms)   ARGV[3] max ttl (ms)
  returns  the entry's result field (the reply as JSON), or nil when there is no entry
  Counts the hit, then sets the expiry to clamp(base * (1 + log2(1 + hits)), min, max);
  an entry marked empty keeps the short expiry it was written with.
]]

local function touch(keys, args)
  local result = redis.call('HGET', keys[1], CF.result)
  if not result then
    return false
  end
  local hits = redis.call('HINCRBY', keys[1], CF.hits, 1)
  if redis.call('HGET', keys[1], CF.empty) ~= '1' then
    local ttl = tonumber(args[1]) * (1 + math.log(1 + hits) / math.log(2))
    ttl = math.max(tonumber(args[2]), math.min(tonumber(args[3]), ttl))
    redis.call('PEXPIRE', keys[1], math.floor(ttl))
  end
  return result
end

redis.register_function('sp_cache_touch', touch)
