-- ml-guard rate limits and lockout: GCRA on Redis's own clock.
-- The arithmetic is the same as mlg_gcra.c (see mlg_gcra.h); all values are
-- integer microseconds below 2^53, exact in Lua's doubles.
-- Embedded into the module as mlg_ratelimit_script.h by
-- scripts/gen-ratelimit-script (t/unit/test_gcra.c checks they match).
--
-- One call runs a batch of operations (the checks one nginx worker made in
-- one event-loop turn) in order, on one reading of TIME: as if they had
-- arrived at once, one after another.  Every key is read by one MGET and
-- every changed key written once at the end.  Inside Redis, each command a
-- script calls, each number converted to or from a string and each element
-- of the reply costs more than the GCRA arithmetic, so a batch does few of
-- each: operations are parsed once per batch and the reply is one integer per
-- limit, from which the module derives allowed/remaining/reset/retry-after
-- (mlg_gcra_check_all() with now = 0 gives the same decision as here).
--
-- KEYS holds the keys of every operation, in order; ARGV one string per
-- operation (each argument costs Redis about as much as a GET):
--   "L T1 tau1 .. Tn taun"  the n limits of one request (interval T,
--       tolerance tau, microseconds) over the next n keys.  Allowed only if
--       every limit allows; a denial consumes nothing.
--   "B"  the ban in the next key.
--   "F T tau ban"  one failed authentication: the next key counts failures,
--       the one after is the ban key; over the limit: ban for `ban` ms and
--       forget the count.
-- Requests repeat the same strings: each distinct one is parsed once per
-- batch.  Globals and function calls are slow in Redis's Lua, hence the
-- locals and the inlined code.
-- Reply: per operation, one integer per limit (B and F: one), in order:
--   L, F  max(TAT, now) - now before this request: allowed iff <= tau
--   B     microseconds the ban has left (0: none)
-- A ban key holds the ban's end, a limit key its TAT (microseconds).

local KEYS, ARGV, tonumber, floor = KEYS, ARGV, tonumber, math.floor

local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]

local nkeys, nops = #KEYS, #ARGV
local cur, ttl, dirty, nd = {}, {}, {}, 0

if nkeys > 0 then
  local vals = redis.call('MGET', unpack(KEYS))
  for i = 1, nkeys do
    local key = KEYS[i]
    if cur[key] == nil then
      cur[key] = tonumber(vals[i]) or 0
    end
  end
end

local specs, out, o, k = {}, {}, 0, 1
local d = {}

for a = 1, nops do
  local s = ARGV[a]
  local p = specs[s]

  if p == nil then
    -- {opcode, numbers...}, checked
    p = {string.sub(s, 1, 1)}
    if p[1] ~= 'L' and p[1] ~= 'B' and p[1] ~= 'F' then
      error('ml-guard: bad operation "' .. s .. '"')
    end
    for v in string.gmatch(string.sub(s, 2), '%S+') do
      local x = tonumber(v)
      if x == nil or x < 0 or x ~= floor(x) or x >= 9007199254740992 then
        error('ml-guard: bad number in "' .. s .. '"')
      end
      p[#p + 1] = x
    end
    local n, op = #p - 1, p[1]
    if not ((op == 'L' and n >= 2 and n % 2 == 0 and n <= 32)
            or (op == 'B' and n == 0)
            or (op == 'F' and n == 3 and p[4] >= 1))
       or (op ~= 'B' and (p[2] < 1 or (n > 2 and p[4] < 1)))
    then
      error('ml-guard: bad operation "' .. s .. '"')
    end
    specs[s] = p
  end

  local op = p[1]

  if op == 'L' then
    local n = (#p - 1) / 2
    if k + n - 1 > nkeys then
      error('ml-guard: too few keys')
    end
    local allowed = true
    for i = 0, n - 1 do
      local tat = cur[KEYS[k + i]]
      local di = tat > now and tat - now or 0
      if di > p[3 + 2 * i] then
        allowed = false
      end
      d[i] = di
      o = o + 1
      out[o] = di
    end
    if allowed then
      for i = 0, n - 1 do
        local key = KEYS[k + i]
        if ttl[key] == nil then
          nd = nd + 1
          dirty[nd] = key
        end
        cur[key] = now + d[i] + p[2 + 2 * i]
        ttl[key] = true
      end
    end
    k = k + n

  elseif op == 'B' then
    if k > nkeys then
      error('ml-guard: too few keys')
    end
    local left = cur[KEYS[k]] - now
    o = o + 1
    out[o] = left > 0 and left or 0
    k = k + 1

  else -- 'F'
    if k + 1 > nkeys then
      error('ml-guard: too few keys')
    end
    local fkey, bkey = KEYS[k], KEYS[k + 1]
    local tat = cur[fkey]
    local di = tat > now and tat - now or 0
    if ttl[fkey] == nil then
      nd = nd + 1
      dirty[nd] = fkey
    end
    if di <= p[3] then
      cur[fkey], ttl[fkey] = now + di + p[2], true
    else
      if ttl[bkey] == nil then
        nd = nd + 1
        dirty[nd] = bkey
      end
      cur[bkey], ttl[bkey] = now + p[4] * 1000, true
      cur[fkey], ttl[fkey] = 0, false
    end
    o = o + 1
    out[o] = di
    k = k + 2
  end
end

if k ~= nkeys + 1 then
  error('ml-guard: more keys than operations use')
end

-- a key is worthless once its value (a TAT, a ban's end) has passed
for i = 1, nd do
  local key = dirty[i]
  if ttl[key] then
    redis.call('SET', key, string.format('%d', cur[key]), 'PX',
               string.format('%d', math.ceil((cur[key] - now) / 1000)))
  else
    redis.call('DEL', key)
  end
end

return out
