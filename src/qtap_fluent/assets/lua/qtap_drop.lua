-- qtap-fluent `drop` filter: drop (or keep only) transactions by domain, URL pattern and
-- status range, in one pass instead of a chain of grep filters (whose record-accessor keys do
-- not nest with dots: see shared/reference/README.md on `request.url`).
--
-- CONFIG:
--   domains        host names; a name also covers its subdomains ("example.com" matches
--                  "api.example.com"), compared case-insensitively without the port
--   url_patterns   Lua patterns searched in request.url
--   status_ranges  { {low, high}, ... } inclusive
--   methods        HTTP methods (upper-case)
--   mode           "drop" (default): drop what matches any rule; "keep": drop what matches none
-- Records that are not transactions always pass.

local DOMAINS = {}
for _, d in ipairs(CONFIG.domains or {}) do DOMAINS[#DOMAINS + 1] = lower(d) end
local URL_PATTERNS = CONFIG.url_patterns or {}
local RANGES = CONFIG.status_ranges or {}
local METHODS = {}
for _, m in ipairs(CONFIG.methods or {}) do METHODS[string.upper(m)] = true end
local KEEP_MODE = CONFIG.mode == "keep"

local function domain_matches(host)
  if not host then return false end
  for i = 1, #DOMAINS do
    local d = DOMAINS[i]
    if host == d or (#host > #d and sub(host, -#d - 1) == "." .. d) then return true end
  end
  return false
end

local function matches(txn)
  if domain_matches(transaction_host(txn)) then return true end
  local req = type(txn.request) == "table" and txn.request or {}
  if type(req.url) == "string" then
    for i = 1, #URL_PATTERNS do
      if find(req.url, URL_PATTERNS[i]) then return true end
    end
  end
  local status = transaction_status(txn)
  if status then
    for i = 1, #RANGES do
      if status >= RANGES[i][1] and status <= RANGES[i][2] then return true end
    end
  end
  if type(req.method) == "string" and METHODS[string.upper(req.method)] then return true end
  return false
end

function qtap_drop(tag, timestamp, record)
  local txn = transaction_of(record)
  if not txn then return 0, timestamp, record end
  if matches(txn) ~= KEEP_MODE then return -1, timestamp, record end
  return 0, timestamp, record
end
