// bridge_session: the `session` value handlers receive.
// One userdata per session per script state, created at open and invalidated
// at close, so a script that keeps a reference gets "closed", never a dangling
// pointer. User value 1 is the session's attrs table.
#include "json/lua_json.hpp"
#include "pubsub/channel_name.hpp"
#include "script/engine_internal.hpp"
#include "session/log_fields.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace wsrelay::script {
namespace {

const char* const kSessionMeta = "wsrelay.session";

struct Box {
  session::Session* session;
};

// The session metatable is also in the registry under this address: a
// pointer key is cheaper to look up than luaL_checkudata's name, and every
// session.x and session:m() checks its argument.
const char kSessionMetaKey = 0;

Box* box_at(lua_State* L, int index) {
  void* p = lua_touserdata(L, index);
  if (p != nullptr && lua_getmetatable(L, index)) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, &kSessionMetaKey);
    const bool ours = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (ours) return static_cast<Box*>(p);
  }
  return static_cast<Box*>(luaL_checkudata(L, index, kSessionMeta));  // raises the usual error
}

// Operational failure convention: nil plus a reason.
int closed_result(lua_State* L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

int m_send(lua_State* L) {
  Box* box = box_at(L, 1);
  luaL_argexpected(L, lua_istable(L, 2) || lua_type(L, 2) == LUA_TSTRING, 2, "table or string");
  frame::FramePtr frame;
  std::string error;
  if (!to_frame(L, 2, frame, error)) return luaL_argerror(L, 2, error.c_str());
  if (box->session == nullptr) return closed_result(L);
  switch (box->session->send(frame)) {
    case session::SendStatus::Queued: lua_pushboolean(L, 1); return 1;
    case session::SendStatus::Overflow:
      lua_pushnil(L);
      lua_pushliteral(L, "queue full");
      return 2;
    case session::SendStatus::Closed: return closed_result(L);
  }
  return closed_result(L);
}

int m_close(lua_State* L) {
  Box* box = box_at(L, 1);
  const lua_Integer code = luaL_optinteger(L, 2, 1000);
  const char* reason = luaL_optstring(L, 3, "");
  // 1005, 1006 and 1015 must never be sent on the wire (RFC 6455 7.4.1).
  luaL_argcheck(L, (code == 1000 || (code >= 1001 && code <= 1014 && code != 1005 && code != 1006)) ||
                       (code >= 3000 && code <= 4999),
                2, "not a close code a server may send");
  luaL_argcheck(L, std::string_view(reason).size() <= 123, 3, "close reason longer than 123 bytes");
  if (box->session == nullptr) return closed_result(L);
  box->session->close(static_cast<int>(code), reason);
  lua_pushboolean(L, 1);
  return 1;
}

// session:set_expiry(t) -> true | nil, "closed"
// t: Unix seconds (a JWT's exp plus jwt.leeway), or nil to clear. The
// keepalive sweep closes the session with 4001 "token expired" from then on.
// An explicit nil is required to clear: a bare set_expiry() is more likely a
// forgotten argument than a wish to let the session live for ever.
int m_set_expiry(lua_State* L) {
  Box* box = box_at(L, 1);
  std::optional<std::int64_t> at_ms;
  if (!lua_isnil(L, 2)) {
    // Not luaL_checknumber: a string such as "1800000000" is a script's bug.
    luaL_argexpected(L, lua_type(L, 2) == LUA_TNUMBER, 2, "number or nil");
    at_ms = session::Expiry::ms_from_seconds(lua_tonumber(L, 2));
    luaL_argcheck(L, at_ms.has_value(), 2, "expiry is NaN, not a time");
  }
  if (box->session == nullptr) return closed_result(L);
  if (at_ms) {
    box->session->expiry.expire_at(*at_ms);
  } else {
    box->session->expiry.clear();
  }
  lua_pushboolean(L, 1);
  return 1;
}

int m_subscribe(lua_State* L) {
  Box* box = box_at(L, 1);
  const std::string_view channel = check_channel(L, 2);
  if (box->session == nullptr) return closed_result(L);
  const ScriptContext& context = internal_of(L).engine->context();
  if (context.max_channel_length > 0 && channel.size() > static_cast<std::size_t>(context.max_channel_length)) {
    lua_pushnil(L);
    lua_pushfstring(L, "channel name longer than %d bytes", context.max_channel_length);
    return 2;
  }
  // Controls and bidi overrides never belong in a name (pubsub/channel_name.hpp).
  if (const char* problem = pubsub::channel_name_problem(channel)) {
    lua_pushnil(L);
    lua_pushstring(L, problem);
    return 2;
  }
  if (context.max_subscriptions > 0 && !box->session->channels().contains(channel) &&
      box->session->channels().size() >= static_cast<std::size_t>(context.max_subscriptions)) {
    lua_pushnil(L);
    lua_pushfstring(L, "too many subscriptions (limit %d)", context.max_subscriptions);
    return 2;
  }
  pubsub::Position since;
  bool has_since = false;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "since");
    if (!lua_isnil(L, -1)) {
      check_position(L, -1, "since", since);
      has_since = true;
    }
    lua_pop(L, 1);
  }
  pubsub::Broker& broker = hub_of(L);
  pubsub::Subscribed result = broker.subscribe(channel, box->session, has_since ? &since : nullptr);
  lua_pushboolean(L, result.added);
  if (!result.position) return 1;
  lua_createtable(L, 0, 3);
  lua_pushlstring(L, result.position->epoch.data(), result.position->epoch.size());
  lua_setfield(L, -2, "epoch");
  lua_pushinteger(L, static_cast<lua_Integer>(result.position->seq));
  lua_setfield(L, -2, "seq");
  if (result.recovery != pubsub::Recovery::NotAsked) {
    lua_pushboolean(L, result.recovery == pubsub::Recovery::Recovered);
    lua_setfield(L, -2, "recovered");
  }
  {
    // In a history channel the reply (subscribe.ok, with the position) goes
    // first; then, when recovered, what was missed; then every newer
    // publication. The client never sees a seq before it knows where it starts.
    ScriptEngine::Internal& in = internal_of(L);
    if (!box->session->holding()) in.holding.push_back(box->session);
    box->session->hold(std::move(result.missed));
  }
  return 2;
}

