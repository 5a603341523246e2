-- qtap-fluent: helpers shared by the bundled Fluent Bit Lua filters.
--
-- Fluent Bit embeds LuaJIT 2.1 with no cjson or base64 module, so JSON and base64 are written
-- here in plain Lua 5.1. qtap_fluent.fluentbit.lua.filters.render_script() pastes this file
-- between the rendered CONFIG table and the filter's own code; everything here is local.

local byte, char, sub, find, gsub, lower, format =
  string.byte, string.char, string.sub, string.find, string.gsub, string.lower, string.format
local concat, sort = table.concat, table.sort
local floor = math.floor
local MASK = CONFIG.mask or "[REDACTED]"

-- Fluent Bit marks tables that came from msgpack with a metatable {type = 1 (array) | 2 (map)}
-- (src/flb_lua.c, flb_lua_setmetatable). Tables built here carry the same marks, so an empty
-- JSON array still leaves the filter as an array and an empty object as a map.
local FLB_ARRAY, FLB_MAP = 1, 2
local function as_array(t) return setmetatable(t, { type = FLB_ARRAY }) end
local function as_map(t) return setmetatable(t, { type = FLB_MAP }) end
local function is_array(t)
  local mt = getmetatable(t)
  if mt and mt.type == FLB_ARRAY then return true end
  if mt and mt.type == FLB_MAP then return false end
  return next(t) ~= nil and #t > 0 and next(t, #t) == nil and t[1] ~= nil
end

---------------------------------------------------------------------------------------------
-- base64 (RFC 4648 §4, standard alphabet with padding: what Go's encoding/json writes for
-- []byte, qtap.md §3.1). decode() is strict: it returns nil for anything else.
---------------------------------------------------------------------------------------------
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_ENC, B64_DEC = {}, {}
for i = 1, 64 do
  B64_ENC[i - 1] = sub(B64, i, i)
  B64_DEC[byte(B64, i)] = i - 1
end

-- 12 bits -> two base64 characters: one table lookup per half of a 3-byte group.
local B64_PAIR = {}
for hi = 0, 63 do
  for lo = 0, 63 do B64_PAIR[hi * 64 + lo] = B64_ENC[hi] .. B64_ENC[lo] end
end

local function b64encode(s)
  local out, k, n = {}, 0, #s
  for i = 1, n - 2, 3 do
    local a, b, c = byte(s, i, i + 2)
    local v = a * 65536 + b * 256 + c
    out[k + 1] = B64_PAIR[floor(v / 4096)]
    out[k + 2] = B64_PAIR[v % 4096]
    k = k + 2
  end
  local r = n % 3
  if r == 1 then
    local v = byte(s, n) * 65536
    out[k + 1] = B64_PAIR[floor(v / 4096)] .. "=="
  elseif r == 2 then
    local a, b = byte(s, n - 1, n)
    local v = a * 65536 + b * 256
    out[k + 1] = B64_PAIR[floor(v / 4096)] .. B64_ENC[floor(v / 64) % 64] .. "="
  end
  return concat(out)
end

local B64_VAL, BYTE_CHAR = {}, {}
for i = 0, 255 do
  B64_VAL[i] = B64_DEC[i] or -1
  BYTE_CHAR[i] = char(i)
end

