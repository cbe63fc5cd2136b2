// The HTTP half of the engine: a request matched against the script's
// `http` routes, the route function called under the instruction budget, and
// its answer checked before it can become a response head.
#include "script/engine.hpp"

#include "json/lua_json.hpp"
#include "script/engine_internal.hpp"
#include "util/log.hpp"

namespace wsrelay::script {
using Internal = ScriptEngine::Internal;

// A string is a 200 text body; a table says status, json or body,
// content_type, headers; anything else is a 204.
bool read_response(lua_State* L, int r, http::Response& response, std::string& problem) {
  response.status = 200;
  if (lua_type(L, r) == LUA_TSTRING) {
    response.body = lua_string(L, r);
    return true;
  }
  if (!lua_istable(L, r)) {
    response.status = 204;
    return true;
  }
  const int top = lua_gettop(L);
  lua_getfield(L, r, "status");
  if (lua_isinteger(L, -1)) {
    const lua_Integer status = lua_tointeger(L, -1);
    response.status = status >= 100 && status <= 599 ? static_cast<int>(status) : 500;
  }
  lua_getfield(L, r, "json");
  if (!lua_isnil(L, -1)) {
    response.content_type = "application/json";
    if (!json::encode_lua(L, lua_gettop(L), response.body, problem)) {
      lua_settop(L, top);
      return false;
    }
  } else {
    lua_getfield(L, r, "body");
    if (lua_type(L, -1) == LUA_TSTRING) response.body = lua_string(L, -1);
  }
  lua_settop(L, top);
  // A CR or LF in a header (name, value or content type) would let a script
  // split the response, and a name that is not an RFC 7230 token is no
  // header: refused, naming the field.
  lua_getfield(L, r, "content_type");
  if (lua_type(L, -1) == LUA_TSTRING) {
    response.content_type = lua_string(L, -1);
    if (!http::is_field_value(response.content_type)) {
      lua_settop(L, top);
      problem = "content_type has a control character";
      return false;
    }
  }
  lua_settop(L, top);
  lua_getfield(L, r, "headers");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
        std::string name = lua_string(L, -2);
        std::string value = lua_string(L, -1);
        if (!http::is_token(name)) {
          problem = "header name " + quoted(name) + " is not a token";
        } else if (!http::is_field_value(value)) {
          problem = "header '" + name + "' has a control character in its value";
        }
        if (!problem.empty()) {
          lua_settop(L, top);
          return false;
        }
        response.headers.emplace_back(std::move(name), std::move(value));
      }
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  return true;
}

namespace {

struct HttpJob {
  const http::Request* request = nullptr;
  const std::string* key = nullptr;
  http::PathPattern::Params params;
  http::Response response;
};

int http_entry(lua_State* L) {
  HttpJob& job = *static_cast<HttpJob*>(lua_touserdata(L, 1));
  const http::Request& req = *job.request;
  lua_rawgeti(L, LUA_REGISTRYINDEX, internal_of(L).handlers_ref);
  lua_getfield(L, -1, "http");
  lua_getfield(L, -1, job.key->c_str());
  lua_createtable(L, 0, 8);
  lua_pushlstring(L, req.method.data(), req.method.size());
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, req.path.data(), req.path.size());
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, req.query.data(), req.query.size());
  lua_setfield(L, -2, "query");
  lua_pushlstring(L, req.body.data(), req.body.size());
  lua_setfield(L, -2, "body");
  lua_pushlstring(L, req.remote.data(), req.remote.size());
  lua_setfield(L, -2, "remote");
  lua_createtable(L, 0, static_cast<int>(req.headers.size()));
  for (const auto& [name, value] : req.headers) {
    lua_pushlstring(L, value.data(), value.size());
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, -2, "headers");
  lua_createtable(L, 0, static_cast<int>(job.params.size()));
  for (const auto& [name, value] : job.params) {
    lua_pushlstring(L, value.data(), value.size());
    lua_setfield(L, -2, name.c_str());
  }
  lua_setfield(L, -2, "params");
  std::string error;
  if (!protected_call(L, 1, 1, error)) {
    Internal& in = internal_of(L);
    if (in.engine->context().stats != nullptr) ++in.engine->context().stats->script_errors;
    log::error(in.engine->name() + ": http route '" + *job.key + "' failed: " + error);
    job.response.status = 500;
    job.response.content_type = "application/json";
    job.response.body = in.budget_exceeded ? R"({"error":"script_timeout"})" : R"({"error":"script_error"})";
    return 0;
  }
  std::string problem;
  if (!read_response(L, lua_gettop(L), job.response, problem)) {
    Internal& in = internal_of(L);
    if (in.engine->context().stats != nullptr) ++in.engine->context().stats->script_errors;
    log::error(in.engine->name() + ": http route '" + *job.key + "': " + problem);
    job.response = http::Response{500, "application/json", R"({"error":"script_error"})", {}};
  }
  return 0;
}

}  // namespace

bool ScriptEngine::has_http_route(std::string_view method, std::string_view path) const {
  http::PathPattern::Params params;
  for (const auto& route : in_->routes) {
    if ((method == "*" || route.method == method || (method == "HEAD" && route.method == "GET")) &&
        route.pattern.match(path, params)) {
      return true;
    }
  }
  return false;
}

http::Response ScriptEngine::handle_http(const http::Request& request) {
  HttpJob job;
  job.request = &request;
  for (const auto& route : in_->routes) {
    if ((route.method == request.method || (request.method == "HEAD" && route.method == "GET")) &&
        route.pattern.match(request.path, job.params)) {
      job.key = &route.key;
      break;
    }
  }
  if (job.key == nullptr) return job.response;  // 404
  lua_State* L = in_->L;
  begin_call(*in_);
  lua_pushcfunction(L, http_entry);
  lua_pushlightuserdata(L, &job);
  std::string error;
  if (!protected_call(L, 1, 0, error)) {
    log::error(source_name_ + ": http route failed: " + error);
    job.response = http::Response{500, "application/json", R"({"error":"script_error"})", {}};
  }
  release_holds(*in_);
  lua_settop(L, 0);
  lua_sethook(L, nullptr, 0, 0);
  return job.response;
}

}  // namespace wsrelay::script
