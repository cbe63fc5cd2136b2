// bridge_time: relay.now() (integer ms since the epoch) and relay.time()
// (float seconds since the epoch, for dialects that stamp unix seconds).
#include "script/engine_internal.hpp"

#include <chrono>

namespace wsrelay::script {
namespace {

int relay_now(lua_State* L) {
  using namespace std::chrono;
  lua_pushinteger(L, duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
  return 1;
}

int relay_time(lua_State* L) {
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  lua_pushnumber(L, static_cast<lua_Number>(us) / 1e6);
  return 1;
}

}  // namespace

void open_relay_time(lua_State* L) {
  lua_pushcfunction(L, relay_now);
  lua_setfield(L, -2, "now");
  lua_pushcfunction(L, relay_time);
  lua_setfield(L, -2, "time");
}

}  // namespace wsrelay::script
