-- ml-guard rate limits and lockout: GCRA on Redis's own clock.
-- The arithmetic is the same as mlg_gcra.c (see mlg_gcra.h); all values are
-- integer microseconds below 2^53, exact in Lua's doubles.
-- Embedded into the module as mlg_ratelimit_script.h by
-- scripts/gen-ratelimit-script (t/unit/test_gcra.c checks they match).
--
-- Every mode returns {allowed, index, remaining, reset_us, retry_us}.
--
-- ARGV[1] == "limit": KEYS[i] is limit i's key, ARGV[2i], ARGV[2i+1] its
--   interval T and tolerance tau.  The request is allowed only if every limit
--   allows it; only then is any key written (a denial consumes nothing).
--   index (0-based) is the tightest limit when allowed, else the denying limit
--   that frees up last.
-- ARGV[1] == "ban": KEYS[1] is a ban key; allowed = 0 while it exists.
-- ARGV[1] == "fail": one failed authentication.  KEYS[1] counts failures,
--   KEYS[2] is the ban key, ARGV[2], ARGV[3] are T and tau, ARGV[4] the ban
--   in ms.  Over the limit: ban, forget the count, allowed = 0.

local mode = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local function idiv(a, b)
  local q = math.floor(a / b)
  if q * b > a then
    q = q - 1
  elseif (q + 1) * b <= a then
    q = q + 1
  end
  return q
end

local function gcra(key, T, tau)
  local tat = tonumber(redis.call('GET', key)) or 0
  if tat < now then
    tat = now
  end
  if tat - now > tau then
    return false, 0, tat - now, tat - tau - now, nil
  end
  local new = tat + T
  return true, idiv(now + tau - new + T, T), new - now, 0, new
end

local function store(key, new)
  redis.call('SET', key, string.format('%.0f', new),
             'PX', string.format('%.0f', idiv(new - now + 999, 1000)))
end

local function num(i)
  local v = tonumber(ARGV[i])
  if v == nil or v < 0 then
    error('ml-guard: bad argument ' .. i)
  end
  return v
end

if mode == 'limit' then
  local allowed, idx, rem, reset, retry = 1, -1, 0, 0, 0
  local first = true
  local news = {}
  for i = 1, #KEYS do
    local T, tau = num(2 * i), num(2 * i + 1)
    if T < 1 then
      error('ml-guard: interval must be positive')
    end
    local ok, r, rs, ra, new = gcra(KEYS[i], T, tau)
    news[i] = new
    if not ok then
      if allowed == 1 or ra > retry then
        idx, rem, reset, retry = i - 1, 0, rs, ra
      end
      allowed = 0
    else
      if allowed == 1 and (first or r < rem) then
        idx, rem, reset = i - 1, r, rs
      end
      first = false
    end
  end
  if allowed == 1 then
    for i = 1, #KEYS do
      store(KEYS[i], news[i])
    end
  end
  return {allowed, idx, rem, reset, retry}
end

if mode == 'ban' then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl > 0 then
    return {0, 0, 0, pttl * 1000, pttl * 1000}
  end
  return {1, 0, 0, 0, 0}
end

if mode == 'fail' then
  local T, tau, ban = num(2), num(3), num(4)
  if T < 1 or ban < 1 then
    error('ml-guard: interval and ban must be positive')
  end
  local ok, r, rs, ra, new = gcra(KEYS[1], T, tau)
  if ok then
    store(KEYS[1], new)
    return {1, 0, r, rs, 0}
  end
  redis.call('SET', KEYS[2], '1', 'PX', string.format('%.0f', ban))
  redis.call('DEL', KEYS[1])
  return {0, 0, 0, ban * 1000, ban * 1000}
end

error('ml-guard: unknown mode')
