-- wrk script of bench/ingest.py: GET /beacon-token (keeping the tokens it is given) or
-- POST /beacons with the 3-beacon body the loader sends, each request with the next
-- token of a file (a page load's session is used by about one or two requests).
--
-- Environment: INGEST_MODE (token|beacons), INGEST_APARTMENT, INGEST_TOKENS_OUT (token: the
-- file the tokens go to, one per thread), INGEST_TOKENS_IN (beacons: the file to read).

local mode = os.getenv("INGEST_MODE") or "token"
local apartment = os.getenv("INGEST_APARTMENT") or "bench"
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local tokens = {}
local next_token = 1
local out = nil
local written = 0

local function beacon(building)
  return '{"apartment":"' .. apartment .. '","building":"' .. building .. '","unit":"' .. building
    .. '","version":"1.0.0","outcome":"loaded","load_seconds":0.12}'
end

local beacons = beacon("header") .. "," .. beacon("main") .. "," .. beacon("footer")

function init(args)
  if mode == "token" then
    wrk.method = "GET"
    wrk.path = "/beacon-token?apartment=" .. apartment
    local path = os.getenv("INGEST_TOKENS_OUT")
    if path then
      out = io.open(path .. "." .. id, "w")
    end
  else
    wrk.method = "POST"
    wrk.path = "/beacons"
    wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
    local k = 0
    for line in io.lines(os.getenv("INGEST_TOKENS_IN")) do
      if k % counter_total() == id then
        table.insert(tokens, line)
      end
      k = k + 1
    end
  end
end

function counter_total()
  return tonumber(os.getenv("INGEST_THREADS") or "1")
end

function request()
  if mode == "token" then
    return wrk.format()
  end
  local token = tokens[next_token] or "none"
  next_token = next_token + 1
  if next_token > #tokens then
    next_token = 1
  end
  return wrk.format(nil, nil, nil, '{"token":"' .. token .. '","beacons":[' .. beacons .. "]}")
end

function response(status, headers, body)
  if out and status == 200 then
    local token = string.match(body, '"token":"([^"]+)"')
    if token then
      out:write(token, "\n")
      written = written + 1
      if written % 64 == 0 then
        out:flush() -- a thread's state is not closed at exit: flush as we go
      end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'INGEST {"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
