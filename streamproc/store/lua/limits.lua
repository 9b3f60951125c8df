--[[ limits.lua: shared limits of one external API (see streamproc/outbound/limiter.py; the
calls are laid out by streamproc/store/limits.py): a GCRA rate limit, a quota per period, a
"spent" mark and a circuit breaker, checked and taken in one atomic call so that no two
workers, on any host, can both take the last unit of anything.

The prelude names the verdicts (VERDICT), the outcomes a caller reports (HEALTH) and the
breaker's states (BREAKER), as streamproc/store/limits.py defines them.  Times are
microseconds.  ARGV "now" is the caller's clock, or "" for the Redis server's clock
(TIME), which every host shares.  All keys share the provider's hash tag.

sp_limits_admit
  KEYS[1] rate TAT (string)   KEYS[2] quota counter of this period (string)
  KEYS[3] spent mark (string)  KEYS[4] breaker (hash)   KEYS[5] half-open probe (string)
  ARGV[1] now   ARGV[2] emission interval T (0 = no rate limit)   ARGV[3] burst tolerance tau
  ARGV[4] longest wait worth sleeping   ARGV[5] quota (0 = none)
  ARGV[6] time left in the quota's period   ARGV[7] probe ttl   ARGV[8] probe token
  returns {verdict, wait}: 'go' or 'probe' (sleep wait, then call; a probe reports back with
  its token), or 'open' | 'spent' | 'rate' (skip; back in wait at the earliest).  Only 'go'
  and 'probe' take anything: a rate slot, a quota unit, the probe.

  GCRA: the TAT (theoretical arrival time) is when the next call would be due at exactly
  the rate.  A call at t may go at max(t, TAT - tau); going moves TAT to max(TAT, t) + T.

sp_limits_record
  KEYS[1] breaker (hash: open_until, streak, calls, errors, since)   KEYS[2] probe
  ARGV[1] now   ARGV[2] 'ok' | 'fail' | 'neutral'   ARGV[3] probe token ('' = not a probe)
  ARGV[4] consecutive failures that open   ARGV[5] failure ratio that opens
  ARGV[6] calls needed before the ratio counts   ARGV[7] ratio window   ARGV[8] cool-down
  ARGV[9] hold: the wait the API itself named (429 + Retry-After), 0 = none
  returns the breaker state after the call: 'closed', 'open' or 'half-open'

  A hold opens the breaker until the named wait has passed (a later, longer one extends it,
  a shorter one never shortens it), whatever the outcome: every process then honours the
  API's Retry-After, and after it one probe goes first, as after any opening.
]]

local function clock(now)
  if now ~= '' then
    return tonumber(now)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function ms(us)
  return math.max(1, math.ceil(us / 1000))
end

local function breaker_wait(keys, now)
  local open_until = tonumber(redis.call('HGET', keys[4], 'open_until'))
  if not open_until then
    return nil, false
  end
  if now < open_until then
    return open_until - now, false
  end
  local probe_left = redis.call('PTTL', keys[5])
  if probe_left > 0 then
    return probe_left * 1000, false
  end
  return nil, true
end

local function admit(keys, args)
  local now = clock(args[1])
  local interval, tau, max_wait = tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  local quota, period_left = tonumber(args[5]), tonumber(args[6])
  local open_wait, probing = breaker_wait(keys, now)
  if open_wait then
    return {VERDICT.open, open_wait}
  end
  local spent_left = redis.call('PTTL', keys[3])
  if spent_left > 0 then
    return {VERDICT.spent, spent_left * 1000}
  end
  if quota > 0 and tonumber(redis.call('GET', keys[2]) or '0') >= quota then
    return {VERDICT.spent, period_left}
  end
  local wait = 0
  if interval > 0 then
    local tat = math.max(tonumber(redis.call('GET', keys[1]) or '0'), now)
    wait = math.max(0, tat - tau - now)
    if wait > max_wait then
      return {VERDICT.rate, wait}
    end
    redis.call('SET', keys[1], string.format('%.0f', tat + interval), 'PX', ms(tat + interval - now))
  end
  if quota > 0 and redis.call('INCR', keys[2]) == 1 then
    redis.call('PEXPIRE', keys[2], ms(period_left))
  end
  if probing then
    redis.call('SET', keys[5], args[8], 'PX', ms(tonumber(args[7])))
    return {VERDICT.probe, wait}
  end
  return {VERDICT.go, wait}
end

local function open(key, now, cooldown)
  redis.call('HSET', key, 'open_until', string.format('%.0f', now + cooldown), 'streak', 0)
  return BREAKER.open
end

local function hold(keys, token, now, wait)
  if token ~= '' and redis.call('GET', keys[2]) == token then
    redis.call('DEL', keys[2])
  end
  local open_until = tonumber(redis.call('HGET', keys[1], 'open_until')) or 0
  if now + wait > open_until then
    open(keys[1], now, wait)
  end
  return BREAKER.open
end

local function settle(keys, args, now)
  local outcome, token = args[2], args[3]
  local streak_limit, ratio, min_calls = tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
  local window, cooldown = tonumber(args[7]), tonumber(args[8])
  if tonumber(args[9]) > 0 then
    return hold(keys, token, now, tonumber(args[9]))
  end
  if token ~= '' and redis.call('GET', keys[2]) == token then
    redis.call('DEL', keys[2])
    if outcome == HEALTH.ok then
      redis.call('DEL', keys[1])
      return BREAKER.closed
    elseif outcome == HEALTH.fail then
      return open(keys[1], now, cooldown)
    end
    return BREAKER.half_open
  end
  local open_until = tonumber(redis.call('HGET', keys[1], 'open_until'))
  if open_until then  -- a late reply from a call sent before it opened: only a probe decides
    return now < open_until and BREAKER.open or BREAKER.half_open
  end
  if outcome == HEALTH.neutral then
    return BREAKER.closed
  end
  if now - tonumber(redis.call('HGET', keys[1], 'since') or '0') > window then
    redis.call('HSET', keys[1], 'since', string.format('%.0f', now), 'calls', 0, 'errors', 0)
  end
  local calls = redis.call('HINCRBY', keys[1], 'calls', 1)
  if outcome == HEALTH.ok then
    redis.call('HSET', keys[1], 'streak', 0)
    return BREAKER.closed
  end
  local streak = redis.call('HINCRBY', keys[1], 'streak', 1)
  local errors = redis.call('HINCRBY', keys[1], 'errors', 1)
  if streak >= streak_limit or (calls >= min_calls and errors / calls >= ratio) then
    return open(keys[1], now, cooldown)
  end
  return BREAKER.closed
end

-- The breaker hash outlives a quiet spell by one window past its cool-down (or a longer hold,
-- which a later call never cuts short), then a breaker nobody has asked about starts closed.
local function record(keys, args)
  local now = clock(args[1])
  local state = settle(keys, args, now)
  local ttl = ms(tonumber(args[7]) + math.max(tonumber(args[8]), tonumber(args[9])))
  if redis.call('PTTL', keys[1]) < ttl then
    redis.call('PEXPIRE', keys[1], ttl)
  end
  return state
end

redis.register_function('sp_limits_admit', admit)
redis.register_function('sp_limits_record', record)
