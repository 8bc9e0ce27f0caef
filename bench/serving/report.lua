-- wrk script for bench/serving: POSTs the body file BENCH_BODY with BENCH_CONTENT_TYPE and
-- prints one machine-readable summary line (latencies in microseconds).
-- With BENCH_METHOD=GET it sends GETs without a body instead.
wrk.method = os.getenv("BENCH_METHOD") or "POST"
if wrk.method == "POST" then
    local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
    wrk.body = file:read("*a")
    file:close()
end
wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "text/csv"
wrk.headers["Accept"] = os.getenv("BENCH_ACCEPT") or "text/csv"

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH_RESULT {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
        "\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d, " ..
        "\"p50\": %d, \"p90\": %d, \"p99\": %d, \"max\": %d, \"mean\": %.1f}\n",
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.max, latency.mean))
end
