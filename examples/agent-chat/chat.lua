-- chat.lua: EdAgent's real-time tutor chat (seeds/004) on wsrelay.
--
-- WebSocket /api/v1/ws/{user_id}: the user id comes from the path.
--   client -> relay   {"message": "How do I learn Python?"}
--   relay  -> client  connection, typing, ai_response (streamed, then final),
--                     error, broadcast, disconnection  (README.md shows each)
-- Every client has its own upstream (OpenAI's Realtime API), opened lazily by
-- the first message ("connect": "lazy") and kept across upstream failures
-- ("on_close": "keep": the next message opens a fresh one).
-- HTTP on the same port: GET /api/v1/ws/status, POST /api/v1/ws/broadcast.
--
-- Endpoint options (config "options"), all optional:
--   admin_token        string  Bearer token for POST /api/v1/ws/broadcast;
--                              "" (the default) refuses every broadcast
--   status_requires_token  bool  true: GET /api/v1/ws/status needs it too (default false)
--   instructions       string  the tutor's instructions, put into every response.create
--   response           object  other fields of response.create's "response"
--                              (default {"output_modalities": ["text"]})
--   stream             bool    false: no streamed ai_response chunks, only the final one
--   rate_limit         {"messages": N, "window_s": S}  token bucket per connection:
--                              bursts of N, refilled at N per S seconds (default 10 / 60)
--   max_pending        integer messages waiting behind the one being answered
--                              (default: rate_limit.messages)
--   max_message_chars  integer longest accepted message, in characters (default 4000)
--   greeting           string  the "message" of the connection message
--   broadcast_channel  string  internal pub/sub channel for broadcasts

local O = relay.options

-- ---- options, checked once at load: a wrong value stops the start ---------

local function option(value, kind, default, name, check, rule)
  if value == nil then return default end
  if math.type(value) ~= kind and type(value) ~= kind or (check and not check(value)) then
    error("options." .. name .. ": expected " .. (rule or kind) .. " (got " .. relay.json.encode(value) .. ")", 0)
  end
  return value
end
local function positive(n) return n >= 1 end

local ADMIN_TOKEN = option(O.admin_token, "string", "", "admin_token")
local STATUS_NEEDS_TOKEN = option(O.status_requires_token, "boolean", false, "status_requires_token")
local INSTRUCTIONS = option(O.instructions, "string", nil, "instructions")
local RESPONSE = option(O.response, "table", { output_modalities = relay.json.array({ "text" }) }, "response")
local STREAM = option(O.stream, "boolean", true, "stream")
local RATE = option(O.rate_limit, "table", {}, "rate_limit")
local RATE_MESSAGES = option(RATE.messages, "integer", 10, "rate_limit.messages", positive, "an integer >= 1")
local RATE_WINDOW_S = option(RATE.window_s, "number", 60, "rate_limit.window_s",
                             function(n) return n > 0 end, "a number > 0")
local MAX_PENDING = option(O.max_pending, "integer", RATE_MESSAGES, "max_pending", positive, "an integer >= 1")
local MAX_CHARS = option(O.max_message_chars, "integer", 4000, "max_message_chars", positive, "an integer >= 1")
local GREETING = option(O.greeting, "string", "Connected to EdAgent", "greeting")
local CHANNEL = option(O.broadcast_channel, "string", "agent-chat.broadcast", "broadcast_channel",
                       function(s) return s ~= "" end, "a non-empty string")

if ADMIN_TOKEN == "" then
  relay.log("warn", "no admin_token configured (WSRELAY_ADMIN_TOKEN): POST /api/v1/ws/broadcast refuses everyone")
end

local TOKENS_PER_MS = RATE_MESSAGES / (RATE_WINDOW_S * 1000)
local USER_ID_PATTERN = "^[%w%._@:%-]+$"
local MAX_USER_ID = 128

-- ---- message helpers ------------------------------------------------------

-- ISO 8601 UTC with milliseconds, e.g. "2026-01-01T12:00:00.123Z".
local function iso(ms)
  ms = ms or relay.now()
  return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
end

local function error_msg(session, code, message, extra)
  local m = { type = "error", code = code, message = message, timestamp = iso() }
  if session then m.user_id = session.attrs.user_id end
  if extra then for k, v in pairs(extra) do m[k] = v end end
  return m
end

local function typing(session, on)
  session.attrs.typing = on
  session:send({ type = "typing", is_typing = on, user_id = session.attrs.user_id, timestamp = iso() })
end

-- Every frame the client sends counts as activity (GET /api/v1/ws/status).
local function touch(session)
  local a = session.attrs
  a.message_count = (a.message_count or 0) + 1
  a.last_activity = relay.now()
end

-- Token bucket: true, or false and the milliseconds until the next token.
local function take_token(a)
  local now = relay.now()
  a.tokens = math.min(RATE_MESSAGES, a.tokens + (now - a.refilled_at) * TOKENS_PER_MS)
  a.refilled_at = now
  if a.tokens >= 1 then
    a.tokens = a.tokens - 1
    return true
  end
  return false, math.ceil((1 - a.tokens) / TOKENS_PER_MS)
end

-- ---- turns: one question answered at a time, the rest wait in order ----------

local start_next

local function upstream_failure(session, code, message)
  local a = session.attrs
  local dropped = #a.queue
  a.turn = nil
  a.queue = {}
  session:send(error_msg(session, code, message, dropped > 0 and { dropped = dropped } or nil))
  if a.typing then typing(session, false) end
end

-- The turn is over (answered or failed): the next waiting message, or typing off.
local function end_turn(session)
  session.attrs.turn = nil
  start_next(session)
end

start_next = function(session)
  local a = session.attrs
  if a.turn ~= nil then return end
  local text = table.remove(a.queue, 1)
  if text == nil then
    if a.typing then typing(session, false) end
    return
  end
  a.turns = a.turns + 1
  a.turn = { stage = "requested", parts = {}, id = "msg_" .. session.id .. "_" .. a.turns }
  if not a.typing then typing(session, true) end
  local response = {}
  for k, v in pairs(RESPONSE) do response[k] = v end
  if INSTRUCTIONS then response.instructions = INSTRUCTIONS end
  -- Client event ids let an upstream error name the event it is about.
  local ok, err = session:upstream_send({
    type = "conversation.item.create",
    event_id = a.turn.id .. "_item",
    item = { type = "message", role = "user", content = { { type = "input_text", text = text } } },
  })
  if ok then
    ok, err = session:upstream_send({ type = "response.create", event_id = a.turn.id .. "_resp", response = response })
  end
  if not ok then
    relay.log("warn", session, "upstream refused the message:", err)
    upstream_failure(session, err == "upstream_busy" and "busy" or "upstream_unavailable",
                     "the assistant cannot take the message now (" .. err .. "); try again")
  end
end

-- ---- handlers -----------------------------------------------------------------

local handlers = {}

function handlers.on_open(session)
  local user_id = session.params.user_id or ""
  if #user_id > MAX_USER_ID or not string.find(user_id, USER_ID_PATTERN) then
    session:send(error_msg(nil, "invalid_user_id",
      "the user id in the path must be 1-" .. MAX_USER_ID .. " characters of A-Z a-z 0-9 . _ @ : -"))
    session:close(1008, "invalid user id")
    return nil
  end
  -- One connection per user (like a dict keyed by user id): a newer one
  -- replaces the older, which is told why and closed with 4000.
  for _, other in ipairs(relay.sessions()) do
    if other ~= session and other.attrs.user_id == user_id and not other.attrs.replaced then
      other.attrs.replaced = true
      other:send({
        type = "disconnection", user_id = user_id, reason = "replaced",
        message = "Disconnected: a newer connection for this user took over", timestamp = iso(),
      })
      other:close(4000, "replaced by a newer connection")
    end
  end
  local now = relay.now()
  local a = session.attrs
  a.user_id = user_id
  a.connected_at = now
  a.last_activity = now
  a.message_count = 0
  a.tokens = RATE_MESSAGES
  a.refilled_at = now
  a.queue = {}
  a.turns = 0
  a.typing = false
  session.user = user_id
  session:subscribe(CHANNEL)
  return { type = "connection", user_id = user_id, session_id = session.id, message = GREETING, timestamp = iso(now) }
end

-- Every JSON object lands here (there are no per-type handlers).
function handlers.on_message(session, msg)
  touch(session)
  local a = session.attrs
  local text = msg.message
  if text == nil then
    return error_msg(session, "validation_error", "field 'message' is required")
  elseif type(text) ~= "string" then
    return error_msg(session, "validation_error", "field 'message' must be a string")
  elseif not string.find(text, "%S") then
    return error_msg(session, "validation_error", "field 'message' must not be empty")
  end
  local chars = utf8.len(text)
  if chars == nil then
    return error_msg(session, "validation_error", "field 'message' is not valid UTF-8")
  elseif chars > MAX_CHARS then
    return error_msg(session, "validation_error", "field 'message' is longer than " .. MAX_CHARS .. " characters")
  end
  if #a.queue >= MAX_PENDING then
    return error_msg(session, "busy", "too many messages waiting for an answer; try again shortly",
                     { retry_after = 1 })
  end
  local ok, wait_ms = take_token(a)
  if not ok then
    local retry = math.max(1, math.ceil(wait_ms / 1000))
    return error_msg(session, "rate_limited",
      "Rate limit exceeded: at most " .. RATE_MESSAGES .. " messages per " .. RATE_WINDOW_S ..
      " s. Try again in " .. retry .. " s.", { retry_after = retry })
  end
  a.queue[#a.queue + 1] = text
  if not a.typing then typing(session, true) end
  start_next(session)
end

-- Text that is not JSON, or JSON that is not an object.
function handlers.on_text(session, text)
  touch(session)
  if relay.json.decode(text) == nil then
    return error_msg(session, "invalid_json", "the message is not valid JSON; send {\"message\": \"...\"}")
  end
  return error_msg(session, "validation_error", "a message must be a JSON object: {\"message\": \"...\"}")
end

function handlers.on_binary(session, bytes)
  touch(session)
  return error_msg(session, "validation_error", "binary frames are not accepted; send {\"message\": \"...\"} as text")
end

-- ---- upstream (OpenAI Realtime) -------------------------------------------------

local DELTAS = {
  ["response.output_text.delta"] = true,             -- GA
  ["response.text.delta"] = true,                    -- beta
  ["response.output_audio_transcript.delta"] = true, -- GA, audio output
  ["response.audio_transcript.delta"] = true,        -- beta, audio output
}
local DONES = {
  ["response.output_text.done"] = "text",
  ["response.text.done"] = "text",
  ["response.output_audio_transcript.done"] = "transcript",
  ["response.audio_transcript.done"] = "transcript",
}

-- The assistant's text from response.done's output items (fallback).
local function output_text(response)
  local out = {}
  if type(response) == "table" and type(response.output) == "table" then
    for _, item in ipairs(response.output) do
      if type(item) == "table" and type(item.content) == "table" then
        for _, part in ipairs(item.content) do
          if type(part) == "table" then
            local t = part.text or part.transcript
            if type(t) == "string" then out[#out + 1] = t end
          end
        end
      end
    end
  end
  return table.concat(out)
end

function handlers.on_upstream(session, event)
  if type(event) ~= "table" then return nil end
  local a = session.attrs
  local turn = a.turn
  local t = event.type
  if t == "error" then
    local e = type(event.error) == "table" and event.error or {}
    local message = type(e.message) == "string" and e.message or "the assistant reported an error"
    session:send(error_msg(session, "upstream_error", message, { details = event.error }))
    -- The turn is over if response.create itself failed (no response will
    -- come). An error about another event leaves it to response.done.
    if turn and turn.stage == "requested" and
       (e.event_id == turn.id .. "_resp" or type(e.event_id) ~= "string") then
      end_turn(session)
    end
    return nil
  end
  if turn == nil then return nil end
  if t == "response.created" then
    turn.stage = "streaming"
    if type(event.response) == "table" and type(event.response.id) == "string" then
      turn.response_id = event.response.id
    end
  elseif DELTAS[t] then
    if type(event.delta) == "string" and event.delta ~= "" then
      turn.parts[#turn.parts + 1] = event.delta
      if STREAM then
        return { type = "ai_response", content = event.delta, streaming = true, done = false,
                 message_id = turn.id, user_id = a.user_id, timestamp = iso() }
      end
    end
  elseif DONES[t] then
    local text = event[DONES[t]]
    if type(text) == "string" then turn.text = (turn.text or "") .. text end
  elseif t == "response.done" then
    local response = type(event.response) == "table" and event.response or {}
    local status = type(response.status) == "string" and response.status or "completed"
    local text = turn.text or table.concat(turn.parts)
    if text == "" then text = output_text(response) end
    session:send({ type = "ai_response", content = text, streaming = false, done = true, status = status,
                   message_id = turn.id, user_id = a.user_id, timestamp = iso() })
    if status == "failed" then
      local details = type(response.status_details) == "table" and response.status_details or nil
      local e = details and type(details.error) == "table" and details.error or {}
      session:send(error_msg(session, "upstream_error",
        type(e.message) == "string" and e.message or "the assistant could not finish the answer",
        { details = details }))
    end
    end_turn(session)
  end
  return nil
end

-- The upstream went away ("on_close": "keep": the client stays connected and
-- its next message opens a new upstream, with a fresh conversation). The
-- client hears about it only if it was waiting for an answer.
function handlers.on_upstream_close(session, code, reason)
  local a = session.attrs
  relay.log("info", session, "upstream closed", code, reason)
  if a.turn == nil and #a.queue == 0 then return nil end
  if code == 1006 then
    upstream_failure(session, "upstream_unavailable", "the assistant is unavailable; try again")
  else
    upstream_failure(session, "upstream_closed",
                     "the assistant's connection closed (" .. code .. "); send the message again")
  end
  return nil
end

-- Errors raised by the core (message over max_message_size, a script failure)
-- in the same error shape.
function handlers.on_error(session, code, message)
  local mapped = { bad_json = "invalid_json", bad_request = "validation_error",
                   too_large = "message_too_large", script_error = "internal_error",
                   script_timeout = "internal_error" }
  return error_msg(session, mapped[code] or code, message)
end

-- ---- HTTP on the same port ----------------------------------------------------------

local UNAUTHORIZED = {
  status = 401,
  headers = { ["WWW-Authenticate"] = 'Bearer realm="wsrelay"' },
  json = { error = "unauthorized", message = "a valid 'Authorization: Bearer <token>' header is required" },
}

-- Constant-time check of "Authorization: Bearer <token>"; an empty configured
-- token matches nothing (relay.secure_compare is false for "").
local function authorized(req)
  local header = req.headers.authorization
  if type(header) ~= "string" then return false end
  local token = string.match(header, "^[Bb]earer%s+(%S+)%s*$")
  return token ~= nil and relay.secure_compare(ADMIN_TOKEN, token)
end

local function connection_list()
  local list = {}
  for _, s in ipairs(relay.sessions()) do
    local a = s.attrs
    if a.user_id and not a.replaced then
      list[#list + 1] = {
        user_id = a.user_id,
        session_id = s.id,
        connected_at = iso(a.connected_at),
        message_count = a.message_count,
        last_activity = iso(a.last_activity),
        upstream = s.upstream or relay.null,
        _at = a.connected_at,
      }
    end
  end
  table.sort(list, function(x, y) return x._at < y._at or (x._at == y._at and x.session_id < y.session_id) end)
  for _, c in ipairs(list) do c._at = nil end
  return list
end

handlers.http = {
  ["GET /api/v1/ws/status"] = function(req)
    if STATUS_NEEDS_TOKEN and not authorized(req) then return UNAUTHORIZED end
    local list = connection_list()
    return { status = 200, json = {
      active_connections = #list,
      connections = relay.json.array(list),
      timestamp = iso(),
    } }
  end,

  ["POST /api/v1/ws/broadcast"] = function(req)
    if not authorized(req) then
      relay.log("warn", "refused broadcast from", req.remote, "(missing or wrong admin token)")
      return UNAUTHORIZED
    end
    local body = relay.json.decode(req.body)
    if type(body) ~= "table" then
      return { status = 400, json = { error = "invalid_json", message = 'the body must be a JSON object {"message": "..."}' } }
    end
    if type(body.message) ~= "string" or not string.find(body.message, "%S") then
      return { status = 400, json = { error = "validation_error", message = "field 'message' must be a non-empty string" } }
    end
    local timestamp = iso()
    local n = relay.publish(CHANNEL, { type = "broadcast", message = body.message, from = "admin", timestamp = timestamp })
    relay.log("info", "broadcast from", req.remote, "reached", n, "connection(s)")
    return { status = 200, json = { status = "sent", recipients = n, timestamp = timestamp } }
  end,
}

return handlers
