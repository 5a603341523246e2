function enrich(tag, ts, record)
    return 0, ts, record
end
