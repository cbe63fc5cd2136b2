-- realtime.lua: the per-client OpenAI Realtime relay (seeds/002).
--
-- Clients send plain text; each frame becomes a user message item followed by
-- response.create (the Realtime API does not answer a text item without it).
-- Every upstream event reaches the client unchanged: there is no on_upstream
-- hook, so the core forwards upstream frames byte for byte.

-- Errors the relay itself raises use the Realtime API's error event shape, so
-- a client handles them like any upstream error.
local function error_event(code, message)
  return {
    type = "error",
    event_id = "relay_" .. relay.now(),
    error = { type = "relay_error", code = code, message = message, param = relay.null },
  }
end

return {
  json = false,  -- plain text in: every text frame goes to on_text

  on_text = function(session, text)
    local ok, err = session:upstream_send({
      type = "conversation.item.create",
      item = {
        type = "message",
        role = "user",
        content = { { type = "input_text", text = text } },
      },
    })
    if not ok then
      return error_event(err, "the upstream cannot take the message: " .. err)
    end
    ok, err = session:upstream_send({ type = "response.create" })
    if not ok then
      return error_event(err, "the upstream cannot take response.create: " .. err)
    end
  end,

  -- The upstream is gone: tell the client why before the relay closes it.
  on_upstream_close = function(session, code, reason)
    if code == 1000 then return nil end
    return error_event("upstream_closed", "the upstream connection closed (" .. code ..
                       (reason ~= "" and (": " .. reason) or "") .. ")")
  end,

  on_error = function(session, code, message)
    return error_event(code, message)
  end,
}
