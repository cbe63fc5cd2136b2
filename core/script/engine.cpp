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

void begin_call(ScriptEngine::Internal& in) {
  in.used = 0;
  if (in.budget_exceeded) {
    in.budget_exceeded = false;
  }
  lua_sethook(in.L, count_hook, LUA_MASKCOUNT, kHookStep);
}

int traceback_handler(lua_State* L) {
  const char* message = lua_tostring(L, 1);
  if (message == nullptr) message = luaL_tolstring(L, 1, nullptr);
  luaL_traceback(L, L, message, 1);
  return 1;
}

// Calls the function below nargs arguments with a traceback handler.
// On failure leaves nothing and puts the message's first line in error and the
// traceback in detail.
bool protected_call(lua_State* L, int nargs, int nresults, std::string& error, std::string* detail = nullptr) {
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

  lua_newtable(L);  // relay
  open_relay_core(L);
  open_relay_pubsub(L);
  open_relay_log(L);
  open_relay_time(L);
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
    routes.push_back({method, server::PathPattern(path), key});
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

  in.extensions = extension::Instances::create(engine->context_.extensions, *engine, error);
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
  lua_pop(L, 2);
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
  in.routes = std::move(routes);
  lua_settop(L, env - 1);
  return true;
}

std::string ScriptEngine::reload(const ScriptSource& source) {
  std::string error;
  if (!compile(*in_, source, error)) return error;
  source_name_ = source.name;
  return {};
}



ScriptEngine::~ScriptEngine() = default;

void ScriptEngine::collect_garbage() {
  // Under the instruction budget like any call, should a finalizer ever run
  // script code (the sandbox refuses __gc: safe_setmetatable).
  begin_call(*in_);
  lua_gc(in_->L, LUA_GCCOLLECT);
  lua_sethook(in_->L, nullptr, 0, 0);
}

// ---- dispatch -------------------------------------------------------------

namespace {

struct Job {
  ScriptEngine* engine = nullptr;
  Session* session = nullptr;
  std::string_view data;
  bool binary = false;
  json::JsonPtr root;             // decoded frame (JSON mode), or null
  bool flat = false;              // decoded by the fast path instead: flat_object, no root
  json::FlatObject flat_object;
  std::size_t parse_error_at = 0;
  std::string parse_error;
  std::string error_code;         // set when an error reply is to be sent by C++
  std::string error_message;
  std::string_view handler_name;  // for logs
  std::string type_name;          // the message's type: handler_name may point into it
  // A handler runs without a protected call of its own: if it raises, the
  // error unwinds to run_job's, which answers for it (handler_failed).
  bool in_handler = false;
  bool handler_has_msg = false;   // the decoded message goes to on_error too
  int close_code = 0;
  bool upstream_failed = false;
  bool upstream_retrying = false;
};

// A Lua string whole: lua_tostring's C string would end at an embedded NUL.
std::string lua_string(lua_State* L, int index) {
  std::size_t len = 0;
  const char* s = lua_tolstring(L, index, &len);
  return s != nullptr ? std::string(s, len) : std::string();
}

// For a log line: s as a JSON string, its control characters escaped.
std::string quoted(std::string_view s) {
  std::string out;
  json::append_json_string(out, s);
  return out;
}

bool push_handler(lua_State* L, const char* name) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, internal_of(L).handlers_ref);
  lua_getfield(L, -1, name);
  lua_remove(L, -2);
  if (lua_isfunction(L, -1)) return true;
  lua_pop(L, 1);
  return false;
}

std::string default_error_json(const Job& job, std::string_view code, std::string_view message) {
  std::string out = "{\"type\":\"error\"";
  if (job.flat) {
    if (const json::FlatMember* id = job.flat_object.find("id")) {
      out += ",\"id\":";
      out += id->json();  // as cJSON would print it (json/flat.hpp)
    }
  } else {
    const cJSON* root = job.root.get();
    const cJSON* id = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "id") : nullptr;
    if (id != nullptr) {
      out += ",\"id\":";
      out += json::print(id);
    }
  }
  out += ",\"code\":";
  json::append_json_string(out, code);
  out += ",\"message\":";
  json::append_json_string(out, message);
  out += "}";
  return out;
}

void count_error(Session& s, ScriptEngine& engine) {
  if (engine.context().stats != nullptr) ++engine.context().stats->errors_sent;
  (void)s;
}

