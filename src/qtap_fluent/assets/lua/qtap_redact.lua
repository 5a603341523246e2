-- qtap-fluent `redact` filter: mask secrets in Qtap transaction records inside Fluent Bit.
--
-- CONFIG (rendered by qtap_fluent.fluentbit.lua.filters from qtap_fluent.redact's defaults):
--   headers, query_params, json_keys     exact names, compared case-insensitively
--   header_patterns, query_patterns,
--   json_key_patterns                    anchored Lua patterns tried on the lower-cased name
--   mask                                 the replacement value ("[REDACTED]")
--   url_headers                          headers holding a URL whose query is redacted
-- Same rules as qtap_fluent/redact.py (see its module doc); the test suite runs both on the
-- same records and compares.

local is_secret_header = name_matcher(CONFIG.headers, CONFIG.header_patterns)
local is_secret_param = name_matcher(CONFIG.query_params, CONFIG.query_patterns)
local is_secret_key = name_matcher(CONFIG.json_keys, CONFIG.json_key_patterns)
local MASK_JSON = json_string(MASK)
local is_url_header = name_matcher(CONFIG.url_headers, {})

-- Mask the values of matching parameters in "a=1&token=x"; returns text, count.
local function redact_query(query)
  local parts, n = {}, 0
  for part in (query .. "&"):gmatch("([^&]*)&") do
    local eq = find(part, "=", 1, true)
    if eq and is_secret_param(pct_decode(sub(part, 1, eq - 1))) then
      part = sub(part, 1, eq) .. MASK
      n = n + 1
    end
    parts[#parts + 1] = part
  end
  if n == 0 then return query, 0 end
  return concat(parts, "&"), n
end

local function redact_url(url)
  local q = find(url, "?", 1, true)
  if not q then return url, 0 end
  local h = find(url, "#", q + 1, true)
  local stop = h or (#url + 1)
  local query, n = redact_query(sub(url, q + 1, stop - 1))
  if n == 0 then return url, 0 end
  return sub(url, 1, q) .. query .. sub(url, stop), n
end

-- A Qtap body: base64 (qtap.md §3.1), or plain text when it is not valid base64.
local function redact_body(body, content_type)
  local raw = b64decode(body)
  local text = raw or body
  local new, n
  local first = text:match("^[ \t\r\n]*(.)")
  if first == "{" or first == "[" then
    new, n = json_redact(text, is_secret_key, MASK_JSON)
  elseif type(content_type) == "string"
      and find(lower(content_type), "x-www-form-urlencoded", 1, true) then
    new, n = redact_query(text)
  end
  if not new or n == 0 or new == text then return body, 0 end
  if raw then return b64encode(new), n end
  return new, n
end

local function redact_side(part)
  local n = 0
  local headers = part.headers
  if type(headers) == "table" then
    for name, value in pairs(headers) do
      if is_secret_header(name) then
        headers[name] = MASK
        n = n + 1
      elseif type(value) == "string" and is_url_header(name) then
        local v, k = redact_url(value)
        headers[name] = v
        n = n + k
      end
    end
  end
  for _, key in ipairs({ "url", "path" }) do
    if type(part[key]) == "string" then
      local v, k = redact_url(part[key])
      part[key] = v
      n = n + k
    end
  end
  if type(part.body) == "string" and part.body ~= "" then
    local v, k = redact_body(part.body, part.content_type)
    part.body = v
    n = n + k
  end
  return n
end

function qtap_redact(tag, timestamp, record)
  local txn, shape = transaction_of(record)
  if not txn then return 0, timestamp, record end
  local n = 0
  for _, side in ipairs({ "request", "response" }) do
    if type(txn[side]) == "table" then n = n + redact_side(txn[side]) end
  end
  if n == 0 then return 0, timestamp, record end
  if shape == "log" then record.log = json_encode(txn) end
  return 2, timestamp, record
end
