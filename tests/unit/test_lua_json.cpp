// Unit tests for core/json: JSON text / cJSON ⇄ Lua values, on a bare
// lua_State (luaL_newstate + install_lua_json), without the script engine.
#include <catch2/catch.hpp>

#include "json/json.hpp"
#include "json/lua_json.hpp"

#include <lua.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace json = wsrelay::json;

namespace {

struct LuaCloser {
  void operator()(lua_State* L) const noexcept { lua_close(L); }
};

// A bare state with the standard libraries (only to build values in Lua), the
// JSON array metatable, and two globals: `null` (the sentinel) and
// `array(t)` (marks t as a JSON array, like relay.json.array).
class LuaJson {
 public:
  LuaJson() : state_(luaL_newstate()) {
    REQUIRE(state_ != nullptr);
    luaL_openlibs(L());
    json::install_lua_json(L());
    json::push_null(L());
    lua_setglobal(L(), "null");
    lua_pushcfunction(L(), [](lua_State* L) -> int {
      luaL_checktype(L, 1, LUA_TTABLE);
      lua_settop(L, 1);
      json::push_array_metatable(L);
      lua_setmetatable(L, 1);
      return 1;
    });
    lua_setglobal(L(), "array");
  }

  lua_State* L() const { return state_.get(); }

  // Parses text and pushes the Lua value (inside a pcall, as push_json may
  // raise on memory errors).
  void push_decoded(std::string_view text) {
    json::JsonPtr root = json::parse(text);
    INFO("JSON: " << text);
    REQUIRE(root != nullptr);
    lua_pushcfunction(L(), [](lua_State* L) -> int {
      json::push_json(L, static_cast<const cJSON*>(lua_touserdata(L, 1)));
      return 1;
    });
    lua_pushlightuserdata(L(), root.get());
    REQUIRE(lua_pcall(L(), 1, 1, 0) == LUA_OK);
  }

  // Evaluates a Lua chunk that returns one value and pushes it.
  void push_lua(const std::string& chunk) {
    INFO("Lua: " << chunk);
    if (luaL_dostring(L(), chunk.c_str()) != LUA_OK) {
      FAIL("Lua error: " << lua_tostring(L(), -1));
    }
    REQUIRE(lua_gettop(L()) >= 1);
    lua_settop(L(), 1);
  }

  struct Encoded {
    bool ok;
    std::string text;
    std::string error;
  };

  // Encodes the value on top, pops it, and checks the stack is left as found.
  Encoded encode_top() {
    Encoded e{false, {}, {}};
    const int top = lua_gettop(L());
    e.ok = json::encode_lua(L(), -1, e.text, e.error);
    CHECK(lua_gettop(L()) == top);
    lua_pop(L(), 1);
    return e;
  }

  // JSON text → Lua → JSON text.
  std::string round_trip(std::string_view text) {
    push_decoded(text);
    Encoded e = encode_top();
    INFO("error: " << e.error);
    REQUIRE(e.ok);
    return e.text;
  }

  Encoded encode_lua(const std::string& chunk) {
    push_lua(chunk);
    return encode_top();
  }

  std::string encode_ok(const std::string& chunk) {
    Encoded e = encode_lua(chunk);
    INFO("Lua: " << chunk << "\nerror: " << e.error);
    REQUIRE(e.ok);
    return e.text;
  }

  std::string encode_error(const std::string& chunk) {
    Encoded e = encode_lua(chunk);
    INFO("Lua: " << chunk << "\nencoded as: " << e.text);
    REQUIRE_FALSE(e.ok);
    return e.error;
  }

  // Runs `check` (a Lua chunk returning a boolean) with the decoded value of
  // text as the global `v`.
  bool check_decoded(std::string_view text, const std::string& check) {
    push_decoded(text);
    lua_setglobal(L(), "v");
    push_lua(check);
    const bool result = lua_toboolean(L(), -1);
    lua_pop(L(), 1);
    return result;
  }

