-- qtap-fluent test harness: Fluent Bit's msgpack <-> Lua conversion and return-code handling,
-- reproduced in Lua so that it runs inside the same LuaJIT state as the filter under test.
--
-- Not a filter. Loaded by qtap_fluent.fluentbit.lua.harness. Each rule below names the Fluent
-- Bit source it reproduces (src/flb_lua.c, plugins/filter_lua/lua.c, include/fluent-bit/flb_time.h).
-- The chunk returns a table of functions and defines no globals, so the filter sees the same
-- global environment as under Fluent Bit.

local ffi = require("ffi")
local byte, char, sub = string.byte, string.char, string.sub
local floor, ceil, huge = math.floor, math.ceil, math.huge
local concat = table.concat
local maxn = table.maxn
local getmetatable_raw = debug.getmetatable
local setmetatable, rawget, rawset, next, type, tonumber, tostring, pcall, error =
    setmetatable, rawget, rawset, next, type, tonumber, tostring, pcall, error

-- enum flb_lua_l2c_type_enum (include/fluent-bit/flb_lua.h)
local L2C_INT, L2C_ARRAY, L2C_MAP = 0, 1, 2
local TWO32, TWO63 = 4294967296, 9223372036854775808

local dbuf = ffi.new("uint8_t[8]")
local dptr = ffi.cast("double*", dbuf)
local fptr = ffi.cast("float*", dbuf)

local function trunc(n)
  if n >= 0 then return floor(n) end
  return ceil(n)
end

-- (lua_Integer) n on x86-64 (cvttsd2si): out of range and NaN give INT64_MIN.
local function to_int64(n)
  if n ~= n or n >= TWO63 or n < -TWO63 then return -TWO63 end
  return trunc(n)
end

-- lua_tointeger(): numbers truncate, numeric strings convert, anything else is 0.
local function lua_tointeger(v)
  local n = (type(v) == "number") and v or (type(v) == "string" and tonumber(v)) or nil
  if n == nil then return 0 end
  return to_int64(n)
end

local function lua_tonumber(v)
  local n = (type(v) == "number") and v or (type(v) == "string" and tonumber(v)) or nil
  return n or 0
end

-- lua_isinteger() of src/flb_lua.c: (lua_Integer) n == n.
local function is_integer(n)
  return n == n and n >= -TWO63 and n < TWO63 and floor(n) == n
end

---------------------------------------------------------------------------------------------
-- msgpack -> Lua (flb_lua_pushmsgpack): ints and floats become numbers, str/bin/ext become
-- strings, nil becomes nil (the key disappears), arrays and maps become tables carrying a
-- metatable {type = L2C_ARRAY | L2C_MAP} so that their kind survives the round trip.
---------------------------------------------------------------------------------------------
local decode_value