// Sends the value on top of the stack (table or string) to the session; pops it.
// Returns false (and logs) if it cannot be encoded.
// `what` names the function whose reply it is, for the log: a hook
// ("on_error"), or with `handler` set, the handler of that name. Kept apart
// so the success path builds no string.
bool send_value(lua_State* L, Session& s, std::string_view what, const std::string& script, bool handler = false) {
  session::FramePtr frame;
  std::string error;
  if (!to_frame(L, -1, frame, error)) {
    lua_pop(L, 1);
    const std::string who = handler ? "handler '" + std::string(what) + "'" : std::string(what);
    log::error(script + ": " + who + " returned a reply that cannot be sent: " + error, session::log_fields(s));
    return false;
  }
  lua_pop(L, 1);
  s.send(frame);
  return true;
}

// Emits an error reply from inside a protected context. msg_index is the
// decoded message (0 if none).
void emit_error(lua_State* L, Job& job, std::string_view code, std::string_view message, int msg_index) {
  Internal& in = internal_of(L);
  Session& s = *job.session;
  count_error(s, *in.engine);
  // One line per error reply, so an operator can see why a client is unhappy.
  if (log::enabled(log::Level::Info)) {
    log::info("error " + std::string(code) + ": " + std::string(message), session::log_fields(s));
  }
  if (!in.budget_exceeded && push_handler(L, "on_error")) {
    push_session(L, s);
    lua_pushlstring(L, code.data(), code.size());
    lua_pushlstring(L, message.data(), message.size());
    if (msg_index != 0) lua_pushvalue(L, msg_index); else lua_pushnil(L);
    std::string error;
    if (protected_call(L, 4, 1, error)) {
      if (lua_istable(L, -1) || lua_type(L, -1) == LUA_TSTRING) {
        if (send_value(L, s, "on_error", in.engine->name())) return;
      } else {
        lua_pop(L, 1);
        return;  // the script chose to send nothing
      }
    } else {
      log::error(error, session::log_fields(s));
    }
  }
  s.send_text(default_error_json(job, code, message));
}

// Handles a handler's results (3 values on top of the stack): a reply, or nil
// plus an error code and message.
void handle_results(lua_State* L, Job& job, int msg_index) {
  const int r1 = lua_gettop(L) - 2;
  Session& s = *job.session;
  if (lua_istable(L, r1) || lua_type(L, r1) == LUA_TSTRING) {
    lua_pushvalue(L, r1);
    if (!send_value(L, s, job.handler_name, internal_of(L).engine->name(), true)) {
      if (internal_of(L).engine->context().stats != nullptr) ++internal_of(L).engine->context().stats->script_errors;
      emit_error(L, job, codes::kScriptError, "the handler's reply could not be encoded", msg_index);
    }
  } else if (!lua_toboolean(L, r1) && lua_type(L, r1 + 1) == LUA_TSTRING) {
    const std::string code = lua_tostring(L, r1 + 1);
    const std::string message = lua_type(L, r1 + 2) == LUA_TSTRING ? lua_tostring(L, r1 + 2) : code;
    emit_error(L, job, code, message, msg_index);
  }
  lua_settop(L, r1 - 1);
}

// Calls the handler already pushed, with the session and arg below... Stack on
// entry: fn, session, arg. Not a protected call: a failure unwinds to
// run_job (one protected call per message, not two), which logs it and
// sends the error reply (handler_failed_entry).
void call_handler(lua_State* L, Job& job, int msg_index, int nargs = 2) {
  job.in_handler = true;
  job.handler_has_msg = msg_index != 0;
  lua_call(L, nargs, 3);
  job.in_handler = false;
  handle_results(L, job, msg_index);
}