 private:
  std::unique_ptr<lua_State, LuaCloser> state_;
};

bool same_json(std::string_view a, std::string_view b) {
  json::JsonPtr x = json::parse(a);
  json::JsonPtr y = json::parse(b);
  return x != nullptr && y != nullptr && cJSON_Compare(x.get(), y.get(), 1);
}

std::string nested_arrays(int levels) {
  return std::string(static_cast<std::size_t>(levels), '[') + std::string(static_cast<std::size_t>(levels), ']');
}

}  // namespace

TEST_CASE("json: scalars round trip exactly", "[json]") {
  LuaJson j;
  CHECK(j.round_trip("true") == "true");
  CHECK(j.round_trip("false") == "false");
  CHECK(j.round_trip("null") == "null");
  CHECK(j.round_trip("\"hello\"") == "\"hello\"");
  CHECK(j.round_trip("0") == "0");
  CHECK(j.round_trip("42") == "42");
  CHECK(j.round_trip("-17") == "-17");
  CHECK(j.round_trip(" 7 \n") == "7");
}

TEST_CASE("json: integers stay integers up to 2^53, floats print in shortest form", "[json]") {
  LuaJson j;
  CHECK(j.round_trip("9007199254740992") == "9007199254740992");
  CHECK(j.round_trip("-9007199254740992") == "-9007199254740992");
  CHECK(j.round_trip("2.5") == "2.5");
  CHECK(j.round_trip("-0.125") == "-0.125");
  CHECK(j.round_trip("0.1") == "0.1");
  // std::to_chars' shortest form: printf-style two-digit exponent. Valid JSON
  // and exact: it parses back to the same double.
  CHECK(j.round_trip("1e-7") == "1e-07");
  CHECK(json::parse("1e-07")->valuedouble == 1e-7);
  CHECK(j.round_trip("1.5e300") == "1.5e+300");
  // Integral values become Lua integers, so 1.0 prints back as 1.
  CHECK(j.round_trip("1.0") == "1");
  CHECK(j.round_trip("[1e2]") == "[100]");
  // Lua floats with an integral value print as integers while they fit in
  // 64 bits (docs/lua-api.md); beyond, the shortest float form.
  CHECK(j.encode_ok("return 3.0") == "3");
  CHECK(j.encode_ok("return 1e18") == "1000000000000000000");
  CHECK(j.encode_ok("return -2.0^63") == "-9223372036854775808");
  // Past 2^63 it is a float: std::to_chars' shortest form, here the plain
  // digits (shorter than 9.223372036854776e+18), and 1e300 with an exponent.
  CHECK(j.encode_ok("return 2.0^63") == "9223372036854775808");
  CHECK(j.encode_ok("return 1e300") == "1e+300");
  CHECK(j.encode_ok("return 0.5") == "0.5");

  CHECK(j.check_decoded("42", "return math.type(v) == 'integer' and v == 42"));
  CHECK(j.check_decoded("-9007199254740992", "return math.type(v) == 'integer' and v == -(1 << 53)"));
  CHECK(j.check_decoded("2.5", "return math.type(v) == 'float' and v == 2.5"));
  // Beyond 2^53 a double is no longer exact: stays a float.
  CHECK(j.check_decoded("1e20", "return math.type(v) == 'float'"));
}

TEST_CASE("json: arrays and objects round trip, empty ones keep their kind", "[json]") {
  LuaJson j;
  CHECK(j.round_trip("[]") == "[]");
  CHECK(j.round_trip("{}") == "{}");
  CHECK(j.round_trip("[1,2,3]") == "[1,2,3]");
  CHECK(j.round_trip("[true,false,null]") == "[true,false,null]");
  CHECK(j.round_trip("[[],[{}],[[]]]") == "[[],[{}],[[]]]");
  CHECK(j.round_trip("{\"a\":null}") == "{\"a\":null}");
  CHECK(j.round_trip("{\"list\":[]}") == "{\"list\":[]}");
  CHECK(j.round_trip("{\"obj\":{}}") == "{\"obj\":{}}");
  CHECK(j.round_trip("[null,null]") == "[null,null]");

  const std::string nested =
      R"({"a":1,"b":[1,2,{"c":[],"d":{}}],"e":{"f":{"g":[true,null,"x"]}},"h":-3.25,"i":""})";
  const std::string out = j.round_trip(nested);
  INFO(out);
  CHECK(same_json(out, nested));

  // The decoded values are what a script expects.
  CHECK(j.check_decoded("[10,20]", "return #v == 2 and v[1] == 10 and v[2] == 20"));
  CHECK(j.check_decoded("{\"a\":null}", "return v.a == null"));
  CHECK(j.check_decoded("{\"t\":true,\"f\":false}", "return v.t == true and v.f == false"));
  CHECK(j.check_decoded("[]", "return next(v) == nil and getmetatable(v) ~= nil"));
  CHECK(j.check_decoded("{}", "return next(v) == nil and getmetatable(v) == nil"));
}

