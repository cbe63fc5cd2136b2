// bridge_http: relay.http.request{method=, url=, headers=, body=, json=,
// timeout=, follow_redirects=, max_size=, tls_insecure=} -> res | nil, err.
// It waits: the running call is suspended until the answer comes (the loop
// and every other session go on) and resumed with the result. A malformed
// request (no url, a header that is not a string) raises; a request that
// fails (timeout, connect failed, too large, too many in flight) returns
// nil and why.
#include "script/engine_internal.hpp"

#include "json/json.hpp"
#include "json/lua_json.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace wsrelay::script {
namespace {

constexpr double kMaxTimeout = 300;
constexpr int kMaxRedirects = 10;

bool header_name_ok(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name) {
    // RFC 9110 token characters.
    if (!(std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos)) {
      return false;
    }
  }
  return true;
}

bool header_value_ok(std::string_view value) {
  return std::none_of(value.begin(), value.end(), [](unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; });
}

bool has_header(const outbound::Headers& headers, std::string_view lower) {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) {
    std::string name = h.first;
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    return name == lower;
  });
}

std::string field_string(lua_State* L, const char* key, const char* what) {
  lua_getfield(L, 1, key);
  std::string out;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      luaL_error(L, "relay.http.request: %s must be a string", what);
    }
    out = lua_string(L, -1);
  }
  lua_pop(L, 1);
  return out;
}

outbound::HttpRequest read_request(lua_State* L, const ScriptContext& context) {
  luaL_checktype(L, 1, LUA_TTABLE);
  outbound::HttpRequest r;
  r.url = field_string(L, "url", "url");
  if (r.url.empty()) luaL_error(L, "relay.http.request: url is required");
  if (std::string problem = outbound::url_problem(r.url); !problem.empty()) {
    luaL_error(L, "relay.http.request: %s", problem.c_str());
  }
  r.body = field_string(L, "body", "body");
  lua_getfield(L, 1, "headers");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) luaL_error(L, "relay.http.request: headers must be a table of name = value");
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
        luaL_error(L, "relay.http.request: headers must map strings to strings");
      }
      std::string name = lua_string(L, -2), value = lua_string(L, -1);
      if (!header_name_ok(name)) luaL_error(L, "relay.http.request: header name %s is not a token", quoted(name).c_str());
      if (!header_value_ok(value)) {
        luaL_error(L, "relay.http.request: header %s has a control character in its value", name.c_str());
      }
      r.headers.emplace_back(std::move(name), std::move(value));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "json");
  if (!lua_isnil(L, -1)) {
    if (!r.body.empty()) luaL_error(L, "relay.http.request: give body or json, not both");
    std::string error;
    if (!json::encode_lua(L, lua_gettop(L), r.body, error)) {
      luaL_error(L, "relay.http.request: json cannot be encoded: %s", error.c_str());
    }
    if (!has_header(r.headers, "content-type")) r.headers.emplace_back("Content-Type", "application/json");
  }
  lua_pop(L, 1);
  std::string method = field_string(L, "method", "method");
  if (method.empty()) method = r.body.empty() ? "GET" : "POST";
  std::transform(method.begin(), method.end(), method.begin(), [](unsigned char c) { return std::toupper(c); });
  if (!header_name_ok(method)) luaL_error(L, "relay.http.request: method %s is not a token", quoted(method).c_str());
  r.method = method;
  r.timeout_ms = static_cast<long>(context.http_timeout_s) * 1000;
  lua_getfield(L, 1, "timeout");
  if (!lua_isnil(L, -1)) {
    const double t = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : -1;  // not "1": one rule per field
    if (!(t > 0 && t <= kMaxTimeout)) luaL_error(L, "relay.http.request: timeout must be seconds in (0, 300]");
    r.timeout_ms = std::max(1L, static_cast<long>(std::llround(t * 1000)));
  }
  lua_pop(L, 1);
  r.max_response_bytes = context.max_http_response_bytes;
  lua_getfield(L, 1, "max_size");
  if (!lua_isnil(L, -1)) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
        static_cast<std::size_t>(lua_tointeger(L, -1)) > context.max_http_response_bytes) {
      luaL_error(L, "relay.http.request: max_size must be an integer of bytes up to limits.http_response_bytes (%d)",
                 static_cast<int>(context.max_http_response_bytes));
    }
    r.max_response_bytes = static_cast<std::size_t>(lua_tointeger(L, -1));
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "follow_redirects");
  if (lua_isboolean(L, -1)) {
    r.max_redirects = lua_toboolean(L, -1) ? 5 : 0;
  } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 && lua_tointeger(L, -1) <= kMaxRedirects) {
    r.max_redirects = static_cast<int>(lua_tointeger(L, -1));
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "relay.http.request: follow_redirects must be a boolean or a count up to %d", kMaxRedirects);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "tls_insecure");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) luaL_error(L, "relay.http.request: tls_insecure must be a boolean");
  r.tls_insecure = lua_toboolean(L, -1) != 0;
  lua_pop(L, 1);
  return r;
}

