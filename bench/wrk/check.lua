-- Counts every response's status, so that the benchmark can refuse a run whose answers were not
-- the expected ones, and prints one machine-readable line at the end.
-- Each request comes from its own documentation address (CF-Connecting-IP), so the
-- failed-authentication limiter stays on, as in production, without turning 401s into 429s.
-- With BENCH_RANDOM_KEY=1, each request also carries a fresh well-formed key: a cache miss.

local random_key = os.getenv("BENCH_RANDOM_KEY") == "1"
local threads = {}
counts = {}
local sent = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + os.clock() * 1000000)
end

local function hex(n)
  local digits = {}
  for i = 1, n do digits[i] = string.format("%x", math.random(0, 15)) end
  return table.concat(digits)
end

function request()
  sent = sent + 1
  wrk.headers["CF-Connecting-IP"] = "2001:db8:be::" .. hex(4) .. ":" .. hex(4)
  if random_key then
    wrk.headers["X-Api-Key"] = "rk_live_" .. string.format("%08x", sent) .. hex(24)
  end
  return wrk.format()
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      merged[status] = (merged[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(merged) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format('BENCH {"requests": %d, "seconds": %.3f, "p50_us": %d, "p99_us": %d, "socket_errors": %d, ' ..
    '"socket_detail": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, "statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), errors,
    e.connect, e.read, e.write, e.timeout, table.concat(parts, ", ")))
end
