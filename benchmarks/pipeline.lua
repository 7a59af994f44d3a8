-- pipeline.lua: HTTP/1.1 pipelining for wrk.
--
-- Every write carries DEPTH requests for the URL's path, built once by
-- concatenating wrk.format() results; wrk counts the requests in the buffer
-- and waits for that many responses before writing again, so each connection
-- keeps DEPTH requests in flight.
--
--   wrk -t1 -c64 -d5s -s benchmarks/pipeline.lua http://127.0.0.1:8080/hello -- 16
--
-- The optional argument after `--` is the depth (default 16).

local depth = 16
local batch

function init(args)
  if args[1] then depth = tonumber(args[1]) end
  local one = wrk.format("GET", wrk.path)
  batch = string.rep(one, depth)
end

function request()
  return batch
end

-- Share the result line with the plain runs.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")
