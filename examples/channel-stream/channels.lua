-- channels.lua: the channel status stream server of seeds/003 ("Server-Side
-- Expectations"): {"channel": ..., "payload": {...}} messages.
--
--   {"channel":"subscription","payload":{"action":"subscribe","channel":"X"}}
--       -> ack {"channel":"subscription","payload":{"status":"subscribed",...}}
--   {"channel":"subscription","payload":{"action":"subscribe","channel":"X",
--                                        "since":{"seq":N,"epoch":"..."}}}
--       -> the ack with "recovered": true|false, then (true) what X published after N
--   {"channel":"X","payload":{...}}
--       -> the frame, byte for byte, to every other subscriber of X (no reply);
--          in a history channel (config.json's channel_options: user_session_*)
--          with the engine's "seq" spliced in as its last top-level member
--   {"channel":"ping"}  -> {"channel":"pong","payload":{...}}
--   anything malformed  -> {"channel":...,"payload":{"status":"error","type":"error",...}}
--
-- README.md in this folder is the specification; keep the two in step.

local MAX_CHANNEL = 128
-- Channels the server itself speaks on; nobody can subscribe or publish to them.
local RESERVED = { subscription = true, ping = true, pong = true, error = true }

local function is_object(v)
  return type(v) == "table" and getmetatable(v) == nil
end

-- message_id / thread_id of the offending payload, echoed in its error.
local function id_of(payload, field)
  if is_object(payload) and type(payload[field]) == "string" then return payload[field] end
  return relay.null
end

-- Errors go through the core's error path (counted and logged); where to
-- answer and which ids to echo ride along in session.attrs for on_error.
local function fail(session, channel, payload, code, message, details)
  session.attrs.error = {
    channel = channel,
    details = details,
    message_id = id_of(payload, "message_id"),
    thread_id = id_of(payload, "thread_id"),
  }
  return nil, code, message
end

-- nil if name is a usable channel name, else the reason.
local function channel_problem(name, field)
  if type(name) ~= "string" or name == "" then
    return "field '" .. field .. "' must be a non-empty string"
  end
  if #name > MAX_CHANNEL then
    return "field '" .. field .. "' is longer than " .. MAX_CHANNEL .. " bytes"
  end
  return nil
end

-- payload.since: where a reconnecting client left off, {"seq": N, "epoch": "..."}.
-- Absent: nil. Malformed: false and why.
local function read_since(p)
  local since = p.since
  if since == nil then return nil end
  if not is_object(since) then  -- null and arrays too
    return false, "field 'payload.since' must be an object {\"seq\": <integer>, \"epoch\": <string>}"
  end
  if math.type(since.seq) ~= "integer" or since.seq < 0 then
    return false, "field 'payload.since.seq' must be a non-negative integer"
  end
  if type(since.epoch) ~= "string" then
    return false, "field 'payload.since.epoch' must be a string"
  end
  return { seq = since.seq, epoch = since.epoch }
end

local function subscription(session, msg)
  local p = msg.payload
  if not is_object(p) then
    return fail(session, "subscription", p, "invalid_subscription", "Invalid subscription request",
                "field 'payload' must be an object {\"action\": \"subscribe\"|\"unsubscribe\", \"channel\": ...}")
  end
  if p.action ~= "subscribe" and p.action ~= "unsubscribe" then
    return fail(session, "subscription", p, "invalid_subscription", "Invalid subscription request",
                "field 'payload.action' must be \"subscribe\" or \"unsubscribe\"")
  end
  local problem = channel_problem(p.channel, "payload.channel")
  if problem then
    return fail(session, "subscription", p, "invalid_subscription", "Invalid subscription request", problem)
  end
  if RESERVED[p.channel] then
    return fail(session, "subscription", p, "reserved_channel", "Invalid subscription request",
                "channel '" .. p.channel .. "' is reserved")
  end
  local changed, position
  if p.action == "subscribe" then
    local since, bad = read_since(p)
    if since == false then
      return fail(session, "subscription", p, "invalid_subscription", "Invalid subscription request", bad)
    end
    changed, position = session:subscribe(p.channel, { since = since })
    if changed == nil then  -- refused by the relay: a control character in the name, too many subscriptions
      return fail(session, "subscription", p, "invalid_subscription", "Invalid subscription request", position)
    end
  else
    changed = session:unsubscribe(p.channel)
  end
  local done = p.action == "subscribe" and "subscribed" or "unsubscribed"
  local ack = {
    message = (p.action == "subscribe" and "Subscribed to " or "Unsubscribed from ") .. p.channel,
    timestamp = relay.time(),
    status = done,
    type = "subscription",
    action = p.action,
    channel = p.channel,
    changed = changed == true,  -- false: it already was (or was not) subscribed
  }
  -- A history channel: where its stream stands (the "seq" of the latest
  -- broadcast, in this "epoch"); after since, whether the missed broadcasts
  -- follow this ack (recovered) or are gone (restart, expiry, too far back).
  -- The relay sends them only after this reply.
  if position then
    ack.epoch, ack.seq, ack.recovered = position.epoch, position.seq, position.recovered
  end
  return { channel = "subscription", payload = ack }
end

local function ping(session, msg)
  local client_ts = is_object(msg.payload) and msg.payload.timestamp or nil
  return {
    channel = "pong",
    payload = {
      message = "pong",
      timestamp = relay.time(),
      status = "ok",
      type = "pong",
      client_timestamp = type(client_ts) == "number" and client_ts or nil,
    },
  }
end

local handlers = {
  json = false,  -- every text frame comes to on_text: the raw text is what gets forwarded
}

function handlers.on_text(session, text)
  local msg, reason = relay.json.decode(text)
  if msg == nil then
    return fail(session, "error", nil, "invalid_json", "Invalid message: not valid JSON", reason)
  end
  if not is_object(msg) then
    return fail(session, "error", nil, "invalid_message", "Invalid message",
                "a message must be a JSON object {\"channel\": ..., \"payload\": {...}}")
  end
  local channel = msg.channel
  local problem = channel_problem(channel, "channel")
  if problem then
    return fail(session, "error", msg.payload, "invalid_channel", "Invalid message", problem)
  end
  if channel == "subscription" then return subscription(session, msg) end
  if channel == "ping" then return ping(session, msg) end
  if RESERVED[channel] then
    return fail(session, channel, msg.payload, "reserved_channel", "Invalid message",
                "channel '" .. channel .. "' is reserved for the server")
  end
  if not is_object(msg.payload) then
    return fail(session, channel, msg.payload, "invalid_payload", "Invalid message",
                "field 'payload' must be a JSON object")
  end
  local options = relay.channel_options(channel)
  if options and options.history_size > 0 and msg.seq ~= nil then
    return fail(session, channel, msg.payload, "reserved_field", "Invalid message",
                "field 'seq' is the server's in channel '" .. channel .. "' (it keeps history): leave it out")
  end
  -- Broadcast: the frame exactly as it came, to the channel's other
  -- subscribers; in a history channel the relay keeps it and splices its
  -- position in as the last top-level member (,"seq":N}).
  relay.publish(channel, text, { exclude = session })
end

function handlers.on_binary(session, bytes)
  return fail(session, "error", nil, "invalid_message", "Invalid message",
              "binary frames are not accepted; send JSON text")
end

-- Every error in the document's error payload shape (plus a stable "code").
function handlers.on_error(session, code, message, msg)
  local e = session.attrs.error or {}
  session.attrs.error = nil
  local details = e.details
  if details == nil then  -- a core error: too_large, script_error, ...
    details = message
    message = code == "too_large" and "Message too large" or "Internal server error"
  end
  return {
    channel = e.channel or "error",
    payload = {
      message = message,
      timestamp = relay.time(),
      status = "error",
      type = "error",
      error_details = details,
      code = code,
      message_id = e.message_id or relay.null,
      thread_id = e.thread_id or relay.null,
    },
  }
end

return handlers
