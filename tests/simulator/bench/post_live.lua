-- wrk load for POST /v2/live on the Gladia simulator (one uvicorn worker).
--
--   .venv/bin/python -m broker.simulator.standalone --port 8001 --api-key bench --max-live-sessions 100000000 &
--   SIMULATOR_KEY=bench wrk -t2 -c64 -d10s -s tests/simulator/bench/post_live.lua http://127.0.0.1:8001/v2/live
--
-- Every non-201 answer is counted and printed: the figure only means something when it is zero.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-gladia-key"] = os.getenv("SIMULATOR_KEY") or "bench"
wrk.body = [[{"encoding": "wav/pcm", "sample_rate": 16000, "bit_depth": 16, "channels": 1,
  "language_config": {"languages": ["en"]},
  "messages_config": {"receive_partial_transcripts": true, "receive_acknowledgments": true},
  "custom_metadata": {"user": "bench"}}]]

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  not_created = 0
end

function response(status, headers, body)
  if status ~= 201 then
    not_created = not_created + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("not_created")
  end
  io.write(string.format("non-201 responses: %d\n", failed))
end
