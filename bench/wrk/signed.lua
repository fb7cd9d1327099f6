-- Replays pre-signed Unit21 webhooks from BENCH_BODIES ("<signature>\t<body>" per line),
-- one after another, so every request of a run is distinct.
-- BENCH_DELAY_MS > 0 makes each connection wait that long between requests: with C
-- connections the offered load is about C * 1000 / BENCH_DELAY_MS requests/s (wrk has no
-- open-loop mode and wrk2 is not packaged in Debian).
-- done() prints one line "BENCH_JSON {...}" that bench/run.py parses.

local path = os.getenv("BENCH_PATH") or "/webhooks/unit21"
local file = os.getenv("BENCH_BODIES")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local requests = {}
local count = 0
local index = 0
local threads = 0

function setup(thread)
  thread:set("thread_id", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(file) do
    local tab = line:find("\t", 1, true)
    count = count + 1
    requests[count] = wrk.format("POST", path, {
      ["Content-Type"] = "application/json",
      ["Unit21-Signature"] = line:sub(1, tab - 1),
    }, line:sub(tab + 1))
  end
  -- Each wrk thread starts at its own offset so threads do not send the same bodies.
  index = ((thread_id or 0) * 7919) % math.max(count, 1)
end

function request()
  index = index % count + 1
  return requests[index]
end

-- BENCH_IDS: a file to which each 2xx answer's event_id is appended, so the harness can check
-- that every acknowledged webhook is in Kafka (the bridge's answer carries its event_id).
local ids_path = os.getenv("BENCH_IDS")
if ids_path and ids_path ~= "" then
  local ids = nil
  function response(status, headers, body)
    if status >= 200 and status < 300 then
      if ids == nil then
        ids = io.open(ids_path .. "." .. tostring(thread_id or 0), "a")
      end
      local id = body:match('"event_id":"(%x+)"')
      if id then
        ids:write(id, "\n")  -- flushed when wrk exits
      end
    end
  end
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,'
      .. '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,'
      .. '"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean))
end