TEST_CASE("json: strings — unicode, escapes, control characters", "[json]") {
  LuaJson j;
  // \u escapes decode to UTF-8 and are emitted as raw UTF-8.
  CHECK(j.round_trip(R"("caf\u00e9")") == "\"caf\xC3\xA9\"");
  CHECK(j.round_trip("\"caf\xC3\xA9 \xE2\x82\xAC\"") == "\"caf\xC3\xA9 \xE2\x82\xAC\"");
  CHECK(j.round_trip(R"("\ud83d\ude00")") == "\"\xF0\x9F\x98\x80\"");
  CHECK(j.round_trip(R"("say \"hi\" \\ bye")") == R"("say \"hi\" \\ bye")");
  CHECK(j.round_trip(R"("a\/b")") == "\"a/b\"");
  CHECK(j.round_trip(R"("\b\f\n\r\t")") == R"("\b\f\n\r\t")");
  CHECK(j.round_trip(R"("\u0001\u001f\u0007")") == R"("\u0001\u001f\u0007")");
  // DEL (0x7f) needs no escape in JSON.
  CHECK(j.round_trip(R"("\u007f")") == "\"\x7f\"");
  CHECK(j.check_decoded(R"("caf\u00e9")", "return v == 'caf\\u{e9}' and #v == 5"));

  // From Lua: bytes JSON must escape, including an embedded NUL.
  CHECK(j.encode_ok(R"(return "a\0b\1c\31d\127")") == "\"a\\u0000b\\u0001c\\u001fd\x7f\"");
  CHECK(j.encode_ok(R"(return "quote\" backslash\\ nl\n")") == R"("quote\" backslash\\ nl\n")");
  // Keys are escaped too.
  CHECK(j.encode_ok(R"(return {["k\"\n"] = 1})") == R"({"k\"\n":1})");
}

TEST_CASE("json: Lua tables — arrays are exactly 1..n", "[json]") {
  LuaJson j;
  CHECK(j.encode_ok("return {1, 2, 3}") == "[1,2,3]");
  CHECK(j.encode_ok("return {'a', {'b'}, {}}") == "[\"a\",[\"b\"],{}]");
  CHECK(j.encode_ok("return {[1] = 'x', [2] = 'y'}") == "[\"x\",\"y\"]");
  CHECK(j.encode_ok("return {}") == "{}");
  CHECK(j.encode_ok("return {a = 1}") == "{\"a\":1}");
  CHECK(j.encode_ok("return {3, 3.0, 2.5, -0.5}") == "[3,3,2.5,-0.5]");
  CHECK(j.encode_ok("return math.maxinteger") == "9223372036854775807");
  CHECK(j.encode_ok("return math.mininteger") == "-9223372036854775808");
  CHECK(j.encode_ok("return {null, true, false}") == "[null,true,false]");
  // The array metatable turns an empty table into [].
  CHECK(j.encode_ok("return array({})") == "[]");
  CHECK(same_json(j.encode_ok("return {list = array({}), obj = {}}"), R"({"list":[],"obj":{}})"));
  CHECK(j.encode_ok("return array({7, 8})") == "[7,8]");
  CHECK(same_json(j.encode_ok("return {x = 1, y = 'two', z = {w = true}}"), R"({"x":1,"y":"two","z":{"w":true}})"));
  // A decoded array modified in Lua stays an array.
  j.push_decoded("[]");
  lua_setglobal(j.L(), "v");
  CHECK(j.encode_ok("table.insert(v, 5); return v") == "[5]");
}

TEST_CASE("json: encode errors name the field path", "[json]") {
  LuaJson j;
  CHECK(j.encode_error("return {a = {b = {1, 2, x = 3}}}") ==
        "field 'a.b': cannot encode a table mixing array and non-string keys");
  CHECK(j.encode_error("return {1, 2, x = 3}") == "cannot encode a table mixing array and non-string keys");
  CHECK(j.encode_error("return {[1] = 'a', [3] = 'c'}") ==
        "cannot encode a table mixing array and non-string keys");
  CHECK(j.encode_error("return {[1.5] = 'a'}") == "cannot encode a table mixing array and non-string keys");
  CHECK(j.encode_error("return {a = {f = function() end}}") == "field 'a.f': cannot encode a function");
  CHECK(j.encode_error("return {list = {1, function() end}}") == "field 'list[2]': cannot encode a function");
  CHECK(j.encode_error("return {{}, {{x = print}}}") == "field '[2][1].x': cannot encode a function");
  CHECK(j.encode_error("return function() end") == "cannot encode a function");
  CHECK(j.encode_error("return {x = 0/0}") == "field 'x': cannot encode NaN or infinity");
  CHECK(j.encode_error("return {x = {math.huge}}") == "field 'x[1]': cannot encode NaN or infinity");
  CHECK(j.encode_error("return -math.huge") == "cannot encode NaN or infinity");
  CHECK(j.encode_error("return {type = function() end}") == "field 'type': cannot encode a function");
  CHECK(j.encode_error("return {co = coroutine.create(print)}") == "field 'co': cannot encode a thread");
  CHECK(j.encode_error("return {io.stdout}") == "field '[1]': cannot encode a userdata");
}

TEST_CASE("json: a cycle is an error, not a crash", "[json]") {
  LuaJson j;
  const std::string object_cycle = j.encode_error("local t = {}; t.self = t; return t");
  CHECK_THAT(object_cycle, Catch::StartsWith("field 'self.self.self."));
  CHECK_THAT(object_cycle, Catch::EndsWith("': nested deeper than 1000 levels (a cycle?)"));

  const std::string array_cycle = j.encode_error("local t = {}; t[1] = t; return {data = t}");
  CHECK_THAT(array_cycle, Catch::StartsWith("field 'data[1][1][1]"));
  CHECK_THAT(array_cycle, Catch::EndsWith("': nested deeper than 1000 levels (a cycle?)"));

  // The state is still usable afterwards.
  CHECK(j.encode_ok("return {ok = true}") == "{\"ok\":true}");
}

TEST_CASE("json: nesting depth — 1000 levels accepted, 1001 refused", "[json]") {
  LuaJson j;
  // Text: cJSON's own limit.
  CHECK(json::parse(nested_arrays(1000)) != nullptr);
  CHECK(json::parse(nested_arrays(1001)) == nullptr);
  CHECK(j.round_trip(nested_arrays(1000)) == nested_arrays(1000));

  // Lua: 1000 nested tables around a scalar encode, 1001 do not.
  const std::string wrap = "local t = 1; for i = 1, N do t = {t} end; return t";
  auto with_n = [&](int n) {
    std::string chunk = wrap;
    chunk.replace(chunk.find('N'), 1, std::to_string(n));
    return chunk;
  };
  const std::string deep = j.encode_ok(with_n(1000));
  CHECK(deep == std::string(1000, '[') + "1" + std::string(1000, ']'));
  CHECK(json::parse(deep) != nullptr);
  CHECK_THAT(j.encode_error(with_n(1001)), Catch::EndsWith("nested deeper than 1000 levels (a cycle?)"));
}

// Regression: the depth check once counted the value inside the innermost
// table, so 1001 nested tables with an empty innermost one were encoded into
// JSON that json::parse (cJSON, 1000 levels) refuses. The limit is the same
// both ways.
TEST_CASE("json: 1001 nested tables with an empty innermost table are refused too", "[json]") {
  LuaJson j;
  const LuaJson::Encoded e = j.encode_lua("local t = {}; for i = 1, 1000 do t = {t} end; return t");
  INFO("encoded " << e.text.size() << " bytes; cJSON parses it: " << (json::parse(e.text) != nullptr));
  CHECK_FALSE(e.ok);
}

TEST_CASE("json: \"type\" is emitted first", "[json]") {
  LuaJson j;
  CHECK_THAT(j.encode_ok("return {zeta = 1, alpha = 2, type = 'hello', mid = {3}, omega = 'x'}"),
             Catch::StartsWith("{\"type\":\"hello\","));
  const std::string many = j.encode_ok(
      "local t = {}; for i = 1, 50 do t['k' .. i] = i end; t.type = 'x'; return {inner = t}");
  CHECK_THAT(many, Catch::StartsWith("{\"inner\":{\"type\":\"x\",\"k"));
  // Exactly once.
  CHECK(many.find("\"type\"") == many.rfind("\"type\""));
  CHECK(j.encode_ok("return {type = 'only'}") == "{\"type\":\"only\"}");
  // Also for decoded objects where it came last.
  const std::string moved = j.round_trip(R"({"z":1,"y":2,"x":3,"type":"t"})");
  CHECK_THAT(moved, Catch::StartsWith("{\"type\":\"t\","));
  CHECK(same_json(moved, R"({"z":1,"y":2,"x":3,"type":"t"})"));
  // A non-string type is still first and kept as is.
  CHECK_THAT(j.encode_ok("return {a = 1, type = 5}"), Catch::StartsWith("{\"type\":5,"));
  // Only the table's own fields: a type behind __index is not encoded.
  CHECK(j.encode_ok("return setmetatable({a = 1}, {__index = {type = 'x'}})") == "{\"a\":1}");
  CHECK(j.encode_ok("return setmetatable({}, {__index = {type = 'x'}})") == "{}");
}

TEST_CASE("json: append_json_string escapes exactly what JSON requires", "[json]") {
  std::string out = "x";
  json::append_json_string(out, std::string_view("a\"b\\c\x01\x1f/\xC3\xA9", 10));
  CHECK(out == "x\"a\\\"b\\\\c\\u0001\\u001f/\xC3\xA9\"");
}

TEST_CASE("json: strings and keys either side of the one-append length", "[json]") {
  // Short strings that need no escape are written in one piece, the rest run
  // by run: both must give the same text, for values and for keys.
  LuaJson j;
  for (int n : {0, 1, 120, 123, 124, 125, 126, 200}) {
    CAPTURE(n);
    const std::string plain(static_cast<std::size_t>(n), 'k');
    std::string out = "[";
    json::append_json_string(out, plain);
    CHECK(out == "[\"" + plain + "\"");
    const std::string lua = "return {" + std::string("['") + plain + "'] = 1, b = '" + plain + "\\n'}";
    const std::string encoded = j.encode_ok(lua);
    CHECK(same_json(encoded, "{\"" + plain + "\":1,\"b\":\"" + plain + "\\n\"}"));
    if (n > 0) {
      const std::string escaped = plain.substr(1) + "\"";
      std::string out2;
      json::append_json_string(out2, escaped);
      CHECK(out2 == "\"" + plain.substr(1) + "\\\"\"");
    }
  }
  CHECK(j.encode_ok("return {a = 1}") == "{\"a\":1}");
  CHECK(same_json(j.encode_ok("return {a = 1, b = 2, c = {d = 'e'}}"), R"({"a":1,"b":2,"c":{"d":"e"}})"));
}

TEST_CASE("json: parse refuses trailing garbage and reports where it stopped", "[json]") {
  std::size_t at = 999;
  CHECK(json::parse("{\"a\":1} x", &at) == nullptr);
  CHECK(at == 8);
  CHECK(json::parse("{\"a\":1}  \n") != nullptr);
  at = 999;
  CHECK(json::parse("", &at) == nullptr);
  CHECK(json::print(json::parse(R"({"a":[1,2]})").get()) == R"({"a":[1,2]})");
}
