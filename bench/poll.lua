-- GET /api/v1/firmware-update/{id}/ for a random session of IDS_FILE, with TOKEN.
local ids = {}
local token = os.getenv("TOKEN")
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("id", counter) end
init = function(args) math.randomseed(os.time() * 1000 + id) end
request = function()
  local sid = ids[math.random(#ids)]
  return wrk.format("GET", "/api/v1/firmware-update/" .. sid .. "/", { ["Authorization"] = "Token " .. token })
end
