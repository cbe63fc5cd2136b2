#include "script/engine.hpp"

#include "json/json.hpp"
#include "json/lua_json.hpp"
#include "script/engine_internal.hpp"
#include "session/log_fields.hpp"
#include "util/log.hpp"

#include <chrono>
#include <cstdlib>
#include <cstring>

namespace wsrelay::script {
using Internal = ScriptEngine::Internal;

using session::Session;

namespace {

constexpr int kHookStep = 1000;

void* limited_alloc(void* ud, void* ptr, std::size_t osize, std::size_t nsize) {
  auto* in = static_cast<ScriptEngine::Internal*>(ud);
  const std::size_t old = ptr != nullptr ? osize : 0;
  if (nsize == 0) {
    std::free(ptr);
    in->memory_used -= old;
    return nullptr;
  }
  // Refusing growth makes Lua raise "not enough memory" inside the call that
  // asked, which the dispatcher reports as script_error; the state survives.
  if (nsize > old && in->memory_used - old + nsize > in->memory_limit) return nullptr;
  void* grown = std::realloc(ptr, nsize);
  if (grown == nullptr) return nullptr;
  in->memory_used = in->memory_used - old + nsize;
  return grown;
}

void count_hook(lua_State* L, lua_Debug*) {
  auto& in = internal_of(L);
  if (!in.budget_exceeded) {
    in.used += kHookStep;
    if (in.used <= in.budget) {
      // A coroutine may still carry the every-instruction hook of an earlier,
      // timed-out call: give it the normal step again.
      lua_sethook(L, count_hook, LUA_MASKCOUNT, kHookStep);
      return;
    }
    in.budget_exceeded = true;
  }
  // From now on every instruction of this thread (and of the main thread, if
  // this is a coroutine) raises, so no pcall can swallow the timeout and carry
  // on looping.
  lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
  if (L != in.L) lua_sethook(in.L, count_hook, LUA_MASKCOUNT, 1);
  luaL_error(L, "script_timeout: instruction budget exceeded");
}

}  // namespace

void begin_call(ScriptEngine::Internal& in) {
  in.used = 0;
  if (in.budget_exceeded) {
    in.budget_exceeded = false;
  }
  lua_sethook(in.L, count_hook, LUA_MASKCOUNT, kHookStep);
}

void arm_budget(ScriptEngine::Internal& in, lua_State* thread) {
  (void)in;
  lua_sethook(thread, count_hook, LUA_MASKCOUNT, kHookStep);
}

namespace {
int traceback_handler(lua_State* L) {
  const char* message = lua_tostring(L, 1);
  if (message == nullptr) message = luaL_tolstring(L, 1, nullptr);
  luaL_traceback(L, L, message, 1);
  return 1;
}

}  // namespace

// Calls the function below nargs arguments with a traceback handler.
// On failure leaves nothing and puts the message's first line in error and the
// traceback in detail.
bool protected_call(lua_State* L, int nargs, int nresults, std::string& error, std::string* detail) {
  const int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, traceback_handler);
  lua_insert(L, base);
  const int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  if (status == LUA_OK) return true;
  const char* text = lua_tostring(L, -1);
  std::string full = text != nullptr ? text : "error object is not a string";
  if (status == LUA_ERRMEM) full = "not enough memory (script memory limit reached)";
  lua_pop(L, 1);
  const auto newline = full.find('\n');
  error = full.substr(0, newline);
  if (detail != nullptr) *detail = full;
  return false;
}

namespace {

// ---- sandbox ----------------------------------------------------------------

// Finalizers run with hooks off, outside the instruction budget, at whatever
// moment the collector picks: a looping __gc would hang the server.
int safe_setmetatable(lua_State* L) {
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, "__gc") != LUA_TNIL) {
      return luaL_argerror(L, 2, "__gc metamethods are not allowed in relay scripts");
    }
    lua_pop(L, 1);
  }
  lua_settop(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 2, 1);
  return 1;
}

int strict_newindex(lua_State* L) {
  const char* key = lua_tostring(L, 2);
  return luaL_error(L, "assignment to undeclared global '%s' (use local)", key != nullptr ? key : "?");
}

