#include "loop/lws_binding.hpp"

#include <libwebsockets.h>

#include <algorithm>
#include <chrono>

namespace wsrelay::loop {
namespace {

std::int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

// First member of a standard-layout struct: the callback finds its binding
// from the sul.
struct LwsBinding::Sul {
  lws_sorted_usec_list_t sul;
  LwsBinding* binding;
};

LwsBinding::LwsBinding(lws_context* context, Timers& timers, Completions& completions,
                       std::function<void(std::int64_t)> run_timers)
    : context_(context), timers_(timers), completions_(completions), run_timers_(std::move(run_timers)),
      sul_(new Sul{{}, this}) {
  timers_.on_change = [this] { schedule(); };
  completions_.set_wake([context] { lws_cancel_service(context); });
  schedule();
}

LwsBinding::~LwsBinding() {
  lws_sul_cancel(&sul_->sul);
  timers_.on_change = nullptr;
  completions_.set_wake(nullptr);
  delete sul_;
}

void LwsBinding::schedule() {
  const std::optional<std::int64_t> next = timers_.next_deadline();
  if (!next) {
    lws_sul_cancel(&sul_->sul);
    return;
  }
  const std::int64_t wait_ms = std::max<std::int64_t>(0, *next - steady_ms());
  lws_sul_schedule(context_, 0, &sul_->sul,
                   [](lws_sorted_usec_list_t* sul) {
                     LwsBinding& self = *reinterpret_cast<Sul*>(sul)->binding;
                     self.run_timers_(steady_ms());
                     self.schedule();
                   },
                   static_cast<lws_usec_t>(wait_ms) * 1000);
}

}  // namespace wsrelay::loop
