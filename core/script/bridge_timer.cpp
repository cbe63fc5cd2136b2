// bridge_timer: relay.after(seconds, fn) and relay.every(seconds, fn), each
// returning a handle with :cancel(). The callback runs on a relay coroutine
// under the same instruction budget and error containment as a handler (an
// error is logged with file:line and counted; an every keeps going), and it
// may wait (relay.http.request). An every whose previous run still waits
// skips that tick rather than piling runs up behind a slow backend.
// A reload cancels the timers of the script version it replaces.
#include "script/engine_internal.hpp"

#include <chrono>
#include <cmath>

namespace wsrelay::script {
namespace {

constexpr const char* kTimerType = "wsrelay.timer";
constexpr double kMaxDelay = 2592000;  // 30 days
constexpr double kMinInterval = 0.01;  // an every(0) would spin the loop

struct TimerBox {
  std::uint64_t id = 0;
};

std::int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

loop::Timers& timers_of(lua_State* L) {
  loop::Timers* timers = internal_of(L).engine->context().timers;
  if (timers == nullptr) luaL_error(L, "timers are not available in this host");
  return *timers;
}

int add_timer(lua_State* L, bool repeating) {
  const char* what = repeating ? "relay.every" : "relay.after";
  const double seconds = luaL_checknumber(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  const double min = repeating ? kMinInterval : 0;
  if (!(seconds >= min && seconds <= kMaxDelay)) {  // also refuses NaN
    return luaL_error(L, "%s: seconds must be between %s and %d (got %f)", what, repeating ? "0.01" : "0",
                      static_cast<int>(kMaxDelay), seconds);
  }
  ScriptEngine::Internal& in = internal_of(L);
  const ScriptContext& context = in.engine->context();
  loop::Timers& timers = timers_of(L);
  if (in.timer_refs.size() >= static_cast<std::size_t>(context.max_timers)) {
    return luaL_error(L, "%s: this script already has %d live timers (limits.script_timers)", what,
                      context.max_timers);
  }
  const auto ms = static_cast<std::int64_t>(std::llround(seconds * 1000));
  const loop::TimerId id = timers.add(steady_ms(), ms, repeating ? ms : 0, in.engine);
  lua_pushvalue(L, 2);
  in.timer_refs.emplace(id, luaL_ref(L, LUA_REGISTRYINDEX));
  auto* box = static_cast<TimerBox*>(lua_newuserdatauv(L, sizeof(TimerBox), 0));
  box->id = id;
  luaL_setmetatable(L, kTimerType);
  return 1;
}

int relay_after(lua_State* L) { return add_timer(L, false); }
int relay_every(lua_State* L) { return add_timer(L, true); }

void forget(ScriptEngine::Internal& in, lua_State* L, std::uint64_t id) {
  auto it = in.timer_refs.find(id);
  if (it == in.timer_refs.end()) return;
  luaL_unref(L, LUA_REGISTRYINDEX, it->second);
  in.timer_refs.erase(it);
}

// handle:cancel() -> true if it was still pending (an every: until now).
int m_cancel(lua_State* L) {
  auto* box = static_cast<TimerBox*>(luaL_checkudata(L, 1, kTimerType));
  ScriptEngine::Internal& in = internal_of(L);
  const bool live = in.timer_refs.count(box->id) != 0;
  if (live) {
    timers_of(L).cancel(box->id);
    forget(in, L, box->id);
  }
  lua_pushboolean(L, live);
  return 1;
}

int m_tostring(lua_State* L) {
  auto* box = static_cast<TimerBox*>(luaL_checkudata(L, 1, kTimerType));
  lua_pushfstring(L, "timer %I", static_cast<lua_Integer>(box->id));
  return 1;
}

}  // namespace

void open_relay_timers(lua_State* L) {
  if (luaL_newmetatable(L, kTimerType)) {
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, trampoline<m_cancel>);
    lua_setfield(L, -2, "cancel");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, trampoline<m_tostring>);
    lua_setfield(L, -2, "__tostring");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, trampoline<relay_after>);
  lua_setfield(L, -2, "after");
  lua_pushcfunction(L, trampoline<relay_every>);
  lua_setfield(L, -2, "every");
}

void fire_timer(ScriptEngine::Internal& in, std::uint64_t id, bool repeating) {
  auto it = in.timer_refs.find(id);
  if (it == in.timer_refs.end()) return;  // cancelled meanwhile
  if (repeating && in.timers_running.count(id) != 0) return;  // its last run still waits: skip this tick
  const int ref = it->second;
  if (!repeating) in.timer_refs.erase(it);  // one shot: the ref goes once the call holds the function
  std::unique_ptr<Call> call = take_call(in);
  call->job.engine = in.engine;
  call->job.timer_fn_ref = ref;
  call->job.timer_id = id;
  if (repeating) in.timers_running.insert(id);
  start_timer_call(in, std::move(call));
  if (!repeating) luaL_unref(in.L, LUA_REGISTRYINDEX, ref);
}

void cancel_timers(ScriptEngine::Internal& in, const std::vector<std::uint64_t>& ids) {
  loop::Timers* timers = in.engine->context().timers;
  for (std::uint64_t id : ids) {
    if (timers != nullptr) timers->cancel(id);
    forget(in, in.L, id);
  }
}

}  // namespace wsrelay::script
