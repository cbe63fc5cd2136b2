// bridge_jwt: relay.jwt.verify(token) -> claims | nil, reason; relay.jwt.enabled().
// The secret and claim rules come from the config, never from the script.
#include "json/json.hpp"
#include "json/lua_json.hpp"
#include "script/engine_internal.hpp"

#include <chrono>

namespace wsrelay::script {
namespace {

int jwt_enabled(lua_State* L) {
  lua_pushboolean(L, !internal_of(L).engine->context().jwt.secret.empty());
  return 1;
}

int jwt_verify(lua_State* L) {
  size_t len = 0;
  const char* token = luaL_checklstring(L, 1, &len);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  const auth::JwtResult result =
      auth::verify_hs256(std::string_view(token, len), internal_of(L).engine->context().jwt, now);
  if (!result.ok) {
    lua_pushnil(L);
    lua_pushlstring(L, result.error.data(), result.error.size());
    return 2;
  }
  json::JsonPtr claims = json::parse(result.claims_json);
  if (claims == nullptr) {
    lua_pushnil(L);
    lua_pushliteral(L, "malformed token");
    return 2;
  }
  json::push_json(L, claims.get());
  return 1;
}

}  // namespace

void open_relay_jwt(lua_State* L) {
  const luaL_Reg functions[] = {{"verify", trampoline<jwt_verify>},
                                {"enabled", trampoline<jwt_enabled>},
                                {nullptr, nullptr}};
  luaL_newlib(L, functions);
  lua_setfield(L, -2, "jwt");
}

}  // namespace wsrelay::script
