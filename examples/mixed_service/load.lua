-- wrk script for the mixed service demo: one endpoint, names cycled in order.
--   wrk -s load.lua URL -- METHOD PATH_PREFIX COUNT [BODY_BYTES]
-- requests METHOD PATH_PREFIX0000 .. PATH_PREFIX(COUNT-1), with a body of
-- BODY_BYTES for PUT, and prints one JSON line of results when done.

local method, prefix, count, body
local counter = 0

function init(args)
  method = args[1] or "GET"
  prefix = args[2] or "/files/small-"
  count = tonumber(args[3] or "1")
  local size = tonumber(args[4] or "0")
  if size > 0 then
    body = string.rep("spargio!", math.ceil(size / 8)):sub(1, size)
  end
  counter = math.random(0, count - 1)
end

function request()
  local path = string.format("%s%04d", prefix, counter % count)
  counter = counter + 1
  return wrk.format(method, path, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors": %d, "non_2xx": %d, ' ..
    '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
