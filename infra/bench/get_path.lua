-- wrk: GET of the path in BENCH_PATH with the staff token from TOKEN.
local token = os.getenv("TOKEN")
local path = os.getenv("BENCH_PATH")
request = function()
  return wrk.format("GET", path, { ["authorization"] = "Bearer " .. token })
end
