-- wrk script for bench/load.sh: POST the AdmissionReview in $REVIEW to
-- /mutate on every request, and print one summary line at the end.
local file = assert(io.open(os.getenv("REVIEW"), "rb"))
wrk.method = "POST"
wrk.path = "/mutate"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  -- status counts non-2xx/3xx replies; the rest are socket errors.
  local errors = e.connect + e.read + e.write + e.timeout + e.status
  io.write(string.format(
    "RESULT requests=%d req_per_s=%.0f p50_us=%d p99_us=%d max_us=%d errors=%d (status=%d connect=%d read=%d write=%d timeout=%d)\n",
    summary.requests, summary.requests / seconds, latency:percentile(50), latency:percentile(99), latency.max,
    errors, e.status, e.connect, e.read, e.write, e.timeout))
end