int safe_load(lua_State* L) {
  size_t len = 0;
  const char* chunk = luaL_checklstring(L, 1, &len);
  const char* name = luaL_optstring(L, 2, "=(load)");
  // Mode is always text: binary chunks can break the interpreter's invariants.
  if (luaL_loadbufferx(L, chunk, len, name, "t") != LUA_OK) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
  }
  if (!lua_isnoneornil(L, 4)) {
    lua_pushvalue(L, 4);
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, internal_of(L).env_ref);
  }
  lua_setupvalue(L, -2, 1);
  return 1;
}

const char* const kSafeBaseFunctions[] = {
    "assert", "error", "ipairs", "next", "pairs", "pcall", "xpcall", "rawequal", "rawget",
    "rawlen", "rawset", "select", "tonumber", "tostring", "type", "setmetatable",
    "getmetatable", "_VERSION"};
const char* const kSafeLibraries[] = {"string", "table", "math", "utf8", "coroutine"};

int setup_state(lua_State* L) {
  luaL_requiref(L, "_G", luaopen_base, 1);
  lua_pop(L, 1);
  luaL_requiref(L, "string", luaopen_string, 1);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");  // dumps bytecode: no use to a router, a risk to load
  lua_pop(L, 1);
  luaL_requiref(L, "table", luaopen_table, 1);
  lua_pop(L, 1);
  luaL_requiref(L, "math", luaopen_math, 1);
  lua_pop(L, 1);
  luaL_requiref(L, "utf8", luaopen_utf8, 1);
  lua_pop(L, 1);
  luaL_requiref(L, "coroutine", luaopen_coroutine, 1);
  lua_pop(L, 1);
  json::install_lua_json(L);
  open_session_bridge(L);

  return 0;
}

// A fresh environment for one version of the script: an allowlist copied
// from the full globals, the relay table, strict globals. Left on the stack.
int make_env(lua_State* L) {
  // The script's environment: an allowlist copied from the full globals.
  lua_newtable(L);
  const int env = lua_gettop(L);
  lua_pushglobaltable(L);
  const int globals = env + 1;
  for (const char* name : kSafeBaseFunctions) {
    lua_getfield(L, globals, name);
    lua_setfield(L, env, name);
  }
  for (const char* name : kSafeLibraries) {
    lua_getfield(L, globals, name);
    lua_setfield(L, env, name);
  }
  lua_pop(L, 1);  // globals

  // os: only the clock and calendar, nothing that touches the system.
  luaL_requiref(L, "os", luaopen_os, 0);
  lua_createtable(L, 0, 3);
  for (const char* name : {"time", "clock", "date", "difftime"}) {
    lua_getfield(L, -2, name);
    lua_setfield(L, -2, name);
  }
  lua_setfield(L, env, "os");
  lua_pop(L, 1);

  lua_pushcfunction(L, trampoline<safe_load>);
  lua_setfield(L, env, "load");
  lua_getfield(L, env, "setmetatable");
  lua_pushcclosure(L, safe_setmetatable, 1);
  lua_setfield(L, env, "setmetatable");
  lua_pushvalue(L, env);
  lua_setfield(L, env, "_G");
  open_coroutine_guards(L, env);

  lua_newtable(L);  // relay
  open_relay_core(L);
  open_relay_pubsub(L);
  open_relay_log(L);
  open_relay_time(L);
  open_relay_timers(L);
  open_relay_http(L);
  open_relay_json(L);
  open_relay_extensions(L, env);
  lua_setfield(L, env, "relay");

  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, strict_newindex);
  lua_setfield(L, -2, "__newindex");
  lua_setmetatable(L, env);

  return 1;
}

std::string typename_at(lua_State* L, int index) { return luaL_typename(L, index); }