// limits.message_types: a per-connection bucket for each limited type. A
// refused message gets rate_limited (with its id echoed) and no handler runs;
// rate_limit_close_after refusals in a row close the connection with 1008,
// like the connection-wide limit.
bool admit_message_type(lua_State* L, Job& job, std::string_view type, int msg_index) {
  Internal& in = internal_of(L);
  const auto& rates = in.engine->context().message_type_rates;
  std::size_t index = 0;
  while (index < rates.size() && rates[index].type != type) ++index;
  if (index == rates.size()) return true;
  Session& s = *job.session;
  if (!s.type_rates) {
    s.type_rates = std::make_unique<session::TypeRateState>();
    for (const MessageTypeRate& rate : rates) s.type_rates->buckets.emplace_back(rate.per_second, rate.burst);
  }
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now().time_since_epoch()).count();
  session::TokenBucket& bucket = s.type_rates->buckets[index];
  if (bucket.take(now)) {
    s.type_rates->refused_in_a_row = 0;
    return true;
  }
  if (session::Stats* stats = in.engine->context().stats) ++stats->rate_limited;
  const int close_after = in.engine->context().rate_limit_close_after;
  if (close_after > 0 && ++s.type_rates->refused_in_a_row >= close_after) {
    log::warn("'" + std::string(type) + "' rate limit exceeded " + std::to_string(close_after) +
                  " times in a row; closing with 1008",
              session::log_fields(s));
    s.close(1008, "rate limit exceeded");
    return false;
  }
  emit_error(L, job, codes::kRateLimited,
             "too many '" + std::string(type) + "' messages; retry after " +
                 std::to_string(bucket.retry_after_ms(now)) + " ms",
             msg_index);
  return false;
}

// The decoded message as a Lua table, from whichever decoder read it.
void push_message(lua_State* L, const Job& job) {
  if (job.flat) {
    json::push_flat_object(L, job.flat_object);
  } else {
    json::push_json(L, job.root.get());
  }
}

int dispatch_entry(lua_State* L) {
  Job& job = *static_cast<Job*>(lua_touserdata(L, 1));
  Internal& in = internal_of(L);
  Session& s = *job.session;

  auto as_text = [&](const char* missing_code, const std::string& missing_message) {
    if (push_handler(L, "on_text")) {
      job.handler_name = "on_text";
      push_session(L, s);
      lua_pushlstring(L, job.data.data(), job.data.size());
      call_handler(L, job, 0);
    } else {
      emit_error(L, job, missing_code, missing_message, 0);
    }
  };

  if (job.binary) {
    if (push_handler(L, "on_binary")) {
      job.handler_name = "on_binary";
      push_session(L, s);
      lua_pushlstring(L, job.data.data(), job.data.size());
      call_handler(L, job, 0);
    } else {
      emit_error(L, job, codes::kBadRequest, "binary frames are not accepted on this endpoint", 0);
    }
    return 0;
  }
  if (!in.json_mode) {
    as_text(codes::kBadRequest.data(), "text frames are not accepted");
    return 0;
  }
  if (!job.flat && job.root == nullptr) {
    as_text(codes::kBadJson.data(), job.parse_error);
    return 0;
  }
  if (!job.flat && !cJSON_IsObject(job.root.get())) {
    as_text(codes::kBadRequest.data(), "a message must be a JSON object");
    return 0;
  }
  bool type_present = false;
  bool type_is_string = false;
  std::string& type_name = job.type_name;
  if (job.flat) {
    const json::FlatMember* type = job.flat_object.find(in.type_field);
    type_present = type != nullptr;
    type_is_string = type != nullptr && type->kind == json::FlatMember::Kind::String;
    if (type_is_string) type_name = type->string();
  } else {
    const cJSON* type = cJSON_GetObjectItemCaseSensitive(job.root.get(), in.type_field.c_str());
    type_present = type != nullptr;
    type_is_string = cJSON_IsString(type) && type->valuestring != nullptr;
    if (type_is_string) type_name = type->valuestring;
  }
  // limits.message_types applies to the message's type, even when the
  // on_message fallback handles it (type_name is about to name the handler).
  const bool type_limited = type_is_string && !in.engine->context().message_type_rates.empty();
  const std::string limited_type = type_limited ? type_name : std::string();
  bool found = false;
  if (type_is_string) {
    // on_* names are lifecycle hooks, never message types.
    found = type_name.rfind("on_", 0) != 0 && push_handler(L, type_name.c_str());
  }
  if (!found && push_handler(L, "on_message")) {
    found = true;
    type_name = "on_message";
  }
  if (session::Stats* stats = in.engine->context().stats) {
    const std::string_view counted = found ? std::string_view(type_name) : std::string_view("unknown");
    stats->messages_by_type.add(counted);
  }
  if (!found) {
    // The decoded message goes to on_error too, so the reply can echo its id.
    push_message(L, job);
    const int msg = lua_gettop(L);
    if (!type_present) {
      emit_error(L, job, codes::kBadRequest, "missing field '" + in.type_field + "'", msg);
    } else if (!type_is_string) {
      emit_error(L, job, codes::kBadRequest, "field '" + in.type_field + "' must be a string", msg);
    } else {
      emit_error(L, job, codes::kUnknownType, "unknown message type '" + type_name + "'", msg);
    }
    return 0;
  }
  job.handler_name = type_name;
  // Stack: job, fn. Keep the decoded message below the call so that an error
  // reply after a failed handler can still see it: job, msg, fn, session, msg.
  push_message(L, job);
  lua_insert(L, -2);
  const int msg_index = lua_gettop(L) - 1;
  if (type_limited && !admit_message_type(L, job, limited_type, msg_index)) return 0;
  push_session(L, s);
  lua_pushvalue(L, msg_index);
  call_handler(L, job, msg_index);
  return 0;
}

