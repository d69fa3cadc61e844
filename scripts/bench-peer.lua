-- OpenResty-style equivalents of ml-guard's API-key and full-policy
-- locations, the peers scripts/bench compares ml-guard with.  Runs in
-- Debian's ngx_http_lua_module (libnginx-mod-http-lua) with lua-luaossl
-- (SHA-256), lua-cjson and lua-resty-redis (Debian: lua-nginx-redis, module
-- name nginx.redis).
--
--   init_by_lua_block { mlg_peer = dofile(".../bench-peer.lua")
--                       mlg_peer.init(KEYFILE, REDIS_SOCKET, SCRIPT) }
--   access_by_lua_block { mlg_peer.apikey("predict") }
--   access_by_lua_block { mlg_peer.full("predict") }
--
-- apikey: X-API-Key, its SHA-256 looked up in a table loaded at start from
--   an ml-guard key file ("name sha256-hex role,role"), the role checked.
-- full: apikey, then a Redis GCRA limit of 1000000 requests/s with a burst of
--   1000000 keyed by the key's name (one EVALSHA per request of the script
--   ml-guard runs, ngx_ml_guard_module/mlg_ratelimit.lua, with RateLimit-*
--   headers), then a 16 KiB body cap, Content-Type application/json and the
--   shape of conf/schemas/iris.json checked on the document cjson decodes.

local digest = require "openssl.digest"
local cjson = require "cjson.safe"
local redis = require "nginx.redis"

local ngx, type, pairs, tonumber, floor, ceil =
    ngx, type, pairs, tonumber, math.floor, math.ceil

local T, TAU = 1, 1000000            -- microseconds: 1000000r/s burst=1000000
local SPEC = "L " .. T .. " " .. TAU
local MAX_BODY = 16384

local keys = {}                      -- binary SHA-256 -> {name, roles}
local socket, script, script_sha

local _M = {}

local function hex(bin)
    return (bin:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function _M.init(keyfile, redis_socket, script_path)
    for line in io.lines(keyfile) do
        local name, h, roles = line:match("^(%S+)%s+(%x+)%s*(%S*)")
        if name and #h == 64 then
            local bin = h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)
            local r = {}
            for role in roles:gmatch("[^,]+") do r[role] = true end
            keys[bin] = { name = name, roles = r, rl_key = "lua:rl:" .. name }
        end
    end
    local f = assert(io.open(script_path, "rb"))
    script = f:read("*a")
    f:close()
    script_sha = hex(digest.new("sha1"):final(script))
    socket = "unix:" .. redis_socket
end

local function deny(status)
    return ngx.exit(status)
end

function _M.apikey(role)
    local k = ngx.var.http_x_api_key
    if not k then
        return deny(401)
    end
    local e = keys[digest.new("sha256"):final(k)]
    if not e then
        return deny(401)
    end
    if not e.roles[role] then
        return deny(403)
    end
    return e
end

-- GCRA in Redis; fails open like ml_guard_redis ... fail=open
local function limit(e)
    local red = redis:new()
    red:set_timeout(100)
    local ok, err = red:connect(socket)
    if not ok then
        ngx.log(ngx.WARN, "redis: ", err)
        return
    end
    local res
    res, err = red:evalsha(script_sha, 1, e.rl_key, SPEC)
    if not res and err and err:find("NOSCRIPT", 1, true) then
        res, err = red:eval(script, 1, e.rl_key, SPEC)
    end
    if not res then
        ngx.log(ngx.WARN, "redis: ", err)
        red:close()
        return
    end
    red:set_keepalive(10000, 64)
    local d = res[1]
    local h = ngx.header
    h["RateLimit-Limit"] = floor(TAU / T) + 1
    if d > TAU then
        h["RateLimit-Remaining"] = 0
        h["RateLimit-Reset"] = ceil((d - TAU) / 1e6)
        h["Retry-After"] = ceil((d - TAU) / 1e6)
        return deny(429)
    end
    h["RateLimit-Remaining"] = floor((TAU - d) / T)
    h["RateLimit-Reset"] = ceil((d + T) / 1e6)
end

-- a row: 4 numbers in the schema's ranges
local function row_ok(r)
    if type(r) ~= "table" or r[5] ~= nil then
        return false
    end
    local a, b, c, d = r[1], r[2], r[3], r[4]
    return type(a) == "number" and a >= 0 and a <= 20
        and type(b) == "number" and b >= 0 and b <= 20
        and type(c) == "number" and c >= 0 and c <= 20
        and type(d) == "number" and d >= 0 and d <= 10
end

-- conf/schemas/iris.json: {"input": row} or {"input": [row, ...]} (1-1000
-- rows), nothing else.  cjson gives arrays integer keys and objects string
-- keys only.
local function iris_ok(doc)
    if type(doc) ~= "table" or doc[1] ~= nil then
        return false
    end
    for k in pairs(doc) do
        if k ~= "input" then
            return false
        end
    end
    local input = doc.input
    if type(input) ~= "table" then
        return false
    end
    if type(input[1]) ~= "table" then
        return row_ok(input)
    end
    local n = #input
    if n > 1000 then
        return false
    end
    for i = 1, n do
        if not row_ok(input[i]) then
            return false
        end
    end
    return true
end

function _M.full(role)
    local e = _M.apikey(role)
    limit(e)
    local len = tonumber(ngx.var.http_content_length)
    if len and len > MAX_BODY then
        return deny(413)
    end
    local ct = ngx.var.content_type
    if not ct or not (ct == "application/json" or ct:find("^application/json%s*;")) then
        return deny(415)
    end
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        -- empty, or spilled to a file (larger than client_body_buffer_size)
        return deny(ngx.req.get_body_file() and 413 or 400)
    end
    if #body > MAX_BODY then
        return deny(413)
    end
    local doc = cjson.decode(body)
    if doc == nil then
        return deny(400)
    end
    if not iris_ok(doc) then
        return deny(422)
    end
end

return _M
