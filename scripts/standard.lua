-- standard.lua: the wsrelay.v1 protocol (docs/protocol.md).
--
-- JSON text frames with a "type"; replies echo the request's "id".
-- Copy this file, change it, and point an endpoint's "script" at the copy:
-- no rebuild needed. docs/lua-api.md lists everything `relay` offers.

-- HS256 tokens: the jwt extension plugin (built in; docs/plugins.md).
local jwt = require "relay.jwt"

local PROTOCOL = "wsrelay.v1"
local MAX_CHANNEL = 128
-- Decoded JSON arrays carry this metatable (docs/lua-api.md, JSON ⇄ Lua); an
-- object decodes to a plain table, which ipairs would walk as an empty array.
local ARRAY = getmetatable(relay.json.array())

-- True if v is a JSON array of strings (the "channels" claim).
local function is_string_array(v)
  if type(v) ~= "table" or getmetatable(v) ~= ARRAY then return false end
  for i = 1, #v do
    if type(v[i]) ~= "string" then return false end
  end
  return true
end

-- A failed check is answered with an error reply: return nil, code, message.
local function need_string(msg, field)
  local v = msg[field]
  if type(v) ~= "string" or v == "" then
    return nil, "bad_request", "field '" .. field .. "' must be a non-empty string"
  end
  return v
end

-- Channel names already found free of control characters: the pattern
-- match costs ~1,000 instructions per message, more than the rest of a
-- chat's checks together; a table lookup, a few dozen. Emptied when it holds
-- 1,000 names, so a stream of new names cannot grow it without bound.
local clean_channels, clean_count = {}, 0

local function need_channel(msg)
  local channel, code, message = need_string(msg, "channel")
  if not channel then return nil, code, message end
  if #channel > MAX_CHANNEL then
    return nil, "bad_request", "channel name longer than " .. MAX_CHANNEL .. " bytes"
  end
  if not clean_channels[channel] then
    if channel:find("%c") then
      return nil, "bad_request", "channel name contains a control character"
    end
    if clean_count >= 1000 then clean_channels, clean_count = {}, 0 end
    clean_channels[channel] = true
    clean_count = clean_count + 1
  end
  return channel
end

-- Every channel operation needs an authenticated session and a valid channel.
local function authed_channel(session, msg)
  if session.user == nil then
    return nil, "unauthorized", "authenticate first"
  end
  return need_channel(msg)
end

