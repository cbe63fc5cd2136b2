// reach: what the relay's scripts start that ends later — timers
// (relay.after/every) and work finished on other threads (relay.http.request's
// answers) — brought onto this lws loop. One lws timer per vhost sits at the
// earliest script deadline; other threads wake the loop with
// lws_cancel_service, whose EVENT_WAIT_CANCELLED drains the completions.
#include "protocol_wsrelay/adapter.hpp"

namespace wsrelay::plugin {
namespace {

void reach_tick(lws_sorted_usec_list_t* sul);

void schedule(VhostState& state) {
  const std::optional<std::int64_t> next = state.relay->timers().next_deadline();
  if (!next) {
    lws_sul_cancel(&state.reach.sul);
    return;
  }
  const std::int64_t wait_ms = std::max<std::int64_t>(0, *next - now_ms());
  lws_sul_schedule(state.context, 0, &state.reach.sul, reach_tick, static_cast<lws_usec_t>(wait_ms) * 1000);
}

void reach_tick(lws_sorted_usec_list_t* sul) {
  VhostState& state = *reinterpret_cast<VhostState::ReachTimer*>(sul)->state;
  state.relay->run_timers(now_ms());
  schedule(state);
}

}  // namespace

void attach_reach(VhostState& state) {
  state.reach.state = &state;
  VhostState* s = &state;
  state.relay->timers().on_change = [s] { schedule(*s); };
  lws_context* context = state.context;
  state.relay->completions().set_wake([context] { lws_cancel_service(context); });
  schedule(state);
}

void detach_reach(VhostState& state) {
  lws_sul_cancel(&state.reach.sul);
  if (state.relay != nullptr) {
    state.relay->timers().on_change = nullptr;
    state.relay->completions().set_wake(nullptr);
  }
}

void on_wait_cancelled(lws* wsi) {
  if (VhostState* state = state_of(wsi); state != nullptr && state->relay != nullptr) {
    state->relay->completions().drain();
  }
}

}  // namespace wsrelay::plugin
