-- qtap-fluent `enrich` filter: add flat, query-friendly fields to Qtap transaction records
-- (Athena / CloudWatch Logs Insights cannot easily reach into nested maps or parse URLs).
--
-- CONFIG:
--   prefix               prepended to every added key ("" by default)
--   duration_buckets_ms  ascending bounds in ms; {100, 1000, 10000} gives
--                        "<100ms", "100ms-1s", "1s-10s", ">=10s"
-- Added (each only when it can be known): host, path, query, status_class ("2xx"...),
-- duration_bucket. Records of both shapes are enriched at the top level; a `log` JSON line is
-- left as it is.

local PREFIX = CONFIG.prefix or ""
local BOUNDS = CONFIG.duration_buckets_ms or { 100, 1000, 10000 }

local function ms_label(ms)
  if ms >= 1000 and ms % 1000 == 0 then return format("%ds", ms / 1000) end
  return format("%gms", ms)
end

local LABELS = {}
for i = 1, #BOUNDS + 1 do
  if i == 1 then LABELS[i] = "<" .. ms_label(BOUNDS[1])
  elseif i == #BOUNDS + 1 then LABELS[i] = ">=" .. ms_label(BOUNDS[#BOUNDS])
  else LABELS[i] = ms_label(BOUNDS[i - 1]) .. "-" .. ms_label(BOUNDS[i]) end
end

local function duration_bucket(ms)
  for i = 1, #BOUNDS do
    if ms < BOUNDS[i] then return LABELS[i] end
  end
  return LABELS[#BOUNDS + 1]
end

function qtap_enrich(tag, timestamp, record)
  local txn = transaction_of(record)
  if not txn then return 0, timestamp, record end
  local req = type(txn.request) == "table" and txn.request or {}
  local host = transaction_host(txn)
  local _, path, query = split_url(req.url)
  if type(req.path) == "string" and req.path ~= "" then
    local _, p2, q2 = split_url(req.path)
    path, query = p2, query or q2
  end
  if not query then
    local _, _, q3 = split_url(header(req.headers, ":path"))
    query = q3
  end
  local n = 0
  local function add(key, value)
    if value ~= nil and value ~= "" then
      record[PREFIX .. key] = value
      n = n + 1
    end
  end
  add("host", host)
  add("path", path)
  add("query", query)
  local status = transaction_status(txn)
  if status and status >= 100 and status < 600 then
    add("status_class", format("%dxx", floor(status / 100)))
  end
  local d = tonumber(txn.duration_ms)
  if d and #BOUNDS > 0 then add("duration_bucket", duration_bucket(d)) end
  if n == 0 then return 0, timestamp, record end
  return 2, timestamp, record
end
