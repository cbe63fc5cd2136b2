-- unity.lua: the Unity text relay to OpenAI's Realtime API (seeds/001).
--
-- Unity -> relay: plain text frames. Each one becomes a user message item
-- (conversation.item.create, one input_text part) followed by response.create.
-- Relay -> Unity: every upstream event wrapped with metadata,
--   {"source":"openai","timestamp":<unix seconds>,"data":<the event>}
-- where data is the upstream frame embedded verbatim (relay.json.raw: no
-- re-encoding). Errors the relay raises itself come in the same wrapper with
-- "source":"relay" and data shaped like OpenAI's error event.
--
-- Endpoint options (config "options"):
--   "response": {...}  the "response" object of every response.create
--                      (default config: {"output_modalities": ["text"]}).

local RESPONSE = relay.options.response

local function wrap(source, data)
  return { source = source, timestamp = relay.time(), data = data }
end

local counter = 0
local function relay_error(code, message)
  counter = counter + 1
  return wrap("relay", {
    type = "error",
    event_id = "relay_" .. relay.now() .. "_" .. counter,
    error = { type = "relay_error", code = code, message = message, param = relay.null },
  })
end

local function sendable(code)
  return (code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014) or (code >= 3000 and code <= 4999)
end

local handlers = {
  json = false,  -- plain text in: every text frame goes to on_text
}

function handlers.on_text(session, text)
  -- Input validation: the text is what the user says to the model.
  if not string.find(text, "%S") then
    return relay_error("empty_message", "the message is empty; send the text to say to the model")
  end
  local ok, err = session:upstream_send({
    type = "conversation.item.create",
    item = {
      type = "message",
      role = "user",
      content = { { type = "input_text", text = text } },
    },
  })
  if ok then
    ok, err = session:upstream_send({ type = "response.create", response = RESPONSE })
  end
  if not ok then
    return relay_error(err == "upstream_busy" and "upstream_busy" or "upstream_unavailable",
                       "the upstream cannot take the message: " .. err)
  end
end

-- Every upstream frame, wrapped. OpenAI sends JSON objects; anything that is
-- not JSON would be carried as a JSON string instead of verbatim.
function handlers.on_upstream(session, event, raw)
  local data
  if type(event) == "table" then
    data = relay.json.raw(raw)
  else
    local ok, embedded = pcall(relay.json.raw, raw)
    data = ok and embedded or raw
  end
  return wrap("openai", data)
end

-- The upstream is gone: a normal close (1000) just closes Unity's connection
-- with 1000 (the "close_client" policy). Otherwise Unity first gets a relay
-- error, then the close: the upstream's own code and reason when it sent one,
-- else 1014 "upstream unavailable" (it could not connect, or dropped).
function handlers.on_upstream_close(session, code, reason)
  if code == 1000 or code == 1005 then return nil end
  local failed = code == 1006
  session:send(relay_error(failed and "upstream_unavailable" or "upstream_closed",
                           (failed and "the upstream connection failed" or
                            ("the upstream closed the connection (" .. code .. ")")) ..
                           (reason ~= "" and (": " .. reason) or "")))
  if not failed and sendable(code) then
    session:close(code, string.sub(reason, 1, 123))
  end
  return nil
end

-- Core errors (binary frame, too large, script failure) in the same wrapper.
function handlers.on_error(session, code, message)
  return relay_error(code, message)
end

return handlers
