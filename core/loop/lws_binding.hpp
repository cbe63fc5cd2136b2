// lws_binding: the relay's timers and completions on an lws event loop.
// The event loop is lws's own (its poll loop; in an embedding host whatever
// loop the host gave lws): one lws timer (sul) sits at the earliest script
// deadline, and other threads wake the loop with lws_cancel_service, whose
// EVENT_WAIT_CANCELLED the protocol hands to wait_cancelled(). Like
// core/upstream's client, this is where core meets lws; the Timers and
// Completions it drives stay pure.
#pragma once

#include "loop/completions.hpp"
#include "loop/timers.hpp"

#include <cstdint>
#include <functional>

struct lws_context;

namespace wsrelay::loop {

class LwsBinding {
 public:
  // run_timers(now_ms): called at or after the earliest deadline, with the
  // steady clock's milliseconds (Relay::run_timers).
  LwsBinding(lws_context* context, Timers& timers, Completions& completions,
             std::function<void(std::int64_t)> run_timers);
  ~LwsBinding();  // the timer cancelled, the wake and on_change cleared
  LwsBinding(const LwsBinding&) = delete;
  LwsBinding& operator=(const LwsBinding&) = delete;

  // The loop woke for lws_cancel_service: what other threads finished runs now.
  void wait_cancelled() { completions_.drain(); }

  struct Sul;  // internal (lws_binding.cpp)

 private:
  void schedule();

  lws_context* context_;
  Timers& timers_;
  Completions& completions_;
  std::function<void(std::int64_t)> run_timers_;
  Sul* sul_;
};

}  // namespace wsrelay::loop
