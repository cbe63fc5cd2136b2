#include "json/lua_json.hpp"

#include "json/json.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace wsrelay::json {
namespace {

// Unique address used as the registry key of the array metatable.
const char kArrayMetatableKey = 0;
const char kRawMetatableKey = 0;

void push_json_at(lua_State* L, const cJSON* node, int depth) {
  luaL_checkstack(L, 4, "JSON nested too deep");
  if (depth > kMaxDepth) {
    luaL_error(L, "JSON nested deeper than %d levels", kMaxDepth);
  }
  if (cJSON_IsObject(node)) {
    int count = 0;
    for (const cJSON* c = node->child; c != nullptr; c = c->next) ++count;
    lua_createtable(L, 0, count);
    for (const cJSON* c = node->child; c != nullptr; c = c->next) {
      push_json_at(L, c, depth + 1);
      lua_setfield(L, -2, c->string != nullptr ? c->string : "");
    }
  } else if (cJSON_IsArray(node)) {
    int count = 0;
    for (const cJSON* c = node->child; c != nullptr; c = c->next) ++count;
    lua_createtable(L, count, 0);
    lua_Integer i = 1;
    for (const cJSON* c = node->child; c != nullptr; c = c->next) {
      push_json_at(L, c, depth + 1);
      lua_rawseti(L, -2, i++);
    }
    push_array_metatable(L);
    lua_setmetatable(L, -2);
  } else if (cJSON_IsString(node)) {
    lua_pushstring(L, node->valuestring != nullptr ? node->valuestring : "");
  } else if (const char* literal = exact_integer(node)) {
    // Beyond 2^53 the double is inexact; json::parse kept the literal, which
    // the strict validator already proved fits an int64.
    lua_Integer exact = 0;
    std::from_chars(literal, literal + std::strlen(literal), exact);
    lua_pushinteger(L, exact);
  } else if (cJSON_IsNumber(node)) {
    const double d = node->valuedouble;
    // Integral values within 2^53 are exact in a double: give Lua an integer so
    // that ids and counters print back as 42, not 42.0.
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) <= 9007199254740992.0) {
      lua_pushinteger(L, static_cast<lua_Integer>(d));
    } else {
      lua_pushnumber(L, d);
    }
  } else if (cJSON_IsBool(node)) {
    lua_pushboolean(L, cJSON_IsTrue(node));
  } else {
    push_null(L);
  }
}

const char* kHex = "0123456789abcdef";

