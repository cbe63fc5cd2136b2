// upgrade_hook: the script's on_upgrade(req), run before a WebSocket upgrade
// is accepted — synchronously, on the main thread (lws 4.1 decides the
// upgrade inside one callback, so nothing here may wait: a waiting call
// raises). Its answer: nothing accepts; {user = "alice"} accepts with that
// user set before on_open; a table with status refuses with that HTTP answer
// (as an http route's). A failing hook refuses with 500.
#include "script/engine_internal.hpp"

#include "util/log.hpp"

namespace wsrelay::script {
namespace {

struct UpgradeJob {
  const UpgradeRequest* request = nullptr;
  UpgradeAnswer answer;
  std::string problem;  // the answer could not be read
};

http::Response script_failed() { return http::Response{500, "text/plain; charset=utf-8", "the script failed\n", {}}; }

int upgrade_entry(lua_State* L) {
  UpgradeJob& job = *static_cast<UpgradeJob*>(lua_touserdata(L, 1));
  const UpgradeRequest& req = *job.request;
  lua_rawgeti(L, LUA_REGISTRYINDEX, internal_of(L).handlers_ref);
  lua_getfield(L, -1, "on_upgrade");
  lua_createtable(L, 0, 6);
  lua_pushlstring(L, req.path.data(), req.path.size());
  lua_setfield(L, -2, "path");
  push_fields(L, req.params);
  lua_setfield(L, -2, "params");
  push_fields(L, http::parse_query(req.query));
  lua_setfield(L, -2, "query");
  const std::string* cookie = http::find_field(req.headers, "cookie");
  push_fields(L, cookie != nullptr ? http::parse_cookies(*cookie) : http::Fields{});
  lua_setfield(L, -2, "cookies");
  push_fields(L, req.headers);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, req.remote.data(), req.remote.size());
  lua_setfield(L, -2, "remote");
  lua_call(L, 1, 1);
  const int r = lua_gettop(L);
  if (lua_isnil(L, r)) return 0;
  if (!lua_istable(L, r)) {
    job.problem = std::string("on_upgrade must return nothing or a table (got ") + luaL_typename(L, r) + ")";
    return 0;
  }
  lua_getfield(L, r, "status");
  const bool refuses = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (refuses) {
    job.answer.accept = false;
    if (!read_response(L, r, job.answer.refusal, job.problem)) return 0;
    if (job.answer.refusal.status < 400) {
      job.problem = "on_upgrade's status must be 400..599 to refuse (got " +
                    std::to_string(job.answer.refusal.status) + "); return nothing to accept";
    }
    return 0;
  }
  lua_getfield(L, r, "user");
  if (lua_type(L, -1) == LUA_TSTRING) {
    job.answer.user = lua_string(L, -1);
  } else if (!lua_isnil(L, -1)) {
    job.problem = "on_upgrade's user must be a string";
  }
  return 0;
}

}  // namespace

bool ScriptEngine::has_on_upgrade() const { return in_->has_on_upgrade; }

UpgradeAnswer ScriptEngine::on_upgrade(const UpgradeRequest& request) {
  UpgradeJob job;
  job.request = &request;
  Internal& in = *in_;
  lua_State* L = in.L;
  Call* const outer = in.current;
  in.current = nullptr;  // nothing here may wait
  const int top = lua_gettop(L);
  begin_call(in);
  lua_pushcfunction(L, upgrade_entry);
  lua_pushlightuserdata(L, &job);
  std::string error;
  const bool ran = protected_call(L, 1, 0, error);
  lua_settop(L, top);
  lua_sethook(L, nullptr, 0, 0);
  in.current = outer;
  if (!ran || !job.problem.empty()) {
    if (context_.stats != nullptr) ++context_.stats->script_errors;
    log::error(source_name_ + ": handler 'on_upgrade' failed: " + (ran ? job.problem : error));
    UpgradeAnswer failed;
    failed.accept = false;
    failed.refusal = script_failed();
    return failed;
  }
  return job.answer;
}

}  // namespace wsrelay::script
