// bridge_extension: what scripts see of extension plugins — `require
// "relay.<name>"` (and relay.<name>) for their modules, relay.auth for their
// auth providers — and the Lua half of the plugin API table.
// A plugin's function never runs with Lua able to raise through it: the
// arguments are classified before the call, results are collected in C++ and
// pushed after it returns, and errors are raised once the plugin is done.
#include "script/extension_host.hpp"
#include "script/extensions.hpp"
#include "json/json.hpp"
#include "json/lua_json.hpp"
#include "script/engine_internal.hpp"

#include <deque>
#include <variant>

struct wsrelay_call {
  lua_State* L = nullptr;
  wsrelay_host* host = nullptr;
  int nargs = 0;
  std::vector<int> types;                        // wsrelay_type per argument
  std::vector<wsrelay::session::Session*> sessions;  // per argument (null unless an open session)
  std::deque<std::string> json_args;             // stable storage for arg_json
  using Result = std::variant<std::monostate, bool, double, std::string, wsrelay::json::JsonPtr>;
  std::vector<Result> results;
  bool failed = false;
  std::string error;
};

namespace wsrelay::script {
namespace {

const char* const kModulesKey = "wsrelay.extension_modules";

bool valid_index(const wsrelay_call* call, int index) {
  return call != nullptr && index >= 1 && index <= call->nargs;
}

int classify(lua_State* L, int index, session::Session*& session) {
  session = nullptr;
  switch (lua_type(L, index)) {
    case LUA_TNONE: return WSRELAY_TYPE_NONE;
    case LUA_TNIL: return WSRELAY_TYPE_NIL;
    case LUA_TBOOLEAN: return WSRELAY_TYPE_BOOLEAN;
    case LUA_TNUMBER: return WSRELAY_TYPE_NUMBER;
    case LUA_TSTRING: return WSRELAY_TYPE_STRING;
    case LUA_TTABLE: return WSRELAY_TYPE_TABLE;
    case LUA_TUSERDATA:
      if (luaL_testudata(L, index, "wsrelay.session") != nullptr) {
        session = to_session(L, index);
        return WSRELAY_TYPE_SESSION;
      }
      return WSRELAY_TYPE_OTHER;
    default: return WSRELAY_TYPE_OTHER;
  }
}

// A plugin's Lua function: upvalue 1 the host, upvalue 2 its wsrelay_function_reg.
int call_plugin(lua_State* L) {
  auto* host = static_cast<wsrelay_host*>(lua_touserdata(L, lua_upvalueindex(1)));
  const auto* reg = static_cast<const wsrelay_function_reg*>(lua_touserdata(L, lua_upvalueindex(2)));
  wsrelay_call call;
  call.L = L;
  call.host = host;
  call.nargs = lua_gettop(L);
  call.types.resize(static_cast<std::size_t>(call.nargs));
  call.sessions.resize(static_cast<std::size_t>(call.nargs));
  for (int i = 1; i <= call.nargs; ++i) {
    call.types[static_cast<std::size_t>(i - 1)] = classify(L, i, call.sessions[static_cast<std::size_t>(i - 1)]);
  }
  const int n = reg->function(host->state, &call);
  if (call.failed || n < 0) {
    const std::string message = call.error.empty() ? std::string(reg->name) + ": failed" : call.error;
    return luaL_error(L, "%s", message.c_str());
  }
  luaL_checkstack(L, static_cast<int>(call.results.size()) + 2, "too many results");
  for (const auto& r : call.results) {
    if (std::holds_alternative<bool>(r)) {
      lua_pushboolean(L, std::get<bool>(r) ? 1 : 0);
    } else if (std::holds_alternative<double>(r)) {
      const double d = std::get<double>(r);
      const auto i = static_cast<lua_Integer>(d);
      if (static_cast<double>(i) == d) lua_pushinteger(L, i); else lua_pushnumber(L, d);
    } else if (std::holds_alternative<std::string>(r)) {
      const std::string& s = std::get<std::string>(r);
      lua_pushlstring(L, s.data(), s.size());
    } else if (std::holds_alternative<json::JsonPtr>(r)) {
      json::push_json(L, std::get<json::JsonPtr>(r).get());
    } else {
      lua_pushnil(L);
    }
  }
  return static_cast<int>(call.results.size());
}

script::Extensions* instances_of(lua_State* L) { return internal_of(L).extensions.get(); }

// Pushes the module's table, built once per state.
void push_module(lua_State* L, const script::Extensions::Module& m) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, kModulesKey) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, kModulesKey);
  }
  if (lua_getfield(L, -1, m.name.c_str()) == LUA_TTABLE) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  lua_newtable(L);
  for (const wsrelay_function_reg* f = m.module->functions; f != nullptr && f->name != nullptr; ++f) {
    if (f->function == nullptr) continue;
    lua_pushlightuserdata(L, m.host);
    lua_pushlightuserdata(L, const_cast<wsrelay_function_reg*>(f));
    lua_pushcclosure(L, trampoline<call_plugin>, 2);
    lua_setfield(L, -2, f->name);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, m.name.c_str());
  lua_remove(L, -2);
}

