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

http::Response failed_response(bool timeout) {
  return http::Response{500, "application/json", timeout ? R"({"error":"script_timeout"})" : R"({"error":"script_error"})",
                        {}};
}

void answer(Job& job, http::Response response) {
  HttpRouteJob& route = *job.http;
  if (route.answered) return;
  route.answered = true;
  auto done = std::move(route.done);
  if (done) done(std::move(response));
}

// After the route function returned, directly or (it waited) on resume.
int route_returned(lua_State* L, int, lua_KContext context) {
  Job& job = *reinterpret_cast<Job*>(context);
  job.in_handler = false;
  http::Response response;
  std::string problem;
  if (!read_response(L, lua_gettop(L), response, problem)) {
    Internal& in = internal_of(L);
    if (in.engine->context().stats != nullptr) ++in.engine->context().stats->script_errors;
    log::error(in.engine->name() + ": http route '" + job.http->key + "': " + problem);
    response = failed_response(false);
  }
  answer(job, std::move(response));
  return 0;
}

// On a relay coroutine: the route may wait (relay.http.request).
int http_entry(lua_State* L) {
  Job& job = *static_cast<Job*>(lua_touserdata(L, 1));
  const HttpRouteJob& route = *job.http;
  const http::Request& req = route.request;
  lua_rawgeti(L, LUA_REGISTRYINDEX, internal_of(L).handlers_ref);
  lua_getfield(L, -1, "http");
  lua_getfield(L, -1, route.key.c_str());
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
  push_fields(L, req.headers);
  lua_setfield(L, -2, "headers");
  push_fields(L, route.params);
  lua_setfield(L, -2, "params");
  job.in_handler = true;
  lua_callk(L, 1, 1, reinterpret_cast<lua_KContext>(&job), route_returned);
  return route_returned(L, LUA_OK, reinterpret_cast<lua_KContext>(&job));
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

void http_failed(Internal& in, Job& job, const std::string& error) {
  if (in.engine->context().stats != nullptr) ++in.engine->context().stats->script_errors;
  log::error(in.engine->name() + ": http route '" + job.http->key + "' failed: " + error);
  answer(job, failed_response(in.budget_exceeded));
}

void ScriptEngine::handle_http(const http::Request& request, std::function<void(http::Response)> done) {
  auto route = std::make_shared<HttpRouteJob>();
  for (const auto& r : in_->routes) {
    if ((r.method == request.method || (request.method == "HEAD" && r.method == "GET")) &&
        r.pattern.match(request.path, route->params)) {
      route->key = r.key;
      break;
    }
  }
  if (route->key.empty()) {
    done(http::Response{});  // 404
    return;
  }
  route->request = request;  // the transport's copy may go before the answer
  route->done = std::move(done);
  std::unique_ptr<Call> call = take_call(*in_);
  call->job.engine = this;
  call->job.handler_name = "http";
  call->job.http = std::move(route);
  start_call(*in_, std::move(call), http_entry);
}

}  // namespace wsrelay::script