// The script's `http` table: { ["GET /path/{name}"] = function(req) ... end }.
bool read_routes(lua_State* L, int table, std::vector<ScriptEngine::Internal::Route>& routes, std::string& error) {
  if (!lua_istable(L, table)) {
    error = "'http' must be a table of routes (got " + typename_at(L, table) + ")";
    return false;
  }
  static const char* const kMethods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
  lua_pushnil(L);
  while (lua_next(L, table) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      error = "'http' keys must be strings like \"GET /path\"";
      return false;
    }
    const std::string key = lua_tostring(L, -2);
    const std::size_t space = key.find(' ');
    const std::string method = key.substr(0, space);
    const std::string path = space == std::string::npos ? "" : key.substr(space + 1);
    bool known = false;
    for (const char* m : kMethods) known = known || method == m;
    if (!known || path.empty() || path[0] != '/' || path.find_first_of(" ?#") != std::string::npos) {
      lua_pop(L, 2);
      error = "http route '" + key + "' must look like \"GET /path\" (methods: GET POST PUT DELETE PATCH HEAD OPTIONS)";
      return false;
    }
    if (!lua_isfunction(L, -1)) {
      error = "http route '" + key + "' must be a function (got " + typename_at(L, -1) + ")";
      lua_pop(L, 2);
      return false;
    }
    routes.push_back({method, http::PathPattern(path), key});
    lua_pop(L, 1);
  }
  return true;
}

}  // namespace

ScriptEngine::Internal& internal_of(lua_State* L) {
  return **static_cast<ScriptEngine::Internal**>(lua_getextraspace(L));
}

ScriptEngine::Internal::~Internal() {
  if (L != nullptr) lua_close(L);
}

// ---- loading ----------------------------------------------------------------

ScriptEngine::Loaded ScriptEngine::load(const ScriptSource& source, ScriptContext context, Limits limits) {
  Loaded result;
  std::unique_ptr<ScriptEngine> engine(new ScriptEngine());
  engine->source_name_ = source.name;
  engine->context_ = std::move(context);
  engine->limits_ = limits;
  engine->in_ = std::make_unique<Internal>();
  Internal& in = *engine->in_;
  in.engine = engine.get();
  in.memory_limit = limits.memory_bytes;
  in.budget = limits.instructions_per_call;
  in.max_queued_events = engine->context_.max_waiting_messages;
  in.L = lua_newstate(limited_alloc, &in);
  if (in.L == nullptr) {
    result.error = source.name + ": cannot create a Lua state";
    return result;
  }
  lua_State* L = in.L;
  *static_cast<Internal**>(lua_getextraspace(L)) = &in;

  std::string error;
  lua_pushcfunction(L, setup_state);
  if (!protected_call(L, 0, 0, error)) {
    result.error = source.name + ": cannot set up the Lua state: " + error;
    return result;
  }

  in.extensions = script::Extensions::create(engine->context_.extensions, *engine, error);
  if (!in.extensions) {
    result.error = source.name + ": " + error;
    return result;
  }

  if (!compile(in, source, result.error)) return result;
  result.engine = std::move(engine);
  return result;
}