bool is_json_type(const outbound::Headers& headers) {
  for (const auto& [name, value] : headers) {
    if (name != "content-type") continue;
    std::string v = value.substr(0, value.find(';'));
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    while (!v.empty() && v.back() == ' ') v.pop_back();
    return v == "application/json" || (v.size() > 5 && v.compare(v.size() - 5, 5, "+json") == 0);
  }
  return false;
}

// The result on the waiting coroutine's stack: res, or nil and why.
int push_response(lua_State* L, const outbound::HttpResponse& r) {
  if (!r.error.empty()) {
    lua_pushnil(L);
    lua_pushlstring(L, r.error.data(), r.error.size());
    return 2;
  }
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, r.status);
  lua_setfield(L, -2, "status");
  lua_createtable(L, 0, static_cast<int>(r.headers.size()));
  for (const auto& [name, value] : r.headers) {
    // A repeated header reads as its values joined (RFC 9110 §5.3).
    lua_getfield(L, -1, name.c_str());
    if (lua_isstring(L, -1)) {
      std::string joined = lua_string(L, -1) + ", " + value;
      lua_pop(L, 1);
      lua_pushlstring(L, joined.data(), joined.size());
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, value.data(), value.size());
    }
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, r.body.data(), r.body.size());
  lua_setfield(L, -2, "body");
  if (is_json_type(r.headers)) {
    // The client rule for JSON (one parser, duplicate keys refused); an
    // answer that does not parse has no json field and says why.
    std::string error;
    json::JsonPtr root = json::parse(r.body, nullptr, &error);
    if (root != nullptr) {
      json::push_json(L, root.get());
      lua_setfield(L, -2, "json");
    } else {
      lua_pushlstring(L, error.data(), error.size());
      lua_setfield(L, -2, "json_error");
    }
  }
  return 1;
}

int http_request(lua_State* L) {
  ScriptEngine::Internal& in = internal_of(L);
  const ScriptContext& context = in.engine->context();
  if (context.http == nullptr) return luaL_error(L, "relay.http.request is not available in this host");
  outbound::HttpRequest request = read_request(L, context);
  if (context.http->in_flight() >= static_cast<std::size_t>(context.max_http_requests)) {
    lua_pushnil(L);
    lua_pushfstring(L, "too many requests in flight (limits.http_requests: %d)", context.max_http_requests);
    return 2;
  }
  const std::uint64_t wait_id = begin_wait(L, "relay.http.request");
  ScriptEngine* engine = in.engine;
  context.http->start(std::move(request), [engine, wait_id](outbound::HttpResponse response) {
    engine->http_answered(wait_id, std::move(response));
  });
  return lua_yield(L, 0);
}

}  // namespace

void open_relay_http(lua_State* L) {
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, trampoline<http_request>);
  lua_setfield(L, -2, "request");
  lua_setfield(L, -2, "http");
}

void ScriptEngine::http_answered(std::uint64_t wait_id, outbound::HttpResponse response) {
  resume_waiting(*in_, wait_id, [&](lua_State* co) { return push_response(co, response); });
}

}  // namespace wsrelay::script
