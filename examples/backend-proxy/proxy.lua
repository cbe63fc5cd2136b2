-- proxy.lua: wsrelay in front of a FastAPI app (examples/backend-proxy).
--
-- The relay keeps the WebSockets, the app (app.py) keeps the rules:
--   upgrade     no session cookie and no ?token=      -> HTTP 401, no WebSocket
--   on_open     POST /ws/connect {session, token, cookie, ...}
--                 200 {"user", "channels", "info"}   -> welcome, subscribed
--                 401 / 403                          -> close 4003 <the app's detail>
--                 anything else, or no answer        -> close 1013 backend unavailable
--   chat        POST /ws/chat {session, user, channel, text, id}
--                 200 {"message": {...}}             -> published to the channel, chat.ok
--                 4xx {"detail": "why"}              -> error "refused", message: why
--   on_close    the user's last connection: relay.after(grace) -> POST /ws/offline
--               (a connection the app accepts for that user within the grace cancels it)
-- The app pushes with the relay's POST /admin/broadcast: to a channel, or to
-- "user:<name>", the channel every connection of that user is in.
-- Every call runs on the relay's coroutine: the handler waits for the app,
-- the loop and the other sessions do not. This session's next messages wait
-- behind it, in order.
--
-- Endpoint options (config "options"):
--   backend_url          string  required: the app's base URL, http:// or https://
--   backend_secret       string  sent as "Authorization: Bearer ..." on every call ("" sends none)
--   cookie_name          string  the session cookie (default "session")
--   offline_grace_s      number  seconds a user may be gone before /ws/offline (default 3)
--   backend_timeout_s    number  per call (default 5)
--   user_channel_prefix  string  the per-user channel is prefix .. user (default "user:")

local O = relay.options

local function option(value, kind, default, name, check, rule)
  if value == nil then return default end
  if (math.type(value) ~= kind and type(value) ~= kind) or (check and not check(value)) then
    error("options." .. name .. ": expected " .. (rule or kind) .. " (got " .. relay.json.encode(value) .. ")", 0)
  end
  return value
end

local BACKEND = option(O.backend_url, "string", nil, "backend_url",
                       function(s) return s:find("^https?://[^/]") ~= nil end, "an http:// or https:// URL")
if BACKEND == nil then error("options.backend_url is required (the app's base URL, e.g. http://127.0.0.1:8080)", 0) end
BACKEND = BACKEND:gsub("/+$", "")
local SECRET = option(O.backend_secret, "string", "", "backend_secret")
local COOKIE = option(O.cookie_name, "string", "session", "cookie_name",
                      function(s) return s:find("^[%w!#$%%&'*+%-.^_`|~]+$") ~= nil end, "a cookie name")
local GRACE = option(O.offline_grace_s, "number", 3, "offline_grace_s",
                     function(n) return n >= 0 and n <= 86400 end, "a number of seconds, 0..86400")
local TIMEOUT = option(O.backend_timeout_s, "number", 5, "backend_timeout_s",
                       function(n) return n > 0 and n <= 300 end, "a number of seconds, (0, 300]")
local USER_PREFIX = option(O.user_channel_prefix, "string", "user:", "user_channel_prefix",
                           function(s) return s ~= "" end, "a non-empty string")

local HEADERS = {}
if SECRET ~= "" then HEADERS.Authorization = "Bearer " .. SECRET end

-- ---- shared state: every session of this endpoint sees these -----------------

local online = {}          -- user -> connections the app accepted that are still open
local offline_timers = {}  -- user -> the pending relay.after handle

-- A reload keeps the sessions (and their attrs) but starts a new Lua state:
-- count the accepted ones again. (Pending offline timers die with the old
-- version: a user who left just before a reload gets no /ws/offline.)
for _, s in ipairs(relay.sessions()) do
  local user = s.attrs.user
  if user and not s.closed then online[user] = (online[user] or 0) + 1 end
end

-- ---- helpers -------------------------------------------------------------------

local function nonempty(s)
  if type(s) == "string" and s ~= "" then return s end
  return nil
end

-- At most n bytes, cut on a UTF-8 character boundary (a close reason is <= 123 bytes).
local function clip(s, n)
  if #s <= n then return s end
  local cut = n
  while cut > 0 and (s:byte(cut + 1) or 0) & 0xC0 == 0x80 do cut = cut - 1 end
  return s:sub(1, cut)
end

local function call(path, body)
  return relay.http.request({ method = "POST", url = BACKEND .. path, json = body,
                              headers = HEADERS, timeout = TIMEOUT })
end

-- The app's reason: FastAPI's {"detail": "..."} (or its validation list, as JSON).
local function detail(res)
  local j = res.json
  if type(j) == "table" and j.detail ~= nil then
    return type(j.detail) == "string" and j.detail or relay.json.encode(j.detail)
  end
  return "the app answered " .. res.status
end

-- ---- handlers --------------------------------------------------------------------

local handlers = {}