local function b64decode(s)
  local n = #s
  if n % 4 ~= 0 then return nil end
  if n == 0 then return "" end
  local out, k = {}, 0
  for i = 1, n - 4, 4 do
    local a, b = B64_VAL[byte(s, i)], B64_VAL[byte(s, i + 1)]
    local c, d = B64_VAL[byte(s, i + 2)], B64_VAL[byte(s, i + 3)]
    if a < 0 or b < 0 or c < 0 or d < 0 then return nil end
    local v = a * 262144 + b * 4096 + c * 64 + d
    out[k + 1] = BYTE_CHAR[floor(v / 65536)]
    out[k + 2] = BYTE_CHAR[floor(v / 256) % 256]
    out[k + 3] = BYTE_CHAR[v % 256]
    k = k + 3
  end
  -- the last quantum may carry "=" padding (RFC 4648 §4)
  local a, b = B64_VAL[byte(s, n - 3)], B64_VAL[byte(s, n - 2)]
  local c3, c4 = byte(s, n - 1), byte(s, n)
  if a < 0 or b < 0 then return nil end
  if c3 == 61 then
    if c4 ~= 61 then return nil end
    out[k + 1] = BYTE_CHAR[floor((a * 262144 + b * 4096) / 65536)]
  else
    local c = B64_VAL[c3]
    if c < 0 then return nil end
    if c4 == 61 then
      local v = a * 262144 + b * 4096 + c * 64
      out[k + 1] = BYTE_CHAR[floor(v / 65536)]
      out[k + 2] = BYTE_CHAR[floor(v / 256) % 256]
    else
      local d = B64_VAL[c4]
      if d < 0 then return nil end
      local v = a * 262144 + b * 4096 + c * 64 + d
      out[k + 1] = BYTE_CHAR[floor(v / 65536)]
      out[k + 2] = BYTE_CHAR[floor(v / 256) % 256]
      out[k + 3] = BYTE_CHAR[v % 256]
    end
  end
  return concat(out)
end

---------------------------------------------------------------------------------------------
-- JSON (RFC 8259). decode() builds Fluent Bit-marked tables and remembers each object's key
-- order so that encode() writes Qtap's key order back; null becomes nil (as msgpack nil does).
---------------------------------------------------------------------------------------------
local KEY_ORDER = setmetatable({}, { __mode = "k" })
local MAX_DEPTH = 200

