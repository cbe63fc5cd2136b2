// bridge_pubsub: relay.publish, relay.subscribers, relay.next_seq, relay.channels.
// A publish is encoded once; every subscriber's queue shares the frame.
#include "script/engine_internal.hpp"

namespace wsrelay::script {
namespace {

pubsub::Hub& hub_of(lua_State* L) {
  pubsub::Hub* hub = internal_of(L).engine->context().hub;
  if (hub == nullptr) luaL_error(L, "no channel hub in this context");
  return *hub;
}

std::string_view check_channel(lua_State* L, int index) {
  size_t len = 0;
  const char* name = luaL_checklstring(L, index, &len);
  if (len == 0) luaL_argerror(L, index, "channel name must not be empty");
  return {name, len};
}

// relay.publish(channel, message [, {exclude = session}]) -> delivered count
int relay_publish(lua_State* L) {
  const std::string_view channel = check_channel(L, 1);
  luaL_argexpected(L, lua_istable(L, 2) || lua_type(L, 2) == LUA_TSTRING, 2, "table or string");
  const session::Session* exclude = nullptr;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "exclude");
    if (!lua_isnil(L, -1)) {
      exclude = to_session(L, -1);
      if (exclude == nullptr && lua_type(L, -1) != LUA_TUSERDATA) {
        return luaL_argerror(L, 3, "exclude must be a session");
      }
    }
    lua_pop(L, 1);
  }
  frame::FramePtr frame;
  std::string error;
  if (!to_frame(L, 2, frame, error)) return luaL_argerror(L, 2, error.c_str());
  pubsub::Broker& broker = hub_of(L);
  lua_pushinteger(L, static_cast<lua_Integer>(broker.publish(channel, frame, exclude)));
  return 1;
}

int relay_subscribers(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(hub_of(L).subscriber_count(check_channel(L, 1))));
  return 1;
}

int relay_next_seq(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(hub_of(L).next_seq(check_channel(L, 1))));
  return 1;
}

int relay_channels(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(hub_of(L).channel_count()));
  return 1;
}

}  // namespace

void open_relay_pubsub(lua_State* L) {
  const luaL_Reg functions[] = {{"publish", trampoline<relay_publish>},
                                {"subscribers", trampoline<relay_subscribers>},
                                {"next_seq", trampoline<relay_next_seq>},
                                {"channels", trampoline<relay_channels>},
                                {nullptr, nullptr}};
  luaL_setfuncs(L, functions, 0);
}

}  // namespace wsrelay::script
