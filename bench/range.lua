-- Random 1 MiB-aligned ranges of a SIZE-byte object at PATH (the path may carry a query).
local path = os.getenv("TARGET_PATH")
local mib = math.floor(tonumber(os.getenv("SIZE")) / 1048576)
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("id", counter) end
init = function(args) math.randomseed(os.time() * 1000 + id) end
request = function()
  local s = math.random(0, mib - 1) * 1048576
  return wrk.format("GET", path, { ["Range"] = "bytes=" .. s .. "-" .. (s + 1048575) })
end