int m_unsubscribe(lua_State* L) {
  Box* box = box_at(L, 1);
  const std::string_view channel = check_channel(L, 2);
  if (box->session == nullptr) return closed_result(L);
  lua_pushboolean(L, hub_of(L).unsubscribe(channel, box->session));
  return 1;
}

int m_is_subscribed(lua_State* L) {
  Box* box = box_at(L, 1);
  const std::string_view channel = check_channel(L, 2);
  lua_pushboolean(L, box->session != nullptr && box->session->channels().contains(channel));
  return 1;
}

int m_subscriptions(lua_State* L) {
  Box* box = box_at(L, 1);
  lua_newtable(L);
  if (box->session != nullptr) {
    lua_Integer i = 1;
    for (const auto& channel : box->session->channels()) {
      lua_pushlstring(L, channel.data(), channel.size());
      lua_rawseti(L, -2, i++);
    }
  }
  json::push_array_metatable(L);
  lua_setmetatable(L, -2);
  return 1;
}

// session:upstream_send(message) -> true | nil, "upstream_busy" | "no upstream" | "closed"
int m_upstream_send(lua_State* L) {
  Box* box = box_at(L, 1);
  luaL_argexpected(L, lua_istable(L, 2) || lua_type(L, 2) == LUA_TSTRING, 2, "table or string");
  frame::FramePtr frame;
  std::string error;
  if (!to_frame(L, 2, frame, error)) return luaL_argerror(L, 2, error.c_str());
  if (box->session == nullptr || !box->session->attached()) return closed_result(L);
  if (box->session->upstream == nullptr) {
    lua_pushnil(L);
    lua_pushliteral(L, "no upstream");
    return 2;
  }
  switch (box->session->upstream->upstream_send(frame->payload(), false)) {
    case session::UpstreamSend::Sent: lua_pushboolean(L, 1); return 1;
    case session::UpstreamSend::Busy:
      lua_pushnil(L);
      lua_pushliteral(L, "upstream_busy");
      return 2;
    case session::UpstreamSend::NotConfigured:
      lua_pushnil(L);
      lua_pushliteral(L, "no upstream");
      return 2;
    case session::UpstreamSend::Closed: break;
  }
  lua_pushnil(L);
  lua_pushliteral(L, "upstream closed");
  return 2;
}

