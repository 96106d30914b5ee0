-- Replays a file of prepared requests round-robin on every connection, as fast as they are
-- answered, and prints one JSON line of results for the harness. (Paced load is paced.py.)
--
--   wrk ... -s requests.lua URL -- REQUESTS_FILE
--
-- REQUESTS_FILE: one request per line, tab-separated: METHOD, PATH, HEADER NAME, HEADER VALUE,
-- CLIENT ADDRESS (sent as X-Forwarded-For; may be empty), BODY (may be empty). A non-empty body
-- is sent as application/json.

local requests = {}
local next_index = 1

function init(args)
  local path = args[1]
  for line in io.lines(path) do
    local method, target, name, value, client, body =
      line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t?(.*)$")
    local headers = {}
    if name ~= "" then headers[name] = value end
    if client ~= "" then headers["X-Forwarded-For"] = client end
    if body == "" then
      body = nil
    else
      headers["Content-Type"] = "application/json"
    end
    requests[#requests + 1] = wrk.format(method, target, headers, body)
  end
  if #requests == 0 then error("no requests in " .. path) end
  -- Start somewhere in the list; every connection of the thread shares the cursor.
  next_index = math.random(#requests)
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end

function done(summary, latency, requests_stats)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p90": %d, ' ..
    '"p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
