-- relay.lua: the relay scenario's endpoint. Every client text frame goes to
-- the session's own upstream as it is; upstream frames come back to the
-- client byte for byte (no on_upstream hook: they never enter Lua).
local handlers = { json = false }

function handlers.on_text(session, text)
  local ok, err = session:upstream_send(text)
  if not ok then return "relay-error: " .. err end
end

return handlers