local function u16(s, i) local a, b = byte(s, i, i + 1); return a * 256 + b end
local function u32(s, i)
  local a, b, c, d = byte(s, i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
-- flb_lua_pushmsgpack(): lua_pushinteger(l, (double) u64) converts the double back to int64;
-- on x86-64 anything from 2^63 up comes out as INT64_MIN.
local function u64(s, i)
  local v = u32(s, i) * TWO32 + u32(s, i + 4)
  if v >= TWO63 then return -TWO63 end
  return v
end
local function i64(s, i)
  local hi = u32(s, i)
  if hi >= 2147483648 then hi = hi - TWO32 end
  return hi * TWO32 + u32(s, i + 4)
end

local function read_double(s, i)
  for k = 0, 7 do dbuf[k] = byte(s, i + 7 - k) end
  return dptr[0]
end
local function read_float(s, i)
  for k = 0, 3 do dbuf[k] = byte(s, i + 3 - k) end
  return tonumber(fptr[0])
end

local function new_kind(kind, t)
  return setmetatable(t, { type = kind })
end

local function decode_array(s, i, n)
  local t = {}
  for k = 1, n do
    local v
    v, i = decode_value(s, i)
    t[k] = v
  end
  return new_kind(L2C_ARRAY, t), i
end

local function decode_map(s, i, n)
  local t = {}
  for _ = 1, n do
    local k, v
    k, i = decode_value(s, i)
    v, i = decode_value(s, i)
    if k == nil then error("table index is nil (msgpack map with a nil key)") end
    t[k] = v
  end
  return new_kind(L2C_MAP, t), i
end

decode_value = function(s, i)
  local b = byte(s, i)
  if b == nil then error("truncated msgpack") end
  if b < 0x80 then return b, i + 1 end
  if b >= 0xe0 then return b - 256, i + 1 end
  if b < 0x90 then return decode_map(s, i + 1, b - 0x80) end
  if b < 0xa0 then return decode_array(s, i + 1, b - 0x90) end
  if b < 0xc0 then local n = b - 0xa0; return sub(s, i + 1, i + n), i + 1 + n end
  if b == 0xc0 then return nil, i + 1 end
  if b == 0xc2 then return false, i + 1 end
  if b == 0xc3 then return true, i + 1 end
  if b == 0xc4 or b == 0xd9 then local n = byte(s, i + 1); return sub(s, i + 2, i + 1 + n), i + 2 + n end
  if b == 0xc5 or b == 0xda then local n = u16(s, i + 1); return sub(s, i + 3, i + 2 + n), i + 3 + n end
  if b == 0xc6 or b == 0xdb then local n = u32(s, i + 1); return sub(s, i + 5, i + 4 + n), i + 5 + n end
  -- ext: only the payload reaches Lua
  if b == 0xc7 then local n = byte(s, i + 1); return sub(s, i + 3, i + 2 + n), i + 3 + n end
  if b == 0xc8 then local n = u16(s, i + 1); return sub(s, i + 4, i + 3 + n), i + 4 + n end
  if b == 0xc9 then local n = u32(s, i + 1); return sub(s, i + 6, i + 5 + n), i + 6 + n end
  if b >= 0xd4 and b <= 0xd8 then
    local n = ({ [0xd4] = 1, [0xd5] = 2, [0xd6] = 4, [0xd7] = 8, [0xd8] = 16 })[b]
    return sub(s, i + 2, i + 1 + n), i + 2 + n
  end
  if b == 0xca then return read_float(s, i + 1), i + 5 end
  if b == 0xcb then return read_double(s, i + 1), i + 9 end
  if b == 0xcc then return byte(s, i + 1), i + 2 end
  if b == 0xcd then return u16(s, i + 1), i + 3 end
  if b == 0xce then return u32(s, i + 1), i + 5 end
  if b == 0xcf then return u64(s, i + 1), i + 9 end
  if b == 0xd0 then local v = byte(s, i + 1); return (v >= 128) and v - 256 or v, i + 2 end
  if b == 0xd1 then local v = u16(s, i + 1); return (v >= 32768) and v - 65536 or v, i + 3 end
  if b == 0xd2 then local v = u32(s, i + 1); return (v >= 2147483648) and v - TWO32 or v, i + 5 end
  if b == 0xd3 then return i64(s, i + 1), i + 9 end
  if b == 0xdc then return decode_array(s, i + 3, u16(s, i + 1)) end
  if b == 0xdd then return decode_array(s, i + 5, u32(s, i + 1)) end
  if b == 0xde then return decode_map(s, i + 3, u16(s, i + 1)) end
  if b == 0xdf then return decode_map(s, i + 5, u32(s, i + 1)) end
  error(("unsupported msgpack byte 0x%02x"):format(b))
end

---------------------------------------------------------------------------------------------
-- Lua -> msgpack (flb_lua_tomsgpack)
---------------------------------------------------------------------------------------------
local function be32(n)
  return char(floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end

local function pack_int(out, n)
  if n >= 0 then
    if n < 128 then out[#out + 1] = char(n)
    elseif n < 256 then out[#out + 1] = char(0xcc, n)
    elseif n < 65536 then out[#out + 1] = char(0xcd, floor(n / 256), n % 256)
    elseif n < TWO32 then out[#out + 1] = char(0xce) .. be32(n)
    else out[#out + 1] = char(0xcf) .. be32(floor(n / TWO32)) .. be32(n % TWO32) end
  else
    if n >= -32 then out[#out + 1] = char(n + 256)
    elseif n >= -128 then out[#out + 1] = char(0xd0, n + 256)
    elseif n >= -32768 then local u = n + 65536; out[#out + 1] = char(0xd1, floor(u / 256), u % 256)
    elseif n >= -2147483648 then out[#out + 1] = char(0xd2) .. be32(n + TWO32)
    else
      local hi = floor(n / TWO32)
      local lo = n - hi * TWO32
      out[#out + 1] = char(0xd3) .. be32(hi + TWO32) .. be32(lo)
    end
  end
end

local function pack_double(out, n)
  dptr[0] = n
  out[#out + 1] = char(0xcb, dbuf[7], dbuf[6], dbuf[5], dbuf[4], dbuf[3], dbuf[2], dbuf[1], dbuf[0])
end

local function pack_str(out, s)
  local n = #s
  if n < 32 then out[#out + 1] = char(0xa0 + n)
  elseif n < 256 then out[#out + 1] = char(0xd9, n)
  elseif n < 65536 then out[#out + 1] = char(0xda, floor(n / 256), n % 256)
  else out[#out + 1] = char(0xdb) .. be32(n) end
  out[#out + 1] = s
end

local function pack_header(out, n, fix, c16, c32)
  if n < 16 then out[#out + 1] = char(fix + n)
  elseif n < 65536 then out[#out + 1] = char(c16, floor(n / 256), n % 256)
  else out[#out + 1] = char(c32) .. be32(n) end
end

-- flb_lua_arraylength(): table.maxn when it is a positive integer, else every key must be a
-- positive number and their count must equal the largest one.
local function array_length(t)
  local m = maxn(t)
  if is_integer(m) and m > 0 then return m end
  local count, max = 0, 0
  for k in next, t do
    if type(k) ~= "number" then return -1 end
    local n = to_int64(k)
    if not (n > 0) then return -1 end
    if n > max then max = n end
    count = count + 1
  end
  if max ~= count then return -1 end
  return max
end

-- flb_lua_getmetatable(): the raw metatable's "type" field, when it is a number.
local function meta_kind(t)
  local mt = getmetatable_raw(t)
  if type(mt) ~= "table" then return -1 end
  local kind = rawget(mt, "type")
  if type(kind) ~= "number" then return -1 end
  return to_int64(kind)
end

local pack_value

-- type_int_key / type_array_key: strncmp(config_key, lua_key, strlen(lua_key)) == 0, i.e. the
-- Lua key is a prefix of the configured key (the empty key matches every entry).
local function l2c_match(l2c, key, kind)
  for idx = 1, #l2c do
    local e = l2c[idx]
    if e.kind == kind and sub(e.key, 1, #key) == key then return true end
  end
  return false
end

local function pack_as_array(out, t, l2c)
  local n = #t   -- lua_objlen
  pack_header(out, n, 0x90, 0xdc, 0xdd)
  for i = 1, n do pack_value(out, rawget(t, i), l2c) end
end

local function pack_as_map(out, t, l2c)
  local n = 0
  for _ in next, t do n = n + 1 end
  pack_header(out, n, 0x80, 0xde, 0xdf)
  for k, v in next, t do
    pack_value(out, k, l2c)
    if #l2c > 0 and type(k) == "string" and type(v) == "number" and l2c_match(l2c, k, L2C_INT) then
      pack_int(out, to_int64(v))
    elseif #l2c > 0 and type(k) == "string" and type(v) == "table"
        and l2c_match(l2c, k, L2C_ARRAY) then
      pack_as_array(out, v, l2c)
    else
      pack_value(out, v, l2c)
    end
  end
end

pack_value = function(out, v, l2c)
  local tv = type(v)
  if tv == "string" then pack_str(out, v)
  elseif tv == "number" then
    if is_integer(v) then pack_int(out, v) else pack_double(out, v) end
  elseif tv == "boolean" then out[#out + 1] = v and "\195" or "\194"
  elseif tv == "nil" then out[#out + 1] = "\192"
  elseif tv == "table" then
    local kind = meta_kind(v)
    if kind >= 0 then
      if kind == L2C_ARRAY then pack_as_array(out, v, l2c) else pack_as_map(out, v, l2c) end
      return
    end
    local n = array_length(v)
    if n > 0 then
      pack_header(out, n, 0x90, 0xdc, 0xdd)
      for i = 1, n do pack_value(out, rawget(v, i), l2c) end
    else
      pack_as_map(out, v, l2c)
    end
  else
    -- Fluent Bit writes nothing here and the buffer becomes corrupt; the harness refuses.
    error("qtap-harness: cannot serialise a " .. tv .. " value", 0)
  end
end

---------------------------------------------------------------------------------------------
-- One record through the filter (cb_lua_filter in plugins/filter_lua/lua.c).
-- Returns a status string and its details:
--   "error", message              protected-mode error: the whole chunk is left untouched
--   "drop"                        code -1
--   "keep", code                  code 0 or any unexpected code (the original record is kept)
--   "modified", sec, nsec, bytes  code 1 or 2: new timestamp and the packed returned value
---------------------------------------------------------------------------------------------
local M = {}

local function finish(code, rts, rrec, sec, nsec, time_as_table, l2c, warn)
  code = lua_tointeger(code)
  code = (code + 2147483648) % 4294967296 - 2147483648  -- the (int) cast wraps
  local record = rrec
  local tsec, tnsec = sec, nsec
  if time_as_table then
    -- Read before the code is looked at, whatever the code. When the returned timestamp is
    -- not a table, cb_lua_filter logs and does not pop it, so the value it then packs as
    -- "the record" is that timestamp: a non-map, hence an untouched chunk for codes 1 and 2.
    if type(rts) == "table" then
      tsec = lua_tointeger(rts.sec)
      tnsec = lua_tointeger(rts.nsec)
    else
      warn("invalid lua timestamp type returned")
      record = rts
    end
  end
  if code == -1 then return "drop" end
  if code ~= 1 and code ~= 2 then return "keep", code end
  local sec_out, nsec_out = sec, nsec
  if code == 1 then
    if time_as_table then
      if type(rts) == "table" then sec_out, nsec_out = tsec, tnsec end
    else
      -- flb_time_from_double(): tv_sec = (time_t) d; tv_nsec = (long) ((d - tv_sec) * 1e9)
      local d = lua_tonumber(rts)
      sec_out = trunc(d)
      nsec_out = trunc((d - sec_out) * 1000000000)
    end
  end
  local out = {}
  pack_value(out, record, l2c)
  return "modified", sec_out, nsec_out, concat(out)
end

function M.step(fn, tag, sec, nsec, record_bytes, time_as_table, protected, l2c, warn)
  local record = decode_value(record_bytes, 1)
  local ts
  if time_as_table then
    ts = { sec = sec, nsec = nsec }
  else
    ts = sec + nsec / 1000000000  -- flb_time_to_double()
  end
  if protected then
    local ok, code, rts, rrec = pcall(fn, tag, ts, record)
    if not ok then return "error", tostring(code) end
    return finish(code, rts, rrec, sec, nsec, time_as_table, l2c, warn)
  end
  local code, rts, rrec = fn(tag, ts, record)
  return finish(code, rts, rrec, sec, nsec, time_as_table, l2c, warn)
end

function M.nparams(fn)
  return debug.getinfo(fn, "u").nparams or 3
end

-- Exposed for the conformance tests of the codec itself.
M.decode = function(s) return (decode_value(s, 1)) end
M.encode = function(v, l2c) local out = {}; pack_value(out, v, l2c or {}); return concat(out) end

return M