int m_upstream_close(lua_State* L) {
  Box* box = box_at(L, 1);
  const lua_Integer code = luaL_optinteger(L, 2, 1000);
  const char* reason = luaL_optstring(L, 3, "");
  luaL_argcheck(L, code == 1000 || (code >= 3000 && code <= 4999), 2, "expected 1000 or 3000..4999");
  if (box->session == nullptr || box->session->upstream == nullptr) return closed_result(L);
  box->session->upstream->upstream_close(static_cast<int>(code), reason);
  lua_pushboolean(L, 1);
  return 1;
}

int m_upstream_connect(lua_State* L) {
  Box* box = box_at(L, 1);
  if (box->session == nullptr || !box->session->attached()) return closed_result(L);
  if (box->session->upstream == nullptr) {
    lua_pushnil(L);
    lua_pushliteral(L, "no upstream");
    return 2;
  }
  box->session->upstream->upstream_connect();
  lua_pushboolean(L, 1);
  return 1;
}

int session_index(lua_State* L) {
  Box* box = box_at(L, 1);
  const std::string_view key = luaL_checkstring(L, 2);
  session::Session* s = box->session;
  if (key == "closed") {
    lua_pushboolean(L, s == nullptr || !s->attached());
    return 1;
  }
  if (key == "attrs") {
    lua_getiuservalue(L, 1, 1);
    return 1;
  }
  // Methods live in the metatable's "methods" table (upvalue 1 of __index).
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  lua_pop(L, 1);
  if (key == "id") {
    lua_getiuservalue(L, 1, 2);
    return 1;
  }
  if (s == nullptr) {
    lua_pushnil(L);
    return 1;
  }
  if (key == "user") {
    if (s->user()) lua_pushlstring(L, s->user()->data(), s->user()->size()); else lua_pushnil(L);
  } else if (key == "endpoint") {
    lua_pushlstring(L, s->info().endpoint.data(), s->info().endpoint.size());
  } else if (key == "path") {
    lua_pushlstring(L, s->info().path.data(), s->info().path.size());
  } else if (key == "remote") {
    lua_pushlstring(L, s->info().remote.data(), s->info().remote.size());
  } else if (key == "upstream") {
    if (s->upstream == nullptr) {
      lua_pushnil(L);
    } else {
      const std::string_view state = s->upstream->upstream_state();
      lua_pushlstring(L, state.data(), state.size());
    }
  } else if (key == "params") {
    push_fields(L, s->info().params);
  } else if (key == "headers") {
    push_fields(L, s->info().headers);
  } else if (key == "query") {
    push_fields(L, http::parse_query(s->info().query));
  } else if (key == "cookies") {
    const std::string* cookie = http::find_field(s->info().headers, "cookie");
    push_fields(L, cookie != nullptr ? http::parse_cookies(*cookie) : http::Fields{});
  } else {
    lua_pushnil(L);
  }
  return 1;
}

int session_newindex(lua_State* L) {
  Box* box = box_at(L, 1);
  const std::string_view key = luaL_checkstring(L, 2);
  if (key == "user") {
    luaL_argexpected(L, lua_isnil(L, 3) || lua_type(L, 3) == LUA_TSTRING, 3, "string or nil");
    if (box->session == nullptr) return 0;
    session::Session& s = *box->session;
    if (lua_isnil(L, 3)) {
      if (s.user()) log::info("auth: signed out (was " + *s.user() + ")", session::log_fields(s));
      s.set_user(std::nullopt);
    } else {
      size_t len = 0;
      const char* user = lua_tolstring(L, 3, &len);
      const bool changed = !s.user() || *s.user() != std::string_view(user, len);
      s.set_user(std::string(user, len));
      // One line per sign-in, carrying the new user (as every later line does).
      if (changed) log::info("auth: signed in", session::log_fields(s));
    }
    return 0;
  }
  return luaL_error(L, "session.%s is read-only (keep your own data in session.attrs)",
                    std::string(key).c_str());
}

