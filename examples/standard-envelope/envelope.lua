-- envelope.lua: the standardized WebSocket envelope of seeds/000
-- (request / response / event / error), at /ws/v1/ws.
--
--   -> {"type":"request","id":"r1","action":"auth","payload":{"token":"…"}}
--   <- {"type":"response","id":"r1","action":"auth","success":true,"payload":{…},"timestamp":"…Z"}
--   <- {"type":"event","id":"evt_…","event":"<topic>","payload":{…},"sender":"alice","timestamp":"…Z"}
--   <- {"type":"error","id":"r1","action":"auth","error":{"code":"…","message":"…","details":{…}},"timestamp":"…Z"}
--
-- README.md in this folder is the specification; keep the two in step.

local PROTOCOL = "standard.v1"
local MAX_ID = 128         -- bytes of a string request id
local MAX_TOPIC = 128      -- bytes of a topic name
local MAX_TOPICS = 100     -- topics in one subscribe/unsubscribe request
local MAX_TOKEN = 8192

-- ---- helpers ---------------------------------------------------------------

-- ISO 8601 UTC with milliseconds, e.g. "2026-11-22T00:14:36.210Z".
local function now_iso()
  local ms = relay.now()
  return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
end

-- A JSON object decodes to a table without a metatable; arrays are marked.
local function is_object(v)
  return type(v) == "table" and getmetatable(v) == nil
end

local function is_array(v)
  return type(v) == "table" and getmetatable(v) ~= nil
end

local function valid_id(v)
  if type(v) == "string" then return #v > 0 and #v <= MAX_ID end
  return math.type(v) == "integer"
end

local boot = string.format("%x", relay.now())
local event_counter = 0
local function next_event_id()
  event_counter = event_counter + 1
  return "evt_" .. boot .. "_" .. event_counter
end

local function event(name, payload, sender)
  return {
    type = "event",
    id = next_event_id(),
    event = name,
    payload = payload,
    sender = sender,
    timestamp = now_iso(),
  }
end

local function response(req, payload)
  return {
    type = "response",
    id = req.id,
    action = req.action,
    success = true,
    payload = payload or {},
    timestamp = now_iso(),
  }
end

-- Errors go through the core's error path (counted, logged, shaped by
-- on_error below); the structured details ride along in session.attrs.
local function fail(session, code, message, details)
  session.attrs.error_details = details
  return nil, code, message
end

local function invalid(session, field, message)
  return fail(session, "validation_error", message, field and { field = field } or nil)
end

-- The authenticated user, or nil. A JWT's expiry is enforced on every request.
local function current_user(session)
  local exp = session.attrs.exp
  if session.user ~= nil and exp ~= nil and relay.time() >= exp then
    session.user = nil
    session.attrs.exp = nil
    session.attrs.expired = true
  end
  return session.user
end

local function topic_error(session, field, topic)
  if type(topic) ~= "string" or topic == "" then
    return invalid(session, field, "field '" .. field .. "' must be a non-empty string")
  end
  if #topic > MAX_TOPIC then
    return invalid(session, field, "field '" .. field .. "' is longer than " .. MAX_TOPIC .. " bytes")
  end
  return nil
end

-- payload.topics (array of strings) or payload.topic (string) -> array, or nil + error.
local function read_topics(session, payload)
  if payload.topics ~= nil then
    local topics = payload.topics
    if not is_array(topics) or #topics == 0 then
      return invalid(session, "payload.topics", "field 'payload.topics' must be a non-empty array of topic names")
    end
    if #topics > MAX_TOPICS then
      return invalid(session, "payload.topics", "at most " .. MAX_TOPICS .. " topics per request")
    end
    for i, topic in ipairs(topics) do
      local bad, code, message = topic_error(session, "payload.topics[" .. (i - 1) .. "]", topic)
      if code then return bad, code, message end
    end
    return topics
  end
  if payload.topic ~= nil then
    local bad, code, message = topic_error(session, "payload.topic", payload.topic)
    if code then return bad, code, message end
    return relay.json.array({ payload.topic })
  end
  return invalid(session, "payload.topics", "field 'payload.topics' (or 'payload.topic') is required")