int open_entry(lua_State* L) {
  Job& job = *static_cast<Job*>(lua_touserdata(L, 1));
  push_session(L, *job.session);  // creates the session's userdata
  lua_pop(L, 1);
  if (push_handler(L, "on_open")) {
    job.handler_name = "on_open";
    push_session(L, *job.session);
    lua_pushnil(L);
    call_handler(L, job, 0);
  }
  return 0;
}

int close_entry(lua_State* L) {
  Job& job = *static_cast<Job*>(lua_touserdata(L, 1));
  if (push_handler(L, "on_close")) {
    push_session(L, *job.session);
    lua_pushinteger(L, job.close_code);
    lua_pushlstring(L, job.error_message.data(), job.error_message.size());
    std::string error;
    if (!protected_call(L, 3, 0, error)) {
      Internal& in = internal_of(L);
      if (in.engine->context().stats != nullptr) ++in.engine->context().stats->script_errors;
      log::error(in.engine->name() + ": handler 'on_close' failed: " + error,
                 session::log_fields(*job.session));
    }
  }
  return 0;
}

int upstream_open_entry(lua_State* L) {
  Job& job = *static_cast<Job*>(lua_touserdata(L, 1));
  if (push_handler(L, "on_upstream_open")) {
    job.handler_name = "on_upstream_open";
    push_session(L, *job.session);
    lua_pushnil(L);
    call_handler(L, job, 0);
  }
  return 0;
}

int upstream_message_entry(lua_State* L) {
  Job& job = *static_cast<Job*>(lua_touserdata(L, 1));
  if (!push_handler(L, "on_upstream")) return 0;
  job.handler_name = "on_upstream";
  push_session(L, *job.session);
  if (job.root != nullptr) {
    json::push_json(L, job.root.get());
  } else {
    lua_pushlstring(L, job.data.data(), job.data.size());
  }
  lua_pushlstring(L, job.data.data(), job.data.size());
  call_handler(L, job, 0, 3);
  return 0;
}

int upstream_close_entry(lua_State* L) {
  Job& job = *static_cast<Job*>(lua_touserdata(L, 1));
  if (!push_handler(L, "on_upstream_close")) return 0;
  job.handler_name = "on_upstream_close";
  push_session(L, *job.session);
  lua_pushinteger(L, job.close_code);
  lua_pushlstring(L, job.error_message.data(), job.error_message.size());
  lua_createtable(L, 0, 2);
  lua_pushboolean(L, job.upstream_failed);
  lua_setfield(L, -2, "failed");
  lua_pushboolean(L, job.upstream_retrying);
  lua_setfield(L, -2, "retrying");
  call_handler(L, job, 0, 4);
  return 0;
}

int error_entry(lua_State* L) {
  Job& job = *static_cast<Job*>(lua_touserdata(L, 1));
  int msg = 0;
  if (cJSON_IsObject(job.root.get())) {
    json::push_json(L, job.root.get());
    msg = lua_gettop(L);
  }
  emit_error(L, job, job.error_code, job.error_message, msg);
  return 0;
}

