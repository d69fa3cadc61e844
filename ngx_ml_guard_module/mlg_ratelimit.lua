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
--   "cL T1 tau1 .."  the same for c identical requests (same keys, same
--       limits: one client's requests in one batch), one after another:
--       the allowed ones are the first k, each a T further ahead.
--   "B"  the ban in the next key, as it stands after every other operation
--       of the call: a check shared by several requests (a client's
--       accepted credentials in one batch) never answers for a moment
--       before a failure of the same batch banned the address.
--   "F T tau ban"  one failed authentication: the next key counts failures,
--       the one after is the ban key.  While banned it is not counted;
--       otherwise over the limit it bans for `ban` ms and forgets the count.
-- Requests repeat the same strings: each distinct one is parsed once per
-- batch, the common one-limit "cL T tau" by one pattern.  Globals and
-- function calls are slow in Redis's Lua, hence the locals and the inlined
-- code.
-- Reply: per operation, one integer per limit (B: one, F: two), in order:
--   L     max(TAT, now) - now before this request: allowed iff <= tau
--   cL    the same before the first of the c requests, then k
--   B     microseconds the ban has left (0: none)
--   F     two: the ban's microseconds left before it (0: none; then it was
--         counted), and max(TAT, now) - now before it (0 when banned)
-- A ban key holds the ban's end, a limit key its TAT (microseconds).

local KEYS, ARGV, tonumber, floor = KEYS, ARGV, tonumber, math.floor
local call, match = redis.call, string.match
local BIG = 9007199254740992  -- 2^53

local t = call('TIME')
local now = t[1] * 1000000 + t[2]

local nkeys, nops = #KEYS, #ARGV
-- cur: every key's value; dirty: true to write it, false to delete it
local cur, dirty = {}, {}

if nkeys == 1 then
  cur[KEYS[1]] = tonumber(call('GET', KEYS[1])) or 0
elseif nkeys > 1 then
  local vals = call('MGET', unpack(KEYS))
  for i = 1, nkeys do  -- a key given twice reads the same value twice
    cur[KEYS[i]] = tonumber(vals[i]) or 0
  end
end

-- "cL T tau .." -> {op, T, tau, ..; c = requests}, checked
local function parse(s)
  local c, op, x, y = match(s, '^(%d*)(L) (%d+) (%d+)$')
  local p
  if op then
    p = {op, tonumber(x), tonumber(y)}
  else
    c, op = match(s, '^(%d*)([LBF])')
    if op == nil then
      error('ml-guard: bad operation "' .. s .. '"')
    end
    p = {op}
    for v in string.gmatch(string.sub(s, #c + 2), '%S+') do
      local x = tonumber(v)
      if x == nil or x < 0 or x ~= floor(x) then
        error('ml-guard: bad number in "' .. s .. '"')
      end
      p[#p + 1] = x
    end
  end
  for i = 2, #p do
    if p[i] >= BIG then
      error('ml-guard: bad number in "' .. s .. '"')
    end
  end
  local n = #p - 1
  p.c = tonumber(c) or 1
  if not ((op == 'L' and n >= 2 and n % 2 == 0 and n <= 32)
          or (op == 'B' and n == 0)
          or (op == 'F' and n == 3 and p[4] >= 1))
     or (op ~= 'B' and (p[2] < 1 or (n > 2 and p[4] < 1)))
     or (c ~= '' and (op ~= 'L' or p.c < 2 or p.c > 65535))
  then
    error('ml-guard: bad operation "' .. s .. '"')
  end
  return p
end

-- ban checks are answered at the end: {reply index, key}
local specs, out, o, k, bans = {}, {}, 0, 1, {}

for a = 1, nops do
  local s = ARGV[a]
  local p = specs[s]
  if p == nil then
    p = parse(s)
    specs[s] = p
  end

  local op = p[1]

  if op == 'L' then
    local n = (#p - 1) / 2
    if k + n - 1 > nkeys then
      error('ml-guard: too few keys')
    end
    -- allowed: the first `a` of the c requests; request j (from 0) sees
    -- d + j * T on every limit and is allowed iff that is <= tau on all
    local a, o0 = p.c, o
    for i = 0, n - 1 do
      local tat = cur[KEYS[k + i]]
      local d = tat > now and tat - now or 0
      local room = p[3 + 2 * i] - d
      if room < 0 then
        a = 0
      elseif a > 1 then
        local T = p[2 + 2 * i]
        local q = floor(room / T)
        if q * T > room then
          q = q - 1  -- the division rounded up
        end
        if q + 1 < a then
          a = q + 1
        end
      end
      o = o + 1
      out[o] = d
    end
    if p.c > 1 then
      o = o + 1
      out[o] = a
    end
    if a > 0 then
      for i = 0, n - 1 do
        local key = KEYS[k + i]
        cur[key] = now + out[o0 + 1 + i] + a * p[2 + 2 * i]
        dirty[key] = true
      end
    end
    k = k + n

  elseif op == 'B' then
    if k > nkeys then
      error('ml-guard: too few keys')
    end
    o = o + 1
    bans[#bans + 1] = {o, KEYS[k]}
    k = k + 1

  else -- 'F'
    if k + 1 > nkeys then
      error('ml-guard: too few keys')
    end
    local fkey, bkey = KEYS[k], KEYS[k + 1]
    local left = cur[bkey] - now
    local d = 0
    if left > 0 then
      -- banned already: this failure was not allowed to count
    else
      left = 0
      local tat = cur[fkey]
      d = tat > now and tat - now or 0
      if d <= p[3] then
        cur[fkey], dirty[fkey] = now + d + p[2], true
      else
        cur[bkey], dirty[bkey] = now + p[4] * 1000, true
        cur[fkey], dirty[fkey] = 0, false
      end
    end
    out[o + 1], out[o + 2] = left, d
    o = o + 2
    k = k + 2
  end
end

if k ~= nkeys + 1 then
  error('ml-guard: more keys than operations use')
end

for i = 1, #bans do
  local left = cur[bans[i][2]] - now
  out[bans[i][1]] = left > 0 and left or 0
end

-- a key is worthless once its value (a TAT, a ban's end) has passed
for key, keep in pairs(dirty) do
  if keep then
    call('SET', key, string.format('%d', cur[key]), 'PX',
         string.format('%d', math.ceil((cur[key] - now) / 1000)))
  else
    call('DEL', key)
  end
end

return out