end

-- ---- actions -----------------------------------------------------------------
-- Each takes (session, req, payload) and returns the response payload, or
-- nil, code, message. NEEDS_AUTH lists the actions refused before auth.

local actions = {}
local NEEDS_AUTH = { subscribe = true, unsubscribe = true, publish = true, subscriptions = true }

function actions.auth(session, req, payload)
  local token = payload.token
  if type(token) ~= "string" or token == "" then
    return invalid(session, "payload.token", "field 'payload.token' must be a non-empty string")
  end
  if #token > MAX_TOKEN then
    return invalid(session, "payload.token", "field 'payload.token' is longer than " .. MAX_TOKEN .. " bytes")
  end
  local user, exp, mode
  if relay.jwt.enabled() then
    mode = "jwt"
    local claims, reason = relay.jwt.verify(token)
    if not claims then
      return fail(session, "authentication_failed", "invalid token: " .. reason)
    end
    if type(claims.sub) ~= "string" or claims.sub == "" then
      return fail(session, "authentication_failed", "invalid token: no subject")
    end
    user = claims.sub
    if type(claims.exp) == "number" then exp = claims.exp end
  else
    mode = "development"  -- no WSRELAY_JWT_SECRET: the token is the user id
    if #token > MAX_ID then
      return invalid(session, "payload.token", "a development token (the user id) is at most " .. MAX_ID .. " bytes")
    end
    user = token
  end
  session.user = user
  session.attrs.exp = exp
  session.attrs.expired = nil
  return {
    user_id = user,
    authenticated = true,
    auth_mode = mode,
    expires_at = exp or relay.null,
  }
end

function actions.heartbeat(session, req, payload)
  return {
    status = "alive",
    server_time = now_iso(),
    client_timestamp = req.timestamp or relay.null,
    interval = relay.config.heartbeat_interval,
  }
end

function actions.subscribe(session, req, payload)
  local topics, code, message = read_topics(session, payload)
  if not topics then return nil, code, message end
  for _, topic in ipairs(topics) do session:subscribe(topic) end
  return { topics = topics, subscriptions = session:subscriptions() }
end

function actions.unsubscribe(session, req, payload)
  local topics, code, message = read_topics(session, payload)
  if not topics then return nil, code, message end
  for _, topic in ipairs(topics) do session:unsubscribe(topic) end
  return { topics = topics, subscriptions = session:subscriptions() }
end

function actions.subscriptions(session, req, payload)
  return { subscriptions = session:subscriptions() }
end

-- Shared by the publish action and client events: checks, then broadcasts to
-- the topic's subscribers (the sender too, if subscribed). Returns the event
-- id and how many sessions it reached, or nil, code, message.
local function publish(session, topic_field, topic, data_field, data)
  local bad, code, message = topic_error(session, topic_field, topic)
  if code then return bad, code, message end
  if not is_object(data) then
    return invalid(session, data_field, "field '" .. data_field .. "' must be a JSON object")
  end
  local ev = event(topic, data, session.user)
  return ev.id, relay.publish(topic, ev)
end

function actions.publish(session, req, payload)
  local event_id, delivered, message = publish(session, "payload.topic", payload.topic, "payload.data", payload.data)
  if not event_id then return nil, delivered, message end
  return { topic = payload.topic, event_id = event_id, delivered = delivered }
end

local ACTION_NAMES = relay.json.array({ "auth", "heartbeat", "subscribe", "unsubscribe", "subscriptions", "publish" })

-- ---- envelope checks -------------------------------------------------------------

local function check_common(session, msg)
  if msg.timestamp ~= nil and type(msg.timestamp) ~= "number" and type(msg.timestamp) ~= "string" then
    return invalid(session, "timestamp", "field 'timestamp' must be a number or an ISO 8601 string")
  end
  if msg.payload ~= nil and not is_object(msg.payload) then
    return invalid(session, "payload", "field 'payload' must be a JSON object")
  end
  return true
end