// After a handler raised (run_job): the error reply, through on_error with
// the decoded message when the handler had it.
int handler_failed_entry(lua_State* L) {
  Job& job = *static_cast<Job*>(lua_touserdata(L, 1));
  Internal& in = internal_of(L);
  int msg = 0;
  if (job.handler_has_msg) {
    push_message(L, job);
    msg = lua_gettop(L);
  }
  if (in.budget_exceeded) {
    emit_error(L, job, codes::kScriptTimeout, "the handler ran past its instruction budget", msg);
  } else {
    emit_error(L, job, codes::kScriptError, "the handler '" + std::string(job.handler_name) + "' failed", msg);
  }
  return 0;
}

}  // namespace

namespace {
// When Lua itself cannot answer: the error is counted and logged, and the
// client (unless `reply` is false: nobody is left to tell) gets the default
// error reply, built in C++.
void answer_without_lua(ScriptEngine::Internal& in, Job& job, const std::string& error, bool reply) {
  const bool timeout = in.budget_exceeded;
  if (in.engine->context().stats != nullptr) ++in.engine->context().stats->script_errors;
  log::error(in.engine->name() + ": " + error, session::log_fields(*job.session));
  if (!reply) return;
  job.session->send_text(default_error_json(
      job, timeout ? codes::kScriptTimeout : codes::kScriptError,
      timeout ? "the handler ran past its instruction budget" : "the script failed"));
}

void handler_failed(ScriptEngine::Internal& in, Job& job, const std::string& error, const std::string& detail) {
  lua_State* L = in.L;
  job.in_handler = false;
  const bool timeout = in.budget_exceeded;
  const ScriptContext& context = in.engine->context();
  if (context.stats != nullptr) {
    ++context.stats->script_errors;
    if (timeout) ++context.stats->script_timeouts;
  }
  log::error(in.engine->name() + ": handler '" + std::string(job.handler_name) + "' failed: " + error,
             session::log_fields(*job.session));
  if (detail.size() > error.size()) log::debug(detail, session::log_fields(*job.session));
  lua_settop(L, 0);
  lua_pushcfunction(L, handler_failed_entry);
  lua_pushlightuserdata(L, &job);
  std::string reply_error;
  if (!protected_call(L, 1, 0, reply_error)) {
    answer_without_lua(in, job, reply_error, true);  // the error path failed too (memory exhausted)
  }
}

void run_job(ScriptEngine::Internal& in, Job& job, lua_CFunction entry) {
  lua_State* L = in.L;
  begin_call(in);
  lua_pushcfunction(L, entry);
  lua_pushlightuserdata(L, &job);
  std::string error, detail;
  if (!protected_call(L, 1, 0, error, &detail)) {
    if (job.in_handler) {
      handler_failed(in, job, error, detail);
    } else {
      // Only reached when the error path itself failed (memory exhausted, or
      // the instruction budget tripping in on_error).
      answer_without_lua(in, job, error, entry != close_entry);
    }
  }
  lua_settop(L, 0);
  // Leave no budget-trip hook armed between calls.
  lua_sethook(L, nullptr, 0, 0);
}
}  // namespace

void ScriptEngine::on_open(Session& s) {
  Job job;
  job.engine = this;
  job.session = &s;
  run_job(*in_, job, open_entry);
}

void ScriptEngine::on_message(Session& s, std::string_view data, bool binary) {
  // Extension filters around the script (none: no cost beyond this test).
  extension::Instances* filters =
      in_->extensions != nullptr && in_->extensions->has_filters() ? in_->extensions.get() : nullptr;
  if (filters != nullptr && !filters->before_message(s, data, binary)) return;
  dispatch_message(s, data, binary);
  if (filters != nullptr) filters->after_message(s, data, binary);
}

void ScriptEngine::dispatch_message(Session& s, std::string_view data, bool binary) {
  Job job;
  job.engine = this;
  job.session = &s;
  job.data = data;
  job.binary = binary;
  if (!binary && in_->json_mode) {
    // Most messages are flat objects of strings and small numbers: scanned in
    // place; anything else goes through cJSON (json/flat.hpp).
    job.flat = json::scan_flat_object(data, job.flat_object);
    if (!job.flat) job.root = json::parse(data, &job.parse_error_at, &job.parse_error);
  }
  run_job(*in_, job, dispatch_entry);
}

void ScriptEngine::on_close(Session& s, int code, std::string_view reason) {
  Job job;
  job.engine = this;
  job.session = &s;
  job.error_message = std::string(reason);
  job.close_code = code;
  run_job(*in_, job, close_entry);
  release_session(in_->L, s);
}