std::string module_list(lua_State* L) {
  std::string names;
  if (script::Extensions* set = instances_of(L)) {
    for (const auto& m : set->modules()) names += (names.empty() ? "relay." : ", relay.") + m.name;
  }
  return names.empty() ? "none" : names;
}

// require(name): only "relay.<module>" of an enabled extension.
int relay_require(lua_State* L) {
  size_t len = 0;
  const char* name = luaL_checklstring(L, 1, &len);
  const std::string_view full(name, len);
  constexpr std::string_view kPrefix = "relay.";
  const script::Extensions* set = instances_of(L);
  if (full.rfind(kPrefix, 0) == 0 && set != nullptr) {
    if (const auto* m = set->find_module(full.substr(kPrefix.size()))) {
      push_module(L, *m);
      return 1;
    }
  }
  return luaL_error(L,
                    "module '%s' not found: scripts can require only the relay.<name> modules of enabled "
                    "extensions (available: %s)",
                    std::string(full).c_str(), module_list(L).c_str());
}

// relay.auth(token [, provider]) -> user, claims | nil, reason
int relay_auth(lua_State* L) {
  size_t len = 0;
  const char* token = luaL_checklstring(L, 1, &len);
  const char* provider = luaL_optstring(L, 2, "");
  script::Extensions* set = instances_of(L);
  std::optional<script::AuthOutcome> outcome;
  if (set != nullptr) outcome = set->authenticate(provider, std::string_view(token, len));
  if (!outcome) {
    if (*provider != '\0') return luaL_argerror(L, 2, "no auth provider of that name");
    lua_pushnil(L);
    lua_pushliteral(L, "no auth provider");
    return 2;
  }
  if (!outcome->accepted) {
    lua_pushnil(L);
    lua_pushlstring(L, outcome->reason.data(), outcome->reason.size());
    return 2;
  }
  lua_pushlstring(L, outcome->user.data(), outcome->user.size());
  json::JsonPtr claims = outcome->claims_json.empty() ? nullptr : json::parse(outcome->claims_json);
  if (claims != nullptr) {
    json::push_json(L, claims.get());
  } else {
    lua_newtable(L);
  }
  return 2;
}

// --- attributes, run under lua_pcall on the engine's state ---

struct AttrJob {
  session::Session* session;
  const char* key;
  const char* value;  // set: null means nil
  size_t len;
  bool set;
  std::string* out;
  bool found = false;
};

int attr_entry(lua_State* L) {
  auto* job = static_cast<AttrJob*>(lua_touserdata(L, 1));
  push_session(L, *job->session);
  lua_getiuservalue(L, -1, 1);
  if (job->set) {
    if (job->value != nullptr) lua_pushlstring(L, job->value, job->len); else lua_pushnil(L);
    lua_setfield(L, -2, job->key);
    return 0;
  }
  lua_getfield(L, -1, job->key);
  if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
    size_t n = 0;
    const char* text = lua_tolstring(L, -1, &n);
    job->out->assign(text, n);
    job->found = true;
  }
  return 0;
}

bool run_attr_job(wsrelay_host* host, AttrJob& job) {
  if (host == nullptr || host->engine == nullptr || job.session == nullptr || job.key == nullptr) return false;
  if (!job.session->attached() || job.session->info().endpoint != host->engine->context().endpoint) return false;
  lua_State* L = host->engine->internal()->L;
  if (!lua_checkstack(L, 4)) return false;
  const int top = lua_gettop(L);
  lua_pushcfunction(L, attr_entry);
  lua_pushlightuserdata(L, &job);
  const int status = lua_pcall(L, 1, 0, 0);
  lua_settop(L, top);
  return status == LUA_OK;
}

}  // namespace

void open_relay_extensions(lua_State* L, int env) {
  lua_pushcfunction(L, trampoline<relay_auth>);
  lua_setfield(L, -2, "auth");
  lua_pushcfunction(L, trampoline<relay_require>);
  lua_setfield(L, env, "require");
  script::Extensions* set = instances_of(L);
  if (set == nullptr) return;
  // Each module is also relay.<name>, as relay.jwt was before modules existed.
  for (const auto& m : set->modules()) {
    if (lua_getfield(L, -1, m.name.c_str()) != LUA_TNIL) {
      luaL_error(L, "extension '%s': module name '%s' clashes with relay.%s", m.host->name.c_str(), m.name.c_str(),
                 m.name.c_str());
    }
    lua_pop(L, 1);
    push_module(L, m);
    lua_setfield(L, -2, m.name.c_str());
  }
}

}  // namespace wsrelay::script