local function need_auth(session)
  if current_user(session) == nil then
    if session.attrs.expired then
      return fail(session, "authentication_required", "the token has expired; authenticate again")
    end
    return fail(session, "authentication_required", "authenticate first (action 'auth')")
  end
  return true
end

-- ---- message types -------------------------------------------------------------

local handlers = {}

function handlers.on_open(session)
  return event("connected", {
    session_id = session.id,
    protocol = PROTOCOL,
    authenticated = false,
    auth_mode = relay.jwt.enabled() and "jwt" or "development",
    heartbeat_interval = relay.config.heartbeat_interval,
    actions = ACTION_NAMES,
  })
end

function handlers.request(session, msg)
  if msg.id == nil then
    return invalid(session, "id", "field 'id' is required")
  end
  if not valid_id(msg.id) then
    return invalid(session, "id", "field 'id' must be a string of 1 to " .. MAX_ID .. " bytes or an integer")
  end
  if msg.action == nil then
    return invalid(session, "action", "field 'action' is required")
  end
  if type(msg.action) ~= "string" or msg.action == "" then
    return invalid(session, "action", "field 'action' must be a non-empty string")
  end
  local ok, code, message = check_common(session, msg)
  if not ok then return nil, code, message end
  local action = actions[msg.action]
  if action == nil then
    return fail(session, "unknown_action", "unknown action '" .. msg.action .. "'",
                { action = msg.action, actions = ACTION_NAMES })
  end
  if NEEDS_AUTH[msg.action] then
    ok, code, message = need_auth(session)
    if not ok then return nil, code, message end
  end
  local payload, err_code, err_message = action(session, msg, msg.payload or {})
  if payload == nil then return nil, err_code, err_message end
  return response(msg, payload)
end

-- A client event: fire and forget, broadcast to the topic's subscribers.
function handlers.event(session, msg)
  if msg.id ~= nil and not valid_id(msg.id) then
    return invalid(session, "id", "field 'id' must be a string of 1 to " .. MAX_ID .. " bytes or an integer")
  end
  local ok, code, message = check_common(session, msg)
  if not ok then return nil, code, message end
  ok, code, message = need_auth(session)
  if not ok then return nil, code, message end
  if msg.payload == nil then
    return invalid(session, "payload", "field 'payload' is required")
  end
  local event_id, why, text = publish(session, "event", msg.event, "payload", msg.payload)
  if not event_id then return nil, why, text end
end

-- JSON objects whose type is missing, not a string, or not request/event.
function handlers.on_message(session, msg)
  local t = msg.type
  if t == nil then
    return invalid(session, "type", "field 'type' is required")
  end
  if type(t) ~= "string" then
    return invalid(session, "type", "field 'type' must be a string")
  end
  return fail(session, "unknown_message_type",
              "unknown message type '" .. t .. "' (a client sends \"request\" or \"event\")",
              { field = "type" })
end

-- Text that is not a JSON object.
function handlers.on_text(session, text)
  local value, reason = relay.json.decode(text)
  if value == nil then
    return fail(session, "invalid_json", "the message is not valid JSON (" .. reason .. ")")
  end
  return invalid(session, nil, "a message must be a JSON object")
end

function handlers.on_binary(session, bytes)
  return invalid(session, nil, "binary frames are not accepted; send JSON text")
end

-- Every error leaves in the error envelope. Core codes are mapped onto the
-- envelope's: too_large -> message_too_large, script_* -> internal_error.
local CORE_CODES = {
  too_large = "message_too_large",
  script_error = "internal_error",
  script_timeout = "internal_error",
  bad_json = "invalid_json",
  bad_request = "validation_error",
  unknown_type = "unknown_message_type",
}

function handlers.on_error(session, code, message, msg)
  local details = session.attrs.error_details
  session.attrs.error_details = nil
  local id, action = relay.null, nil
  if type(msg) == "table" then
    if valid_id(msg.id) then id = msg.id end
    if msg.type == "request" and type(msg.action) == "string" and msg.action ~= "" then action = msg.action end
  end
  return {
    type = "error",
    id = id,
    action = action,
    error = { code = CORE_CODES[code] or code, message = message, details = details or relay.null },
    timestamp = now_iso(),
  }
end

return handlers
