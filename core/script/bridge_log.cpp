// bridge_log: relay.log(level, ...) — one line, prefixed with the script name;
// with a session as the second argument the line carries its id, user and
// endpoint.
#include "script/engine_internal.hpp"
#include "session/log_fields.hpp"
#include "util/log.hpp"

namespace wsrelay::script {
namespace {

int relay_log(lua_State* L) {
  const char* level_name = luaL_checkstring(L, 1);
  const auto level = log::parse_level(level_name);
  if (!level) return luaL_argerror(L, 1, "level must be debug, info, warn or error");
  int first = 2;
  session::Session* about = to_session(L, 2);
  if (about != nullptr) first = 3;
  if (!log::enabled(*level)) return 0;
  std::string line = internal_of(L).engine->name() + ":";
  const int top = lua_gettop(L);
  for (int i = first; i <= top; ++i) {
    size_t len = 0;
    const char* text = luaL_tolstring(L, i, &len);
    line.push_back(' ');
    line.append(text, len);
    lua_pop(L, 1);
  }
  if (about != nullptr) {
    log::write(*level, session::log_fields(*about), line);
  } else {
    log::write(*level, std::string_view(), line);
  }
  return 0;
}

}  // namespace

void open_relay_log(lua_State* L) {
  lua_pushcfunction(L, trampoline<relay_log>);
  lua_setfield(L, -2, "log");
}

}  // namespace wsrelay::script
