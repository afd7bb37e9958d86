-- wrk: POST /admin/customers with a unique email per request (thread id + counter).
local token = os.getenv("TOKEN")
local counter = 0
local tag = tostring(math.random(1, 1000000000))
setup = function(thread)
  thread:set("tag", tostring(math.random(1, 1000000000)))
end
request = function()
  counter = counter + 1
  local body = '{"email":"bench' .. tag .. "-" .. counter .. '@example.com","first_name":"Bench","last_name":"Load"}'
  return wrk.format("POST", "/admin/customers", {
    ["authorization"] = "Bearer " .. token,
    ["content-type"] = "application/json",
  }, body)
end