int session_tostring(lua_State* L) {
  lua_getiuservalue(L, 1, 2);
  lua_pushfstring(L, "session %s", lua_tostring(L, -1));
  return 1;
}

}  // namespace

void open_session_bridge(lua_State* L) {
  luaL_newmetatable(L, kSessionMeta);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kSessionMetaKey);
  lua_pushcfunction(L, trampoline<session_newindex>);
  lua_setfield(L, -2, "__newindex");
  lua_pushcfunction(L, trampoline<session_tostring>);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "session");
  lua_setfield(L, -2, "__name");
  const luaL_Reg methods[] = {
      {"send", trampoline<m_send>},
      {"close", trampoline<m_close>},
      {"set_expiry", trampoline<m_set_expiry>},
      {"subscribe", trampoline<m_subscribe>},
      {"unsubscribe", trampoline<m_unsubscribe>},
      {"is_subscribed", trampoline<m_is_subscribed>},
      {"subscriptions", trampoline<m_subscriptions>},
      {"upstream_send", trampoline<m_upstream_send>},
      {"upstream_close", trampoline<m_upstream_close>},
      {"upstream_connect", trampoline<m_upstream_connect>},
      {nullptr, nullptr}};
  luaL_newlib(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_pushcclosure(L, trampoline<session_index>, 1);  // the methods table as its upvalue
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");  // scripts cannot swap the session's behaviour
  lua_pop(L, 1);
}

void push_session(lua_State* L, session::Session& s) {
  if (s.script_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, s.script_ref);
    return;
  }
  auto* box = static_cast<Box*>(lua_newuserdatauv(L, sizeof(Box), 2));
  box->session = &s;
  luaL_setmetatable(L, kSessionMeta);
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  lua_pushlstring(L, s.id().data(), s.id().size());
  lua_setiuservalue(L, -2, 2);
  lua_pushvalue(L, -1);
  s.script_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

session::Session* to_session(lua_State* L, int index) {
  auto* box = static_cast<Box*>(luaL_testudata(L, index, kSessionMeta));
  return box != nullptr ? box->session : nullptr;
}

session::Session* check_session(lua_State* L, int index) {
  Box* box = box_at(L, index);
  if (box->session == nullptr) luaL_argerror(L, index, "session is closed");
  return box->session;
}

void release_session(lua_State* L, session::Session& s) {
  if (s.script_ref == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, s.script_ref);
  if (auto* box = static_cast<Box*>(luaL_testudata(L, -1, kSessionMeta))) box->session = nullptr;
  lua_pop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, s.script_ref);
  s.script_ref = LUA_NOREF;
}

bool to_frame(lua_State* L, int index, frame::FramePtr& frame, std::string& error) {
  if (lua_type(L, index) == LUA_TSTRING) {
    size_t len = 0;
    const char* text = lua_tolstring(L, index, &len);
    frame = frame::Frame::text(std::string_view(text, len));
    return true;
  }
  if (!lua_istable(L, index)) {
    error = std::string("cannot send a ") + luaL_typename(L, index);
    return false;
  }
  // Encoded into a buffer kept from one message to the next (the encoder
  // never calls back into Lua, so it is never in use twice), then copied
  // into the frame's single allocation: a copy of a few hundred bytes is
  // cheaper than growing a fresh string per message.
  static std::string scratch;
  constexpr std::size_t kKeepCapacity = 64 * 1024;
  scratch.clear();
  const bool ok = json::encode_lua(L, index, scratch, error);
  if (ok) frame = frame::Frame::text(scratch);
  if (scratch.capacity() > kKeepCapacity) std::string().swap(scratch);
  return ok;
}

}  // namespace wsrelay::script
