-- connect_backend.lua: the connect_backend scenario's endpoint (/connect).
-- on_open asks the backend (POST __BACKEND__/ws/connect, JSON) who the
-- client is, waiting for the answer (the session's call is suspended, the
-- loop goes on), then sends its welcome. run_bench.py fills in __BACKEND__
-- ("" : no backend call, the welcome at once: the baseline).
local BACKEND = "__BACKEND__"
local handlers = { json = false }

function handlers.on_open(session)
  if BACKEND == "" then return "welcome bench" end
  local res, err = relay.http.request{ url = BACKEND .. "/ws/connect", json = { token = "bench" }, timeout = 30 }
  if not res then return "error: backend: " .. err end
  if res.status ~= 200 or type(res.json) ~= "table" or not res.json.ok then
    return "error: backend answered " .. res.status
  end
  return "welcome " .. tostring(res.json.user)
end

function handlers.on_text(session, text)  -- the client sends nothing but its close
  return text
end

return handlers
