// The one JSON rule (json/strict.hpp, issue 12): repeated keys, numbers no
// double or int64 holds and leading zeros are refused with their place;
// integers beyond 2^53 reach Lua and print back exactly; the JWT verifier
// follows the same rule.
#include <catch2/catch.hpp>

#include "auth/base64url.hpp"
#include "auth/jwt.hpp"
#include "json/json.hpp"
#include "json/lua_json.hpp"
#include "json/strict.hpp"

#include <lua.hpp>

#include <memory>
#include <string>

namespace json = wsrelay::json;

namespace {

struct LuaCloser {
  void operator()(lua_State* L) const noexcept { lua_close(L); }
};

// The client-facing reason json::parse gives, or "ok".
std::string reason_of(std::string_view text) {
  std::string reason;
  std::size_t at = 0;
  const json::JsonPtr root = json::parse(text, &at, &reason);
  return root ? "ok" : reason;
}

}  // namespace

TEST_CASE("strict: a repeated key is refused, naming the key and its byte", "[json][strict]") {
  CHECK(reason_of(R"({"type":"heartbeat","type":"chat"})") == R"(duplicate key "type" at byte 20)");
  // Compared after unescaping: \u0074ype is "type".
  CHECK(reason_of(R"({"type":1,"\u0074ype":2})") == R"(duplicate key "type" at byte 10)");
  // Nested objects have their own key sets; arrays of objects too.
  CHECK(reason_of(R"({"a":{"a":1},"b":[{"a":1},{"a":2}]})") == "ok");
  CHECK(reason_of(R"({"a":{"x":1,"x":2}})") == R"(duplicate key "x" at byte 12)");
  // Large objects switch to a hash set: still found, also past that point.
  std::string big = "{";
  for (int i = 0; i < 100; ++i) big += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  CHECK(reason_of(big + "\"k99\":0}").rfind("duplicate key \"k99\" at byte ", 0) == 0);
  CHECK(reason_of(big + "\"k3\":0}").rfind("duplicate key \"k3\" at byte ", 0) == 0);
  CHECK(reason_of(big + "\"k100\":0}") == "ok");
}

TEST_CASE("strict: numbers no double holds and leading zeros are refused", "[json][strict]") {
  CHECK(reason_of(R"({"n":1e400})") == "number out of range at byte 5");
  CHECK(reason_of(R"({"n":-1e400})") == "number out of range at byte 5");
  CHECK(reason_of("1e308") == "ok");
  CHECK(reason_of("1e-400") == "ok");  // underflows to 0: a double holds that
  CHECK(reason_of(R"({"n":01})") == "invalid number (leading zero) at byte 5");
  CHECK(reason_of(R"({"n":-01})") == "invalid number (leading zero) at byte 5");
  CHECK(reason_of(R"([0,-0,0.5,-0.5e3])") == "ok");
  CHECK(reason_of("9223372036854775807") == "ok");
  CHECK(reason_of("-9223372036854775808") == "ok");
  CHECK(reason_of(R"({"id":9223372036854775808})") ==
        "number out of range (integers must fit in 64 bits) at byte 6");
  CHECK(reason_of("9223372036854775809") == "number out of range (integers must fit in 64 bits) at byte 0");
  CHECK(reason_of("-9223372036854775809") == "number out of range (integers must fit in 64 bits) at byte 0");
}

TEST_CASE("strict: plain syntax errors keep cJSON's description", "[json][strict]") {
  CHECK(reason_of("{") == "invalid JSON at byte 0 (or nested deeper than 1000 levels)");
  // cJSON takes these; the grammar does not.
  CHECK(reason_of("1.") == "invalid JSON at byte 0 (invalid number (digit expected after '.'))");
  CHECK(reason_of("[1,]").rfind("invalid JSON at byte", 0) == 0);
  CHECK(reason_of(std::string(1000, '[') + std::string(1000, ']')) == "ok");
}

TEST_CASE("strict: the validator alone, with big integers in document order", "[json][strict]") {
  std::vector<json::BigInteger> big;
  json::StrictError error;
  REQUIRE(json::validate_strict(R"([1,{"a":9007199254740993,"b":[2,-9223372036854775808]},9007199254740992])",
                                &error, &big));
  REQUIRE(big.size() == 2);  // 2^53 itself is exact in a double
  CHECK(big[0].ordinal == 1);
  CHECK(big[0].literal == "9007199254740993");
  CHECK(big[1].ordinal == 3);
  CHECK(big[1].value == INT64_MIN);
  CHECK_FALSE(json::validate_strict("[1] x", &error));
  CHECK(error.offset == 4);
  CHECK_FALSE(error.strict_rule);
}

TEST_CASE("strict: integers beyond 2^53 reach Lua and print back exactly", "[json][strict]") {
  const std::string text = R"({"a":9007199254740993,"b":[-9223372036854775808,9223372036854775807],"c":1.5})";
  const json::JsonPtr root = json::parse(text);
  REQUIRE(root);
  CHECK(json::print(root.get()) == text);
  const cJSON* a = cJSON_GetObjectItemCaseSensitive(root.get(), "a");
  CHECK(json::print(a) == "9007199254740993");
  REQUIRE(json::exact_integer(a) != nullptr);

  std::unique_ptr<lua_State, LuaCloser> state(luaL_newstate());
  lua_State* L = state.get();
  json::push_json(L, root.get());
  lua_getfield(L, -1, "a");
  REQUIRE(lua_isinteger(L, -1));
  CHECK(lua_tointeger(L, -1) == 9007199254740993LL);
  lua_pop(L, 1);
  lua_getfield(L, -1, "b");
  lua_rawgeti(L, -1, 1);
  CHECK(lua_tointeger(L, -1) == INT64_MIN);
  lua_rawgeti(L, -2, 2);
  CHECK(lua_tointeger(L, -1) == INT64_MAX);
}

TEST_CASE("strict: the JWT verifier refuses repeated claims and header members", "[json][strict][jwt]") {
  using wsrelay::auth::sign_hs256;
  using wsrelay::auth::verify_hs256;
  wsrelay::auth::JwtOptions options;
  options.secret = "s";
  const auto ok = verify_hs256(sign_hs256(R"({"sub":"ann"})", "s"), options, 0);
  CHECK(ok.ok);
  const auto twice = verify_hs256(sign_hs256(R"({"sub":"ann","sub":"root"})", "s"), options, 0);
  CHECK_FALSE(twice.ok);
  CHECK(twice.error == "malformed token");
  const auto far = verify_hs256(sign_hs256(R"({"sub":"ann","exp":1e400})", "s"), options, 0);
  CHECK_FALSE(far.ok);
}
