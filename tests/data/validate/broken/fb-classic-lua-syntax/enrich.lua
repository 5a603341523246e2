function enrich(tag, ts, record)
    record["x"] = 1
    return 1, ts, record
-- missing end
