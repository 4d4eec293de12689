-- The hawkBit DDI poll: GET /{TENANT}/controller/v1/{controllerId} with that device's
-- TargetToken, for a random line "<controllerId> <token>" of DEVICES_FILE.
local devices = {}
local tenant = os.getenv("TENANT")
for line in io.lines(os.getenv("DEVICES_FILE")) do
  local id, token = line:match("^(%S+) (%S+)$")
  devices[#devices + 1] = { id = id, auth = "TargetToken " .. token }
end
local counter = 0
setup = function(thread) counter = counter + 1; thread:set("id", counter) end
init = function(args) math.randomseed(os.time() * 1000 + id) end
request = function()
  local d = devices[math.random(#devices)]
  return wrk.format("GET", "/" .. tenant .. "/controller/v1/" .. d.id, { ["Authorization"] = d.auth })
end
