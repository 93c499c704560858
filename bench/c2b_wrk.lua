-- wrk script for bench/c2b_load.py: each wrk thread POSTs its own share of the prepared bodies
-- (one JSON document per line of the file named by the first argument), in order, so repeats
-- arrive as they were planned; the totals are printed as one RESULT line for the Python side.
local threads = {}
local next_index = 1

function setup(thread)
  thread:set("first", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(args[1]) do
    bodies[#bodies + 1] = line
  end
  stride = tonumber(args[2])
  position = first
  wrapped = 0
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  if position > #bodies then
    position = first
    wrapped = wrapped + 1
  end
  local body = bodies[position]
  position = position + stride
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local wrapped_total = 0
  for _, thread in ipairs(threads) do
    wrapped_total = wrapped_total + (thread:get("wrapped") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d non_2xx=%d connect=%d read=%d write=%d timeout=%d " ..
    "p50_us=%d p90_us=%d p99_us=%d max_us=%d wrapped=%d\n",
    summary.requests, summary.duration, errors.status, errors.connect, errors.read, errors.write,
    errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, wrapped_total))
end