-- Who may subscribe where. Two rules, both refused with "forbidden":
--  * "user:<name>" is <name>'s personal channel: anyone may publish to it, only
--    <name> may subscribe (a private inbox);
--  * a JWT with a "channels" claim (an array of names; "news.*" matches every
--    channel starting with "news.") limits its holder to those channels and
--    their own personal channel.
local function may_subscribe(session, channel)
  local owner = channel:match("^user:(.*)$")
  if owner then
    if owner == session.user then return true end
    return false, "channel '" .. channel .. "' belongs to another user"
  end
  local allowed = session.attrs.channels
  if allowed then
    for _, pattern in ipairs(allowed) do
      if pattern == channel then return true end
      if pattern:sub(-1) == "*" and channel:sub(1, #pattern - 1) == pattern:sub(1, -2) then
        return true
      end
    end
    return false, "the token does not grant channel '" .. channel .. "'"
  end
  return true
end

-- A position to continue from: {"seq": <integer >= 0>, "epoch": <string>}.
-- Absent: nil. Malformed: false and the reply naming the field.
local function read_since(msg)
  local since = msg.since
  if since == nil then return nil end
  if type(since) ~= "table" or getmetatable(since) == ARRAY then
    return false, "field 'since' must be an object {\"seq\": <integer>, \"epoch\": <string>}"
  end
  if math.type(since.seq) ~= "integer" or since.seq < 0 then
    return false, "field 'since.seq' must be a non-negative integer"
  end
  if type(since.epoch) ~= "string" then
    return false, "field 'since.epoch' must be a string"
  end
  return since
end

-- join and leave (channel_options' join_leave): ephemeral broadcasts to the
-- others, never kept or replayed.
-- user: who joined or left (a re-auth leaves as the identity it had).
local function announce(session, channel, kind, user)
  local options = relay.channel_options(channel)
  if not (options and options.join_leave) then return end
  relay.publish(channel, { type = kind, channel = channel, user = user or session.user, session = session.id },
                { exclude = session, history = false })
end

-- A channel the session may read (subscribe, history, presence).
local function readable_channel(session, msg)
  local channel, code, message = authed_channel(session, msg)
  if not channel then return nil, code, message end
  local allowed, reason = may_subscribe(session, channel)
  if not allowed then return nil, "forbidden", reason end
  return channel
end

local handlers = {}

function handlers.on_open(session)
  return {
    type = "welcome",
    session = session.id,
    protocol = PROTOCOL,
    heartbeat = relay.config.heartbeat_interval,
  }
end

function handlers.auth(session, msg)
  local token, code, message = need_string(msg, "token")
  if not token then return nil, code, message end
  local user, channels, expires
  if jwt.enabled() then
    local claims, reason = jwt.verify(token)
    if not claims then return nil, "unauthorized", "invalid token: " .. reason end
    if type(claims.sub) ~= "string" or claims.sub == "" then
      return nil, "unauthorized", "invalid token: no subject"
    end
    user = claims.sub
    -- The session ends when verify would start refusing this token (exp +
    -- leeway: close 4001, docs/protocol.md); nil, no exp, never.
    if claims.exp ~= nil then expires = claims.exp + jwt.leeway() end
    channels = claims.channels
    if channels ~= nil and not is_string_array(channels) then
      return nil, "unauthorized", "invalid token: 'channels' must be an array of strings"
    end
  else
    -- Development mode (no WSRELAY_JWT_SECRET): the token is the user name.
    user = token
  end
  local previous_user = session.user
  session.user = user
  session.attrs.channels = channels
  -- A re-auth is the refresh: the new token's expiry replaces the old one
  -- (and a token without exp, or development mode, clears it).
  session:set_expiry(expires)
  local reply = { type = "auth.ok", id = msg.id, user = user }
  -- A re-auth must not keep what the old identity could read: every channel
  -- the new one may not subscribe to (same check as subscribe) is dropped and
  -- listed. Absent when nothing was dropped, so a first auth looks as before.
  local dropped = relay.json.array()
  for _, channel in ipairs(session:subscriptions()) do
    if not may_subscribe(session, channel) then
      session:unsubscribe(channel)
      announce(session, channel, "leave", previous_user)
      dropped[#dropped + 1] = channel
    end
  end
  if #dropped > 0 then reply.unsubscribed = dropped end
  return reply
end

function handlers.subscribe(session, msg)
  local channel, code, message = readable_channel(session, msg)
  if not channel then return nil, code, message end
  local since, bad = read_since(msg)
  if since == false then return nil, "bad_request", bad end
  local added, position = session:subscribe(channel, { since = since })
  if added == nil then return nil, "bad_request", position end
  local reply = { type = "subscribe.ok", id = msg.id, channel = channel }
  -- A history channel answers with its position; after `since`, whether
  -- what was missed follows this reply (recovered) or cannot (reload).
  if position then
    reply.epoch, reply.seq, reply.recovered = position.epoch, position.seq, position.recovered
  end
  if added then announce(session, channel, "join") end
  return reply
end

function handlers.unsubscribe(session, msg)
  local channel, code, message = authed_channel(session, msg)
  if not channel then return nil, code, message end
  if session:unsubscribe(channel) then announce(session, channel, "leave") end
  return { type = "unsubscribe.ok", id = msg.id, channel = channel }
end

function handlers.on_close(session)
  for _, channel in ipairs(session:subscriptions()) do
    announce(session, channel, "leave")
  end
end

function handlers.history(session, msg)
  local channel, code, message = readable_channel(session, msg)
  if not channel then return nil, code, message end
  local limit = msg.limit
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 0) then
    return nil, "bad_request", "field 'limit' must be a non-negative integer"
  end
  local since, bad = read_since(msg)
  if since == false then return nil, "bad_request", bad end
  local page = relay.history(channel, { limit = limit, since = since })
  if not page then return nil, "not_available", "channel '" .. channel .. "' keeps no history" end
  return {
    type = "history.ok", id = msg.id, channel = channel,
    epoch = page.epoch, seq = page.seq, recovered = page.recovered, messages = page.messages,
  }
end

function handlers.presence(session, msg)
  local channel, code, message = readable_channel(session, msg)
  if not channel then return nil, code, message end
  local clients = relay.presence(channel)
  if not clients then return nil, "not_available", "channel '" .. channel .. "' has no presence" end
  return { type = "presence.ok", id = msg.id, channel = channel, clients = clients }
end

function handlers.presence_stats(session, msg)
  local channel, code, message = readable_channel(session, msg)
  if not channel then return nil, code, message end
  local stats = relay.presence_stats(channel)
  if not stats then return nil, "not_available", "channel '" .. channel .. "' has no presence" end
  return { type = "presence_stats.ok", id = msg.id, channel = channel, clients = stats.clients, users = stats.users }
end

function handlers.chat(session, msg)
  local channel, code, message = authed_channel(session, msg)
  if not channel then return nil, code, message end
  if msg.data == nil then
    return nil, "bad_request", "field 'data' is required"
  end
  local broadcast = {
    type = "chat",
    channel = channel,
    from = session.user,
    data = msg.data,
    ts = relay.now(),
  }
  local options = relay.channel_options(channel)
  local seq
  if options and options.history_size > 0 then
    -- A history channel: the engine assigns the stream position.
    local _
    _, seq = relay.publish(channel, broadcast)
  else
    seq = relay.next_seq(channel)
    broadcast.seq = seq
    relay.publish(channel, broadcast)
  end
  return { type = "chat.ok", id = msg.id, seq = seq }
end

function handlers.typing(session, msg)
  local channel, code, message = authed_channel(session, msg)
  if not channel then return nil, code, message end
  if type(msg.typing) ~= "boolean" then
    return nil, "bad_request", "field 'typing' must be a boolean"
  end
  relay.publish(channel, {
    type = "typing",
    channel = channel,
    from = session.user,
    typing = msg.typing,
  }, { exclude = session, history = false })
end

function handlers.heartbeat(session, msg)
  return { type = "heartbeat", id = msg.id, ts = relay.now() }
end

-- Every error, from the core (bad_json, too_large, ...) or from a handler
-- above, leaves in this one shape.
function handlers.on_error(session, code, message, msg)
  local id
  if type(msg) == "table" then id = msg.id end
  return { type = "error", id = id, code = code, message = message }
end

return handlers