namespace wsrelay::script::extension_lua {

int arg_count(wsrelay_call* call) noexcept { return call != nullptr ? call->nargs : 0; }

int arg_type(wsrelay_call* call, int index) noexcept {
  return script::valid_index(call, index) ? call->types[static_cast<std::size_t>(index - 1)] : WSRELAY_TYPE_NONE;
}

const char* arg_string(wsrelay_call* call, int index, size_t* len) noexcept {
  if (len != nullptr) *len = 0;
  if (arg_type(call, index) != WSRELAY_TYPE_STRING) return nullptr;
  return lua_tolstring(call->L, index, len);  // a string already: no conversion, no allocation
}

double arg_number(wsrelay_call* call, int index) noexcept {
  return arg_type(call, index) == WSRELAY_TYPE_NUMBER ? static_cast<double>(lua_tonumber(call->L, index)) : 0.0;
}

int arg_boolean(wsrelay_call* call, int index) noexcept {
  return script::valid_index(call, index) ? lua_toboolean(call->L, index) : 0;
}

const char* arg_json(wsrelay_call* call, int index, size_t* len) noexcept {
  if (len != nullptr) *len = 0;
  if (arg_type(call, index) != WSRELAY_TYPE_TABLE) return nullptr;
  try {
    std::string text, why;
    if (!json::encode_lua(call->L, index, text, why)) {  // never raises
      call->error = "argument " + std::to_string(index) + ": " + why;
      return nullptr;
    }
    call->json_args.push_back(std::move(text));
    if (len != nullptr) *len = call->json_args.back().size();
    return call->json_args.back().c_str();
  } catch (...) {
    return nullptr;
  }
}

wsrelay_session* arg_session(wsrelay_call* call, int index) noexcept {
  if (arg_type(call, index) != WSRELAY_TYPE_SESSION) return nullptr;
  return reinterpret_cast<wsrelay_session*>(call->sessions[static_cast<std::size_t>(index - 1)]);
}

namespace {
template <typename T>
void push(wsrelay_call* call, T&& value) noexcept {
  if (call == nullptr) return;
  try {
    call->results.emplace_back(std::forward<T>(value));
  } catch (...) {
    call->failed = true;
    call->error = "out of memory";
  }
}
}  // namespace

void push_nil(wsrelay_call* call) noexcept { push(call, std::monostate{}); }
void push_boolean(wsrelay_call* call, int value) noexcept { push(call, value != 0); }
void push_number(wsrelay_call* call, double value) noexcept { push(call, value); }

void push_string(wsrelay_call* call, const char* data, size_t len) noexcept {
  if (data == nullptr) {
    push_nil(call);
    return;
  }
  try {
    push(call, std::string(data, len));
  } catch (...) {
    if (call != nullptr) call->failed = true;
  }
}

int push_json(wsrelay_call* call, const char* text, size_t len) noexcept {
  if (call == nullptr || text == nullptr) return -1;
  try {
    json::JsonPtr root = json::parse(std::string_view(text, len));
    if (root == nullptr) return -1;
    push(call, std::move(root));
    return 0;
  } catch (...) {
    return -1;
  }
}

void error(wsrelay_call* call, const char* message) noexcept {
  if (call == nullptr) return;
  call->failed = true;
  try {
    call->error = message != nullptr ? message : "error";
  } catch (...) {
  }
}

wsrelay_host* call_host(wsrelay_call* call) noexcept { return call != nullptr ? call->host : nullptr; }

const char* session_attr(wsrelay_host* host, wsrelay_session* session, const char* key, size_t* len) noexcept {
  if (len != nullptr) *len = 0;
  try {
    std::string value;
    script::AttrJob job{reinterpret_cast<session::Session*>(session), key, nullptr, 0, false, &value};
    if (!script::run_attr_job(host, job) || !job.found) return nullptr;
    host->scratch = std::move(value);
    if (len != nullptr) *len = host->scratch.size();
    return host->scratch.c_str();
  } catch (...) {
    return nullptr;
  }
}

int session_set_attr(wsrelay_host* host, wsrelay_session* session, const char* key, const char* value,
                     size_t len) noexcept {
  try {
    script::AttrJob job{reinterpret_cast<session::Session*>(session), key, value, len, true, nullptr};
    return script::run_attr_job(host, job) ? 0 : -1;
  } catch (...) {
    return -1;
  }
}

}  // namespace wsrelay::script::extension_lua
