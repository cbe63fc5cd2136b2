// engine_internal: what the engine's translation units share — the per-state
// record reachable from any lua_CFunction, the exception trampoline, and the
// session userdata helpers. Not part of the engine's interface.
#pragma once

#include "script/extensions.hpp"
#include "json/lua_json.hpp"
#include "script/engine.hpp"
#include "http/path_pattern.hpp"

#include <lua.hpp>

#include <exception>
#include <string>
#include <vector>

namespace wsrelay::script {

struct ScriptEngine::Internal {
  ScriptEngine* engine = nullptr;
  lua_State* L = nullptr;
  std::size_t memory_used = 0;
  std::size_t memory_limit = 0;
  std::uint64_t budget = 0;         // instructions allowed per top-level call
  std::uint64_t used = 0;           // instructions counted in this call
  bool budget_exceeded = false;
  int handlers_ref = LUA_NOREF;     // the table the script returned
  int env_ref = LUA_NOREF;          // the script's _ENV
  bool json_mode = true;            // false: every text frame goes to on_text
  std::string type_field = "type";  // the field whose value picks the handler
  bool has_on_upstream = false;     // cached: the forwarding fast path skips Lua
  struct Route {
    std::string method;
    http::PathPattern pattern;
    std::string key;                // "GET /path" as written, to find the function
  };
  std::vector<Route> routes;
  // The script's extension plugins (modules, filters, auth providers).
  std::unique_ptr<script::Extensions> extensions;
  // Sessions that recovered a channel in the running job: their missed
  // publications wait until the job's reply is queued (release_holds).
  std::vector<session::Session*> holding;

  ~Internal();
};

// The per-state record, stored in the state's extra space.
ScriptEngine::Internal& internal_of(lua_State* L);

// Starts a top-level call: a fresh instruction budget, the counting hook armed.
void begin_call(ScriptEngine::Internal& in);

// Calls the function below nargs arguments with a traceback handler.
// On failure leaves nothing and puts the message's first line in error and
// the traceback in detail.
bool protected_call(lua_State* L, int nargs, int nresults, std::string& error, std::string* detail = nullptr);

// A Lua string whole: lua_tostring's C string would end at an embedded NUL.
inline std::string lua_string(lua_State* L, int index) {
  std::size_t len = 0;
  const char* s = lua_tolstring(L, index, &len);
  return s != nullptr ? std::string(s, len) : std::string();
}

// For a log line: s as a JSON string, its control characters escaped.
inline std::string quoted(std::string_view s) {
  std::string out;
  json::append_json_string(out, s);
  return out;
}

// Every C function reachable from Lua goes through this: a C++ exception
// becomes a Lua error instead of unwinding through the interpreter.
template <lua_CFunction F>
int trampoline(lua_State* L) {
  try {
    return F(L);
  } catch (const std::exception& e) {
    return luaL_error(L, "%s", e.what());
  }
}

// Session userdata.
void open_session_bridge(lua_State* L);
void push_session(lua_State* L, session::Session& s);  // the session's one userdata
session::Session* check_session(lua_State* L, int index);  // raises on wrong type / closed
session::Session* to_session(lua_State* L, int index);     // nullptr if not an open session
void release_session(lua_State* L, session::Session& s);   // invalidates the userdata

// Turns the value at index (table → JSON, string → as is) into a frame.
// Returns false with a reason if the value cannot be sent.
bool to_frame(lua_State* L, int index, frame::FramePtr& frame, std::string& error);

// Channels, shared by the pubsub and session bridges (bridge_pubsub.cpp).
std::string_view check_channel(lua_State* L, int index);  // a non-empty string
pubsub::Hub& hub_of(lua_State* L);                          // raises without one
// Reads {seq = <integer >= 0>, epoch = <string>} at index into out; raises an
// argument error naming `what` ("since.seq must be ...") otherwise.
void check_position(lua_State* L, int index, const char* what, pubsub::Position& out);
// Drops the holds of recovering sessions (Session::hold): called when a job's
// replies have been queued.
void release_holds(ScriptEngine::Internal& in);

// The relay table, area by area; each adds its functions to the table on top.
void open_relay_core(lua_State* L);    // send, session, stats, config, options
void open_relay_pubsub(lua_State* L);  // publish, subscribers, next_seq, channels
void open_relay_log(lua_State* L);     // log
void open_relay_time(lua_State* L);    // now, time
void open_relay_json(lua_State* L);    // json.encode/decode/array, null
// auth, env.require, and relay.<module> for each extension module
void open_relay_extensions(lua_State* L, int env);

}  // namespace wsrelay::script
