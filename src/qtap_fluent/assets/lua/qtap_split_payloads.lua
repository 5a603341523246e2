-- qtap-fluent `split_payloads` filter: one record for the transaction summary plus one per
-- body, all sharing a group key, so that S3 (`s3_key_format /$s3_key`, `log_key data`) stores
-- large bodies as their own objects next to a small summary. The pattern of Qpoint's own
-- Fluent Bit example (qtap.md §3.5), applied to Qtap's transaction record (qtap.md §3.1).
--
-- CONFIG:
--   key_prefix      first segment of every key ("qtap"; "" for none)
--   min_body_bytes  bodies shorter than this stay inline in the summary (0: split every body)
--   decode_bodies   true: `data` holds the body bytes; false: the base64 text as captured
-- Output, for a transaction with id ID (request.request_id, else metadata.connection_id, else
-- a per-filter counter) at UTC date Y/M/D:
--   summary  the record without the split bodies; request/response get `body_s3_key`;
--            top-level `s3_key` = <prefix>/Y/M/D/ID/transaction.json, `group_key` = .../ID
--   bodies   {msg = "HTTP payload", payload = "request_body" | "response_body", request_id,
--            s3_key = <group>/<payload>, group_key, data, data_encoding ("raw" | "base64"),
--            content_type}
-- A record whose `log` still holds the JSON line keeps that shape: its `log` is rewritten
-- without the bodies. Records without bodies pass unchanged.

local KEY_PREFIX = CONFIG.key_prefix or "qtap"
local MIN_BODY = CONFIG.min_body_bytes or 0
local DECODE = CONFIG.decode_bodies ~= false
local sequence = 0

local function join_key(...)
  local parts = {}
  for _, p in ipairs({ ... }) do
    if p ~= nil and p ~= "" then parts[#parts + 1] = p end
  end
  return concat(parts, "/")
end

local function transaction_id(txn)
  local req, meta = txn.request, txn.metadata
  if type(req) == "table" and type(req.request_id) == "string" and req.request_id ~= "" then
    return req.request_id
  end
  if type(meta) == "table" and type(meta.connection_id) == "string" and meta.connection_id ~= ""
  then
    sequence = sequence + 1
    return meta.connection_id .. "-" .. sequence
  end
  sequence = sequence + 1
  return format("txn-%d", sequence)
end

function qtap_split_payloads(tag, timestamp, record)
  local txn, shape = transaction_of(record)
  if not txn then return 0, timestamp, record end
  local bodies = {}
  for _, side in ipairs({ "request", "response" }) do
    local part = txn[side]
    if type(part) == "table" and type(part.body) == "string" and part.body ~= "" then
      local raw = b64decode(part.body)
      local data, encoding = part.body, raw and "base64" or "raw"
      if DECODE and raw then data, encoding = raw, "raw" end
      if #(raw or part.body) >= MIN_BODY then
        bodies[#bodies + 1] = { side = side, part = part, data = data, encoding = encoding }
      end
    end
  end
  if #bodies == 0 then return 0, timestamp, record end

  local id = transaction_id(txn)
  local group = join_key(KEY_PREFIX, os.date("!%Y/%m/%d", timestamp_seconds(timestamp)), id)
  local out = { record }
  for _, b in ipairs(bodies) do
    local payload = b.side .. "_body"
    local key = group .. "/" .. payload
    out[#out + 1] = {
      msg = "HTTP payload",
      payload = payload,
      request_id = id,
      s3_key = key,
      group_key = group,
      data = b.data,
      data_encoding = b.encoding,
      content_type = b.part.content_type,
    }
    b.part.body = nil
    b.part.body_s3_key = key
  end
  if shape == "log" then record.log = json_encode(txn) end
  record.s3_key = group .. "/transaction.json"
  record.group_key = group
  return 2, timestamp, out
end
