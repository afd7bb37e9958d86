-- wrk: POST /admin/customers with an email unique per thread and request.
local token = os.getenv("TOKEN")
local threads = 0
local run = tostring(os.time())

setup = function(thread)
  threads = threads + 1
  thread:set("tag", run .. "-" .. threads)
end

local counter = 0
request = function()
  counter = counter + 1
  local body = '{"email":"bench' .. tag .. "-" .. counter .. '@example.com","first_name":"Bench","last_name":"Load"}'
  return wrk.format("POST", "/admin/customers", {
    ["authorization"] = "Bearer " .. token,
    ["content-type"] = "application/json",
  }, body)
end