// Runs one version of the script in a fresh _ENV and, only if it loads and
// its handler table is valid, makes it the current one. The state, and with
// it every session's userdata and attrs, stays: that is what lets a reload
// keep connections, users, attributes, subscriptions and upstreams.
bool ScriptEngine::compile(Internal& in, const ScriptSource& source, std::string& error_out) {
  lua_State* L = in.L;
  std::string error;
  lua_pushcfunction(L, make_env);
  if (!protected_call(L, 0, 1, error)) {
    error_out = source.name + ": cannot set up the script environment: " + error;
    return false;
  }
  const int env = lua_gettop(L);
  auto fail = [&](std::string message) {
    error_out = std::move(message);
    lua_settop(L, env - 1);
    return false;
  };
  const std::string chunkname = "@" + source.name;
  if (luaL_loadbufferx(L, source.code.data(), source.code.size(), chunkname.c_str(), "t") != LUA_OK) {
    return fail(lua_tostring(L, -1));
  }
  lua_pushvalue(L, env);
  lua_setupvalue(L, -2, 1);
  // load() inside the chunk defaults to the environment being built.
  const int previous_env_ref = in.env_ref;
  lua_pushvalue(L, env);
  in.env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  begin_call(in);
  const bool ran = protected_call(L, 0, 1, error);
  lua_sethook(L, nullptr, 0, 0);
  // require belongs to the load context: handlers use the module locals the
  // script kept (or relay.<name>), so the sandbox offers nothing new to them.
  lua_pushnil(L);
  lua_setfield(L, env, "require");
  auto restore_env = [&] {
    luaL_unref(L, LUA_REGISTRYINDEX, in.env_ref);
    in.env_ref = previous_env_ref;
  };
  if (!ran) {
    restore_env();
    // Errors raised with a position already start with "name:line:"; others
    // (the instruction budget, memory) get the script's name in front.
    return fail(error.rfind(source.name + ":", 0) == 0 ? error : source.name + ": " + error);
  }
  if (!lua_istable(L, -1)) {
    restore_env();
    return fail(source.name + ": the script must return a table of handlers (it returned " +
                typename_at(L, -1) + ")");
  }
  const int handlers = lua_gettop(L);
  bool json_mode = true;
  std::string type_field = "type";
  std::vector<Internal::Route> routes;
  // Options that live beside the handlers; everything else must be a function.
  lua_pushnil(L);
  while (lua_next(L, handlers) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      restore_env();
      return fail(source.name + ": the handler table has a non-string key");
    }
    const std::string key = lua_tostring(L, -2);
    if (key == "json") {
      if (!lua_isboolean(L, -1)) {
        restore_env();
        return fail(source.name + ": 'json' must be a boolean (got " + typename_at(L, -1) + ")");
      }
      json_mode = lua_toboolean(L, -1);
    } else if (key == "http") {
      if (!read_routes(L, lua_gettop(L), routes, error)) {
        restore_env();
        return fail(source.name + ": " + error);
      }
    } else if (key == "type_field") {
      if (lua_type(L, -1) != LUA_TSTRING) {
        restore_env();
        return fail(source.name + ": 'type_field' must be a string (got " + typename_at(L, -1) + ")");
      }
      type_field = lua_tostring(L, -1);
    } else if (!lua_isfunction(L, -1)) {
      restore_env();
      return fail(source.name + ": handler '" + key + "' must be a function (got " + typename_at(L, -1) + ")");
    }
    lua_pop(L, 1);
  }
  lua_getfield(L, handlers, "on_text");
  const bool has_on_text = lua_isfunction(L, -1);
  lua_getfield(L, handlers, "on_upstream");
  const bool has_on_upstream = lua_isfunction(L, -1);
  lua_getfield(L, handlers, "on_upgrade");
  const bool has_on_upgrade = lua_isfunction(L, -1);
  lua_pop(L, 3);
  if (!json_mode && !has_on_text) {
    restore_env();
    return fail(source.name + ": a script with json = false needs an on_text handler");
  }
  // Commit: the new version replaces the old in one step.
  if (previous_env_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, previous_env_ref);
  if (in.handlers_ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, in.handlers_ref);
  in.handlers_ref = luaL_ref(L, LUA_REGISTRYINDEX);  // pops the handler table
  in.json_mode = json_mode;
  in.type_field = std::move(type_field);
  in.has_on_upstream = has_on_upstream;
  in.has_on_upgrade = has_on_upgrade;
  in.routes = std::move(routes);
  lua_settop(L, env - 1);
  return true;
}

std::string ScriptEngine::reload(const ScriptSource& source) {
  // The timers of the version being replaced; the new one may start its own
  // while it loads. If it fails to load, the old version keeps them.
  std::vector<std::uint64_t> old_timers;
  for (const auto& [id, ref] : in_->timer_refs) old_timers.push_back(id);
  std::string error;
  if (!compile(*in_, source, error)) return error;
  cancel_timers(*in_, old_timers);
  source_name_ = source.name;
  return {};
}



ScriptEngine::~ScriptEngine() {
  if (context_.timers != nullptr) context_.timers->cancel_owned_by(this);
}

void ScriptEngine::collect_garbage() {
  // Under the instruction budget like any call, should a finalizer ever run
  // script code (the sandbox refuses __gc: safe_setmetatable).
  begin_call(*in_);
  lua_gc(in_->L, LUA_GCCOLLECT);
  lua_sethook(in_->L, nullptr, 0, 0);
}

}  // namespace wsrelay::script
