// calls: handlers that wait. Every waitable job runs on a relay coroutine; a
// waiting function (relay.http.request) registers the call and yields it; the
// loop goes on; the answer resumes it where it stopped. A session whose call
// waits gets its next events queued behind it, in order.
//
// The instruction budget is the call's, across all its resumes (Call::used).
// Only the relay's own coroutine may wait: a coroutine the script made cannot
// (its resume would return to the script, not to the loop), and the guards
// below keep the script from resuming, closing or yielding the relay's.
#include "script/engine_internal.hpp"

#include "session/log_fields.hpp"
#include "util/log.hpp"

namespace wsrelay::script {
using Internal = ScriptEngine::Internal;

std::unique_ptr<Call> take_call(Internal& in) {
  std::unique_ptr<Call> call;
  if (!in.spare_calls.empty()) {
    call = std::move(in.spare_calls.back());
    in.spare_calls.pop_back();  // its job was reset when it was given back
  } else {
    call = std::make_unique<Call>();
    call->co = lua_newthread(in.L);
    call->ref = luaL_ref(in.L, LUA_REGISTRYINDEX);
    in.call_threads.insert(call->co);
  }
  call->used = 0;
  call->wait_id = 0;
  return call;
}

namespace {

void give_back(Internal& in, std::unique_ptr<Call> call) {
  lua_settop(call->co, 0);
  call->job.reset();  // its message goes now, not at the next job
  // A handful kept for reuse; the rest go (a burst of waiting calls is over).
  if (in.spare_calls.size() < 8) {
    in.spare_calls.push_back(std::move(call));
  } else {
    in.call_threads.erase(call->co);
    luaL_unref(in.L, LUA_REGISTRYINDEX, call->ref);
  }
}

// A call whose coroutine must not run again: one that failed (an error
// raised inside the count hook leaves the thread's hooks off for good — a
// reset does not turn them back on), or one abandoned while it waited.
void discard(Internal& in, std::unique_ptr<Call> call) {
  lua_resetthread(call->co);  // closes its pending to-be-closed variables
  in.call_threads.erase(call->co);
  luaL_unref(in.L, LUA_REGISTRYINDEX, call->ref);
}

// The session's queued events, until one of them waits again.
void drain(Internal& in, session::Session* s) {
  for (;;) {
    auto it = in.busy.find(s);
    if (it == in.busy.end() || it->second.wait_id != 0) return;
    if (it->second.events.empty() || s->closing()) {
      in.busy.erase(it);
      return;
    }
    QueuedEvent event = std::move(it->second.events.front());
    it->second.events.pop_front();
    const session::Session* outer = in.draining;
    in.draining = s;
    run_queued(in, *s, event);
    in.draining = outer;
  }
}

int traceback_of(lua_State* L) {
  luaL_traceback(L, static_cast<lua_State*>(lua_touserdata(L, 1)), lua_tostring(L, 2), 0);
  return 1;
}

// Runs (or resumes with nargs values on its stack) the call until it
// finishes, fails or waits.
void run(Internal& in, std::unique_ptr<Call> call, int nargs) {
  lua_State* co = call->co;
  Call* const outer = in.current;
  const std::uint64_t outer_used = in.used;
  in.current = call.get();
  in.used = call->used;
  in.budget_exceeded = false;
  arm_budget(in, co);
  int nresults = 0;
  const int status = lua_resume(co, in.L, nargs, &nresults);
  call->used = in.used;
  in.current = outer;
  in.used = outer_used;
  lua_sethook(co, nullptr, 0, 0);
  if (outer != nullptr) arm_budget(in, outer->co); else lua_sethook(in.L, nullptr, 0, 0);

  session::Session* s = call->job.session;
  const std::uint64_t timer = call->job.timer_id;
  if (status == LUA_YIELD && call->wait_id != 0) {
    call->job.own_data();
    const std::uint64_t id = call->wait_id;
    if (s != nullptr) in.busy[s].wait_id = id;
    in.waiting.emplace(id, std::move(call));
    return;
  }
  if (status == LUA_OK || status == LUA_YIELD) {
    // (A yield that did not wait cannot happen: the guards refuse it.)
    release_holds(in);
    if (status == LUA_YIELD) discard(in, std::move(call)); else give_back(in, std::move(call));
  } else {
    const char* text = lua_tostring(co, -1);
    std::string error = text != nullptr ? text : "error object is not a string";
    if (status == LUA_ERRMEM) error = "not enough memory (script memory limit reached)";
    std::string detail = error;
    if (status != LUA_ERRMEM) {
      // Under a protected call: building the traceback may itself run out
      // of the script's memory (outside one, Lua would abort the process).
      lua_pushcfunction(in.L, traceback_of);
      lua_pushlightuserdata(in.L, co);
      lua_pushlstring(in.L, error.data(), error.size());
      if (lua_pcall(in.L, 2, 1, 0) == LUA_OK && lua_type(in.L, -1) == LUA_TSTRING) detail = lua_tostring(in.L, -1);
      lua_pop(in.L, 1);
    }
    error = error.substr(0, error.find('\n'));
    // Its stack goes before the error reply runs: what filled the memory
    // must be collectable by then.
    lua_resetthread(co);
    call_failed(in, call->job, error, detail);
    release_holds(in);
    discard(in, std::move(call));
  }
  if (timer != 0) in.timers_running.erase(timer);
  if (s != nullptr) {
    auto it = in.busy.find(s);
    if (it != in.busy.end()) {
      it->second.wait_id = 0;
      drain(in, s);
    }
  }
}

}  // namespace

void start_call(Internal& in, std::unique_ptr<Call> call, lua_CFunction entry) {
  lua_State* co = call->co;
  Job* job = &call->job;
  lua_pushcfunction(co, entry);
  lua_pushlightuserdata(co, job);
  // The entry is the coroutine's body: resumed with its one argument.
  lua_insert(co, -2);
  lua_insert(co, -2);
  run(in, std::move(call), 1);
}

void resume_waiting(Internal& in, std::uint64_t wait_id, const std::function<int(lua_State*)>& push) {
  auto it = in.waiting.find(wait_id);
  if (it == in.waiting.end()) return;
  std::unique_ptr<Call> call = std::move(it->second);
  in.waiting.erase(it);
  call->wait_id = 0;
  const int n = push(call->co);
  run(in, std::move(call), n);
}

std::uint64_t begin_wait(lua_State* L, const char* what) {
  Internal& in = internal_of(L);
  if (in.current == nullptr) {
    luaL_error(L, "%s cannot wait here (on_close, on_upgrade and on_error run to completion; "
                  "start it from a message handler, on_open, an http route or relay.after)", what);
  }
  if (in.current->co != L) {
    luaL_error(L, "%s cannot wait inside a coroutine the script created (only in the handler itself)", what);
  }
  if (!lua_isyieldable(L)) {
    luaL_error(L, "%s cannot wait here (inside a callback of a C function such as table.sort, string.gsub or "
                  "tostring, or inside on_error)", what);
  }
  in.current->wait_id = ++in.last_wait_id;
  return in.current->wait_id;
}

bool queue_event(Internal& in, const session::Session& s, QueuedEvent event) {
  Backlog& backlog = in.busy[&s];
  if (event.kind == QueuedEvent::Kind::Message && backlog.events.size() >= in.max_queued_events) return false;
  backlog.events.push_back(std::move(event));
  return true;
}

void cancel_session_calls(Internal& in, const session::Session& s) {
  auto it = in.busy.find(&s);
  if (it == in.busy.end()) return;
  const std::uint64_t id = it->second.wait_id;
  in.busy.erase(it);
  if (id == 0) return;
  auto w = in.waiting.find(id);
  if (w == in.waiting.end()) return;
  std::unique_ptr<Call> call = std::move(w->second);
  in.waiting.erase(w);
  discard(in, std::move(call));
}

// ---- coroutine guards -------------------------------------------------------

namespace {

bool is_call_thread(lua_State* L, int index) {
  lua_State* co = lua_tothread(L, index);
  return co != nullptr && internal_of(L).call_threads.count(co) != 0;
}

// upvalue 1: the original function.
int forward(lua_State* L) {
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

int guarded_resume(lua_State* L) {
  if (is_call_thread(L, 1)) return luaL_error(L, "coroutine.resume: that is the relay's own coroutine");
  return forward(L);
}

int guarded_close(lua_State* L) {
  if (is_call_thread(L, 1)) return luaL_error(L, "coroutine.close: that is the relay's own coroutine");
  return forward(L);
}

int yield_continue(lua_State* L, int, lua_KContext) { return lua_gettop(L); }

int guarded_yield(lua_State* L) {
  Internal& in = internal_of(L);
  if (in.call_threads.count(L) != 0) {
    return luaL_error(L, "coroutine.yield outside a coroutine the script created");
  }
  return lua_yieldk(L, lua_gettop(L), 0, yield_continue);
}

}  // namespace

void open_coroutine_guards(lua_State* L, int env) {
  lua_getfield(L, env, "coroutine");
  const int original = lua_gettop(L);
  lua_newtable(L);
  const int copy = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, original) != 0) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_settable(L, copy);
  }
  const struct {
    const char* name;
    lua_CFunction fn;
  } guards[] = {{"resume", guarded_resume}, {"close", guarded_close}};
  for (const auto& g : guards) {
    lua_getfield(L, original, g.name);
    lua_pushcclosure(L, g.fn, 1);
    lua_setfield(L, copy, g.name);
  }
  lua_pushcfunction(L, guarded_yield);
  lua_setfield(L, copy, "yield");
  lua_setfield(L, env, "coroutine");
  lua_pop(L, 1);
}

}  // namespace wsrelay::script
