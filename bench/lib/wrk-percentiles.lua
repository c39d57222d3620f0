-- wrk script: prints "p50_ms p95_ms p99_ms requests_per_s non2xx" on one line
-- (wrk's own --latency output has no p95).
local non2xx = 0
response = function(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
done = function(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT %.2f %.2f %.2f %.0f %d\n",
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.requests / secs, summary.errors.status))
end
