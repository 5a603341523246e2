-- qtap-fluent `qtap_unwrap` filter: turn real Qtap's stdout object-store line into the
-- transaction record it carries.
--
-- Qtap's `stdout` object store does not print the transaction but a zap log line
-- {"level":"qpoint", "message":"object store submission", "data_base64":"<JSON>", ...}
-- (qtap.md §3.4). Before the parser filter that line is still the `log` string of a Docker
-- fluentd-driver record: then `log` becomes the decoded transaction JSON, byte for byte, so the
-- guide's parser filter lifts it as if Qtap had printed it. After a parser (the line lifted to
-- the top level) the record is replaced by the decoded transaction.
--
-- CONFIG:
--   drop_other   true: drop records that are neither submissions nor transactions
--                (Qtap's own log lines); false (default): pass them on
--   keep_fields  top-level fields copied from the outer record into an unwrapped one
--                (e.g. container_name)
-- A submission whose data is not JSON (Qtap `format: text`) becomes {transaction_text = ...}.

local SUBMISSION = "object store submission"
local DROP_OTHER = CONFIG.drop_other == true
local KEEP_FIELDS = CONFIG.keep_fields or {}

local function submission_data(t)
  if type(t) ~= "table" or t.message ~= SUBMISSION or type(t.data_base64) ~= "string" then
    return nil
  end
  return b64decode(t.data_base64)
end

function qtap_unwrap(tag, timestamp, record)
  local data = submission_data(record)
  if data then
    local txn, ok = json_decode(data)
    local out
    if ok and type(txn) == "table" and not is_array(txn) then
      out = txn
    else
      out = as_map({ transaction_text = data })
    end
    for _, k in ipairs(KEEP_FIELDS) do
      if out[k] == nil then out[k] = record[k] end
    end
    return 2, timestamp, out
  end
  if type(record.log) == "string" and find(record.log, SUBMISSION, 1, true) then
    local line, ok = json_decode(record.log)
    local inner = ok and submission_data(line)
    if inner then
      record.log = inner
      return 2, timestamp, record
    end
  end
  if DROP_OTHER and not transaction_of(record) then return -1, timestamp, record end
  return 0, timestamp, record
end
