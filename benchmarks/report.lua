-- report.lua: wrk `done` hook that prints one machine-readable line for run.sh.
-- Loaded directly (`wrk -s report.lua`) or from another script with dofile().
-- Latency values from wrk are in microseconds; duration is in microseconds.

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d bytes=%d err_connect=%d err_read=%d " ..
    "err_write=%d err_status=%d err_timeout=%d lat_p50_us=%d lat_p99_us=%d lat_max_us=%d\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
