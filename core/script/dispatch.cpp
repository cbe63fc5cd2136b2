// The dispatch half of the engine: one Job per event (open, message, close,
// upstream events, C++-side errors), run under the instruction budget, with
// the handler's results turned into frames and errors into replies.
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

// ---- dispatch -------------------------------------------------------------

namespace {


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
  frame::FramePtr frame;
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
// After the handler returned, directly or (it waited) when its call resumed.
int handler_returned(lua_State* L, int, lua_KContext context) {
  Job& job = *reinterpret_cast<Job*>(context);
  job.in_handler = false;
  handle_results(L, job, job.msg_index);
  return 0;
}

// Every entry ends with this call: if the handler waits, the continuation
// finishes the entry when the call resumes.
int call_handler(lua_State* L, Job& job, int msg_index, int nargs = 2) {
  job.in_handler = true;
  job.handler_has_msg = msg_index != 0;
  job.msg_index = msg_index;
  lua_callk(L, nargs, 3, reinterpret_cast<lua_KContext>(&job), handler_returned);
  return handler_returned(L, LUA_OK, reinterpret_cast<lua_KContext>(&job));
}

// limits.message_types, asked of the session's connection (its rate gate
// keeps the buckets and the one count of refusals in a row, and closes the
// session with 1008 when that count runs out). False: no handler runs.
bool admit_message_type(lua_State* L, Job& job, std::string_view type, int msg_index) {
  Session& s = *job.session;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now().time_since_epoch()).count();
  const session::MessageGate::Answer answer = s.gate->admit_type(type, now);
  switch (answer.verdict) {
    case session::MessageGate::Verdict::Pass:
      return true;
    case session::MessageGate::Verdict::Closed:
      return false;
    case session::MessageGate::Verdict::Refused:
      break;
  }
  emit_error(L, job, codes::kRateLimited,
             "too many '" + std::string(type) + "' messages; retry after " + std::to_string(answer.retry_after_ms) +
                 " ms",
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

  // A message handler runs: the connection's count of refusals in a row
  // starts again (session/message_gate.hpp).
  auto run_handler = [&](int msg_index) {
    if (s.gate != nullptr) s.gate->handler_ran();
    call_handler(L, job, msg_index);
  };
  auto as_text = [&](const char* missing_code, const std::string& missing_message) {
    if (push_handler(L, "on_text")) {
      job.handler_name = "on_text";
      push_session(L, s);
      lua_pushlstring(L, job.data.data(), job.data.size());
      run_handler(0);
    } else {
      emit_error(L, job, missing_code, missing_message, 0);
    }
  };

  if (job.binary) {
    if (push_handler(L, "on_binary")) {
      job.handler_name = "on_binary";
      push_session(L, s);
      lua_pushlstring(L, job.data.data(), job.data.size());
      run_handler(0);
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
  const bool type_limited = type_is_string && s.gate != nullptr && s.gate->limits_types();
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
  if (stats::Stats* stats = in.engine->context().stats) {
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
  run_handler(msg_index);
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
  if (job.session == nullptr) {
    // A timer: nobody to answer; the log says where.
    log::error(in.engine->name() + ": timer failed: " + error);
    if (detail.size() > error.size()) log::debug(detail);
    return;
  }
  log::error(in.engine->name() + ": handler '" + std::string(job.handler_name) + "' failed: " + error,
             session::log_fields(*job.session));
  if (detail.size() > error.size()) log::debug(detail, session::log_fields(*job.session));
  const int top = lua_gettop(L);
  lua_pushcfunction(L, handler_failed_entry);
  lua_pushlightuserdata(L, &job);
  std::string reply_error;
  if (!protected_call(L, 1, 0, reply_error)) {
    answer_without_lua(in, job, reply_error, true);  // the error path failed too (memory exhausted)
  }
  lua_settop(L, top);
}

// The jobs that run to completion (on_close, C++-side errors), on the main
// thread: nothing in them may wait.
void run_job(ScriptEngine::Internal& in, Job& job, lua_CFunction entry) {
  lua_State* L = in.L;
  Call* const outer = in.current;
  const std::uint64_t outer_used = in.used;
  in.current = nullptr;
  const int top = lua_gettop(L);
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
  // The job's replies are queued: what recovering sessions missed follows.
  release_holds(in);
  lua_settop(L, top);
  in.current = outer;
  in.used = outer_used;
  // Leave no budget-trip hook armed between calls.
  lua_sethook(L, nullptr, 0, 0);
  if (outer != nullptr) arm_budget(in, outer->co);
}

// A timer's callback (Job::timer_fn_ref), on a relay coroutine: it may wait.
int timer_entry(lua_State* L) {
  Job& job = *static_cast<Job*>(lua_touserdata(L, 1));
  lua_rawgeti(L, LUA_REGISTRYINDEX, job.timer_fn_ref);
  job.handler_name = "timer";
  job.in_handler = true;
  lua_callk(L, 0, 0, 0, [](lua_State*, int, lua_KContext) { return 0; });
  return 0;
}

// A new job on a relay coroutine, unless the session's handler is waiting:
// then it queues behind (false: the backlog is full).
std::unique_ptr<Call> new_call(ScriptEngine& engine, Internal& in, Session& s) {
  std::unique_ptr<Call> call = take_call(in);
  call->job.engine = &engine;
  call->job.session = &s;
  return call;
}
}  // namespace

void call_failed(Internal& in, Job& job, const std::string& error, const std::string& detail) {
  if (job.http) {
    if (in.engine->context().stats != nullptr && in.budget_exceeded) ++in.engine->context().stats->script_timeouts;
    http_failed(in, job, error);
  } else if (job.in_handler) {
    handler_failed(in, job, error, detail);
  } else if (job.session != nullptr) {
    answer_without_lua(in, job, error, true);
  } else {
    if (in.engine->context().stats != nullptr) ++in.engine->context().stats->script_errors;
    log::error(in.engine->name() + ": timer failed: " + error);
  }
}

void run_queued(Internal& in, Session& s, QueuedEvent& event) {
  ScriptEngine& engine = *in.engine;
  switch (event.kind) {
    case QueuedEvent::Kind::Message:
      engine.on_message(s, event.data, event.binary);
      break;
    case QueuedEvent::Kind::UpstreamOpen:
      engine.on_upstream_open(s);
      break;
    case QueuedEvent::Kind::UpstreamMessage:
      engine.on_upstream_message(s, event.data, event.binary);
      break;
    case QueuedEvent::Kind::UpstreamClose:
      engine.on_upstream_close(s, event.code, event.data, event.failed, event.retrying);
      break;
  }
}

void start_timer_call(Internal& in, std::unique_ptr<Call> call) {
  start_call(in, std::move(call), timer_entry);
}

void ScriptEngine::fire_timer(std::uint64_t id, bool repeating) { script::fire_timer(*in_, id, repeating); }

void ScriptEngine::on_open(Session& s) {
  start_call(*in_, new_call(*this, *in_, s), open_entry);
}

void ScriptEngine::on_message(Session& s, std::string_view data, bool binary) {
  if (session_busy(*in_, s)) {
    QueuedEvent event;
    event.data = std::string(data);
    event.binary = binary;
    if (!queue_event(*in_, s, std::move(event))) {
      const std::size_t n = in_->max_queued_events;
      send_error(s, codes::kBusy,
                 n == 0 ? std::string("a handler of this session is waiting and limits.waiting_messages is 0")
                        : std::to_string(n) + (n == 1 ? " message already waits" : " messages already wait") +
                              " behind a handler that is waiting (limits.waiting_messages)",
                 binary ? std::string_view() : data);
    }
    return;
  }
  // Extension filters around the script (none: no cost beyond this test).
  script::Extensions* filters =
      in_->extensions != nullptr && in_->extensions->has_filters() ? in_->extensions.get() : nullptr;
  if (filters != nullptr && !filters->before_message(s, data, binary)) return;
  dispatch_message(s, data, binary);
  if (filters != nullptr) filters->after_message(s, data, binary);
}

void ScriptEngine::dispatch_message(Session& s, std::string_view data, bool binary) {
  std::unique_ptr<Call> call = new_call(*this, *in_, s);
  Job& job = call->job;
  job.data = data;
  job.binary = binary;
  if (!binary && in_->json_mode) {
    // Most messages are flat objects of strings and small numbers: scanned in
    // place; anything else goes through cJSON (json/flat.hpp).
    job.flat = json::scan_flat_object(data, job.flat_object);
    if (!job.flat) job.root = json::parse(data, &job.parse_error_at, &job.parse_error);
  }
  start_call(*in_, std::move(call), dispatch_entry);
}

void ScriptEngine::on_close(Session& s, int code, std::string_view reason) {
  // A handler still waiting for this session is abandoned (its answer will
  // be dropped), and what queued behind it with it.
  cancel_session_calls(*in_, s);
  Job job;
  job.engine = this;
  job.session = &s;
  job.error_message = std::string(reason);
  job.close_code = code;
  run_job(*in_, job, close_entry);
  release_session(in_->L, s);
}

void ScriptEngine::on_upstream_open(Session& s) {
  if (session_busy(*in_, s)) {
    queue_event(*in_, s, {QueuedEvent::Kind::UpstreamOpen, {}, false, 0, false, false});
    return;
  }
  start_call(*in_, new_call(*this, *in_, s), upstream_open_entry);
}

void ScriptEngine::on_upstream_message(Session& s, std::string_view data, bool binary) {
  if (!in_->has_on_upstream) {
    s.send(binary ? frame::Frame::binary(data) : frame::Frame::text(data));
    return;
  }
  if (session_busy(*in_, s)) {
    // Upstream frames are not refused when many wait: the upstream's own
    // pace is bounded by the session's outbound queue.
    queue_event(*in_, s, {QueuedEvent::Kind::UpstreamMessage, std::string(data), binary, 0, false, false});
    return;
  }
  std::unique_ptr<Call> call = new_call(*this, *in_, s);
  Job& job = call->job;
  job.data = data;
  job.binary = binary;
  if (!binary) job.root = json::parse(data);
  start_call(*in_, std::move(call), upstream_message_entry);
}

void ScriptEngine::on_upstream_close(Session& s, int code, std::string_view reason, bool failed,
                                     bool retrying) {
  if (session_busy(*in_, s)) {
    queue_event(*in_, s, {QueuedEvent::Kind::UpstreamClose, std::string(reason), false, code, failed, retrying});
    return;
  }
  std::unique_ptr<Call> call = new_call(*this, *in_, s);
  Job& job = call->job;
  job.upstream_failed = failed;
  job.upstream_retrying = retrying;
  job.close_code = code;
  job.error_message = std::string(reason);
  start_call(*in_, std::move(call), upstream_close_entry);
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
