// bridge_core: relay.send, relay.session, relay.stats, relay.config, relay.options.
#include "json/json.hpp"
#include "json/lua_json.hpp"
#include "script/engine_internal.hpp"

#include <chrono>

namespace wsrelay::script {
namespace {

const ScriptContext& ctx(lua_State* L) { return internal_of(L).engine->context(); }

// A session of this script, given as the userdata or its id.
session::Session* find_target(lua_State* L, int index) {
  if (lua_type(L, index) == LUA_TSTRING) {
    if (ctx(L).registry == nullptr) return nullptr;
    return ctx(L).registry->find(lua_tostring(L, index));
  }
  if (lua_type(L, index) == LUA_TUSERDATA) return to_session(L, index);
  luaL_argexpected(L, false, index, "session or session id");
  return nullptr;
}

int relay_send(lua_State* L) {
  luaL_argexpected(L, lua_istable(L, 2) || lua_type(L, 2) == LUA_TSTRING, 2, "table or string");
  frame::FramePtr frame;
  std::string error;
  if (!to_frame(L, 2, frame, error)) return luaL_argerror(L, 2, error.c_str());
  session::Session* target = find_target(L, 1);
  if (target == nullptr) {
    lua_pushnil(L);
    lua_pushliteral(L, "no such session");
    return 2;
  }
  switch (target->send(frame)) {
    case session::SendStatus::Queued: break;
    case session::SendStatus::Overflow:
      lua_pushnil(L);
      lua_pushliteral(L, "queue full");
      return 2;
    case session::SendStatus::Closed:
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int relay_session(lua_State* L) {
  const char* id = luaL_checkstring(L, 1);
  session::Session* s = ctx(L).registry != nullptr ? ctx(L).registry->find(id) : nullptr;
  // Only sessions of this endpoint have a value in this script's state.
  if (s == nullptr || s->info().endpoint != ctx(L).endpoint || s->script_ref == LUA_NOREF) {
    lua_pushnil(L);
    return 1;
  }
  push_session(L, *s);
  return 1;
}

// relay.sessions() -> array of this endpoint's open sessions (for status routes).
int relay_sessions(lua_State* L) {
  lua_newtable(L);
  if (ctx(L).registry == nullptr) return 1;
  lua_Integer i = 1;
  ctx(L).registry->for_each([&](session::Session& s) {
    if (s.info().endpoint != ctx(L).endpoint || s.script_ref == LUA_NOREF || !s.attached()) return;
    push_session(L, s);
    lua_rawseti(L, -2, i++);
  });
  return 1;
}

// relay.secure_compare(a, b): constant-time string equality, for tokens.
int relay_secure_compare(lua_State* L) {
  size_t la = 0, lb = 0;
  const char* a = luaL_checklstring(L, 1, &la);
  const char* b = luaL_checklstring(L, 2, &lb);
  unsigned char diff = la == lb ? 0 : 1;
  const size_t n = la < lb ? la : lb;
  for (size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  lua_pushboolean(L, diff == 0 && la > 0);
  return 1;
}

int relay_stats(lua_State* L) {
  lua_createtable(L, 0, 8);
  if (const stats::Stats* stats = ctx(L).stats) {
    lua_pushinteger(L, static_cast<lua_Integer>(stats->connections));
    lua_setfield(L, -2, "connections");
    lua_pushinteger(L, static_cast<lua_Integer>(stats->messages_in));
    lua_setfield(L, -2, "messages_in");
    lua_pushinteger(L, static_cast<lua_Integer>(stats->messages_out));
    lua_setfield(L, -2, "messages_out");
    const auto up = std::chrono::steady_clock::now() - stats->started;
    lua_pushinteger(L, std::chrono::duration_cast<std::chrono::seconds>(up).count());
    lua_setfield(L, -2, "uptime_s");
    lua_pushinteger(L, static_cast<lua_Integer>(stats->upstream_links));
    lua_setfield(L, -2, "upstream_links");
  }
  if (const pubsub::Hub* hub = ctx(L).hub) {
    lua_pushinteger(L, static_cast<lua_Integer>(hub->channel_count()));
    lua_setfield(L, -2, "channels");
  }
  return 1;
}

}  // namespace

void open_relay_core(lua_State* L) {
  const luaL_Reg functions[] = {{"send", trampoline<relay_send>},
                                {"session", trampoline<relay_session>},
                                {"stats", trampoline<relay_stats>},
                                {"sessions", trampoline<relay_sessions>},
                                {"secure_compare", trampoline<relay_secure_compare>},
                                {nullptr, nullptr}};
  luaL_setfuncs(L, functions, 0);

  const ScriptContext& c = ctx(L);
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, c.endpoint.data(), c.endpoint.size());
  lua_setfield(L, -2, "endpoint");
  lua_pushinteger(L, c.heartbeat_interval_s);
  lua_setfield(L, -2, "heartbeat_interval");
  lua_pushinteger(L, c.heartbeat_timeout_s);
  lua_setfield(L, -2, "heartbeat_timeout");
  lua_pushinteger(L, static_cast<lua_Integer>(c.max_message_size));
  lua_setfield(L, -2, "max_message_size");
  lua_setfield(L, -2, "config");

  json::JsonPtr options = json::parse(c.options_json);
  if (options != nullptr && cJSON_IsObject(options.get())) {
    json::push_json(L, options.get());
  } else {
    lua_newtable(L);
  }
  lua_setfield(L, -2, "options");
}

}  // namespace wsrelay::script
