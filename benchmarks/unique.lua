-- unique.lua: every request a new target (/hello?u=N), so that a response
-- cache misses on each one (benchmarks/cache_run.sh); report.lua's line.
-- BENCH_UNIQUE differs between runs, so a run never meets what an earlier
-- one stored.
dofile(os.getenv("BENCH_DIR") .. "/report.lua")
local run = os.getenv("BENCH_UNIQUE") or "0"
local n = 0
function request()
  n = n + 1
  return wrk.format("GET", "/hello?r=" .. run .. "&u=" .. n)
end