// `s` as a JSON string, with `before` and `after` around it unless they are
// '\0' (a key: ',' and ':'). Most strings (keys, types, names) are short and
// need no escape: then all of it is one append. push_back is not inlined
// here and costs a call through the PLT each time; a fan-out chat and its
// reply encode ~14 strings.
void append_quoted(std::string& out, std::string_view s, char before, char after) {
  constexpr std::size_t kShort = 124;
  std::size_t clean = 0;
  while (clean < s.size()) {
    const auto c = static_cast<unsigned char>(s[clean]);
    if (c < 0x20 || c == '"' || c == '\\') break;
    ++clean;
  }
  if (clean == s.size() && s.size() <= kShort) {
    char buf[kShort + 4];
    std::size_t n = 0;
    if (before != '\0') buf[n++] = before;
    buf[n++] = '"';
    std::memcpy(buf + n, s.data(), s.size());
    n += s.size();
    buf[n++] = '"';
    if (after != '\0') buf[n++] = after;
    out.append(buf, n);
    return;
  }
  if (before != '\0') out.push_back(before);
  out.push_back('"');
  // Runs of characters that need no escape are appended whole.
  std::size_t run = 0;
  for (std::size_t i = clean; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      case '\b': out.append("\\b"); break;
      case '\f': out.append("\\f"); break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
  if (after != '\0') out.push_back(after);
}

struct Encoder {
  lua_State* L;
  std::string& out;
  std::string& error;
  // Filled only while unwinding from a failure, innermost first, so the
  // success path builds no key paths.
  std::vector<std::string> trail;

  bool fail(const std::string& what) {
    error = what;
    return false;
  }

  std::string where() const {
    std::string path;
    for (auto it = trail.rbegin(); it != trail.rend(); ++it) {
      if (!path.empty() && (*it)[0] != '[') path.push_back('.');
      path += *it;
    }
    return path;
  }

  bool number(int index) {
    int is_integer = 0;
    const lua_Integer i = lua_tointegerx(L, index, &is_integer);
    char buf[40];
    if (is_integer) {
      // Also a float with an integral value: printed the same either way.
      auto r = std::to_chars(buf, buf + sizeof buf, static_cast<long long>(i));
      out.append(buf, static_cast<std::size_t>(r.ptr - buf));
      return true;
    }
    const double d = lua_tonumber(L, index);
    if (!std::isfinite(d)) return fail("cannot encode NaN or infinity");
    auto r = std::to_chars(buf, buf + sizeof buf, d);  // shortest exact round trip
    out.append(buf, static_cast<std::size_t>(r.ptr - buf));
    return true;
  }

  // Moves out[member, end) in front of out[start, member). std::rotate on a
  // string swaps byte by byte (~500 instructions for a heartbeat reply's
  // "type"); a short member is moved with three copies instead.
  void move_to_front(std::size_t start, std::size_t member) {
    const std::size_t size = out.size() - member;
    char held[128];
    if (size > sizeof held) {
      std::rotate(out.begin() + static_cast<std::ptrdiff_t>(start),
                  out.begin() + static_cast<std::ptrdiff_t>(member), out.end());
      return;
    }
    char* base = out.data();
    std::memcpy(held, base + member, size);
    std::memmove(base + start + size, base + start, member - start);
    std::memcpy(base + start, held, size);
  }

  // An array is a table carrying the array metatable, or a non-empty table
  // whose keys are exactly 1..n.
  bool is_array(int index, lua_Integer& length) {
    length = static_cast<lua_Integer>(lua_rawlen(L, index));
    if (lua_getmetatable(L, index)) {
      push_array_metatable(L);
      const bool marked = lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
      if (marked) return true;
    }
    if (length == 0) return false;
    lua_Integer keys = 0;
    lua_pushnil(L);
    while (lua_next(L, index) != 0) {
      lua_pop(L, 1);
      if (!lua_isinteger(L, -1)) {
        lua_pop(L, 1);
        return false;
      }
      ++keys;
    }
    return keys == length;
  }

  // index is absolute; the caller has made room for a table's three slots.
  bool value(int index, int depth) {
    switch (lua_type(L, index)) {
      case LUA_TNIL: out.append("null"); return true;
      case LUA_TBOOLEAN: out.append(lua_toboolean(L, index) ? "true" : "false"); return true;
      case LUA_TNUMBER: return number(index);
      case LUA_TSTRING: {
        size_t len = 0;
        const char* s = lua_tolstring(L, index, &len);
        append_json_string(out, std::string_view(s, len));
        return true;
      }
      case LUA_TLIGHTUSERDATA:
        if (is_null(L, index)) {
          out.append("null");
          return true;
        }
        return fail("cannot encode a userdata");
      case LUA_TTABLE:
        // depth counts enclosing tables: a table at depth kMaxDepth would be
        // the 1001st level, which the decoder (cJSON) refuses, so refuse it here too.
        if (depth >= kMaxDepth) return fail("nested deeper than 1000 levels (a cycle?)");
        if (!lua_checkstack(L, 4)) return fail("out of stack");
        return table(index, depth);
      case LUA_TUSERDATA:
        if (lua_getmetatable(L, index)) {
          push_raw_metatable(L);
          const bool raw = lua_rawequal(L, -1, -2);
          lua_pop(L, 2);
          if (raw) {
            // relay.json.raw: text validated when made, immutable since.
            lua_getiuservalue(L, index, 1);
            size_t len = 0;
            const char* text = lua_tolstring(L, -1, &len);
            out.append(text != nullptr ? text : "null", text != nullptr ? len : 4);
            lua_pop(L, 1);
            return true;
          }
        }
        return fail("cannot encode a userdata");
      default: return fail(std::string("cannot encode a ") + luaL_typename(L, index));
    }
  }

  bool table(int index, int depth) {
    lua_Integer length = 0;
    if (is_array(index, length)) {
      out.push_back('[');
      for (lua_Integer i = 1; i <= length; ++i) {
        if (i > 1) out.push_back(',');
        lua_rawgeti(L, index, i);
        const bool ok = value(lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (!ok) {
          // Built step by step: "[" + to_string(i) + "]" trips GCC 12's
          // -Wrestrict false positive at -O3 (Release builds).
          std::string step = "[";
          step += std::to_string(i);
          step += ']';
          trail.push_back(std::move(step));
          return false;
        }
      }
      out.push_back(']');
      return true;
    }
    // One pass over the pairs, each member written with a leading comma; the
    // first member's comma becomes the '{'. "type" goes first (it is what a
    // reader of a frame looks for): it is moved to the front where it is met,
    // which costs a rotation of a few bytes instead of a second lookup.
    const std::size_t start = out.size();
    const int key = lua_gettop(L) + 1;
    lua_pushnil(L);
    while (lua_next(L, index) != 0) {
      if (lua_type(L, key) != LUA_TSTRING) {
        lua_pop(L, 2);
        return fail("cannot encode a table mixing array and non-string keys");
      }
      size_t klen = 0;
      const char* k = lua_tolstring(L, key, &klen);
      const std::size_t member = out.size();
      append_quoted(out, std::string_view(k, klen), ',', ':');
      const bool ok = value(key + 1, depth + 1);
      lua_pop(L, 1);
      if (!ok) {
        trail.emplace_back(k, klen);
        lua_pop(L, 1);
        return false;
      }
      if (klen == 4 && std::memcmp(k, "type", 4) == 0 && member != start) move_to_front(start, member);
    }
    if (out.size() == start) {
      out.append("{}");
    } else {
      out[start] = '{';
      out.push_back('}');
    }
    return true;
  }
};

}  // namespace

void install_lua_json(lua_State* L) {
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "array");
  lua_setfield(L, -2, "__name");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kArrayMetatableKey);
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, "raw json");
  lua_setfield(L, -2, "__name");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");  // keep scripts from swapping the marker
  lua_rawsetp(L, LUA_REGISTRYINDEX, &kRawMetatableKey);
}

