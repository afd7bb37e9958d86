-- wrk: GET /admin/customers/:id over ids read from ids.txt, with the staff token from TOKEN.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local token = os.getenv("TOKEN")
local n = 0
request = function()
  n = n + 1
  local id = ids[(n * 7919) % #ids + 1]
  return wrk.format("GET", "/admin/customers/" .. id, { ["authorization"] = "Bearer " .. token })
end