local function utf8_char(cp)
  if cp < 0x80 then return char(cp) end
  if cp < 0x800 then return char(0xC0 + floor(cp / 64), 0x80 + cp % 64) end
  if cp < 0x10000 then
    return char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
  end
  return char(0xF0 + floor(cp / 262144), 0x80 + floor(cp / 4096) % 64,
    0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
end

-- The scanners below walk bytes with string.byte in plain loops: LuaJIT compiles those, while
-- pattern-based string.find is not compiled and would leave every token to the interpreter.
local B_QUOTE, B_BSLASH, B_U = 34, 92, 117
local ESC_BYTE = { [34] = '"', [92] = "\\", [47] = "/", [98] = "\b", [102] = "\f",
  [110] = "\n", [114] = "\r", [116] = "\t" }

local function hex4(s, j)
  local v = 0
  for k = j, j + 3 do
    local c = byte(s, k)
    if not c then return nil end
    if c >= 48 and c <= 57 then v = v * 16 + c - 48
    elseif c >= 65 and c <= 70 then v = v * 16 + c - 55
    elseif c >= 97 and c <= 102 then v = v * 16 + c - 87
    else return nil end
  end
  return v
end

-- Scan the string token starting at the quote at i. Returns the decoded string and the index
-- after the closing quote, or nil when the token is not a valid JSON string.
local function scan_string(s, i)
  local j = i + 1
  local start, parts = j, nil
  while true do
    local c = byte(s, j)
    if c == nil or c < 32 then return nil end -- unterminated, or a raw control (RFC 8259 §7)
    if c == B_QUOTE then
      if not parts then return sub(s, start, j - 1), j + 1 end
      parts[#parts + 1] = sub(s, start, j - 1)
      return concat(parts), j + 1
    elseif c == B_BSLASH then
      parts = parts or {}
      parts[#parts + 1] = sub(s, start, j - 1)
      local e = byte(s, j + 1)
      if e == B_U then
        local cp = hex4(s, j + 2)
        if not cp then return nil end
        j = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF and byte(s, j) == B_BSLASH and byte(s, j + 1) == B_U then
          local lo = hex4(s, j + 2)
          if lo and lo >= 0xDC00 and lo <= 0xDFFF then
            cp = 0x10000 + (cp - 0xD800) * 1024 + (lo - 0xDC00)
            j = j + 6
          end
        end
        parts[#parts + 1] = utf8_char(cp)
      elseif e and ESC_BYTE[e] then
        parts[#parts + 1] = ESC_BYTE[e]
        j = j + 2
      else
        return nil
      end
      start = j
    else
      j = j + 1
    end
  end
end

local decode_value

local function skip_ws(s, i)
  while true do
    local c = byte(s, i)
    if c ~= 32 and c ~= 10 and c ~= 13 and c ~= 9 then return i end
    i = i + 1
  end
end

local function skip_digits(s, i)
  local c = byte(s, i)
  while c and c >= 48 and c <= 57 do
    i = i + 1
    c = byte(s, i)
  end
  return i
end

-- A number token at i (RFC 8259 §6): returns the index after it, or nil.
local function scan_number(s, i)
  local j = i
  if byte(s, j) == 45 then j = j + 1 end -- "-"
  local c = byte(s, j)
  if c == 48 then -- "0" stands alone
    j = j + 1
  elseif c and c >= 49 and c <= 57 then
    j = skip_digits(s, j + 1)
  else
    return nil
  end
  if byte(s, j) == 46 then -- "."
    local k = skip_digits(s, j + 1)
    if k == j + 1 then return nil end
    j = k
  end
  c = byte(s, j)
  if c == 101 or c == 69 then -- "e" / "E"
    j = j + 1
    c = byte(s, j)
    if c == 43 or c == 45 then j = j + 1 end
    local k = skip_digits(s, j)
    if k == j then return nil end
    j = k
  end
  return j
end

local function decode_object(s, i, depth)
  local obj, order = {}, {}
  i = skip_ws(s, i + 1)
  if byte(s, i) == 125 then -- "}"
    KEY_ORDER[obj] = order
    return as_map(obj), i + 1
  end
  while true do
    if byte(s, i) ~= B_QUOTE then return nil end
    local key, j = scan_string(s, i)
    if not key then return nil end
    j = skip_ws(s, j)
    if byte(s, j) ~= 58 then return nil end -- ":"
    local val
    val, j = decode_value(s, skip_ws(s, j + 1), depth)
    if not j then return nil end
    if obj[key] == nil then order[#order + 1] = key end
    obj[key] = val
    j = skip_ws(s, j)
    local c = byte(s, j)
    if c == 125 then
      KEY_ORDER[obj] = order
      return as_map(obj), j + 1
    end
    if c ~= 44 then return nil end -- ","
    i = skip_ws(s, j + 1)
  end
end

local function decode_array(s, i, depth)
  local arr, n = {}, 0
  i = skip_ws(s, i + 1)
  if byte(s, i) == 93 then return as_array(arr), i + 1 end -- "]"
  while true do
    local val, j = decode_value(s, i, depth)
    if not j then return nil end
    n = n + 1
    arr[n] = val
    j = skip_ws(s, j)
    local c = byte(s, j)
    if c == 93 then return as_array(arr), j + 1 end
    if c ~= 44 then return nil end
    i = skip_ws(s, j + 1)
  end
end

-- Returns value, next index; or nil, nil on invalid input (a JSON null is nil, next index).
decode_value = function(s, i, depth)
  local c = byte(s, i)
  if c == 123 or c == 91 then -- "{" "["
    if depth >= MAX_DEPTH then return nil end
    if c == 123 then return decode_object(s, i, depth + 1) end
    return decode_array(s, i, depth + 1)
  elseif c == B_QUOTE then
    return scan_string(s, i)
  elseif c == 45 or (c and c >= 48 and c <= 57) then
    local j = scan_number(s, i)
    if not j then return nil end
    return tonumber(sub(s, i, j - 1)), j
  elseif c == 116 then
    if sub(s, i, i + 3) == "true" then return true, i + 4 end
  elseif c == 102 then
    if sub(s, i, i + 4) == "false" then return false, i + 5 end
  elseif c == 110 then
    if sub(s, i, i + 3) == "null" then return nil, i + 4 end
  end
  return nil
end

-- json_decode(text) -> value, true  |  nil, false (not JSON)
local function json_decode(s)
  if type(s) ~= "string" then return nil, false end
  local v, j = decode_value(s, skip_ws(s, 1), 0)
  if not j or skip_ws(s, j) <= #s then return nil, false end
  return v, true
end

local ENC_ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function enc_char(c) return ENC_ESC[c] or format("\\u%04x", byte(c)) end
local function json_string(s) return '"' .. gsub(s, '[%z\1-\31"\\]', enc_char) .. '"' end

local function json_number(n)
  if n ~= n or n == math.huge or n == -math.huge then return "null" end
  if floor(n) == n and n > -2^63 and n < 2^63 then return format("%d", n) end
  for p = 15, 17 do
    local t = format("%." .. p .. "g", n)
    if tonumber(t) == n then return t end
  end
  return format("%.17g", n)
end

local function sorted_rest(t, seen)
  local rest = {}
  for k in pairs(t) do
    if not seen[k] then rest[#rest + 1] = k end
  end
  sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  return rest
end

local function json_encode(v, out)
  local top = out == nil
  out = out or {}
  local tv = type(v)
  if tv == "string" then out[#out + 1] = json_string(v)
  elseif tv == "number" then out[#out + 1] = json_number(v)
  elseif tv == "boolean" then out[#out + 1] = tostring(v)
  elseif tv == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        json_encode(v[i], out)
      end
      out[#out + 1] = "]"
    else
      out[#out + 1] = "{"
      local first, seen = true, {}
      local function member(k)
        local val = v[k]
        if val == nil then return end
        if not first then out[#out + 1] = "," end
        first = false
        out[#out + 1] = json_string(tostring(k))
        out[#out + 1] = ":"
        json_encode(val, out)
      end
      for _, k in ipairs(KEY_ORDER[v] or {}) do
        seen[k] = true
        member(k)
      end
      for _, k in ipairs(sorted_rest(v, seen)) do member(k) end
      out[#out + 1] = "}"
    end
  else
    out[#out + 1] = "null"
  end
  if top then return concat(out) end
end

---------------------------------------------------------------------------------------------
-- Names: case-insensitive exact names plus anchored Lua patterns on the lower-cased name.
---------------------------------------------------------------------------------------------
local MATCH_CACHE_MAX = 4096 -- names remembered per matcher before the memo is reset

local function name_matcher(names, patterns)
  local exact = {}
  for _, n in ipairs(names or {}) do exact[lower(n)] = true end
  local pats = patterns or {}
  -- Pattern matching is not compiled by LuaJIT, and the same few names (header names, JSON
  -- keys) come back in every record: remember each verdict, with a bounded memo.
  local memo, size = {}, 0
  return function(name)
    if type(name) ~= "string" then return false end
    local verdict = memo[name]
    if verdict ~= nil then return verdict end
    local low = lower(name)
    verdict = exact[low] == true
    if not verdict then
      for i = 1, #pats do
        if find(low, pats[i]) then
          verdict = true
          break
        end
      end
    end
    if size >= MATCH_CACHE_MAX then memo, size = {}, 0 end
    memo[name] = verdict
    size = size + 1
    return verdict
  end
end

---------------------------------------------------------------------------------------------
-- Transactions: the parsed record (request/response at top level), or a record whose `log`
-- still holds the JSON line (Docker fluentd log driver before the parser filter).
---------------------------------------------------------------------------------------------
local function transaction_of(record)
  if type(record.request) == "table" or type(record.response) == "table" then
    return record, "record"
  end
  if type(record.log) == "string" and find(record.log, "^%s*{") then
    local t, ok = json_decode(record.log)
    if ok and type(t) == "table" and (type(t.request) == "table" or type(t.response) == "table")
    then
      return t, "log"
    end
  end
  return nil, nil
end

local function pct_decode(s)
  s = gsub(s, "+", " ")
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- Parts of a URL or request target: host (lower-case, no port), path, query (nil if none).
local function split_url(url)
  if type(url) ~= "string" then return nil, nil, nil end
  local rest = gsub(url, "#.*$", "")
  local host
  local scheme_end = find(rest, "://", 1, true)
  if scheme_end then
    local auth_end = find(rest, "[/?]", scheme_end + 3) or (#rest + 1)
    host = sub(rest, scheme_end + 3, auth_end - 1)
    host = gsub(host, "^.*@", "")
    rest = sub(rest, auth_end)
  end
  local q = find(rest, "?", 1, true)
  local path, query = rest, nil
  if q then path, query = sub(rest, 1, q - 1), sub(rest, q + 1) end
  if path == "" then path = "/" end
  return host, path, query
end

local function strip_port(host)
  if type(host) ~= "string" or host == "" then return nil end
  host = lower(host)
  if sub(host, 1, 1) == "[" then return (gsub(host, "%]:%d+$", "]")) end
  return (gsub(host, ":%d+$", ""))
end

local function header(headers, name)
  if type(headers) ~= "table" then return nil end
  local v = headers[name]
  if v ~= nil then return v end
  local low = lower(name)
  for k, val in pairs(headers) do
    if type(k) == "string" and lower(k) == low then return val end
  end
  return nil
end

-- The host a transaction talked to: :authority/authority, URL host, Host header, endpoint id.
local function transaction_host(txn)
  local req = type(txn.request) == "table" and txn.request or {}
  local h = req.authority
  if type(h) ~= "string" or h == "" then h = (split_url(req.url)) end
  if type(h) ~= "string" or h == "" then h = header(req.headers, ":authority") end
  if type(h) ~= "string" or h == "" then h = header(req.headers, "Host") end
  if (type(h) ~= "string" or h == "") and type(txn.metadata) == "table" then
    h = txn.metadata.endpoint_id
  end
  return strip_port(h)
end

local function transaction_status(txn)
  local resp = txn.response
  if type(resp) ~= "table" then return nil end
  local s = tonumber(resp.status)
  return s
end

local function shallow_copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  local mt = getmetatable(t)
  if mt and mt.type then setmetatable(c, { type = mt.type }) end
  KEY_ORDER[c] = KEY_ORDER[t]
  return c
end

local function timestamp_seconds(ts)
  if type(ts) == "table" then return tonumber(ts.sec) or 0 end
  return floor(tonumber(ts) or 0)
end

---------------------------------------------------------------------------------------------
-- JSON redaction that rewrites the text in place: every member whose key matches gets the
-- mask as its value; whitespace, key order and number spelling stay as written. Returns the
-- new text and the number of masked members, or nil when the text is not JSON. JSON nested
-- deeper than MAX_DEPTH is masked whole (fail closed), as qtap_fluent.redact does.
---------------------------------------------------------------------------------------------
local redact_value

local function copy_ws(s, i, out)
  local j = skip_ws(s, i)
  if j > i then out[#out + 1] = sub(s, i, j - 1) end
  return j
end

local function redact_container(s, i, out, depth, match, mask_json, st)
  local is_object = byte(s, i) == 123
  local close = is_object and 125 or 93
  out[#out + 1] = is_object and "{" or "["
  local j = copy_ws(s, i + 1, out)
  if byte(s, j) == close then
    out[#out + 1] = is_object and "}" or "]"
    return j + 1
  end
  while true do
    local e
    if is_object then
      if byte(s, j) ~= B_QUOTE then return nil end
      local key, k = scan_string(s, j)
      if not key then return nil end
      out[#out + 1] = sub(s, j, k - 1)
      k = copy_ws(s, k, out)
      if byte(s, k) ~= 58 then return nil end
      out[#out + 1] = ":"
      local v = copy_ws(s, k + 1, out)
      if match(key) then
        e = redact_value(s, v, {}, depth, match, mask_json, st)
        out[#out + 1] = mask_json
        st.count = st.count + 1
      else
        e = redact_value(s, v, out, depth, match, mask_json, st)
      end
    else
      e = redact_value(s, j, out, depth, match, mask_json, st)
    end
    if not e then return nil end
    e = copy_ws(s, e, out)
    local c = byte(s, e)
    if c == close then
      out[#out + 1] = is_object and "}" or "]"
      return e + 1
    end
    if c ~= 44 then return nil end
    out[#out + 1] = ","
    j = copy_ws(s, e + 1, out)
  end
end

redact_value = function(s, i, out, depth, match, mask_json, st)
  local c = byte(s, i)
  if c == 123 or c == 91 then
    if depth >= MAX_DEPTH then
      st.deep = true
      return nil
    end
    return redact_container(s, i, out, depth + 1, match, mask_json, st)
  end
  local _, j = decode_value(s, i, depth)
  if not j then return nil end
  out[#out + 1] = sub(s, i, j - 1)
  return j
end

local function json_redact(s, match, mask_json)
  local out, st = {}, { count = 0, deep = false }
  local j = copy_ws(s, 1, out)
  j = redact_value(s, j, out, 0, match, mask_json, st)
  if st.deep then return mask_json, 1 end
  if not j then return nil, 0 end
  j = copy_ws(s, j, out)
  if j <= #s then return nil, 0 end
  return concat(out), st.count
end