void push_array_metatable(lua_State* L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &kArrayMetatableKey); }

void push_raw_metatable(lua_State* L) { lua_rawgetp(L, LUA_REGISTRYINDEX, &kRawMetatableKey); }

void push_null(lua_State* L) { lua_pushlightuserdata(L, nullptr); }

bool is_null(lua_State* L, int index) {
  return lua_type(L, index) == LUA_TLIGHTUSERDATA && lua_touserdata(L, index) == nullptr;
}

void push_json(lua_State* L, const cJSON* node) { push_json_at(L, node, 0); }

void push_flat_object(lua_State* L, const FlatObject& object) {
  luaL_checkstack(L, 4, "JSON nested too deep");
  // Sized and filled in document order, like push_json_at: same table layout,
  // same pairs() order.
  lua_createtable(L, 0, static_cast<int>(object.count));
  for (std::size_t i = 0; i < object.count; ++i) {
    const FlatMember& m = object.members[i];
    lua_pushlstring(L, m.key, m.key_size);
    switch (m.kind) {
      case FlatMember::Kind::String: {
        const std::string_view v = m.string();
        lua_pushlstring(L, v.data(), v.size());
        break;
      }
      case FlatMember::Kind::Integer: lua_pushinteger(L, static_cast<lua_Integer>(m.integer)); break;
      case FlatMember::Kind::True: lua_pushboolean(L, 1); break;
      case FlatMember::Kind::False: lua_pushboolean(L, 0); break;
      case FlatMember::Kind::Null: push_null(L); break;
    }
    lua_rawset(L, -3);
  }
}

bool encode_lua(lua_State* L, int index, std::string& out, std::string& error) {
  Encoder encoder{L, out, error, {}};
  const int top = lua_gettop(L);
  index = lua_absindex(L, index);
  if (!lua_checkstack(L, 4)) {
    error = "out of stack";
    return false;
  }
  const bool ok = encoder.value(index, 0);
  lua_settop(L, top);
  if (!ok && !encoder.trail.empty()) error = "field '" + encoder.where() + "': " + error;
  return ok;
}

void append_json_string(std::string& out, std::string_view s) { append_quoted(out, s, '\0', '\0'); }

}  // namespace wsrelay::json
