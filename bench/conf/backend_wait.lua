-- backend_wait.lua: the backend_inflight scenario's waiting endpoint (/wait).
-- Every text frame is one GET __BACKEND__/sleep?s=__SLEEP__ that the handler
-- waits on (suspended: the loop and every other session go on); the answer
-- comes back as "done" (or "error: ..."). run_bench.py fills in the two.
local URL = "__BACKEND__/sleep?s=__SLEEP__"
local handlers = { json = false }

function handlers.on_text(session, text)
  local res, err = relay.http.request{ url = URL, timeout = __SLEEP__ + 30 }
  if not res then return "error: backend: " .. err end
  if res.status ~= 200 then return "error: backend answered " .. res.status end
  return "done"
end

return handlers
