-- realtime.lua: the per-client OpenAI Realtime relay (seeds/002).
--
-- Client -> relay: plain text frames. Each one becomes a user message item
-- (conversation.item.create with one input_text part) followed by
-- response.create, because the Realtime API does not answer an item without it.
-- Relay -> client: every upstream event unchanged. There is no on_upstream
-- hook, so the core forwards upstream frames byte for byte (OpenAI's own
-- "error" events included).
-- One upstream per client: the config's "upstream" opens it when the client
-- connects ("connect": "open") and the core closes it when the client goes.
--
-- Optional endpoint options (config "options"):
--   "response": {...}   the "response" object put into every response.create,
--                       e.g. {"output_modalities": ["text"]}; absent: none.

local RESPONSE = relay.options.response

-- Errors the relay itself raises use the Realtime API's error event shape, so
-- a client handles them like any upstream error: error.type "relay_error".
local counter = 0
local function error_event(code, message)
  counter = counter + 1
  return {
    type = "error",
    event_id = "relay_" .. relay.now() .. "_" .. counter,
    error = { type = "relay_error", code = code, message = message, param = relay.null },
  }
end

-- Close codes a server may put in a close frame (session:close accepts these).
local function sendable(code)
  return (code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014) or (code >= 3000 and code <= 4999)
end

local handlers = {
  json = false,  -- plain text in: every text frame goes to on_text
}

function handlers.on_text(session, text)
  if not string.find(text, "%S") then
    return error_event("empty_message", "the message is empty; send the text to say to the model")
  end
  local ok, err = session:upstream_send({
    type = "conversation.item.create",
    item = {
      type = "message",
      role = "user",
      content = { { type = "input_text", text = text } },
    },
  })
  if not ok then
    return error_event(err == "upstream_busy" and "upstream_busy" or "upstream_unavailable",
                       "the upstream cannot take the message: " .. err)
  end
  ok, err = session:upstream_send({ type = "response.create", response = RESPONSE })
  if not ok then
    return error_event(err == "upstream_busy" and "upstream_busy" or "upstream_unavailable",
                       "the upstream cannot take response.create: " .. err)
  end
end

-- The upstream is gone. A normal close (1000, or a close frame without a code)
-- ends the client's connection with 1000 (the endpoint's "close_client" policy)
-- and nothing else. Otherwise the client first gets an error event saying why,
-- then the close: the upstream's own code and reason when it sent a close frame
-- (e.g. 1011, 4000), or 1014 "upstream unavailable" (from the policy) when the
-- link could not be opened or dropped without a close frame (1006).
function handlers.on_upstream_close(session, code, reason)
  if code == 1000 or code == 1005 then return nil end
  local failed = code == 1006
  session:send(error_event(failed and "upstream_unavailable" or "upstream_closed",
                           (failed and "the upstream connection failed" or
                            ("the upstream closed the connection (" .. code .. ")")) ..
                           (reason ~= "" and (": " .. reason) or "")))
  if not failed and sendable(code) then
    session:close(code, string.sub(reason, 1, 123))
  end
  return nil
end

-- Every error reply of the core (binary frame, message too large, script
-- failure) in the same error event shape.
function handlers.on_error(session, code, message)
  return error_event(code, message)
end

return handlers
