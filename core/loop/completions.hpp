// completions: work finished on another thread (an HTTP answer from the
// outbound client's worker), handed to the loop's thread. The loop's adapter
// sets `wake` (lws_cancel_service: safe from any thread); when the loop wakes
// it calls drain(), which runs each completion on the loop's thread.
//
// The event loop is lws's own (poll); whatever has its own I/O (libcurl's
// multi loop now, a Redis connection later) runs on a worker thread of its own
// and comes back through here, so the hot path (fan-out) never takes a lock.
#pragma once

#include <functional>
#include <mutex>
#include <vector>

namespace wsrelay::loop {

class Completions {
 public:
  using Work = std::function<void()>;

  // Any thread.
  void post(Work work) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_.push_back(std::move(work));
    }
    std::function<void()> wake;
    {
      std::lock_guard<std::mutex> lock(wake_mutex_);
      wake = wake_;
    }
    if (wake) wake();
  }

  // The loop's thread. Returns how many ran.
  std::size_t drain() {
    std::vector<Work> batch;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      batch.swap(pending_);
    }
    for (Work& w : batch) w();
    return batch.size();
  }

  // Set by the adapter before any worker starts; cleared before the loop goes.
  void set_wake(std::function<void()> wake) {
    std::lock_guard<std::mutex> lock(wake_mutex_);
    wake_ = std::move(wake);
  }

 private:
  std::mutex mutex_;
  std::vector<Work> pending_;
  std::mutex wake_mutex_;
  std::function<void()> wake_;
};

}  // namespace wsrelay::loop
