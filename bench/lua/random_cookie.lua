-- wrk script: every request carries a cookie line picked at random from the
-- file named by the COOKIES environment variable (one `name=value` a line),
-- so the proxy serves a population of signed-in users, not one hot cookie.
-- Each wrk thread loads the file into its own Lua state.
local path = os.getenv("COOKIES")
local cookies = {}
for line in io.lines(path) do
  if #line > 0 then cookies[#cookies + 1] = line end
end
assert(#cookies > 0, "no cookies in " .. tostring(path))
local n = #cookies

function setup(thread)
  thread:set("seed", math.random(1, 2 ^ 30))
end

function init(args)
  math.randomseed(seed or os.time())
end

function request()
  return wrk.format("GET", "/", { ["Cookie"] = cookies[math.random(n)] })
end