-- Before the WebSocket exists, synchronously: nothing to ask the app yet, but
-- an upgrade without any credential is not worth a call.
function handlers.on_upgrade(req)
  if nonempty(req.cookies[COOKIE]) == nil and nonempty(req.query.token) == nil then
    return {
      status = 401,
      headers = { ["WWW-Authenticate"] = 'Bearer realm="wsrelay"' },
      body = "a '" .. COOKIE .. "' cookie or a ?token= query parameter is required",
    }
  end
end

function handlers.on_open(session)
  local headers = session.headers
  local res, err = call("/ws/connect", {
    session = session.id,
    token = nonempty(session.query.token),
    cookie = nonempty(session.cookies[COOKIE]),
    remote = session.remote,
    origin = headers.origin,
    user_agent = headers["user-agent"],
  })
  if res == nil then
    relay.log("warn", session, "POST /ws/connect failed:", err)
    session:close(1013, "backend unavailable")
    return
  end
  if res.status == 401 or res.status == 403 then
    local why = detail(res)
    relay.log("info", session, "the app refused the connection:", res.status, why)
    session:close(4003, clip(why, 123))
    return
  end
  local answer = res.json
  if res.status ~= 200 or type(answer) ~= "table" or nonempty(answer.user) == nil then
    relay.log("warn", session, "POST /ws/connect: unexpected answer", res.status, clip(res.body, 200))
    session:close(1013, "backend unavailable")
    return
  end

  local user = answer.user
  session.user = user
  local channels, joined = {}, relay.json.array()
  if type(answer.channels) == "table" then
    for _, channel in ipairs(answer.channels) do
      if nonempty(channel) and session:subscribe(channel) then
        channels[channel] = true
        joined[#joined + 1] = channel
      end
    end
  end
  session:subscribe(USER_PREFIX .. user)
  session.attrs.user = user        -- counted in `online` from here on
  session.attrs.channels = channels
  session.attrs.default_channel = joined[1]
  online[user] = (online[user] or 0) + 1
  local pending = offline_timers[user]
  if pending then                  -- back within the grace period: no /ws/offline
    pending:cancel()
    offline_timers[user] = nil
  end
  return { type = "welcome", user = user, session = session.id, channels = joined, info = answer.info }
end

function handlers.chat(session, msg)
  local channel = msg.channel
  if channel == nil then channel = session.attrs.default_channel end
  if type(channel) ~= "string" then
    return nil, "bad_request", "field 'channel' must be a string"
  end
  if not session.attrs.channels[channel] then
    return nil, "not_subscribed", "you are not in channel '" .. channel .. "'"
  end
  if nonempty(msg.text) == nil then
    return nil, "bad_request", "field 'text' must be a non-empty string"
  end
  local id = msg.id
  if id ~= nil and type(id) ~= "string" and math.type(id) == nil then
    return nil, "bad_request", "field 'id' must be a string or a number"
  end
  local res, err = call("/ws/chat", {
    session = session.id, user = session.user, channel = channel, text = msg.text,
    id = id ~= nil and tostring(id) or nil,
  })
  if res == nil then
    relay.log("warn", session, "POST /ws/chat failed:", err)
    return nil, "backend_unavailable", "the app did not answer (" .. err .. "); try again"
  end
  if res.status >= 400 and res.status < 500 then
    return nil, "refused", detail(res)
  end
  local answer = res.json
  if res.status ~= 200 or type(answer) ~= "table" or type(answer.message) ~= "table" then
    relay.log("warn", session, "POST /ws/chat: unexpected answer", res.status, clip(res.body, 200))
    return nil, "backend_unavailable", "the app answered " .. res.status .. "; try again"
  end
  local out = answer.message
  out.type, out.channel, out.from = "chat", channel, session.user
  local delivered = relay.publish(channel, out)
  return { type = "chat.ok", id = id, channel = channel, message_id = out.id, delivered = delivered }
end

-- Answered by the relay itself (no call): a cheap liveness check for clients.
function handlers.ping(session, msg)
  return { type = "pong", id = msg.id }
end

function handlers.on_close(session, code, reason)
  local user = session.attrs.user
  if user == nil then return end   -- never accepted by the app
  local left = (online[user] or 1) - 1
  if left > 0 then
    online[user] = left
    return
  end
  online[user] = nil
  local since = relay.time()
  local ok, handle = pcall(relay.after, GRACE, function()
    offline_timers[user] = nil
    if online[user] then return end
    local res, err = call("/ws/offline", { user = user, since = since, grace_s = GRACE })
    if res == nil then
      relay.log("warn", "POST /ws/offline for", user, "failed:", err)
    elseif res.status >= 300 then
      relay.log("warn", "POST /ws/offline for", user, "answered", res.status, clip(res.body, 200))
    end
  end)
  if ok then
    offline_timers[user] = handle
  else
    relay.log("error", "no offline timer for", user, ":", handle)
  end
end

return handlers
