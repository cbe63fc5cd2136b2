// engine_internal: what the engine's translation units share — the per-state
// record reachable from any lua_CFunction, the exception trampoline, and the
// session userdata helpers. Not part of the engine's interface.
#pragma once

#include "script/extensions.hpp"
#include "json/lua_json.hpp"
#include "script/engine.hpp"
#include "script/job.hpp"
#include "http/handshake.hpp"
#include "http/path_pattern.hpp"

#include <lua.hpp>

#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace wsrelay::script {

// A relay coroutine and the job it runs. Every waitable job (a message, an
// open, an upstream event, a timer) runs on one; a call that finishes gives
// its coroutine back for the next job, a call that waits keeps it
// (calls.cpp).
struct Call {
  lua_State* co = nullptr;
  int ref = LUA_NOREF;         // keeps co alive in the registry
  Job job;
  std::uint64_t used = 0;      // instructions counted, across resumes
  std::uint64_t wait_id = 0;   // non-zero while it waits
};

// An event for a session whose handler is waiting: handled after it, in order.
struct QueuedEvent {
  enum class Kind { Message, UpstreamOpen, UpstreamMessage, UpstreamClose } kind = Kind::Message;
  std::string data;
  bool binary = false;
  int code = 0;
  bool failed = false;
  bool retrying = false;
};

struct Backlog {
  std::uint64_t wait_id = 0;   // the session's call that waits (0: none, the backlog drains)
  std::deque<QueuedEvent> events;
};

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
  bool has_on_upgrade = false;      // cached: an upgrade without the hook skips Lua
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

  // Waiting calls (calls.cpp).
  std::vector<std::unique_ptr<Call>> spare_calls;   // finished: their coroutines are reused
  Call* current = nullptr;                          // the call running now, if any
  std::unordered_map<std::uint64_t, std::unique_ptr<Call>> waiting;  // by wait id
  std::unordered_set<const lua_State*> call_threads;  // every relay coroutine, for the guards
  std::unordered_map<const session::Session*, Backlog> busy;  // sessions with a waiting call
  std::uint64_t last_wait_id = 0;
  const session::Session* draining = nullptr;       // its queued events are being handled now
  std::size_t max_queued_events = 64;               // limits.waiting_messages
  // Timers (bridge_timer.cpp): each live timer's callback.
  std::unordered_map<std::uint64_t, int> timer_refs;
  std::unordered_set<std::uint64_t> timers_running;  // an every() whose last run still waits

  ~Internal();
};

// The per-state record, stored in the state's extra space.
ScriptEngine::Internal& internal_of(lua_State* L);

// Starts a top-level call: a fresh instruction budget, the counting hook armed.
void begin_call(ScriptEngine::Internal& in);
// Arms the counting hook on a relay coroutine (the budget itself is in.used).
void arm_budget(ScriptEngine::Internal& in, lua_State* thread);

// ---- waiting calls (calls.cpp) ----
// A call ready to run a new job (its Job reset).
std::unique_ptr<Call> take_call(ScriptEngine::Internal& in);
// Runs entry(job) on the call's coroutine until it finishes or waits.
void start_call(ScriptEngine::Internal& in, std::unique_ptr<Call> call, lua_CFunction entry);
// Resumes the call waiting under wait_id with what push leaves on its stack
// (push returns how many values). Nothing happens if it no longer waits (its
// session closed, the script was reloaded away): the answer is dropped.
void resume_waiting(ScriptEngine::Internal& in, std::uint64_t wait_id, const std::function<int(lua_State*)>& push);
// In a waiting function, before lua_yield: registers the running call as
// waiting and returns its wait id; raises (naming `what`) where waiting is
// not possible: on_close, on_upgrade, on_error, a coroutine the script made,
// inside a metamethod.
std::uint64_t begin_wait(lua_State* L, const char* what);
// The session's handler waits: its next events queue behind it.
inline bool session_busy(const ScriptEngine::Internal& in, const session::Session& s) {
  return !in.busy.empty() && in.draining != &s && in.busy.count(&s) != 0;
}
// False when the backlog is full (limits.waiting_messages).
bool queue_event(ScriptEngine::Internal& in, const session::Session& s, QueuedEvent event);
// The session is closing: its waiting call is abandoned, its backlog dropped.
void cancel_session_calls(ScriptEngine::Internal& in, const session::Session& s);
// coroutine.yield/resume/close that refuse the relay's own coroutines.
void open_coroutine_guards(lua_State* L, int env);
// dispatch.cpp: a call raised (handler error, budget) — log, count, answer.
void call_failed(ScriptEngine::Internal& in, Job& job, const std::string& error, const std::string& detail);
// dispatch.cpp: starts a timer's call (Job::timer_fn_ref, timer_id set).
void start_timer_call(ScriptEngine::Internal& in, std::unique_ptr<Call> call);
// bridge_timer.cpp
void fire_timer(ScriptEngine::Internal& in, std::uint64_t id, bool repeating);
void cancel_timers(ScriptEngine::Internal& in, const std::vector<std::uint64_t>& ids);
// http_route.cpp: an http route's call raised — logged, counted, 500.
void http_failed(ScriptEngine::Internal& in, Job& job, const std::string& error);
// dispatch.cpp: a queued event of a session whose call finished.
void run_queued(ScriptEngine::Internal& in, session::Session& s, QueuedEvent& event);

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

// name = value pairs as a table (a fresh one: the script may change it).
inline void push_fields(lua_State* L, const std::vector<std::pair<std::string, std::string>>& fields) {
  lua_createtable(L, 0, static_cast<int>(fields.size()));
  for (const auto& [name, value] : fields) {
    lua_pushlstring(L, name.data(), name.size());
    lua_pushlstring(L, value.data(), value.size());
    lua_rawset(L, -3);
  }
}

// An http route's (or on_upgrade's refusal's) answer at index r. False, and
// what is wrong, when it cannot be a response head (http_route.cpp).
bool read_response(lua_State* L, int r, http::Response& response, std::string& problem);

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
void open_relay_timers(lua_State* L);  // after, every
void open_relay_http(lua_State* L);    // http.request
void open_relay_json(lua_State* L);    // json.encode/decode/array, null
// auth, env.require, and relay.<module> for each extension module
void open_relay_extensions(lua_State* L, int env);

}  // namespace wsrelay::script
