// bridge_json: relay.json.encode/decode/array and relay.null.
#include "json/json.hpp"
#include "json/lua_json.hpp"
#include "script/engine_internal.hpp"

namespace wsrelay::script {
namespace {

int json_encode(lua_State* L) {
  luaL_checkany(L, 1);
  std::string out, error;
  if (!json::encode_lua(L, 1, out, error)) {
    lua_pushnil(L);
    lua_pushstring(L, error.c_str());
    return 2;
  }
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

int json_decode(lua_State* L) {
  size_t len = 0;
  const char* text = luaL_checklstring(L, 1, &len);
  std::size_t at = 0;
  json::JsonPtr root = json::parse(std::string_view(text, len), &at);
  if (root == nullptr) {
    lua_pushnil(L);
    lua_pushfstring(L, "invalid JSON at byte %d", static_cast<int>(at));
    return 2;
  }
  json::push_json(L, root.get());
  return 1;
}

int json_array(lua_State* L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  json::push_array_metatable(L);
  lua_setmetatable(L, 1);
  return 1;
}

// relay.json.raw(text): embeds text (already JSON) verbatim when encoded. The
// text is checked once here so a bad value cannot corrupt every frame it is
// put in.
int json_raw(lua_State* L) {
  size_t len = 0;
  const char* text = luaL_checklstring(L, 1, &len);
  if (json::parse(std::string_view(text, len)) == nullptr) {
    return luaL_argerror(L, 1, "not valid JSON");
  }
  // A userdata, not a table: the text cannot be swapped after the check.
  lua_newuserdatauv(L, 0, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  json::push_raw_metatable(L);
  lua_setmetatable(L, -2);
  return 1;
}

}  // namespace

void open_relay_json(lua_State* L) {
  const luaL_Reg functions[] = {{"encode", trampoline<json_encode>},
                                {"decode", trampoline<json_decode>},
                                {"array", trampoline<json_array>},
                                {"raw", trampoline<json_raw>},
                                {nullptr, nullptr}};
  luaL_newlib(L, functions);
  json::push_null(L);
  lua_setfield(L, -2, "null");
  lua_setfield(L, -2, "json");
  json::push_null(L);
  lua_setfield(L, -2, "null");
}

}  // namespace wsrelay::script
