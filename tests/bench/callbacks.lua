-- wrk load for POST /v1/callbacks/{capability}: what one broker worker ingests.
--
--   .venv/bin/python -m tests.bench.callbacks          (starts Redis, the simulator, the broker,
--                                                       creates the sessions, then runs wrk)
--
-- CALLBACK_TARGETS names a file of "<path> <session id>" lines, one per session; requests go
-- round-robin over them. CALLBACK_MODE=distinct (default) sends a new transcript each time
-- (every request stores an event: de-duplication check, stream append, status, all in one
-- script); CALLBACK_MODE=duplicate replays one transcript per session (every request after the
-- first is recognised as a repeat and stored nowhere).
-- Every answer other than 204 is counted and printed: the figure only means something at zero.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local targets = {}
for line in io.lines(os.getenv("CALLBACK_TARGETS")) do
  local path, session = line:match("^(%S+) (%S+)$")
  table.insert(targets, {path = path, session = session})
end
local distinct = (os.getenv("CALLBACK_MODE") or "distinct") == "distinct"
local threads = {}
local counter = 0

function setup(thread)
  thread:set("number", #threads)
  table.insert(threads, thread)
end

function init(args)
  failed = 0
end

local body_format = '{"id":"%s","event":"live.transcript","payload":{"session_id":"%s",' ..
  '"created_at":"2026-11-25T10:00:00.000Z","type":"transcript","data":{"id":"%s",' ..
  '"is_final":true,"utterance":{"start":0.4,"end":1.6,"confidence":0.93,"channel":0,' ..
  '"text":"The quick brown fox jumps over the lazy dog.","language":"en","words":[' ..
  '{"word":"The","start":0.4,"end":0.5,"confidence":0.95},' ..
  '{"word":" quick","start":0.5,"end":0.7,"confidence":0.94},' ..
  '{"word":" brown","start":0.7,"end":0.9,"confidence":0.92}]}}}}'

function request()
  counter = counter + 1
  local target = targets[(counter % #targets) + 1]
  local utterance = "bench"
  if distinct then
    utterance = string.format("t%s-%d", number, counter)
  end
  local body = string.format(body_format, target.session, target.session, utterance)
  return wrk.format(nil, target.path, nil, body)
end

function response(status, headers, body)
  if status ~= 204 then
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("failed")
  end
  io.write(string.format("non-204 responses: %d\n", total))
end