void ScriptEngine::on_upstream_open(Session& s) {
  Job job;
  job.engine = this;
  job.session = &s;
  run_job(*in_, job, upstream_open_entry);
}

void ScriptEngine::on_upstream_message(Session& s, std::string_view data, bool binary) {
  if (!in_->has_on_upstream) {
    s.send(binary ? session::Frame::binary(data) : session::Frame::text(data));
    return;
  }
  Job job;
  job.engine = this;
  job.session = &s;
  job.data = data;
  job.binary = binary;
  if (!binary) job.root = json::parse(data);
  run_job(*in_, job, upstream_message_entry);
}

void ScriptEngine::on_upstream_close(Session& s, int code, std::string_view reason, bool failed,
                                     bool retrying) {
  Job job;
  job.upstream_failed = failed;
  job.upstream_retrying = retrying;
  job.engine = this;
  job.session = &s;
  job.close_code = code;
  job.error_message = std::string(reason);
  run_job(*in_, job, upstream_close_entry);
}

namespace {

struct HttpJob {
  const http::Request* request = nullptr;
  const std::string* key = nullptr;
  server::PathPattern::Params params;
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
  // A string is a 200 text body; a table says status, json or body, headers.
  job.response.status = 200;
  if (lua_type(L, -1) == LUA_TSTRING) {
    job.response.body = lua_string(L, -1);
    return 0;
  }
  if (!lua_istable(L, -1)) {
    job.response.status = 204;
    return 0;
  }
  const int r = lua_gettop(L);
  lua_getfield(L, r, "status");
  if (lua_isinteger(L, -1)) {
    const lua_Integer status = lua_tointeger(L, -1);
    job.response.status = status >= 100 && status <= 599 ? static_cast<int>(status) : 500;
  }
  lua_getfield(L, r, "json");
  if (!lua_isnil(L, -1)) {
    std::string encode_error;
    job.response.content_type = "application/json";
    if (!json::encode_lua(L, -1, job.response.body, encode_error)) {
      log::error(internal_of(L).engine->name() + ": http route '" + *job.key + "': " + encode_error);
      job.response.status = 500;
      job.response.body = R"({"error":"script_error"})";
      return 0;
    }
  } else {
    lua_getfield(L, r, "body");
    if (lua_type(L, -1) == LUA_TSTRING) job.response.body = lua_string(L, -1);
  }
  lua_settop(L, r);
  // A CR or LF in a header (name, value or content type) would let a script
  // split the response, and a name that is not an RFC 7230 token is no
  // header: the route's answer becomes a 500 that names the field.
  auto refuse = [&](const std::string& what) {
    Internal& in = internal_of(L);
    if (in.engine->context().stats != nullptr) ++in.engine->context().stats->script_errors;
    log::error(in.engine->name() + ": http route '" + *job.key + "': " + what);
    job.response = {};
    job.response.status = 500;
    job.response.content_type = "application/json";
    job.response.body = R"({"error":"script_error"})";
    return 0;
  };
  lua_getfield(L, r, "content_type");
  if (lua_type(L, -1) == LUA_TSTRING) {
    job.response.content_type = lua_string(L, -1);
    if (!http::is_field_value(job.response.content_type)) return refuse("content_type has a control character");
  }
  lua_getfield(L, r, "headers");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
        std::string name = lua_string(L, -2);
        std::string value = lua_string(L, -1);
        if (!http::is_token(name)) return refuse("header name " + quoted(name) + " is not a token");
        if (!http::is_field_value(value)) {
          return refuse("header '" + name + "' has a control character in its value");
        }
        job.response.headers.emplace_back(std::move(name), std::move(value));
      }
      lua_pop(L, 1);
    }
  }
  return 0;
}

}  // namespace

bool ScriptEngine::has_http_route(std::string_view method, std::string_view path) const {
  server::PathPattern::Params params;
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
  lua_settop(L, 0);
  lua_sethook(L, nullptr, 0, 0);
  return job.response;
}

void ScriptEngine::send_error(Session& s, std::string_view code, std::string_view message,
                              std::string_view request) {
  Job job;
  if (!request.empty() && in_->json_mode) job.root = json::parse(request);
  job.engine = this;
  job.session = &s;
  job.error_code = std::string(code);
  job.error_message = std::string(message);
  run_job(*in_, job, error_entry);
}

}  // namespace wsrelay::script
